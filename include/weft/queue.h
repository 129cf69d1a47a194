/*
 * weft/queue.h — queues of `void *` items between the tasks of one loop (asyncio.Queue,
 * LifoQueue, PriorityQueue), with task_done/join and shutdown.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Queues of `void *` items between tasks of one loop (asyncio.Queue, LifoQueue,
 * PriorityQueue). maxsize 0 = unbounded. Getters and putters that must wait are
 * served in the order they arrived. A cancelled get takes no item; a cancelled put
 * inserts none. Creating a queue needs no running loop; a queue made outside one
 * belongs to the first loop that uses it. Every other call must come from a task
 * or callback of that loop (post calls from elsewhere with
 * weft_call_soon_threadsafe). The _nowait calls, task_done, join and shutdown
 * check it, as do put and get whenever they would wait or wake a task: from a
 * thread without a loop they give WEFT_ENOTINLOOP, from another loop WEFT_ESTATE,
 * and change nothing. A put or get that finds room (or an item) and nobody waiting
 * is not checked, to keep it a few instructions: do not count on it to catch a
 * wrong thread.
 */
typedef struct weft_queue weft_queue;

/* Orders two items of a priority queue: < 0 if a comes out first. */
typedef int (*weft_compare_fn)(const void *a, const void *b);

/* FIFO (asyncio.Queue) and LIFO (asyncio.LifoQueue) queues: weft_queue_new and
 * weft_lifo_queue_new.
 * Returns: the queue, or NULL on -ENOMEM (weft_errmsg() says so).
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM. */
WEFT_API weft_queue *weft_queue_new(size_t maxsize);
WEFT_API weft_queue *weft_lifo_queue_new(size_t maxsize);

/*
 * weft_priority_queue_new — smallest item first (asyncio.PriorityQueue) by `cmp`;
 * cmp NULL orders the items as integers (intptr_t) — put (void *)(intptr_t)priority
 * or use weft_queue_put_priority. Equal items come out in the order they went in.
 * Returns: the queue, or NULL on -ENOMEM.
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM.
 */
WEFT_API weft_queue *weft_priority_queue_new(size_t maxsize, weft_compare_fn cmp);

/* weft_queue_free — free the queue. Items left are the caller's.
 * Returns: 0 (also for NULL).
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task waits on it. */
WEFT_API int weft_queue_free(weft_queue *q);

/*
 * weft_queue_put — add an item, waiting while the queue is full (`await q.put(x)`).
 * A put that need not wait succeeds even in a cancelled task, or outside a task.
 * Returns: 0.
 * Suspends: only while full.
 * Errors: -ECANCELED (nothing inserted); -ESHUTDOWN (the queue was shut down);
 *   -ENOMEM (unbounded queue growing, or no memory to wait); -EINVAL;
 *   WEFT_ENOTINLOOP (it must wait but was called outside a task).
 * On cancel: returns -ECANCELED; nothing is inserted, and a free slot it had been
 *   woken for passes to the next putter.
 */
WEFT_API WEFT_WAIT int weft_queue_put(weft_queue *q, void *item);

/* weft_queue_put_nowait — add without waiting.
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_EFULL when full; -ESHUTDOWN; -ENOMEM; -EINVAL for a NULL queue. */
WEFT_API int weft_queue_put_nowait(weft_queue *q, void *item);

/*
 * weft_queue_get — remove and return the next item in *item, waiting while empty
 * (`await q.get()`). A get that need not wait succeeds even in a cancelled task.
 * Returns: 0.
 * Suspends: only while empty.
 * Errors: -ECANCELED (no item taken: it stays for the next getter); -ESHUTDOWN
 *   (shut down, and empty or shut down immediately); -ENOMEM (no memory to wait);
 *   -EINVAL (q or item NULL); WEFT_ENOTINLOOP (a callback cannot wait: use
 *   weft_queue_get_nowait). A woken getter that finds its item taken by a
 *   get_nowait keeps its place at the front of the line.
 * On cancel: returns -ECANCELED; no item is taken: an item it had been woken for
 *   stays in the queue, and the wake-up passes to the next getter.
 */
WEFT_API WEFT_WAIT int weft_queue_get(weft_queue *q, void **item);

/* weft_queue_get_nowait — take without waiting.
 * Returns: 0 with the item in *item.
 * Suspends: never.
 * Errors: WEFT_EEMPTY when empty; -ESHUTDOWN (shut down and empty); -EINVAL. */
WEFT_API int weft_queue_get_nowait(weft_queue *q, void **item);

/* weft_queue_put_priority — put for a priority queue made with cmp NULL:
 * (void *)(intptr_t)priority as the item. A macro over weft_queue_put.
 * Returns: as weft_queue_put.
 * Suspends: as weft_queue_put (only while full).
 * Errors: as weft_queue_put.
 * On cancel: as weft_queue_put (nothing inserted). */
#define weft_queue_put_priority(q, priority) weft_queue_put((q), (void *)(intptr_t)(priority))

/* weft_queue_task_done — one item taken earlier is fully processed.
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ESTATE if called more times than items were put; -EINVAL for NULL. */
WEFT_API int weft_queue_task_done(weft_queue *q);

/* weft_queue_join — wait until every item put has been marked done.
 * Returns: 0.
 * Suspends: while items put are not all marked done.
 * Errors: -ECANCELED; -ENOMEM; -EINVAL; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; the queue and its count of unfinished items are
 *   unchanged. */
WEFT_API WEFT_WAIT int weft_queue_join(weft_queue *q);

/*
 * weft_queue_shutdown — no more puts (asyncio 3.13 Queue.shutdown): blocked and later
 * putters get -ESHUTDOWN. Without `immediate`, getters take what is left, then get
 * -ESHUTDOWN; with it, the items are dropped (counted as done for join) and every
 * blocked getter gets -ESHUTDOWN now.
 * Returns: nothing.
 * Suspends: never.
 * Errors: none (NULL does nothing).
 */
WEFT_API void weft_queue_shutdown(weft_queue *q, bool immediate);

/* weft_queue_size — items in the queue now; weft_queue_maxsize — its bound (0:
 * unbounded); weft_queue_empty / weft_queue_full — size 0 / size at the bound (never
 * full when unbounded). NULL reads as an empty unbounded queue.
 * Returns: as just said, for each of the four.
 * Suspends: never.
 * Errors: none. */
WEFT_API size_t weft_queue_size(const weft_queue *q);
WEFT_API size_t weft_queue_maxsize(const weft_queue *q);
WEFT_API bool weft_queue_empty(const weft_queue *q);
WEFT_API bool weft_queue_full(const weft_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_QUEUE_H */
