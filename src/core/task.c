/*
 * task.c — tasks: spawn, the switch into and out of a task's stack, the one
 * suspension primitive (weft__wait / weft__wake), await, detach, cancellation,
 * names, and sleep.
 */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WEFT__ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* ------------------------------------------------------------------------ */
/* Handles                                                                  */
/* ------------------------------------------------------------------------ */

WEFT__TLS uint8_t weft__handle_fault;

int weft__stale_handle(const char *what)
{
    if (weft__handle_fault == WEFT__HANDLE_FOREIGN)
        return weft__set_errmsg(WEFT_ESTATE, "%s: the task belongs to another thread's loop; a task is waited "
                                             "for, cancelled and read by the tasks of its own loop (from "
                                             "another thread: weft_call_soon_threadsafe, weft_run_in_loop)",
                                what);
    if (weft__handle_fault == WEFT__HANDLE_NO_LOOP)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a task or callback of the task's loop (from another "
                                                 "thread: weft_call_soon_threadsafe)", what);
    return weft__set_errmsg(-ESTALE, "%s: the task handle is stale: its task was already awaited, gathered "
                                     "or detached (a handle can be given up only once), and its record may "
                                     "now belong to another task", what);
}


/* ------------------------------------------------------------------------ */
/* Task records                                                             */
/* ------------------------------------------------------------------------ */

/* Task records come in slabs that double in size up to this many records, so a
 * small program allocates little and a million tasks take ~20 allocations. */
#define TASK_SLAB_MAX 65536

weft_task *weft__task_alloc(weft_loop *L)
{
    if (!L->free_tasks) {
        size_t n = L->slab_next_size ? L->slab_next_size : 64;
        size_t bytes = sizeof(weft__task_slab) + n * sizeof(weft_task);
        /* Small slabs from malloc; big ones (≥ 1 MiB: programs with many
         * tasks) from huge pages, where page faults cost a fraction. A big
         * slab fills whole huge pages: the kernel backs the rounded-up size
         * anyway, and leaving it unused cost W2 13 MB at a million tasks. */
        int bulk = bytes >= ((size_t)1 << 20);
        if (bulk) {
            bytes = (bytes + WEFT__HUGE_PAGE - 1) / WEFT__HUGE_PAGE * WEFT__HUGE_PAGE;
            n = (bytes - sizeof(weft__task_slab)) / sizeof(weft_task);
        }
        weft__task_slab *slab = bulk ? weft__bulk_map(bytes) : malloc(bytes);
        if (!slab)
            return NULL;
        slab->count = n;
        slab->bytes = bulk ? bytes : 0;
        slab->next = L->task_slabs;
        L->task_slabs = slab;
        for (size_t i = n; i-- > 0;) {
            weft_task *t = &slab->tasks[i];
            WEFT__STATE(t) = WEFT__FREE;
            t->node.next = (weft__node *)L->free_tasks;
            L->free_tasks = t;
        }
        L->slab_next_size = n < TASK_SLAB_MAX ? n * 2 : n;
    }
    weft_task *t = L->free_tasks;
    L->free_tasks = (weft_task *)t->node.next;
    memset(t, 0, sizeof *t);
    t->node.kind = WEFT__NODE_TASK;
    return t;
}

void weft__task_free(weft_loop *L, weft_task *t)
{
    if (t->extra && t->extra->pins) {
        /* A scheduled done callback will still read it: the last unpin frees it. */
        WEFT__FLAGS(t) |= WEFT__FREE_LATER;
        return;
    }
    if (WEFT__UNLIKELY(L->observer))
        L->observer->forget(L, t);
    if (t->extra) {
        /* A result nobody took goes to the drop function the spawner gave. */
        if (t->extra->drop && WEFT__STATE(t) == WEFT__DONE && t->err == 0 && t->result)
            t->extra->drop(t->result);
        free(t->extra->name);
        weft__errstate_free(&t->extra->es);
        free(t->extra->cancel_msg);
        weft__errgroup_free(t->extra->group);
        free(t->extra);
    }
    WEFT__STATE(t) = WEFT__FREE;
    t->node.next = (weft__node *)L->free_tasks;
    L->free_tasks = t;
}

/* ------------------------------------------------------------------------ */
/* Switching                                                                */
/* ------------------------------------------------------------------------ */

/*
 * The message that goes with a finished task's error, made its latest: for
 * -ECANCELED the cancel message (or "<name> was cancelled"); otherwise what
 * weft_fail said, even if a later failing call replaced the latest message since.
 */
static void set_outcome_msg(weft_task *t)
{
    if (t->err == 0)
        return;
    weft__task_extra *x = weft__extra(t);
    if (!x)
        return;
    char *msg = NULL;
    if (t->err == -ECANCELED && x->cancel_msg) {
        msg = x->cancel_msg;
        x->cancel_msg = NULL;
    } else if (x->es.fail_msg) {
        msg = x->es.fail_msg;
        x->es.fail_msg = NULL;
    } else if (t->err == -ECANCELED) {
        if (asprintf(&msg, "%s was cancelled", weft_task_name(t)) < 0)
            msg = NULL;
    } else {
        return; /* no message of its own: the latest stays */
    }
    weft__errstate_set(&x->es, t->err, msg);
}

