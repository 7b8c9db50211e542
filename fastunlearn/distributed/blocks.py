"""Row blocks of a distributed model and the work workers do on them
(docs/design.md, section 9).

A :class:`Block` holds a contiguous range of rows of one side: their
factors, gradient bounds and stored entries (columns renumbered to the
block's *needed* rows of the other side) and, as an owner, which of its
rows each block of the other side needs (its routes).  Every function is
pure: a task may run twice (a retry after a lost worker), and a request
that fails must leave the committed blocks as they were.  They import
nothing from dask and compute with the local model's kernels and formulas
(:mod:`fastunlearn.objective`).
"""
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .. import objective as obj
from ..config import single_threaded_blas
from ..forgetting import gram_change_norm


class Rows:
    """The stored-entries view the objective functions take, for a block or
    some of its rows (``side(s).arrays()`` gives the CSR arrays)."""

    def __init__(self, indptr, indices, values):
        self.indptr, self.indices, self.values = indptr, indices, values

    def side(self, side):
        return self

    def arrays(self):
        return self.indptr, self.indices, self.values


@dataclass(frozen=True)
class Block:
    """Rows ``start .. start + len(F)`` of ``side``: ``indptr``, ``indices``
    (positions in ``needed``, the sorted global ids of the other side's rows
    the entries touch), ``values``, factors ``F``, gradient ``bounds``
    (exact after a measure) and ``routes`` (block of the other side -> the
    local rows it needs)."""

    side: str
    start: int
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    needed: np.ndarray
    F: np.ndarray
    bounds: np.ndarray
    routes: dict

    @property
    def n(self):
        return self.F.shape[0]

    def rows(self):
        return Rows(self.indptr, self.indices, self.values)

    def summary(self):
        """All the driver keeps of the rows: (max bound, max row norm, sum of
        squared bounds, sum of squared norms, the same weighted by each row's
        entries; the last two give ``Objective.penalty``)."""
        if not self.n:
            return (0.0, 0.0, 0.0, 0.0, 0.0)
        norms = obj.squared_norms(self.F)
        return (float(self.bounds.max()), float(np.sqrt(norms.max())),
                float(self.bounds @ self.bounds), float(norms.sum()),
                float(norms @ np.diff(self.indptr)))


def make_block(side, start, csr_rows, F, routes):
    """A block from its rows of a global CSR (columns = global ids)."""
    needed = np.unique(csr_rows.indices).astype(np.int64)
    local = np.searchsorted(needed, csr_rows.indices).astype(csr_rows.indices.dtype)
    return Block(side, int(start), csr_rows.indptr.copy(), local, csr_rows.data.copy(), needed,
                 np.ascontiguousarray(F).copy(), np.full(F.shape[0], np.inf), routes)


def _xy(side, mine, other):
    return (mine, other) if side == "users" else (other, mine)


def with_factors(block, F):
    """``block`` with factors ``F`` (its rows' new values) and stale bounds."""
    return replace(block, F=np.ascontiguousarray(F, block.F.dtype).copy(),
                   bounds=np.full(block.n, np.inf))


def take_route(block, target):
    """The rows of ``block`` the other side's block ``target`` needs."""
    return block.F[block.routes[target]]


def take_ids(block, ids):
    """The rows of ``block`` with global ids ``ids``."""
    return block.F[np.asarray(ids, np.int64) - block.start]


def _other(pieces, block):
    """One array of the other side's rows from the owners' pieces, in order."""
    if not len(pieces):
        return np.zeros((0, block.F.shape[1]), block.F.dtype)
    return np.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]


def gram(block):
    """``F^T F`` (float64) of the block's rows."""
    return obj.gram64(block.F)


