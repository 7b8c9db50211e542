#include "topk.h"
#include <math.h>

/* A bounded min-heap of candidate indices keyed by (score, -index): the root
 * is the worst candidate kept so far, so each new score is compared with one
 * value and the whole selection costs O(n log n_out) with n_out slots of
 * scratch (`heap_ids`, supplied by the caller so that this code never
 * allocates). */
#define FU_DEFINE_TOPK(T, S)                                                  \
    /* a is worse than b */                                                   \
    static inline int worse_##S(const T *sc, int64_t a, int64_t b)            \
    {                                                                         \
        return sc[a] < sc[b] || (sc[a] == sc[b] && a > b);                    \
    }                                                                         \
    static void sift_down_##S(const T *sc, int64_t *h, int64_t size, int64_t i) \
    {                                                                         \
        for (;;) {                                                            \
            int64_t l = 2 * i + 1, r = l + 1, m = i;                          \
            if (l < size && worse_##S(sc, h[l], h[m])) m = l;                 \
            if (r < size && worse_##S(sc, h[r], h[m])) m = r;                 \
            if (m == i) return;                                               \
            int64_t t = h[i]; h[i] = h[m]; h[m] = t;                          \
            i = m;                                                            \
        }                                                                     \
    }                                                                         \
    void fu_topk_##S(const T *sc, int64_t n, int64_t n_out, int64_t *h,       \
                     int32_t *out_ids, T *out_scores, T pad)                  \
    {                                                                         \
        int64_t size = 0;                                                     \
        if (n_out <= 0) return;                                               \
        for (int64_t i = 0; i < n; ++i) {                                     \
            if (!(sc[i] > -INFINITY)) continue; /* filtered, or NaN */        \
            if (size < n_out) {                                               \
                int64_t j = size++;                                           \
                h[j] = i;                                                     \
                while (j > 0) { /* sift up */                                 \
                    int64_t p = (j - 1) / 2;                                  \
                    if (!worse_##S(sc, h[j], h[p])) break;                    \
                    int64_t t = h[j]; h[j] = h[p]; h[p] = t;                  \
                    j = p;                                                    \
                }                                                             \
            } else if (worse_##S(sc, h[0], i)) {                              \
                h[0] = i;                                                     \
                sift_down_##S(sc, h, size, 0);                                \
            }                                                                 \
        }                                                                     \
        /* pop the worst first, filling the output from the back */           \
        for (int64_t j = size; j < n_out; ++j) {                              \
            out_ids[j] = -1;                                                  \
            out_scores[j] = pad;                                              \
        }                                                                     \
        while (size > 0) {                                                    \
            int64_t best = h[0];                                              \
            out_ids[size - 1] = (int32_t)best;                                \
            out_scores[size - 1] = sc[best];                                  \
            h[0] = h[--size];                                                 \
            sift_down_##S(sc, h, size, 0);                                    \
        }                                                                     \
    }

FU_DEFINE_TOPK(float, f)
FU_DEFINE_TOPK(double, d)