#ifdef WEFT__ASAN
/* Called on a task's stack right after a switch into it. The first switch ever
 * comes from the scheduler, which tells us the bounds of the thread's own stack. */
static inline void asan_arrived(weft_loop *L, weft__stack *s)
{
    if (L->asan_main_bottom)
        __sanitizer_finish_switch_fiber(s->asan_fake_stack, NULL, NULL);
    else
        __sanitizer_finish_switch_fiber(s->asan_fake_stack, &L->asan_main_bottom, &L->asan_main_size);
}
#endif

static WEFT__NORETURN void task_entry(void *arg)
{
    weft_task *t = arg;
    weft_loop *L = weft__loop;
#ifdef WEFT__ASAN
    asan_arrived(L, t->stack);
#endif
    weft_fn fn = t->fn;
    void *result = fn(t->arg);
    if (t->err == 0 && t->cancelling) {
        /* asyncio: a task that returns while cancelled ends cancelled. */
        t->err = -ECANCELED;
    }
    set_outcome_msg(t);
    t->result = t->err ? NULL : result;
    WEFT__STATE(t) = WEFT__DONE;
    if (WEFT__UNLIKELY(L->observer))
        L->observer->step_end(L, t, NULL);
    weft__stack_check(t->stack, t);
#ifdef WEFT__ASAN
    /* NULL: this stack's fake frames die with the task. */
    __sanitizer_start_switch_fiber(NULL, L->asan_main_bottom, L->asan_main_size);
#endif
    weft__ctx_switch(&t->stack->ctx, &L->sched_ctx);
    abort(); /* the scheduler never resumes a finished task */
}

/*
 * The switch away from a suspending task, in two copies made from one body: the one
 * weft__suspend runs while nothing watches holds no trace of the observer (not even a
 * register kept across its call), and the observed one, out of line, tells the
 * observer. One test of L->observer picks the copy.
 */
static WEFT__ALWAYS_INLINE void suspend_as(weft_loop *L, weft_task *t, bool observed)
{
    weft__stack *s = t->stack;
    weft__stack_check(s, t);
    weft_task *next = (WEFT__FLAGS(t) & WEFT__COMPACT) ? NULL : weft__loop_next_direct(L);
    /* The step that ends and the one that begins (the next task's, when it is
     * switched to directly) are told together, before the switch. */
    if (observed)
        L->observer->step_end(L, t, next);
    if (next == t) {
        WEFT__STATE(t) = WEFT__RUNNING; /* it was the only ready task */
        return;
    }
    if (next) {
        WEFT__STATE(next) = WEFT__RUNNING;
        L->current = next;
#ifdef WEFT__ASAN
        __sanitizer_start_switch_fiber(&s->asan_fake_stack, next->stack->lo, next->stack->size);
#endif
        weft__ctx_switch(&s->ctx, &next->stack->ctx);
    } else {
#ifdef WEFT__ASAN
        __sanitizer_start_switch_fiber(&s->asan_fake_stack, L->asan_main_bottom, L->asan_main_size);
#endif
        weft__ctx_switch(&s->ctx, &L->sched_ctx);
    }
#ifdef WEFT__ASAN
    /* Not `s`: while a compact task waits, evict may move its descriptor. */
    asan_arrived(L, t->stack);
#endif
}

static WEFT__NOINLINE void suspend_observed(weft_loop *L, weft_task *t)
{
    suspend_as(L, t, true);
}

void weft__suspend(weft_task *t)
{
    weft_loop *L = weft__loop;
    if (WEFT__UNLIKELY(L->observer))
        suspend_observed(L, t);
    else
        suspend_as(L, t, false);
}

