/*
 * notify.c — notifiers (weft_notifier_new, weft_notify, weft_notifier_free): the
 * one way to wake a loop that is async-signal-safe, so from a signal handler as
 * from any thread. A notify is a few atomics and, when it is the first since the
 * loop last looked, one write(2) to the loop's wake-up descriptor; the loop then
 * calls the notifier's callback once for however many notifies came (libuv's
 * uv_async_t).
 *
 * Why no lock anywhere on the notify path: a signal handler may interrupt its own
 * thread anywhere, including inside weft, so anything it waits for could be held
 * by the code it interrupted. So:
 *   - Records are never freed to the OS: a freed notifier's record goes to a
 *     process-wide free list and is reused with a new generation, which the
 *     handle carries in its top 16 bits (as loop anchors and task handles do). A
 *     stale handle reads valid memory, finds another generation and gets
 *     -ESHUTDOWN, never a use-after-free.
 *   - A notify announces itself in the record's in-flight counter before it reads
 *     the generation; free and the loop's teardown retire the generation first,
 *     then wait for the counter to drop to zero (every access seq_cst: one of the
 *     two always sees the other). So once free returns, no notify still holds the
 *     loop it read from the record.
 * The free list's lock and the per-loop list are touched only on the loop's
 * thread, by new, free and teardown, never by a notify.
 */
#include "core/core.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#define NOTIFIER_TAG_SHIFT 48
#define NOTIFIER_ADDR_MASK (((uintptr_t)1 << NOTIFIER_TAG_SHIFT) - 1)

struct weft__notifier {
    atomic_uint live_gen;            /* the generation of the live notifier; 0 while free */
    atomic_int in_flight;            /* weft_notify calls between their check and their wake-up */
    atomic_int pending;              /* notified since the loop last called cb */
    uint16_t gen;                    /* the latest generation handed out (1..65535) */
    uint8_t holds;                   /* counted in the loop's notifier_count (weft__notifier_hold) */
    weft_loop *loop;                 /* its loop while live (read by notifies that matched live_gen) */
    weft_callback_fn cb;
    void *arg;
    struct weft__notifier *prev, *next; /* the loop's live notifiers; next: the free list */
};

static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__notifier *free_records; /* kept reachable: records are never freed */

static weft_notifier *handle_of(struct weft__notifier *n)
{
    return (weft_notifier *)((uintptr_t)n | (uintptr_t)n->gen << NOTIFIER_TAG_SHIFT);
}

static struct weft__notifier *record_of(const weft_notifier *h)
{
    return (struct weft__notifier *)((uintptr_t)h & NOTIFIER_ADDR_MASK);
}

static unsigned gen_of(const weft_notifier *h)
{
    return (unsigned)((uintptr_t)h >> NOTIFIER_TAG_SHIFT);
}

int weft_notify(weft_notifier *h)
{
    if (!h || gen_of(h) == 0)
        return -EINVAL;
    struct weft__notifier *n = record_of(h);
    int rc = -ESHUTDOWN;
    atomic_fetch_add(&n->in_flight, 1);
    if (atomic_load(&n->live_gen) == gen_of(h)) {
        rc = 0;
        /* Only the notify that finds nothing pending tells the loop: the loop clears
         * `pending` before it calls cb, so a notify that comes while cb runs (or
         * after) finds it clear and makes one more call. */
        if (atomic_exchange(&n->pending, 1) == 0) {
            weft_loop *L = n->loop;
            atomic_store(&L->notify_pending, 1);
            /* ts_pending makes a loop that is running tasks back to the scheduler
             * (weft__loop_next_direct) and keeps a loop that is about to wait from
             * waiting. A wake-up may be written twice: it only costs a poll. */
            atomic_fetch_add(&L->ts_pending, 1);
            int saved = errno; /* a signal handler must leave errno as it found it */
            weft__io_wake(&L->io);
            errno = saved;
        }
    }
    atomic_fetch_sub(&n->in_flight, 1);
    return rc;
}

