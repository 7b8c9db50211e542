"""The audit report's three-valued verdict on hand-computed cases: too few
pairs first (whatever the gaps), then complete when every attacker's gap
is within the largest of the floor, the retrains' spread and what DeLong's
interval of the gap allows (docs/design.md, section 7, "Sample size").
The AUCs are exact binary fractions, so the boundary cases are exact."""
import json
import math

import pytest

from fastunlearn import audit
from fastunlearn.audit import AuditReport, intervals
from fastunlearn.audit.intervals import Z95, Verdict

ATTACKERS = ("score_auc", "rank_auc")
# 200 forgotten against 3000 held-out pairs: a no-signal AUC's 95 %
# interval is 1.96 sqrt(3201 / (12 * 200 * 3000)) = 0.041 either side,
# within 0.05; 5 forgotten pairs give 0.25
ENOUGH, FEW = (200, 3000), (5, 3000)


def aucs(score, rank):
    return {"score_auc": score, "rank_auc": rank}


def report_with(forget, retrains, pairs=ENOUGH, intervals=None):
    """An AuditReport whose held-out test measured ``forget`` and the
    ``retrains`` on ``pairs`` (forgotten, held-out) pairs."""
    n_forgotten, n_unseen = pairs
    forget = {**forget, "n_forgotten": n_forgotten, "n_unseen": n_unseen}
    spread = {key: [r[key] for r in retrains] for key in ATTACKERS}
    completeness = {"original": aucs(0.875, 0.875), "forget": forget, "retrain": retrains[0]}
    return AuditReport(completeness=completeness, unseen={}, utility={}, efficiency={},
                       fairness={}, setting={}, retrain_spread=spread, intervals=intervals)


RETRAINS = [aucs(0.625, 0.5), aucs(0.6875, 0.5), aucs(0.59375, 0.53125)]  # spread 0.09375


@pytest.mark.parametrize("forget, pairs, verdict", [
    (aucs(0.6875, 0.5), ENOUGH, Verdict.COMPLETE),
    (aucs(0.625 + 0.09375, 0.5), ENOUGH, Verdict.COMPLETE),  # on the bound
    (aucs(0.75, 0.5), ENOUGH, Verdict.INCOMPLETE),  # a trace
    (aucs(0.625, 0.375), ENOUGH, Verdict.INCOMPLETE),  # over-removal, rank attacker
    (aucs(0.625, 0.5), FEW, Verdict.TOO_FEW_PAIRS),  # even no gap at all
    (aucs(0.875, 0.875), FEW, Verdict.TOO_FEW_PAIRS),  # even a large one
    (aucs(0.625, 0.5), (200, 0), Verdict.TOO_FEW_PAIRS),  # no held-out pair
])
def test_the_report_verdict_is_too_few_pairs_first_then_its_gaps(forget, pairs, verdict):
    result = report_with(forget, RETRAINS, pairs)
    assert result.verdict() is verdict
    if verdict is not Verdict.TOO_FEW_PAIRS:
        assert result.is_complete() is (verdict is Verdict.COMPLETE)


def test_the_report_verdict_takes_the_floor_it_is_given():
    result = report_with(aucs(0.75, 0.5), RETRAINS)  # gap 0.125 over a spread of 0.09375
    assert result.verdict() is Verdict.INCOMPLETE
    assert result.verdict(floor=0.125) is Verdict.COMPLETE
    assert result.verdict(0.125) is Verdict.COMPLETE
    assert result.verdict(floor=0.1) is Verdict.INCOMPLETE
    # too few pairs whatever the floor
    assert report_with(aucs(0.75, 0.5), RETRAINS, FEW).verdict(floor=1.0) is \
        Verdict.TOO_FEW_PAIRS


def test_the_report_verdict_allows_what_sampling_the_pairs_allows():
    # gap 0.125, beyond the spread 0.09375: within 1.96 * 0.0703125 = 0.138,
    # not within 1.96 * 0.0625 = 0.1225
    wide = {key: {"gap_se": 0.0703125} for key in ATTACKERS}
    narrow = {key: {"gap_se": 0.0625} for key in ATTACKERS}
    assert report_with(aucs(0.75, 0.5), RETRAINS, intervals=wide).verdict() is Verdict.COMPLETE
    assert report_with(aucs(0.75, 0.5), RETRAINS, intervals=narrow).verdict() is \
        Verdict.INCOMPLETE
    assert Z95 * 0.0625 < 0.125 < Z95 * 0.0703125


@pytest.mark.parametrize("gap, allowed, reads", [
    (0.0625, 0.0625, "within what sampling and seeds allow"),  # on the bound: within
    (0.0, 0.0625, "within what sampling and seeds allow"),  # no gap is not below
    (-0.0625, 0.0625, "below the retrains, within what sampling and seeds allow"),
    (0.125, 0.0625, "above the retrains"),
    (-0.125, 0.0625, "below the retrains: over-removal"),
])
def test_a_gap_reads_as_its_verdict_says(gap, allowed, reads):
    assert intervals.reading(gap, allowed).startswith(reads)
    # the reading agrees with the verdict of that gap
    within = audit.within({"score_auc": (gap, allowed)})
    assert within is reads.startswith(("within", "below the retrains, within"))