/* Runs a ready task until it suspends or returns; called by the scheduler. */
void weft__task_run_first(weft_loop *L, weft_task *t)
{
    if (WEFT__STATE(t) == WEFT__NEW) {
        if (t->cancelling) {
            /* Cancelled before it ever ran: its function never runs. */
            t->err = -ECANCELED;
            weft__task_extra *x = t->extra;
            if (x && x->cancel_msg) {
                weft__errstate_set(&x->es, t->err, x->cancel_msg);
                x->cancel_msg = NULL;
            }
            WEFT__STATE(t) = WEFT__DONE;
            weft__task_finish(L, t);
            return;
        }
        size_t size = t->stack_kib ? (size_t)t->stack_kib * 1024 : L->stacks.size;
        weft__stack *s = NULL;
        if (WEFT__FLAGS(t) & WEFT__COMPACT) {
            if (weft__compact_enter(L, t, task_entry) == 0)
                s = t->stack;
        } else {
            s = weft__stack_get(&L->stacks, size);
        }
        if (!s) {
            t->err = -ENOMEM;
            weft__task_extra *x = weft__extra(t);
            char *msg = NULL;
            if (x && asprintf(&msg, "no memory for a %zu KiB stack for %s", size / 1024, weft_task_name(t)) >= 0)
                weft__errstate_set(&x->es, t->err, msg);
            WEFT__STATE(t) = WEFT__DONE;
            weft__task_finish(L, t);
            return;
        }
        if (!(WEFT__FLAGS(t) & WEFT__COMPACT)) {
            t->stack = s;
            weft__ctx_make(&s->ctx, s->lo, s->size, task_entry, t);
        }
    } else if ((WEFT__FLAGS(t) & WEFT__COMPACT) && L->shared_owner != t) {
        /* Its frames were copied out while another compact task ran. Bringing
         * them back means saving that task's frames, which needs memory: when
         * there is none, t waits for the next iteration rather than anything
         * being lost or overwritten. */
        if (weft__compact_enter(L, t, task_entry) != 0) {
            weft__fifo_push(&L->ready, &t->node);
            return;
        }
    }
    WEFT__STATE(t) = WEFT__RUNNING;
    L->current = t;
    if (WEFT__UNLIKELY(L->observer))
        L->observer->step_begin(L, t);
#ifdef WEFT__ASAN
    __sanitizer_start_switch_fiber(&L->asan_sched_fake, t->stack->lo, t->stack->size);
#endif
    weft__ctx_switch(&L->sched_ctx, &t->stack->ctx);
#ifdef WEFT__ASAN
    __sanitizer_finish_switch_fiber(L->asan_sched_fake, NULL, NULL);
#endif
    /* Tasks may have switched among themselves: the one that came back to the
     * scheduler is the current one, not necessarily t. */
    weft_task *back = L->current;
    L->current = NULL;
    if (WEFT__STATE(back) == WEFT__DONE)
        weft__task_finish(L, back);
}

/* ------------------------------------------------------------------------ */
/* Waiting and waking                                                       */
/* ------------------------------------------------------------------------ */

void weft__wake(weft_task *t, int reason)
{
    WEFT__ASSERT(WEFT__STATE(t) == WEFT__WAITING);
    t->wake = reason;
    t->wait_kind = NULL;
    WEFT__STATE(t) = WEFT__READY;
    weft_loop *L = weft__loop;
    weft__fifo_push(&L->ready, &t->node);
    if (WEFT__UNLIKELY(L->observer))
        L->observer->woken(L, t, reason);
}

int weft__wait(const weft__wait_kind *kind, void *wait_obj)
{
    weft_task *t = weft__current();
    WEFT__ASSERT(t && WEFT__STATE(t) == WEFT__RUNNING);
    t->wait_obj = wait_obj; /* unwait reads it, on either path */
    if (t->cancelling) {
        if (kind->unwait)
            kind->unwait(t, -ECANCELED);
        return -ECANCELED;
    }
    t->wait_kind = kind;
    WEFT__STATE(t) = WEFT__WAITING;
    weft__suspend(t);
    return t->wake;
}

static int not_in_task(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                             "(start one with weft_run)", what);
}

void weft__task_pin(weft_task *t)
{
    t->extra->pins++; /* the caller made sure extra exists */
}

void weft__task_unpin(weft_loop *L, weft_task *t)
{
    if (--t->extra->pins == 0 && (WEFT__FLAGS(t) & WEFT__FREE_LATER)) {
        WEFT__FLAGS(t) &= (uint8_t)~WEFT__FREE_LATER;
        weft__task_free(L, t);
    }
}

int weft__task_listen(weft_task *t, weft__listener *l)
{
    weft__task_extra *x = weft__extra(t);
    if (!x)
        return -ENOMEM;
    l->next = NULL;
    weft__listener **p = &x->listeners;
    while (*p)
        p = &(*p)->next;
    *p = l;
    return 0;
}

void weft__task_unlisten(weft_task *t, weft__listener *l)
{
    if (!t->extra)
        return;
    for (weft__listener **p = &t->extra->listeners; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            l->next = NULL;
            return;
        }
    }
}

/* Tells every listener, in the order they were added. */
static void tell_listeners(weft_task *t)
{
    if (!t->extra)
        return;
    weft__listener *l = t->extra->listeners;
    t->extra->listeners = NULL;
    while (l) {
        weft__listener *next = l->next;
        l->next = NULL;
        l->done(l, t);
        l = next;
    }
}

void weft__task_release_stack(weft_loop *L, weft_task *t)
{
    if (t->stack) {
        if (t->stack->compact)
            weft__compact_release(L, t);
        else
            weft__stack_put(&L->stacks, t->stack);
        t->stack = NULL;
    }
}

