"""Tests for fastunlearn.ann: approximate serving that forgets with the model.

Recall is measured against the model's exact ranking (tie-aware: a returned
id counts when its exact score reaches the exact list's last one), at the
settings docs/ann.md recommends for each size.  The forgetting tests sweep
every query after each request and check the index against the model row
by row.
"""
import io
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from fastunlearn.synthetic import make_implicit

faiss = pytest.importorskip("faiss")
hnswlib = pytest.importorskip("hnswlib")

from fastunlearn.ann import FaissModel, HNSWModel  # noqa: E402

from conftest import MOVIELENS  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    # a shared 2-core machine: faiss's thread team costs more than it saves
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def _fit(R, factors=32, iterations=8):
    return fu.AlternatingLeastSquares(factors=factors, iterations=iterations, random_state=0,
                                      regularization=0.05).fit(R, show_progress=False)


@pytest.fixture(scope="module")
def movielens_model():
    if not MOVIELENS.exists():
        pytest.skip(f"MovieLens 100K not found at {MOVIELENS}")
    raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    R = sp.csr_matrix((np.ones(len(raw), np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)))
    return _fit(R)


@pytest.fixture(scope="module")
def synthetic_model():
    return _fit(make_implicit(3_000, 2_000, 60_000, seed=0))


# the settings docs/ann.md recommends for these sizes (1,682 and 2,000 items)
SETTINGS = {
    "faiss": (FaissModel, {"nlist": 40, "nprobe": 24}),  # ~ sqrt(items), 60 % probed
    "hnsw": (HNSWModel, {"M": 16, "ef_construction": 200, "ef": 100}),
}


def tie_aware_recall(approx, exact_scores, k):
    """Mean over queries of the share of ``approx`` ids whose exact score
    reaches the exact k-th best (NaN scores: not a candidate)."""
    kth = -np.sort(-np.nan_to_num(exact_scores, nan=-np.inf), axis=1)[:, k - 1]
    got = np.take_along_axis(exact_scores, np.maximum(approx, 0), axis=1)
    ok = (approx >= 0) & (got >= kth[:, None] - 1e-5 * np.abs(kth[:, None]))
    return ok.sum(axis=1).mean() / k


@pytest.mark.parametrize("backend", sorted(SETTINGS))
@pytest.mark.parametrize("data", ["movielens", "synthetic"])
def test_recall_at_10_against_exact(backend, data, request):
    model = request.getfixturevalue(f"{data}_model")
    cls, params = SETTINGS[backend]
    wrapper = cls(model, **params).rebuild()
    R = model.user_items
    users = np.arange(R.shape[0])[:1000]
    ids, scores = wrapper.recommend(users, R[users], N=10)
    exact = model.user_factors[users].astype(np.float64) @ model.item_factors.T
    liked = R[users].toarray() > 0
    exact[liked] = np.nan
    assert tie_aware_recall(ids, exact, 10) >= 0.95
    assert not np.take_along_axis(liked, np.maximum(ids, 0), axis=1)[ids >= 0].any()
    # the scores are the model's inner products
    np.testing.assert_allclose(scores, np.take_along_axis(exact, ids, axis=1), rtol=1e-4,
                               atol=1e-4)

    items = np.arange(model.item_factors.shape[0])
    found, cosines = wrapper.similar_items(items, N=10)
    unit = model.item_factors / np.maximum(np.linalg.norm(model.item_factors, axis=1),
                                           1e-10)[:, None]
    exact = unit.astype(np.float64) @ unit.T
    assert tie_aware_recall(found, exact, 10) >= 0.95
    np.testing.assert_allclose(cosines, np.take_along_axis(exact, found, axis=1), atol=1e-4)


# ------------------------------------------------------------------ forgetting

def _small():
    # sparse enough that one user's forget moves few item rows
    R = make_implicit(1_000, 1_000, 8_000, seed=3)
    return R, _fit(R, factors=8, iterations=15)


SMALL = {"faiss": (FaissModel, {"nlist": 16, "nprobe": 16}),
         "hnsw": (HNSWModel, {"M": 8, "ef_construction": 50, "ef": 50})}


def assert_index_is_the_model(wrapper):
    """Every stored vector is the model's row; forgotten items are not stored."""
    Y = wrapper.model.item_factors
    live = np.setdiff1d(np.arange(len(Y)), wrapper.forgotten_items)
    np.testing.assert_array_equal(wrapper._indexed, Y)
    for _, slot in wrapper._slots():
        assert len(slot) == len(live)
        np.testing.assert_array_equal(slot.stored(live), slot.vectors(Y[live]))
        stored = slot.stored(live)[:, :Y.shape[1]]
        if not slot.cosine:
            np.testing.assert_array_equal(stored, Y[live].astype(np.float32))


