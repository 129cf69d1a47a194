/*
 * loop.c — the scheduler: one loop per thread and its iteration (poll, timers, one
 * batch of ready work); creating and destroying a loop; finding the tasks left in
 * it when main has returned.
 *
 * One iteration, as asyncio's _run_once:
 *   1. poll for I/O and cross-thread wake-ups — without blocking when work is
 *      ready, else until the next timer (virtual time: jump to it instead);
 *   2. run callbacks posted from other threads;
 *   3. move every due timer's task or callback to the back of the ready queue;
 *   4. run exactly the items ready now; whatever they make ready runs in the
 *      next iteration, so a task that yields lets every other ready task run once.
 */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The iteration                                                            */
/* ------------------------------------------------------------------------ */

static void poll_once(weft_loop *L, int64_t timeout)
{
    weft__poll_event ev[64];
    int n = weft__poll_wait(&L->poller, timeout, ev, 64);
    for (int i = 0; i < n; i++) {
        if (ev[i].data == &L->wake_fd) {
            uint64_t v;
            ssize_t r = read(L->wake_fd, &v, sizeof v);
            (void)r;
        } else {
            weft__io_ready(L, ev[i].data, ev[i].events);
        }
    }
}

static void fire_timers(weft_loop *L)
{
    if (L->timers.count == 0)
        return;
    int64_t now = weft__now(L);
    while (L->timers.count > 0 && L->timers.e[0].when <= now) {
        weft__node *n = weft__heap_pop(&L->timers);
        if (n->kind == WEFT__NODE_TASK) {
            weft__wake((weft_task *)n, 0);
        } else {
            weft__callback_due(L, (weft__callback *)n);
        }
    }
}

static void run_batch(weft_loop *L)
{
    /* Tasks may run further items of this batch themselves (see
     * weft__loop_next_direct), so the count lives in the loop. */
    L->batch_left = L->ready.count;
    while (L->batch_left > 0) {
        L->batch_left--;
        weft__node *node = weft__fifo_pop(&L->ready);
        if (WEFT__LIKELY(node->kind == WEFT__NODE_TASK)) {
            weft__task_run_first(L, (weft_task *)node);
        } else {
            weft__callback_run(L, (weft__callback *)node);
        }
    }
}

static int finished(weft_loop *L, weft_task *until)
{
    return until ? WEFT__STATE(until) == WEFT__DONE : L->live_tasks == 0;
}

