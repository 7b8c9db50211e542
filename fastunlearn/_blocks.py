"""Row blocks of a distributed model and the work done on them by workers
(docs/design.md, section 9).

A :class:`Block` holds a contiguous range of rows of one side (users or
items): their factors, their gradient bounds and their stored entries, with
columns renumbered to the block's *needed* rows of the other side, and, as
an owner, which of its rows each block of the other side needs (its
routes).  Every function here is pure: it takes blocks and small arrays and
returns new blocks, never editing its input, because a task may run twice
(a retry after a lost worker) and the request that failed must leave the
committed blocks as they were.  They import nothing from dask: the driver
in :mod:`fastunlearn.dask` schedules them, and they run on the workers with
the same compiled kernels as a local model.
"""
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from . import objective as obj
from .config import effective_n_threads, single_threaded_blas
from .forgetting import gram_change_norm  # the local engine's bound


class _Rows:
    """The stored-entries view the objective functions expect, for one block
    (or a few of its rows): ``side(s).arrays()`` gives the CSR arrays."""

    def __init__(self, indptr, indices, values):
        self.indptr, self.indices, self.values = indptr, indices, values

    def side(self, side):
        return self

    def arrays(self):
        return self.indptr, self.indices, self.values

    def counts(self, side):
        return np.diff(self.indptr)


@dataclass(frozen=True)
class Block:
    """Rows ``start .. start + len(F)`` of one side.

    Attributes
    ----------
    side : {"users", "items"}
    start : int
        Global id of the first row.
    indptr, indices, values : arrays
        The rows' stored entries; ``indices`` are positions in ``needed``.
    needed : int64 array
        Sorted global ids of the other side's rows these entries touch.
    F : array (n, k)
        The rows' factors.
    bounds : float64 array (n,)
        Upper bounds of the rows' gradient norms (exact after a measure).
    routes : dict
        Block number of the other side -> this block's local rows that
        block needs (Spark's out-blocks).
    """

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
        return _Rows(self.indptr, self.indices, self.values)

    def summary(self):
        """(max bound, max row norm, sum of squared bounds, sum of squared
        row norms, the same weighted by each row's entries): all the driver
        keeps of a block's rows (the last two give the loss's penalty,
        ``Objective.penalty``)."""
        norms = obj.squared_norms(self.F)
        if not self.n:
            return (0.0, 0.0, 0.0, 0.0, 0.0)
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


def take_route(block, target):
    """The rows of ``block`` the other side's block ``target`` needs."""
    return block.F[block.routes[target]]


def take_ids(block, ids):
    """The rows of ``block`` with global ids ``ids``."""
    return block.F[np.asarray(ids, np.int64) - block.start]


def gather_pieces(pieces, block):
    """One array of the other side's rows from the owners' pieces, in order
    (none, for a block without entries)."""
    if not len(pieces):
        return np.zeros((0, block.F.shape[1]), block.F.dtype)
    return np.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]


def gram(block):
    """``F^T F`` (float64) of the block's rows."""
    return obj.gram64(block.F)


def sweep(block, pieces, gram_other, objective, solver, threads, relaxation=None):
    """Solve every row of ``block`` against the other side's ``needed`` rows
    (given as pieces); over-relaxed by ``relaxation`` if given.  The bounds
    are stale afterwards (infinite) until :func:`measure`."""
    threads = effective_n_threads(threads)  # 0: the worker's OMP_NUM_THREADS or CPUs
    other = gather_pieces(pieces, block)
    F = block.F.copy()
    X, Y = _xy(block.side, F, other)
    use_cg, cg_steps, cg_rtol = solver
    obj.solve_rows(objective, block.rows(), X, Y, block.side, obj.all_rows(block.n),
                   use_cg=use_cg, cg_steps=cg_steps, num_threads=threads, cg_rtol=cg_rtol,
                   base=obj.dense_part(objective, other, threads, gram=gram_other))
    if relaxation is not None:
        F = block.F + relaxation * (F - block.F)
    return replace(block, F=F, bounds=np.full(block.n, np.inf))


