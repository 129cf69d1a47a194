/*
 * queue.c — queues of `void *` items between the tasks of one loop: asyncio.Queue,
 * LifoQueue and PriorityQueue (CPython 3.13 semantics, shutdown included).
 *
 * Items live in the queue until a getter actually runs: a put never hands its item
 * to a waiting getter, it only wakes the first one. So a getter cancelled between
 * its wake-up and its turn takes nothing, and passes its wake-up on to the next
 * getter; the same holds for putters and free space. A woken waiter that finds its
 * item or slot taken by a task that did not wait waits again at the front of the
 * line, so waiters are served in the order they arrived.
 *
 * Speed: put into a queue with room and get from a non-empty FIFO queue are a
 * handful of instructions on a power-of-two ring of pointers, touching a wait list
 * only when someone waits (W7 of peers/README.md moves 100 items per task switch).
 * The ring grows by doubling up to maxsize (or without end when unbounded); it is
 * allocated at the first put.
 *
 * Waiting tasks may be compact (their stack moves while they sleep), so their wait
 * records are on the heap, never on their stacks; each queue keeps the records its
 * waits have used, so a steady producer/consumer pair allocates once.
 */
#include "util/dlist.h"
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum queue_kind { FIFO = 0, LIFO, PRIORITY };

/* The slow paths stay out of line, so the fast ones need no stack frame. */
#if defined(__GNUC__)
#define SLOW_PATH __attribute__((noinline))
#else
#define SLOW_PATH
#endif

/* The first ring of a queue; it doubles from here when it fills. */
#define FIRST_CAPACITY 16

/* One task suspended in put, get or join. */
typedef struct waiter {
    weft__dlink link;  /* on a wait list; while spare, link.next chains the spares */
    weft_task *task;
    weft__dlist *list; /* the wait list it is on; NULL once woken or unhooked */
    struct weft_queue *queue; /* the queue it waits on (for weft_dump) */
    bool woken;        /* taken off the list by the queue (not by cancellation) */
} waiter;

/* A priority queue entry: equal items come out in the order of `seq`. */
typedef struct prio_entry {
    void *item;
    uint64_t seq;
} prio_entry;

struct weft_queue {
    /* What the fast paths read, together. */
    size_t count;        /* items in the queue */
    size_t fast_room;    /* a put with count below this needs neither growth nor a check:
                            min(capacity, maxsize), 0 when shut down or a priority queue */
    weft_loop *loop;     /* the loop whose tasks use it: the creator's, or the first user's */
    void **ring;         /* FIFO/LIFO: items at (head + i) & mask */
    size_t head;         /* FIFO: the oldest item; LIFO: always 0 */
    size_t mask;         /* capacity - 1 */
    size_t unfinished;   /* items put and not yet marked done */
    weft__dlist getters, putters;

    weft__dlist joiners;
    size_t capacity;     /* slots of ring or heap */
    size_t maxsize;      /* 0 = unbounded */
    size_t limit;        /* maxsize, or SIZE_MAX when unbounded */
    prio_entry *heap;    /* PRIORITY: a binary min-heap */
    uint64_t next_seq;
    weft_compare_fn cmp;
    size_t inside;       /* tasks suspended in a call on this queue, woken or not */
    struct waiter *spare; /* wait records kept for the next waits, chained by link.next */
    uint8_t kind;
    bool shutdown;
};

/* A queue is for the tasks of one loop: its waiters are woken onto that loop's
 * ready queue, and nothing in it is locked. A call from another thread (or from
 * outside any loop) is refused rather than racing or waking a task on the wrong
 * loop. A queue made outside a loop belongs to the first loop that uses it. */
static int queue_loop_check(weft_queue *q, const char *what)
{
    weft_loop *L = weft__loop;
    if (WEFT__LIKELY(q->loop == L && L))
        return 0;
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a task or callback of the loop that uses the queue "
                                                 "(from another thread: post the call to that loop with "
                                                 "weft_call_soon_threadsafe)", what);
    if (!q->loop) {
        q->loop = L;
        return 0;
    }
    return weft__set_errmsg(WEFT_ESTATE, "%s: the queue belongs to another thread's loop; call it there "
                                         "through weft_call_soon_threadsafe", what);
}