def completeness_of(n_forgotten, n_unseen, verdict, min_pairs):
    forget = {**aucs(0.625, 0.5), "n_forgotten": n_forgotten, "n_unseen": n_unseen}
    return audit.Completeness(forget, [forget], {}, None, verdict=verdict, min_pairs=min_pairs)


def test_too_few_pairs_says_how_many_would_do():
    found = completeness_of(5, 3000, Verdict.TOO_FEW_PAIRS, 129)
    assert found.verdict_text == ("too few pairs to judge (n = 5; at least 129 forgotten "
                                  "pairs needed against these 3000 held-out)")
    # too few held-out pairs for any number of forgotten ones
    none = completeness_of(5, 40, Verdict.TOO_FEW_PAIRS, None)
    assert none.verdict_text == (
        f"too few pairs to judge (n = 5; at least {intervals.min_forgotten_pairs(math.inf)} "
        "forgotten pairs needed, and more held-out pairs than these 40)")
    assert completeness_of(200, 3000, Verdict.COMPLETE, 129).verdict_text == "complete"


def test_completeness_as_a_dict_carries_its_verdict_in_words():
    found = completeness_of(5, 3000, Verdict.TOO_FEW_PAIRS, 129)
    as_dict = found.to_dict()
    assert as_dict["verdict_text"] == found.verdict_text
    assert as_dict["verdict"] is Verdict.TOO_FEW_PAIRS and as_dict["min_pairs"] == 129
    assert json.loads(json.dumps(as_dict))["verdict"] == "too few pairs to judge"


def test_below_129_held_out_pairs_no_number_of_forgotten_ones_is_enough():
    # with ever more forgotten pairs the null half-width falls to
    # z / sqrt(12 n_neg), within 0.05 only from n_neg = z^2 / (12 * 0.05^2) = 128.04
    assert Z95 / math.sqrt(12 * 128) > intervals.MAX_HALF_WIDTH > Z95 / math.sqrt(12 * 129)
    for n_neg in (1, 2, 118, 120, 128):
        assert intervals.min_forgotten_pairs(n_neg) is None
    m = intervals.min_forgotten_pairs(129)
    assert intervals.null_half_width(m, 129) <= intervals.MAX_HALF_WIDTH
    assert intervals.null_half_width(m - 1, 129) > intervals.MAX_HALF_WIDTH


@pytest.mark.parametrize("n_neg, half_width, z", [
    (50, 0.15, 3.0),  # the closed form rounds to 102 pairs, one short, at this edge
    (1000, 0.05, 1.0),
    (5000, 0.03, Z95),
    (10 ** 6, 0.6, Z95),  # one pair is enough
])
def test_min_forgotten_pairs_is_the_least_number_at_any_width_and_level(n_neg, half_width, z):
    m = intervals.min_forgotten_pairs(n_neg, half_width, z)
    assert intervals.null_half_width(m, n_neg, z) <= half_width
    assert m == 1 or intervals.null_half_width(m - 1, n_neg, z) > half_width


def test_min_forgotten_pairs_where_the_half_width_only_tends_to_the_target():
    # 12 n_neg h^2 / z^2 = 1 exactly: the half-width falls to 0.5 but never reaches it
    assert intervals.null_half_width(10 ** 9, 3, 3.0) > 0.5
    assert intervals.min_forgotten_pairs(3, 0.5, 3.0) is None


# ------------------------------------------------- completeness from its parts

def forgot(seed=5):
    """A model that forgot 5 % of a synthetic set, and held-out pairs with
    ratings 1 to 5 (so that a shadow trained on other values differs)."""
    import numpy as np

    import fastunlearn as fu
    from fastunlearn.evaluation import holdout_split
    from fastunlearn.synthetic import make_implicit

    train, test = holdout_split(make_implicit(150, 80, 3000, seed=0), 0.2, seed=0)
    test.data = np.random.default_rng(0).integers(1, 6, test.nnz).astype(test.dtype)
    model = fu.ImplicitALS(factors=8, regularization=0.05, alpha=2.0, iterations=8,
                           num_threads=1, dtype=np.float64, random_state=seed).fit(
        train, show_progress=False)
    forgotten = audit.unlearning_set(train, 0.05, "random", seed=0)
    model.forget(*forgotten)
    return model, forgotten, test


