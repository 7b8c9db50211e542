"""The completeness verdict is honest about sample size: DeLong standard
errors against hand-computed cases and simulation, the gap allowed widened
by what sampling allows, a third verdict for too few pairs, and a negative
gap read as what it would mean (docs/design.md, section 7, "Sample size")."""
import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest

import fastunlearn as fu
from fastunlearn import audit
from fastunlearn.audit import intervals
from fastunlearn.audit.intervals import Z95, Verdict


def test_delong_standard_error_of_hand_computed_cases():
    # pos 3, 1 against neg 2, 0: components (1, 1/2) and (1/2, 1), each of
    # sample variance 1/8; var = 1/8 / 2 + 1/8 / 2
    assert intervals.auc_standard_error([3, 1], [2, 0]) == pytest.approx(math.sqrt(1 / 8))
    # with ties: pos 1, 2, 2 against neg 0, 2: positives' components 1/2,
    # 3/4, 3/4 (ties half), negatives' 1, 1/3
    s10 = Fraction(1, 48)  # sample variance of 1/2, 3/4, 3/4
    s01 = Fraction(2, 9)  # of 1, 1/3
    expected = math.sqrt(s10 / 3 + s01 / 2)
    assert intervals.auc_standard_error([1, 2, 2], [0, 2]) == pytest.approx(expected)
    # one of either side: no variance to estimate
    assert math.isnan(intervals.auc_standard_error([1], [0, 2]))


def test_delong_standard_error_matches_the_spread_of_simulated_aucs():
    """Over many draws of two normal samples (shift 1), the AUC's standard
    deviation is what the DeLong estimate says on average."""
    rng = np.random.default_rng(0)
    aucs, estimates = [], []
    for _ in range(2000):
        pos, neg = rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, 40)
        aucs.append(np.mean(pos[:, None] > neg[None, :]))
        estimates.append(intervals.auc_standard_error(pos, neg) ** 2)
    assert math.sqrt(np.mean(estimates)) == pytest.approx(np.std(aucs), rel=0.08)