def measure(block, pieces, gram_other, objective, threads):
    """Exact gradient norms of every row: (new block, data term of the
    block's entries)."""
    threads = effective_n_threads(threads)  # 0: the worker's OMP_NUM_THREADS or CPUs
    other = gather_pieces(pieces, block)
    X, Y = _xy(block.side, block.F, other)
    losses = np.zeros(block.n)
    norms = obj.gradient_norms(objective, block.rows(), X, Y, block.side, num_threads=threads,
                               base=obj.dense_part(objective, other, threads, gram=gram_other),
                               losses=losses)
    return replace(block, bounds=norms), float(losses.sum())


def entries_of(block, local_rows):
    """Global ids of the other side in the stored entries of ``local_rows``."""
    local_rows = np.asarray(local_rows, np.int64)
    if not len(local_rows):
        return np.zeros(0, np.int64)
    parts = [block.indices[block.indptr[r]:block.indptr[r + 1]] for r in local_rows]
    return block.needed[np.unique(np.concatenate(parts))]


def owners_of(block, local_rows, offsets_other):
    """Blocks of the other side (by their row boundaries ``offsets_other``)
    that hold a partner of ``local_rows``: computed here, so that the
    partners' ids need not travel."""
    ids = entries_of(block, local_rows)
    return np.unique(np.searchsorted(offsets_other, ids, side="right") - 1).tolist()


def _positions(block, local_rows, other_ids):
    """Position in the block's entries of each pair (``local_rows[j]``,
    ``other_ids[j]`` global), -1 where it is not stored: entries sorted by
    row then column have sorted keys ``row * width + column``."""
    local_rows = np.asarray(local_rows, np.int64)
    other_ids = np.asarray(other_ids, np.int64)
    if not len(block.indices) or not len(local_rows):
        return np.full(len(local_rows), -1, np.int64)
    width = int(max(block.needed[-1] if len(block.needed) else 0, other_ids.max())) + 1
    rows = np.repeat(np.arange(block.n, dtype=np.int64), np.diff(block.indptr))
    keys = rows * width + block.needed[block.indices]
    wanted = local_rows * width + other_ids
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, at, -1)


def stored(block, ids, other_ids):
    """Whether each pair (``ids[j]`` of this block's side, ``other_ids[j]``),
    global ids, is stored in the block."""
    return _positions(block, np.asarray(ids, np.int64) - block.start, other_ids) >= 0


def _sub(block, local_rows, ids):
    """The entries of ``local_rows`` as their own CSR, with columns renumbered
    to positions in the sorted global ``ids`` (which must hold them all)."""
    starts, ends = block.indptr[local_rows], block.indptr[local_rows + 1]
    counts = (ends - starts).astype(np.int64)
    flat = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(local_rows) \
        else np.zeros(0, np.int64)
    flat = flat.astype(np.int64)
    cols = np.searchsorted(ids, block.needed[block.indices[flat]])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(block.indptr.dtype)
    return _Rows(indptr, cols.astype(block.indices.dtype), block.values[flat])


def remove(block, local_rows, other_ids):
    """``block`` without the entries (local_rows[j], other_ids[j]) (global
    ids of the other side; all stored)."""
    at = _positions(block, local_rows, other_ids)
    if np.any(at < 0):
        raise ValueError("an entry to remove is not stored in its block")
    keep = np.ones(len(block.indices), dtype=bool)
    keep[at] = False
    kept_before = np.concatenate([[0], np.cumsum(keep)])  # kept entries before each position
    indptr = kept_before[block.indptr].astype(block.indptr.dtype)
    return replace(block, indptr=indptr, indices=block.indices[keep], values=block.values[keep])


def check(block, drift, tol):
    """Apply the Gram change ``drift`` (k x k, or None) the block's rows have
    not yet seen to their bounds (a row's gradient moves by exactly
    ``drift f`` through it) and list the rows whose bound now exceeds
    ``tol``: (new block, local rows)."""
    bounds = block.bounds
    if drift is not None:
        change = block.F.astype(np.float64) @ drift
        bounds = bounds + np.sqrt(obj.squared_norms(change))
    rows = np.flatnonzero(bounds > tol)
    return replace(block, bounds=bounds), rows


