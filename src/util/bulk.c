/*
 * bulk.c — memory for the loop's large, long-lived pools (task records, compact
 * tasks' saved frames): 2 MiB-aligned mappings advised to use transparent huge
 * pages, and a small size-class allocator on top for the saved frames.
 *
 * Why: on the virtual machines we run on, faulting in a fresh 4 KiB page costs
 * ~10 µs but a huge page costs about as much as 50 small ones would at bare-metal
 * speed (~0.24 µs per 4 KiB). A million tasks touch ~400 MB: 1 s of page faults
 * in small pages, a few tens of ms in huge ones. Memory is kept until the loop
 * ends, never handed back and faulted in again.
 */
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>


void *weft__bulk_map(size_t bytes)
{
    size_t len = (bytes + WEFT__HUGE_PAGE - 1) / WEFT__HUGE_PAGE * WEFT__HUGE_PAGE;
    /* Over-map by one huge page so the region can start on a 2 MiB boundary:
     * only aligned 2 MiB ranges can be backed by huge pages. */
    char *raw = mmap(NULL, len + WEFT__HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)raw + WEFT__HUGE_PAGE - 1) & ~(uintptr_t)(WEFT__HUGE_PAGE - 1));
    if (start > raw)
        munmap(raw, (size_t)(start - raw));
    char *end = start + len;
    if (raw + len + WEFT__HUGE_PAGE > end)
        munmap(end, (size_t)(raw + len + WEFT__HUGE_PAGE - end));
#ifdef MADV_HUGEPAGE
    madvise(start, len, MADV_HUGEPAGE); /* advice only: fine if THP is off */
#endif
    return start;
}

void weft__bulk_unmap(void *p, size_t bytes)
{
    size_t len = (bytes + WEFT__HUGE_PAGE - 1) / WEFT__HUGE_PAGE * WEFT__HUGE_PAGE;
    if (p)
        munmap(p, len);
}

/* ------------------------------------------------------------------------ */
/* Size classes for compact tasks' saved frames                             */
/* ------------------------------------------------------------------------ */

struct weft__chunk {
    struct weft__chunk *next;
};

void *weft__small_alloc(weft__small *a, size_t bytes)
{
    size_t cls = (bytes + WEFT__SMALL_GRANULE - 1) / WEFT__SMALL_GRANULE;
    if (cls == 0)
        cls = 1;
    if (cls > WEFT__SMALL_CLASSES)
        return malloc(bytes);
    void *p = a->free[cls - 1];
    if (p) {
        a->free[cls - 1] = *(void **)p;
        return p;
    }
    size_t size = cls * WEFT__SMALL_GRANULE;
    /* No arithmetic on a NULL bump (a loop's first call): undefined, and clang's
     * UndefinedBehaviorSanitizer says so. */
    if (!a->bump || size > (size_t)(a->bump_end - a->bump)) {
        struct weft__chunk *c = weft__bulk_map(WEFT__HUGE_PAGE);
        if (!c)
            return NULL;
        c->next = a->chunks;
        a->chunks = c;
        /* The chunk header takes the first granule. */
        a->bump = (char *)c + WEFT__SMALL_GRANULE;
        a->bump_end = (char *)c + WEFT__HUGE_PAGE;
    }
    p = a->bump;
    a->bump += size;
    return p;
}

void weft__small_free(weft__small *a, void *p, size_t bytes)
{
    if (!p)
        return;
    size_t cls = (bytes + WEFT__SMALL_GRANULE - 1) / WEFT__SMALL_GRANULE;
    if (cls == 0)
        cls = 1;
    if (cls > WEFT__SMALL_CLASSES) {
        free(p);
        return;
    }
    *(void **)p = a->free[cls - 1];
    a->free[cls - 1] = p;
}

void weft__small_destroy(weft__small *a)
{
    while (a->chunks) {
        struct weft__chunk *c = a->chunks;
        a->chunks = c->next;
        weft__bulk_unmap(c, WEFT__HUGE_PAGE);
    }
    memset(a, 0, sizeof *a);
}
