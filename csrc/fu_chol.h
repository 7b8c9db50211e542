/* Small dense Cholesky factor + solve for the per-row ALS systems.
 *
 * Each ALS row solves a k x k symmetric positive definite system (k is
 * typically 32..128) about 10^5 times per sweep.  At these sizes LAPACK's
 * ?potrf/?potrs spend much of their time in call and dispatch overhead and
 * in unblocked level-2 code, so the kernels factor in place with the inline
 * loops below instead.  Plain C, no intrinsics; `omp simd` instead of
 * -ffast-math, so results are deterministic for a given binary, and a NaN in
 * the input makes the factorisation fail instead of producing a "solution"
 * (the OpenBLAS ?potrf scipy ships returns info = 0 for a NaN anywhere,
 * diagonal included).
 *
 * STORAGE.  A is a k x k buffer with leading dimension k.  Only the entries
 *
 *     A[i*k + j]   with 0 <= j <= i < k
 *
 * are read or written: the LOWER triangle read row-major, which is the UPPER
 * triangle read column-major (element (j, i), j <= i, at A[j + i*k]).  That
 * is the triangle BLAS ?syrk('U', 'N', k, m, ..., lda = k) fills and LAPACK
 * ?potrf('U', k, A, k) reads.  The other triangle (j > i) is neither read nor
 * written and may hold anything, NaN or uninitialised memory included.
 *
 * On success fu_potrf_upper_* leaves there L, row-major lower with
 * A = L L^T; those bytes are U = L^T column-major upper, A = U^T U, which is
 * what ?potrf('U') leaves.  So fu_potrs_upper_* and ?potrs('U') accept each
 * other's factors (values differ from LAPACK's only by rounding).
 *
 * ALGORITHM.  Left-looking blocked Cholesky over column blocks
 * J = [j0, j0 + NB).  For each block:
 *   1. update A[i][J] -= L[i][0:j0] L[J][0:j0]^T for the rows i >= j0
 *      (almost all of the arithmetic, k^3/6 multiply-adds);
 *   2. factor the NB x NB diagonal block (scalar dot products; a short
 *      serial chain, issued before the update of the rows below so the CPU
 *      overlaps the two);
 *   3. finish the rows below: L[i][J] = A[i][J] L_JJ^-T, as a product with
 *      the explicit inverse of the small triangle L_JJ, which has no serial
 *      dependency (forward substitution is a chain of NB dependent
 *      multiply-subtracts per row and measured slower).
 * In this storage the contraction index p of L L^T is the contiguous one,
 * so step 1 comes in two forms, chosen per type (FU_CHOL_DOT_F/_D):
 *   - outer product (float default): the panel L[J][0:j0] is copied
 *     transposed into a stack buffer, then R rows at a time
 *     acc[0:NB] -= L[i][p] * panel[p][0:NB] with the NB-wide accumulators in
 *     registers (NB = 8 floats = two SSE2 registers per row);
 *   - dot product (double default): 2 x 4 tiles of dot products over p,
 *     eight vector reductions in one loop, no transpose.  With two doubles
 *     per SSE2 register this needs fewer shuffles than broadcasting
 *     L[i][p] (measured 1.2x at k = 64..128); for float the outer product
 *     is as fast with SSE2 and 1.5x faster with -march=native (AVX), where
 *     for double the two forms are within a few per cent.
 * Accumulation is in the native type, like LAPACK.
 *
 * No allocation: stack use is under 10 KB with the defaults.  The functions
 * are reentrant and meant to be called from inside parallel loops.
 */
#ifndef FU_CHOL_H
#define FU_CHOL_H
#include <math.h>
#include <stddef.h>
#include "fu_vec.h" /* FU_SIMD, FU_SIMD_SUM_S */

/* Block width NB.  Outer-product form: NB floats are NB/4 SSE2 registers per
 * row; 8 (with R = 4 rows, 8 accumulator registers) measured best, larger
 * blocks spend more in the scalar diagonal block.  Dot form: multiple of 4. */
