/* Short dense vector primitives used inside the row loops of the ALS kernels.
 *
 * Rows hold k (typically 32..256) contiguous values.  Calling BLAS-1 for
 * vectors this short costs more in call overhead than in arithmetic, so the
 * kernels use these inline loops instead.
 *
 * Reductions keep FU_LANES partial sums, lane l summing the elements
 * j = l (mod FU_LANES), and add them up in a fixed tree: the compiler keeps
 * the lanes in vector registers whatever their width (4 SSE2, 2 AVX2 or 1
 * AVX-512 registers of floats), and the order of the sums is the same for
 * every width, so the variants compiled for each instruction set
 * (fastunlearn/isa.py) round alike except where FMA fuses a multiply and an
 * add.  (`omp simd reduction` left the order to the vector width and, with
 * GCC, ended in a serial sum of the lanes through memory: 16 dependent adds
 * after a 4-instruction AVX-512 loop at k = 64.)  The lanes index through a
 * pointer to the chunk: under -fwrapv (Python's flags) `x[j + l]` may wrap,
 * and GCC then gathers the chunk element by element.
 *
 * No -ffast-math, which would break NaN checks.  The order is fixed for a
 * given binary, so results do not depend on the number of threads.
 */
#ifndef FU_VEC_H
#define FU_VEC_H

#include <stddef.h>

#if defined(_OPENMP) || defined(__clang__) || defined(__GNUC__)
#define FU_SIMD _Pragma("omp simd")
#define FU_SIMD_SUM_S _Pragma("omp simd reduction(+:s)") /* sums into `s` */
#else
#define FU_SIMD
#define FU_SIMD_SUM_S
#endif

static inline int fu_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Partial sums of a reduction: a multiple of every vector width in floats
 * (16 = one AVX-512 register). */
#define FU_LANES 16

/* acc[0] = sum of acc[0..FU_LANES), pairwise in a fixed order. */
#define FU_LANES_SUM(acc)                                                     \
    for (int w_ = FU_LANES / 2; w_ > 0; w_ /= 2) {                            \
        FU_SIMD for (int l_ = 0; l_ < w_; ++l_) (acc)[l_] += (acc)[l_ + w_];  \
    }

