"""Independent pure-NumPy reference implementation for ``fastunlearn``.

This module is the yardstick the test suite compares the compiled kernels
against.  It favours clarity over speed: everything is computed in float64,
mostly with dense arrays and explicit per-row loops, and it is only meant for
tiny problems (a few hundred rows at most).

Conventions
-----------
``R`` is a ``scipy.sparse`` matrix of shape ``(n_users, n_items)``; ``X`` has
shape ``(n_users, k)`` and ``Y`` has shape ``(n_items, k)``.  ``Omega`` is the
set of *stored* entries of ``R``: stored explicit zeros count as stored
(duplicate stored entries are summed first).

Implicit model (conventions of the ``implicit`` library)::

    L = sum_{all u,i} c_ui (p_ui - x_u . y_i)^2 + lam (|X|_F^2 + |Y|_F^2)

with ``c_ui = alpha |r_ui|`` and ``p_ui = [r_ui > 0]`` for stored entries and
``c_ui = 1``, ``p_ui = 0`` otherwise.

Explicit model (matrix completion, optionally "ALS-WR" weighted)::

    L = sum_{(u,i) in Omega} (r_ui - x_u . y_i)^2
        + lam (sum_u w_u |x_u|^2 + sum_i w_i |y_i|^2)

with ``w = 1`` or ``w_u = |Omega_u|``, ``w_i = |Omega_i|`` when weighted.
A row with no stored entries is solved to zero in explicit mode.

The row gradient is half the gradient of ``L``: ``g = A x - b``.

Inputs are never modified; every function returns new arrays.
"""

import numpy as np
import scipy.sparse as sp

__all__ = [
    "confidence_preference",
    "loss",
    "normal_equations",
    "gradients",
    "certificate",
    "solve_side",
    "sweep",
    "fit",
    "topk",
    "random_problem",
]

_MODELS = ("implicit", "explicit")
_SIDES = ("users", "items")


# ----------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------
def _as_csr(R):
    """Return a float64 CSR *copy* of ``R`` with duplicates summed.

    Explicitly stored zeros are kept (they count as stored entries).
    """
    if not sp.issparse(R):
        raise TypeError("R must be a scipy.sparse matrix")
    M = sp.csr_matrix(R, dtype=np.float64, copy=True)
    M.sum_duplicates()  # also sorts indices; does not drop explicit zeros
    return M


def _dense(R):
    """Return ``(values, mask)``: dense float64 values and boolean stored-mask."""
    M = _as_csr(R)
    values = np.zeros(M.shape, dtype=np.float64)
    mask = np.zeros(M.shape, dtype=bool)
    for u in range(M.shape[0]):
        cols = M.indices[M.indptr[u]:M.indptr[u + 1]]
        vals = M.data[M.indptr[u]:M.indptr[u + 1]]
        values[u, cols] = vals
        mask[u, cols] = True
    return values, mask


def _factors(R, X, Y):
    """Float64 copies of the factors, with shape checks."""
    X = np.array(X, dtype=np.float64, copy=True)
    Y = np.array(Y, dtype=np.float64, copy=True)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError("X and Y must be 2-D with the same number of columns")
    if R.shape != (X.shape[0], Y.shape[0]):
        raise ValueError(
            f"R has shape {R.shape}, expected {(X.shape[0], Y.shape[0])}")
    return X, Y


def _check_model(model):
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")


def _check_side(side):
    if side not in _SIDES:
        raise ValueError(f"side must be one of {_SIDES}, got {side!r}")


def _oriented(R, X, Y, side):
    """Return ``(M, F, G)``: the matrix whose rows index the solved side,
    the factors being solved (``F``) and the fixed factors (``G``)."""
    M = _as_csr(R)
    if side == "users":
        return M, X, Y
    return sp.csr_matrix(M.T), Y, X


