"""Tests for fastunlearn/evaluation.py: the split, ranking metrics against a
brute-force NumPy computation, rating errors, and MovieLens 100K."""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import fastunlearn
from conftest import MOVIELENS as ML100K
from conftest import MOVIELENS_MISSING, examples
from fastunlearn import evaluation as ev
from reference import topk

METRICS = ("precision", "recall", "ndcg", "hit_rate", "auc")


# ----------------------------------------------------------------------------
# brute force (per-user loops, dense scores)
# ----------------------------------------------------------------------------
def _rows(matrix):
    m = sp.csr_matrix(matrix)
    m.sum_duplicates()
    return [set(m.indices[m.indptr[u]:m.indptr[u + 1]].tolist()) for u in range(m.shape[0])]


def brute_force(X, Y, train, test, k, users=None):
    """Per-user metrics from dense scores, ``argsort`` and Python loops."""
    S = np.asarray(X, np.float64) @ np.asarray(Y, np.float64).T
    n_users, n_items = S.shape
    train_rows, test_rows = _rows(train), _rows(test)
    out = {name: [] for name in METRICS + ("users", "n_test", "n_train")}
    candidates_users = range(n_users) if users is None else sorted(set(users))
    for u in candidates_users:
        relevant = test_rows[u] - train_rows[u]
        if not relevant:
            continue
        exclude = np.zeros((1, n_items), dtype=bool)
        exclude[0, list(train_rows[u])] = True
        ids = [i for i in topk(S[u:u + 1], k, exclude)[0][0].tolist() if i >= 0]
        hits = [i in relevant for i in ids]
        h = sum(hits)
        dcg = sum(1.0 / math.log2(r + 2) for r, hit in enumerate(hits) if hit)
        idcg = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        negatives = [i for i in range(n_items) if i not in train_rows[u] and i not in test_rows[u]]
        if negatives:
            pairs = [(S[u, p] > S[u, n]) + 0.5 * (S[u, p] == S[u, n])
                     for p in relevant for n in negatives]
            a = sum(pairs) / len(pairs)
        else:
            a = float("nan")
        out["users"].append(u)
        out["precision"].append(h / k)
        out["recall"].append(h / min(k, len(relevant)))
        out["ndcg"].append(dcg / idcg)
        out["hit_rate"].append(float(h > 0))
        out["auc"].append(a)
        out["n_test"].append(len(relevant))
        out["n_train"].append(len(train_rows[u]))
    return {key: np.array(v, dtype=np.int64 if key in ("users", "n_test", "n_train")
                          else np.float64) for key, v in out.items()}


def brute_means(per_user):
    out = {}
    for name in METRICS:
        v = per_user[name]
        v = v[~np.isnan(v)]
        out[name] = float(v.mean()) if len(v) else float("nan")
    out["n_users"] = len(per_user["users"])
    return out


# ----------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------
def random_interactions(seed, n_users=40, n_items=30, density=0.25):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[0, :] = True                         # heavy users: few candidates left
    mask[1, :28] = True
    mask[2, :] = False                        # no history at all
    mask[3, :] = False
    mask[3, :3] = True                        # too little history to be split
    values = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float64)
    rows, cols = np.nonzero(mask)
    return sp.csr_matrix((values[rows, cols], (rows, cols)), shape=(n_users, n_items))


@pytest.fixture(scope="module")
def fitted():
    R = random_interactions(0)
    train, test = ev.holdout_split(R, 0.3, min_interactions=4, seed=1)
    model = fastunlearn.ImplicitALS(factors=4, iterations=5, random_state=0, use_cg=False,
                                    dtype=np.float64, num_threads=2)
    model.fit(train, show_progress=False)
    return model, train, test


def assert_per_user_equal(got, want):
    np.testing.assert_array_equal(got["users"], want["users"])
    np.testing.assert_array_equal(got["n_test"], want["n_test"])
    np.testing.assert_array_equal(got["n_train"], want["n_train"])
    for name in METRICS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12,
                                   err_msg=name, equal_nan=True)


