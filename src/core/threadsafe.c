/*
 * threadsafe.c — callbacks posted to a loop from other threads
 * (weft_call_soon_threadsafe): a locked list the loop takes whole once per
 * iteration, and one wake-up of the poller per batch.
 */
#include "core/core.h"

#include <stdlib.h>
#include <unistd.h>

/*
 * A loop's public identity. weft_loop_current() hands out an anchor's address
 * tagged with the anchor's generation (in the top 16 bits, as task handles are),
 * not the loop's: anchors are never freed, only reused with a new generation, so a
 * thread that calls weft_call_soon_threadsafe or weft_run_in_loop with the handle
 * of a loop whose weft_run has returned reads valid memory, finds no loop (or
 * another generation) and gets -ESHUTDOWN, where it used to read the freed loop.
 * The anchor's lock is held while a call is posted, so the loop cannot be torn
 * down under a poster.
 */
typedef struct weft__anchor {
    pthread_mutex_t lock;
    weft_loop *loop;                 /* NULL once its loop has closed */
    uint16_t gen;                    /* 1..65535, new at every use */
    struct weft__anchor *next_free;
} weft__anchor;

static pthread_mutex_t anchors_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The anchor's and the loop's locks check their owner (PTHREAD_MUTEX_ERRORCHECK):
 * weft_call_soon_threadsafe is not async-signal-safe, and a signal handler that
 * calls it while its own thread holds one of them (interrupted inside the same
 * call, or inside the loop's taking of the queue) would otherwise wait forever.
 * Relocking then fails with EDEADLK, which the call reports. glibc's checking
 * lock costs the owner's thread id on each lock (no measurable change on W6).
 */
static int errorcheck_lock_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

static int signal_deadlock(void)
{
    return weft__set_errmsg(-EDEADLK, "weft_call_soon_threadsafe: this thread already holds the loop's lock: "
                                      "called from a signal handler that interrupted weft on this thread? It "
                                      "is not async-signal-safe; from a signal handler use weft_notify "
                                      "(weft/notify.h)");
}
static weft__anchor *free_anchors; /* kept reachable: they are never freed */

#define LOOP_TAG_SHIFT 48

static weft__anchor *anchor_take(weft_loop *L)
{
    pthread_mutex_lock(&anchors_lock);
    weft__anchor *a = free_anchors;
    if (a)
        free_anchors = a->next_free;
    pthread_mutex_unlock(&anchors_lock);
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a)
            return NULL;
        if (errorcheck_lock_init(&a->lock) != 0) {
            free(a);
            return NULL;
        }
    }
    pthread_mutex_lock(&a->lock);
    a->gen = (uint16_t)(a->gen % 65535 + 1);
    a->loop = L;
    pthread_mutex_unlock(&a->lock);
    return a;
}

static void anchor_give_back(weft__anchor *a)
{
    pthread_mutex_lock(&a->lock);
    a->loop = NULL;
    pthread_mutex_unlock(&a->lock);
    pthread_mutex_lock(&anchors_lock);
    a->next_free = free_anchors;
    free_anchors = a;
    pthread_mutex_unlock(&anchors_lock);
}

weft_loop *weft_loop_current(void)
{
    weft_loop *L = weft__loop;
    return L ? L->handle : NULL;
}

weft_loop *weft__loop_from(weft_loop *handle)
{
    uintptr_t v = (uintptr_t)handle;
    if ((v >> LOOP_TAG_SHIFT) == 0)
        return handle; /* weft's own: the loop itself */
    weft__anchor *a = (weft__anchor *)(v & (((uintptr_t)1 << LOOP_TAG_SHIFT) - 1));
    if (pthread_mutex_lock(&a->lock) != 0)
        return NULL; /* EDEADLK: held by the code a signal handler interrupted */
    weft_loop *L = a->gen == (v >> LOOP_TAG_SHIFT) ? a->loop : NULL;
    pthread_mutex_unlock(&a->lock);
    return L;
}

/* ------------------------------------------------------------------------ */
/* Calls from other threads                                                 */
/* ------------------------------------------------------------------------ */

