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


def find_positions(const index_t[::1] indptr, const index_t[::1] indices,
                   const int64_t[::1] rows, const int64_t[::1] cols):
    """Position in ``indices`` of each (row, col) pair, -1 where not stored.

    Binary search within each row; requires sorted indices (canonical CSR).
    """
    cdef int64_t n = rows.shape[0], j, lo, hi, mid
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


def compact(buf, int64_t n, const int64_t[::1] positions):
    """Remove ``positions`` (sorted, distinct) from ``buf[:n]`` in place.

    Returns the removed elements, in order, as a new array.
    """
    removed = np.empty(positions.shape[0], dtype=buf.dtype)
    cdef char[::1] raw = buf.view(np.int8)
    cdef char[::1] out = removed.view(np.int8)
    cdef size_t elsize = buf.dtype.itemsize
    if positions.shape[0] == 0:
        return removed
    with nogil:
        fu_compact(&raw[0], elsize, n, &positions[0], positions.shape[0], &out[0])
    return removed


def expand(buf, int64_t n, const int64_t[::1] positions, removed):
    """Undo :func:`compact`: ``buf`` regains ``removed`` at ``positions``."""
    cdef char[::1] raw = buf.view(np.int8)
    cdef const char[::1] back = np.ascontiguousarray(removed).view(np.int8)
    cdef size_t elsize = buf.dtype.itemsize
    if positions.shape[0] == 0:
        return
    with nogil:
        fu_expand(&raw[0], elsize, n, &positions[0], positions.shape[0], &back[0])