# ----------------------------------------------------------------------------
# ranking metrics vs brute force
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 10, 30, 50])
def test_metrics_match_brute_force(fitted, k):
    model, train, test = fitted
    want = brute_force(model.user_factors, model.item_factors, train, test, k)
    # the fixture covers the cases that matter
    counts = np.diff(train.indptr)
    assert np.any(np.diff(test.indptr) == 0)                     # users lacking test items
    assert len(want["users"]) < train.shape[0]
    assert np.any(train.shape[1] - counts[want["users"]] < 10)   # fewer than k candidates
    got = ev.per_user_metrics(model, train, test, k)
    assert_per_user_equal(got, want)
    summary = ev.ranking_metrics(model, train, test, k)
    means = brute_means(want)
    assert summary["n_users"] == means["n_users"]
    for name in METRICS:
        assert summary[name] == pytest.approx(means[name], rel=1e-12, abs=1e-12)
    assert ev.macro_precision_at_k(model, train, test, k) == pytest.approx(means["precision"], abs=1e-12)
    assert ev.macro_recall_at_k(model, train, test, k) == pytest.approx(means["recall"], abs=1e-12)
    assert ev.macro_ndcg_at_k(model, train, test, k) == pytest.approx(means["ndcg"], abs=1e-12)
    assert ev.macro_hit_rate_at_k(model, train, test, k) == pytest.approx(means["hit_rate"], abs=1e-12)
    assert ev.macro_auc(model, train, test) == pytest.approx(means["auc"], abs=1e-12)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 4096])
def test_batching_does_not_change_results(fitted, batch_size, monkeypatch):
    model, train, test = fitted
    want = ev.per_user_metrics(model, train, test, 5)
    monkeypatch.setattr(ev, "_SCORE_BLOCK_ENTRIES", 2 * train.shape[1])  # AUC in blocks of 2
    got = ev.per_user_metrics(model, train, test, 5, batch_size=batch_size)
    assert_per_user_equal(got, want)


def test_users_subset(fitted):
    model, train, test = fitted
    users = [5, 2, 5, 39, 17, 3, 0]
    want = brute_force(model.user_factors, model.item_factors, train, test, 4, users=users)
    got = ev.per_user_metrics(model, train, test, 4, users=np.array(users))
    assert_per_user_equal(got, want)
    assert ev.ranking_metrics(model, train, test, 4, users=users)["n_users"] == len(want["users"])


def test_float32_model_agrees_with_brute_force():
    R = random_interactions(3)
    train, test = ev.holdout_split(R, seed=4)
    model = fastunlearn.ImplicitALS(factors=4, iterations=5, random_state=0, use_cg=False)
    model.fit(train, show_progress=False)
    assert model.user_factors.dtype == np.float32
    want = brute_force(model.user_factors, model.item_factors, train, test, 10)
    got = ev.per_user_metrics(model, train, test, 10)
    np.testing.assert_array_equal(got["users"], want["users"])
    for name in METRICS:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)


def test_test_items_also_in_train_are_ignored():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((12, 3))
    train = sp.random(6, 12, density=0.3, random_state=1, format="csr")
    test = sp.random(6, 12, density=0.3, random_state=2, format="csr")  # overlaps train
    assert train.multiply(test).nnz > 0
    model = fastunlearn.ImplicitALS.from_factors(X, Y, train, dtype=np.float64)
    want = brute_force(X, Y, train, test, 5)
    assert_per_user_equal(ev.per_user_metrics(model, train, test, 5), want)


def test_auc_with_tied_scores():
    # integer factors: many exact ties, handled as half a concordant pair
    rng = np.random.default_rng(7)
    X = rng.integers(0, 3, size=(15, 2)).astype(np.float64)
    Y = rng.integers(0, 3, size=(20, 2)).astype(np.float64)
    R = sp.random(15, 20, density=0.4, random_state=3, format="csr")
    train, test = ev.holdout_split(R, 0.4, min_interactions=2, seed=0)
    model = fastunlearn.ImplicitALS.from_factors(X, Y, train)
    want = brute_force(X, Y, train, test, 5)
    got = ev.per_user_metrics(model, train, test, 5)
    np.testing.assert_allclose(got["auc"], want["auc"], atol=1e-12, equal_nan=True)
    assert ev.macro_auc(model, train, test) == pytest.approx(brute_means(want)["auc"], abs=1e-12)


