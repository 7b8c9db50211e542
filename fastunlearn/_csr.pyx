"""Compiled CSR lookups and in-place removal (csrc/csr_edit.c)."""
from libc.stdint cimport int32_t, int64_t

import numpy as np

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from "csr_edit.h" nogil:
    int64_t fu_compact(void *buf, size_t elsize, int64_t n, const int64_t *dele,
                       int64_t n_del, void *removed)
    void fu_expand(void *buf, size_t elsize, int64_t n, const int64_t *dele,
                   int64_t n_del, const void *removed)


def find_positions(const index_t[::1] indptr not None, const index_t[::1] indices not None,
                   const int64_t[::1] rows not None, const int64_t[::1] cols not None):
    """Position in ``indices`` of each (row, col) pair, -1 where not stored.

    Binary search within each row; requires sorted indices (canonical CSR).
    Rows outside the matrix raise (callers validate ids first: this guards
    the memory, not the user's input).
    """
    cdef int64_t n = rows.shape[0], j, lo, hi, mid
    if cols.shape[0] != n:
        raise ValueError(f"rows and cols must pair up, got {n} and {cols.shape[0]}")
    if n and (np.min(rows) < 0 or np.max(rows) >= indptr.shape[0] - 1):
        raise IndexError("a row is outside the matrix")
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    with nogil:
        for j in range(n):
            lo = indptr[rows[j]]
            hi = indptr[rows[j] + 1]
            while lo < hi:
                mid = (lo + hi) // 2
                if indices[mid] < cols[j]:
                    lo = mid + 1
                else:
                    hi = mid
            out[j] = lo if lo < indptr[rows[j] + 1] and indices[lo] == cols[j] else -1
    return out_arr


def _check_positions(buf, int64_t n, const int64_t[::1] positions):
    # an edit at a wrong position would corrupt memory, not raise: refuse it
    if n < 0 or n > buf.shape[0]:
        raise ValueError(f"n = {n} is outside the buffer of {buf.shape[0]}")
    if positions.shape[0]:
        p = np.asarray(positions)
        if p.min() < 0 or p.max() >= n or (p.shape[0] > 1 and np.any(np.diff(p) <= 0)):
            raise ValueError("positions must be sorted, distinct and within the buffer")


def compact(buf not None, int64_t n, const int64_t[::1] positions not None):
    """Remove ``positions`` (sorted, distinct) from ``buf[:n]`` in place.

    Returns the removed elements, in order, as a new array.
    """
    _check_positions(buf, n, positions)
    removed = np.empty(positions.shape[0], dtype=buf.dtype)
    cdef char[::1] raw = buf.view(np.int8)
    cdef char[::1] out = removed.view(np.int8)
    cdef size_t elsize = buf.dtype.itemsize
    if positions.shape[0] == 0:
        return removed
    with nogil:
        fu_compact(&raw[0], elsize, n, &positions[0], positions.shape[0], &out[0])
    return removed


def expand(buf not None, int64_t n, const int64_t[::1] positions not None, removed not None):
    """Undo :func:`compact`: ``buf`` regains ``removed`` at ``positions``."""
    _check_positions(buf, n, positions)
    if len(removed) != positions.shape[0]:
        raise ValueError(f"{len(removed)} removed elements for {positions.shape[0]} positions")
    cdef char[::1] raw = buf.view(np.int8)
    cdef const char[::1] back = np.ascontiguousarray(removed).view(np.int8)
    cdef size_t elsize = buf.dtype.itemsize
    if positions.shape[0] == 0:
        return
    with nogil:
        fu_expand(&raw[0], elsize, n, &positions[0], positions.shape[0], &back[0])
