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
#include <stdio.h>
#include <string.h>
#include <unistd.h>

atomic_size_t weft__fork_quiet_threads;

/* ------------------------------------------------------------------------ */
/* The iteration                                                            */
/* ------------------------------------------------------------------------ */

static void poll_once(weft_loop *L, int64_t timeout)
{
    /* Timed always (weft_loop_metrics): two clock reads (~25 ns each here) beside a
     * system call of a microsecond or more, and no poll at all while only tasks run. */
    int64_t start = weft__mono_ns();
    /* An error of the poller itself (ENOMEM in the kernel) is retried at the next
     * iteration; watchers keep their interest. */
    (void)weft__io_poll(&L->io, timeout);
    L->stats.poll_ns += weft__mono_ns() - start;
    L->stats.polls++;
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
            if (L->virtual_time && L->external_refs == 0 && L->io.active > 0 && L->timers.count > 0) {
                /* Virtual time with descriptors watched: look at them without
                 * waiting; if none is ready, time jumps to the next timer, which
                 * may be what makes them ready (a task that sleeps, then writes).
                 * Waiting on the descriptors here would wait forever. */
                poll_once(L, 0);
                if (L->ready.count == 0 && atomic_load_explicit(&L->ts_pending, memory_order_acquire) == 0 &&
                    L->timers.e[0].when > L->now)
                    L->now = L->timers.e[0].when;
            } else if (L->external_refs > 0 || L->io.active > 0) {
                /* Something outside (a thread, I/O) may wake us: wait for it, and
                 * for the next timer in real time. (In virtual time a thread's
                 * call is waited for before time moves on.) */
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
            } else if (L->notifier_count > 0 && !L->shutting_down) {
                /* A live notifier may still be notified (from a thread or a signal
                 * handler): wait for it. Not once main has returned: then a task
                 * that ignores its cancellation is reported, not waited for. */
                timeout = -1;
                must_poll = 1;
            } else {
                return WEFT_EDEADLOCK_LOOP;
            }
            /* A timer already due gives a negative wait: poll without blocking
             * (−1 would mean "forever" to the poller). */
            if (timeout < 0 && !(must_poll && timeout == -1 && (L->timers.count == 0 || L->virtual_time)))
                timeout = 0;
        } else if (L->io.active && L->iteration % WEFT__POLL_INTERVAL == 0) {
            must_poll = 1;
        }
        if (must_poll)
            poll_once(L, timeout);
        weft__run_threadsafe_calls(L);
        weft__run_notifications(L);
        fire_timers(L);
        run_batch(L);
        L->iteration++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Creating and destroying a loop                                           */
/* ------------------------------------------------------------------------ */

weft_loop *weft__loop_alloc(const weft_options *opts)
{
    static atomic_uint next_serial;
    weft_loop *L = calloc(1, sizeof *L);
    if (L) {
        L->stats.started_ns = weft__mono_ns();
        L->virtual_time = opts && opts->virtual_time;
        L->serial = (uint8_t)(atomic_fetch_add(&next_serial, 1) % 7 + 1);
    }
    return L;
}

void weft__loop_free(weft_loop *L)
{
    free(L);
}

/* Memory: task stacks, compact tasks' shared stack and saved frames, small records. */
static int memory_init(weft_loop *L, const weft_options *opts)
{
    size_t stack = opts && opts->stack_size ? opts->stack_size : WEFT_STACK_DEFAULT;
    size_t pool_max = opts && opts->stack_pool_max ? opts->stack_pool_max : 1024;
    return weft__stack_pool_init(&L->stacks, stack, pool_max);
}

static void memory_term(weft_loop *L)
{
    weft__compact_destroy(L);
    weft__small_destroy(&L->small);
    weft__stack_pool_destroy(&L->stacks);
}

const weft__module weft__module_memory = {"memory", memory_init, NULL, memory_term};

/* Task records: slabs, freed whole. */
static void tasks_term(weft_loop *L)
{
    while (L->task_slabs) {
        weft__task_slab *s = L->task_slabs;
        L->task_slabs = s->next;
        if (s->bytes)
            weft__bulk_unmap(s, s->bytes);
        else
            free(s);
    }
    L->free_tasks = NULL;
}

const weft__module weft__module_tasks = {"tasks", NULL, NULL, tasks_term};

/* Timers and loop callbacks. Callbacks left are dropped, as asyncio drops them
 * when its loop closes; their records go with the memory module's small records. */
static void timers_term(weft_loop *L)
{
    weft__heap_free(&L->timers);
    weft__callbacks_destroy(L);
}

const weft__module weft__module_timers = {"timers", NULL, NULL, timers_term};

/* The I/O layer: the poller and its wake-up. */
static int io_init(weft_loop *L, const weft_options *opts)
{
    (void)opts;
    return weft__io_init(&L->io);
}

static void io_term(weft_loop *L)
{
    weft__io_term(&L->io);
}

const weft__module weft__module_io = {"io", io_init, NULL, io_term};