def test_hand_computed_case():
    # one user, scores 5, 4, 3, 2, 1 for items 0..4; item 0 in train,
    # items 2 and 4 in test.  Ranking over items 1..4: [1, 2, 3, 4].
    X = np.array([[1.0]])
    Y = np.array([[5.0], [4.0], [3.0], [2.0], [1.0]])
    train = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 5))
    test = sp.csr_matrix(([1.0, 1.0], ([0, 0], [2, 4])), shape=(1, 5))
    model = fastunlearn.ImplicitALS.from_factors(X, Y, train)
    res = ev.ranking_metrics(model, train, test, k=3)
    # top 3 = [1, 2, 3]: one hit, at 0-based rank 1
    ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # IDCG of min(3, 2) hits
    assert res["n_users"] == 1
    assert res["precision"] == pytest.approx(1 / 3)
    assert res["recall"] == pytest.approx(1 / 2)
    assert res["ndcg"] == pytest.approx(ndcg)
    assert res["ndcg"] == pytest.approx(0.3868528072)
    assert res["hit_rate"] == 1.0
    # positives {2: 3, 4: 1} vs negatives {1: 4, 3: 2}: only 2 > 3 wins
    assert res["auc"] == pytest.approx(0.25)
    # k = 1: top 1 = [1], a miss
    res1 = ev.ranking_metrics(model, train, test, k=1)
    assert (res1["precision"], res1["recall"], res1["ndcg"], res1["hit_rate"]) == (0, 0, 0, 0)
    # k = 10 > candidates: all 4 candidates listed, both test items hit
    res10 = ev.ranking_metrics(model, train, test, k=10)
    assert res10["precision"] == pytest.approx(2 / 10)
    assert res10["recall"] == 1.0
    assert res10["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5))
                                          / (1 + 1 / math.log2(3)))
    # no negatives left: AUC undefined
    full = sp.csr_matrix(np.array([[0, 1, 1, 1, 1]], dtype=float))
    assert math.isnan(ev.macro_auc(model, train, full))


def test_no_evaluable_user_gives_nan():
    X, Y = np.ones((3, 2)), np.ones((4, 2))
    train = sp.csr_matrix((3, 4))
    model = fastunlearn.ImplicitALS.from_factors(X, Y, train)
    res = ev.ranking_metrics(model, train, sp.csr_matrix((3, 4)))
    assert res["n_users"] == 0
    assert all(math.isnan(res[name]) for name in METRICS)
    per_user = ev.per_user_metrics(model, train, sp.csr_matrix((3, 4)))
    assert all(len(v) == 0 for v in per_user.values())


def test_ranking_validation(fitted):
    model, train, test = fitted
    with pytest.raises(ValueError, match="k must be >= 1"):
        ev.ranking_metrics(model, train, test, k=0)
    with pytest.raises(ValueError, match="shape"):
        ev.ranking_metrics(model, train[:, :-1], test)
    with pytest.raises(ValueError, match="shape"):
        ev.macro_precision_at_k(model, train, test[:-1])
    with pytest.raises(TypeError, match="scipy.sparse"):
        ev.macro_recall_at_k(model, train, test.toarray())
    with pytest.raises(ValueError, match="batch_size"):
        ev.ranking_metrics(model, train, test, batch_size=0)
    with pytest.raises(IndexError):
        ev.ranking_metrics(model, train, test, users=[train.shape[0]])
    with pytest.raises(fastunlearn.NotFittedError):
        ev.macro_ndcg_at_k(fastunlearn.ImplicitALS(), train, test)
    with pytest.raises(TypeError, match="unexpected"):
        ev.macro_auc(model, train, test, k=3)