def assert_nothing_forgotten_is_served(wrapper):
    """Every user and item queried with every filter setting."""
    model = wrapper.model
    R = model.user_items
    n_users, n_items = R.shape
    users = np.arange(n_users)
    gone_items, gone_users = wrapper.forgotten_items, wrapper.forgotten_users
    N = 100  # (the index's content itself is checked by assert_index_is_the_model)
    results = []
    for liked in (True, False):
        for extra in ({}, {"filter_items": [0, 1]}, {"items": np.arange(0, n_items, 3)},
                      {"recalculate_user": True}):
            results.append(wrapper.recommend(users, R, N=N, filter_already_liked_items=liked,
                                             **extra)[0])
        results.append(wrapper.recommend(5, R[5], N=N, filter_already_liked_items=liked)[0])
    items = np.arange(n_items)
    for extra in ({}, {"filter_items": [2]}, {"items": np.arange(1, n_items, 2)}):
        results.append(wrapper.similar_items(items, N=N, **extra)[0])
    for ids in results:
        assert not np.isin(ids, gone_items).any()
    for extra in ({}, {"filter_users": [0]}, {"users": np.arange(0, n_users, 2)}):
        assert not np.isin(wrapper.similar_users(users, N=N, **extra)[0],
                           gone_users).any()


@pytest.mark.parametrize("backend", sorted(SMALL))
def test_the_index_forgets_with_the_model(backend):
    cls, params = SMALL[backend]
    R, model = _small()
    wrapper = cls(model, **params).rebuild()
    rng = np.random.default_rng(0)

    def step(call):
        before = np.array(model.item_factors)
        report = call()
        moved = np.flatnonzero((before != model.item_factors).any(axis=1))
        update = wrapper.last_update
        if not update["rebuilt"]:
            assert update["moved"] >= len(moved)  # liveness changes count too
        assert_index_is_the_model(wrapper)
        assert_nothing_forgotten_is_served(wrapper)
        return report, moved

    _, moved = step(lambda: wrapper.forget_users([4, 17], washout=0))
    assert not wrapper.last_update["rebuilt"] and 0 < len(moved) < 500
    assert list(wrapper.forgotten_users) == [4, 17]
    step(lambda: wrapper.forget_items([3, 50], washout=0))
    assert list(wrapper.forgotten_items) == [3, 50]
    coo = model.user_items.tocoo()
    pick = rng.choice(coo.nnz, 20, replace=False)
    step(lambda: wrapper.forget(coo.row[pick], coo.col[pick], washout=0))
    step(lambda: wrapper.forget_users([8]))  # the default: washes out when due
    report, _ = step(lambda: wrapper.settle())
    # a user and an item given interactions again are served again
    delta = sp.csr_matrix(([1.0, 1.0, 1.0], ([4, 4, 9], [3, 7, 3])), shape=R.shape)
    step(lambda: wrapper.partial_fit(delta, washout=0))
    assert 4 not in wrapper.forgotten_users and 3 not in wrapper.forgotten_items
    # changed behind the wrapper's back: sync() catches up
    model.forget_users([30], washout=0)
    wrapper.sync()
    assert_index_is_the_model(wrapper)


@pytest.mark.parametrize("backend", sorted(SMALL))
def test_a_washout_rebuilds_and_a_small_request_updates(backend):
    cls, params = SMALL[backend]
    _, model = _small()
    wrapper = cls(model, **params).rebuild()
    coo = model.user_items.tocoo()
    wrapper.forget(coo.row[:2], coo.col[:2], washout=0)
    assert not wrapper.last_update["rebuilt"]
    assert wrapper.last_update["moved"] < model.item_factors.shape[0] // 2
    coo = model.user_items.tocoo()
    wrapper.forget(coo.row[5:7], coo.col[5:7], washout=2)
    assert wrapper.last_update["rebuilt"]
    assert_index_is_the_model(wrapper)


# ------------------------------------------------------------------ files

