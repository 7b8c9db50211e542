"""Tests of the pure-NumPy reference implementation (tests/reference.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import pytest
import scipy.sparse as sp

from reference import (
    certificate,
    confidence_preference,
    fit,
    gradients,
    loss,
    normal_equations,
    random_problem,
    solve_side,
    sweep,
    topk,
)

# (model, weighted, alpha) combinations covering the three objectives.
MODELS = [
    pytest.param("implicit", False, 2.5, id="implicit"),
    pytest.param("explicit", False, 1.0, id="explicit"),
    pytest.param("explicit", True, 1.0, id="explicit-weighted"),
]


def _kw(model, weighted, alpha, lam=0.3):
    return dict(model=model, regularization=lam, alpha=alpha, weighted=weighted)


def _fd_gradient(R, X, Y, kw, h=1e-4):
    """Central-difference gradient of ``loss`` w.r.t. every entry of X and Y."""
    grads = []
    for which in (0, 1):
        F = (X, Y)[which]
        G = np.zeros_like(F)
        for idx in np.ndindex(F.shape):
            plus = [X.copy(), Y.copy()]
            minus = [X.copy(), Y.copy()]
            plus[which][idx] += h
            minus[which][idx] -= h
            G[idx] = (loss(R, *plus, **kw) - loss(R, *minus, **kw)) / (2 * h)
        grads.append(G)
    return grads


# ----------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("model,weighted,alpha", MODELS)
def test_gradients_match_finite_differences(model, weighted, alpha, negative):
    R, X, Y = random_problem(11, negative=negative, empty_rows=True)
    X = X.astype(np.float64)
    Y = Y.astype(np.float64)
    # the fixture really has what we want to exercise
    assert (np.diff(R.indptr) == 0).any()
    assert (np.diff(R.tocsc().indptr) == 0).any()
    if negative:
        assert (R.data < 0).any()
    kw = _kw(model, weighted, alpha)
    GX, GY = gradients(R, X, Y, **kw)
    FX, FY = _fd_gradient(R, X, Y, kw)
    assert GX.shape == X.shape and GY.shape == Y.shape
    np.testing.assert_allclose(GX, FX / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(GY, FY / 2, rtol=1e-6, atol=1e-7)
    # non-trivial: random factors are not stationary
    assert np.abs(GX).max() > 1e-3 and np.abs(GY).max() > 1e-3


def test_explicit_weighted_empty_rows_have_zero_gradient():
    R, X, Y = random_problem(3, empty_rows=True)
    GX, GY = gradients(R, X, Y, **_kw("explicit", True, 1.0))
    empty_u = np.diff(R.indptr) == 0
    empty_i = np.diff(R.tocsc().indptr) == 0
    assert empty_u.any() and empty_i.any()
    assert np.all(GX[empty_u] == 0) and np.all(GY[empty_i] == 0)
    # unweighted explicit: an empty row has gradient lam * x
    GX, GY = gradients(R, X, Y, **_kw("explicit", False, 1.0, lam=0.3))
    np.testing.assert_allclose(GX[empty_u], 0.3 * X[empty_u], atol=1e-14)


# ----------------------------------------------------------------------------
# exact row solves
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("model,weighted,alpha", MODELS)
def test_solve_side_zeroes_that_sides_gradient(model, weighted, alpha, negative):
    R, X, Y = random_problem(5, negative=negative)
    kw = _kw(model, weighted, alpha)

    Xn = solve_side(R, X, Y, side="users", **kw)
    GX, GY = gradients(R, Xn, Y, **kw)
    assert np.abs(GX).max() < 1e-9
    assert np.abs(GY).max() > 1e-3  # the other side was not touched

    Yn = solve_side(R, X, Y, side="items", **kw)
    GX, GY = gradients(R, X, Yn, **kw)
    assert np.abs(GY).max() < 1e-9
    assert np.abs(GX).max() > 1e-3

    # empty rows are solved to zero in every mode of this fixture
    empty_u = np.diff(R.indptr) == 0
    empty_i = np.diff(R.tocsc().indptr) == 0
    assert np.all(Xn[empty_u] == 0) and np.all(Yn[empty_i] == 0)


def test_inputs_are_not_modified_and_float32_accepted():
    R, X, Y = random_problem(2, negative=True, dtype=np.float32)
    R0, X0, Y0 = R.copy(), X.copy(), Y.copy()
    kw = _kw("implicit", False, 2.0)
    X1, Y1 = sweep(R, X, Y, **kw)
    solve_side(R, X, Y, side="items", **kw)
    gradients(R, X, Y, **kw)
    loss(R, X, Y, **kw)
    assert X1.dtype == np.float64 and Y1.dtype == np.float64
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)
    assert (R != R0).nnz == 0 and R.dtype == np.float32
    # float64 inputs are not aliased either
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    Xn = solve_side(R, X64, Y64, side="users", **kw)
    assert Xn is not X64 and not np.shares_memory(Xn, X64)


# ----------------------------------------------------------------------------
# descent and convergence
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("model,weighted,alpha", MODELS)
def test_sweeps_descend_and_converge(model, weighted, alpha, seed):
    R, X, Y = random_problem(seed, negative=(seed % 2 == 1))
    kw = _kw(model, weighted, alpha, lam=0.5)

    losses = [loss(R, X, Y, **kw)]
    for _ in range(5):
        X, Y = sweep(R, X, Y, **kw)
        losses.append(loss(R, X, Y, **kw))
    diffs = np.diff(losses)
    assert np.all(diffs <= 1e-10 * max(1.0, abs(losses[0])))
    assert losses[-1] < losses[0]

    R, X, Y = random_problem(seed, negative=(seed % 2 == 1))
    X, Y = sweep(R, X, Y, **kw)
    frob1, max1 = certificate(R, X, Y, **kw)
    for _ in range(29):
        X, Y = sweep(R, X, Y, **kw)
    frob30, max30 = certificate(R, X, Y, **kw)
    assert frob1 > 1e-2
    assert frob30 < 0.05 * frob1
    assert max30 < 0.05 * max1


def test_certificate_definition():
    R, X, Y = random_problem(7, negative=True)
    kw = _kw("implicit", False, 1.5)
    GX, GY = gradients(R, X, Y, **kw)
    frob, max_row = certificate(R, X, Y, **kw)
    all_rows = np.vstack([GX, GY])
    assert frob == pytest.approx(np.sqrt((all_rows ** 2).sum()), rel=1e-12)
    assert max_row == pytest.approx(np.linalg.norm(all_rows, axis=1).max(), rel=1e-12)
    assert max_row <= frob + 1e-15


def test_fit_initialisation_and_determinism():
    R, _, _ = random_problem(4)
    kw = _kw("implicit", False, 2.0)
    X0, Y0 = fit(R, 3, iterations=0, seed=42, **kw)
    rng = np.random.default_rng(42)
    np.testing.assert_array_equal(X0, rng.random((R.shape[0], 3)) * 0.01)
    np.testing.assert_array_equal(Y0, rng.random((R.shape[1], 3)) * 0.01)
    X2, Y2 = fit(R, 3, iterations=2, seed=42, **kw)
    Xs, Ys = sweep(R, *sweep(R, X0, Y0, **kw), **kw)
    np.testing.assert_array_equal(X2, Xs)
    np.testing.assert_array_equal(Y2, Ys)


# ----------------------------------------------------------------------------
# normal equations
# ----------------------------------------------------------------------------
def test_implicit_normal_equations_spd_with_small_confidence():
    R, X, Y = random_problem(9, negative=True)
    alpha = 0.1  # alpha * |r| < 0.3 < 1, so every (c - 1) term is negative
    C, P = confidence_preference(R, alpha)
    assert np.all(C[R.toarray() != 0] < 1)
    kw = dict(model="implicit", regularization=0.05, alpha=alpha)
    for side, n in (("users", R.shape[0]), ("items", R.shape[1])):
        for row in range(n):
            A, b = normal_equations(R, X, Y, row, side=side, **kw)
            np.testing.assert_allclose(A, A.T, rtol=0, atol=1e-14)
            assert np.linalg.eigvalsh(A).min() > 0
            np.linalg.cholesky(A)  # raises if not positive definite
            # matches the dense definition: sum_j C_j g_j g_j^T + lam I
            if side == "users":
                c, p, G = C[row], P[row], Y
            else:
                c, p, G = C[:, row], P[:, row], X
            np.testing.assert_allclose(A, (G.T * c) @ G + 0.05 * np.eye(3),
                                       rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(b, G.T @ (c * p), rtol=1e-12, atol=1e-14)


def test_confidence_preference_and_stored_zero():
    # stored explicit zero at (0, 1); negative at (1, 0); nothing at (1, 1)
    R = sp.csr_matrix((np.array([2.0, 0.0, -3.0]),
                       np.array([0, 1, 0]), np.array([0, 2, 3])), shape=(2, 2))
    assert R.nnz == 3
    C, P = confidence_preference(R, 0.5)
    np.testing.assert_array_equal(C, [[1.0, 0.0], [1.5, 1.0]])
    np.testing.assert_array_equal(P, [[1.0, 0.0], [0.0, 0.0]])
    # a stored zero counts as observed in explicit mode
    X = np.array([[1.0], [2.0]])
    Y = np.array([[0.5], [1.5]])
    stored = loss(R, X, Y, model="explicit", regularization=0.0)
    S = X @ Y.T
    expected = (2 - S[0, 0]) ** 2 + (0 - S[0, 1]) ** 2 + (-3 - S[1, 0]) ** 2
    assert stored == pytest.approx(expected, rel=1e-14)
    # weighted regulariser counts it too: w_u = [2, 1], w_i = [2, 1]
    reg = loss(R, X, Y, model="explicit", regularization=1.0, weighted=True) - stored
    assert reg == pytest.approx(2 * 1 + 1 * 4 + 2 * 0.25 + 1 * 2.25, rel=1e-14)


# ----------------------------------------------------------------------------
# hand-computed cases
# ----------------------------------------------------------------------------
def test_hand_computed_1x1():
    # r = 2, alpha = 3, lam = 0.5, y = 2, k = 1
    # implicit: c = 6, p = 1; A = y^2 + lam + (c - 1) y^2 = 4 + 0.5 + 20 = 24.5
    #           b = c p y = 12  ->  x = 12 / 24.5 = 24 / 49
    R = sp.csr_matrix(np.array([[2.0]]))
    X = np.array([[7.0]])
    Y = np.array([[2.0]])
    kw = dict(model="implicit", regularization=0.5, alpha=3.0)
    A, b = normal_equations(R, X, Y, 0, side="users", **kw)
    assert A[0, 0] == pytest.approx(24.5) and b[0] == pytest.approx(12.0)
    x = solve_side(R, X, Y, side="users", **kw)
    assert x.shape == (1, 1)
    assert x[0, 0] == pytest.approx(24.0 / 49.0, rel=1e-14)
    # loss at x = 7: 6 * (1 - 14)^2 + 0.5 * (49 + 4) = 1014 + 26.5
    assert loss(R, X, Y, **kw) == pytest.approx(1040.5, rel=1e-14)
    # gradient at x = 7: A x - b = 24.5 * 7 - 12 = 159.5
    GX, GY = gradients(R, X, Y, **kw)
    assert GX[0, 0] == pytest.approx(159.5, rel=1e-14)

    # explicit: A = y^2 + lam = 4.5, b = r y = 4  ->  x = 8 / 9
    x = solve_side(R, X, Y, side="users", model="explicit", regularization=0.5)
    assert x[0, 0] == pytest.approx(8.0 / 9.0, rel=1e-14)

    # implicit with a negative entry: p = 0, so b = 0 and x = 0
    Rn = sp.csr_matrix(np.array([[-2.0]]))
    x = solve_side(Rn, X, Y, side="users", **kw)
    assert x[0, 0] == 0.0


# ----------------------------------------------------------------------------
# top-k
# ----------------------------------------------------------------------------
def test_topk_hand_written():
    scores = np.array([
        [0.1, 0.9, 0.5, 0.9, -1.0],
        [3.0, 1.0, 2.0, 0.0, 5.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ])
    exclude = np.array([
        [False, False, True, False, False],
        [True, True, True, False, True],
        [True, True, True, True, True],
    ])
    pad = -np.finfo(np.float32).max

    ids, values = topk(scores, 10, exclude)  # N > n_candidates -> width 5
    np.testing.assert_array_equal(ids, [
        [1, 3, 0, 4, -1],
        [3, -1, -1, -1, -1],
        [-1, -1, -1, -1, -1],
    ])
    np.testing.assert_array_equal(values, [
        [0.9, 0.9, 0.1, -1.0, pad],
        [0.0, pad, pad, pad, pad],
        [pad, pad, pad, pad, pad],
    ])

    ids, values = topk(scores, 2, exclude)
    np.testing.assert_array_equal(ids, [[1, 3], [3, -1], [-1, -1]])

    ids, values = topk(scores, 3)  # no mask; ties go to the lower id
    np.testing.assert_array_equal(ids, [[1, 3, 2], [4, 0, 2], [0, 1, 2]])
    np.testing.assert_array_equal(values, [[0.9, 0.9, 0.5], [5.0, 3.0, 2.0],
                                           [0.0, 0.0, 0.0]])


def test_topk_matches_full_sort_on_random_data():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(20, 15)).astype(np.float32)  # many ties
    exclude = rng.random((20, 15)) < 0.5
    ids, values = topk(scores, 6, exclude)
    for q in range(20):
        allowed = [j for j in range(15) if not exclude[q, j]]
        expected = sorted(allowed, key=lambda j: (-scores[q, j], j))[:6]
        got = [j for j in ids[q] if j >= 0]
        assert got == expected
        np.testing.assert_array_equal(values[q, :len(got)], scores[q, expected])


# ----------------------------------------------------------------------------
# fixture
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_random_problem_properties(seed):
    R, X, Y = random_problem(seed, negative=True, empty_rows=True)
    assert sp.isspmatrix_csr(R) and R.shape == (9, 7)
    assert X.shape == (9, 3) and Y.shape == (7, 3)
    assert np.all((np.abs(R.data) >= 0.5) & (np.abs(R.data) < 3))
    assert (R.data < 0).any()
    assert (np.diff(R.indptr) == 0).any()
    assert (np.diff(R.tocsc().indptr) == 0).any()

    R, X, Y = random_problem(seed, empty_rows=False, dtype=np.float32)
    assert R.dtype == np.float32 and X.dtype == np.float32
    assert np.all(R.data >= 0.5)
    assert (np.diff(R.indptr) > 0).all() and (np.diff(R.tocsc().indptr) > 0).all()

    R2, X2, Y2 = random_problem(seed, empty_rows=False, dtype=np.float32)
    assert (R != R2).nnz == 0
    np.testing.assert_array_equal(X, X2)


# ----------------------------------------------------------------------------
# the objective's entry weights and row regularisation (what code outside
# the kernels, such as the Dask owners' shares, builds normal equations from)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("model,weighted,alpha", MODELS)
def test_entry_weights_and_row_regularization_give_the_reference_equations(
        model, weighted, alpha, negative):
    from fastunlearn.objective import Objective

    R, X, Y = random_problem(7, negative=negative)
    kw = _kw(model, weighted, alpha)
    objective = Objective(model == "implicit", kw["regularization"], alpha, weighted)
    counts = np.diff(R.indptr)
    lam = objective.row_regularization(counts)
    for u in range(R.shape[0]):
        cols, values = R.indices[R.indptr[u]:R.indptr[u + 1]], R.data[R.indptr[u]:R.indptr[u + 1]]
        a, b = objective.entry_weights(values)
        F = Y[cols]
        A = (F * a[:, None]).T @ F + lam[u] * np.eye(Y.shape[1])
        if objective.implicit:
            A += Y.T @ Y
        expected_A, expected_b = normal_equations(R, X, Y, u, side="users", **kw)
        np.testing.assert_allclose(A, expected_A, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(F.T @ b, expected_b, rtol=1e-12, atol=1e-12)