# ----------------------------------------------------------------------------
# objective
# ----------------------------------------------------------------------------
def confidence_preference(R, alpha):
    """Dense confidence and preference matrices (implicit conventions).

    Parameters
    ----------
    R : scipy.sparse matrix, shape (n_users, n_items)
    alpha : float
        Confidence scale.

    Returns
    -------
    C, P : ndarray of float64, shape (n_users, n_items)
        ``C = alpha * |r|`` and ``P = [r > 0]`` on stored entries,
        ``C = 1`` and ``P = 0`` elsewhere.
    """
    values, mask = _dense(R)
    C = np.ones(values.shape, dtype=np.float64)
    C[mask] = float(alpha) * np.abs(values[mask])
    P = np.zeros(values.shape, dtype=np.float64)
    P[mask & (values > 0)] = 1.0
    return C, P


def loss(R, X, Y, *, model, regularization, alpha=1.0, weighted=False):
    """Unnormalised objective ``L(X, Y)``, computed densely from its definition.

    Parameters
    ----------
    R : scipy.sparse matrix, shape (n_users, n_items)
    X : array_like, shape (n_users, k)
    Y : array_like, shape (n_items, k)
    model : {"implicit", "explicit"}
    regularization : float
        ``lam``.
    alpha : float, optional
        Confidence scale (implicit only).
    weighted : bool, optional
        ALS-WR weighting of the regulariser (explicit only).

    Returns
    -------
    float
    """
    _check_model(model)
    X, Y = _factors(R, X, Y)
    lam = float(regularization)
    S = X @ Y.T
    if model == "implicit":
        C, P = confidence_preference(R, alpha)
        return float(np.sum(C * (P - S) ** 2)
                     + lam * (np.sum(X ** 2) + np.sum(Y ** 2)))
    values, mask = _dense(R)
    data_term = np.sum(np.where(mask, (values - S) ** 2, 0.0))
    if weighted:
        wu = mask.sum(axis=1).astype(np.float64)
        wi = mask.sum(axis=0).astype(np.float64)
    else:
        wu = np.ones(X.shape[0])
        wi = np.ones(Y.shape[0])
    reg = np.sum(wu * np.sum(X ** 2, axis=1)) + np.sum(wi * np.sum(Y ** 2, axis=1))
    return float(data_term + lam * reg)


# ----------------------------------------------------------------------------
# normal equations, gradients, certificate
# ----------------------------------------------------------------------------
def normal_equations(R, X, Y, row, *, side, model, regularization, alpha=1.0,
                     weighted=False):
    """Normal equations ``A x = b`` of one row.

    Parameters
    ----------
    R : scipy.sparse matrix, shape (n_users, n_items)
    X, Y : array_like
        Current factors.
    row : int
        Index of the user (``side="users"``) or item (``side="items"``).
    side : {"users", "items"}
        ``"users"`` solves a row of ``X`` using ``R``; ``"items"`` a row of
        ``Y`` using ``R.T``.
    model, regularization, alpha, weighted
        As in :func:`loss`.

    Returns
    -------
    A : ndarray, shape (k, k)
    b : ndarray, shape (k,)

    Notes
    -----
    Implicit: ``A = G^T G + lam I + sum_{j in Omega_row} (c_j - 1) g_j g_j^T``,
    ``b = sum_{j in Omega_row} c_j p_j g_j`` with ``G`` the fixed factors.
    Explicit: ``A = sum_{j in Omega_row} g_j g_j^T + lam w I``,
    ``b = sum_{j in Omega_row} r_j g_j``.  For an explicit weighted row with
    no stored entries this gives ``A = 0``, ``b = 0``.
    """
    _check_model(model)
    _check_side(side)
    X, Y = _factors(R, X, Y)
    M, F, G = _oriented(R, X, Y, side)
    row = int(row)
    if not 0 <= row < M.shape[0]:
        raise IndexError(f"row {row} out of range for {M.shape[0]} {side}")
    lam = float(regularization)
    k = G.shape[1]
    cols = M.indices[M.indptr[row]:M.indptr[row + 1]]
    vals = M.data[M.indptr[row]:M.indptr[row + 1]]

    A = np.zeros((k, k))
    b = np.zeros(k)
    if model == "implicit":
        A += G.T @ G + lam * np.eye(k)
        for j, r in zip(cols, vals):
            c = float(alpha) * abs(r)
            p = 1.0 if r > 0 else 0.0
            A += (c - 1.0) * np.outer(G[j], G[j])
            b += c * p * G[j]
    else:
        for j, r in zip(cols, vals):
            A += np.outer(G[j], G[j])
            b += r * G[j]
        w = float(len(cols)) if weighted else 1.0
        A += lam * w * np.eye(k)
    return A, b


