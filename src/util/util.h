/*
 * util.h — the lowest layer: compiler helpers and the data structures every other
 * layer builds on (the intrusive FIFO of nodes, the timer heap, bulk memory and the
 * small-record allocator). Nothing here knows about loops or tasks; it may use only
 * the C library. (The doubly-linked list is in dlist.h beside it.)
 */
#ifndef WEFT__SRC_UTIL_H
#define WEFT__SRC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT__TLS __thread __attribute__((tls_model("initial-exec")))
#define WEFT__NORETURN __attribute__((noreturn))
#define WEFT__ALWAYS_INLINE inline __attribute__((always_inline))
#define WEFT__NOINLINE __attribute__((noinline))
#else
#define WEFT__LIKELY(x) (x)
#define WEFT__UNLIKELY(x) (x)
#define WEFT__TLS _Thread_local
#define WEFT__NORETURN
#define WEFT__ALWAYS_INLINE inline
#define WEFT__NOINLINE
#endif

/*
 * WEFT__ASSERT — an internal invariant (a task's state at a transition, ...),
 * checked in Debug and sanitizer builds (WEFT_ASSERTS, set by CMake) and compiled
 * out elsewhere. A failure is a bug in weft: it says where and aborts.
 */
#ifdef WEFT_ASSERTS
void weft__assert_failed(const char *cond, const char *file, int line, const char *func)
    __attribute__((noreturn, cold));
#define WEFT__ASSERT(cond) \
    (WEFT__LIKELY(cond) ? (void)0 : weft__assert_failed(#cond, __FILE__, __LINE__, __func__))
#else
#define WEFT__ASSERT(cond) ((void)0)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif


/* ------------------------------------------------------------------------ */
/* Intrusive FIFO nodes (the ready queue, wait lines)                       */
/* ------------------------------------------------------------------------ */

/* The common first member of everything that can sit in a weft__fifo (the
 * ready queue: tasks and callbacks). `kind` says which; the bytes after it
 * belong to the owner (they keep tasks and timers small). */
typedef struct weft__node {
    struct weft__node *next;
    uint8_t kind;
    uint8_t b1, b2, b3;
    uint32_t u32;
} weft__node;

typedef struct weft__fifo {
    weft__node *head, *tail;
    size_t count;
} weft__fifo;

static inline void weft__fifo_push(weft__fifo *q, weft__node *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
}

static inline weft__node *weft__fifo_pop(weft__fifo *q)
{
    weft__node *n = q->head;
    if (n) {
        q->head = n->next;
        if (!q->head)
            q->tail = NULL;
        q->count--;
    }
    return n;
}

/* Takes n out of q wherever it is (a cancelled waiter leaving its line); nothing if
 * n is not in q. A walk: wait lines are short. */
static inline void weft__fifo_remove(weft__fifo *q, weft__node *n)
{
    weft__node *prev = NULL;
    for (weft__node *at = q->head; at; prev = at, at = at->next) {
        if (at != n)
            continue;
        if (prev)
            prev->next = at->next;
        else
            q->head = at->next;
        if (q->tail == at)
            q->tail = prev;
        q->count--;
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Bulk memory (bulk.c)                                                     */
/* ------------------------------------------------------------------------ */

/* The size of a transparent huge page on the machines weft targets. */
#define WEFT__HUGE_PAGE ((size_t)2 << 20)

/* A 2 MiB-aligned mapping advised to use huge pages; NULL on failure. */
void *weft__bulk_map(size_t bytes);
void weft__bulk_unmap(void *p, size_t bytes);

#define WEFT__SMALL_GRANULE 32
#define WEFT__SMALL_CLASSES 64 /* up to 2 KiB; larger blocks come from malloc */

/* Size-class free lists carved from bulk chunks. Blocks are freed by size. */
typedef struct weft__small {
    void *free[WEFT__SMALL_CLASSES];
    char *bump, *bump_end;
    struct weft__chunk *chunks;
} weft__small;

void *weft__small_alloc(weft__small *a, size_t bytes);
void weft__small_free(weft__small *a, void *p, size_t bytes);
void weft__small_destroy(weft__small *a);

/* ------------------------------------------------------------------------ */
/* Timers (heap.c): a 4-ary min-heap of (when, seq) with back-indices       */
/* ------------------------------------------------------------------------ */

typedef struct weft__heap_entry {
    int64_t when;       /* loop time, ns */
    uint64_t seq;       /* scheduling order: equal deadlines fire FIFO */
    weft__node *owner;  /* a task (sleeping) or a weft__callback */
} weft__heap_entry;

typedef struct weft__heap {
    weft__heap_entry *e;
    size_t count, cap;
    uint64_t next_seq;
} weft__heap;

/* The owner's slot index is kept in owner->u32 (as index + 1; 0 = not in the heap). */
int weft__heap_push(weft__heap *h, int64_t when, weft__node *owner);
void weft__heap_remove(weft__heap *h, weft__node *owner);
weft__node *weft__heap_pop(weft__heap *h); /* the earliest; NULL if empty */
void weft__heap_free(weft__heap *h);

#endif