def test_paired_difference_se_of_hand_computed_cases():
    # the same ranking, or a monotone transform of it: no difference, ever
    pos, neg = np.array([3.0, 1.0, 2.5]), np.array([2.0, 0.0])
    assert intervals.paired_difference_se(pos, neg, pos, neg) == 0.0
    assert intervals.paired_difference_se(pos, neg, np.exp(pos), np.exp(neg)) == 0.0
    # the two positives swapped: both AUCs 3/4, but pair by pair they
    # differ: positives' component differences 1/2, -1/2 (sample variance
    # 1/2), negatives' 0, 0; var = 1/2 / 2
    assert intervals.paired_difference_se([3, 1], [2, 0], [1, 3], [2, 0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same pairs, got 2 and 3 positives"):
        intervals.paired_difference_se([3, 1], [2, 0], [1, 3, 2], [2, 0])


def test_null_half_width_is_the_exact_null_spread_of_the_auc():
    """Enumerating every arrangement of 3 positives among 7 untied values:
    the AUC's variance is that of the Mann-Whitney statistic."""
    values = np.arange(7.0)
    aucs = []
    for chosen in itertools.combinations(range(7), 3):
        mask = np.isin(np.arange(7), chosen)
        aucs.append(np.mean(values[mask][:, None] > values[~mask][None, :]))
    assert np.mean(aucs) == pytest.approx(0.5)
    assert intervals.null_half_width(3, 4) == pytest.approx(Z95 * np.std(aucs))
    assert intervals.null_half_width(0, 4) == math.inf


@pytest.mark.parametrize("n_neg", [300, 1000, 5000, 10 ** 9])
def test_min_forgotten_pairs_is_where_the_interval_gets_narrow_enough(n_neg):
    m = intervals.min_forgotten_pairs(n_neg)
    assert intervals.null_half_width(m, n_neg) <= intervals.MAX_HALF_WIDTH
    assert intervals.null_half_width(m - 1, n_neg) > intervals.MAX_HALF_WIDTH
    assert not intervals.too_few_pairs(m, n_neg) and intervals.too_few_pairs(m - 1, n_neg)


def test_min_forgotten_pairs_at_the_limits():
    # z^2 / (12 h^2) = 128.04 with unlimited held-out pairs; 257 of each
    assert intervals.min_forgotten_pairs(10 ** 12) == 129
    assert intervals.min_forgotten_pairs(math.inf) == 129
    assert intervals.null_half_width(257, 257) <= intervals.MAX_HALF_WIDTH
    assert intervals.null_half_width(256, 256) > intervals.MAX_HALF_WIDTH
    # so few held-out pairs that no number of forgotten ones is enough
    assert intervals.min_forgotten_pairs(100) is None
    assert intervals.min_forgotten_pairs(0) is None


def test_gaps_allow_what_sampling_allows():
    forget = {"score_auc": 0.75, "rank_auc": 0.5}
    retrains = [{"score_auc": 0.625, "rank_auc": 0.5625},
                {"score_auc": 0.6875, "rank_auc": 0.53125}]
    # score: spread 0.0625 is more than 1.96 * 0.01; rank: 1.96 * 0.1 is more
    found = audit.gaps(forget, retrains, se={"score_auc": 0.01, "rank_auc": 0.1})
    assert found == {"score_auc": (0.125, 0.0625), "rank_auc": (-0.0625, Z95 * 0.1)}
    # a NaN standard error (too few pairs to estimate it) widens nothing
    assert audit.gaps(forget, retrains, se={"score_auc": float("nan")}) == \
        audit.gaps(forget, retrains)


@pytest.mark.parametrize("n_forgotten, n_unseen, found, verdict", [
    (5, 400, {"score_auc": (0.0, 0.01)}, Verdict.TOO_FEW_PAIRS),  # even a zero gap
    (5, 400, {"score_auc": (0.3, 0.01)}, Verdict.TOO_FEW_PAIRS),  # even a large one
    (200, 3000, {"score_auc": (0.0, 0.01)}, Verdict.COMPLETE),
    (200, 3000, {"score_auc": (-0.05, 0.01)}, Verdict.INCOMPLETE),
    (200, 0, {"score_auc": (0.0, 0.01)}, Verdict.TOO_FEW_PAIRS),  # no held-out pair
])
def test_verdict_of(n_forgotten, n_unseen, found, verdict):
    assert audit.verdict_of(found, n_forgotten, n_unseen) is verdict


def test_a_negative_gap_is_read_as_what_it_would_mean():
    assert "no evidence of over-removal" in intervals.reading(-0.05, 0.08)
    assert intervals.reading(-0.1, 0.08).startswith("below the retrains: over-removal")
    assert "trace" in intervals.reading(0.1, 0.08)
    assert intervals.reading(0.05, 0.08) == "within what sampling and seeds allow"
    assert intervals.reading(float("nan"), 0.08) == "not measured"


def test_verdict_is_a_string_value_in_json():
    assert json.dumps({"verdict": Verdict.TOO_FEW_PAIRS}) == \
        '{"verdict": "too few pairs to judge"}'
    assert str(Verdict.COMPLETE) == "complete"


# ---------------------------------------------------------------- MovieLens
PARAMS = dict(factors=16, iterations=8, regularization=0.05, alpha=1.0, num_threads=2)


@pytest.fixture(scope="module")
def split():
    import scipy.sparse as sp
    from conftest import MOVIELENS, MOVIELENS_MISSING

    from fastunlearn.evaluation import holdout_split

    if not MOVIELENS.exists():
        pytest.skip(f"{MOVIELENS_MISSING} {MOVIELENS}")
    raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    ratings = sp.csr_matrix((raw[:, 2].astype(np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)))
    train, test = holdout_split(ratings, 0.2, seed=0)
    original = fu.ImplicitALS(**PARAMS, random_state=0).fit(train, show_progress=False)
    return train, test, original


def forget_random(split, n, seed):
    train, test, original = split
    coo = train.tocoo()
    pick = np.random.default_rng(seed).choice(train.nnz, n, replace=False)
    pairs = (coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64))
    model = fu.ImplicitALS.from_factors(original.user_factors, original.item_factors, train,
                                        **PARAMS)
    model.forget(*pairs)
    return model, pairs


def test_five_pairs_on_movielens_are_too_few_to_judge(split):
    model, pairs = forget_random(split, 5, seed=1)
    result = audit.completeness(model, pairs, split[1])
    assert result.verdict is Verdict.TOO_FEW_PAIRS
    assert result.complete is None  # no bool pretending
    assert result.verdict_text.startswith("too few pairs to judge (n = 5; at least ")
    assert f"these {result.forget['n_unseen']}" in result.verdict_text
    assert result.min_pairs == intervals.min_forgotten_pairs(result.forget["n_unseen"])
    for key in ("score_auc", "rank_auc"):
        low, high = result.intervals[key]["forget"]
        assert low <= result.forget[key] <= high
        # an AUC from five pairs cannot be pinned to within the tolerance
        assert high - low > 2 * intervals.MAX_HALF_WIDTH or low == 0 or high == 1
    assert result.to_dict()["verdict"] == "too few pairs to judge"


def test_two_hundred_pairs_on_movielens_are_judged_complete(split):
    model, pairs = forget_random(split, 200, seed=2)
    result = audit.completeness(model, pairs, split[1])
    assert result.verdict is Verdict.COMPLETE, result.gaps
    assert result.complete is True
    for key in ("score_auc", "rank_auc"):
        gap, allowed = result.gaps[key]
        # the gap's own error is smaller than either AUC's: the same pairs
        forget_ci = result.intervals[key]["forget"]
        assert result.intervals[key]["gap_se"] * Z95 < (forget_ci[1] - forget_ci[0]) / 2
        assert allowed >= Z95 * result.intervals[key]["gap_se"]


def test_the_original_model_is_still_caught_with_two_hundred_pairs(split):
    """Widening the allowed gap by sampling must not hide a real trace: the
    model that never forgot the pairs is judged incomplete."""
    train, test, original = split
    _, pairs = forget_random(split, 200, seed=2)
    # the original holds the pairs; completeness retrains on what it holds,
    # so audit it against retrains on the data without them
    kept = fu.ImplicitALS.from_factors(original.user_factors, original.item_factors, train,
                                       **PARAMS)
    forgot, _ = forget_random(split, 200, seed=2)
    retrains = [fu.ImplicitALS(**PARAMS, random_state=s).fit(forgot.user_items,
                                                           show_progress=False)
                for s in range(3)]
    held = audit.held_out_pairs(test, pairs[0])
    values = audit.membership.attacker_values
    se = {key: v["gap_se"] for key, v in audit.membership.sampling_intervals(
        values(kept, pairs, held), values(retrains[0], pairs, held)).items()}
    forget = audit.membership_inference(kept, pairs, held).to_dict()
    found = audit.gaps(forget, [audit.membership_inference(r, pairs, held).to_dict()
                                for r in retrains], se=se)
    assert audit.verdict_of(found, 200, len(held[0])) is Verdict.INCOMPLETE, found


def test_model_report_shows_progress_of_the_retrains_when_asked(split, capsys):
    model, pairs = forget_random(split, 5, seed=1)
    capsys.readouterr()
    audit.model_report(model, split[1], forgotten=pairs, repeats=2, show_progress=True)
    assert "completeness retrains" in capsys.readouterr().err
    audit.model_report(model, split[1], forgotten=pairs, repeats=2)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def cli_files(split, tmp_path_factory):
    """MovieLens' training split fitted through the CLI, five of its pairs
    forgotten, and the held-out split, as files of external ids."""
    from fastunlearn.cli import main

    train, test, _ = split
    d = tmp_path_factory.mktemp("audit-cli")

    def write(name, matrix, rows=None):
        coo = matrix.tocoo()
        rows = range(coo.nnz) if rows is None else rows
        (d / name).write_text("user,item\n" + "".join(
            f"{coo.row[j] + 1},{coo.col[j] + 1}\n" for j in rows))

    write("train.csv", train)
    write("test.csv", test)
    write("erase.csv", train, np.random.default_rng(1).choice(train.nnz, 5, replace=False))
    assert main(["fit", str(d / "train.csv"), "-o", str(d / "model.npz"), "--factors", "16",
                 "--iterations", "8", "--seed", "0", "--quiet"]) == 0
    assert main(["forget", str(d / "model.npz"), "--pairs", str(d / "erase.csv"), "-o",
                 str(d / "forgot.npz"), "--quiet"]) == 0
    return d


def audit_cli(capsys, d, *extra):
    from fastunlearn.cli import main

    capsys.readouterr()
    status = main(["audit", str(d / "forgot.npz"), "--test", str(d / "test.csv"),
                   "--forgotten", str(d / "erase.csv"), *extra])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out, err


def test_cli_audit_of_five_pairs_says_too_few_to_judge(cli_files, capsys):
    got = json.loads(audit_cli(capsys, cli_files, "--json")[0])["completeness"]
    assert got["verdict"] == "too few pairs to judge" and got["complete"] is None
    assert got["verdict_text"].startswith("too few pairs to judge (n = 5; ")
    for key in ("score_auc", "rank_auc"):
        low, high = got["intervals"][key]["forget"]
        assert low <= got["forget"][key] <= high
        assert got["readings"][key] == intervals.reading(*got["gaps"][key])
    text, _ = audit_cli(capsys, cli_files)
    lines = {key: value.strip() for key, value in
             (line.split(": ", 1) for line in text.splitlines() if ": " in line)}
    assert lines["complete"].startswith("too few pairs to judge (n = 5; ")
    assert lines["completeness pairs"].startswith("5 forgotten vs ")
    assert "[95% " in lines["completeness, rank attacker"]
    assert "forget more pairs at once" in lines["hint"]


def test_cli_audit_shows_progress_on_a_terminal_unless_told_not_to(cli_files, capsys,
                                                                    monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _, err = audit_cli(capsys, cli_files)
    assert "completeness retrains" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    _, err = audit_cli(capsys, cli_files, "--no-progress")
    assert "completeness retrains" not in err