def test_completeness_is_its_parts_shadows_intervals_and_sample_size():
    """Against the public parts: the shadows fitted on the held-out pairs'
    values with the given seed and number, the intervals of the forget and
    the seed-0 retrain (DeLong, on the same pairs), the pairs needed."""
    import numpy as np
    import scipy.sparse as sp

    import fastunlearn as fu
    from fastunlearn.audit.membership import attacker_values

    model, forgotten, test = forgot()
    found = audit.completeness(model, forgotten, test, repeats=3, seed=3, shadows=4)
    held = audit.held_out_pairs(test, forgotten[0])
    held_matrix = sp.csr_matrix((np.asarray(test[held]).ravel(), held), shape=test.shape)
    attack = audit.fit_shadows(model, forgotten, held_matrix, shadows=4, seed=3).attack
    first = fu.ImplicitALS.from_hyperparameters(
        **{**model.hyperparameters(), "random_state": 3}).fit(model.user_items,
                                                              show_progress=False)
    for fitted, measured in ((model, found.forget), (first, found.retrains[0])):
        lira = attack(fitted)
        assert (measured["lira_auc"], measured["lira_offline_auc"]) == \
            (lira.lira_auc, lira.lira_offline_auc)
    pairs = tuple(np.asarray(a, np.int64) for a in forgotten)
    mine, theirs = attacker_values(model, pairs, held), attacker_values(first, pairs, held)
    for key in ("score_auc", "rank_auc"):
        (pos, neg), (pos_r, neg_r) = mine[key], theirs[key]
        for auc, (p, n), which in ((found.forget[key], (pos, neg), "forget"),
                                   (found.retrains[0][key], (pos_r, neg_r), "retrain")):
            se = intervals.auc_standard_error(p, n)
            assert found.intervals[key][which] == pytest.approx(
                [max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)], rel=1e-12)
        assert found.intervals[key]["gap_se"] == pytest.approx(
            intervals.paired_difference_se(pos, neg, pos_r, neg_r), rel=1e-12)
    assert found.min_pairs == intervals.min_forgotten_pairs(len(held[0])) is not None


def test_completeness_shows_one_step_per_retrain_when_asked(capsys):
    model, forgotten, test = forgot()
    capsys.readouterr()
    audit.completeness(model, forgotten, test, repeats=2, show_progress=True)
    last = capsys.readouterr().err.rstrip().split("\r")[-1]
    assert last.startswith("completeness retrains: 100%") and " 2/2 " in last


def test_one_pair_of_each_has_a_finite_null_half_width():
    # (1 + 1 + 1) / (12 * 1 * 1) = 1/4: half of z
    assert intervals.null_half_width(1, 1) == pytest.approx(Z95 / 2)
    assert intervals.null_half_width(1, 400) == pytest.approx(Z95 * math.sqrt(402 / 4800))
    assert intervals.null_half_width(400, 1) == pytest.approx(Z95 * math.sqrt(402 / 4800))
    assert intervals.null_half_width(1, 0) == intervals.null_half_width(0, 1) == math.inf


def test_a_half_width_on_the_limit_is_enough_to_judge():
    width = intervals.null_half_width(200, 3000)
    assert not intervals.too_few_pairs(200, 3000, max_half_width=width)
    assert intervals.too_few_pairs(200, 3000, max_half_width=width * (1 - 1e-12))


def test_an_auc_interval_is_clipped_to_the_unit_range_or_nan_without_an_error():
    from fastunlearn.audit.membership import interval

    assert interval(0.5, 0.125) == [0.5 - Z95 * 0.125, 0.5 + Z95 * 0.125]
    assert interval(0.96875, 0.125) == [0.96875 - Z95 * 0.125, 1.0]
    assert interval(0.03125, 0.125) == [0.0, 0.03125 + Z95 * 0.125]
    low, high = interval(0.75, float("nan"))  # fewer than two pairs of a kind
    assert math.isnan(low) and math.isnan(high)


def test_delong_standard_error_with_ties_on_one_side_of_the_positives():
    from fractions import Fraction

    # pos 1, 2, 3 against neg 0, 2: the positives' components 1/2, 3/4 (a
    # tie counts half), 1; the negatives' 1 and (1 + 1/2) / 3 = 1/2
    s10 = Fraction(1, 16)  # sample variance of 1/2, 3/4, 1
    s01 = Fraction(1, 8)  # of 1, 1/2
    assert intervals.auc_standard_error([1, 2, 3], [0, 2]) == pytest.approx(
        math.sqrt(s10 / 3 + s01 / 2), rel=1e-12)


def test_paired_difference_se_sees_the_negatives_ranked_differently():
    # the same positives, the two negatives swapped: the negatives'
    # component differences are -1/2 and 1/2 (sample variance 1/2), the
    # positives' 0 and 0; var = 1/2 / 2
    assert intervals.paired_difference_se([3, 1], [2, 0], [3, 1], [0, 2]) == \
        pytest.approx(0.5, rel=1e-12)
    # one positive: no variance to estimate, NaN and no error
    assert math.isnan(intervals.paired_difference_se([1], [0, 2], [1], [2, 0]))