# ----------------------------------------------------------------------------
# split
# ----------------------------------------------------------------------------
def _check_split(R, train, test, fraction, min_interactions):
    R = sp.csr_matrix(R, copy=True)
    R.sum_duplicates()
    for m in (train, test):
        assert sp.isspmatrix_csr(m) or isinstance(m, sp.csr_matrix)
        assert m.shape == R.shape
        assert m.dtype == R.dtype
        assert m.has_canonical_format
        for u in range(m.shape[0]):
            row = m.indices[m.indptr[u]:m.indptr[u + 1]]
            assert np.all(np.diff(row) > 0)
    # exact partition of the stored entries, values preserved
    assert train.nnz + test.nnz == R.nnz
    rows = [np.repeat(np.arange(R.shape[0]), np.diff(m.indptr)) for m in (train, test)]
    both = sp.csr_matrix((np.concatenate([train.data, test.data]),
                          (np.concatenate(rows), np.concatenate([train.indices, test.indices]))),
                         shape=R.shape)
    assert both.nnz == R.nnz  # no pair stored twice before summing
    both.sum_duplicates()
    assert both.nnz == R.nnz  # disjoint
    np.testing.assert_array_equal(both.indptr, R.indptr)
    np.testing.assert_array_equal(both.indices, R.indices)
    np.testing.assert_array_equal(both.data, R.data)
    # per-user counts
    n = np.diff(R.indptr)
    n_test = np.diff(test.indptr)
    for u in range(R.shape[0]):
        if n[u] < min_interactions:
            assert n_test[u] == 0
        else:
            expected = min(max(1, math.floor(fraction * n[u] + 0.5)), n[u] - 1)
            assert n_test[u] == expected
            assert n_test[u] >= 1 and n[u] - n_test[u] >= 1


def test_split_properties():
    R = random_interactions(11, n_users=60, n_items=50, density=0.3)
    train, test = ev.holdout_split(R, 0.2, seed=3)
    _check_split(R, train, test, 0.2, 5)
    # small users stay whole in train
    assert test[3].nnz == 0 and train[3].nnz == 3
    # and the realised fraction is close to the requested one
    assert test.nnz / R.nnz == pytest.approx(0.2, abs=0.02)


def test_split_seeded():
    R = random_interactions(12, n_users=50, n_items=40, density=0.4)
    a_train, a_test = ev.holdout_split(R, seed=7)
    b_train, b_test = ev.holdout_split(R, seed=7)
    c_train, c_test = ev.holdout_split(R, seed=8)
    assert (a_train != b_train).nnz == 0 and (a_test != b_test).nnz == 0
    assert (a_test != c_test).nnz > 0
    g_train, g_test = ev.holdout_split(R, seed=np.random.default_rng(7))
    assert (a_test != g_test).nnz == 0


def test_split_is_random_within_rows():
    # every entry of a row goes to test at about the requested rate
    R = sp.csr_matrix(np.ones((1, 10)))
    hits = np.zeros(10)
    for seed in range(400):
        _, test = ev.holdout_split(R, 0.2, seed=seed)
        hits[test.indices] += 1
    assert hits.sum() == 800
    assert np.all(np.abs(hits / 400 - 0.2) < 0.08)


def test_split_keeps_dtype_and_explicit_zeros():
    R = sp.coo_matrix((np.array([0, 2, 3, 4, 5, 6, 7, 1], dtype=np.int32),
                       (np.zeros(8, int), np.array([0, 1, 2, 3, 4, 5, 6, 1]))), shape=(2, 9))
    train, test = ev.holdout_split(R, 0.5, min_interactions=2, seed=0)
    assert train.dtype == np.int32 and test.dtype == np.int32
    _check_split(R, train, test, 0.5, 2)
    assert train.nnz + test.nnz == 7  # duplicate (0, 1) summed, stored zero kept
    assert (train + test)[0, 1] == 3


@examples(40)
@given(n_users=st.integers(1, 12), n_items=st.integers(1, 12),
       density=st.floats(0.0, 1.0), fraction=st.floats(0.01, 0.99),
       min_interactions=st.integers(2, 8), seed=st.integers(0, 2**32 - 1))
def test_split_property_based(n_users, n_items, density, fraction, min_interactions, seed):
    R = sp.random(n_users, n_items, density=density, random_state=seed % 1000, format="csr",
                  dtype=np.float32)
    train, test = ev.holdout_split(R, fraction, min_interactions=min_interactions, seed=seed)
    _check_split(R, train, test, fraction, min_interactions)


