#include "topk.h"
#include <math.h>

/* A bounded min-heap of candidate indices keyed by (score, -index): the root
 * is the worst candidate kept so far, so each new score is compared with one
 * value and the whole selection costs O(n log n_out) with n_out slots of
 * scratch (`heap_ids`, supplied by the caller so that this code never
 * allocates). */
/* Scores a full heap tests at once (a multiple of every vector width). */
#define FU_TOPK_CHUNK 32

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
    /* whether any of sc[0..FU_TOPK_CHUNK) is above thr (one vector compare \
     * per register: no branch per score) */                                 \
    static inline int any_above_##S(const T *restrict sc, T thr)             \
    {                                                                         \
        int any = 0;                                                          \
        for (int l = 0; l < FU_TOPK_CHUNK; ++l) any |= sc[l] > thr;           \
        return any;                                                           \
    }                                                                         \
    void fu_topk_##S(const T *sc, int64_t n, int64_t n_out, int64_t *h,       \
                     int32_t *out_ids, T *out_scores, T pad)                  \
    {                                                                         \
        int64_t size = 0, i = 0;                                              \
        if (n_out <= 0) return;                                               \
        for (; i < n && size < n_out; ++i) { /* fill the heap */              \
            if (!(sc[i] > -INFINITY)) continue; /* filtered, or NaN */        \
            int64_t j = size++;                                               \
            h[j] = i;                                                         \
            while (j > 0) { /* sift up */                                     \
                int64_t p = (j - 1) / 2;                                      \
                if (!worse_##S(sc, h[j], h[p])) break;                        \
                int64_t t = h[j]; h[j] = h[p]; h[p] = t;                      \
                j = p;                                                        \
            }                                                                 \
        }                                                                     \
        /* Full: a later score replaces the root only when strictly above    \
         * it (on a tie the root's lower index wins; filtered and NaN scores \
         * are above nothing), and after the first few chunks hardly any is, \
         * so whole chunks are tested at once and skipped. */                 \
        while (i < n) {                                                       \
            const int64_t end = n - i < FU_TOPK_CHUNK ? n : i + FU_TOPK_CHUNK; \
            if (end - i == FU_TOPK_CHUNK && !any_above_##S(sc + i, sc[h[0]])) { \
                i = end;                                                      \
                continue;                                                     \
            }                                                                 \
            for (; i < end; ++i)                                              \
                if (sc[i] > sc[h[0]]) {                                       \
                    h[0] = i;                                                 \
                    sift_down_##S(sc, h, size, 0);                            \
                }                                                             \
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
