/*
 * threadsafe.c — callbacks posted to a loop from other threads
 * (weft_call_soon_threadsafe): a locked list the loop takes whole once per
 * iteration, and one wake-up of the poller per batch.
 */
#include "core/core.h"

#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Calls from other threads                                                 */
/* ------------------------------------------------------------------------ */

int weft_call_soon_threadsafe(weft_loop *L, weft_callback_fn cb, void *arg)
{
    if (!L || !cb)
        return -EINVAL;
    pthread_mutex_lock(&L->ts_lock);
    if (atomic_load_explicit(&L->closed, memory_order_relaxed)) {
        pthread_mutex_unlock(&L->ts_lock);
        return -ESHUTDOWN;
    }
    if (L->ts_count == L->ts_cap) {
        size_t cap = L->ts_cap ? L->ts_cap * 2 : 64;
        weft__ts_call *c = realloc(L->ts_calls, cap * sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&L->ts_lock);
            return -ENOMEM;
        }
        L->ts_calls = c;
        L->ts_cap = cap;
    }
    L->ts_calls[L->ts_count++] = (weft__ts_call){cb, arg};
    /* Only the call that finds the queue empty wakes the loop: every later one
     * rides on the same wake-up until the loop drains the batch. */
    int first = atomic_fetch_add_explicit(&L->ts_pending, 1, memory_order_release) == 0;
    pthread_mutex_unlock(&L->ts_lock);
    if (first)
        weft__io_wake(&L->io);
    return 0;
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
    return -pthread_mutex_init(&L->ts_lock, NULL);
}

/* Calls accepted before the loop closed still run; later ones were refused. */
static void threadsafe_term(weft_loop *L)
{
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
