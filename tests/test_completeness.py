"""Completeness: after a default forget the forgotten pairs must look
never-seen, as after a retrain.

The test (docs/design.md, section 4): an attacker holding the model tries to
tell the forgotten pairs from held-out test pairs of the same users, by raw
score and by the pair's rank within its user's scores.  Its AUC must be
within max(0.01, the spread of three retrain seeds) of the seed-0 retrain's,
for both attackers, and nDCG@10 within 0.005.  Every setting also checks
that the forget without a washout fails the same test, so that passing it
means something.
"""
import numpy as np
import pytest

import fastunlearn as fu
from fastunlearn import audit
from fastunlearn.evaluation import ndcg_at_k, train_test_split
from fastunlearn.synthetic import make_implicit

# the setting of the issue that measured the trace: MovieLens 100K, 15 CG
# iterations, alpha 5
ML = dict(factors=32, alpha=5.0, regularization=0.05, iterations=15, use_cg=True,
          num_threads=2)


def assert_complete(result):
    gaps = result.completeness_gaps()
    assert result.is_complete(), gaps
    delta = result.utility["forget"]["ndcg"] - result.utility["retrain"]["ndcg"]
    assert abs(delta) <= 0.005, delta


@pytest.mark.parametrize("fraction, how", [(0.01, "random"), (0.05, "random"),
                                           (0.01, "core"), (0.05, "core"), (0.01, "edge")])
def test_default_forget_is_complete_on_movielens(movielens, fraction, how):
    default, plain = audit.reports(movielens, fraction=fraction, how=how, repeats=3,
                                   washouts=("auto", 0), **ML)
    assert default.efficiency["settled"] and default.efficiency["converged"]
    assert_complete(default)
    if how == "edge":
        # the least active users lose (nearly) their whole history and get
        # zero factors: without a washout too, nothing is left to tell apart
        return
    # without the washout the trace is there, and the test sees it
    assert not plain.is_complete()
    assert plain.completeness_gaps()["rank_auc"][0] > 0.01


def test_default_forget_is_complete_at_the_benchmarks_setting(movielens):
    """5 % core at factors 64, alpha 1 (bench/run.py forget's setting): the set
    that caught a washout without its local phase."""
    default, plain = audit.reports(movielens, fraction=0.05, how="core", repeats=3,
                                   washouts=("auto", 0), factors=64, alpha=1.0,
                                   regularization=0.05, iterations=15, num_threads=2)
    assert_complete(default)
    assert not plain.is_complete()


# the benchmarks' setting (bench/forget.py); there the washouts after the
# first start from a model the earlier ones converged, and the pairs they
# wash out keep a trace (docs/design.md, section 5: "Where the washout
# falls short")
BENCH = {**ML, "factors": 64, "alpha": 1.0}


@pytest.mark.parametrize("params", [
    ML, pytest.param(BENCH, marks=pytest.mark.xfail(
        strict=True, reason="washouts of a converged model leave a trace at factors 64"))],
    ids=["factors32-alpha5", "factors64-alpha1"])
def test_sequential_small_requests_are_complete_as_served(movielens, params):
    """200 requests of 3 random pairs, one call each: the model as served
    after the last one (some removals still pending) is complete."""
    train, test = train_test_split(movielens, 0.2, seed=0)
    original = fu.ImplicitALS(**params, random_state=0).fit(train, show_progress=False)
    coo = train.tocoo()
    pick = np.random.default_rng(0).choice(train.nnz, 600, replace=False)
    users, items = coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64)
    model = fu.ImplicitALS.from_factors(original.user_factors, original.item_factors, train,
                                        **params)
    washouts = 0
    for r in range(200):
        report = model.forget(users[3 * r:3 * r + 3], items[3 * r:3 * r + 3])
        assert report.converged
        washouts += report.washout > 0
        # the debt is bounded: never a request's worth past the limit
        assert report.pending_entries < fu.forgetting.pending_limit(model.user_items.nnz)
    assert 0 < washouts < 200
    assert model.pending["entries"] > 0  # served with some removals pending
    held = audit.held_out_pairs(test, users)
    served = audit.membership_inference(model, (users, items), held)
    retrains = [fu.ImplicitALS(**params, random_state=seed).fit(model.user_items,
                                                             show_progress=False)
                for seed in range(3)]
    mias = [audit.membership_inference(r, (users, items), held) for r in retrains]
    for attacker in ("score_auc", "rank_auc"):
        seeds = [getattr(m, attacker) for m in mias]
        allowed = max(0.01, max(seeds) - min(seeds))
        assert abs(getattr(served, attacker) - seeds[0]) <= allowed, (attacker, served, seeds)
    assert abs(ndcg_at_k(model, model.user_items, test)
               - ndcg_at_k(retrains[0], model.user_items, test)) <= 0.005


def test_default_forget_is_complete_on_synthetic_data():
    """Random 1 % of a 400k-entry synthetic set (the benchmark repeats this
    at 2M entries)."""
    R = make_implicit(20_000, 4_000, 400_000, seed=1)
    default, plain = audit.reports(R, fraction=0.01, how="random", repeats=3,
                                   washouts=("auto", 0), factors=32, alpha=1.0,
                                   regularization=0.05, iterations=15, num_threads=2)
    assert_complete(default)
    assert not plain.is_complete()


# The per-example attacker (audit.lira, 16 shadow models): the default forget
# of random 1 % is at parity under it; at 5 % the two relaxed sweeps leave a
# trace it sees (issue 31; bench/results/audit.md, "Likelihood-ratio
# attacker": three sweeps at relaxation 1.9 removed it in the prototype).
# Slow: 16 shadow fits and three retrains each (about 30 s on 2 idle cores).
@pytest.mark.slow
@pytest.mark.parametrize("fraction, params", [
    (0.01, ML),
    pytest.param(0.05, BENCH, marks=pytest.mark.xfail(
        strict=True, reason="the default washout leaves a trace at 5 % that the "
                            "likelihood-ratio attacker sees")),
], ids=["random1-factors32-alpha5", "random5-factors64-alpha1"])
def test_default_forget_is_complete_under_the_likelihood_ratio_attacker(
        movielens, fraction, params):
    default, = audit.reports(movielens, fraction=fraction, how="random", repeats=3,
                             shadows=16, **params)
    assert set(default.completeness_gaps()) == set(audit.ATTACKERS)
    # the original model is caught; what the forget leaves is judged against retrains
    assert default.completeness["original"]["lira_auc"] > 0.75
    assert_complete(default)
