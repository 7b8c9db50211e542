"""Completeness: after a default forget the forgotten pairs must look
never-seen, as after a retrain.

The test (docs/design.md, section 4): an attacker holding the model tries to
tell the forgotten pairs from held-out test pairs of the same users, by raw
score and by the pair's rank within its user's scores.  Its AUC must be
within max(0.01, the spread of three retrain seeds) of the seed-0 retrain's,
for both attackers, and nDCG@10 within max(0.005, their spread).  Every
setting also checks that the forget without a washout fails the same test,
so that passing it means something.
"""
import numpy as np
import pytest

import fastunlearn as fu
from fastunlearn import audit
from fastunlearn.evaluation import holdout_split, macro_ndcg_at_k, rmse
from fastunlearn.synthetic import make_implicit

# the setting of the issue that measured the trace: MovieLens 100K, 15 CG
# iterations, alpha 5
ML = dict(factors=32, alpha=5.0, regularization=0.05, iterations=15, use_cg=True,
          num_threads=2)


def assert_complete(result):
    gaps = result.completeness_gaps()
    assert result.is_complete(), gaps
    # nDCG@10 judged as the attackers are: within max(0.005, the retrain
    # seeds' spread) of the seed-0 retrain's
    delta = result.utility["forget"]["ndcg"] - result.utility["retrain"]["ndcg"]
    seeds = result.retrain_spread["ndcg"]
    assert abs(delta) <= max(0.005, max(seeds) - min(seeds)), (delta, seeds)


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


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="known gap: at factors 64, alpha 5 the washout's schedule "
                          "leaves a trace (docs/design.md, section 5; "
                          "bench/results/settings-lira.md)")
def test_default_forget_is_complete_at_factors64_alpha5(movielens):
    """A setting the washout was not tuned on.  Strict: once a washout
    passes here, the design's section and this mark must change with it."""
    default, = audit.reports(movielens, fraction=0.01, how="random", repeats=3,
                             washouts=("auto",), factors=64, alpha=5.0, regularization=0.05,
                             iterations=15, use_cg=True, num_threads=2)
    assert_complete(default)


# the benchmarks' setting (bench/forget.py); there, without a refit between
# them, the washouts after the first start from a model the earlier ones
# converged, and the pairs they wash out keep a trace (docs/design.md,
# section 5: "Where the washout falls short")
BENCH = {**ML, "factors": 64, "alpha": 1.0}


def sequence(movielens, params, n_requests=200, size=3):
    """The model, its split and its pairs after ``n_requests`` one-call
    requests of ``size`` random pairs each, served as the last one left it
    (some removals pending)."""
    train, test = holdout_split(movielens, 0.2, seed=0)
    original = fu.ImplicitALS(**params, random_state=0).fit(train, show_progress=False)
    coo = train.tocoo()
    pick = np.random.default_rng(0).choice(train.nnz, n_requests * size, replace=False)
    users, items = coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64)
    # the model keeps its fit's seed, as one fitted here does, and its refits
    # draw from it; a refit from seed 1000 instead is a retrain from another
    # seed, and lands as far from the seed-0 one as those do (LiRA +0.016
    # settled at factors 32, past the 0.01 allowed; docs/design.md, section 5)
    model = fu.ImplicitALS.from_factors(original.user_factors, original.item_factors, train,
                                        **params, random_state=0)
    washouts = refits = 0
    for r in range(n_requests):
        report = model.forget(users[size * r:size * (r + 1)], items[size * r:size * (r + 1)])
        assert report.converged
        washouts += report.washout > 0
        refits += report.refit
        # the debt is bounded: never a request's worth past the limit
        assert report.pending_entries < fu.forgetting.pending_limit(model.user_items.nnz)
    assert 0 < washouts < n_requests
    # a refit after every RELAXED_BETWEEN_FITS relaxed washouts
    assert refits == washouts // (fu.forgetting.RELAXED_BETWEEN_FITS + 1)
    assert model.pending["entries"] > 0  # served with some removals pending
    return model, train, test, (users, items)


@pytest.mark.parametrize("params", [ML, BENCH], ids=["factors32-alpha5", "factors64-alpha1"])
def test_sequential_small_requests_are_complete_as_served(movielens, params):
    """200 requests of 3 random pairs, one call each: the model as served
    after the last one (some removals still pending) is complete."""
    model, train, test, (users, items) = sequence(movielens, params)
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
    assert abs(macro_ndcg_at_k(model, model.user_items, test)
               - macro_ndcg_at_k(retrains[0], model.user_items, test)) <= 0.005


