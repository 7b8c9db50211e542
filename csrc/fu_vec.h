/* Short dense vector primitives used inside the row loops of the ALS kernels.
 *
 * Rows hold k (typically 32..256) contiguous values.  Calling BLAS-1 for
 * vectors this short costs more in call overhead than in arithmetic, so the
 * kernels use these inline loops instead; `omp simd` lets the compiler
 * vectorise the reductions without -ffast-math (which would break NaN checks
 * and reproducibility).  The summation order is fixed for a given binary, so
 * results do not depend on the number of threads.
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

#define FU_DEFINE_VEC(T, S)                                                   \
    static inline T fu_dot_##S(int n, const T *restrict x, const T *restrict y) \
    {                                                                         \
        T s = 0;                                                              \
        FU_SIMD_SUM_S                                                         \
        for (int j = 0; j < n; ++j) s += x[j] * y[j];                         \
        return s;                                                             \
    }                                                                         \
    /* y += a * x */                                                          \
    static inline void fu_axpy_##S(int n, T a, const T *restrict x, T *restrict y) \
    {                                                                         \
        FU_SIMD                                                               \
        for (int j = 0; j < n; ++j) y[j] += a * x[j];                         \
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