/* Calls fn on every task record in use. */
static void for_each_task(weft_loop *L, void (*fn)(weft_loop *, weft_task *, void *), void *arg)
{
    for (weft__task_slab *s = L->task_slabs; s; s = s->next)
        for (size_t i = 0; i < s->count; i++)
            if (WEFT__STATE(&s->tasks[i]) != WEFT__FREE)
                fn(L, &s->tasks[i], arg);
}

typedef struct cancel_pass {
    const char *why;
    size_t count;
} cancel_pass;

static void cancel_one(weft_loop *L, weft_task *t, void *arg)
{
    (void)L;
    cancel_pass *pass = arg;
    if (WEFT__STATE(t) != WEFT__DONE && weft_cancel(t, pass->why))
        pass->count++;
}

size_t weft__loop_cancel_leftovers(weft_loop *L, const char *why)
{
    cancel_pass pass = {why, 0};
    for_each_task(L, cancel_one, &pass);
    return pass.count;
}

typedef struct name_list {
    char *buf;
    size_t size, used, listed, more;
} name_list;

static void add_waiting_name(weft_loop *L, weft_task *t, void *arg)
{
    (void)L;
    name_list *list = arg;
    if (WEFT__STATE(t) == WEFT__DONE)
        return;
    const char *name = weft_task_name(t);
    size_t need = strlen(name) + (list->listed ? 2 : 0) + (WEFT__FLAGS(t) & WEFT__MAIN ? 7 : 0);
    if (list->listed >= 8 || list->used + need + 1 >= list->size) {
        list->more++;
        return;
    }
    int n = snprintf(list->buf + list->used, list->size - list->used, "%s%s%s", list->listed ? ", " : "", name,
                     WEFT__FLAGS(t) & WEFT__MAIN ? " (main)" : "");
    if (n > 0)
        list->used += (size_t)n;
    list->listed++;
}

void weft__loop_waiting_names(weft_loop *L, char *buf, size_t size)
{
    name_list list = {buf, size, 0, 0, 0};
    buf[0] = '\0';
    for_each_task(L, add_waiting_name, &list);
    if (list.more && list.used + 32 < size)
        snprintf(buf + list.used, size - list.used, " and %zu more", list.more);
}

/* A record still in use when the loop is torn down: either a finished task whose
 * handle was never given up, or one stuck waiting on something nothing can wake. */
static void reap_one(weft_loop *L, weft_task *t, void *arg)
{
    (void)arg;
    if (WEFT__FLAGS(t) & WEFT__FREE_LATER) {
        /* Its handle was given up, but a done callback still pinned it: the
         * callback is dropped with the loop, so nothing will unpin it. */
        t->extra->pins = 0;
    } else if (WEFT__STATE(t) == WEFT__DONE) {
        if (t->err && t->err != -ECANCELED && !(WEFT__FLAGS(t) & WEFT__QUIET))
            weft__task_report_unretrieved(t, "its handle was never awaited; nobody retrieved the error");
    } else {
        weft__report("weft: %s was destroyed while still pending: it ignored cancellation and waits "
                     "on something nothing can wake (its stack is freed without unwinding)",
                     weft_task_name(t));
        weft__task_reported(t);
        weft__task_release_stack(L, t);
    }
    weft__task_free(L, t);
}

void weft__loop_reap(weft_loop *L)
{
    for_each_task(L, reap_one, NULL);
}

/* ------------------------------------------------------------------------ */
/* For seeing inside the loop (weft_dump, the wait kinds' describe)          */
/* ------------------------------------------------------------------------ */

void weft__loop_for_each_task(weft_loop *L, void (*fn)(weft_loop *, weft_task *, void *), void *arg)
{
    for_each_task(L, fn, arg);
}

const char *weft__task_state_name(const weft_task *t)
{
    switch (WEFT__STATE(t)) {
    case WEFT__NEW:
        return "new";
    case WEFT__READY:
        return "ready";
    case WEFT__RUNNING:
        return "running";
    case WEFT__WAITING:
        return "waiting";
    case WEFT__DONE:
        return "done";
    default:
        return "free";
    }
}

double weft__loop_seconds(weft_loop *L, int64_t when)
{
    return (double)(when - (L->virtual_time ? 0 : L->stats.started_ns)) / 1e9;
}

void weft__describe_timer(weft_loop *L, const weft__node *owner, char *buf, size_t size)
{
    /* The node's slot (index + 1) is trusted only if the heap agrees. */
    uint32_t slot = owner ? owner->u32 : 0;
    if (slot == 0 || slot > L->timers.count || L->timers.e[slot - 1].owner != owner) {
        snprintf(buf, size, "not scheduled");
        return;
    }
    int64_t when = L->timers.e[slot - 1].when;
    int64_t in = when - weft__now(L);
    if (in >= 0)
        snprintf(buf, size, "in %.3f s, at loop time %.3f s", (double)in / 1e9, weft__loop_seconds(L, when));
    else
        snprintf(buf, size, "due %.3f s ago, at loop time %.3f s", (double)-in / 1e9, weft__loop_seconds(L, when));
}

void weft__describe_task(const weft_task *t, char *buf, size_t size)
{
    snprintf(buf, size, "task %u \"%s\" (%s)", t->id, weft_task_name(t), weft__task_state_name(t));
}