#ifndef FU_CHOL_NB_F
#define FU_CHOL_NB_F 8
#endif
#ifndef FU_CHOL_NB_D
#define FU_CHOL_NB_D 4
#endif
/* Step-1 form per type: 1 = dot-product tiles, 0 = transposed panel. */
#ifndef FU_CHOL_DOT_F
#define FU_CHOL_DOT_F 0
#endif
#ifndef FU_CHOL_DOT_D
#define FU_CHOL_DOT_D 1
#endif
/* Rows per register tile: outer-product update, and step 3. */
#ifndef FU_CHOL_R
#define FU_CHOL_R 4
#endif
#ifndef FU_CHOL_RD
#define FU_CHOL_RD 2
#endif
/* Outer-product form: panel columns per pass, bounding the transposed panel
 * buffer to FU_CHOL_PC * NB elements; k <= FU_CHOL_PC + NB is one pass. */
#ifndef FU_CHOL_PC
#define FU_CHOL_PC 256
#endif
/* Vector width step 3 is chunked by: a speed hint only (the sums are the
 * same for any divisor of NB). */
#ifndef FU_CHOL_VBYTES
#if defined(__AVX__)
#define FU_CHOL_VBYTES 32
#else
#define FU_CHOL_VBYTES 16
#endif
#endif

#if defined(_OPENMP) || defined(__clang__) || defined(__GNUC__)
#define FU_CHOL_SIMD_SUM4 _Pragma("omp simd reduction(+:s0, s1, s2, s3)")
#define FU_CHOL_SIMD_SUM8                                                     \
    _Pragma("omp simd reduction(+:s00, s01, s02, s03, s10, s11, s12, s13)")
#else
#define FU_CHOL_SIMD_SUM4
#define FU_CHOL_SIMD_SUM8
#endif

/* The loops over a register tile must be fully unrolled, or the compiler
 * keeps the accumulators in memory (store-to-load chains, measured 1.5x). */
#if defined(__clang__)
#define FU_CHOL_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define FU_CHOL_UNROLL _Pragma("GCC unroll 16")
#else
#define FU_CHOL_UNROLL
#endif

/* The tile macros below expand inside fu_potrf_upper_* and use its locals:
 * k, A, j0, the row i, and Pt, pc0, pn (outer product) or M (step 3). */

/* Outer product, RR full rows i..i+RR-1:
 * A[i][j0:j0+NB] -= sum_{p < pn} A[i][pc0+p] * Pt[p][0:NB]. */
#define FU_CHOL_OUTER_TILE(T, NB, RR)                                         \
    {                                                                         \
        T acc_[RR][NB];                                                       \
        FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                           \
            for (int c = 0; c < NB; ++c) acc_[q][c] = A[(size_t)(i + q) * k + j0 + c]; \
        for (int p = 0; p < pn; ++p) {                                        \
            const T *pt = Pt + p * NB;                                        \
            FU_CHOL_UNROLL for (int q = 0; q < RR; ++q) {                     \
                const T l = A[(size_t)(i + q) * k + pc0 + p];                 \
                FU_SIMD for (int c = 0; c < NB; ++c) acc_[q][c] -= l * pt[c]; \
            }                                                                 \
        }                                                                     \
        FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                           \
            for (int c = 0; c < NB; ++c) A[(size_t)(i + q) * k + j0 + c] = acc_[q][c]; \
    }

/* Same for RR rows of the diagonal block: row j0 + r owns lanes c <= r only,
 * the other lanes (the unused triangle) are neither loaded nor stored.  The
 * masked copies go through tmp_ so that acc_ sees only whole-row accesses
 * and stays in registers. */
#define FU_CHOL_OUTER_DIAG_TILE(T, NB, RR)                                    \
    {                                                                         \
        T tmp_[RR][NB], acc_[RR][NB];                                         \
        for (int q = 0; q < RR; ++q)                                          \
            for (int c = 0; c < NB; ++c)                                      \
                tmp_[q][c] = c <= i + q - j0 ? A[(size_t)(i + q) * k + j0 + c] : 0; \
        FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                           \
            for (int c = 0; c < NB; ++c) acc_[q][c] = tmp_[q][c];             \
        for (int p = 0; p < pn; ++p) {                                        \
            const T *pt = Pt + p * NB;                                        \
            FU_CHOL_UNROLL for (int q = 0; q < RR; ++q) {                     \
                const T l = A[(size_t)(i + q) * k + pc0 + p];                 \
                FU_SIMD for (int c = 0; c < NB; ++c) acc_[q][c] -= l * pt[c]; \
            }                                                                 \
        }                                                                     \
        FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                           \
            for (int c = 0; c < NB; ++c) tmp_[q][c] = acc_[q][c];             \
        for (int q = 0; q < RR; ++q)                                          \
            for (int c = 0; c <= i + q - j0; ++c) A[(size_t)(i + q) * k + j0 + c] = tmp_[q][c]; \
    }