int weft_call_soon_threadsafe(weft_loop *handle, weft_callback_fn cb, void *arg)
{
    if (!handle || !cb)
        return -EINVAL;
    weft__anchor *a = NULL;
    weft_loop *L = handle;
    uintptr_t v = (uintptr_t)handle;
    if (v >> LOOP_TAG_SHIFT) {
        /* A user's handle: the loop may have finished; its anchor says. */
        a = (weft__anchor *)(v & (((uintptr_t)1 << LOOP_TAG_SHIFT) - 1));
        if (pthread_mutex_lock(&a->lock) == EDEADLK)
            return signal_deadlock();
        L = a->gen == (v >> LOOP_TAG_SHIFT) ? a->loop : NULL;
        if (!L) {
            pthread_mutex_unlock(&a->lock);
            return -ESHUTDOWN;
        }
    }
    int rc = 0;
    if (pthread_mutex_lock(&L->ts_lock) == EDEADLK) {
        if (a)
            pthread_mutex_unlock(&a->lock);
        return signal_deadlock();
    }
    if (atomic_load_explicit(&L->closed, memory_order_relaxed)) {
        rc = -ESHUTDOWN;
    } else if (L->ts_count == L->ts_cap) {
        size_t cap = L->ts_cap ? L->ts_cap * 2 : 64;
        weft__ts_call *c = realloc(L->ts_calls, cap * sizeof *c);
        if (c) {
            L->ts_calls = c;
            L->ts_cap = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    int first = 0;
    if (rc == 0) {
        L->ts_calls[L->ts_count++] = (weft__ts_call){cb, arg};
        /* Only the call that finds the queue empty wakes the loop: every later
         * one rides on the same wake-up until the loop drains the batch. */
        first = atomic_fetch_add_explicit(&L->ts_pending, 1, memory_order_release) == 0;
    }
    pthread_mutex_unlock(&L->ts_lock);
    if (first)
        weft__io_wake(&L->io);
    if (a)
        pthread_mutex_unlock(&a->lock);
    return rc;
}

void weft__run_threadsafe_calls(weft_loop *L)
{
    if (atomic_load_explicit(&L->ts_pending, memory_order_acquire) == 0)
        return;
    pthread_mutex_lock(&L->ts_lock);
    weft__ts_call *calls = L->ts_calls;
    size_t count = L->ts_count;
    L->ts_calls = NULL;
    L->ts_count = L->ts_cap = 0;
    atomic_store_explicit(&L->ts_pending, 0, memory_order_release);
    pthread_mutex_unlock(&L->ts_lock);
    for (size_t i = 0; i < count; i++)
        calls[i].cb(calls[i].arg);
    free(calls);
}

static int threadsafe_init(weft_loop *L, const weft_options *opts)
{
    (void)opts;
    int rc = errorcheck_lock_init(&L->ts_lock);
    if (rc != 0)
        return -rc;
    L->anchor = anchor_take(L);
    if (!L->anchor) {
        pthread_mutex_destroy(&L->ts_lock);
        return -ENOMEM;
    }
    L->handle = (weft_loop *)((uintptr_t)L->anchor | (uintptr_t)L->anchor->gen << LOOP_TAG_SHIFT);
    return 0;
}

/* Calls accepted before the loop closed still run; later ones were refused. */
static void threadsafe_term(weft_loop *L)
{
    /* From here on a user's handle finds no loop: -ESHUTDOWN. */
    anchor_give_back(L->anchor);
    L->anchor = NULL;
    pthread_mutex_lock(&L->ts_lock);
    atomic_store(&L->closed, 1);
    pthread_mutex_unlock(&L->ts_lock);
    weft__run_threadsafe_calls(L);
    pthread_mutex_lock(&L->ts_lock);
    free(L->ts_calls);
    L->ts_calls = NULL;
    pthread_mutex_unlock(&L->ts_lock);
    pthread_mutex_destroy(&L->ts_lock);
}

const weft__module weft__module_threadsafe = {"threadsafe calls", threadsafe_init, NULL, threadsafe_term};
