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


def _sorted_triples(rows, cols, values, shape):
    """CSR arrays sorted by (row, column), repeats in input order."""
    n_users, n_items = shape
    idx = index_dtype(shape, len(rows))
    # By column first, then (stably) by row: a two-digit radix sort.
    cptr, rows_c, vals_c = _by_row(n_items, n_users, cols, rows, values, idx)
    cols_c = np.repeat(np.arange(n_items, dtype=idx), np.diff(cptr))
    del cptr
    return _by_row(n_users, n_items, rows_c, cols_c, vals_c, idx)


def assemble(rows, cols, values, shape, duplicates: str) -> scipy.sparse.csr_matrix:
    """A canonical float32 CSR matrix of ``shape`` from numbered triples.

    Parameters
    ----------
    rows, cols : numpy.ndarray of int
    values : numpy.ndarray of float32 or float64
    duplicates : {"sum", "last", "max", "error"}

    Raises
    ------
    Repeat
        Under ``duplicates="error"``, for the earliest repeated pair.
    Bad
        When a combined value leaves the float32 range (row: the pair's first).
    """
    indptr, indices, data = _sorted_triples(rows, cols, values, shape)
    n = len(indices)
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(indices[1:], indices[:-1], out=new[1:])
    new[indptr[1:-1][indptr[1:-1] < n]] = True  # every row starts a new pair
    if n and not new.all():
        starts = np.flatnonzero(new)
        if duplicates == "error":
            raise _earliest_repeat(rows, cols, shape)
        with np.errstate(over="ignore", invalid="ignore"):
            wide = data.astype(np.float64, copy=False)
            if duplicates == "sum":
                data = np.add.reduceat(wide, starts)
            elif duplicates == "max":
                data = np.maximum.reduceat(wide, starts)
            else:  # "last": stable order puts the latest repeat at the group's end
                data = wide[np.append(starts[1:], n) - 1]
        indices = indices[starts]
        indptr = _regroup(indptr, new)
    with np.errstate(over="ignore", invalid="ignore"):
        data32 = data.astype(np.float32)
    bad = ~np.isfinite(data32)
    if bad.any():
        raise _overflow(rows, cols, shape, int(np.flatnonzero(bad)[0]))
    matrix = scipy.sparse.csr_matrix((data32, indices, indptr), shape=shape)
    # Sorted with no repeats by construction; saying so spares scipy a check.
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


def _regroup(indptr, new):
    """Row pointers after combining repeats: groups started before each row end."""
    started = np.concatenate(([0], np.cumsum(new, dtype=np.int64)))
    return started[indptr].astype(indptr.dtype)


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
