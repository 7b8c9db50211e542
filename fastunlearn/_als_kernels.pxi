# The ALS kernels, compiled once per instruction-set variant: included by
# _als_baseline.pyx, _als_avx2.pyx and _als_avx512.pyx; fastunlearn/_als.py
# re-exports the variant isa.py chose (docs/design.md, section 8).
"""Compiled ALS kernels: row solves (Cholesky, CG), row gradients, loss, Gram,
and for forgetting the bound updates and the state checksum.

Every kernel works on one *side* at a time: the rows of ``X`` being solved or
measured, their interactions in CSR (``indptr``, ``indices``, ``data``) and the
fixed factors ``Y`` of the other side.  The objective enters only through

* ``_entry``: the coefficients (a, b) of one stored entry in its row's normal
  equations, ``A += a y y^T`` and ``b += b y``;
* ``base``: the dense part of every row's ``A`` (implicit: ``Y^T Y + lam I``;
  explicit: none, its diagonal ``lam * w_row`` is added per row).

so fit, forget, loss and the certificate share one definition of each formula.
Kernels assume validated input (see ``fastunlearn.validation``).
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, fabs, sqrt
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memset

cimport scipy.linalg.cython_blas as blas
cimport scipy.linalg.cython_lapack as lapack

import numpy as np

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from "fu_chol.h" nogil:
    int fu_potrf_upper_f(int k, float *A)
    int fu_potrf_upper_d(int k, double *A)
    void fu_potrs_upper_f(int k, const float *U, float *b)
    void fu_potrs_upper_d(int k, const double *U, double *b)

cdef extern from "fu_cpu.h" nogil:
    int fu_compiled_features()

cdef extern from "fu_vec.h" nogil:
    int fu_openmp_enabled()
    float fu_dot_f(int n, const float *x, const float *y)
    double fu_dot_d(int n, const double *x, const double *y)
    void fu_axpy_f(int n, float a, const float *x, float *y)
    void fu_axpy_d(int n, double a, const double *x, double *y)
    void fu_scale_copy_f(int n, float a, const float *x, float *y)
    void fu_scale_copy_d(int n, double a, const double *x, double *y)
    double fu_dot_widen_f(int n, const float *x, const float *y)
    double fu_dot_widen_d(int n, const double *x, const double *y)
    double fu_sumsq_f(int n, const float *x)
    double fu_sumsq_d(int n, const double *x)
    void fu_xpby_f(int n, const float *x, float b, float *y)
    void fu_xpby_d(int n, const double *x, double b, double *y)
    void fu_axpy_widen_f(int n, double a, const float *x, double *g)
    void fu_axpy_widen_d(int n, double a, const double *x, double *g)
    void fu_dot4_f(int n, const float *x, const float *y0, const float *y1, const float *y2,
                   const float *y3, float *out)
    void fu_dot4_d(int n, const double *x, const double *y0, const double *y1,
                   const double *y2, const double *y3, double *out)
    void fu_axpy4_f(int n, const float *a, const float *x0, const float *x1, const float *x2,
                    const float *x3, float *y)
    void fu_axpy4_d(int n, const double *a, const double *x0, const double *x1,
                    const double *x2, const double *x3, double *y)
    void fu_prefetch_row(const void *row, size_t nbytes)

# Rows gathered per syrk call (bounds the scratch; large enough for BLAS-3 speed)
DEF GATHER = 64
# Rows solved together by CG so that the Gram matrix is applied with one gemm
DEF CG_BLOCK = 32
# Up to this k the small-matrix Cholesky of csrc/fu_chol.h beats LAPACK
# (about 2x at k=64 with portable flags; LAPACK wins again near k=250)
DEF SMALL_CHOLESKY = 192
# Forgetting measures a solved row by passes over its entries up to this many
# entries per factor, from its normal equations past it
DEF MEASURE_BY_ENTRIES = 2
# CG stops early on a row once its squared residual is below this (as implicit)
DEF CG_EPS = 1e-20
# Entries ahead whose rows single-entry loops prefetch: the other side's rows
# are scattered, and their loads, not the arithmetic, bound those loops
DEF PREFETCH_AHEAD = 4
# Gram matrices are reduced over this many fixed partial sums (see gram)
DEF GRAM_PARTS = 16

# The constants that size the kernels' scratch, for resources.py's estimates
SCRATCH_CONSTANTS = {"gather": GATHER, "cg_block": CG_BLOCK, "gram_parts": GRAM_PARTS}


def openmp_enabled():
    """Whether the kernels were compiled with OpenMP."""
    return bool(fu_openmp_enabled())


def compiled_features():
    """Bits (csrc/fu_cpu.h) of the instruction-set features this variant was
    compiled to use: none for the portable baseline, unless built with
    ``-march=native``."""
    return fu_compiled_features()


# ---------------------------------------------------------------- primitives

def checksum(const uint64_t[::1] words):
    """Fletcher-style sums of 64-bit words (wrapping): the second sum weighs
    each word by its position, so moved or swapped rows change it too."""
    cdef uint64_t a = 0, b = 0
    cdef int64_t j
    with nogil:
        for j in range(words.shape[0]):
            a += words[j]
            b += a
    return a, b


cdef inline floating _dot(int n, const floating *x, const floating *y) noexcept nogil:
    if floating is float:
        return fu_dot_f(n, x, y)
    else:
        return fu_dot_d(n, x, y)


cdef inline void _axpy(int n, floating a, const floating *x, floating *y) noexcept nogil:
    if floating is float:
        fu_axpy_f(n, a, x, y)
    else:
        fu_axpy_d(n, a, x, y)


cdef inline void _dot4(int n, const floating *x, const floating **ys,
                       floating *out) noexcept nogil:
    if floating is float:
        fu_dot4_f(n, x, ys[0], ys[1], ys[2], ys[3], out)
    else:
        fu_dot4_d(n, x, ys[0], ys[1], ys[2], ys[3], out)


cdef inline void _axpy4(int n, const floating *a, const floating **xs,
                        floating *y) noexcept nogil:
    if floating is float:
        fu_axpy4_f(n, a, xs[0], xs[1], xs[2], xs[3], y)
    else:
        fu_axpy4_d(n, a, xs[0], xs[1], xs[2], xs[3], y)


cdef inline void _scale_copy(int n, floating a, const floating *x, floating *y) noexcept nogil:
    if floating is float:
        fu_scale_copy_f(n, a, x, y)
    else:
        fu_scale_copy_d(n, a, x, y)


cdef inline double _sumsq(int n, const floating *x) noexcept nogil:
    if floating is float:
        return fu_sumsq_f(n, x)
    else:
        return fu_sumsq_d(n, x)


cdef inline double _dot_widen(int n, const floating *x, const floating *y) noexcept nogil:
    if floating is float:
        return fu_dot_widen_f(n, x, y)
    else:
        return fu_dot_widen_d(n, x, y)


cdef inline void _xpby(int n, const floating *x, floating b, floating *y) noexcept nogil:
    if floating is float:
        fu_xpby_f(n, x, b, y)
    else:
        fu_xpby_d(n, x, b, y)


cdef inline void _axpy_widen(int n, double a, const floating *x, double *g) noexcept nogil:
    if floating is float:
        fu_axpy_widen_f(n, a, x, g)
    else:
        fu_axpy_widen_d(n, a, x, g)


cdef inline void _syrk(int k, int m, floating alpha, floating *rows, floating *A) noexcept nogil:
    """A(upper) += alpha * R^T R for the m x k row-major block R."""
    cdef char uplo = b'U'
    cdef char trans = b'N'
    cdef floating one = 1
    if floating is float:
        blas.ssyrk(&uplo, &trans, &k, &m, &alpha, rows, &k, &one, A, &k)
    else:
        blas.dsyrk(&uplo, &trans, &k, &m, &alpha, rows, &k, &one, A, &k)


cdef inline void _times_base(int k, int m, const floating *base, floating *rows,
                             floating *out) noexcept nogil:
    """out = rows @ base for an m x k row-major block (base symmetric)."""
    cdef char no = b'N'
    cdef floating one = 1, zero = 0
    if floating is float:
        blas.sgemm(&no, &no, &k, &m, &k, &one, <float *> base, &k, rows, &k, &zero, out, &k)
    else:
        blas.dgemm(&no, &no, &k, &m, &k, &one, <double *> base, &k, rows, &k, &zero, out, &k)


# ----------------------------------------------------------------- objective

cdef inline void _entry(double v, bint implicit, double alpha,
                        double *a, double *b) noexcept nogil:
    """Normal-equation coefficients of one stored entry with value v.

    Implicit (Hu et al. with implicit's conventions): confidence c = alpha|v|
    and preference p = [v > 0]; ``a = c - 1`` because the unstored baseline
    (c = 1) is already inside ``Y^T Y``, and ``b = c p``.
    Explicit: the entry is a rating, ``a = 1``, ``b = v``.
    """
    cdef double c
    if implicit:
        c = alpha * fabs(v)
        a[0] = c - 1.0
        b[0] = c if v > 0 else 0.0
    else:
        a[0] = 1.0
        b[0] = v


def raise_partner_bounds(const index_t[::1] indptr, const index_t[::1] indices,
                               const floating[::1] data, const int64_t[::1] rows,
                               const double[:, ::1] old, const double[:, ::1] new,
                               const floating[:, ::1] partners, bint implicit, double alpha,
                               double[::1] bounds):
    """Raise the gradient bounds of the rows of the other side that share an
    entry with ``rows``, after rows[j] moved from ``old[j]`` to ``new[j]``.

    The entry's term ``a (x.r) r - b r`` of partner x's gradient moves by
    exactly ``|a ((r'.x) r' - (r.x) r) - b (r' - r)|``, which this adds:
    O(k) an entry (a solve of the row costs O(k^2) an entry), and far below
    the product bound ``|r' - r| (|a| |x| (|r| + |r'|) + |b|)``, which
    ignores how the moved row and its partner are aligned and made every
    small request re-check hundreds of partners.  Serial: partners repeat."""
    cdef int64_t j, e
    cdef int d, k = old.shape[1]
    cdef double a, bc, so, sn, t, acc
    cdef index_t f
    if old.shape[0] != rows.shape[0] or new.shape[0] != rows.shape[0] or new.shape[1] != k \
            or partners.shape[1] != k:
        raise ValueError("old and new need one row of k values per row")
    with nogil:
        for j in range(rows.shape[0]):
            for e in range(indptr[rows[j]], indptr[rows[j] + 1]):
                _entry(data[e], implicit, alpha, &a, &bc)
                f = indices[e]
                so = 0.0
                sn = 0.0
                for d in range(k):
                    so = so + old[j, d] * partners[f, d]
                    sn = sn + new[j, d] * partners[f, d]
                acc = 0.0
                for d in range(k):
                    t = a * (sn * new[j, d] - so * old[j, d]) - bc * (new[j, d] - old[j, d])
                    acc = acc + t * t
                bounds[f] += sqrt(acc)


cdef inline double _row_lambda(int64_t n, bint implicit, double reg, bint weighted) noexcept nogil:
    """Diagonal added per row (implicit's lam I lives in ``base`` instead)."""
    if implicit:
        return 0.0
    return reg * n if weighted else reg


cdef inline void _prefetch_rows(int k, int64_t lo, int64_t hi, const index_t *indices,
                                const floating *Y) noexcept nogil:
    """Ask for the rows of Y that entries lo..hi-1 will read."""
    cdef int64_t e
    for e in range(lo, hi):
        fu_prefetch_row(Y + <int64_t> indices[e] * k, k * sizeof(floating))


cdef inline void _add_sparse(int k, int64_t start, int64_t end, const index_t *indices,
                             const floating *data, const floating *Y, bint implicit,
                             double alpha, const floating *v, floating *out) noexcept nogil:
    """out += sum_e a_e (y_e . v) y_e over the row's entries.

    The entries with ``a_e != 0`` (implicit: r = 1 / alpha adds nothing to
    A) four at a time: their four dot products share the loads of ``v``
    and run as independent chains, and ``out`` is loaded and stored once
    for the four updates, which add in entry order (the rounding of one
    axpy per entry).  The next rows are prefetched: they are scattered,
    and their loads, not the arithmetic, bound this loop.
    """
    cdef const floating *ys[4]
    cdef floating dots[4]
    cdef floating scaled[4]
    cdef double coef[4]
    cdef int64_t e = start
    cdef int j, m
    cdef double a, b
    while e < end:
        m = 0
        while e < end and m < 4:
            _entry(data[e], implicit, alpha, &a, &b)
            if a != 0:
                coef[m] = a
                ys[m] = Y + <int64_t> indices[e] * k
                m += 1
            e += 1
        _prefetch_rows(k, e, min(e + 4, end), indices, Y)
        if m == 4:
            _dot4(k, v, ys, dots)
            for j in range(4):
                scaled[j] = <floating> (coef[j] * <double> dots[j])
            _axpy4(k, scaled, ys, out)
        else:
            for j in range(m):
                dots[j] = _dot(k, ys[j], v)
            for j in range(m):
                _axpy(k, <floating> (coef[j] * <double> dots[j]), ys[j], out)


cdef inline void _add_residual(int k, int64_t start, int64_t end, const index_t *indices,
                               const floating *data, const floating *Y, bint implicit,
                               double alpha, const floating *x, floating *out) noexcept nogil:
    """out += sum_e (b_e - a_e (y_e . x)) y_e: the sparse part of b - A x in one
    pass over the row's entries (a warm-started CG's first residual), four
    entries at a time as ``_add_sparse``; entries whose term is zero add
    nothing and are skipped."""
    cdef const floating *ys[4]
    cdef floating dots[4]
    cdef floating scaled[4]
    cdef double coef[4]
    cdef double bs[4]
    cdef int64_t e = start
    cdef int j, m
    cdef double s
    while e < end:
        m = 0
        while e < end and m < 4:
            _entry(data[e], implicit, alpha, &coef[m], &bs[m])
            if coef[m] != 0 or bs[m] != 0:
                ys[m] = Y + <int64_t> indices[e] * k
                m += 1
            e += 1
        _prefetch_rows(k, e, min(e + 4, end), indices, Y)
        if m == 4:
            if coef[0] != 0 and coef[1] != 0 and coef[2] != 0 and coef[3] != 0:
                _dot4(k, x, ys, dots)
            else:  # (implicit: entries r = 1 / alpha need no dot product)
                for j in range(4):
                    dots[j] = _dot(k, ys[j], x) if coef[j] != 0 else 0
            for j in range(4):
                scaled[j] = <floating> (bs[j] - coef[j] * <double> dots[j])
            _axpy4(k, scaled, ys, out)
        else:
            for j in range(m):
                s = bs[j] - coef[j] * <double> _dot(k, ys[j], x)
                if s != 0:
                    _axpy(k, <floating> s, ys[j], out)


cdef void _apply_block(int k, int nb, const int64_t *rows, const index_t *indptr,
                       const index_t *indices, const floating *data, const floating *Y,
                       const floating *base, bint implicit, double alpha, double reg,
                       bint weighted, const unsigned char *active, floating *V,
                       floating *out) noexcept nogil:
    """out[j] = A_row(j) V[j] for a block of nb rows (A applied, never formed).

    The dense part is one gemm for the whole block (BLAS-3), the sparse part
    one pass over each row's entries.  Rows with ``active[j] == 0`` are skipped
    in the sparse pass (their output is not used).
    """
    cdef int j, d
    cdef int64_t r, n
    cdef double lam
    if implicit:
        _times_base(k, nb, base, V, out)
    for j in range(nb):
        if active != NULL and not active[j]:
            continue
        r = rows[j]
        n = indptr[r + 1] - indptr[r]
        if not implicit:
            lam = _row_lambda(n, implicit, reg, weighted)
            for d in range(k):
                out[j * k + d] = <floating> (lam * V[j * k + d])
        _add_sparse(k, indptr[r], indptr[r + 1], indices, data, Y, implicit, alpha,
                    V + j * k, out + j * k)


# -------------------------------------------------------------------- kernels

def relax(floating[:, ::1] F, const floating[:, ::1] old, double w, int num_threads):
    """``F <- F + (w - 1) (F - old)`` in place, in one pass (elementwise, so
    the same for any ``num_threads``; exactly F at w = 1): NumPy would make
    two temporaries the size of the factors, which cost as much as the CG
    sweep before it."""
    cdef int64_t i, n = F.shape[0]
    cdef int j, k = F.shape[1]
    cdef floating ww = <floating> (w - 1.0)
    if old.shape[0] != n or old.shape[1] != k:
        raise ValueError("old must have the shape of F")
    with nogil:
        for i in prange(n, num_threads=max(num_threads, 1), schedule='static'):
            for j in range(k):
                F[i, j] = F[i, j] + ww * (F[i, j] - old[i, j])


def gram(const floating[:, ::1] Y, int num_threads):
    """Y^T Y, reduced over a fixed partition of the rows.

    The partition does not depend on the thread count, so the result is
    bitwise the same for any ``num_threads``.
    """
    cdef int k = Y.shape[1]
    cdef int64_t n = Y.shape[0]
    cdef int nparts = GRAM_PARTS, p, m
    cdef int64_t lo
    parts_arr = np.zeros((nparts, k, k), dtype=np.asarray(Y).dtype)
    cdef floating[:, :, ::1] parts = parts_arr
    with nogil:
        for p in prange(nparts, num_threads=num_threads, schedule='static'):
            lo = n * p // nparts
            m = <int> (n * (p + 1) // nparts - lo)
            if m > 0:
                _syrk(k, m, <floating> 1, <floating *> &Y[lo, 0], &parts[p, 0, 0])
    total = parts_arr.sum(axis=0)
    # syrk filled the upper triangle of the column-major result, which is
    # the lower triangle of this row-major view; mirror it.
    return np.tril(total) + np.tril(total, -1).T


def solve_cholesky(const index_t[::1] indptr, const index_t[::1] indices,
                   const floating[::1] data, const int64_t[::1] rows,
                   floating[:, ::1] X, const floating[:, ::1] Y,
                   const floating[:, ::1] base, bint implicit, double alpha,
                   double reg, bint weighted, int32_t[::1] status, int num_threads,
                   double[:, ::1] measures=None, double exact_above=INFINITY):
    """Solve the listed rows of X exactly: x = A^{-1} b by Cholesky.

    ``A`` is built with BLAS-3: each row's entries are gathered (scaled by
    sqrt|a|) into a contiguous block and added with one syrk per block,
    positive and negative coefficients in separate blocks.  ``status[j]`` is
    LAPACK's info for ``rows[j]`` (0 = solved; > 0 = A not positive definite,
    the row is left unchanged).

    Forgetting measures what it solves.  Given ``measures`` (one row of three
    per solved row), ``measures[j]`` receives the row's data term before the
    solve, an upper bound of its gradient norm after it and its data term
    after it.  Rows of up to MEASURE_BY_ENTRIES * k entries are measured
    exactly, by passes over their entries (as ``row_losses`` and
    ``gradient_norms``); longer ones from the A and b just built, at O(k^2)
    a row whatever their length (see ``_measure_row``), the bound adding
    what float rounding of A and b can hide.  That slack grows with the
    row's entries; where it exceeds ``exact_above``, the row is measured
    exactly after all.
    """
    cdef int k = X.shape[1]
    cdef int64_t nrows = rows.shape[0], j
    cdef int nt = max(num_threads, 1), tid
    cdef double *out = NULL
    cdef double base_norm = 0
    cdef double unit = 2.0 ** -24 if floating is float else 2.0 ** -53
    # A, b and the gathered rows; measuring also keeps A and b as built.
    # In 64 bits: k * k alone is near the int range at MAX_FACTORS.
    cdef int64_t work = <int64_t> k * k + k + 2 * GATHER * k
    if measures is not None:
        work += <int64_t> k * k + k
    scratch_arr = np.empty((nt, work), dtype=np.asarray(X).dtype)
    cdef floating[:, ::1] scratch = scratch_arr
    dscratch_arr = np.empty((nt, 2 * k), dtype=np.float64)
    cdef double[:, ::1] dscratch = dscratch_arr
    if measures is not None:
        if measures.shape[0] != nrows or measures.shape[1] != 3:
            raise ValueError("measures must have shape (len(rows), 3)")
        base_norm = float(np.linalg.norm(np.asarray(base, dtype=np.float64))) if implicit else 0
    if nrows == 0:
        return
    if measures is not None:
        out = &measures[0, 0]
    with nogil, parallel(num_threads=nt):
        for j in prange(nrows, schedule='dynamic', chunksize=8):
            tid = threadid()
            status[j] = _cholesky_row(k, rows[j], &indptr[0], &indices[0], &data[0], X, Y,
                                      &base[0, 0], implicit, alpha, reg, weighted,
                                      &scratch[tid, 0], &dscratch[tid, 0], base_norm, unit,
                                      exact_above,
                                      out + 3 * j if out != NULL else NULL)


cdef int _cholesky_row(int k, int64_t r, const index_t *indptr, const index_t *indices,
                       const floating *data, floating[:, ::1] X, const floating[:, ::1] Y,
                       const floating *base, bint implicit, double alpha, double reg,
                       bint weighted, floating *work, double *dwork, double base_norm,
                       double unit, double exact_above,
                       double *out) noexcept nogil:
    cdef floating *A = work
    cdef floating *b = work + k * k
    cdef floating *pos = b + k
    cdef floating *neg = pos + GATHER * k
    cdef floating *A0 = neg + GATHER * k  # A and b as built, kept for measuring
    cdef floating *b0 = A0 + k * k
    cdef floating *x = &X[r, 0]
    cdef const floating *y
    cdef int64_t e, start = indptr[r], end = indptr[r + 1]
    cdef int npos = 0, nneg = 0, d, info = 0, one = 1
    cdef double a, bc, yy, lam = 0, constant = 0, sum_a = 0, sum_b2 = 0, sum_yy = 0, slack, xn
    cdef double before = 0
    # short rows are measured by passes over their entries (about 3k flops
    # each), long ones from A and b (about 6k^2 flops, whatever their length)
    cdef bint by_entries = end - start <= MEASURE_BY_ENTRIES * k
    cdef char uplo = b'U'

    if not implicit and end == start:
        memset(x, 0, k * sizeof(floating))  # no ratings: the zero row (docs/design.md, section 2)
        if out != NULL:
            out[0] = out[1] = out[2] = 0
        return 0
    if implicit:
        memcpy(A, base, k * k * sizeof(floating))
    else:
        memset(A, 0, k * k * sizeof(floating))
    memset(b, 0, k * sizeof(floating))
    for e in range(start, end):
        if e + PREFETCH_AHEAD < end:  # the rows are scattered: ask for them early
            fu_prefetch_row(&Y[indices[e + PREFETCH_AHEAD], 0], k * sizeof(floating))
        _entry(data[e], implicit, alpha, &a, &bc)
        y = &Y[indices[e], 0]
        if out != NULL and by_entries:
            before += _entry_loss(data[e], _dot(k, y, x), implicit, a)
        elif out != NULL:  # y is in cache now
            constant += _entry_loss(data[e], 0.0, implicit, a)
            yy = _dot(k, y, y)
            sum_a += fabs(a) * yy
            sum_b2 += bc * bc
            sum_yy += yy
        if bc != 0:
            _axpy(k, <floating> bc, y, b)
        if a > 0:
            _scale_copy(k, <floating> sqrt(a), y, pos + npos * k)
            npos += 1
            if npos == GATHER:
                _syrk(k, npos, <floating> 1, pos, A)
                npos = 0
        elif a < 0:
            _scale_copy(k, <floating> sqrt(-a), y, neg + nneg * k)
            nneg += 1
            if nneg == GATHER:
                _syrk(k, nneg, <floating> -1, neg, A)
                nneg = 0
    if npos:
        _syrk(k, npos, <floating> 1, pos, A)
    if nneg:
        _syrk(k, nneg, <floating> -1, neg, A)
    lam = _row_lambda(end - start, implicit, reg, weighted)
    if lam != 0:
        for d in range(k):
            A[d * k + d] += <floating> lam
    if out != NULL and not by_entries:
        memcpy(A0, A, k * k * sizeof(floating))
        memcpy(b0, b, k * sizeof(floating))
        out[0] = _measure_row(k, A0, b0, x, base, implicit, lam, constant, dwork, NULL)

    # Both paths read the column-major upper triangle that syrk filled.
    if k <= SMALL_CHOLESKY:
        if floating is float:
            info = fu_potrf_upper_f(k, A)
            if info == 0:
                fu_potrs_upper_f(k, A, b)
        else:
            info = fu_potrf_upper_d(k, A)
            if info == 0:
                fu_potrs_upper_d(k, A, b)
    elif floating is float:
        lapack.spotrf(&uplo, &k, A, &k, &info)
        if info == 0:
            lapack.spotrs(&uplo, &k, &one, A, &k, b, &k, &info)
    else:
        lapack.dpotrf(&uplo, &k, A, &k, &info)
        if info == 0:
            lapack.dpotrs(&uplo, &k, &one, A, &k, b, &k, &info)
    if info == 0:
        memcpy(x, b, k * sizeof(floating))
    if out != NULL and by_entries:
        out[0] = before
        _dense_times(k, base, implicit, lam, x, dwork)
        out[1] = _row_gradient(k, start, end, indices, data, &Y[0, 0], x, implicit, alpha,
                               dwork, NULL, NULL, NULL, &out[2])
    elif out != NULL:
        # |A x - b| is computed from A and b as rounded while being built;
        # the exact ones differ by at most (Higham, section 3.1, with n + 5
        # roundings along any path of the sums; sum_e |b_e| |y_e| by
        # Cauchy-Schwarz), plus the double arithmetic of the residual itself;
        # 1.01 covers the rounding of these sums themselves.
        xn = _norm(k, x)
        slack = _gamma(end - start + 5, unit) * (
            (base_norm + sum_a + lam) * xn + sqrt(sum_b2 * sum_yy))
        slack += _gamma(k + 2, 2.0 ** -53) * (
            (base_norm + sum_a + lam * sqrt(<double> k)) * xn + _norm(k, b0))
        slack *= 1.01
        if slack <= exact_above:
            out[2] = _measure_row(k, A0, b0, x, base, implicit, lam, constant, dwork, &out[1])
            out[1] += slack
        else:  # a row so long that the bound says little: measure it
            _dense_times(k, base, implicit, lam, x, dwork)
            out[1] = _row_gradient(k, start, end, indices, data, &Y[0, 0], x, implicit, alpha,
                                   dwork, NULL, NULL, NULL, &out[2])
    return info


cdef void _dense_times(int k, const floating *base, bint implicit, double lam,
                       const floating *x, double *out) noexcept nogil:
    """out = D x in double, D the dense part of the row's A (base or lam I)."""
    cdef int i
    for i in range(k):
        out[i] = _dot_widen(k, base + i * k, x) if implicit else lam * x[i]


cdef inline double _gamma(int64_t n, double unit) noexcept nogil:
    """Higham's gamma_n: the relative error bound of n roundings."""
    return n * unit / (1.0 - n * unit)


cdef inline double _norm(int k, const floating *x) noexcept nogil:
    return sqrt(_sumsq(k, x))


cdef double _measure_row(int k, const floating *A, const floating *b, const floating *x,
                         const floating *base, bint implicit, double lam, double constant,
                         double *work, double *residual) noexcept nogil:
    """The row's data term at x, from its normal equations (A, b as built:
    column-major upper triangle of A); with ``residual``, also |A x - b|.

    Each entry's term is ``c0_e - 2 b_e s + a_e s^2`` (s = y_e . x, ``c0_e``
    the term at s = 0), so the row's is ``C - 2 b.x + x^T (A - D) x`` with D
    the part of A that is not the entries': base (implicit) or lam I.
    """
    cdef double *Ax = work
    cdef double *Dx = work + k
    cdef double quad = 0, lin = 0, dense = 0, s = 0, t
    cdef int i, j
    _dense_times(k, base, implicit, lam, x, Dx)
    for i in range(k):
        Ax[i] = 0
    # column j of the triangle, A[0:j, j], is contiguous: it adds x[j] times
    # itself to Ax[0:j], and its dot product with x[0:j] to Ax[j]
    for j in range(k):
        _axpy_widen(j, x[j], A + j * k, Ax)
        Ax[j] += _dot_widen(j, A + j * k, x) + <double> A[j + j * k] * x[j]
    for i in range(k):
        dense += Dx[i] * x[i]
        quad += Ax[i] * x[i]
        lin += <double> b[i] * x[i]
        if residual != NULL:
            t = Ax[i] - b[i]
            s += t * t
    if residual != NULL:
        residual[0] = sqrt(s)
    return constant - 2 * lin + quad - dense


def solve_cg(const index_t[::1] indptr, const index_t[::1] indices,
             const floating[::1] data, const int64_t[::1] rows,
             floating[:, ::1] X, const floating[:, ::1] Y,
             const floating[:, ::1] base, bint implicit, double alpha, double reg,
             bint weighted, int cg_steps, int num_threads, double rtol=0.0):
    """``cg_steps`` steps of conjugate gradient on each listed row, warm-started
    from the current X.  Rows advance in lock-step blocks of CG_BLOCK so that
    the dense part of A is applied to a whole block with one gemm.

    ``rtol > 0`` stops a row early once its residual is at most ``rtol``
    times its initial one (``cg_steps`` is then a cap): ill-conditioned rows
    take the steps they need, well-conditioned ones stop after a few."""
    cdef int k = X.shape[1]
    cdef int64_t nrows = rows.shape[0], blk
    cdef int64_t nblocks = (nrows + CG_BLOCK - 1) // CG_BLOCK
    cdef int nt = max(num_threads, 1), tid
    scratch_arr = np.empty((nt, 4 * CG_BLOCK * k + 2 * CG_BLOCK), dtype=np.asarray(X).dtype)
    cdef floating[:, ::1] scratch = scratch_arr
    active_arr = np.empty((nt, CG_BLOCK), dtype=np.uint8)
    cdef unsigned char[:, ::1] active = active_arr
    if nrows == 0:
        return
    with nogil, parallel(num_threads=nt):
        for blk in prange(nblocks, schedule='dynamic'):
            tid = threadid()
            _cg_block(k, blk * CG_BLOCK, min(CG_BLOCK, nrows - blk * CG_BLOCK), &rows[0],
                      &indptr[0], &indices[0], &data[0], X, Y, &base[0, 0], implicit,
                      alpha, reg, weighted, cg_steps, rtol * rtol, &scratch[tid, 0],
                      &active[tid, 0])


cdef void _cg_block(int k, int64_t j0, int nb, const int64_t *rows, const index_t *indptr,
                    const index_t *indices, const floating *data, floating[:, ::1] X,
                    const floating[:, ::1] Y, const floating *base, bint implicit,
                    double alpha, double reg, bint weighted, int cg_steps, double rtol2,
                    floating *work, unsigned char *active) noexcept nogil:
    cdef floating *Xb = work
    cdef floating *Rb = Xb + CG_BLOCK * k
    cdef floating *Pb = Rb + CG_BLOCK * k
    cdef floating *Tb = Pb + CG_BLOCK * k
    cdef floating *rs = Tb + CG_BLOCK * k
    cdef floating *stop = rs + CG_BLOCK  # squared residual at which a row is done
    cdef const int64_t *brows = rows + j0
    cdef int j, d, step
    cdef int64_t r
    cdef floating pap, step_len, rsnew
    cdef double lam
    cdef const floating *Yp = &Y[0, 0]

    for j in range(nb):
        r = brows[j]
        # A row without entries has b = 0, so zero minimises its quadratic:
        # explicit fixes such rows at zero (docs/design.md, section 2), and for implicit CG
        # would only shrink the old row towards it, leaving residues (1e-11
        # after a fit from random factors) whose ordering of the items a
        # membership-inference attacker reads as signal.
        active[j] = indptr[r + 1] > indptr[r]
        if active[j]:
            memcpy(Xb + j * k, &X[r, 0], k * sizeof(floating))
        else:
            memset(Xb + j * k, 0, k * sizeof(floating))

    # r = b - A x ; p = r.  The dense part of A x for the whole block by one
    # gemm, then b and the sparse part together: one pass over each row's
    # entries, not two
    if implicit:
        _times_base(k, nb, base, Xb, Tb)
    for j in range(nb):
        if not active[j]:
            continue
        r = brows[j]
        if implicit:
            for d in range(k):
                Rb[j * k + d] = -Tb[j * k + d]
        else:
            lam = _row_lambda(indptr[r + 1] - indptr[r], implicit, reg, weighted)
            for d in range(k):
                Rb[j * k + d] = <floating> (-lam * Xb[j * k + d])
        _add_residual(k, indptr[r], indptr[r + 1], indices, data, Yp, implicit, alpha,
                      Xb + j * k, Rb + j * k)
        memcpy(Pb + j * k, Rb + j * k, k * sizeof(floating))
        rs[j] = _dot(k, Rb + j * k, Rb + j * k)
        stop[j] = <floating> (rtol2 * rs[j])
        if rs[j] < CG_EPS:
            active[j] = 0

    for step in range(cg_steps):
        _apply_block(k, nb, brows, indptr, indices, data, Yp, base, implicit, alpha, reg,
                     weighted, active, Pb, Tb)
        for j in range(nb):
            if not active[j]:
                continue
            pap = _dot(k, Pb + j * k, Tb + j * k)
            if pap <= 0:
                active[j] = 0
                continue
            step_len = rs[j] / pap
            _axpy(k, step_len, Pb + j * k, Xb + j * k)
            _axpy(k, -step_len, Tb + j * k, Rb + j * k)
            rsnew = _dot(k, Rb + j * k, Rb + j * k)
            if rsnew < CG_EPS or rsnew <= stop[j]:
                active[j] = 0
                continue
            _xpby(k, Rb + j * k, rsnew / rs[j], Pb + j * k)
            rs[j] = rsnew

    for j in range(nb):
        memcpy(&X[brows[j], 0], Xb + j * k, k * sizeof(floating))


def gradient_norms(const index_t[::1] indptr, const index_t[::1] indices,
                   const floating[::1] data, const int64_t[::1] rows,
                   const floating[:, ::1] X, const floating[:, ::1] Y,
                   const floating[:, ::1] base, bint implicit, double alpha, double reg,
                   bint weighted, double[::1] out, int num_threads,
                   double[::1] losses=None, double[::1] slack=None,
                   const double[::1] y_norms=None, double base_norm=0.0):
    """out[j] = |A x - b| for row rows[j]: the row's half-gradient norm.

    Accumulated in double so that a certificate near zero is not swamped by
    float32 rounding of A x and b separately.  With ``losses``, also writes
    each row's data term (see ``row_losses``) from the same dot products, so
    that measuring a model costs one pass over the user-major data, not two.

    With ``slack`` (and ``y_norms``, the norms of Y's rows, and ``base_norm``,
    the Frobenius norm of ``base``), the sum is accumulated in the factors'
    dtype instead (twice as fast for float32: no widening of every row of Y)
    and ``slack[j]`` receives a proven bound of how far ``out[j]`` is from
    the exact norm, rounding of the dot products included, so that
    ``out + slack`` is an upper bound and ``out - slack`` a lower one.
    """
    cdef int k = X.shape[1]
    cdef int64_t nrows = rows.shape[0], blk
    cdef int64_t nblocks = (nrows + CG_BLOCK - 1) // CG_BLOCK
    cdef int nt = max(num_threads, 1), tid
    scratch_arr = np.empty((nt, 2 * CG_BLOCK * k), dtype=np.asarray(X).dtype)
    cdef floating[:, ::1] scratch = scratch_arr
    gscratch_arr = np.empty((nt, k), dtype=np.float64)
    cdef double[:, ::1] gscratch = gscratch_arr
    cdef double *loss_out = NULL
    cdef double *slack_out = NULL
    cdef const double *yn = NULL
    if nrows == 0:
        return
    if losses is not None:
        if losses.shape[0] != nrows:
            raise ValueError("losses must have one slot per row")
        loss_out = &losses[0]
    if slack is not None:
        if slack.shape[0] != nrows or y_norms is None or y_norms.shape[0] != Y.shape[0]:
            raise ValueError("slack needs one slot per row and y_norms one norm per row of Y")
        slack_out = &slack[0]
        yn = &y_norms[0]
    with nogil, parallel(num_threads=nt):
        for blk in prange(nblocks, schedule='dynamic'):
            tid = threadid()
            _gradient_block(k, blk * CG_BLOCK, min(CG_BLOCK, nrows - blk * CG_BLOCK),
                            &rows[0], &indptr[0], &indices[0], &data[0], X, Y,
                            &base[0, 0], implicit, alpha, reg, weighted,
                            &scratch[tid, 0], &gscratch[tid, 0], &out[0], loss_out,
                            slack_out, yn, base_norm)


cdef void _gradient_block(int k, int64_t j0, int nb, const int64_t *rows,
                          const index_t *indptr, const index_t *indices,
                          const floating *data, const floating[:, ::1] X,
                          const floating[:, ::1] Y, const floating *base, bint implicit,
                          double alpha, double reg, bint weighted, floating *work,
                          double *g, double *out, double *losses, double *slack,
                          const double *y_norms, double base_norm) noexcept nogil:
    cdef floating *Xb = work
    cdef floating *Tb = work + CG_BLOCK * k
    cdef const int64_t *brows = rows + j0
    cdef int j, d
    cdef int64_t r
    cdef double lam, unit = 2.0 ** -24 if floating is float else 2.0 ** -53
    cdef double sums[2]
    cdef double xn, g0, dense_norm = base_norm
    for j in range(nb):
        memcpy(Xb + j * k, &X[brows[j], 0], k * sizeof(floating))
    if implicit:
        _times_base(k, nb, base, Xb, Tb)
    for j in range(nb):
        r = brows[j]
        if not implicit:
            lam = _row_lambda(indptr[r + 1] - indptr[r], implicit, reg, weighted)
            dense_norm = lam
        if slack == NULL:
            for d in range(k):
                g[d] = Tb[j * k + d] if implicit else lam * Xb[j * k + d]
            out[j0 + j] = _row_gradient(k, indptr[r], indptr[r + 1], indices, data, &Y[0, 0],
                                        Xb + j * k, implicit, alpha, g, NULL, NULL, NULL,
                                        losses + j0 + j if losses != NULL else NULL)
            continue
        # in the dtype, from the dense part as rounded to it.  The slack
        # (docs/design.md, section 3): the sum of n + 1 terms, each product
        # t_e y_e rounded twice (t_e to the dtype, then the multiply), is
        # within gamma_{n+2} (|g_0| + sum_e |t_e| |y_e|) (Higham, section
        # 3.1); each t_e from a rounded dot product adds |a_e| gamma_k |y_e|
        # |x| |y_e|; D x by gemm from the rounded D, (gamma_k + unit) |D|_F
        # |x|; 1.01 for the rounding of these sums and of the final norm
        if not implicit:
            for d in range(k):
                Tb[j * k + d] = <floating> (lam * Xb[j * k + d])
        xn = _norm(k, Xb + j * k)
        g0 = _norm(k, Tb + j * k)
        out[j0 + j] = _row_gradient(k, indptr[r], indptr[r + 1], indices, data, &Y[0, 0],
                                    Xb + j * k, implicit, alpha, NULL, Tb + j * k, y_norms,
                                    sums, losses + j0 + j if losses != NULL else NULL)
        slack[j0 + j] = 1.01 * (_gamma(indptr[r + 1] - indptr[r] + 2, unit) * (g0 + sums[0])
                                + _gamma(k, unit) * xn * sums[1]
                                + (_gamma(k, unit) + unit) * dense_norm * xn)


cdef double _row_gradient(int k, int64_t start, int64_t end, const index_t *indices,
                          const floating *data, const floating *Y, const floating *x,
                          bint implicit, double alpha, double *g, floating *gf,
                          const double *y_norms, double *sums,
                          double *loss) noexcept nogil:
    """|g + sum_e (a_e s_e - b_e) y_e| with s_e = y_e . x: the row's gradient
    norm, given its dense part in ``g`` (double) or, with ``g`` NULL, in ``gf``
    (the dtype; then ``sums`` receives sum_e |t_e| |y_e| and sum_e |a_e|
    |y_e|^2, t_e = a_e s_e - b_e, from ``y_norms``, for the caller's slack);
    ``loss`` (if not NULL) receives the row's data term from the same dot
    products."""
    cdef const floating *ys[4]
    cdef floating dots4[4]
    cdef double dots[4]
    cdef int64_t e, first
    cdef int j, m
    cdef double a, bc, s, total = 0, terms = 0, dot_err = 0
    # four entries at a time: their dot products are independent chains that
    # share the loads of x (``_dot4``), so the CPU overlaps them (and the
    # loads of their rows); g is still updated in entry order (same rounding)
    for first in range(start, end, 4):
        m = <int> min(4, end - first)
        _prefetch_rows(k, first + 4, min(first + 8, end), indices, Y)
        for j in range(m):
            ys[j] = Y + <int64_t> indices[first + j] * k
        if m == 4:
            _dot4(k, x, ys, dots4)
            for j in range(4):
                dots[j] = dots4[j]
        else:
            for j in range(m):
                dots[j] = _dot(k, ys[j], x)
        for j in range(m):
            e = first + j
            _entry(data[e], implicit, alpha, &a, &bc)
            if loss != NULL:
                total += _entry_loss(data[e], dots[j], implicit, a)
            s = a * dots[j] - bc
            if g == NULL:
                terms += fabs(s) * y_norms[indices[e]]
                dot_err += fabs(a) * y_norms[indices[e]] * y_norms[indices[e]]
                if s != 0:
                    _axpy(k, <floating> s, ys[j], gf)
            elif s != 0:
                _axpy_widen(k, s, ys[j], g)
    if loss != NULL:
        loss[0] = total
    if g == NULL:
        sums[0], sums[1] = terms, dot_err
        return _norm(k, gf)
    return sqrt(fu_sumsq_d(k, g))


def row_losses(const index_t[::1] indptr, const index_t[::1] indices,
               const floating[::1] data, const int64_t[::1] rows,
               const floating[:, ::1] Xrows, const floating[:, ::1] Y, bint implicit,
               double alpha, double[::1] out, int num_threads):
    """Data term of the loss over the stored entries of rows[j], into out[j],
    with ``Xrows[j]`` as that row's factors (so that old values of rows can
    be measured without putting them back into the model).

    Implicit: each stored entry's term ``c (p - s)^2`` minus the ``s^2`` that
    the all-entries term ``<X^T X, Y^T Y>`` (added by the caller, with the
    regularisation) already counts for it.  Explicit: ``(r - s)^2``.
    """
    cdef int k = Xrows.shape[1]
    cdef int64_t n = rows.shape[0], j
    if Xrows.shape[0] != n:
        raise ValueError("Xrows must hold one row per entry of rows")
    if n == 0:
        return
    with nogil:
        for j in prange(n, num_threads=max(num_threads, 1), schedule='dynamic', chunksize=64):
            out[j] = _row_loss(k, indptr[rows[j]], indptr[rows[j] + 1], &indices[0], &data[0],
                               &Xrows[j, 0], &Y[0, 0], implicit, alpha)


cdef inline double _entry_loss(double v, double s, bint implicit, double a) noexcept nogil:
    """One stored entry's data term at score s (``a`` from ``_entry``)."""
    cdef double p
    if implicit:
        p = 1.0 if v > 0 else 0.0
        return (a + 1.0) * (p - s) * (p - s) - s * s
    return (v - s) * (v - s)


cdef double _row_loss(int k, int64_t start, int64_t end, const index_t *indices,
                      const floating *data, const floating *x, const floating *Y,
                      bint implicit, double alpha) noexcept nogil:
    # a function of its own so that every temporary is private to the thread
    cdef double total = 0, a, bc
    cdef int64_t e
    for e in range(start, end):
        if e + PREFETCH_AHEAD < end:
            fu_prefetch_row(Y + <int64_t> indices[e + PREFETCH_AHEAD] * k, k * sizeof(floating))
        _entry(data[e], implicit, alpha, &a, &bc)
        total += _entry_loss(data[e], _dot(k, x, Y + <int64_t> indices[e] * k), implicit, a)
    return total
