"""The two ALS objectives and the operations on them that every estimator,
fit, forget, loss and certificate share.

An :class:`Objective` says which objective (implicit or explicit) and with
which hyperparameters; the functions here apply it to factors and retained
interactions through the compiled kernels in ``_als``.  Side ``"users"``
means the rows of X (solved against Y, with the user-major interactions);
``"items"`` the rows of Y.
"""
from dataclasses import dataclass

import numpy as np

from . import _als


@dataclass(frozen=True)
class Objective:
    """Which objective the factors minimise (docs/design.md, section 2).

    Attributes
    ----------
    implicit : bool
        Implicit feedback (confidence ``alpha*|r|``, preference ``r > 0``,
        unstored entries c=1, p=0) or explicit ratings (stored entries only).
    regularization : float
        lambda.
    alpha : float
        Confidence scale (implicit only).
    weighted : bool
        Explicit only: weight each row's penalty by its number of ratings
        (ALS-WR).
    """

    implicit: bool
    regularization: float
    alpha: float = 1.0
    weighted: bool = False

    @property
    def weighted_penalty(self):
        """Whether each row's penalty is weighted by its number of stored
        entries (ALS-WR); the one place the loss, the kernels' callers and
        the distributed summaries ask."""
        return self.weighted and not self.implicit

    def entry_weights(self, values):
        """Normal-equation coefficients ``(a, b)`` (float64) of stored
        entries with ``values``, as the kernels' ``_entry`` computes them:
        implicit ``a = c - 1``, ``b = c [v > 0]`` with ``c = alpha |v|``;
        explicit ``a = 1``, ``b = v``.  For code that works on a few rows
        outside the kernels (the Dask owners' shares, docs/design.md,
        section 9); ``tests/test_reference.py`` holds it to the NumPy reference."""
        values = np.asarray(values, np.float64)
        if self.implicit:
            c = self.alpha * np.abs(values)
            return c - 1.0, np.where(values > 0, c, 0.0)
        return np.ones_like(values), values

    def row_regularization(self, counts):
        """Each row's ``lambda`` from its number of stored entries:
        ``lambda * counts`` under ALS-WR, ``lambda`` otherwise (float64)."""
        counts = np.asarray(counts, np.float64)
        return self.regularization * (counts if self.weighted_penalty else np.ones_like(counts))

    def penalty(self, sq, weighted_sq):
        """The regularisation term from the sum of squared row norms
        ``sq`` and the same sum weighted by each row's entries ``weighted_sq``."""
        return self.regularization * (weighted_sq if self.weighted_penalty else sq)


@dataclass(frozen=True)
class Certificate:
    """How far factors are from a stationary point of the objective.

    ``frobenius`` is the norm of all row gradients ``g = A x - b`` (users and
    items together), ``max_row`` the largest single row's norm.  Both are
    zero exactly at a stationary point.  ``exact`` is False when the norms
    are upper bounds proven by the forgetting engine rather than computed
    row by row (the true certificate is then at most these values).
    """

    frobenius: float
    max_row: float
    users_max_row: float
    items_max_row: float
    exact: bool = True

    def __str__(self):
        bound = "" if self.exact else " (upper bound)"
        return f"max_row={self.max_row:.3e} frobenius={self.frobenius:.3e}{bound}"


def other_side(side):
    """The other side's name: ``"items"`` for ``"users"`` and back."""
    return "items" if side == "users" else "users"


def _factors(side, X, Y):
    """(rows being solved or measured, fixed factors of the other side)."""
    return (X, Y) if side == "users" else (Y, X)


def dense_part(objective, other, num_threads, gram=None):
    """The k x k matrix shared by every row of a side: ``Y^T Y + lam I``
    for implicit (explicit has none; a 1 x 1 placeholder is returned).

    ``gram`` (``Y^T Y``, any float dtype) is used when the caller keeps it
    up to date itself, instead of recomputing it from ``other``.
    """
    if not objective.implicit:
        return np.zeros((1, 1), dtype=other.dtype)
    base = _als.gram(other, num_threads) if gram is None else gram.astype(other.dtype)
    base.flat[::base.shape[0] + 1] += objective.regularization
    return base


def all_rows(n):
    return np.arange(n, dtype=np.int64)


def solve_rows(objective, data, X, Y, side, rows, *, use_cg, cg_steps, num_threads,
               base=None, cg_rtol=0.0):
    """Re-solve ``rows`` of one side in place (exactly, or ``cg_steps`` of CG;
    with ``cg_rtol > 0`` CG stops a row once its residual has fallen by that
    factor, ``cg_steps`` then being a cap).

    Returns the number of rows whose system was not positive definite (left
    unchanged); only possible for explicit models with zero regularisation.
    """
    target, other = _factors(side, X, Y)
    indptr, indices, values = data.side(side).arrays()
    if base is None:
        base = dense_part(objective, other, num_threads)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    args = (indptr, indices, values, rows, target, other, base, objective.implicit,
            objective.alpha, objective.regularization, objective.weighted)
    if use_cg:
        _als.solve_cg(*args, cg_steps, num_threads, cg_rtol)
        return 0
    status = np.zeros(len(rows), dtype=np.int32)
    _als.solve_cholesky(*args, status, num_threads)
    return int(np.count_nonzero(status))