void weft__task_finish(weft_loop *L, weft_task *t)
{
    WEFT__ASSERT(WEFT__STATE(t) == WEFT__DONE);
    weft__task_release_stack(L, t);
    L->live_tasks--;
    tell_listeners(t);
    switch (WEFT__WAITER_KIND(t)) {
    case WEFT__WAITER_TASK: {
        weft_task *w = t->waiter;
        if (WEFT__STATE(w) == WEFT__WAITING)
            weft__wake(w, 0);
        return;
    }
    case WEFT__WAITER_CLAIM: {
        weft__claim *c = t->waiter;
        c->done(c, t);
        return;
    }
    default:
        break;
    }
    if (WEFT__FLAGS(t) & WEFT__DETACHED) {
        if (t->err && t->err != -ECANCELED && !(WEFT__FLAGS(t) & WEFT__QUIET))
            weft__task_report_unretrieved(t, "detached; nobody retrieved the error");
        weft__task_free(L, t);
    }
}

/* ------------------------------------------------------------------------ */
/* Claiming a task's outcome: the one path of every consumer of a handle    */
/* ------------------------------------------------------------------------ */

int weft__task_claim_refused(const weft_task *t, const char *what)
{
    if (!t)
        return weft__set_errmsg(-EINVAL, "%s: the task is NULL (did weft_spawn fail? weft_errmsg() said why when "
                                         "it returned NULL)", what);
    if (t == weft__current())
        return weft__set_errmsg(-EINVAL, "%s: a task cannot await itself", what);
    if (WEFT__FLAGS(t) & WEFT__GROUP_CHILD)
        return weft__set_errmsg(-EINVAL, "%s: %s belongs to a weft_group, which waits for it; read its outcome "
                                         "with weft_task_result", what, weft_task_name(t));
    if (WEFT__FLAGS(t) & WEFT__DETACHED)
        return weft__set_errmsg(-ESTALE, "%s: %s was detached: its handle was given up and can no longer be "
                                         "awaited or gathered", what, weft_task_name(t));
    return weft__set_errmsg(-EINVAL, "%s: %s is already being awaited or gathered; a handle can be "
                                     "consumed only once", what, weft_task_name(t));
}

void weft__task_claim_wake(weft_task *t, weft_task *waiter)
{
    WEFT__ASSERT(WEFT__WAITER_KIND(t) == WEFT__WAITER_NONE && WEFT__STATE(t) != WEFT__FREE);
    WEFT__WAITER_KIND(t) = WEFT__WAITER_TASK;
    t->waiter = waiter;
}

void weft__task_claim(weft_task *t, weft__claim *c)
{
    WEFT__ASSERT(WEFT__WAITER_KIND(t) == WEFT__WAITER_NONE && WEFT__STATE(t) != WEFT__FREE);
    WEFT__WAITER_KIND(t) = WEFT__WAITER_CLAIM;
    t->waiter = c;
}

bool weft__task_claimed_by(const weft_task *t, const void *by)
{
    return WEFT__WAITER_KIND(t) != WEFT__WAITER_NONE && t->waiter == by;
}

void weft__task_unclaim(weft_task *t)
{
    WEFT__WAITER_KIND(t) = WEFT__WAITER_NONE;
    t->waiter = NULL;
}

void weft__task_let_go(weft_task *t, bool cancel, const char *msg)
{
    WEFT__ASSERT(WEFT__STATE(t) != WEFT__DONE && WEFT__STATE(t) != WEFT__FREE);
    weft__task_unclaim(t);
    WEFT__FLAGS(t) |= WEFT__DETACHED | WEFT__QUIET;
    if (cancel)
        weft_cancel(t, msg);
}

int weft__task_take(weft_loop *L, weft_task *t, void **result)
{
    WEFT__ASSERT(WEFT__STATE(t) == WEFT__DONE);
    int err = t->err;
    if (result) {
        *result = err ? NULL : t->result;
        t->result = NULL; /* taken: not the drop function's */
    }
    if (err) {
        weft__take_errmsg(err, t->extra ? t->extra->es.msg : NULL);
        if (t->extra) {
            t->extra->es.msg = NULL;
            if (err == WEFT_EGROUP) {
                weft__take_errgroup(t->extra->group);
                t->extra->group = NULL;
            }
        }
    }
    weft__task_free(L, t);
    return err;
}

void weft__task_drop(weft_loop *L, weft_task *t)
{
    WEFT__ASSERT(WEFT__STATE(t) == WEFT__DONE);
    weft__task_free(L, t);
}

/* ------------------------------------------------------------------------ */
/* Spawn, await, detach                                                     */
/* ------------------------------------------------------------------------ */

/* An argument pointing into a compact task's stack (`weft_spawn(child, &local)` from
 * a compact task) would be read after the spawner's frames were copied away and the
 * shared stack reused. Checked in Debug and sanitizer builds, and while anything looks
 * inside the loop (debug mode): the check is a few compares, but on every spawn. */