def solve(block, local_rows, ids, pieces, gram_other, objective, threads,
          removed_terms=None):
    """Re-solve ``local_rows`` exactly, against the other side's rows ``ids``
    (the pieces, in order), and say what that did to everything else.

    ``removed_terms`` (users only) asks for the data term of the rows as
    the block held them before (``removed_terms`` is that older block), so
    that the loss change of a removal is counted once.

    Returns (new block, info) with info a dict: ``solved`` (count),
    ``raise_ids`` / ``raise_by`` (the other side's rows whose gradient
    bounds rise, and by how much, through shared entries), ``delta`` (the
    change of ``F^T F``), ``spectral`` (its spectral norm), ``dloss`` (the
    change of the data term) and ``summary``.
    """
    threads = effective_n_threads(threads)  # 0: the worker's OMP_NUM_THREADS or CPUs
    local_rows = np.asarray(local_rows, np.int64)
    ids = np.asarray(ids, np.int64)
    other = gather_pieces(pieces, block)
    base = obj.dense_part(objective, other, threads, gram=gram_other)
    bounds = block.bounds.copy()
    info = {"solved": 0, "raise_ids": np.zeros(0, np.int64), "raise_by": np.zeros(0),
            "delta": None, "spectral": 0.0, "dloss": 0.0}
    dloss = 0.0
    if removed_terms is not None:
        # the data term of these rows with their entries before the removal,
        # at the current factors: the removal's share of the loss change
        before = _sub(removed_terms, local_rows, ids)
        rows_x = block.F[local_rows]
        dloss -= obj.data_loss(objective, before, block.side, obj.all_rows(len(local_rows)),
                               rows_x, other, num_threads=threads)
        now = _sub(block, local_rows, ids)
        dloss += obj.data_loss(objective, now, block.side, obj.all_rows(len(local_rows)),
                               rows_x, other, num_threads=threads)
    F = block.F
    if len(local_rows):
        sub = _sub(block, local_rows, ids)
        mine = F[local_rows].copy()
        old = mine.copy()
        X, Y = _xy(block.side, mine, other)
        old_terms, norms, new_terms = obj.solve_measured(
            objective, sub, X, Y, block.side, obj.all_rows(len(local_rows)),
            num_threads=threads, base=base)
        F = F.copy()
        F[local_rows] = mine
        bounds[local_rows] = norms
        dloss += float(new_terms.sum() - old_terms.sum())
        old64, new64 = old.astype(np.float64), mine.astype(np.float64)
        raises = np.zeros(len(ids))
        obj.raise_partner_bounds(objective, sub, block.side, obj.all_rows(len(local_rows)),
                                 old64, new64, other, raises)
        hit = np.flatnonzero(raises)
        info["raise_ids"], info["raise_by"] = ids[hit], raises[hit]
        if objective.implicit:
            delta = new64.T @ new64 - old64.T @ old64
            info["delta"] = delta
            info["spectral"] = gram_change_norm(old64, new64, delta)
        info["solved"] = len(local_rows)
    new = replace(block, F=F, bounds=bounds)
    info["dloss"] = dloss
    info["summary"] = new.summary()
    return new, info


def solve_plain(block, local_rows, ids, pieces, gram_other, objective, solver, threads):
    """Re-solve ``local_rows`` with the model's own ``solver`` and no
    bookkeeping: the local phase before a washout, which measures
    everything afresh (as the local engine does)."""
    threads = effective_n_threads(threads)  # 0: the worker's OMP_NUM_THREADS or CPUs
    local_rows = np.asarray(local_rows, np.int64)
    if not len(local_rows):
        return block
    other = gather_pieces(pieces, block)
    sub = _sub(block, local_rows, np.asarray(ids, np.int64))
    mine = block.F[local_rows].copy()
    X, Y = _xy(block.side, mine, other)
    use_cg, cg_steps, cg_rtol = solver
    obj.solve_rows(objective, sub, X, Y, block.side, obj.all_rows(len(local_rows)),
                   use_cg=use_cg, cg_steps=cg_steps, num_threads=threads, cg_rtol=cg_rtol,
                   base=obj.dense_part(objective, other, threads, gram=gram_other))
    F = block.F.copy()
    F[local_rows] = mine
    return replace(block, F=F, bounds=np.full(block.n, np.inf))


