"""Numbered (row, column, value) triples to a canonical float32 CSR matrix,
with repeated pairs combined by policy.

Two stable counting passes (by column, then by row) sort the triples in
O(nnz) without a comparison sort, and keep repeats of a pair in input order,
which is what "last" and "error" need (docs/design.md, section 6).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ..validation import index_dtype
from .columns import Bad

try:  # SciPy's own stable COO -> CSR pass (a C++ loop)
    from scipy.sparse._sparsetools import coo_tocsr as _coo_tocsr
except ImportError:  # pragma: no cover - a SciPy without it
    _coo_tocsr = None

DUPLICATE_POLICIES = ("sum", "last", "max", "error")


class Redo(Exception):
    """An error whose rows are needed after they were freed: read again
    with ``keep=True`` (errors only, so the second read is rare)."""


class Repeat(Exception):
    """A repeated pair under ``duplicates="error"``: data rows (0-based) of
    the first occurrence and of the first repeat."""

    def __init__(self, first, repeat):
        super().__init__(first, repeat)
        self.first, self.repeat = int(first), int(repeat)


def _by_row(n_rows, n_cols, rows, cols, values, idx):
    """Stable counting sort by ``rows``: (indptr, cols, values) in row order."""
    nnz = len(rows)
    if _coo_tocsr is None:
        order = np.argsort(rows, kind="stable")
        indptr = np.zeros(n_rows + 1, dtype=idx)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        return indptr, cols[order].astype(idx), values[order]
    indptr = np.empty(n_rows + 1, dtype=idx)
    out_cols = np.empty(nnz, dtype=idx)
    out_vals = np.empty(nnz, dtype=values.dtype)
    _coo_tocsr(n_rows, n_cols, nnz, rows.astype(idx, copy=False), cols.astype(idx, copy=False),
               values, indptr, out_cols, out_vals)
    return indptr, out_cols, out_vals


def _sorted_triples(triples: list, shape):
    """CSR arrays sorted by (row, column), repeats in input order; empties
    ``triples`` (rows, columns, values) as soon as each is used."""
    n_users, n_items = shape
    rows, cols, values = triples
    triples.clear()
    idx = index_dtype(shape, len(rows))
    # By column first, then (stably) by row: a two-digit radix sort.
    cptr, rows_c, vals_c = _by_row(n_items, n_users, cols, rows, values, idx)
    del rows, cols, values
    cols_c = np.repeat(np.arange(n_items, dtype=idx), np.diff(cptr))
    del cptr
    return _by_row(n_users, n_items, rows_c, cols_c, vals_c, idx)


def assemble(triples: list, shape, duplicates: str, *, keep: bool = True,
             dtype=np.float32):
    """A canonical CSR matrix of ``shape`` from numbered triples.

    Parameters
    ----------
    triples : list
        ``[rows, cols, values]``: int arrays and a float32 or float64 array.
        The list is emptied, so that the arrays can be freed as soon as
        they are sorted.
    duplicates : {"sum", "last", "max", "error"}
    keep : bool
        Whether the caller keeps ``rows`` and ``cols`` (needed to name the
        rows of an error).
    dtype : float32 or float64
        Values of the result.

    Raises
    ------
    Repeat
        Under ``duplicates="error"``, for the earliest repeated pair.
    Bad
        When a combined value leaves the float32 range (row: the pair's first).
    Redo
        For either of those when ``keep`` is False.
    """
    rows, cols = triples[:2] if keep else (None, None)
    indptr, indices, data = _sorted_triples(triples, shape)
    n = len(indices)
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(indices[1:], indices[:-1], out=new[1:])
    new[indptr[1:-1][indptr[1:-1] < n]] = True  # every row starts a new pair
    repeats = np.flatnonzero(~new)
    if repeats.size:
        if duplicates == "error":
            raise _earliest_repeat(rows, cols, shape) if keep else Redo()
        indptr, indices, data = _combine(indptr, indices, data, new, repeats, duplicates)
    del new
    with np.errstate(over="ignore", invalid="ignore"):
        data32 = data.astype(dtype, copy=False)
    del data
    bad = ~np.isfinite(data32)
    if bad.any():
        raise _overflow(rows, cols, shape, int(np.flatnonzero(bad)[0])) if keep else Redo()
    matrix = scipy.sparse.csr_matrix((data32, indices, indptr), shape=shape)
    # Sorted with no repeats by construction; saying so spares scipy a check.
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


def _combine(indptr, indices, data, new, repeats, duplicates):
    """Merge each run of repeated pairs (sorted, repeats in input order)
    into one entry; work and memory scale with the repeats, not with nnz."""
    # Repeats of one pair are consecutive: a run of repeat positions r..s
    # belongs to the group starting at r - 1 and ending at s.
    run = np.flatnonzero(np.diff(repeats, prepend=-2) != 1)
    first = repeats[run] - 1
    last = np.append(repeats[run[1:] - 1], repeats[-1])
    if duplicates == "last":
        combined = data[last]
    else:
        lengths = last - first + 1
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        # Every position of every run, without a Python loop.
        where = np.repeat(first - offsets, lengths) + np.arange(lengths.sum())
        wide = data[where].astype(np.float64)
        reduce = np.add if duplicates == "sum" else np.maximum
        with np.errstate(over="ignore", invalid="ignore"):
            combined = reduce.reduceat(wide, offsets)
    kept = data[new]
    if combined.dtype != kept.dtype:
        kept = kept.astype(np.float64)
    # A group's place after compaction: its start less the repeats before it.
    kept[first - np.searchsorted(repeats, first)] = combined
    indptr = (indptr - np.searchsorted(repeats, indptr)).astype(indptr.dtype)
    return indptr, indices[new], kept


def _earliest_repeat(rows, cols, shape) -> Repeat:
    """The repeat with the smallest row index, and its pair's first row."""
    key = rows.astype(np.int64) * np.int64(shape[1]) + cols
    order = np.argsort(key, kind="stable")
    k = key[order]
    repeat = np.flatnonzero(k[1:] == k[:-1]) + 1
    j = int(order[repeat].min())
    first = int(np.flatnonzero(key == key[j])[0])
    return Repeat(first, j)


def _overflow(rows, cols, shape, entry) -> Bad:
    """The first row of the pair whose combined value overflowed."""
    key = rows.astype(np.int64) * np.int64(shape[1]) + cols
    uniq = np.unique(key)
    first = int(np.flatnonzero(key == uniq[entry])[0])
    return Bad(first, "combined value of a repeated pair is outside float32 range")