static bool compact_arg_refused(weft_loop *L, const void *arg)
{
    weft_task *self = L->current;
    if (!self || !(WEFT__FLAGS(self) & WEFT__COMPACT) || !L->shared_stack)
        return false;
    const char *a = arg, *lo = L->shared_stack->lo;
    if (a < lo || a >= lo + L->shared_stack->size)
        return false;
    weft__set_errmsg(-EINVAL, "weft_spawn: the argument points into the stack of compact task %s, which is "
                              "copied away whenever it waits, so the new task would read another task's memory; "
                              "pass heap or static memory (this check runs in Debug and sanitizer builds and in "
                              "debug mode)", weft_task_name(self));
    return true;
}

weft_task *weft__spawn(weft_fn fn, void *arg, const weft_spawn_options *opts)
{
    weft_loop *L = weft__loop;
    if (!L) {
        not_in_task("weft_spawn");
        return NULL;
    }
    if (!fn) {
        weft__set_errmsg(-EINVAL, "weft_spawn: the function is NULL");
        return NULL;
    }
#ifdef WEFT_ASSERTS
    bool check_arg = true;
#else
    bool check_arg = L->observer != NULL; /* debug mode, the watchdog, a trace */
#endif
    if (WEFT__UNLIKELY(check_arg) && compact_arg_refused(L, arg))
        return NULL;
    size_t stack_kib = 0;
    if (opts && opts->stack_size) {
        if (opts->stack_size < WEFT_STACK_MIN) {
            weft__set_errmsg(-EINVAL, "weft_spawn: stack_size %zu is below WEFT_STACK_MIN (%zu bytes)",
                             opts->stack_size, (size_t)WEFT_STACK_MIN);
            return NULL;
        }
        size_t kib = (opts->stack_size + 1023) / 1024;
        if (kib > UINT16_MAX) {
            weft__set_errmsg(-EINVAL, "weft_spawn: stack_size %zu is above the 64 MiB a task can have",
                             opts->stack_size);
            return NULL;
        }
        stack_kib = kib;
    }
    weft_task *t = weft__task_alloc(L);
    if (!t) {
        weft__set_errmsg(-ENOMEM, "weft_spawn: out of memory for a task record");
        return NULL;
    }
    if (opts && opts->name && weft_task_set_name(t, opts->name) != 0) {
        weft__task_free(L, t);
        weft__set_errmsg(-ENOMEM, "weft_spawn: out of memory for the task's name");
        return NULL;
    }
    if (opts && opts->drop) {
        weft__task_extra *x = weft__extra(t);
        if (!x) {
            weft__task_free(L, t);
            weft__set_errmsg(-ENOMEM, "weft_spawn: out of memory for the task's record");
            return NULL;
        }
        x->drop = opts->drop;
    }
    t->fn = fn;
    t->arg = arg;
    t->id = ++L->next_task_id;
    t->stack_kib = (uint16_t)stack_kib;
#ifndef WEFT_CTX_UCONTEXT
    /* The ucontext backend keeps no stack pointer to copy frames from: there a
     * compact task is an ordinary one. */
    if (opts && opts->compact)
        WEFT__FLAGS(t) |= WEFT__COMPACT;
#endif
    WEFT__STATE(t) = WEFT__NEW;
    L->live_tasks++;
    L->stats.tasks_spawned++;
    weft__fifo_push(&L->ready, &t->node);
    if (WEFT__UNLIKELY(L->observer))
        L->observer->spawned(L, t);
    return t;
}

weft_task *weft_spawn_opts(weft_fn fn, void *arg, const weft_spawn_options *opts)
{
    return weft__handle(weft__spawn(fn, arg, opts));
}

weft_task *weft_spawn(weft_fn fn, void *arg)
{
    return weft_spawn_opts(fn, arg, NULL);
}

/* The awaiting task leaves early (cancelled or timed out): the awaited task is
 * cancelled too and finishes on its own, its outcome dropped. */
static void await_unwait(weft_task *self, int reason);
static const weft__wait_kind await_wait;

/* Whether t is waiting in weft_await, directly or along a chain of awaits, for
 * `self`: then self awaiting t closes a cycle nothing can break. */
static bool awaits_through(weft_task *t, const weft_task *self)
{
    for (int hops = 0; t && hops < 10000; hops++) {
        if (t == self)
            return true;
        if (WEFT__STATE(t) != WEFT__WAITING || t->wait_kind != &await_wait)
            return false;
        t = t->wait_obj; /* the task t awaits */
    }
    return false;
}

static void await_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft__task_let_go(self->wait_obj, true, self->extra ? self->extra->cancel_msg : NULL);
}

/* weft_dump: the task awaited, and what it does. */
static void await_describe(const weft_task *self, char *buf, size_t size)
{
    weft__describe_task(self->wait_obj, buf, size);
}

static const weft__wait_kind await_wait = {"awaited task", await_unwait, await_describe};