def solve_measured(objective, data, X, Y, side, rows, *, num_threads, base=None,
                   exact_above=np.inf):
    """Solve ``rows`` exactly in place, measuring them on the way.

    Returns float64 arrays, one slot per row: each row's data term before
    the solve (as :func:`data_loss`), its gradient norm after it (as
    :func:`gradient_norms`, or an upper bound of it) and its data term after
    it.  Short rows are measured by passes over their entries; long ones
    from the normal equations the solve builds anyway, at O(k^2) a row, the
    norm then bounded by the residual plus what float rounding can hide.
    Rows on which that could exceed ``exact_above`` (the longest ones) are
    measured by passes after all (``_als.solve_cholesky``).
    """
    target, other = _factors(side, X, Y)
    indptr, indices, values = data.side(side).arrays()
    if base is None:
        base = dense_part(objective, other, num_threads)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    status = np.zeros(len(rows), dtype=np.int32)
    measures = np.zeros((len(rows), 3))
    _als.solve_cholesky(indptr, indices, values, rows, target, other, base, objective.implicit,
                        objective.alpha, objective.regularization, objective.weighted, status,
                        num_threads, measures, float(exact_above))
    return measures[:, 0], measures[:, 1], measures[:, 2]


def sweep(objective, data, X, Y, *, use_cg, cg_steps, num_threads):
    """One ALS iteration: every user row, then every item row."""
    failed = 0
    for side, n in (("users", X.shape[0]), ("items", Y.shape[0])):
        failed += solve_rows(objective, data, X, Y, side, all_rows(n), use_cg=use_cg,
                             cg_steps=cg_steps, num_threads=num_threads)
    return failed


def relaxed_sweep(objective, data, X, Y, relaxation, *, use_cg, cg_steps, num_threads,
                  cg_rtol=0.0, work=None):
    """One over-relaxed ALS iteration: each side, users first, moves
    ``relaxation`` times its ALS step, ``F <- F + w (F* - F)`` (solver
    options as :func:`solve_rows`).  ``work`` (``{"users": array like X,
    "items": array like Y}``), if given, holds the rows before the step, so
    that repeated sweeps allocate nothing.

    With the other side fixed the objective is a convex quadratic in each
    row, and ``F*`` minimises it along the step (exactly, or over CG's Krylov
    space, which holds the step), so every ``0 < w < 2`` lowers it, by
    ``w (2 - w)`` times the plain step's decrease; the fixed points are
    ALS's.  Past 1 the iteration moves faster along the directions in which
    plain ALS creeps (successive over-relaxation of block Gauss-Seidel).
    """
    for side, F in (("users", X), ("items", Y)):
        old = F.copy() if work is None else work[side]
        if work is not None:
            np.copyto(old, F)
        solve_rows(objective, data, X, Y, side, all_rows(F.shape[0]), use_cg=use_cg,
                   cg_steps=cg_steps, num_threads=num_threads, cg_rtol=cg_rtol)
        _als.relax(F, old, relaxation, num_threads)


def gradient_norms(objective, data, X, Y, side, rows=None, *, num_threads, base=None,
                   losses=None, other_sq=None):
    """Norm of each row's gradient ``A x - b`` (all rows of ``side`` by default).

    ``losses`` (float64, one slot per row), if given, receives each row's data
    term of the loss (as ``_als.row_losses``) from the same pass.

    With ``other_sq`` (the other side's squared row norms, float64) the pass
    accumulates in the factors' dtype, twice as fast, and returns
    ``(norms, slack)``: the exact norm is within ``slack`` of ``norms``
    (a proven bound, rounding of every step included).
    """
    target, other = _factors(side, X, Y)
    rows = all_rows(target.shape[0]) if rows is None else np.ascontiguousarray(rows, np.int64)
    indptr, indices, values = data.side(side).arrays()
    if base is None:
        base = dense_part(objective, other, num_threads)
    out = np.zeros(len(rows), dtype=np.float64)
    if other_sq is None:
        _als.gradient_norms(indptr, indices, values, rows, target, other, base,
                            objective.implicit, objective.alpha, objective.regularization,
                            objective.weighted, out, num_threads, losses)
        return out
    slack = np.zeros(len(rows), dtype=np.float64)
    _als.gradient_norms(indptr, indices, values, rows, target, other, base,
                        objective.implicit, objective.alpha, objective.regularization,
                        objective.weighted, out, num_threads, losses, slack,
                        np.sqrt(other_sq), float(np.linalg.norm(base.astype(np.float64))))
    return out, slack