def _partner_entries(block, ids, objective):
    """The block's entries whose other-side id is in ``ids`` (global,
    sorted): (their local rows, their position in ``ids``, a, b), with the
    entry weights of the kernels' ``_entry`` (implicit: ``a = c - 1``,
    ``b = c [v > 0]``, ``c = alpha |v|``; explicit: ``a = 1``, ``b = v``)."""
    # a mark per needed row, read through the block's column positions: no
    # pass of the (long) entries against ``ids``
    entries = np.flatnonzero(np.isin(block.needed, ids)[block.indices])
    owner = np.searchsorted(block.indptr, entries, side="right") - 1
    which = np.searchsorted(ids, block.needed[block.indices[entries]])
    values = block.values[entries].astype(np.float64)
    if objective.implicit:
        c = objective.alpha * np.abs(values)
        return owner, which, c - 1.0, np.where(values > 0, c, 0.0)
    return owner, which, np.ones_like(values), values


def _spread(weights, which, F, n):
    """``out[i] = sum of weights[e] F[e] over the entries e with which[e] == i``."""
    spread = sp.csr_matrix((weights, (which, np.arange(len(which)))), shape=(n, len(which)))
    return np.asarray(spread @ F)


def partial_gradients(block, ids, X, objective):
    """The part of the gradients of the other side's rows ``ids`` (global,
    sorted; factors ``X``) that this block's entries contribute,
    ``sum_e (a_e (x . f_e) - b_e) f_e`` over the entries e between them and
    this block's rows f_e (float64, one row per id; zero where none).  A
    block that re-checks rows gets these sums from the owners of their
    partners instead of the partners' factors: k numbers per row and
    owner, however many partners the row has."""
    ids = np.asarray(ids, np.int64)
    owner, which, a, b = _partner_entries(block, ids, objective)
    if not len(owner):
        return np.zeros((len(ids), block.F.shape[1]))
    mine = block.F[owner].astype(np.float64)
    dots = np.einsum("ij,ij->i", mine, np.asarray(X, np.float64)[which])
    return _spread(a * dots - b, which, mine, len(ids))


def normal_parts(block, ids, objective):
    """This block's share of the normal equations of the other side's rows
    ``ids`` (global, sorted): ``sum_e a_e f_e f_e^T`` as its packed upper
    triangle, in the factors' dtype, and ``sum_e b_e f_e`` (float64), over
    the entries e between each row and this block's rows f_e.

    What an owner sends instead of the partners' factors when a row has
    many of them in this block (a popular item solved after one user's
    forget): k (k + 1) / 2 + k numbers a row, against k a partner."""
    ids = np.asarray(ids, np.int64)
    k = block.F.shape[1]
    upper = np.triu_indices(k)
    M = np.zeros((len(ids), len(upper[0])), block.F.dtype)
    owner, which, a, b = _partner_entries(block, ids, objective)
    if not len(owner):
        return M, np.zeros((len(ids), k))
    f = block.F[owner].astype(np.float64)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(ids) + 1))
    with single_threaded_blas():  # many small products: a BLAS pool only adds waits
        for i in range(len(ids)):
            group = order[bounds[i]:bounds[i + 1]]
            if len(group):
                rows = f[group]
                M[i] = ((rows * a[group, None]).T @ rows)[upper]
    return M, _spread(b, which, f, len(ids))