/* Dot-product form, rows i, i+1 x columns j0+c0 .. j0+c0+3:
 * A[i+q][j0+c0+c] -= dot(L[i+q][0:j0], L[j0+c0+c][0:j0]).  MASKED: the
 * tile straddles the diagonal; only entries on or below it are updated (all
 * eight dots read only rows of L below the diagonal block's top, p < j0). */
#define FU_CHOL_DOT_TILE(T, MASKED)                                           \
    {                                                                         \
        const T *a0 = A + (size_t)i * k, *a1 = a0 + k;                        \
        const T *b0 = A + (size_t)(j0 + c0) * k, *b1 = b0 + k, *b2 = b1 + k, *b3 = b2 + k; \
        T s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0; \
        FU_CHOL_SIMD_SUM8                                                     \
        for (int p = 0; p < j0; ++p) {                                        \
            const T x0 = a0[p], x1 = a1[p];                                   \
            const T y0 = b0[p], y1 = b1[p], y2 = b2[p], y3 = b3[p];           \
            s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;   \
            s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;   \
        }                                                                     \
        T *o0 = A + (size_t)i * k + j0 + c0, *o1 = o0 + k;                   \
        if (!(MASKED)) {                                                      \
            o0[0] -= s00; o0[1] -= s01; o0[2] -= s02; o0[3] -= s03;           \
            o1[0] -= s10; o1[1] -= s11; o1[2] -= s12; o1[3] -= s13;           \
        } else {                                                              \
            const int r_ = i - j0 - c0; /* row i owns c <= r_, row i+1 c <= r_+1 */ \
            if (r_ >= 0) { o0[0] -= s00; }                                    \
            if (r_ >= 1) { o0[1] -= s01; }                                    \
            if (r_ >= 2) { o0[2] -= s02; }                                    \
            if (r_ >= 3) { o0[3] -= s03; }                                    \
            if (r_ >= -1) { o1[0] -= s10; }                                   \
            if (r_ >= 0) { o1[1] -= s11; }                                    \
            if (r_ >= 1) { o1[2] -= s12; }                                    \
            if (r_ >= 2) { o1[3] -= s13; }                                    \
        }                                                                     \
    }

/* Dot-product form, one entry: A[i][j0+c] -= dot(L[i][0:j0], L[j0+c][0:j0]). */
#define FU_CHOL_DOT_ONE(T)                                                    \
    {                                                                         \
        const T *a0 = A + (size_t)i * k, *b0 = A + (size_t)(j0 + c) * k;      \
        T s = 0;                                                              \
        FU_SIMD_SUM_S                                                         \
        for (int p = 0; p < j0; ++p) s += a0[p] * b0[p];                      \
        A[(size_t)i * k + j0 + c] -= s;                                       \
    }

/* Step 3 for RR rows i..i+RR-1 below the diagonal block: x = a M with
 * a = A[i][J] and M = L_JJ^-T (upper triangular), the solution of
 * x L_JJ^T = a.  Output lanes go top chunk first: chunk h reads input lanes
 * < h + V only, so it may overwrite lanes h..h+V-1 of a_ in place. */