int weft_task_result(const weft_task *h, void **result)
{
    if (result)
        *result = NULL;
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_task_result"));
    if (!t)
        return weft__set_errmsg(-EINVAL, "weft_task_result: the task is NULL");
    if (WEFT__STATE(t) != WEFT__DONE)
        return weft__set_errmsg(-EINPROGRESS, "weft_task_result: %s has not finished", weft_task_name(t));
    if (t->err == 0) {
        if (result)
            *result = t->result;
        return 0;
    }
    weft__set_errmsg(t->err, "%s", weft__task_errmsg(t));
    if (t->err == WEFT_EGROUP && t->extra && t->extra->group)
        weft__take_errgroup(weft__errgroup_copy(t->extra->group));
    return t->err;
}

/* How many suspension points may refuse a cancelled task before weft says it
 * ignores its cancellation: a task cleaning up after a cancellation makes a few
 * calls, one that loops on `weft_sleep` without checking makes thousands a
 * millisecond. */
#define REFUSALS_DURING_RUN 100000
#define REFUSALS_AT_THE_END 10000

/* A cancelled task hits another suspension point: counted, and if it plainly
 * ignores the cancellation, reported (once); at weft_run's end, when the loop
 * could otherwise never finish, it is parked for good instead of spinning. */
static void count_refusal(weft_task *self)
{
    weft__task_extra *x = weft__extra(self);
    if (!x)
        return;
    x->refused++;
    weft_loop *L = weft__loop;
    if (L->shutting_down && x->refused >= REFUSALS_AT_THE_END) {
        weft__report("weft: %s ignores its cancellation: weft_run's main has returned and cancelled it, and "
                     "%u of its suspension points have returned -ECANCELED since without it finishing (does "
                     "it check what weft_sleep and the other waits return?). It is stopped here for good; "
                     "weft_run will return WEFT_EDEADLOCK_LOOP", weft_task_name(self), x->refused);
        weft__task_reported(self);
        WEFT__FLAGS(self) |= WEFT__PARKED;
        WEFT__STATE(self) = WEFT__WAITING;
        self->wait_kind = NULL;
        self->wait_obj = NULL;
        weft__suspend(self);
        abort(); /* a parked task is never resumed */
    }
    if (x->refused == REFUSALS_DURING_RUN) {
        weft__report("weft: %s keeps running after it was cancelled: %u of its suspension points have "
                     "returned -ECANCELED (does it check what weft_sleep and the other waits return?)",
                     weft_task_name(self), x->refused);
        weft__task_reported(self);
    }
}

int weft__cancelled_errmsg(weft_task *self)
{
    if (self->cancelling)
        count_refusal(self);
    const char *msg = self->extra && self->extra->cancel_msg ? self->extra->cancel_msg : NULL;
    if (msg)
        return weft__set_errmsg(-ECANCELED, "%s", msg);
    return weft__set_errmsg(-ECANCELED, "%s was cancelled", weft_task_name(self));
}

int weft_await(weft_task *h, void **result)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (result)
        *result = NULL;
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_await"));
    if (!self) {
        if (t && L)
            weft_detach(t);
        return not_in_task("weft_await");
    }
    int rc = weft__task_check_claim(t, "weft_await");
    if (rc != 0)
        return rc;
    if (WEFT__STATE(t) != WEFT__DONE && awaits_through(t, self)) {
        /* t waits (through the tasks it awaits) for this task: neither could
         * ever finish. asyncio would hang here; weft says so. */
        weft_detach(t);
        return weft__set_errmsg(-EDEADLK, "weft_await: %s awaiting %s would wait forever: %s is itself "
                                          "waiting (through the tasks it awaits) for %s; the handle was "
                                          "detached", weft_task_name(self), weft_task_name(t),
                                weft_task_name(t), weft_task_name(self));
    }
    if (WEFT__STATE(t) != WEFT__DONE) {
        weft__task_claim_wake(t, self);
        rc = weft__wait(&await_wait, t);
        if (rc != 0) {
            if (weft__task_claimed_by(t, self)) {
                /* It finished, then we were cancelled before we could run. */
                weft__task_drop(L, t);
            }
            return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
        }
    }
    return weft__task_take(L, t, result);
}