def _side_gradient(R, X, Y, side, **kw):
    M, F, _ = _oriented(R, X, Y, side)
    out = np.zeros_like(F)
    for row in range(F.shape[0]):
        A, b = normal_equations(R, X, Y, row, side=side, **kw)
        out[row] = A @ F[row] - b
    return out


def gradients(R, X, Y, *, model, regularization, alpha=1.0, weighted=False):
    """Half-gradients of :func:`loss` with respect to ``X`` and ``Y``.

    Row ``u`` of ``GX`` is ``A_u x_u - b_u`` (and likewise for items).

    Returns
    -------
    GX : ndarray, shape like X
    GY : ndarray, shape like Y
    """
    kw = dict(model=model, regularization=regularization, alpha=alpha,
              weighted=weighted)
    _check_model(model)
    X, Y = _factors(R, X, Y)
    return (_side_gradient(R, X, Y, "users", **kw),
            _side_gradient(R, X, Y, "items", **kw))


def certificate(R, X, Y, *, model, regularization, alpha=1.0, weighted=False):
    """Stationarity certificate from the half-gradients.

    Returns
    -------
    frobenius : float
        ``sqrt(|GX|_F^2 + |GY|_F^2)``.
    max_row : float
        Largest Euclidean norm of any user or item gradient row
        (0.0 if there are no rows).
    """
    GX, GY = gradients(R, X, Y, model=model, regularization=regularization,
                       alpha=alpha, weighted=weighted)
    frobenius = float(np.sqrt(np.sum(GX ** 2) + np.sum(GY ** 2)))
    norms = np.concatenate([np.linalg.norm(GX, axis=1),
                            np.linalg.norm(GY, axis=1)])
    max_row = float(norms.max()) if norms.size else 0.0
    return frobenius, max_row


# ----------------------------------------------------------------------------
# solving
# ----------------------------------------------------------------------------
def solve_side(R, X, Y, *, side, model, regularization, alpha=1.0,
               weighted=False):
    """Solve every row of one side exactly, holding the other side fixed.

    Returns
    -------
    ndarray of float64
        New ``X`` (``side="users"``) or new ``Y`` (``side="items"``).
        In explicit mode a row with no stored entries is set to zero.
    """
    _check_model(model)
    _check_side(side)
    X, Y = _factors(R, X, Y)
    M, F, _ = _oriented(R, X, Y, side)
    out = np.zeros_like(F)
    for row in range(F.shape[0]):
        if model == "explicit" and M.indptr[row + 1] == M.indptr[row]:
            continue  # empty row -> zero
        A, b = normal_equations(R, X, Y, row, side=side, model=model,
                                regularization=regularization, alpha=alpha,
                                weighted=weighted)
        out[row] = np.linalg.solve(A, b)
    return out


def sweep(R, X, Y, *, model, regularization, alpha=1.0, weighted=False):
    """One ALS sweep: all users (with current ``Y``), then all items (new ``X``).

    Returns
    -------
    X_new, Y_new : ndarray of float64
    """
    kw = dict(model=model, regularization=regularization, alpha=alpha,
              weighted=weighted)
    X_new = solve_side(R, X, Y, side="users", **kw)
    Y_new = solve_side(R, X_new, Y, side="items", **kw)
    return X_new, Y_new


def fit(R, k, *, iterations, seed, model, regularization, alpha=1.0,
        weighted=False):
    """Run ``iterations`` sweeps from the standard random initialisation.

    ``rng = np.random.default_rng(seed)``; ``X = rng.random((n_users, k)) * 0.01``
    is drawn first, then ``Y = rng.random((n_items, k)) * 0.01``.

    Returns
    -------
    X, Y : ndarray of float64
    """
    n_users, n_items = R.shape
    rng = np.random.default_rng(seed)
    X = rng.random((n_users, k)) * 0.01
    Y = rng.random((n_items, k)) * 0.01
    for _ in range(int(iterations)):
        X, Y = sweep(R, X, Y, model=model, regularization=regularization,
                     alpha=alpha, weighted=weighted)
    return X, Y