int weft__loop_run(weft_loop *L, weft_task *until)
{
    while (!finished(L, until)) {
        int64_t timeout = 0;
        int must_poll = 0;
        if (L->ready.count == 0 && atomic_load_explicit(&L->ts_pending, memory_order_acquire) == 0) {
            if (L->external_refs > 0 || L->io_watchers > 0) {
                /* Something outside (a thread, I/O) may wake us: wait for it, and
                 * for the next timer in real time. */
                timeout = L->timers.count ? L->timers.e[0].when - weft__now(L) : -1;
                if (L->virtual_time && L->timers.count)
                    timeout = -1;
                must_poll = 1;
            } else if (L->timers.count > 0) {
                if (L->virtual_time) {
                    if (L->timers.e[0].when > L->now)
                        L->now = L->timers.e[0].when;
                } else {
                    timeout = L->timers.e[0].when - weft__now(L);
                    must_poll = 1;
                }
            } else {
                return WEFT_EDEADLOCK_LOOP;
            }
            /* A timer already due gives a negative wait: poll without blocking
             * (−1 would mean "forever" to the poller). */
            if (timeout < 0 && !(must_poll && timeout == -1 && (L->timers.count == 0 || L->virtual_time)))
                timeout = 0;
        } else if (L->io_watchers && L->iteration % WEFT__POLL_INTERVAL == 0) {
            must_poll = 1;
        }
        if (must_poll)
            poll_once(L, timeout);
        weft__run_threadsafe_calls(L);
        fire_timers(L);
        run_batch(L);
        L->iteration++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Creating and destroying a loop                                           */
/* ------------------------------------------------------------------------ */

int weft__loop_create(weft_loop **out, const weft_options *opts)
{
    weft_loop *L = calloc(1, sizeof *L);
    if (!L)
        return -ENOMEM;
    size_t stack = opts && opts->stack_size ? opts->stack_size : WEFT_STACK_DEFAULT;
    size_t pool_max = opts && opts->stack_pool_max ? opts->stack_pool_max : 1024;
    weft__stack_pool_init(&L->stacks, stack, pool_max);
    L->virtual_time = opts && opts->virtual_time;
    L->poller.fd = -1;
    L->wake_fd = -1;
    int rc = weft__poll_init(&L->poller);
    if (rc == 0) {
        L->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        rc = L->wake_fd < 0 ? -errno : weft__poll_add(&L->poller, L->wake_fd, WEFT__POLL_IN, &L->wake_fd);
    }
    if (rc != 0) {
        if (L->wake_fd >= 0)
            close(L->wake_fd);
        weft__poll_close(&L->poller);
        free(L);
        return rc;
    }
    pthread_mutex_init(&L->ts_lock, NULL);
    *out = L;
    return 0;
}

void weft__loop_destroy(weft_loop *L)
{
    /* Callbacks left are dropped, as asyncio drops them when its loop closes;
     * their records go with L->small. */
    weft__heap_free(&L->timers);
    weft__callbacks_destroy(L);
    weft__compact_destroy(L);
    weft__small_destroy(&L->small);
    weft__stack_pool_destroy(&L->stacks);
    while (L->task_slabs) {
        weft__task_slab *s = L->task_slabs;
        L->task_slabs = s->next;
        if (s->bytes)
            weft__bulk_unmap(s, s->bytes);
        else
            free(s);
    }
    pthread_mutex_lock(&L->ts_lock);
    atomic_store(&L->closed, 1);
    free(L->ts_calls);
    L->ts_calls = NULL;
    pthread_mutex_unlock(&L->ts_lock);
    pthread_mutex_destroy(&L->ts_lock);
    weft__poll_del(&L->poller, L->wake_fd);
    close(L->wake_fd);
    weft__poll_close(&L->poller);
    free(L);
}

/* Calls fn on every task record in use. */
static void for_each_task(weft_loop *L, void (*fn)(weft_loop *, weft_task *, void *), void *arg)
{
    for (weft__task_slab *s = L->task_slabs; s; s = s->next)
        for (size_t i = 0; i < s->count; i++)
            if (WEFT__STATE(&s->tasks[i]) != WEFT__FREE)
                fn(L, &s->tasks[i], arg);
}

static void cancel_one(weft_loop *L, weft_task *t, void *count)
{
    (void)L;
    if (WEFT__STATE(t) != WEFT__DONE && weft_cancel(t, "weft_run: main returned; leftover task cancelled"))
        ++*(size_t *)count;
}

size_t weft__loop_cancel_leftovers(weft_loop *L)
{
    size_t n = 0;
    for_each_task(L, cancel_one, &n);
    return n;
}

/* A record still in use when the loop is torn down: either a finished task whose
 * handle was never given up, or one stuck waiting on something nothing can wake. */
static void reap_one(weft_loop *L, weft_task *t, void *arg)
{
    (void)arg;
    if (WEFT__STATE(t) == WEFT__DONE) {
        if (t->err && t->err != -ECANCELED && !(WEFT__FLAGS(t) & WEFT__QUIET))
            weft__task_report_unretrieved(t, "its handle was never awaited; nobody retrieved the error");
    } else {
        weft__report("weft: %s was destroyed while still pending: it ignored cancellation and waits "
                     "on something nothing can wake (its stack is freed without unwinding)",
                     weft_task_name(t));
        weft__task_release_stack(L, t);
    }
    weft__task_free(L, t);
}

void weft__loop_reap(weft_loop *L)
{
    for_each_task(L, reap_one, NULL);
}