# The per-example attacker on the same sequence, settled: the settle is the
# eighth washout and, by the count, a refit.  Without the count (relaxed
# washouts only) the settled model kept LiRA +0.020 and offline +0.023 at
# factors 64 on this split (docs/design.md, section 5).  Slow: 16 shadow fits.
@pytest.mark.slow
@pytest.mark.parametrize("params", [ML, BENCH], ids=["factors32-alpha5", "factors64-alpha1"])
def test_sequential_small_requests_are_complete_settled_under_every_attacker(
        movielens, params):
    model, train, test, pairs = sequence(movielens, params)
    held = audit.held_out_pairs(test, pairs[0])
    attack = audit.fit_shadows(model, _with_values(train, pairs), _with_values(test, held),
                               shadows=16, seed=0).attack

    def measure(fitted):
        found = audit.membership_inference(fitted, pairs, held).to_dict()
        lira = attack(fitted)
        return {**found, "lira_auc": lira.lira_auc, "lira_offline_auc": lira.lira_offline_auc}

    model.settle()
    retrains = [fu.ImplicitALS(**params, random_state=seed).fit(model.user_items,
                                                             show_progress=False)
                for seed in range(3)]
    found = audit.gaps(measure(model), [measure(r) for r in retrains])
    assert set(found) == set(audit.ATTACKERS) and audit.within(found), found


def test_default_forget_is_complete_on_synthetic_data():
    """Random 1 % of a 400k-entry synthetic set (the benchmark repeats this
    at 2M entries)."""
    R = make_implicit(20_000, 4_000, 400_000, seed=1)
    default, plain = audit.reports(R, fraction=0.01, how="random", repeats=3,
                                   washouts=("auto", 0), factors=32, alpha=1.0,
                                   regularization=0.05, iterations=15, num_threads=2)
    assert_complete(default)
    assert not plain.is_complete()


# ---------------------------------------------------------------------------
# settle(): what small requests leave pending is washed out on demand, and
# the command line never saves a model with removals pending.  Each test
# first shows the pending model failing the completeness test, so that
# passing it after settle() is the washout's doing.
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def movielens_split():
    """(train, test, model fitted on train at ML) for the settle tests."""
    from conftest import MOVIELENS

    if not MOVIELENS.exists():
        pytest.skip(f"MovieLens 100K not found at {MOVIELENS}")
    import scipy.sparse as sp

    raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    ratings = sp.csr_matrix((raw[:, 2].astype(np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)))
    train, test = holdout_split(ratings, 0.2, seed=0)
    return train, test, fu.ImplicitALS(**ML, random_state=0).fit(train, show_progress=False)


def _copy(model):
    return fu.ImplicitALS.from_factors(model.user_factors, model.item_factors,
                                       model.user_items, **ML)


@pytest.mark.parametrize("how", ["random", "core"])
def test_settle_washes_out_what_small_requests_left_pending(movielens_split, how):
    train, test, original = movielens_split
    users, items = audit.unlearning_set(train, 0.01, how, 0)
    model = _copy(original)
    # 40 requests of 20 pairs, each under the pending limit: no washout runs
    limit = len(users) + 1
    for part in np.array_split(np.random.default_rng(1).permutation(len(users)), 40):
        report = model.forget(users[part], items[part], pending_limit=limit)
        assert report.washout == 0 and not report.settled
    assert model.pending == {"entries": len(users), "requests": 40}
    pending = audit.completeness(model, (users, items), test)
    assert not pending.complete, pending.gaps  # the trace settle() must remove

    settled = model.settle()
    after = audit.completeness(model, (users, items), test)
    assert after.complete, after.gaps
    assert model.pending == {"entries": 0, "requests": 0}
    assert settled.entries == len(users) and settled.requests == 40
    assert settled.converged and settled.rows_solved_by_phase["washout"] > 0
    # a second settle() has nothing left to do and changes nothing
    factors = model.user_factors.copy()
    again = model.settle()
    assert again.entries == 0 and again.rows_solved == 0
    np.testing.assert_array_equal(model.user_factors, factors)