@pytest.mark.parametrize("backend", sorted(SMALL))
def test_save_and_load_keep_model_and_index_together(backend, tmp_path):
    cls, params = SMALL[backend]
    R, model = _small()
    wrapper = cls(model, **params).rebuild()
    wrapper.forget_items([5], washout=0)
    wrapper.forget_users([2], washout=0)
    path = wrapper.save(tmp_path / "served")
    loaded = cls.load(path, on_mismatch="raise")
    assert_index_is_the_model(loaded)
    assert list(loaded.forgotten_items) == [5] and list(loaded.forgotten_users) == [2]
    for a, b in zip(loaded.recommend(np.arange(50), R[:50], N=7),
                    wrapper.recommend(np.arange(50), R[:50], N=7)):
        np.testing.assert_array_equal(a, b)

    # a file whose index does not hold its model's factors
    with np.load(path) as npz:
        arrays = dict(npz)
    other = cls(_fit(R, factors=8, iterations=2), **params).rebuild()
    buffer = io.BytesIO()
    other.model.save(buffer)
    arrays["model"] = np.frombuffer(buffer.getvalue(), np.uint8)
    np.savez(tmp_path / "mixed.npz", **arrays)
    with pytest.raises(fu.ModelFileError, match="do not hold the model's item factors"):
        cls.load(tmp_path / "mixed.npz", on_mismatch="raise")
    with pytest.warns(RuntimeWarning, match="rebuilding the indexes"):
        rebuilt = cls.load(tmp_path / "mixed.npz")
    assert_index_is_the_model(rebuilt)
    assert list(rebuilt.forgotten_items) == [5]

    # the index bytes changed, the factors not
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["index_similar"] = arrays["index_recommend"]
    np.savez(tmp_path / "swapped.npz", **arrays)
    with pytest.raises(fu.ModelFileError, match="index_similar"):
        cls.load(tmp_path / "swapped.npz", on_mismatch="raise")

    other_cls = HNSWModel if cls is FaissModel else FaissModel
    with pytest.raises(fu.ModelFileError, match="not .*" + other_cls._backend):
        other_cls.load(path)


# ------------------------------------------------------------------ errors

def test_bad_arguments_give_clear_errors():
    R, model = _small()
    with pytest.raises(ValueError, match="nprobe must be <= nlist"):
        FaissModel(model, nlist=4, nprobe=8)
    with pytest.raises(ValueError, match="nlist=2000 needs at least that many items"):
        FaissModel(model, nlist=2000).rebuild()
    with pytest.raises(ValueError, match="use_gpu=False"):
        FaissModel(model, use_gpu=True)
    with pytest.raises(TypeError, match="nlist must be an integer"):
        FaissModel(model, nlist=2.5)
    with pytest.raises(ValueError, match="M must be >= 2"):
        HNSWModel(model, M=1)
    with pytest.raises(TypeError, match="fastunlearn model"):
        HNSWModel(object())
    wrapper = HNSWModel(model, **SMALL["hnsw"][1]).rebuild()
    with pytest.raises(ValueError, match="N must be >= 0"):
        wrapper.recommend(0, R[0], N=-1)
    with pytest.raises(ValueError, match="can't set both items and filter_items"):
        wrapper.recommend(0, R[0], items=[1], filter_items=[2])
    with pytest.raises(IndexError, match="userid"):
        wrapper.recommend(R.shape[0], R[0])
    with pytest.raises(IndexError, match="filter_items"):
        wrapper.recommend(0, R[0], filter_items=[R.shape[1]])
    with pytest.raises(ValueError, match="user_items must contain 1 row"):
        wrapper.recommend([0, 1], R[0])
    with pytest.raises(ValueError, match="on_mismatch must be"):
        HNSWModel.load(io.BytesIO(), on_mismatch="ignore")
    with pytest.raises(fu.ModelFileError, match="not an index file"):
        HNSWModel.load(io.BytesIO(b"not a file"))
    unfitted = HNSWModel(fu.AlternatingLeastSquares())
    with pytest.raises(fu.NotFittedError):
        unfitted.rebuild()


def test_exact_paths_and_shapes():
    """Without an index (or with items=) the model ranks; lists are N wide
    either way, scalar queries give 1-D lists."""
    R, model = _small()
    exact = FaissModel(model, approximate_recommend=False, approximate_similar_items=False,
                       nlist=16, nprobe=16).rebuild()
    assert exact.recommend_index is None and exact.similar_items_index is None
    ids, scores = exact.recommend(3, R[3], N=5)
    expected = model.recommend(3, R[3], N=5)
    np.testing.assert_array_equal(ids, expected[0])
    np.testing.assert_allclose(scores, expected[1], rtol=1e-6)
    approx = FaissModel(model, nlist=16, nprobe=16).rebuild()
    ids, scores = approx.recommend(3, R[3], N=5)
    assert ids.shape == scores.shape == (5,) and scores.dtype == np.float32
    ids, _ = approx.recommend([1, 2], R[[1, 2]], N=R.shape[1] + 5)
    assert ids.shape == (2, R.shape[1] + 5) and (ids[:, -5:] == -1).all()
    chosen = np.array([4, 9, 11])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids, _ = approx.recommend(3, R[3], N=10, items=chosen)
    assert ids.shape == (3,) and set(ids.tolist()) <= set(chosen.tolist())