def solve_parts(block, local_rows, parts, gram_other, objective):
    """Re-solve ``local_rows`` exactly from the owners' shares of their
    normal equations (:func:`normal_parts`), in float64.

    Returns (new block, info): info as :func:`solve`'s except that the
    solved rows' bounds are left infinite and the partners' raises are not
    computed here (the owners do both, :func:`partner_work`, and
    :func:`finish_norms` measures the rows); ``moves`` holds the rows'
    (old, new) values in float64 for them.
    """
    local_rows = np.asarray(local_rows, np.int64)
    n, k = len(local_rows), block.F.shape[1]
    upper = np.triu_indices(k)
    M, v = np.zeros((n, k, k)), np.zeros((n, k))
    for packed, rhs in parts:
        full = np.zeros((n, k, k))
        full[:, upper[0], upper[1]] = packed
        full[:, upper[1], upper[0]] = packed
        M += full
        v += rhs
    lam = objective.regularization
    if objective.implicit:
        A = M + (np.asarray(gram_other, np.float64) + lam * np.eye(k))
    else:
        counts = np.diff(block.indptr)[local_rows].astype(np.float64)
        scale = lam * (counts if objective.weighted else np.ones(n))
        A = M + scale[:, None, None] * np.eye(k)
    old = block.F[local_rows].astype(np.float64)
    try:
        with single_threaded_blas():
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

    F = block.F.copy()
    F[local_rows] = new
    bounds = block.bounds.copy()
    bounds[local_rows] = np.inf
    info = {"solved": n, "dloss": terms(new) - terms(old), "delta": None, "spectral": 0.0,
            "moves": (old, new)}
    if objective.implicit and n:
        delta = new.T @ new - old.T @ old
        info["delta"], info["spectral"] = delta, gram_change_norm(old, new, delta)
    return replace(block, F=F, bounds=bounds), info


def partner_work(block, ids, moves, objective):
    """What moving the other side's rows ``ids`` (global, sorted) from
    ``moves = (old, new)`` does to this block's rows, done where they live:
    their bounds rise through the shared entries (by
    ``|a ((r'.f) r' - (r.f) r) - b (r' - r)|`` an entry, as
    ``_als.raise_partner_bounds``), and the moved rows' gradients get this
    block's share at their new values (:func:`partial_gradients`).

    Returns (new block, (its summary, the partial gradients)).
    """
    ids = np.asarray(ids, np.int64)
    old, new = (np.asarray(m, np.float64) for m in moves)
    owner, which, a, b = _partner_entries(block, ids, objective)
    bounds = block.bounds.copy()
    partials = np.zeros((len(ids), block.F.shape[1]))
    if len(owner):
        f = block.F[owner].astype(np.float64)
        r_old, r_new = old[which], new[which]
        s_old = np.einsum("ij,ij->i", f, r_old)
        s_new = np.einsum("ij,ij->i", f, r_new)
        change = a[:, None] * (s_new[:, None] * r_new - s_old[:, None] * r_old) \
            - b[:, None] * (r_new - r_old)
        np.add.at(bounds, owner, np.sqrt(obj.squared_norms(change)))
        partials = _spread(a * s_new - b, which, f, len(ids))
    out = replace(block, bounds=bounds)
    return out, (out.summary(), partials)


def finish_norms(block, local_rows, partials, gram_other, objective, tol):
    """Exact gradient norms of ``local_rows`` from the owners' partial sums
    (:func:`partial_gradients`) and the dense part: (new block with those
    norms as bounds, the rows whose norm exceeds ``tol``)."""
    local_rows = np.asarray(local_rows, np.int64)
    x = block.F[local_rows].astype(np.float64)
    if objective.implicit:
        g = x @ gram_other + objective.regularization * x
    else:
        counts = np.diff(block.indptr)[local_rows].astype(np.float64)
        lam = objective.regularization * (counts if objective.weighted else 1.0)
        g = lam[:, None] * x if np.ndim(lam) else lam * x
    for part in partials:
        g = g + part
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


def top_n(block, queries, liked, N, filter_ids):
    """Best ``N`` rows of ``block`` for each query vector, without each
    query's ``liked`` ids and ``filter_ids`` (global): (ids, scores)."""
    scores = queries @ block.F.T
    ids = np.arange(block.start, block.start + block.n)
    if filter_ids is not None and len(filter_ids):
        scores[:, np.isin(ids, filter_ids)] = -np.inf
    for q, own in enumerate(liked):
        inside = own[(own >= block.start) & (own < block.start + block.n)]
        scores[q, inside - block.start] = -np.inf
    n = min(N, block.n)
    if not n:
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), scores.dtype)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    return ids[part], np.take_along_axis(scores, part, axis=1)
