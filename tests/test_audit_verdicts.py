"""The completeness verdict on hand-computed cases: the gap is the forget's
AUC minus the seed-0 retrain's, the gap allowed is the larger of the floor
and the retrains' spread, and a forget is complete when every attacker's
gap, above or below the retrain's, is within the gap allowed (docs/design.md,
section 7).  The AUCs are exact binary fractions, so the boundary cases are
exact too.
"""
import pytest

from fastunlearn import audit
from fastunlearn.audit import AuditReport

ATTACKERS = ("score_auc", "rank_auc")


def aucs(score, rank):
    return {"score_auc": score, "rank_auc": rank}


def test_gaps_are_against_the_first_retrain_with_the_spread_or_the_floor_allowed():
    forget = aucs(0.75, 0.5)
    retrains = [aucs(0.625, 0.5625), aucs(0.6875, 0.53125), aucs(0.59375, 0.625)]
    found = audit.gaps(forget, retrains)
    # score: 0.75 - 0.625, spread 0.6875 - 0.59375; rank: 0.5 - 0.5625, spread
    # 0.625 - 0.53125
    assert found == {"score_auc": (0.125, 0.09375), "rank_auc": (-0.0625, 0.09375)}
    # retrains that agree closely: the floor is allowed instead
    close = [aucs(0.625, 0.5), aucs(0.62890625, 0.5), aucs(0.6259765625, 0.501953125)]
    found = audit.gaps(forget, close)
    assert found["score_auc"] == (0.125, audit.COMPLETENESS_FLOOR)
    assert found["rank_auc"] == (0.0, audit.COMPLETENESS_FLOOR)
    assert audit.gaps(forget, close, floor=0.25) == {"score_auc": (0.125, 0.25),
                                                     "rank_auc": (0.0, 0.25)}
    # one retrain has no spread: the floor alone
    assert audit.gaps(forget, retrains[:1], floor=0.0625) == {"score_auc": (0.125, 0.0625),
                                                              "rank_auc": (-0.0625, 0.0625)}


@pytest.mark.parametrize("found, complete", [
    ({"score_auc": (0.0, 0.01), "rank_auc": (0.0, 0.01)}, True),
    ({"score_auc": (0.0625, 0.0625), "rank_auc": (-0.0625, 0.0625)}, True),  # on the bound
    ({"score_auc": (0.125, 0.0625), "rank_auc": (0.0, 0.0625)}, False),  # a trace
    ({"score_auc": (0.0, 0.0625), "rank_auc": (0.125, 0.0625)}, False),  # the other attacker
    # below the retrain by more than allowed (over-removal) fails too
    ({"score_auc": (-0.125, 0.0625), "rank_auc": (0.0, 0.0625)}, False),
    ({"score_auc": (0.0, 0.0625), "rank_auc": (-0.125, 0.0625)}, False),
])
def test_within_needs_every_attacker_within_its_allowed_gap_either_way(found, complete):
    assert audit.within(found) is complete


def report_with(forget, retrains):
    """An AuditReport whose completeness measures are ``forget`` and the
    ``retrains`` (the other axes are not read by the verdict)."""
    spread = {key: [r[key] for r in retrains] for key in ATTACKERS}
    completeness = {"original": aucs(0.875, 0.875), "forget": forget, "retrain": retrains[0]}
    return AuditReport(completeness=completeness, unseen={}, utility={}, efficiency={},
                       fairness={}, setting={}, retrain_spread=spread)


@pytest.mark.parametrize("forget, complete", [
    (aucs(0.6875, 0.5), True),
    (aucs(0.625 + 0.09375, 0.5), True),  # on the bound
    (aucs(0.75, 0.5), False),
    (aucs(0.5, 0.5), False),  # over-removal
    (aucs(0.625, 0.375), False),
])
def test_audit_report_verdict_is_that_of_its_gaps(forget, complete):
    retrains = [aucs(0.625, 0.5), aucs(0.6875, 0.5), aucs(0.59375, 0.53125)]
    result = report_with(forget, retrains)
    assert result.completeness_gaps() == audit.gaps(forget, retrains)
    assert result.completeness_gaps()["score_auc"] == (forget["score_auc"] - 0.625, 0.09375)
    assert result.is_complete() is complete
    # a larger floor forgives any of these gaps
    assert result.completeness_gaps(floor=0.25)["rank_auc"][1] == 0.25
    assert result.is_complete(floor=0.25)


def test_no_held_out_pair_is_no_verdict_of_completeness():
    """When the forgotten pairs' users have no test pairs, the held-out
    measures are NaN (with the forgotten count and no unseen pair) and the
    audit does not call the forget complete."""
    import numpy as np
    import scipy.sparse as sp

    from fastunlearn.synthetic import make_implicit

    from fastunlearn.evaluation import holdout_split

    train, test = holdout_split(make_implicit(60, 40, 900, seed=2), 0.2, seed=0)
    users, _ = audit.unlearning_set(train, 0.02, "edge", seed=0)  # what reports() draws
    keep = ~np.isin(np.arange(train.shape[0]), users)
    test = sp.csr_matrix(test.multiply(keep[:, None]))  # the other users' pairs only
    test.eliminate_zeros()
    assert test.nnz
    result = audit.report(train, test, fraction=0.02, how="edge", seed=0, factors=3,
                          iterations=2, num_threads=1)
    assert result.setting["n_removed"] == len(users)
    for stage in ("original", "forget", "retrain"):
        measured = result.completeness[stage]
        assert np.isnan(measured["score_auc"]) and np.isnan(measured["rank_auc"])
        assert measured["n_forgotten"] == len(users) and measured["n_unseen"] == 0
        assert isinstance(measured["score_auc"], float)
    assert not result.is_complete()
    # the same set against never-seen pairs is measured as usual
    assert result.unseen["forget"]["n_unseen"] == len(users)