def _sub(block, local_rows, ids=None):
    """The entries of ``local_rows`` as their own CSR; columns as positions in
    the sorted global ``ids`` (which hold them all), or in ``needed``."""
    if local_rows is None:
        return block.rows()
    starts, ends = block.indptr[local_rows], block.indptr[local_rows + 1]
    flat = np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in zip(starts, ends)]
                          + [np.zeros(0, np.int64)])
    cols = block.indices[flat] if ids is None else \
        np.searchsorted(ids, block.needed[block.indices[flat]]).astype(block.indices.dtype)
    indptr = np.concatenate([[0], np.cumsum(ends - starts)]).astype(block.indptr.dtype)
    return Rows(indptr, cols, block.values[flat])


def sweep(block, pieces, gram_other, spec, solver, relaxation=None, local_rows=None, ids=None):
    """Solve the rows ``local_rows`` (default: all) of ``block`` against the
    other side's rows ``ids`` (default: ``needed``), given as pieces, with
    ``solver = (use_cg, cg_steps, cg_rtol)``; over-relaxed by
    ``relaxation`` if given.  The bounds are stale (infinite) afterwards."""
    threads = spec.threads()  # resolved on the worker
    other = _other(pieces, block)
    rows = obj.all_rows(block.n) if local_rows is None else np.asarray(local_rows, np.int64)
    mine = block.F.copy() if local_rows is None else block.F[rows].copy()
    use_cg, cg_steps, cg_rtol = solver
    obj.solve_rows(spec.objective, _sub(block, local_rows, ids), *_xy(block.side, mine, other),
                   block.side, obj.all_rows(len(rows)), use_cg=use_cg, cg_steps=cg_steps,
                   num_threads=threads, cg_rtol=cg_rtol,
                   base=obj.dense_part(spec.objective, other, threads, gram=gram_other))
    F = block.F.copy()
    F[rows] = mine if relaxation is None else block.F[rows] + relaxation * (mine - block.F[rows])
    return replace(block, F=F, bounds=np.full(block.n, np.inf))


def measure(block, pieces, gram_other, spec):
    """Exact gradient norms of every row: (new block, data term of its entries)."""
    threads = spec.threads()
    other = _other(pieces, block)
    losses = np.zeros(block.n)
    norms = obj.gradient_norms(spec.objective, block.rows(), *_xy(block.side, block.F, other),
                               block.side, num_threads=threads, losses=losses,
                               base=obj.dense_part(spec.objective, other, threads,
                                                   gram=gram_other))
    return replace(block, bounds=norms), float(losses.sum())


def entries_of(block, local_rows):
    """Global ids of the other side in the stored entries of ``local_rows``."""
    local_rows = np.asarray(local_rows, np.int64)
    parts = [block.indices[block.indptr[r]:block.indptr[r + 1]] for r in local_rows]
    return block.needed[np.unique(np.concatenate(parts + [np.zeros(0, np.int64)]))]


def liked(block, ids):
    """Global other-side ids of each row ``ids`` (global) of ``block``."""
    return [block.needed[block.indices[block.indptr[r]:block.indptr[r + 1]]].astype(np.int64)
            for r in np.asarray(ids, np.int64) - block.start]


def owners_of(block, local_rows, offsets_other):
    """Blocks of the other side (by their boundaries) holding a partner of
    ``local_rows``: computed here, so that the partners' ids need not travel."""
    ids = entries_of(block, local_rows)
    return np.unique(np.searchsorted(offsets_other, ids, side="right") - 1).tolist()


def _positions(block, local_rows, other_ids):
    """Position in the entries of each pair (``local_rows[j]``,
    ``other_ids[j]`` global), -1 where not stored (entries sorted by row
    then column have sorted keys ``row * width + column``)."""
    local_rows = np.asarray(local_rows, np.int64)
    other_ids = np.asarray(other_ids, np.int64)
    if not len(block.indices) or not len(local_rows):
        return np.full(len(local_rows), -1, np.int64)
    width = int(max(block.needed[-1] if len(block.needed) else 0, other_ids.max())) + 1
    keys = np.repeat(np.arange(block.n, dtype=np.int64), np.diff(block.indptr)) * width \
        + block.needed[block.indices]
    wanted = local_rows * width + other_ids
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, at, -1)


