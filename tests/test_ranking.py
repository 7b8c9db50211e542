"""recommend / similar_items / similar_users against a brute-force argsort."""
import numpy as np
import pytest
import scipy.sparse as sp

import reference as ref
from conftest import make_model, problem

PAD = -np.finfo(np.float32).max


@pytest.fixture
def model():
    R, X, Y = problem(21, n_users=25, n_items=18, density=0.3, k=4)
    return make_model("implicit", X, Y, R)


def brute(scores, N, exclude):
    ids, vals = ref.topk(scores, N, exclude)
    return ids.astype(np.int32), vals


@pytest.mark.parametrize("filter_liked", [True, False])
@pytest.mark.parametrize("N", [1, 5, 18, 40])
def test_recommend_batched_equals_brute_force(model, filter_liked, N):
    users = np.array([0, 3, 7, 24, 3])
    rows = model.user_items[users]
    ids, scores = model.recommend(users, rows, N=N, filter_already_liked_items=filter_liked)
    dense = model.user_factors[users] @ model.item_factors.T
    exclude = rows.toarray() != 0 if filter_liked else None
    want_ids, want_scores = brute(dense, N, exclude)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-12)
    assert ids.dtype == np.int32 and ids.shape == (5, min(N, 18))


def test_recommend_single_user_is_first_row_of_batch(model):
    ids1, s1 = model.recommend(4, model.user_items[4], N=6)
    idsb, sb = model.recommend(np.array([4]), model.user_items[[4]], N=6)
    assert ids1.ndim == 1
    np.testing.assert_array_equal(ids1, idsb[0])
    np.testing.assert_array_equal(s1, sb[0])


def test_recommend_filter_items_and_padding(model):
    users = np.arange(25)
    rows = model.user_items
    banned = np.array([0, 5, 9])
    ids, scores = model.recommend(users, rows, N=18, filter_items=banned)
    exclude = rows.toarray() != 0
    exclude[:, banned] = True
    want_ids, want_scores = brute(model.user_factors @ model.item_factors.T, 18, exclude)
    np.testing.assert_array_equal(ids, want_ids)
    assert np.all(scores[ids == -1] == PAD) and np.any(ids == -1)
    assert not np.isin(ids, banned).any()


def test_recommend_items_subset(model):
    users = np.array([1, 2, 11])
    subset = np.array([17, 2, 9, 4, 13])
    rows = model.user_items[users]
    ids, scores = model.recommend(users, rows, N=3, items=subset)
    sorted_subset = np.sort(subset)
    dense = model.user_factors[users] @ model.item_factors[sorted_subset].T
    exclude = rows.toarray()[:, sorted_subset] != 0
    pos, vals = ref.topk(dense, 3, exclude)
    want = np.where(pos >= 0, sorted_subset[np.maximum(pos, 0)], -1)
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_allclose(scores, vals)
    with pytest.raises(ValueError, match="filter_items"):
        model.recommend(users, rows, items=subset, filter_items=[1])


def test_recalculate_user_solves_the_row_exactly(model):
    user_row = sp.csr_matrix(np.array([[0, 2.0, 0, 0, 1.0] + [0] * 13]))
    x = model.recalculate_user(0, user_row)
    R1 = sp.csr_matrix(user_row)
    A, b = ref.normal_equations(R1, np.zeros((1, 4)), model.item_factors, 0, side="users",
                                model="implicit", regularization=0.1, alpha=2.0)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-10)
    ids, _ = model.recommend(0, user_row, N=3, recalculate_user=True)
    want, _ = ref.topk((x @ model.item_factors.T)[None], 3, (user_row.toarray() != 0))
    np.testing.assert_array_equal(ids, want[0])


def cosine_brute(queries, factors, N, exclude=None):
    fn = factors / np.maximum(np.linalg.norm(factors, axis=1), 1e-10)[:, None]
    qn = queries / np.maximum(np.linalg.norm(queries, axis=1), 1e-10)[:, None]
    return ref.topk(qn @ fn.T, N, exclude)


def test_similar_items_and_users_equal_brute_force(model):
    ids, scores = model.similar_items(3, N=5)
    want_ids, want_scores = cosine_brute(model.item_factors[[3]], model.item_factors, 5)
    np.testing.assert_array_equal(ids, want_ids[0])
    np.testing.assert_allclose(scores, want_scores[0], rtol=1e-10)
    assert ids[0] == 3 and scores[0] == pytest.approx(1.0)

    q = np.array([2, 8])
    ids, _ = model.similar_users(q, N=4, filter_users=[0, 1])
    exclude = np.zeros((2, 25), bool)
    exclude[:, [0, 1]] = True
    want_ids, _ = cosine_brute(model.user_factors[q], model.user_factors, 4, exclude)
    np.testing.assert_array_equal(ids, want_ids)

    ids, _ = model.similar_items(np.array([1, 6]), N=2, items=[6, 1, 12])
    sub = np.array([1, 6, 12])
    pos, _ = cosine_brute(model.item_factors[[1, 6]], model.item_factors[sub], 2)
    np.testing.assert_array_equal(ids, sub[pos])


def test_zero_vector_query_is_safe():
    R, X, Y = problem(22)
    X[0] = 0
    model = make_model("implicit", X, Y, R)
    ids, scores = model.similar_users(0, N=3)
    assert len(ids) == 3 and np.all(np.isfinite(scores))


def test_float32_recommend_matches():
    R, X, Y = problem(23, n_users=30, n_items=40, k=8)
    model = make_model("implicit", X.astype(np.float32), Y.astype(np.float32), R,
                       dtype=np.float32, num_threads=2)
    users = np.arange(30)
    ids, scores = model.recommend(users, model.user_items, N=7)
    dense = model.user_factors.astype(np.float64) @ model.item_factors.T.astype(np.float64)
    _, want_scores = ref.topk(dense, 7, model.user_items.toarray() != 0)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
    got = np.take_along_axis(dense, ids.astype(np.int64), axis=1)
    np.testing.assert_allclose(got, want_scores, rtol=1e-5)  # same items, up to float32 ties


def test_recommend_items_with_empty_rows_last(model):
    # the rows of the last requested users are empty: restricting the liked
    # items to ``items`` must not index past the stored entries
    rows = model.user_items[[0, 1, 2]].tolil()
    rows[1:, :] = 0
    rows = rows.tocsr()
    rows.eliminate_zeros()
    items = np.array([2, 5, 9, 11])
    ids, scores = model.recommend([0, 1, 2], rows, N=4, items=items)
    dense = model.user_factors[[0, 1, 2]] @ model.item_factors[items].T
    exclude = rows[:, items].toarray() != 0
    want_ids, want_scores = brute(dense, 4, exclude)
    np.testing.assert_array_equal(ids, np.where(want_ids >= 0, items[want_ids], -1))
    np.testing.assert_allclose(scores, want_scores, rtol=1e-12)
