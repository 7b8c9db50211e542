/* In-place edits of CSR arrays, independent of the element type.
 *
 * Forgetting a few interactions must not copy the whole data set: removing
 * stored entries is a left shift of the runs between them inside the same
 * buffers (one memmove per run), and undoing it (when a forget fails and must
 * leave the model as it was) is the mirror-image right shift.
 */
#ifndef FU_CSR_EDIT_H
#define FU_CSR_EDIT_H
#include <stddef.h>
#include <stdint.h>

/* Remove the elements at the sorted, distinct positions `del[0..n_del)` from
 * `buf[0..n)` (each element `elsize` bytes), copying each removed element to
 * `removed` (n_del * elsize bytes) in order.  Returns the new length. */
int64_t fu_compact(void *buf, size_t elsize, int64_t n, const int64_t *del,
                   int64_t n_del, void *removed);

/* Inverse of fu_compact: `buf` holds n - n_del elements and has room for n;
 * put `removed` back at positions `del` (sorted, relative to the original). */
void fu_expand(void *buf, size_t elsize, int64_t n, const int64_t *del,
               int64_t n_del, const void *removed);

#endif