def test_the_command_line_saves_a_settled_complete_model(movielens_split, tmp_path):
    """``fastunlearn forget --washout 0`` defers the washout in the request;
    the file it writes has nothing pending and passes the completeness test."""
    from test_cli import ok, run

    train, test, original = movielens_split
    users, items = audit.unlearning_set(train, 0.01, "random", 0)
    original.save(tmp_path / "model.npz")  # no id maps: external ids are the indices
    lines = ["user,item"] + [f"{u},{i}" for u, i in zip(users, items)]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")

    # the same request in the library, pending, fails the test
    pending = _copy(original)
    assert not pending.forget(users, items, washout=0).settled
    assert not audit.completeness(pending, (users, items), test).complete

    ok(run(tmp_path, "forget", "model.npz", "--pairs", "pairs.csv", "--washout", "0",
           "-o", "out.npz", "--quiet"))
    saved = fu.load(tmp_path / "out.npz")
    assert saved.pending == {"entries": 0, "requests": 0}
    assert saved.user_items.nnz == train.nnz - len(users)
    assert not saved.user_items[users, items].any()
    assert saved.metadata["history"][-1]["event"] == "settle"
    result = audit.completeness(saved, (users, items), test)
    assert result.complete, result.gaps


# Plain (unweighted) ExplicitALS at regularization 5: the setting of the
# outside check of issue 27, at the ML settings' factors and solver.  Its
# test RMSE rises with every sweep past the fit's 15 (1.0356 at 15, 1.0392 at
# 20, 1.0454 at 60), and the washout moves the model about seven
# iterations further along than a retrain gets (docs/design.md, section 5:
# "Explicit ratings and the washout").
EXPLICIT = dict(factors=32, regularization=5.0, weighted_regularization=False, iterations=15,
                use_cg=True, num_threads=2)
# ALS-WR at the regularization where it fits (at 5 it fits zero factors)
ALS_WR = dict(regularization=0.1, weighted_regularization=True)
# (changes to EXPLICIT, fraction, how, sets): the three random 5 %
# sets; 1 % core at factors 64, where one relaxed sweep instead of two
# leaves a trace (rank AUC gap -0.014, allowed 0.01); ALS-WR on random 5 %
# sets 1 and 2, where two sweeps at 1.7 left a LiRA trace (+0.011 on set 1)
# that ALS-WR's washout from 2 % (two at 1.8) removes
# (bench/results/parity-rate.md)
EXPLICIT_SETS = {"random5": ({}, 0.05, "random", (0, 1, 2)),
                 "core1-f64": ({"factors": 64}, 0.01, "core", (0,)),
                 "random5-alswr": (ALS_WR, 0.05, "random", (1, 2))}
_EXPLICIT_CASES = {}


def explicit_forgets(movielens, name):
    """For the unlearning sets ``EXPLICIT_SETS[name]`` of the 80/20 split's
    training part: the default forget from one seed-0 fit, three retrains
    (seeds 0-2), the forgotten pairs, their users' held-out pairs and the
    test data.  Computed once per session (the tests below share it)."""
    if name not in _EXPLICIT_CASES:
        changes, fraction, how, sets = EXPLICIT_SETS[name]
        params = {**EXPLICIT, **changes}
        train, test = holdout_split(movielens, 0.2, seed=0)
        original = fu.ExplicitALS(**params, random_state=0).fit(train, show_progress=False)
        cases = []
        for s in sets:
            pairs = audit.unlearning_set(train, fraction, how, s)
            # the original's seed, which a plain model's washout refits from
            model = fu.ExplicitALS.from_factors(original.user_factors, original.item_factors,
                                                train, random_state=0, **params)
            report = model.forget(*pairs)
            assert report.washout > 0 and report.converged
            assert report.refit == (not params["weighted_regularization"])
            retrains = [fu.ExplicitALS(**params, random_state=seed).fit(
                model.user_items, show_progress=False) for seed in range(3)]
            cases.append((model, retrains, pairs, audit.held_out_pairs(test, pairs[0]), test))
        _EXPLICIT_CASES[name] = cases
    return _EXPLICIT_CASES[name]


@pytest.mark.parametrize("name", sorted(EXPLICIT_SETS))
def test_default_forget_of_explicit_ratings_is_complete(movielens, name):
    """Both attackers within max(0.01, the retrains' spread) of the seed-0
    retrain on each set."""
    for s, (model, retrains, pairs, held, _) in enumerate(explicit_forgets(movielens, name)):
        forget = audit.membership_inference(model, pairs, held).to_dict()
        found = audit.gaps(forget, [audit.membership_inference(r, pairs, held).to_dict()
                                    for r in retrains])
        assert audit.within(found), (s, found)


