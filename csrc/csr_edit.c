#include "csr_edit.h"
#include <string.h>

int64_t fu_compact(void *buf, size_t elsize, int64_t n, const int64_t *del,
                   int64_t n_del, void *removed)
{
    char *b = (char *)buf, *out = (char *)removed;
    if (n_del == 0) return n;
    int64_t write = del[0];
    for (int64_t j = 0; j < n_del; ++j) {
        memcpy(out + (size_t)j * elsize, b + (size_t)del[j] * elsize, elsize);
        int64_t start = del[j] + 1;
        int64_t stop = (j + 1 < n_del) ? del[j + 1] : n;
        if (stop > start) {
            memmove(b + (size_t)write * elsize, b + (size_t)start * elsize,
                    (size_t)(stop - start) * elsize);
            write += stop - start;
        }
    }
    return write;
}

void fu_expand(void *buf, size_t elsize, int64_t n, const int64_t *del,
               int64_t n_del, const void *removed)
{
    char *b = (char *)buf;
    const char *in = (const char *)removed;
    /* Walk from the back so every run moves right into space not yet read. */
    int64_t read_end = n - n_del; /* one past the last kept element not yet placed */
    for (int64_t j = n_del - 1; j >= 0; --j) {
        int64_t start = del[j] + 1;
        int64_t stop = (j + 1 < n_del) ? del[j + 1] : n;
        int64_t run = stop - start;
        if (run > 0) {
            read_end -= run;
            memmove(b + (size_t)start * elsize, b + (size_t)read_end * elsize,
                    (size_t)run * elsize);
        }
        memcpy(b + (size_t)del[j] * elsize, in + (size_t)j * elsize, elsize);
    }
}