def test_split_validation():
    R = sp.csr_matrix(np.ones((2, 6)))
    for bad in (0, 1, 1.5, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="test_fraction"):
            ev.holdout_split(R, bad)
    with pytest.raises(ValueError, match="min_interactions"):
        ev.holdout_split(R, min_interactions=1)
    with pytest.raises(TypeError, match="scipy.sparse"):
        ev.holdout_split(np.ones((2, 6)))


# ----------------------------------------------------------------------------
# rating errors
# ----------------------------------------------------------------------------
def test_rmse_mae_match_numpy():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 25
    mask = rng.random((n_users, n_items)) < 0.4
    rows, cols = np.nonzero(mask)
    ratings = sp.csr_matrix((rng.integers(1, 6, len(rows)).astype(np.float64), (rows, cols)),
                            shape=(n_users, n_items))
    train, test = ev.holdout_split(ratings, seed=0)
    model = fastunlearn.ExplicitALS(factors=3, iterations=5, random_state=0)
    model.fit(train, show_progress=False)
    dense = model.user_factors.astype(np.float64) @ model.item_factors.astype(np.float64).T
    t = test.tocoo()
    err = dense[t.row, t.col] - t.data
    assert ev.rmse(model, test) == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-5)
    assert ev.mae(model, test) == pytest.approx(np.mean(np.abs(err)), rel=1e-5)
    # a perfect model
    X, Y = rng.standard_normal((4, 2)), rng.standard_normal((5, 2))
    exact = sp.csr_matrix(np.where(rng.random((4, 5)) < 0.5, X @ Y.T, 0))
    perfect = fastunlearn.ExplicitALS.from_factors(X, Y, exact, dtype=np.float64)
    assert ev.rmse(perfect, exact) == pytest.approx(0, abs=1e-12)
    assert ev.mae(perfect, exact) == pytest.approx(0, abs=1e-12)


def test_rmse_validation():
    model = fastunlearn.ExplicitALS.from_factors(np.ones((3, 2)), np.ones((4, 2)),
                                                 sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="no stored entries"):
        ev.rmse(model, sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        ev.mae(model, sp.csr_matrix((3, 5)))
    with pytest.raises(fastunlearn.NotFittedError):
        ev.rmse(fastunlearn.ExplicitALS(), sp.csr_matrix((3, 4)))


# ----------------------------------------------------------------------------
# MovieLens 100K
# ----------------------------------------------------------------------------
@pytest.mark.skipif(not ML100K.exists(), reason=f"{MOVIELENS_MISSING} {ML100K}")
def test_movielens_als_beats_popularity():
    d = np.loadtxt(ML100K, dtype=np.int64, delimiter="\t")
    R = sp.csr_matrix((np.ones(len(d), np.float32), (d[:, 0] - 1, d[:, 1] - 1)))
    train, test = ev.holdout_split(R, 0.2, seed=0)
    _check_split(R, train, test, 0.2, 5)
    assert train.nnz + test.nnz == R.nnz == 100_000

    als = fastunlearn.ImplicitALS(factors=32, iterations=10, regularization=0.05,
                                  random_state=0)
    als.fit(train, show_progress=False)
    popularity = np.asarray((train != 0).sum(axis=0)).ravel().astype(np.float64)
    baseline = fastunlearn.ImplicitALS.from_factors(np.ones((R.shape[0], 1)),
                                                    popularity[:, None], train)

    m_als = ev.ranking_metrics(als, train, test, k=10)
    m_pop = ev.ranking_metrics(baseline, train, test, k=10)
    assert m_als["n_users"] == m_pop["n_users"] == R.shape[0]
    assert m_pop["recall"] > 0.1  # the baseline is a real baseline
    assert m_als["recall"] > 1.5 * m_pop["recall"]
    assert m_als["ndcg"] > 1.5 * m_pop["ndcg"]
    assert m_als["auc"] > m_pop["auc"] > 0.5

    # spot-check the compiled path against brute force on a few users
    users = np.arange(0, R.shape[0], 97)
    want = brute_force(als.user_factors, als.item_factors, train, test, 10, users=users)
    got = ev.per_user_metrics(als, train, test, 10, users=users)
    np.testing.assert_array_equal(got["users"], want["users"])
    for name in METRICS:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