def certificate_from_norms(user_norms, item_norms, exact=True):
    """Combine per-row gradient norms (or upper bounds) of both sides."""
    umax = float(user_norms.max()) if len(user_norms) else 0.0
    imax = float(item_norms.max()) if len(item_norms) else 0.0
    frob = float(np.sqrt(np.dot(user_norms, user_norms) + np.dot(item_norms, item_norms)))
    return Certificate(frob, max(umax, imax), umax, imax, exact)


def data_loss(objective, data, side, rows, values, other, *, num_threads):
    """Data term of the loss summed over the stored entries of ``rows`` of
    ``side``, with ``values[j]`` as the factors of ``rows[j]`` and ``other``
    as the other side's (see ``_als.row_losses``)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    indptr, indices, stored = data.side(side).arrays()
    out = np.zeros(len(rows), dtype=np.float64)
    _als.row_losses(indptr, indices, stored, rows, np.ascontiguousarray(values), other,
                    objective.implicit, objective.alpha, out, num_threads)
    return float(out.sum())


def raise_partner_bounds(objective, data, side, rows, old, new, partners, bounds):
    """Add to ``bounds`` (of the other side, in place) what moving ``rows``
    of ``side`` from ``old`` to ``new`` (float64) does to their partners'
    gradients through the entries they share (see
    ``_als.raise_partner_bounds``); ``partners`` are the other side's factors."""
    indptr, indices, values = data.side(side).arrays()
    _als.raise_partner_bounds(indptr, indices, values, np.ascontiguousarray(rows, np.int64),
                              np.ascontiguousarray(old, np.float64),
                              np.ascontiguousarray(new, np.float64), partners,
                              objective.implicit, objective.alpha, bounds)


def gram64(F, block=1024):
    """``F^T F`` accumulated in float64 (kept up to date by forgetting), a
    block of rows at a time: a float64 copy of all of a float32 ``F`` would
    be the largest allocation of a fit's closing measurement."""
    k = F.shape[1]
    out = np.zeros((k, k))
    for start in range(0, F.shape[0], block):
        part = F[start:start + block].astype(np.float64, copy=False)
        out += part.T @ part
    return out


def squared_norms(F):
    return np.einsum("ij,ij->i", F, F, dtype=np.float64)


@dataclass
class Measures:
    """Everything forgetting needs to know about a state, without a pass
    over the data: per-row gradient norms (or proven upper bounds), the data
    term of the loss, factor Gram matrices and squared row norms.

    A request re-measures only the rows it disturbs and updates the rest,
    so consecutive requests never pay a full pass.  Instances are replaced,
    never edited in place by users of the cache.
    """

    user_norms: np.ndarray
    item_norms: np.ndarray
    data_loss: float
    gram_users: np.ndarray
    gram_items: np.ndarray
    sq_users: np.ndarray
    sq_items: np.ndarray
    exact: bool = True

    def certificate(self):
        return certificate_from_norms(self.user_norms, self.item_norms, self.exact)

    def loss(self, objective, data):
        """The objective from the kept pieces (see :func:`loss`)."""
        sq = self.sq_users.sum() + self.sq_items.sum()
        weighted = self.sq_users @ data.counts("users") + self.sq_items @ data.counts("items") \
            if objective.weighted_penalty else None
        total = self.data_loss + objective.penalty(sq, weighted)
        if objective.implicit:  # every entry as unstored: sum_ui (x_u . y_i)^2
            total += float(np.vdot(self.gram_users, self.gram_items))
        return float(total)


def measure(objective, data, X, Y, *, num_threads, bounds=False):
    """Exact :class:`Measures` of (X, Y) on ``data``: one pass per side.

    ``bounds=True``: proven upper bounds of the row gradients instead, from
    the faster pass in the factors' dtype (see :func:`gradient_norms`).
    """
    grams = (gram64(X), gram64(Y)) if objective.implicit else (None, None)
    sq = squared_norms(X), squared_norms(Y)
    user_losses = np.zeros(X.shape[0], dtype=np.float64)
    norms = []
    for side, other, gram, losses, other_sq in (("users", Y, grams[1], user_losses, sq[1]),
                                                ("items", X, grams[0], None, sq[0])):
        out = gradient_norms(objective, data, X, Y, side, num_threads=num_threads,
                             losses=losses, base=dense_part(objective, other, num_threads,
                                                            gram=gram),
                             other_sq=other_sq if bounds else None)
        norms.append(out[0] + out[1] if bounds else out)
    return Measures(*norms, float(user_losses.sum()), *grams, *sq, exact=not bounds)


def loss(objective, data, X, Y, *, num_threads):
    """Value of the objective (unnormalised; docs/design.md, section 2) on ``data``.

    Implicit: the sum over all entries of ``(x_u . y_i)^2`` is
    ``<X^T X, Y^T Y>``; the stored entries then swap that term for their own.
    """
    grams = (gram64(X), gram64(Y)) if objective.implicit else (None, None)
    pieces = Measures(None, None, data_loss(objective, data, "users", all_rows(X.shape[0]), X,
                                            Y, num_threads=num_threads),
                      *grams, squared_norms(X), squared_norms(Y))
    return pieces.loss(objective, data)