/* ------------------------------------------------------------------------ */
/* Wait lists                                                               */
/* ------------------------------------------------------------------------ */

static inline waiter *waiter_of(weft__dlink *link)
{
    return WEFT__CONTAINER_OF(link, waiter, link);
}

/* The spare record kept after w, or NULL. A stack of spares needs no prev links. */
static inline waiter *spare_after(waiter *w)
{
    return w->link.next ? waiter_of(w->link.next) : NULL;
}

static void list_unlink(weft__dlist *l, waiter *w)
{
    weft__dlist_unlink(l, &w->link);
    w->list = NULL;
}

/* Wakes the first waiter of l, if any. */
SLOW_PATH static void wake_first(weft__dlist *l)
{
    weft__dlink *first = weft__dlist_pop_front(l);
    if (!first)
        return;
    waiter *w = waiter_of(first);
    w->list = NULL;
    w->woken = true;
    weft__wake(w->task, 0);
}

static void wake_all(weft__dlist *l)
{
    while (!weft__dlist_empty(l))
        wake_first(l);
}

/* A waiting task is cancelled (or otherwise woken by someone else): off its list. */
static void waiter_unwait(weft_task *self, int reason)
{
    (void)reason;
    waiter *w = self->wait_obj;
    if (w->list)
        list_unlink(w->list, w);
}

/* weft_dump: which queue, which call, how full. */
static void waiter_describe(const weft_task *self, char *buf, size_t size)
{
    const waiter *w = self->wait_obj;
    const weft_queue *q = w->queue;
    const char *op = w->list == &q->getters ? "get from"
                     : w->list == &q->putters ? "put into"
                     : w->list == &q->joiners ? "join of"
                                              : "call on";
    char max[32] = "unbounded";
    if (q->maxsize)
        snprintf(max, sizeof max, "maxsize %zu", q->maxsize);
    snprintf(buf, size, "%s %p: %zu items (%s), %zu unfinished%s", op, (const void *)q, q->count, max,
             q->unfinished, q->shutdown ? ", shut down" : "");
}

static const weft__wait_kind waiter_wait = {"queue", waiter_unwait, waiter_describe};

/*
 * Suspends the current task on l (at the front when it had already been served
 * once and lost its turn to a task that did not wait). Returns the wait's result;
 * *woken tells whether the queue woke it, i.e. it holds a wake-up it must pass on
 * if it does not use it.
 */
static int wait_on(weft_queue *q, weft__dlist *l, bool front, bool *woken)
{
    *woken = false;
    waiter *w = q->spare;
    if (w)
        q->spare = spare_after(w);
    else if (!(w = malloc(sizeof *w)))
        return -ENOMEM;
    *w = (waiter){.task = weft__current(), .list = l, .queue = q};
    if (front)
        weft__dlist_push_front(l, &w->link);
    else
        weft__dlist_push_back(l, &w->link);
    q->inside++;
    int rc = weft__wait(&waiter_wait, w);
    q->inside--;
    *woken = w->woken;
    if (w->list) /* woken with a reason by a waker that did not unhook it */
        list_unlink(w->list, w);
    w->link.next = q->spare ? &q->spare->link : NULL;
    q->spare = w;
    return rc;
}

/* The error of a wait that did not end with a wake-up from the queue. */
static int wait_failed(const char *what, int rc)
{
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(weft__current());
    if (rc == -ENOMEM)
        return weft__set_errmsg(-ENOMEM, "%s: out of memory for the wait record", what);
    return rc;
}

static int not_in_task(const char *what, const char *instead)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must wait, so it must be called from a task of a "
                                             "running weft loop (outside a task, use %s)", what, instead);
}

/* ------------------------------------------------------------------------ */
/* Storage: the ring (FIFO, LIFO) and the heap (PRIORITY)                   */
/* ------------------------------------------------------------------------ */

static void update_fast_room(weft_queue *q)
{
    if (q->shutdown || q->kind == PRIORITY)
        q->fast_room = 0;
    else
        q->fast_room = q->capacity < q->limit ? q->capacity : q->limit;
}

/* The capacity after `capacity`: doubled, never past the first power of two that
 * holds maxsize. 0 when it cannot grow (overflow). */