void weft_detach(weft_task *h)
{
    weft_loop *L = weft__loop;
    WEFT__TASK_ARG(t, h, {
        weft__report("weft: weft_detach ignored: the task handle is stale (its task was already awaited, "
                     "gathered or detached)");
        return;
    });
    if (!t || !L)
        return;
    if (WEFT__FLAGS(t) & WEFT__DETACHED) {
        weft__report("weft: weft_detach(%s) ignored: the task was already detached (a handle can be given up "
                     "only once)", weft_task_name(t));
        return;
    }
    if (WEFT__FLAGS(t) & WEFT__GROUP_CHILD) {
        weft__report("weft: weft_detach(%s) ignored: the task belongs to a weft_group, which owns it",
                     weft_task_name(t));
        return;
    }
    if (WEFT__STATE(t) == WEFT__DONE) {
        WEFT__FLAGS(t) |= WEFT__DETACHED;
        if (t->err && t->err != -ECANCELED)
            weft__task_report_unretrieved(t, "detached after it ended; nobody retrieved the error");
        weft__task_free(L, t);
        return;
    }
    WEFT__FLAGS(t) |= WEFT__DETACHED;
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                             */
/* ------------------------------------------------------------------------ */

bool weft_cancel(weft_task *h, const char *msg)
{
    if (WEFT__UNLIKELY(h && !weft__loop)) {
        /* Waking a task needs its loop's ready queue, and its record is that
         * loop's to touch: from another thread the cancellation must be posted
         * to that loop. */
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_cancel must be called from a task or callback of the task's "
                                          "loop (from another thread: post it with weft_call_soon_threadsafe)");
        return false;
    }
    WEFT__TASK_ARG(t, h, {
        weft__stale_handle("weft_cancel");
        return false;
    });
    if (t && (WEFT__FLAGS(t) & WEFT__PARKED))
        return false;
    if (!t || WEFT__STATE(t) == WEFT__DONE || WEFT__STATE(t) == WEFT__FREE)
        return false;
    if (t->cancelling < UINT16_MAX)
        t->cancelling++;
    if (msg) {
        weft__task_extra *x = weft__extra(t);
        if (x) {
            char *copy = strdup(msg);
            if (copy) {
                free(x->cancel_msg);
                x->cancel_msg = copy;
            }
        }
    }
    switch (WEFT__STATE(t)) {
    case WEFT__WAITING: {
        const weft__wait_kind *kind = t->wait_kind;
        t->wait_kind = NULL;
        if (kind && kind->unwait)
            kind->unwait(t, -ECANCELED);
        weft__wake(t, -ECANCELED);
        break;
    }
    case WEFT__READY:
        /* Already woken for another reason: as in asyncio, the cancellation is
         * what its suspension point reports. */
        t->wake = -ECANCELED;
        break;
    default:
        break; /* NEW: never runs; RUNNING: its next suspension point says so */
    }
    return true;
}

int weft_uncancel(void)
{
    weft_task *t = weft__current();
    if (!t)
        return 0;
    if (t->cancelling > 0)
        t->cancelling--;
    if (t->cancelling == 0 && t->extra) {
        /* Survived: a later cancellation must not report this one's message,
         * nor count the refusals of this one. */
        free(t->extra->cancel_msg);
        t->extra->cancel_msg = NULL;
        t->extra->refused = 0;
    }
    return t->cancelling;
}

unsigned weft_task_cancelling(const weft_task *h)
{
    WEFT__TASK_ARG(t, h, return 0);
    if (!t)
        t = weft__current();
    return t && WEFT__STATE(t) != WEFT__FREE ? t->cancelling : 0;
}

const char *weft_task_cancel_message(const weft_task *h)
{
    WEFT__TASK_ARG(t, h, return NULL);
    if (!t)
        t = weft__current();
    if (!t || WEFT__STATE(t) == WEFT__FREE || !t->cancelling || !t->extra)
        return NULL;
    return t->extra->cancel_msg;
}

bool weft_cancelled(void)
{
    weft_task *t = weft__current();
    return t && t->cancelling > 0;
}

/* ------------------------------------------------------------------------ */
/* Names and queries                                                        */
/* ------------------------------------------------------------------------ */

weft_task *weft_current(void)
{
    return weft__handle(weft__current());
}

const char *weft_task_name(const weft_task *h)
{
    WEFT__TASK_ARG(named, h, return "(stale task handle)");
    weft_task *t = named ? named : weft__current();
    if (!t)
        return "(no task)";
    weft__task_extra *x = weft__extra(t);
    if (!x)
        return "Task-?";
    if (x->name)
        return x->name;
    if (!x->default_name[0])
        snprintf(x->default_name, sizeof x->default_name, "Task-%u", t->id);
    return x->default_name;
}

int weft_task_set_name(weft_task *h, const char *name)
{
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_task_set_name"));
    if (!t)
        t = weft__current();
    if (!t || !name)
        return -EINVAL;
    weft__task_extra *x = weft__extra(t);
    char *copy = x ? strdup(name) : NULL;
    if (!copy)
        return -ENOMEM;
    free(x->name);
    x->name = copy;
    return 0;
}

bool weft_task_done(const weft_task *h)
{
    WEFT__TASK_ARG(t, h, return false);
    return t && WEFT__STATE(t) == WEFT__DONE;
}

/* ------------------------------------------------------------------------ */
/* Sleep                                                                    */
/* ------------------------------------------------------------------------ */

static void sleep_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft__heap_remove(&weft__loop->timers, &self->node);
}