# ----------------------------------------------------------------------------
# top-k
# ----------------------------------------------------------------------------
def topk(scores, N, exclude=None):
    """Brute-force top-``N`` per row.

    Parameters
    ----------
    scores : array_like, shape (n_queries, n_candidates)
    N : int
    exclude : array_like of bool, same shape as ``scores``, optional
        ``True`` marks candidates that may not be returned.

    Returns
    -------
    ids : ndarray of int64, shape (n_queries, min(N, n_candidates))
        Candidates by decreasing score; ties go to the lower id.  Padded with
        ``-1`` where a row has too few allowed candidates.
    values : ndarray, same shape
        The matching scores (dtype of ``scores``, at least float32), padded
        with ``-np.finfo(np.float32).max``.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be 2-D")
    if exclude is None:
        exclude = np.zeros(scores.shape, dtype=bool)
    else:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != scores.shape:
            raise ValueError("exclude must have the same shape as scores")
    n_queries, n_candidates = scores.shape
    width = max(0, min(int(N), n_candidates))
    vdtype = np.result_type(scores.dtype, np.float32)
    ids = np.full((n_queries, width), -1, dtype=np.int64)
    values = np.full((n_queries, width), -np.finfo(np.float32).max, dtype=vdtype)
    for q in range(n_queries):
        allowed = np.flatnonzero(~exclude[q])  # ascending ids
        order = allowed[np.argsort(-scores[q, allowed], kind="stable")]
        order = order[:width]
        ids[q, :len(order)] = order
        values[q, :len(order)] = scores[q, order]
    return ids, values


# ----------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------
def random_problem(seed, n_users=9, n_items=7, density=0.35, negative=False,
                   empty_rows=True, k=3, dtype=np.float64):
    """Small random test problem.

    Parameters
    ----------
    seed : int
    n_users, n_items : int
    density : float
        Probability that an entry is stored.
    negative : bool
        If True, roughly a third of the stored values are negated (at least
        one, when there is more than one stored entry).
    empty_rows : bool
        If True, one random user row and one random item column are emptied.
        If False, every user row and item column is given at least one entry.
    k : int
    dtype : numpy dtype of ``R.data``, ``X`` and ``Y``.

    Returns
    -------
    R : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Stored magnitudes lie in ``[0.5, 3)``.
    X : ndarray, shape (n_users, k), ``standard_normal * 0.3``
    Y : ndarray, shape (n_items, k), ``standard_normal * 0.3``
    """
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    values = rng.uniform(0.5, 3.0, size=(n_users, n_items))
    if empty_rows:
        if n_users < 2 or n_items < 2:
            raise ValueError("empty_rows=True needs n_users >= 2 and n_items >= 2")
        mask[rng.integers(n_users), :] = False
        mask[:, rng.integers(n_items)] = False
    else:
        for u in range(n_users):
            if not mask[u].any():
                mask[u, rng.integers(n_items)] = True
        for i in range(n_items):
            if not mask[:, i].any():
                mask[rng.integers(n_users), i] = True
    if negative:
        flip = rng.random((n_users, n_items)) < 1.0 / 3.0
        stored = np.argwhere(mask)
        if len(stored) > 1 and not (flip & mask).any():
            u, i = stored[rng.integers(len(stored))]
            flip[u, i] = True
        values = np.where(flip, -values, values)
    rows, cols = np.nonzero(mask)
    R = sp.csr_matrix((values[rows, cols].astype(dtype), (rows, cols)),
                      shape=(n_users, n_items))
    R.sort_indices()
    X = (rng.standard_normal((n_users, k)) * 0.3).astype(dtype)
    Y = (rng.standard_normal((n_items, k)) * 0.3).astype(dtype)
    return R, X, Y