static size_t next_capacity(const weft_queue *q, size_t elem)
{
    size_t next = q->capacity ? q->capacity * 2 : FIRST_CAPACITY;
    if (q->capacity > SIZE_MAX / 2 / elem)
        return 0;
    while (next / 2 >= q->limit && next > 1)
        next /= 2; /* the smallest power of two ≥ maxsize is enough */
    return next;
}

/* Makes room for one more item. Returns 0 or -ENOMEM (message set). */
static int grow(weft_queue *q, const char *what)
{
    size_t elem = q->kind == PRIORITY ? sizeof(prio_entry) : sizeof(void *);
    size_t next = next_capacity(q, elem);
    void *p = next ? realloc(q->kind == PRIORITY ? (void *)q->heap : (void *)q->ring, next * elem) : NULL;
    if (!p)
        return weft__set_errmsg(-ENOMEM, "%s: out of memory growing the queue past %zu items", what,
                                q->capacity);
    if (q->kind == PRIORITY) {
        q->heap = p;
    } else {
        q->ring = p;
        /* Items that wrapped round to the start of the old ring move to just past
         * its old end, where the doubled ring expects them. */
        size_t end = q->head + q->count;
        if (end > q->capacity)
            memcpy(q->ring + q->capacity, q->ring, (end - q->capacity) * sizeof(void *));
    }
    q->capacity = next;
    q->mask = next - 1;
    update_fast_room(q);
    return 0;
}

static bool comes_before(const weft_queue *q, const prio_entry *a, const prio_entry *b)
{
    int c;
    if (q->cmp) {
        c = q->cmp(a->item, b->item);
    } else {
        intptr_t x = (intptr_t)a->item, y = (intptr_t)b->item;
        c = (x > y) - (x < y);
    }
    return c != 0 ? c < 0 : a->seq < b->seq;
}