def stored(block, ids, other_ids):
    """Whether each pair (``ids[j]``, ``other_ids[j]``; global) is stored."""
    return _positions(block, np.asarray(ids, np.int64) - block.start, other_ids) >= 0


def remove(block, local_rows, other_ids):
    """``block`` without the (stored) entries (local_rows[j], other_ids[j])."""
    at = _positions(block, local_rows, other_ids)
    if np.any(at < 0):
        raise ValueError("an entry to remove is not stored in its block")
    keep = np.ones(len(block.indices), dtype=bool)
    keep[at] = False
    indptr = np.concatenate([[0], np.cumsum(keep)])[block.indptr].astype(block.indptr.dtype)
    return replace(block, indptr=indptr, indices=block.indices[keep], values=block.values[keep])


def check(block, drift, tol):
    """Apply the Gram change ``drift`` (k x k, or None) the rows have not yet
    seen to their bounds (it moves a row's gradient by exactly ``drift f``)
    and list the rows now over ``tol``: (new block, local rows)."""
    bounds = block.bounds
    if drift is not None:
        bounds = bounds + np.sqrt(obj.squared_norms(block.F.astype(np.float64) @ drift))
    return replace(block, bounds=bounds), np.flatnonzero(bounds > tol)


def _moved(objective, old, new):
    """The Gram change and its spectral norm of rows moving ``old`` -> ``new``."""
    if not objective.implicit or not len(old):
        return None, 0.0
    delta = new.T @ new - old.T @ old
    return delta, gram_change_norm(old, new, delta)


def solve(block, local_rows, ids, pieces, gram_other, spec, removed_terms=None):
    """Re-solve ``local_rows`` exactly against the other side's rows ``ids``
    (the pieces, in order) and say what that did to everything else.

    ``removed_terms`` (users only): the block before a removal, whose data
    term of the rows gives the removal's share of the loss change.

    Returns (new block, info): ``solved``, ``raise_ids`` / ``raise_by`` (the
    other side's rows whose bounds rise through shared entries, and by how
    much), ``delta`` (the Gram change), ``spectral`` (its norm), ``dloss``
    (the data term's change) and ``summary``.
    """
    threads, objective = spec.threads(), spec.objective
    local_rows, ids = np.asarray(local_rows, np.int64), np.asarray(ids, np.int64)
    other = _other(pieces, block)
    every = obj.all_rows(len(local_rows))
    sub = _sub(block, local_rows, ids)
    dloss = 0.0
    if removed_terms is not None:
        before = _sub(removed_terms, local_rows, ids)
        for data, sign in ((before, -1.0), (sub, 1.0)):
            dloss += sign * obj.data_loss(objective, data, block.side, every,
                                          block.F[local_rows], other, num_threads=threads)
    mine = block.F[local_rows].copy()
    old, new = mine.astype(np.float64), mine
    old_terms, norms, new_terms = obj.solve_measured(
        objective, sub, *_xy(block.side, mine, other), block.side, every, num_threads=threads,
        base=obj.dense_part(objective, other, threads, gram=gram_other))
    F, bounds = block.F.copy(), block.bounds.copy()
    F[local_rows], bounds[local_rows] = mine, norms
    new = mine.astype(np.float64)
    raises = np.zeros(len(ids))
    obj.raise_partner_bounds(objective, sub, block.side, every, old, new, other, raises)
    hit = np.flatnonzero(raises)
    delta, spectral = _moved(objective, old, new)
    out = replace(block, F=F, bounds=bounds)
    return out, {"solved": len(local_rows), "raise_ids": ids[hit], "raise_by": raises[hit],
                 "delta": delta, "spectral": spectral, "summary": out.summary(),
                 "dloss": dloss + float(new_terms.sum() - old_terms.sum())}


# ---------------------------------------------------------------- owners' shares
# A row with many partners in a block (a popular item after one user's
# forget) is measured and solved from what the partners' owner computes:
# k numbers a row for its gradient, k (k + 1) / 2 + k for its normal
# equations, however many partners it has (docs/design.md, section 9).