#define FU_DEFINE_VEC(T, S)                                                   \
    static inline T fu_dot_##S(int n, const T *restrict x, const T *restrict y) \
    {                                                                         \
        T acc[FU_LANES] = {0};                                                \
        int j = 0;                                                            \
        for (; j + FU_LANES <= n; j += FU_LANES) {                            \
            const T *restrict xj = x + j, *restrict yj = y + j;               \
            FU_SIMD for (int l = 0; l < FU_LANES; ++l) acc[l] += xj[l] * yj[l]; \
        }                                                                     \
        x += j;                                                               \
        y += j;                                                               \
        for (int l = 0; l < n - j; ++l) acc[l] += x[l] * y[l];                \
        FU_LANES_SUM(acc)                                                     \
        return acc[0];                                                        \
    }                                                                         \
    /* x . y in double (measures and certificates) */                        \
    static inline double fu_dot_widen_##S(int n, const T *restrict x,        \
                                          const T *restrict y)               \
    {                                                                         \
        double acc[FU_LANES] = {0};                                           \
        int j = 0;                                                            \
        for (; j + FU_LANES <= n; j += FU_LANES) {                            \
            const T *restrict xj = x + j, *restrict yj = y + j;               \
            FU_SIMD for (int l = 0; l < FU_LANES; ++l) acc[l] += (double)xj[l] * yj[l]; \
        }                                                                     \
        x += j;                                                               \
        y += j;                                                               \
        for (int l = 0; l < n - j; ++l) acc[l] += (double)x[l] * y[l];        \
        FU_LANES_SUM(acc)                                                     \
        return acc[0];                                                        \
    }                                                                         \
    /* sum of x[j]^2 in double */                                             \
    static inline double fu_sumsq_##S(int n, const T *restrict x)            \
    {                                                                         \
        return fu_dot_widen_##S(n, x, x);                                     \
    }                                                                         \
    /* y = x + b * y (CG's new search direction) */                           \
    static inline void fu_xpby_##S(int n, const T *restrict x, T b, T *restrict y) \
    {                                                                         \
        FU_SIMD                                                               \
        for (int j = 0; j < n; ++j) y[j] = x[j] + b * y[j];                   \
    }                                                                         \
    /* g += a * x, g in double (gradients accumulated in double) */           \
    static inline void fu_axpy_widen_##S(int n, double a, const T *restrict x, \
                                         double *restrict g)                  \
    {                                                                         \
        FU_SIMD                                                               \
        for (int j = 0; j < n; ++j) g[j] += a * x[j];                         \
    }                                                                         \
    /* y += a * x */                                                          \
    static inline void fu_axpy_##S(int n, T a, const T *restrict x, T *restrict y) \
    {                                                                         \
        FU_SIMD                                                               \
        for (int j = 0; j < n; ++j) y[j] += a * x[j];                         \
    }                                                                         \
    /* out[i] = x . y_i for four rows y_0..y_3, each summed exactly as        \
     * fu_dot (same lanes, same tree): x is loaded once for all four, and the \
     * four sums are independent chains */                                    \
    static inline void fu_dot4_##S(int n, const T *restrict x,                \
                                   const T *restrict y0, const T *restrict y1,\
                                   const T *restrict y2, const T *restrict y3,\
                                   T *restrict out)                           \
    {                                                                         \
        T a0[FU_LANES] = {0}, a1[FU_LANES] = {0};                             \
        T a2[FU_LANES] = {0}, a3[FU_LANES] = {0};                             \
        int j = 0;                                                            \
        for (; j + FU_LANES <= n; j += FU_LANES) {                            \
            const T *restrict xj = x + j, *restrict p0 = y0 + j;              \
            const T *restrict p1 = y1 + j, *restrict p2 = y2 + j;             \
            const T *restrict p3 = y3 + j;                                    \
            FU_SIMD for (int l = 0; l < FU_LANES; ++l) {                      \
                a0[l] += p0[l] * xj[l];                                       \
                a1[l] += p1[l] * xj[l];                                       \
                a2[l] += p2[l] * xj[l];                                       \
                a3[l] += p3[l] * xj[l];                                       \
            }                                                                 \
        }                                                                     \
        x += j; y0 += j; y1 += j; y2 += j; y3 += j;                           \
        for (int l = 0; l < n - j; ++l) {                                     \
            a0[l] += y0[l] * x[l];                                            \
            a1[l] += y1[l] * x[l];                                            \
            a2[l] += y2[l] * x[l];                                            \
            a3[l] += y3[l] * x[l];                                            \
        }                                                                     \
        FU_LANES_SUM(a0)                                                      \
        FU_LANES_SUM(a1)                                                      \
        FU_LANES_SUM(a2)                                                      \
        FU_LANES_SUM(a3)                                                      \
        out[0] = a0[0]; out[1] = a1[0]; out[2] = a2[0]; out[3] = a3[0];       \
    }                                                                         \
    /* y += a0 x0 + a1 x1 + a2 x2 + a3 x3, added in that order element by     \
     * element (the rounding of four fu_axpy calls), y loaded and stored once */\
    static inline void fu_axpy4_##S(int n, const T *restrict a,               \
                                    const T *restrict x0, const T *restrict x1,\
                                    const T *restrict x2, const T *restrict x3,\
                                    T *restrict y)                            \
    {                                                                         \
        const T b0 = a[0], b1 = a[1], b2 = a[2], b3 = a[3];                   \
        FU_SIMD                                                               \
        for (int j = 0; j < n; ++j) {                                         \
            T s = y[j];                                                       \
            s += b0 * x0[j];                                                  \
            s += b1 * x1[j];                                                  \
            s += b2 * x2[j];                                                  \
            s += b3 * x3[j];                                                  \
            y[j] = s;                                                         \
        }                                                                     \
    }                                                                         \
    /* y = a * x */                                                           \
    static inline void fu_scale_copy_##S(int n, T a, const T *restrict x, T *restrict y) \
    {                                                                         \
        FU_SIMD                                                               \
        for (int j = 0; j < n; ++j) y[j] = a * x[j];                          \
    }

FU_DEFINE_VEC(float, f)
FU_DEFINE_VEC(double, d)

/* Ask for the cache lines of a row that will be read soon (no-op where the
 * compiler has no prefetch builtin). */
static inline void fu_prefetch_row(const void *row, size_t nbytes)
{
#if defined(__GNUC__) || defined(__clang__)
    for (size_t off = 0; off < nbytes; off += 64)
        __builtin_prefetch((const char *)row + off);
#else
    (void)row;
    (void)nbytes;
#endif
}

#endif /* FU_VEC_H */