weft_notifier *weft_notifier_new(weft_callback_fn cb, void *arg)
{
    weft_loop *L = weft__loop;
    if (!L) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_notifier_new must be called from a task or callback of a "
                                          "running weft loop (start one with weft_run)");
        return NULL;
    }
    if (!cb) {
        weft__set_errmsg(-EINVAL, "weft_notifier_new: the callback is NULL");
        return NULL;
    }
    pthread_mutex_lock(&free_lock);
    struct weft__notifier *n = free_records;
    if (n)
        free_records = n->next;
    pthread_mutex_unlock(&free_lock);
    if (!n) {
        n = calloc(1, sizeof *n);
        if (!n) {
            weft__set_errmsg(-ENOMEM, "weft_notifier_new: out of memory for the notifier");
            return NULL;
        }
    }
    n->gen = (uint16_t)(n->gen % 65535 + 1);
    n->loop = L;
    n->cb = cb;
    n->arg = arg;
    atomic_store(&n->pending, 0);
    n->holds = 1;
    n->prev = NULL;
    n->next = L->notifiers;
    if (L->notifiers)
        L->notifiers->prev = n;
    L->notifiers = n;
    L->notifier_count++;
    /* Last: from here a notify with this handle is accepted. */
    atomic_store(&n->live_gen, n->gen);
    return handle_of(n);
}

/* Retires n's generation, waits for the notifies that still hold its loop, and
 * gives the record back for reuse. On n's loop's thread. */
static void retire(weft_loop *L, struct weft__notifier *n)
{
    atomic_store(&n->live_gen, 0);
    /* A notify in flight is a handful of instructions and a write(2); on this
     * thread none can be (a signal handler runs to its end before we resume). */
    while (atomic_load(&n->in_flight) != 0)
        sched_yield();
    if (L->notify_cursor == n)
        L->notify_cursor = n->next;
    if (n->prev)
        n->prev->next = n->next;
    else
        L->notifiers = n->next;
    if (n->next)
        n->next->prev = n->prev;
    if (n->holds)
        L->notifier_count--;
    n->loop = NULL;
    n->cb = NULL;
    n->arg = NULL;
    n->prev = NULL;
    pthread_mutex_lock(&free_lock);
    n->next = free_records;
    free_records = n;
    pthread_mutex_unlock(&free_lock);
}

int weft_notifier_free(weft_notifier *h)
{
    weft_loop *L = weft__loop;
    if (!h)
        return weft__set_errmsg(-EINVAL, "weft_notifier_free: the notifier is NULL");
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_notifier_free must be called on the notifier's loop, "
                                                 "from a task or a callback");
    struct weft__notifier *n = record_of(h);
    if (gen_of(h) == 0 || atomic_load(&n->live_gen) != gen_of(h))
        return weft__set_errmsg(-ESTALE, "weft_notifier_free: the notifier was already freed (or its loop "
                                         "ended): a notifier is freed once");
    if (n->loop != L)
        return weft__set_errmsg(WEFT_ESTATE, "weft_notifier_free: the notifier belongs to another thread's "
                                             "loop; free it on its own loop");
    retire(L, n);
    return 0;
}

void weft__notifier_hold(weft_notifier *h, bool hold)
{
    struct weft__notifier *n = record_of(h);
    if (!h || gen_of(h) == 0 || atomic_load(&n->live_gen) != gen_of(h) || n->loop != weft__loop ||
        n->holds == hold)
        return;
    n->holds = hold;
    if (hold)
        n->loop->notifier_count++;
    else
        n->loop->notifier_count--;
}

void weft__run_notifications(weft_loop *L)
{
    if (atomic_load(&L->notify_pending) == 0)
        return;
    /* Cleared before the scan: a notify that sets a record's `pending` after the
     * scan has passed it sets this again, and the next iteration scans again. */
    atomic_store(&L->notify_pending, 0);
    /* cb may free any notifier, its own or the next one: retire moves the cursor. */
    for (struct weft__notifier *n = L->notifiers; n; n = L->notify_cursor) {
        L->notify_cursor = n->next;
        if (atomic_exchange(&n->pending, 0))
            n->cb(n->arg);
    }
    L->notify_cursor = NULL;
}

/* Notifiers left when the loop ends are freed with it: their handles then give
 * -ESHUTDOWN. Their pending callbacks are dropped, as other callbacks are. */
static void notify_term(weft_loop *L)
{
    while (L->notifiers)
        retire(L, L->notifiers);
}

const weft__module weft__module_notify = {"notifiers", NULL, NULL, notify_term};