def _partner_entries(block, ids, objective):
    """The block's entries whose other-side id is in ``ids`` (global,
    sorted): (their local rows, their position in ``ids``, values, a, b)."""
    entries = np.flatnonzero(np.isin(block.needed, ids)[block.indices])
    owner = np.searchsorted(block.indptr, entries, side="right") - 1
    which = np.searchsorted(ids, block.needed[block.indices[entries]])
    values = block.values[entries]
    return (owner, which, values, *objective.entry_weights(values))


def _spread(weights, which, F, n):
    """``out[i] = sum of weights[e] F[e] over the entries e with which[e] == i``."""
    spread = sp.csr_matrix((weights, (which, np.arange(len(which)))), shape=(n, len(which)))
    return np.asarray(spread @ F)


def partial_gradients(block, ids, X, objective):
    """This block's part of the gradients of the other side's rows ``ids``
    (global, sorted; factors ``X``): ``sum_e (a_e (x . f_e) - b_e) f_e`` over
    the entries between them and this block's rows (float64)."""
    ids = np.asarray(ids, np.int64)
    owner, which, _, a, b = _partner_entries(block, ids, objective)
    mine = block.F[owner].astype(np.float64)
    dots = np.einsum("ij,ij->i", mine, np.asarray(X, np.float64)[which])
    return _spread(a * dots - b, which, mine, len(ids))


def normal_parts(block, ids, objective):
    """This block's share of the normal equations of the other side's rows
    ``ids``: ``sum_e a_e f_e f_e^T`` (packed upper triangle, factors' dtype)
    and ``sum_e b_e f_e`` (float64)."""
    ids = np.asarray(ids, np.int64)
    k = block.F.shape[1]
    upper = np.triu_indices(k)
    M = np.zeros((len(ids), len(upper[0])), block.F.dtype)
    owner, which, _, a, b = _partner_entries(block, ids, objective)
    f = block.F[owner].astype(np.float64)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(ids) + 1))
    with single_threaded_blas():  # many small products: a BLAS pool only adds waits
        for i in range(len(ids)):
            group = order[bounds[i]:bounds[i + 1]]
            if len(group):
                M[i] = ((f[group] * a[group, None]).T @ f[group])[upper]
    return M, _spread(b, which, f, len(ids))


def _dense(block, local_rows, gram_other, objective):
    """Each row's part of ``A`` outside its entries: ``lambda_i I`` (plus
    the other side's Gram matrix when implicit), float64 (n, k, k)."""
    k = block.F.shape[1]
    lam = objective.row_regularization(np.diff(block.indptr)[local_rows])
    A = lam[:, None, None] * np.eye(k)
    return A + np.asarray(gram_other, np.float64) if objective.implicit else A


def solve_parts(block, local_rows, parts, gram_other, objective):
    """Re-solve ``local_rows`` exactly from the owners' shares
    (:func:`normal_parts`), in float64.  Returns (new block, info) as
    :func:`solve`, except that the solved rows' bounds are left infinite and
    the raises to the owners (:func:`partner_work`, then
    :func:`finish_norms`); ``moves`` holds the rows' (old, new) values."""
    local_rows = np.asarray(local_rows, np.int64)
    n, k = len(local_rows), block.F.shape[1]
    upper = np.triu_indices(k)
    M, v = np.zeros((n, k, k)), np.zeros((n, k))
    for packed, rhs in parts:
        M[:, upper[0], upper[1]] += packed
        M[:, upper[1], upper[0]] += packed * (upper[0] != upper[1])
        v += rhs
    A = M + _dense(block, local_rows, gram_other, objective)
    old = block.F[local_rows].astype(np.float64)
    with single_threaded_blas():
        try:  # one batched LAPACK call for all the rows
            new = np.linalg.solve(A, v[..., None])[..., 0] if n else old.copy()
        except np.linalg.LinAlgError:
            new = old.copy()
            for j in range(n):  # a singular system keeps its row, as the kernels do
                try:
                    new[j] = np.linalg.solve(A[j], v[j])
                except np.linalg.LinAlgError:
                    pass
    new = new.astype(block.F.dtype).astype(np.float64)  # the values the block keeps

    def terms(y):  # data terms up to a constant: y^T M y - 2 v . y
        return float(np.einsum("ij,ijk,ik->", y, M, y) - 2 * np.einsum("ij,ij->", v, y))

    F, bounds = block.F.copy(), block.bounds.copy()
    F[local_rows], bounds[local_rows] = new, np.inf
    delta, spectral = _moved(objective, old, new)
    return replace(block, F=F, bounds=bounds), {
        "solved": n, "dloss": terms(new) - terms(old), "delta": delta, "spectral": spectral,
        "moves": (old, new)}


