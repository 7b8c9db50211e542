"""The likelihood-ratio attacker (fastunlearn.audit.lira): its statistic
against a plain per-pair reference, its shadows against fits made here, and
its place in the completeness test."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import norm

import fastunlearn as fu
from fastunlearn import audit
from fastunlearn.audit.intervals import Z95, paired_difference_se
from fastunlearn.evaluation import holdout_split
from fastunlearn.synthetic import make_implicit


def reference_statistics(scores, members, target, pull):
    """Online and offline statistic, one pair at a time: Gaussian log
    densities of the pair's IN and OUT scores (their pooled variance), and
    the OUT z-score towards ``pull`` (upwards where None).  A variance
    under 1e-12 times the candidates' mean one is raised to that (pairs
    every shadow scores alike, documented in fastunlearn.audit.lira)."""
    n = scores.shape[1]
    s_in = [scores[members[:, j], j] for j in range(n)]
    s_out = [scores[~members[:, j], j] for j in range(n)]
    pooled = np.array([(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum())
                       / (len(a) + len(b) - 2) for a, b in zip(s_in, s_out)])
    var_out = np.array([b.var(ddof=1) for b in s_out])
    pooled = np.maximum(pooled, 1e-12 * pooled.mean())
    var_out = np.maximum(var_out, 1e-12 * var_out.mean())
    online, offline = [], []
    for j in range(n):
        online.append(norm.logpdf(target[j], s_in[j].mean(), np.sqrt(pooled[j]))
                      - norm.logpdf(target[j], s_out[j].mean(), np.sqrt(pooled[j])))
        towards = 1.0 if pull is None or pull[j] >= s_out[j].mean() else -1.0
        offline.append(towards * (target[j] - s_out[j].mean()) / np.sqrt(var_out[j]))
    return np.array(online), np.array(offline)


def reference_aucs(scores, members, target, n_forgotten, pull):
    """Online and offline AUC of :func:`reference_statistics`, as the share
    of (forgotten, held-out) pairs ordered right."""
    online, offline = reference_statistics(scores, members, target, pull)

    def auc(stat):
        pos, neg = np.array(stat[:n_forgotten]), np.array(stat[n_forgotten:])
        diff = pos[:, None] - neg[None, :]
        return float((diff > 0).mean() + 0.5 * (diff == 0).mean())

    return auc(online), auc(offline)


def planted(shift, shadows=16, n_forgotten=150, n_held=250, seed=0):
    """Shadow scores of pairs with very different baselines (so that one
    threshold for all cannot tell members), members' scores moved by
    ``shift`` towards their pull (above or below the baseline, as ratings
    pull them); the audited model trained on the forgotten pairs only."""
    rng = np.random.default_rng(seed)
    n = n_forgotten + n_held
    base = rng.normal(0.0, 10.0, n)
    towards = rng.choice([-1.0, 1.0], n)
    pull = base + 5.0 * towards
    members = (np.argsort(rng.random((n, shadows)), axis=1) < shadows // 2).T
    scores = base + shift * towards * members + rng.normal(0.0, 1.0, (shadows, n))
    target = base + rng.normal(0.0, 1.0, n)
    target[:n_forgotten] += shift * towards[:n_forgotten]
    return scores, members, target, n_forgotten, pull


@pytest.mark.parametrize("shift", [2.0, 0.0])
def test_statistic_matches_a_per_pair_reference(shift):
    scores, members, target, n, pull = planted(shift)
    shadows = audit.ShadowModels(np.zeros(len(target), np.int64),
                                 np.zeros(len(target), np.int64), n, scores, members,
                                 np.arange(len(scores)), pull)
    got = shadows.attack_scores(target)
    online, offline = reference_aucs(scores, members, target, n, pull)
    assert got.lira_auc == pytest.approx(online, abs=1e-12)
    assert got.lira_offline_auc == pytest.approx(offline, abs=1e-12)
    assert (got.n_forgotten, got.n_held_out, got.shadows) == (n, len(target) - n, 16)
    population = audit.membership.two_sample_auc(target[:n], target[n:])
    if shift:
        # membership is there: the per-pair attacker sees it, one threshold
        # for every pair barely does
        assert got.lira_auc > 0.8 and got.lira_offline_auc > 0.75
        assert population < 0.62
    else:
        assert abs(got.lira_auc - 0.5) < 0.08 and abs(got.lira_offline_auc - 0.5) < 0.08


def test_pairs_every_model_scores_alike_get_a_finite_statistic():
    # a user with no data left has zero factors in every model: all scores 0
    scores, members, target, n, pull = planted(2.0, n_forgotten=3, n_held=3)
    scores[:, 0] = scores[:, 4] = 0.0
    target[0] = target[4] = 0.0
    online, offline = audit.lira_statistics(scores, members, target, pull)
    assert np.isfinite(online).all() and np.isfinite(offline).all()
    assert online[0] == offline[0] == online[4] == 0.0


def small_setting(seed=0):
    R = make_implicit(150, 80, 3000, seed=seed)
    train, test = holdout_split(R, 0.2, seed=seed)
    return train, test


PARAMS = dict(factors=8, regularization=0.05, alpha=2.0, iterations=8, num_threads=1,
              dtype=np.float64)


def test_shadows_are_fits_on_the_retained_data_plus_their_half_of_the_candidates():
    train, test = small_setting()
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    held = audit.held_out_pairs(test, forgotten[0])
    original = fu.ImplicitALS(**PARAMS, random_state=0).fit(train, show_progress=False)
    values = np.asarray(test[held]).ravel() * 3.0  # values of the held-out pairs, given
    shadows = audit.fit_shadows(original, forgotten,
                                sp.csr_matrix((values, held), shape=train.shape),
                                shadows=4, seed=1)
    n = len(forgotten[0])
    assert shadows.n_forgotten == n and len(shadows.users) == n + len(held[0])
    assert (shadows.members.sum(axis=0) == 2).all()  # IN in exactly half
    retained = train.tolil()
    retained[forgotten] = 0
    retained = retained.tocsr()
    retained.eliminate_zeros()
    cand_values = np.concatenate([np.asarray(train[forgotten]).ravel(), values])
    for s in range(4):
        inside = shadows.members[s]
        data = retained + sp.csr_matrix(
            (cand_values[inside], (shadows.users[inside], shadows.items[inside])),
            shape=train.shape)
        shadow = fu.ImplicitALS(**PARAMS, random_state=int(shadows.seeds[s])).fit(
            data, show_progress=False)
        expected = np.einsum("ij,ij->i", shadow.user_factors[shadows.users],
                             shadow.item_factors[shadows.items])
        np.testing.assert_allclose(shadows.scores[s], expected, rtol=1e-9, atol=1e-12)
    # the same shadows from the forget (its data is the retained data)
    forget = fu.ImplicitALS.from_factors(original.user_factors, original.item_factors, train,
                                         **PARAMS)
    forget.forget(*forgotten)
    again = audit.fit_shadows(forget, sp.csr_matrix((np.asarray(train[forgotten]).ravel(),
                                                     forgotten), shape=train.shape),
                              sp.csr_matrix((values, held), shape=train.shape),
                              shadows=4, seed=1)
    np.testing.assert_array_equal(again.scores, shadows.scores)


@pytest.mark.parametrize("kind", ["implicit", "explicit"])
def test_the_original_model_is_caught_a_retrain_is_not(kind):
    train, test = small_setting()
    forgotten = audit.unlearning_set(train, 0.1, "random", seed=0)
    held = audit.held_out_pairs(test, forgotten[0])
    if kind == "implicit":
        cls, params = fu.ImplicitALS, PARAMS
    else:  # ratings 1-5, predicted ratings attacked
        rng = np.random.default_rng(0)
        train.data = rng.integers(1, 6, train.nnz).astype(np.float64)
        test.data = rng.integers(1, 6, test.nnz).astype(np.float64)
        cls = fu.ExplicitALS
        params = {k: v for k, v in PARAMS.items() if k != "alpha"}
    original = cls(**params, random_state=0).fit(train, show_progress=False)
    forgotten_matrix = sp.csr_matrix((np.asarray(train[forgotten]).ravel(), forgotten),
                                     shape=train.shape)
    shadows = audit.fit_shadows(original, forgotten_matrix,
                                sp.csr_matrix((np.asarray(test[held]).ravel(), held),
                                              shape=train.shape), shadows=8, seed=0)
    caught = shadows.attack(original)
    retained = original.user_items.tolil()
    retained[forgotten] = 0
    retained = retained.tocsr()
    retained.eliminate_zeros()
    retrain = cls(**params, random_state=1).fit(retained, show_progress=False)
    clean = shadows.attack(retrain)
    assert caught.lira_auc > 0.65 and caught.lira_offline_auc > 0.6, caught
    assert abs(clean.lira_auc - 0.5) < 0.1 and abs(clean.lira_offline_auc - 0.5) < 0.1, clean
    # the one-call form fits the same shadows
    assert audit.likelihood_ratio(original, forgotten_matrix, sp.csr_matrix(
        (np.asarray(test[held]).ravel(), held), shape=train.shape), shadows=8) == caught


def test_completeness_and_reports_run_it_when_asked():
    train, test = small_setting()
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model = fu.ImplicitALS(**PARAMS, random_state=0).fit(train, show_progress=False)
    model.forget(*forgotten)
    plain = audit.completeness(model, forgotten, test, repeats=2)
    assert plain.shadows == 0 and set(plain.gaps) == {"score_auc", "rank_auc"}
    found = audit.completeness(model, forgotten, test, repeats=2, shadows=4)
    assert set(found.gaps) == set(audit.ATTACKERS) and found.shadows == 4
    for key in ("score_auc", "rank_auc"):  # the population attackers unchanged
        assert found.forget[key] == plain.forget[key]
    seeds = [r["lira_auc"] for r in found.retrains]
    assert found.gaps["lira_auc"] == pytest.approx(
        (found.forget["lira_auc"] - seeds[0],
         max(0.01, max(seeds) - min(seeds), Z95 * found.intervals["lira_auc"]["gap_se"])))
    judged = all(abs(g) <= a for g, a in found.gaps.values())
    assert found.complete == (None if found.verdict is audit.Verdict.TOO_FEW_PAIRS else judged)

    R = make_implicit(300, 200, 5000, seed=0)
    report, = audit.reports(R, fraction=0.05, repeats=2, shadows=4, factors=8, iterations=8,
                            num_threads=1)
    assert set(report.completeness_gaps()) == set(audit.ATTACKERS)
    assert len(report.retrain_spread["lira_auc"]) == 2
    assert report.completeness["original"]["lira_auc"] > report.completeness["retrain"][
        "lira_auc"]
    assert report.efficiency["shadow_seconds"] > 0 and report.setting["shadows"] == 4
    assert "likelihood ratio, offline" in report.to_markdown()
    assert "likelihood ratio" not in audit.reports(R, fraction=0.05, factors=8,
                                                   iterations=2)[0].to_markdown()


def test_the_likelihood_ratio_gap_allowed_includes_what_sampling_the_pairs_allows():
    """As for the score and rank attackers (tests/test_audit_intervals.py):
    DeLong's paired standard error of the forget's and the seed-0 retrain's
    AUCs over the same pairs, here of their per-pair likelihood-ratio
    statistics (computed pair by pair) under the same shadows."""
    train, test = small_setting()
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model = fu.ImplicitALS(**PARAMS, random_state=0).fit(train, show_progress=False)
    model.forget(*forgotten)
    found = audit.completeness(model, forgotten, test, repeats=2, shadows=4, seed=3)
    held = audit.held_out_pairs(test, forgotten[0])
    shadows = audit.fit_shadows(model, forgotten, sp.csr_matrix(
        (np.asarray(test[held]).ravel(), held), shape=train.shape), shadows=4, seed=3)
    retrain = fu.ImplicitALS(**{**PARAMS, "random_state": 3}).fit(model.user_items,
                                                                 show_progress=False)
    n = shadows.n_forgotten
    stats = [reference_statistics(shadows.scores, shadows.members,
                                  (m.user_factors[shadows.users]
                                   * m.item_factors[shadows.items]).sum(axis=1), shadows.pull)
             for m in (model, retrain)]
    for attacker, which in (("lira_auc", 0), ("lira_offline_auc", 1)):
        ours, theirs = stats[0][which], stats[1][which]
        se = paired_difference_se(ours[:n], ours[n:], theirs[:n], theirs[n:])
        assert se > 0
        assert found.intervals[attacker]["gap_se"] == pytest.approx(se, rel=1e-9)
        seeds = [r[attacker] for r in found.retrains]
        assert found.gaps[attacker] == pytest.approx(
            (found.forget[attacker] - seeds[0], max(0.01, max(seeds) - min(seeds), Z95 * se)))


@pytest.mark.parametrize("shadows, error, message", [
    (3, ValueError, "shadows must be >= 4, got 3"),
    (6.0, TypeError, "shadows"),
    (5, ValueError, "shadows must be even"),
])
def test_bad_shadows_are_named(shadows, error, message):
    train, test = small_setting()
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model = fu.ImplicitALS(**PARAMS, random_state=0).fit(train, show_progress=False)
    with pytest.raises(error, match=message):
        audit.fit_shadows(model, forgotten, audit.held_out_pairs(test, forgotten[0]),
                          shadows=shadows)
    with pytest.raises(error, match=message):
        audit.completeness(model, forgotten, test, shadows=shadows)
    with pytest.raises(error, match=message):
        audit.reports(train, test, shadows=shadows)


def test_the_attack_needs_both_kinds_of_pair():
    train, test = small_setting()
    model = fu.ImplicitALS(**PARAMS, random_state=0).fit(train, show_progress=False)
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    none = (np.array([], np.int64), np.array([], np.int64))
    with pytest.raises(ValueError, match="forgotten and held-out pairs, got .* and 0"):
        audit.fit_shadows(model, forgotten, none)
    # held-out copies of forgotten pairs are not non-members
    with pytest.raises(ValueError, match="forgotten and held-out pairs, got .* and 0"):
        audit.fit_shadows(model, forgotten, forgotten)
    with pytest.raises(ValueError, match="must be \\(shadows, n\\)"):
        audit.lira_statistics(np.zeros((4, 3)), np.zeros((4, 2), bool), np.zeros(3))
    with pytest.raises(ValueError, match="two IN and two OUT"):
        audit.lira_statistics(np.zeros((4, 1)), np.array([[True]] * 3 + [[False]]), np.zeros(1))