def test_completeness_names_what_is_wrong_with_its_input():
    import numpy as np
    import scipy.sparse as sp

    import fastunlearn as fu
    from fastunlearn.evaluation import holdout_split
    from fastunlearn.synthetic import make_implicit

    train, test = holdout_split(make_implicit(40, 30, 500, seed=4), 0.2, seed=0)
    model = fu.ImplicitALS(factors=3, iterations=2, random_state=0, num_threads=1).fit(
        train, show_progress=False)
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model.forget(*forgotten)
    with pytest.raises(fu.NotFittedError, match=r"^model \(ImplicitALS\) is not fitted"):
        audit.completeness(fu.ImplicitALS(), forgotten, test)
    with pytest.raises(ValueError, match=r"^forgotten users out of range"):
        audit.completeness(model, (np.array([10_000]), np.array([0])), test)
    with pytest.raises(TypeError, match=r"^forgotten must be"):
        audit.completeness(model, [1, 2, 3], test)
    with pytest.raises(ValueError, match=r"^test has shape"):
        audit.completeness(model, forgotten, test[:, :-1])
    with pytest.raises(ValueError, match=r"^repeats must be >= 1, got 0"):
        audit.completeness(model, forgotten, test, repeats=0)
    with pytest.raises(ValueError, match=r"^none of the forgotten pairs' users has a pair in "
                                         r"test$"):
        audit.completeness(model, forgotten, sp.csr_matrix(test.shape))


def test_default_unseen_pairs_avoid_the_forgotten_pairs_the_model_still_holds():
    """By default the never-seen pairs avoid the retained data and the
    forgotten pairs, even where the model still holds them (the original
    model, before its forget): the same draw as sample_unseen over both."""
    import numpy as np
    import scipy.sparse as sp

    import fastunlearn as fu

    rng = np.random.default_rng(8)
    R = sp.csr_matrix((rng.random((30, 20)) < 0.3).astype(np.float32))
    model = fu.ImplicitALS(factors=3, iterations=2, random_state=0, num_threads=1).fit(
        R, show_progress=False)
    coo = R.tocoo()
    pick = rng.choice(coo.nnz, coo.nnz // 4, replace=False)
    forgotten = (coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64))
    # everything to avoid, built from the pairs alone
    avoid = sp.csr_matrix(R.astype(bool), dtype=np.float64)
    for seed in range(3):
        unseen = audit.sample_unseen(avoid, forgotten[0], seed=seed)
        assert not avoid[unseen].any()
        assert audit.membership_inference(model, forgotten, seed=seed) == \
            audit.membership_inference(model, forgotten, unseen)


def test_completeness_prints_nothing(capsys):
    import fastunlearn as fu
    from fastunlearn.evaluation import holdout_split
    from fastunlearn.synthetic import make_implicit

    train, test = holdout_split(make_implicit(40, 30, 500, seed=4), 0.2, seed=0)
    model = fu.ImplicitALS(factors=3, iterations=2, random_state=0, num_threads=1).fit(
        train, show_progress=False)
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model.forget(*forgotten)
    capsys.readouterr()
    assert audit.completeness(model, forgotten, test, repeats=2).retrains
    assert capsys.readouterr() == ("", "")


def test_completeness_defaults_to_three_retrains_from_seed_zero():
    import fastunlearn as fu
    from fastunlearn.evaluation import holdout_split
    from fastunlearn.synthetic import make_implicit

    train, test = holdout_split(make_implicit(40, 30, 500, seed=4), 0.2, seed=0)
    params = dict(factors=3, iterations=2, num_threads=1)
    model = fu.ImplicitALS(**params, random_state=7).fit(train, show_progress=False)
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model.forget(*forgotten)
    held = audit.held_out_pairs(test, forgotten[0])
    result = audit.completeness(model, forgotten, test)
    expected = [audit.membership_inference(
        fu.ImplicitALS(**params, random_state=seed).fit(model.user_items, show_progress=False),
        forgotten, held).to_dict() for seed in (0, 1, 2)]
    assert result.retrains == expected


def test_membership_inference_names_what_is_wrong_with_its_input():
    import numpy as np
    import scipy.sparse as sp

    import fastunlearn as fu

    R = sp.csr_matrix((np.random.default_rng(9).random((12, 10)) < 0.4).astype(np.float32))
    model = fu.ImplicitALS(factors=2, iterations=1, random_state=0, num_threads=1).fit(
        R, show_progress=False)
    coo = R.tocoo()
    pairs = (coo.row[:3], coo.col[:3])
    with pytest.raises(fu.NotFittedError, match=r"^model \(ImplicitALS\) is not fitted"):
        audit.membership_inference(fu.ImplicitALS(), pairs)
    with pytest.raises(ValueError, match=r"^forgotten users out of range"):
        audit.membership_inference(model, (np.array([99]), np.array([0])))
    with pytest.raises(ValueError, match=r"^unseen items out of range"):
        audit.membership_inference(model, pairs, (np.array([0]), np.array([99])))
