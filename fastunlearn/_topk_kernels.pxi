# Top-N selection, compiled once per instruction-set variant: included by
# _topk_baseline.pyx, _topk_avx2.pyx and _topk_avx512.pyx; fastunlearn/_topk.py
# re-exports the variant isa.py chose (docs/design.md, section 8).
"""Compiled top-N selection: scores by gemm over blocks of queries, then a
bounded heap per query (csrc/topk.c), parallel over queries."""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t

cimport scipy.linalg.cython_blas as blas

import numpy as np

cdef extern from "topk.h" nogil:
    void fu_topk_f(const float *scores, int64_t n, int64_t n_out, int64_t *heap_ids,
                   int32_t *out_ids, float *out_scores, float pad)
    void fu_topk_d(const double *scores, int64_t n, int64_t n_out, int64_t *heap_ids,
                   int32_t *out_ids, double *out_scores, double pad)

# Queries scored together by one gemm; bounds the score scratch to
# QUERY_BLOCK x n_candidates per thread.
DEF QUERY_BLOCK = 16

PAD_SCORE = -np.finfo(np.float32).max  # what implicit pads short lists with


def topk(const floating[:, ::1] queries, const floating[:, ::1] candidates, int N,
         const int64_t[::1] skip_indptr, const int64_t[::1] skip_indices,
         const int64_t[::1] excluded, int32_t[:, ::1] out_ids,
         floating[:, ::1] out_scores, int num_threads):
    """Best N candidates for each query by inner product.

    ``skip_indptr``/``skip_indices`` list, per query, candidates it may not
    get (CSR over queries); ``excluded`` lists candidates nobody gets.  Short
    lists are padded with id -1 and ``PAD_SCORE``.
    """
    cdef int k = queries.shape[1]
    cdef int64_t nq = queries.shape[0], m = candidates.shape[0], blk
    cdef int64_t nblocks = (nq + QUERY_BLOCK - 1) // QUERY_BLOCK
    cdef int nt = max(num_threads, 1), tid
    if nq == 0 or N == 0:
        return
    score_arr = np.empty((nt, QUERY_BLOCK * max(m, 1)), dtype=np.asarray(queries).dtype)
    heap_arr = np.empty((nt, N), dtype=np.int64)
    cdef floating[:, ::1] scores = score_arr
    cdef int64_t[:, ::1] heap = heap_arr
    with nogil, parallel(num_threads=nt):
        for blk in prange(nblocks, schedule='dynamic'):
            tid = threadid()
            _topk_block(k, blk * QUERY_BLOCK, min(QUERY_BLOCK, nq - blk * QUERY_BLOCK), m, N,
                        queries, candidates, skip_indptr, skip_indices, excluded,
                        &scores[tid, 0], &heap[tid, 0], out_ids, out_scores)


cdef void _topk_block(int k, int64_t q0, int nb, int64_t m, int N,
                      const floating[:, ::1] queries, const floating[:, ::1] candidates,
                      const int64_t[::1] skip_indptr, const int64_t[::1] skip_indices,
                      const int64_t[::1] excluded, floating *S, int64_t *heap,
                      int32_t[:, ::1] out_ids, floating[:, ::1] out_scores) noexcept nogil:
    cdef char trans = b'T', no = b'N'
    cdef floating one = 1, zero = 0
    cdef int mm = <int> m
    cdef int j
    cdef int64_t q, e
    cdef floating *row
    if m > 0:
        # S (nb x m, row-major) = Q_block C^T, i.e. column-major C Q_block^T
        if floating is float:
            blas.sgemm(&trans, &no, &mm, &nb, &k, &one, <float *> &candidates[0, 0], &k,
                       <float *> &queries[q0, 0], &k, &zero, S, &mm)
        else:
            blas.dgemm(&trans, &no, &mm, &nb, &k, &one, <double *> &candidates[0, 0], &k,
                       <double *> &queries[q0, 0], &k, &zero, S, &mm)
    for j in range(nb):
        q = q0 + j
        row = S + j * m
        for e in range(excluded.shape[0]):
            row[excluded[e]] = -INFINITY
        for e in range(skip_indptr[q], skip_indptr[q + 1]):
            row[skip_indices[e]] = -INFINITY
        if floating is float:
            fu_topk_f(row, m, N, heap, &out_ids[q, 0], &out_scores[q, 0], -3.4028234663852886e38)
        else:
            fu_topk_d(row, m, N, heap, &out_ids[q, 0], &out_scores[q, 0], -3.4028234663852886e38)