@pytest.mark.parametrize("name", ["random5", "random5-alswr"])
def test_default_forget_of_explicit_ratings_keeps_the_retrains_rmse(movielens, name):
    """Test RMSE of the forget within max(0.005, the retrains' spread) of the
    seed-0 retrain's on each random 5 % set (as nDCG@10 is held above).
    Plain ExplicitALS failed it with a relaxed washout (+0.0089 at a spread
    of 0.0058, +0.0078 at 0.0042) and washes out by refitting."""
    for s, (model, retrains, _, _, test) in enumerate(explicit_forgets(movielens, name)):
        seeds = [rmse(r, test) for r in retrains]
        allowed = max(0.005, max(seeds) - min(seeds))
        assert abs(rmse(model, test) - seeds[0]) <= allowed, (s, rmse(model, test), seeds)


# The per-example attacker (audit.lira, 16 shadow models): the default forget
# of random 1 % and of random 5 % is at parity under it; at 5 % two relaxed
# sweeps at 1.7 left a trace it sees, which is why a washout of 2 % or more
# runs three at 1.9 (forgetting.options.washout_for; bench/results/audit.md,
# "Likelihood-ratio attacker"), and at 1 % with factors 64 too (offline
# +0.012 on this set), which is why the smaller washouts relax by 1.8.
# Slow: 16 shadow fits and three retrains each (2-3 s on 2 idle cores).
@pytest.mark.slow
@pytest.mark.parametrize("fraction, params", [
    (0.01, ML),
    (0.01, BENCH),
    (0.05, BENCH),
], ids=["random1-factors32-alpha5", "random1-factors64-alpha1", "random5-factors64-alpha1"])
def test_default_forget_is_complete_under_the_likelihood_ratio_attacker(
        movielens, fraction, params):
    default, = audit.reports(movielens, fraction=fraction, how="random", repeats=3,
                             shadows=16, **params)
    assert set(default.completeness_gaps()) == set(audit.ATTACKERS)
    # the original model is caught; what the forget leaves is judged against retrains
    assert default.completeness["original"]["lira_auc"] > 0.75
    assert_complete(default)
    # and by issue 31's criterion, without the pairs' sampling gap
    for key in ("lira_auc", "lira_offline_auc"):
        seeds = default.retrain_spread[key]
        gap = default.completeness["forget"][key] - seeds[0]
        assert abs(gap) <= max(0.01, max(seeds) - min(seeds)), (key, gap, seeds)


def _with_values(matrix, pairs):
    """``pairs`` as a sparse matrix holding their values in ``matrix``."""
    import scipy.sparse as sp

    return sp.csr_matrix((np.asarray(matrix[pairs]).ravel(), pairs), shape=matrix.shape)


# Issue 31 item 3: the per-example attacker on predicted ratings.  A relaxed
# washout of plain ExplicitALS kept a trace it sees on every random 5 % set
# (LiRA +0.008 to +0.015, offline +0.011 to +0.020, above every retrain
# seed), and those strong enough to remove it raised the test RMSE by
# 0.011-0.014 (bench/results/explicit-washout.md): its washout refits
# (docs/design.md, section 5: "Explicit ratings and the washout").  ALS-WR
# is at parity with its relaxed washout.  Slow: 16 shadow fits per set.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["random5", "random5-alswr"])
def test_default_forget_of_explicit_ratings_is_complete_under_the_likelihood_ratio_attacker(
        movielens, name):
    train, test = holdout_split(movielens, 0.2, seed=0)
    seeds = EXPLICIT_SETS[name][3]
    for seed, (model, retrains, pairs, held, _) in zip(seeds, explicit_forgets(movielens, name)):
        # the forget's data lacks the forgotten ratings: the shadows take them from train
        attack = audit.fit_shadows(model, _with_values(train, pairs), _with_values(test, held),
                                   shadows=16, seed=seed).attack

        def measure(fitted):
            lira = attack(fitted)
            return {"lira_auc": lira.lira_auc, "lira_offline_auc": lira.lira_offline_auc}

        found = audit.gaps(measure(model), [measure(r) for r in retrains])
        assert audit.within(found), (seed, found)