#define FU_CHOL_TRSM_TILE(T, NB, V, RR)                                       \
    {                                                                         \
        T a_[RR][NB];                                                         \
        FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                           \
            for (int c = 0; c < NB; ++c) a_[q][c] = A[(size_t)(i + q) * k + j0 + c]; \
        FU_CHOL_UNROLL for (int h = NB - V; h >= 0; h -= V) {                 \
            T x_[RR][V];                                                      \
            FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                       \
                for (int v = 0; v < V; ++v) x_[q][v] = 0;                     \
            FU_CHOL_UNROLL for (int c = 0; c < h + V; ++c) {                  \
                const T *mc = M + c * NB + h;                                 \
                FU_CHOL_UNROLL for (int q = 0; q < RR; ++q) {                 \
                    const T s = a_[q][c];                                     \
                    FU_SIMD for (int v = 0; v < V; ++v) x_[q][v] += s * mc[v]; \
                }                                                             \
            }                                                                 \
            FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                       \
                for (int v = 0; v < V; ++v) a_[q][h + v] = x_[q][v];          \
        }                                                                     \
        FU_CHOL_UNROLL for (int q = 0; q < RR; ++q)                           \
            for (int c = 0; c < NB; ++c) A[(size_t)(i + q) * k + j0 + c] = a_[q][c]; \
    }

