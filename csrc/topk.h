/* Top-N selection over a row of scores.
 *
 * Entries equal to -INFINITY (or NaN) are "filtered" and never selected.
 * Ordering: higher score first; equal scores by lower index first, so the
 * result equals a stable argsort of -scores.  When fewer than n_out entries
 * are selectable, the tail is padded with id -1 and score `pad`.
 */
#ifndef FU_TOPK_H
#define FU_TOPK_H
#include <stdint.h>

void fu_topk_f(const float *scores, int64_t n, int64_t n_out, int64_t *heap_ids,
               int32_t *out_ids, float *out_scores, float pad);
void fu_topk_d(const double *scores, int64_t n, int64_t n_out, int64_t *heap_ids,
               int32_t *out_ids, double *out_scores, double pad);

#endif
