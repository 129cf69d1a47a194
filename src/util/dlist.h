/*
 * dlist.h — an intrusive doubly-linked list: the FIFO wait lines and work queues
 * of chan.c, queue.c, pool.c and procpool.c, written once.
 *
 * A record that can stand in a list holds a weft__dlink; WEFT__CONTAINER_OF gets
 * the record back from its link. Nothing is allocated and every operation is O(1),
 * so a record can leave the middle of its line (a cancelled waiter) as cheaply as
 * the head. Any state a file needs besides the links (which list a record is on,
 * whether it is on one) stays in its own record.
 */
#ifndef WEFT__SRC_DLIST_H
#define WEFT__SRC_DLIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct weft__dlink {
    struct weft__dlink *next, *prev;
} weft__dlink;

typedef struct weft__dlist {
    weft__dlink *head, *tail;
} weft__dlist;

/* Always inlined: each operation is a few stores, and as plain `static inline`
 * functions they tipped GCC's inlining budget so that the channel's receive path
 * became an out-of-line call. */
#if defined(__GNUC__)
#define WEFT__DLIST_FN static inline __attribute__((always_inline))
#else
#define WEFT__DLIST_FN static inline
#endif

/* The record of type `type` whose member `member` is the link at `ptr`. */
#define WEFT__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

WEFT__DLIST_FN bool weft__dlist_empty(const weft__dlist *l)
{
    return l->head == NULL;
}

WEFT__DLIST_FN void weft__dlist_push_front(weft__dlist *l, weft__dlink *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* Appends first..last, already linked to each other by next and prev, in order. */
WEFT__DLIST_FN void weft__dlist_append_chain(weft__dlist *l, weft__dlink *first, weft__dlink *last)
{
    first->prev = l->tail;
    last->next = NULL;
    if (l->tail)
        l->tail->next = first;
    else
        l->head = first;
    l->tail = last;
}

WEFT__DLIST_FN void weft__dlist_push_back(weft__dlist *l, weft__dlink *n)
{
    weft__dlist_append_chain(l, n, n);
}

/* Undoes weft__dlist_append_chain: takes first and every link after it off the
 * end of l, leaving them linked to each other. */
WEFT__DLIST_FN void weft__dlist_detach_chain(weft__dlist *l, weft__dlink *first)
{
    l->tail = first->prev;
    if (l->tail)
        l->tail->next = NULL;
    else
        l->head = NULL;
}

/* Takes n, which must be on l, off it; its links are cleared. */
WEFT__DLIST_FN void weft__dlist_unlink(weft__dlist *l, weft__dlink *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* The first link, taken off l; NULL when l is empty. */
WEFT__DLIST_FN weft__dlink *weft__dlist_pop_front(weft__dlist *l)
{
    weft__dlink *n = l->head;
    if (n)
        weft__dlist_unlink(l, n);
    return n;
}

#endif
