/* Guard-page buffers for parser tests: the copy of the input ends exactly at
 * a page boundary followed by an unreadable page, so any read past the end
 * crashes the test instead of passing silently. */
#ifndef BOXER_TEST_GUARD_H
#define BOXER_TEST_GUARD_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard_buf {
    void *map;
    size_t map_len;
    char *data;
};

static inline char *guard_copy(struct guard_buf *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page + 1;
    char *base;
    g->map_len = pages * page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED)
        abort();
    base = g->map;
    if (mprotect(base + (pages - 1) * page, page, PROT_NONE) != 0)
        abort();
    g->data = base + (pages - 1) * page - len;
    if (len)
        memcpy(g->data, src, len);
    return g->data;
}

static inline void guard_free(struct guard_buf *g)
{
    if (g->map && g->map != MAP_FAILED)
        munmap(g->map, g->map_len);
    g->map = NULL;
}

#endif