/* weft_dump: when it wakes (its timer is its own node in the heap). */
static void sleep_describe(const weft_task *self, char *buf, size_t size)
{
    char when[96];
    weft__describe_timer(weft__loop, &self->node, when, sizeof when);
    snprintf(buf, size, "wakes %s", when);
}

static const weft__wait_kind sleep_wait = {"sleep", sleep_unwait, sleep_describe};

int weft_sleep(double seconds)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (!self)
        return not_in_task("weft_sleep");
    if (isnan(seconds))
        return weft__set_errmsg(-EINVAL, "weft_sleep: the duration is NaN");
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    int rc;
    if (seconds <= 0) {
        /* Exactly one loop iteration: to the back of the ready queue. */
        WEFT__STATE(self) = WEFT__READY;
        self->wake = 0;
        weft__fifo_push(&L->ready, &self->node);
        weft__suspend(self);
        rc = self->wake;
    } else {
        int64_t when = weft__now(L) + weft__seconds_to_ns(seconds);
        if (weft__heap_push(&L->timers, when, &self->node) != 0)
            return weft__set_errmsg(-ENOMEM, "weft_sleep: out of memory for the timer");
        rc = weft__wait(&sleep_wait, NULL);
    }
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    return rc;
}

int weft_yield(void)
{
    /* weft_sleep(0) without its checks of the duration: the hot path of every
     * program that yields in a loop. */
    weft_task *self = weft__current();
    if (WEFT__UNLIKELY(!self))
        return not_in_task("weft_yield");
    if (WEFT__UNLIKELY(self->cancelling))
        return weft__cancelled_errmsg(self);
    WEFT__STATE(self) = WEFT__READY;
    self->wake = 0;
    weft__fifo_push(&weft__loop->ready, &self->node);
    weft__suspend(self);
    if (WEFT__UNLIKELY(self->wake == -ECANCELED))
        return weft__cancelled_errmsg(self);
    return self->wake;
}

/* ------------------------------------------------------------------------ */
/* Done callbacks                                                           */
/* ------------------------------------------------------------------------ */

/* A registration of weft_task_add_done_callback. Its callback record is
 * reserved when it is added, so that telling it at the task's end cannot fail. */
typedef struct done_callback {
    weft__listener listener;     /* first: the listener is the registration */
    weft_task *task;
    weft_task_done_fn cb;
    void *arg;
    weft__callback *post;
} done_callback;

static void done_callback_run(void *arg)
{
    done_callback *d = arg;
    weft_loop *L = weft__loop;
    weft_task *t = d->task;
    weft_task_done_fn cb = d->cb;
    void *cb_arg = d->arg;
    weft__small_free(&L->small, d, sizeof *d);
    cb(weft__handle(t), cb_arg);
    weft__task_unpin(L, t);
}

static void done_callback_schedule(weft_loop *L, done_callback *d)
{
    weft__task_pin(d->task);
    weft__callback_post(L, d->post, done_callback_run, d);
}

static void done_callback_fire(weft__listener *l, weft_task *t)
{
    (void)t;
    done_callback_schedule(weft__loop, (done_callback *)l);
}

int weft_task_add_done_callback(weft_task *h, weft_task_done_fn cb, void *arg)
{
    weft_loop *L = weft__loop;
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_task_add_done_callback"));
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_task_add_done_callback needs a running weft loop");
    if (!t || !cb)
        return weft__set_errmsg(-EINVAL, "weft_task_add_done_callback: the %s is NULL", t ? "callback" : "task");
    done_callback *d = weft__small_alloc(&L->small, sizeof *d);
    weft__task_extra *x = weft__extra(t);
    weft__callback *post = d && x ? weft__callback_reserve(L) : NULL;
    if (!post) {
        if (d)
            weft__small_free(&L->small, d, sizeof *d);
        return weft__set_errmsg(-ENOMEM, "weft_task_add_done_callback: out of memory");
    }
    *d = (done_callback){.listener = {.done = done_callback_fire}, .task = t, .cb = cb, .arg = arg, .post = post};
    if (WEFT__STATE(t) == WEFT__DONE)
        done_callback_schedule(L, d);
    else
        weft__task_listen(t, &d->listener); /* cannot fail: extra exists */
    return 0;
}

size_t weft_task_remove_done_callback(weft_task *h, weft_task_done_fn cb, void *arg)
{
    weft_loop *L = weft__loop;
    WEFT__TASK_ARG(t, h, return 0);
    if (!t || !L || !t->extra)
        return 0;
    size_t removed = 0;
    weft__listener **p = &t->extra->listeners;
    while (*p) {
        done_callback *d = (done_callback *)*p;
        if ((*p)->done == done_callback_fire && d->cb == cb && d->arg == arg) {
            *p = (*p)->next;
            weft__callback_release(L, d->post);
            weft__small_free(&L->small, d, sizeof *d);
            removed++;
        } else {
            p = &(*p)->next;
        }
    }
    return removed;
}