static void heap_push(weft_queue *q, void *item)
{
    prio_entry e = {item, q->next_seq++};
    size_t i = q->count;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!comes_before(q, &e, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

/* Removes the root; count is already one less. */
static void *heap_pop(weft_queue *q)
{
    void *top = q->heap[0].item;
    size_t n = q->count;
    if (n == 0)
        return top;
    prio_entry last = q->heap[n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && comes_before(q, &q->heap[child + 1], &q->heap[child]))
            child++;
        if (!comes_before(q, &q->heap[child], &last))
            break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    q->heap[i] = last;
    return top;
}

/* Adds an item the caller has checked there is room for (below limit, not shut
 * down), and wakes the first getter. Returns 0 or -ENOMEM (message set). */
static int insert(weft_queue *q, void *item, const char *what)
{
    if (q->count == q->capacity) {
        int rc = grow(q, what);
        if (rc)
            return rc;
    }
    if (q->kind == PRIORITY)
        heap_push(q, item);
    else
        q->ring[(q->head + q->count) & q->mask] = item;
    q->count++;
    q->unfinished++;
    wake_first(&q->getters);
    return 0;
}

/* Removes the next item of a non-empty queue and wakes the first putter. */
static void *take(weft_queue *q)
{
    void *item;
    q->count--;
    switch (q->kind) {
    case FIFO:
        item = q->ring[q->head];
        q->head = (q->head + 1) & q->mask;
        break;
    case LIFO:
        item = q->ring[q->count];
        break;
    default:
        item = heap_pop(q);
        break;
    }
    wake_first(&q->putters);
    return item;
}

/* ------------------------------------------------------------------------ */
/* Creating and freeing                                                     */
/* ------------------------------------------------------------------------ */

static weft_queue *queue_new(const char *what, size_t maxsize, uint8_t kind, weft_compare_fn cmp)
{
    weft_queue *q = calloc(1, sizeof *q);
    if (!q) {
        weft__set_errmsg(-ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    q->kind = kind;
    q->cmp = cmp;
    q->loop = weft__loop;
    q->maxsize = maxsize;
    q->limit = maxsize ? maxsize : SIZE_MAX;
    update_fast_room(q);
    return q;
}

weft_queue *weft_queue_new(size_t maxsize)
{
    return queue_new("weft_queue_new", maxsize, FIFO, NULL);
}

weft_queue *weft_lifo_queue_new(size_t maxsize)
{
    return queue_new("weft_lifo_queue_new", maxsize, LIFO, NULL);
}

weft_queue *weft_priority_queue_new(size_t maxsize, weft_compare_fn cmp)
{
    return queue_new("weft_priority_queue_new", maxsize, PRIORITY, cmp);
}

int weft_queue_free(weft_queue *q)
{
    if (!q)
        return 0;
    if (q->inside)
        return weft__set_errmsg(-EBUSY, "weft_queue_free: %zu task(s) still wait in a put, get or join on "
                                        "the queue; free it once they have returned (weft_queue_shutdown "
                                        "wakes getters and putters)", q->inside);
    while (q->spare) {
        waiter *w = q->spare;
        q->spare = spare_after(w);
        free(w);
    }
    free(q->ring);
    free(q->heap);
    free(q);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Put                                                                      */
/* ------------------------------------------------------------------------ */

static int shut_down_put(const char *what)
{
    return weft__set_errmsg(-ESHUTDOWN, "%s: the queue was shut down (weft_queue_shutdown); it takes no "
                                        "more items", what);
}

/* The common case, kept to a few instructions: a FIFO or LIFO queue with a free slot
 * in its ring, not shut down. Returns false (having done nothing) otherwise. */
/*
 * The fast paths (room, and nobody waiting to be woken) do not check the thread:
 * that costs W7 about a tenth of its speed. Every path that wakes or waits, and
 * the _nowait calls, check it, so a call from the wrong thread or loop is refused
 * before it could wake a task on the wrong loop or take a waiter's place.
 */
static inline bool put_fast(weft_queue *q, void *item)
{
    if (!q || q->count >= q->fast_room || WEFT__UNLIKELY(!weft__dlist_empty(&q->getters)))
        return false;
    q->ring[(q->head + q->count) & q->mask] = item;
    q->count++;
    q->unfinished++;
    return true;
}

SLOW_PATH static int put_slow(weft_queue *q, void *item)
{
    static const char what[] = "weft_queue_put";
    if (!q)
        return weft__set_errmsg(-EINVAL, "%s: the queue is NULL", what);
    int bad = queue_loop_check(q, what);
    if (bad)
        return bad;
    if (put_fast(q, item))
        return 0;
    bool served = false; /* woken once already: wait again at the front */
    for (;;) {
        if (q->shutdown)
            return shut_down_put(what);
        if (q->count < q->limit)
            return insert(q, item, what);
        if (!weft__current())
            return not_in_task(what, "weft_queue_put_nowait");
        bool woken;
        int rc = wait_on(q, &q->putters, served, &woken);
        if (rc != 0) {
            /* A wake-up this putter will not use goes to the next one. */
            if (woken && !q->shutdown && q->count < q->limit)
                wake_first(&q->putters);
            return wait_failed(what, rc);
        }
        served = true;
    }
}

int weft_queue_put(weft_queue *q, void *item)
{
    if (WEFT__LIKELY(put_fast(q, item)))
        return 0;
    return put_slow(q, item);
}

int weft_queue_put_nowait(weft_queue *q, void *item)
{
    static const char what[] = "weft_queue_put_nowait";
    if (!q)
        return weft__set_errmsg(-EINVAL, "%s: the queue is NULL", what);
    int bad = queue_loop_check(q, what);
    if (bad)
        return bad;
    if (WEFT__LIKELY(put_fast(q, item)))
        return 0;
    if (q->shutdown)
        return shut_down_put(what);
    if (q->count >= q->limit)
        return weft__set_errmsg(WEFT_EFULL, "%s: the queue is full (maxsize %zu reached); wait for room with "
                                            "weft_queue_put, or make the queue larger", what, q->maxsize);
    return insert(q, item, what);
}

/* ------------------------------------------------------------------------ */
/* Get                                                                      */
/* ------------------------------------------------------------------------ */

static int shut_down_get(const char *what)
{
    return weft__set_errmsg(-ESHUTDOWN, "%s: the queue was shut down (weft_queue_shutdown) and has no "
                                        "items left", what);
}

SLOW_PATH static int get_slow(weft_queue *q, void **item)
{
    static const char what[] = "weft_queue_get";
    if (!q || !item)
        return weft__set_errmsg(-EINVAL, "%s: the %s is NULL", what, q ? "item pointer" : "queue");
    int bad = queue_loop_check(q, what);
    if (bad)
        return bad;
    bool served = false; /* woken once already: wait again at the front */
    for (;;) {
        if (q->count) {
            *item = take(q);
            return 0;
        }
        if (q->shutdown)
            return shut_down_get(what);
        if (!weft__current())
            return not_in_task(what, "weft_queue_get_nowait");
        bool woken;
        int rc = wait_on(q, &q->getters, served, &woken);
        if (rc != 0) {
            /* A wake-up this getter will not use goes to the next one: the item
             * it was woken for is still in the queue. */
            if (woken && q->count)
                wake_first(&q->getters);
            return wait_failed(what, rc);
        }
        served = true;
    }
}

int weft_queue_get(weft_queue *q, void **item)
{
    if (WEFT__LIKELY(q && item && q->count && q->kind == FIFO && weft__dlist_empty(&q->putters))) {
        *item = q->ring[q->head];
        q->head = (q->head + 1) & q->mask;
        q->count--;
        return 0;
    }
    return get_slow(q, item);
}

int weft_queue_get_nowait(weft_queue *q, void **item)
{
    static const char what[] = "weft_queue_get_nowait";
    if (!q || !item)
        return weft__set_errmsg(-EINVAL, "%s: the %s is NULL", what, q ? "item pointer" : "queue");
    int bad = queue_loop_check(q, what);
    if (bad)
        return bad;
    if (q->count) {
        *item = take(q);
        return 0;
    }
    if (q->shutdown)
        return shut_down_get(what);
    return weft__set_errmsg(WEFT_EEMPTY, "%s: the queue is empty; wait for an item with weft_queue_get",
                            what);
}

/* ------------------------------------------------------------------------ */
/* task_done, join, shutdown                                                */
/* ------------------------------------------------------------------------ */

int weft_queue_task_done(weft_queue *q)
{
    if (!q)
        return weft__set_errmsg(-EINVAL, "weft_queue_task_done: the queue is NULL");
    int bad = queue_loop_check(q, "weft_queue_task_done");
    if (bad)
        return bad;
    if (q->unfinished == 0)
        return weft__set_errmsg(WEFT_ESTATE, "weft_queue_task_done: called more times than items were put "
                                             "(no item is waiting to be marked done)");
    if (--q->unfinished == 0)
        wake_all(&q->joiners);
    return 0;
}

int weft_queue_join(weft_queue *q)
{
    static const char what[] = "weft_queue_join";
    if (!q)
        return weft__set_errmsg(-EINVAL, "%s: the queue is NULL", what);
    int bad = queue_loop_check(q, what);
    if (bad)
        return bad;
    if (q->unfinished == 0)
        return 0;
    if (!weft__current())
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                                 "(start one with weft_run)", what);
    bool woken;
    int rc = wait_on(q, &q->joiners, false, &woken);
    return rc ? wait_failed(what, rc) : 0;
}

void weft_queue_shutdown(weft_queue *q, bool immediate)
{
    if (!q)
        return;
    if (queue_loop_check(q, "weft_queue_shutdown") != 0) {
        weft__report("weft: weft_queue_shutdown ignored: %s", weft_errmsg());
        return;
    }
    q->shutdown = true;
    update_fast_room(q);
    if (immediate && q->count) {
        /* The dropped items count as done, as asyncio's shutdown(immediate=True) does. */
        size_t dropped = q->count;
        q->count = 0;
        q->head = 0;
        q->unfinished = q->unfinished > dropped ? q->unfinished - dropped : 0;
        if (q->unfinished == 0)
            wake_all(&q->joiners);
    }
    /* Each re-checks the queue when it runs: putters find it shut down, getters take
     * what is left or find it shut down and empty. */
    wake_all(&q->getters);
    wake_all(&q->putters);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

size_t weft_queue_size(const weft_queue *q)
{
    return q ? q->count : 0;
}

size_t weft_queue_maxsize(const weft_queue *q)
{
    return q ? q->maxsize : 0;
}

bool weft_queue_empty(const weft_queue *q)
{
    return !q || q->count == 0;
}

bool weft_queue_full(const weft_queue *q)
{
    return q && q->maxsize != 0 && q->count >= q->maxsize;
}
