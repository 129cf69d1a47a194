/*
 * heap.c — the loop's timer structure: a 4-ary min-heap of (deadline, sequence)
 * entries stored inline, each owner remembering its slot so that a cancelled timer
 * leaves the heap at once (O(log n)) instead of lingering as asyncio's do.
 *
 * Why 4-ary and inline keys: with a million timers the heap is ~24 MB, far larger
 * than the caches; comparing four children that sit in one or two cache lines
 * halves the depth (10 levels instead of 20) and the misses, and keeping the key
 * in the entry avoids a pointer chase per comparison.
 */
#include "util/util.h"

#include <errno.h>

#include <stdlib.h>
#include <string.h>

#define ARITY 4
/* Arrays from this size on come from huge-page bulk memory. */
#define BULK_FROM ((size_t)1 << 20)

static void release(weft__heap *h)
{
    if (h->cap * sizeof *h->e < BULK_FROM)
        free(h->e);
    else
        weft__bulk_unmap(h->e, h->cap * sizeof *h->e);
}

static inline int entry_less(const weft__heap_entry *a, const weft__heap_entry *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(weft__heap *h, size_t i, weft__heap_entry e)
{
    h->e[i] = e;
    e.owner->u32 = (uint32_t)(i + 1);
}

static void sift_up(weft__heap *h, size_t i, weft__heap_entry e)
{
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        if (!entry_less(&e, &h->e[parent]))
            break;
        place(h, i, h->e[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(weft__heap *h, size_t i, weft__heap_entry e)
{
    size_t n = h->count;
    for (;;) {
        size_t first = i * ARITY + 1;
        if (first >= n)
            break;
        size_t best = first;
        size_t last = first + ARITY < n ? first + ARITY : n;
        for (size_t c = first + 1; c < last; c++)
            if (entry_less(&h->e[c], &h->e[best]))
                best = c;
        if (!entry_less(&h->e[best], &e))
            break;
        place(h, i, h->e[best]);
        i = best;
    }
    place(h, i, e);
}

int weft__heap_push(weft__heap *h, int64_t when, weft__node *owner)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        if (cap > UINT32_MAX - 1)
            return -ENOMEM;
        weft__heap_entry *e;
        if (cap * sizeof *e < BULK_FROM) {
            e = realloc(h->e, cap * sizeof *e);
            if (!e)
                return -ENOMEM;
        } else {
            /* Big heaps live on huge pages: sifting touches entries all over
             * the array, and with 4 KiB pages every level is a TLB miss. */
            e = weft__bulk_map(cap * sizeof *e);
            if (!e)
                return -ENOMEM;
            memcpy(e, h->e, h->count * sizeof *e);
            release(h);
        }
        h->e = e;
        h->cap = cap;
    }
    weft__heap_entry e = {when, h->next_seq++, owner};
    sift_up(h, h->count++, e);
    return 0;
}

void weft__heap_remove(weft__heap *h, weft__node *owner)
{
    size_t i = owner->u32;
    if (i == 0)
        return;
    i--;
    owner->u32 = 0;
    weft__heap_entry last = h->e[--h->count];
    if (i == h->count)
        return;
    /* The moved entry may belong above or below the hole. */
    if (i > 0 && entry_less(&last, &h->e[(i - 1) / ARITY]))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

weft__node *weft__heap_pop(weft__heap *h)
{
    if (h->count == 0)
        return NULL;
    weft__node *owner = h->e[0].owner;
    owner->u32 = 0;
    weft__heap_entry last = h->e[--h->count];
    if (h->count > 0)
        sift_down(h, 0, last);
    return owner;
}

void weft__heap_free(weft__heap *h)
{
    release(h);
    h->e = NULL;
    h->count = h->cap = 0;
}