#define FU_DEFINE_CHOL(T, S, SQRT, NB, DOT)                                   \
    /* Pt[p*NB + c] = L[j0+c][pc0+p] for c < w, 0 for w <= c < NB. */        \
    static inline void fu_chol_pack_##S(int k, const T *A, int j0, int w, int pc0, \
                                        int pn, T *restrict Pt)              \
    {                                                                         \
        for (int c = 0; c < NB; ++c) {                                        \
            const T *src = A + (size_t)(j0 + c) * k + pc0;                    \
            if (c < w)                                                        \
                for (int p = 0; p < pn; ++p) Pt[p * NB + c] = src[p];         \
            else                                                              \
                for (int p = 0; p < pn; ++p) Pt[p * NB + c] = 0;              \
        }                                                                     \
    }                                                                         \
    /* Step 2: factor the (already updated) w x w diagonal block at (j0, j0) \
     * in place, row by row; inv[r] = 1 / L[j0+r][j0+r] (LAPACK's ?potf2    \
     * also scales by the reciprocal).  Returns 0, or the 1-based global     \
     * index of the first pivot that is not > 0 (NaN included). */            \
    static inline int fu_chol_diag_##S(int k, T *A, int j0, int w, T *restrict inv) \
    {                                                                         \
        for (int r = 0; r < w; ++r) {                                         \
            T *Lr = A + (size_t)(j0 + r) * k + j0;                            \
            for (int c = 0; c < r; ++c) {                                     \
                const T *Lc = A + (size_t)(j0 + c) * k + j0;                  \
                T s = Lr[c];                                                  \
                for (int m = 0; m < c; ++m) s -= Lr[m] * Lc[m];               \
                Lr[c] = s * inv[c];                                           \
            }                                                                 \
            T d = Lr[r];                                                      \
            for (int m = 0; m < r; ++m) d -= Lr[m] * Lr[m];                   \
            if (!(d > 0)) return j0 + r + 1;                                  \
            const T s = SQRT(d);                                              \
            Lr[r] = s;                                                        \
            inv[r] = 1 / s;                                                   \
        }                                                                     \
        return 0;                                                             \
    }                                                                         \
    /* M = L_JJ^-T (NB x NB, upper triangular, row-major) from L_JJ^T M = I, \
     * bottom row first: M[c] = inv[c] (e_c - sum_{c2 > c} L[c2][c] M[c2]). */ \
    static inline void fu_chol_inv_##S(int k, const T *A, int j0, const T *inv, \
                                       T *restrict M)                        \
    {                                                                         \
        for (int c = NB - 1; c >= 0; --c) {                                   \
            T row[NB];                                                        \
            for (int v = 0; v < NB; ++v) row[v] = v == c;                     \
            for (int c2 = c + 1; c2 < NB; ++c2) {                             \
                const T l = A[(size_t)(j0 + c2) * k + j0 + c];                \
                const T *m2 = M + c2 * NB;                                    \
                FU_SIMD for (int v = 0; v < NB; ++v) row[v] -= l * m2[v];     \
            }                                                                 \
            FU_SIMD for (int v = 0; v < NB; ++v) M[c * NB + v] = row[v] * inv[c]; \
        }                                                                     \
    }                                                                         \
    /* Factor A = L L^T in place (storage: see the top of this file).       \
     * Returns 0 on success, or j+1 when the leading minor of order j+1 is   \
     * not positive definite or holds a NaN, as LAPACK's info; A is then     \
     * partly overwritten and must not be used. */                           \
    static inline int fu_potrf_upper_##S(int k, T *A)                         \
    {                                                                         \
        enum { V_ = (FU_CHOL_VBYTES / (int)sizeof(T)) < NB                    \
                        ? (FU_CHOL_VBYTES / (int)sizeof(T)) : NB };           \
        (void)sizeof(char[NB % V_ == 0 ? 1 : -1]);           /* V_ | NB */    \
        (void)sizeof(char[!(DOT) || NB % 4 == 0 ? 1 : -1]);  /* 4 | NB */    \
        T Pt[(DOT) ? 1 : FU_CHOL_PC * NB];                                    \
        T M[NB * NB];                                                         \
        T inv[NB];                                                            \
        for (int j0 = 0; j0 < k; j0 += NB) {                                  \
            const int w = k - j0 < NB ? k - j0 : NB;                          \
            int i;                                                            \
            if (DOT) {                                                        \
                if (j0 > 0) { /* step 1, diagonal block */                   \
                    if (w == NB) {                                            \
                        for (i = j0; i < j0 + NB; i += 2)                     \
                            for (int c0 = 0; c0 <= i + 1 - j0 && c0 < NB; c0 += 4) \
                                FU_CHOL_DOT_TILE(T, 1)                        \
                    } else {                                                  \
                        for (i = j0; i < k; ++i)                              \
                            for (int c = 0; c <= i - j0; ++c) FU_CHOL_DOT_ONE(T) \
                    }                                                         \
                }                                                             \
                const int info = fu_chol_diag_##S(k, A, j0, w, inv);          \
                if (info) return info;                                        \
                if (j0 + w == k) break;                                       \
                fu_chol_inv_##S(k, A, j0, inv, M);                            \
                if (j0 > 0) { /* step 1, rows below (w == NB) */             \
                    for (i = j0 + NB; i + 2 <= k; i += 2)                     \
                        for (int c0 = 0; c0 < NB; c0 += 4) FU_CHOL_DOT_TILE(T, 0) \
                    for (; i < k; ++i)                                        \
                        for (int c = 0; c < NB; ++c) FU_CHOL_DOT_ONE(T)       \
                }                                                             \
            } else {                                                          \
                /* at least one pass: the diagonal block is factored in it */ \
                const int npass = j0 == 0 ? 1 : (j0 + FU_CHOL_PC - 1) / FU_CHOL_PC; \
                for (int pass = 0; pass < npass; ++pass) {                    \
                    const int pc0 = pass * FU_CHOL_PC;                        \
                    const int pn = j0 - pc0 < FU_CHOL_PC ? j0 - pc0 : FU_CHOL_PC; \
                    if (pn > 0) {                                             \
                        fu_chol_pack_##S(k, A, j0, w, pc0, pn, Pt);           \
                        for (i = j0; i + FU_CHOL_R <= j0 + w; i += FU_CHOL_R) \
                            FU_CHOL_OUTER_DIAG_TILE(T, NB, FU_CHOL_R)         \
                        for (; i < j0 + w; ++i) FU_CHOL_OUTER_DIAG_TILE(T, NB, 1) \
                    }                                                         \
                    if (pass == npass - 1) {                                  \
                        const int info = fu_chol_diag_##S(k, A, j0, w, inv);  \
                        if (info) return info;                                \
                        if (j0 + w < k) fu_chol_inv_##S(k, A, j0, inv, M);    \
                    }                                                         \
                    if (pn > 0) {                                             \
                        for (i = j0 + w; i + FU_CHOL_R <= k; i += FU_CHOL_R)  \
                            FU_CHOL_OUTER_TILE(T, NB, FU_CHOL_R)              \
                        for (; i < k; ++i) FU_CHOL_OUTER_TILE(T, NB, 1)       \
                    }                                                         \
                }                                                             \
                if (j0 + w == k) break;                                       \
            }                                                                 \
            /* step 3 (w == NB here) */                                      \
            for (i = j0 + NB; i + FU_CHOL_RD <= k; i += FU_CHOL_RD)           \
                FU_CHOL_TRSM_TILE(T, NB, V_, FU_CHOL_RD)                      \
            for (; i < k; ++i) FU_CHOL_TRSM_TILE(T, NB, V_, 1)                \
        }                                                                     \
        return 0;                                                             \
    }                                                                         \
    /* Solve L L^T x = b (= U^T U x = b) in place in b[0..k), L from         \
     * fu_potrf_upper_* (or U from LAPACK ?potrf('U'): same bytes); reads    \
     * only the factor's triangle.  Four rows at a time, so the long dot     \
     * products / axpys of neighbouring rows are independent and b is swept  \
     * once per four rows; the 4 x 4 triangles in between are scalar. */     \
    static inline void fu_potrs_upper_##S(int k, const T *L, T *restrict b)   \
    {                                                                         \
        int i = 0;                                                            \
        /* L y = b */                                                         \
        for (; i + 4 <= k; i += 4) {                                          \
            const T *restrict L0 = L + (size_t)i * k;                         \
            const T *restrict L1 = L0 + k, *restrict L2 = L1 + k, *restrict L3 = L2 + k; \
            T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                 \
            FU_CHOL_SIMD_SUM4                                                 \
            for (int p = 0; p < i; ++p) {                                     \
                const T bp = b[p];                                            \
                s0 += L0[p] * bp; s1 += L1[p] * bp;                           \
                s2 += L2[p] * bp; s3 += L3[p] * bp;                           \
            }                                                                 \
            const T y0 = (b[i] - s0) / L0[i];                                 \
            const T y1 = (b[i + 1] - s1 - L1[i] * y0) / L1[i + 1];            \
            const T y2 = (b[i + 2] - s2 - L2[i] * y0 - L2[i + 1] * y1) / L2[i + 2]; \
            const T y3 = (b[i + 3] - s3 - L3[i] * y0 - L3[i + 1] * y1         \
                          - L3[i + 2] * y2) / L3[i + 3];                      \
            b[i] = y0; b[i + 1] = y1; b[i + 2] = y2; b[i + 3] = y3;           \
        }                                                                     \
        for (; i < k; ++i) {                                                  \
            const T *restrict Li = L + (size_t)i * k;                         \
            T s = 0;                                                          \
            FU_SIMD_SUM_S                                                     \
            for (int p = 0; p < i; ++p) s += Li[p] * b[p];                    \
            b[i] = (b[i] - s) / Li[i];                                        \
        }                                                                     \
        /* L^T x = y: column i of L^T is row i of L, so once x[i] is known   \
         * it is subtracted from the entries above with a contiguous axpy */ \
        for (i = k; i >= 4; i -= 4) {                                         \
            const int i0 = i - 4;                                             \
            const T *restrict L0 = L + (size_t)i0 * k;                        \
            const T *restrict L1 = L0 + k, *restrict L2 = L1 + k, *restrict L3 = L2 + k; \
            const T x3 = b[i0 + 3] / L3[i0 + 3];                              \
            const T x2 = (b[i0 + 2] - x3 * L3[i0 + 2]) / L2[i0 + 2];          \
            const T x1 = (b[i0 + 1] - x3 * L3[i0 + 1] - x2 * L2[i0 + 1]) / L1[i0 + 1]; \
            const T x0 = (b[i0] - x3 * L3[i0] - x2 * L2[i0] - x1 * L1[i0]) / L0[i0]; \
            b[i0] = x0; b[i0 + 1] = x1; b[i0 + 2] = x2; b[i0 + 3] = x3;       \
            FU_SIMD                                                           \
            for (int p = 0; p < i0; ++p)                                      \
                b[p] -= x3 * L3[p] + x2 * L2[p] + x1 * L1[p] + x0 * L0[p];    \
        }                                                                     \
        for (; i > 0; --i) {                                                  \
            const T *restrict Li = L + (size_t)(i - 1) * k;                   \
            const T x = b[i - 1] / Li[i - 1];                                 \
            b[i - 1] = x;                                                     \
            FU_SIMD                                                           \
            for (int p = 0; p < i - 1; ++p) b[p] -= x * Li[p];                \
        }                                                                     \
    }

FU_DEFINE_CHOL(float, f, sqrtf, FU_CHOL_NB_F, FU_CHOL_DOT_F)
FU_DEFINE_CHOL(double, d, sqrt, FU_CHOL_NB_D, FU_CHOL_DOT_D)

#endif /* FU_CHOL_H */
