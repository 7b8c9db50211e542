/* Instruction sets: what this CPU and its OS can run, and what the
 * translation unit including this header was compiled to use.  The kernels
 * are compiled once per instruction-set variant and the best one the CPU
 * runs is chosen at import (fastunlearn/isa.py; docs/design.md, section 8).
 */
#ifndef FU_CPU_H
#define FU_CPU_H

enum {
    FU_ISA_AVX2 = 1 << 0,
    FU_ISA_FMA = 1 << 1,
    FU_ISA_AVX512F = 1 << 2,
    FU_ISA_AVX512CD = 1 << 3,
    FU_ISA_AVX512BW = 1 << 4,
    FU_ISA_AVX512DQ = 1 << 5,
    FU_ISA_AVX512VL = 1 << 6,
};

/* The features above that the CPU has and the OS saves the registers of
 * (GCC's and Clang's __builtin_cpu_supports check both); 0 where the
 * compiler cannot ask, so that only the portable kernels are used there. */
static inline int fu_cpu_features(void)
{
    int f = 0;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) f |= FU_ISA_AVX2;
    if (__builtin_cpu_supports("fma")) f |= FU_ISA_FMA;
    if (__builtin_cpu_supports("avx512f")) f |= FU_ISA_AVX512F;
    if (__builtin_cpu_supports("avx512cd")) f |= FU_ISA_AVX512CD;
    if (__builtin_cpu_supports("avx512bw")) f |= FU_ISA_AVX512BW;
    if (__builtin_cpu_supports("avx512dq")) f |= FU_ISA_AVX512DQ;
    if (__builtin_cpu_supports("avx512vl")) f |= FU_ISA_AVX512VL;
#endif
    return f;
}

/* The features above that this translation unit was compiled to use. */
static inline int fu_compiled_features(void)
{
    int f = 0;
#ifdef __AVX2__
    f |= FU_ISA_AVX2;
#endif
#ifdef __FMA__
    f |= FU_ISA_FMA;
#endif
#ifdef __AVX512F__
    f |= FU_ISA_AVX512F;
#endif
#ifdef __AVX512CD__
    f |= FU_ISA_AVX512CD;
#endif
#ifdef __AVX512BW__
    f |= FU_ISA_AVX512BW;
#endif
#ifdef __AVX512DQ__
    f |= FU_ISA_AVX512DQ;
#endif
#ifdef __AVX512VL__
    f |= FU_ISA_AVX512VL;
#endif
    return f;
}

#endif /* FU_CPU_H */