def partner_work(block, ids, moves, objective):
    """What moving the other side's rows ``ids`` by ``moves = (old, new)``
    does to this block's rows, done where they live: their bounds rise
    through the shared entries (the kernels' ``raise_partner_bounds``), and
    the moved rows get this block's share of their gradients
    (:func:`partial_gradients`).  Returns (new block, (summary, partials))."""
    ids = np.asarray(ids, np.int64)
    old, new = (np.ascontiguousarray(m, np.float64) for m in moves)
    owner, which, values, a, b = _partner_entries(block, ids, objective)
    bounds = block.bounds.copy()
    order = np.argsort(which, kind="stable")  # the entries as rows of the moved side
    indptr = np.searchsorted(which[order], np.arange(len(ids) + 1)).astype(np.int64)
    moved = Rows(indptr, owner[order].astype(np.int64),
                 np.ascontiguousarray(values[order], dtype=block.F.dtype))
    obj.raise_partner_bounds(objective, moved, obj.other_side(block.side), obj.all_rows(len(ids)),
                             old, new, block.F, bounds)
    f = block.F[owner].astype(np.float64)
    partials = _spread(a * np.einsum("ij,ij->i", f, new[which]) - b, which, f, len(ids))
    out = replace(block, bounds=bounds)
    return out, (out.summary(), partials)


def finish_norms(block, local_rows, partials, gram_other, objective, tol):
    """Exact gradient norms of ``local_rows`` from the owners' partial sums
    and the dense part: (new block with them as bounds, rows over ``tol``)."""
    local_rows = np.asarray(local_rows, np.int64)
    x = block.F[local_rows].astype(np.float64)
    lam = objective.row_regularization(np.diff(block.indptr)[local_rows])
    g = lam[:, None] * x + sum(partials)
    if objective.implicit:
        g += x @ gram_other
    norms = np.sqrt(obj.squared_norms(g))
    bounds = block.bounds.copy()
    bounds[local_rows] = norms
    return replace(block, bounds=bounds), local_rows[norms > tol]


def raise_bounds(block, ids, amounts):
    """``block`` with the bounds of rows ``ids`` (global) raised by ``amounts``."""
    bounds = block.bounds.copy()
    np.add.at(bounds, np.asarray(ids, np.int64) - block.start, amounts)
    new = replace(block, bounds=bounds)
    return new, new.summary()


def to_csr_part(block):
    """(indptr, global indices, values) of the block's entries."""
    return block.indptr, block.needed[block.indices], block.values


def top_n(block, queries, liked_ids, N, filter_ids):
    """Best ``N`` rows of ``block`` for each query vector, without each
    query's ``liked_ids`` and ``filter_ids`` (global): (ids, scores)."""
    scores = queries @ block.F.T
    ids = np.arange(block.start, block.start + block.n)
    if filter_ids is not None and len(filter_ids):
        scores[:, np.isin(ids, filter_ids)] = -np.inf
    for q, own in enumerate(liked_ids):
        inside = own[(own >= block.start) & (own < block.start + block.n)]
        scores[q, inside - block.start] = -np.inf
    n = min(N, block.n)
    if not n:
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), scores.dtype)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    return ids[part], np.take_along_axis(scores, part, axis=1)
