/*
 * wait.c — watching tasks without taking their handles: weft_wait (asyncio.wait),
 * weft_as_completed (asyncio.as_completed) and weft_shield (asyncio.shield).
 *
 * All three watch through task listeners rather than a task's single waiter slot,
 * which belongs to whoever consumes the handle: so a task can be watched by several
 * of them at once and still be awaited afterwards. Whatever a listener or a timer
 * touches while the watching task is suspended lives on the heap, since that task
 * may be compact (its stack moves while it sleeps).
 */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A timeout at or above this many seconds is no timeout (WEFT_FOREVER is 1e300). */
#define NO_TIMEOUT 1e18

static int not_in_task(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                             "(start one with weft_run)", what);
}

/* asyncio's FIRST_EXCEPTION counts an error, not a cancellation. */
static bool failed(const weft_task *t)
{
    return t->err != 0 && t->err != -ECANCELED;
}

static bool timeout_is_none(double timeout)
{
    return timeout >= NO_TIMEOUT;
}

/* ------------------------------------------------------------------------ */
/* Checking a list of tasks                                                 */
/* ------------------------------------------------------------------------ */

typedef struct indexed_task {
    const weft_task *task;
    size_t index;
} indexed_task;

static int by_task_then_index(const void *a, const void *b)
{
    const indexed_task *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Lists up to this long are checked for repeats pair by pair; longer ones are
 * sorted, so that watching a million tasks stays O(n log n). */
#define PAIRWISE_MAX 32

/* Finds a task given twice: returns 1 with its two positions (first < second), 0 when
 * every task is distinct, -ENOMEM when the sort had no memory. */
static int find_repeat(weft_task *const *tasks, size_t n, size_t *first, size_t *second)
{
    if (n <= PAIRWISE_MAX) {
        for (size_t j = 1; j < n; j++)
            for (size_t i = 0; i < j; i++)
                if (tasks[i] == tasks[j]) {
                    *first = i;
                    *second = j;
                    return 1;
                }
        return 0;
    }
    indexed_task *sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        sorted[i] = (indexed_task){tasks[i], i};
    qsort(sorted, n, sizeof *sorted, by_task_then_index);
    int found = 0;
    for (size_t i = 1; i < n; i++) {
        if (sorted[i].task == sorted[i - 1].task && (!found || sorted[i].index < *second)) {
            *first = sorted[i - 1].index;
            *second = sorted[i].index;
            found = 1;
        }
    }
    free(sorted);
    return found;
}

/* The checks weft_wait and weft_as_completed share: a list, no NULL task, no stale
 * handle, no task twice. Writes each handle's record into recs[] (room for n).
 * Returns 0 or -EINVAL/-ESTALE/-ENOMEM with the message set. */
static int check_tasks(const char *what, weft_task *const *tasks, size_t n, weft_task **recs)
{
    if (n > 0 && !tasks)
        return weft__set_errmsg(-EINVAL, "%s: tasks is NULL but n is %zu", what, n);
    for (size_t i = 0; i < n; i++) {
        if (!tasks[i])
            return weft__set_errmsg(-EINVAL, "%s: task %zu is NULL (did weft_spawn fail?)", what, i);
        bool stale;
        recs[i] = weft__task_from(tasks[i], &stale);
        if (stale) {
            char where[64];
            snprintf(where, sizeof where, "%s: task %zu", what, i);
            return weft__stale_handle(where);
        }
    }
    size_t first = 0, second = 0;
    int repeat = find_repeat(tasks, n, &first, &second);
    if (repeat < 0)
        return weft__set_errmsg(-ENOMEM, "%s: out of memory checking the tasks for repeats", what);
    if (repeat)
        return weft__set_errmsg(-EINVAL, "%s: tasks %zu and %zu are the same task (%s); give each task once",
                                what, first, second, weft_task_name(tasks[first]));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* weft_wait                                                                */
/* ------------------------------------------------------------------------ */

typedef struct wait_state wait_state;

/* One watched task of a weft_wait. */
typedef struct wait_watch {
    weft__listener listener; /* first: the listener is the watch */
    wait_state *owner;
    weft_task *task;
    bool listening;
} wait_watch;

struct wait_state {
    weft_task *waiter;
    weft__callback *timer;   /* the timeout, while scheduled */
    size_t remaining;        /* watched tasks not finished */
    int return_when;
    size_t n;
    wait_watch watches[];
};

/* Stops every watch still registered and the timer; safe to repeat. */
static void wait_unhook(wait_state *s)
{
    for (size_t i = 0; i < s->n; i++) {
        wait_watch *w = &s->watches[i];
        if (w->listening) {
            weft__task_unlisten(w->task, &w->listener);
            w->listening = false;
        }
    }
    if (s->timer) {
        weft__callback_cancel(weft__loop, s->timer);
        s->timer = NULL;
    }
}

static void wait_release(wait_state *s)
{
    if (WEFT__STATE(s->waiter) == WEFT__WAITING)
        weft__wake(s->waiter, 0);
}

static void wait_task_done(weft__listener *l, weft_task *finished)
{
    wait_watch *w = (wait_watch *)l;
    wait_state *s = w->owner;
    w->listening = false;
    s->remaining--;
    if (s->remaining == 0 || s->return_when == WEFT_FIRST_COMPLETED ||
        (s->return_when == WEFT_FIRST_EXCEPTION && failed(finished)))
        wait_release(s);
}

static void wait_timed_out(void *arg)
{
    wait_state *s = arg;
    s->timer = NULL; /* the record is already free: it is running */
    wait_release(s);
}

static void wait_unwait(weft_task *self, int reason)
{
    (void)reason;
    wait_unhook(self->wait_obj);
}

/* weft_dump: a deadline, if any ("never" otherwise). */
static void describe_deadline(const weft__callback *timer, char *buf, size_t size)
{
    if (timer)
        weft__describe_timer(weft__loop, &timer->node, buf, size);
    else
        snprintf(buf, size, "none");
}

static void wait_describe(const weft_task *self, char *buf, size_t size)
{
    const wait_state *s = self->wait_obj;
    char when[96];
    describe_deadline(s->timer, when, sizeof when);
    snprintf(buf, size, "%zu of %zu tasks unfinished, until %s; timeout %s", s->remaining, s->n,
             s->return_when == WEFT_FIRST_COMPLETED   ? "the first completes"
             : s->return_when == WEFT_FIRST_EXCEPTION ? "the first fails or all complete"
                                                      : "all complete",
             when);
}

static const weft__wait_kind wait_wait = {"weft_wait", wait_unwait, wait_describe};

/* Whether return_when is satisfied by the tasks as they are now. */
static bool wait_condition_holds(weft_task *const *tasks, size_t n, int return_when)
{
    size_t finished = 0;
    for (size_t i = 0; i < n; i++) {
        if (WEFT__STATE(tasks[i]) != WEFT__DONE)
            continue;
        finished++;
        if (return_when == WEFT_FIRST_COMPLETED)
            return true;
        if (return_when == WEFT_FIRST_EXCEPTION && failed(tasks[i]))
            return true;
    }
    return finished == n;
}

/* Splits the tasks (handles as given, records beside them), in argument order, by
 * whether they have finished. */
static void wait_split(weft_task *const *recs, weft_task *const *tasks, size_t n, weft_task **done, size_t *ndone,
                       weft_task **pending, size_t *npending)
{
    size_t d = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        if (WEFT__STATE(recs[i]) == WEFT__DONE) {
            if (done)
                done[d] = tasks[i];
            d++;
        } else {
            if (pending)
                pending[p] = tasks[i];
            p++;
        }
    }
    if (ndone)
        *ndone = d;
    if (npending)
        *npending = p;
}

static int wait_suspended(weft_loop *L, weft_task *self, weft_task *const *recs, weft_task *const *tasks, size_t n,
                          int return_when, double timeout, weft_task **done, size_t *ndone, weft_task **pending,
                          size_t *npending);

int weft_wait(weft_task *const *tasks, size_t n, int return_when, double timeout, weft_task **done, size_t *ndone,
              weft_task **pending, size_t *npending)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (ndone)
        *ndone = 0;
    if (npending)
        *npending = 0;
    if (!self)
        return not_in_task("weft_wait");
    if (n == 0)
        return weft__set_errmsg(-EINVAL, "weft_wait: no tasks to wait for (n is 0)");
    if (return_when != WEFT_FIRST_COMPLETED && return_when != WEFT_FIRST_EXCEPTION &&
        return_when != WEFT_ALL_COMPLETED)
        return weft__set_errmsg(-EINVAL, "weft_wait: return_when is %d; use WEFT_FIRST_COMPLETED, "
                                         "WEFT_FIRST_EXCEPTION or WEFT_ALL_COMPLETED", return_when);
    if (isnan(timeout))
        return weft__set_errmsg(-EINVAL, "weft_wait: the timeout is NaN (use WEFT_FOREVER for none)");
    /* The records the handles name; only this task reads them, so even a compact
     * caller may keep a short list on its stack. */
    weft_task *few[16];
    weft_task **recs = n <= 16 ? few : malloc(n * sizeof *recs);
    if (!recs)
        return weft__set_errmsg(-ENOMEM, "weft_wait: out of memory for %zu tasks", n);
    int rc = check_tasks("weft_wait", tasks, n, recs);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (recs[i] == self)
            rc = weft__set_errmsg(-EINVAL, "weft_wait: task %zu is the calling task itself, which cannot "
                                           "finish while it waits", i);
    if (rc == 0) {
        /* Nothing to wait for (no time, or the condition holds already): still one
         * suspension, as asyncio.wait always awaits (its done callbacks come
         * through call_soon), so other ready tasks run first and a cancelled
         * caller stops. */
        if (timeout <= 0 || wait_condition_holds(recs, n, return_when)) {
            rc = weft_yield();
            if (rc == 0)
                wait_split(recs, tasks, n, done, ndone, pending, npending);
        } else {
            rc = wait_suspended(L, self, recs, tasks, n, return_when, timeout, done, ndone, pending, npending);
        }
    }
    if (recs != few)
        free(recs);
    return rc;
}

static int wait_suspended(weft_loop *L, weft_task *self, weft_task *const *recs, weft_task *const *tasks, size_t n,
                          int return_when, double timeout, weft_task **done, size_t *ndone, weft_task **pending,
                          size_t *npending)
{
    /* Listeners and the timer reach this while the caller sleeps: on the heap. */
    wait_state *s = malloc(sizeof *s + n * sizeof s->watches[0]);
    if (!s)
        return weft__set_errmsg(-ENOMEM, "weft_wait: out of memory for watching %zu tasks", n);
    *s = (wait_state){.waiter = self, .return_when = return_when, .n = n};
    for (size_t i = 0; i < n; i++)
        s->watches[i] = (wait_watch){.listener = {.done = wait_task_done}, .owner = s, .task = recs[i]};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        wait_watch *w = &s->watches[i];
        if (WEFT__STATE(w->task) == WEFT__DONE)
            continue;
        if (weft__task_listen(w->task, &w->listener) != 0)
            rc = weft__set_errmsg(-ENOMEM, "weft_wait: out of memory for watching %s", weft_task_name(w->task));
        w->listening = rc == 0;
        s->remaining += rc == 0;
    }
    if (rc == 0 && !timeout_is_none(timeout)) {
        s->timer = weft__callback_schedule(L, weft__now(L) + weft__seconds_to_ns(timeout), wait_timed_out, s);
        if (!s->timer)
            rc = weft__set_errmsg(-ENOMEM, "weft_wait: out of memory for the timeout");
    }
    if (rc == 0)
        rc = weft__wait(&wait_wait, s);
    wait_unhook(s);
    free(s);
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    if (rc != 0)
        return rc;
    wait_split(recs, tasks, n, done, ndone, pending, npending);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* weft_as_completed                                                        */
/* ------------------------------------------------------------------------ */

/* A wake reason only weft_as_completed_free gives: the iterator is gone. */
#define AC_FREED WEFT_ESTATE

typedef struct ac_watch {
    weft__listener listener; /* first: the listener is the watch */
    weft_as_completed *owner;
    weft_task *task;         /* the record */
    weft_task *handle;       /* as the caller gave it: what is handed out */
    bool listening;
} ac_watch;

struct weft_as_completed {
    weft_task *waiter;       /* the task in weft_as_completed_next, until it returns */
    weft__callback *timer;   /* the deadline, while scheduled */
    double timeout;          /* as given, for the message */
    size_t n;
    size_t unfinished;       /* watched tasks not finished when last seen */
    size_t late;             /* tasks that had not finished at the deadline */
    size_t queued, returned; /* finished[returned..queued) are still to be handed out */
    bool timed_out;
    weft_task **finished;    /* in completion order; each task enters once */
    ac_watch watches[];
};

static void ac_unhook_tasks(weft_as_completed *ac)
{
    for (size_t i = 0; i < ac->n; i++) {
        ac_watch *w = &ac->watches[i];
        if (w->listening) {
            weft__task_unlisten(w->task, &w->listener);
            w->listening = false;
        }
    }
}

static void ac_wake_waiter(weft_as_completed *ac)
{
    if (ac->waiter && WEFT__STATE(ac->waiter) == WEFT__WAITING)
        weft__wake(ac->waiter, 0);
}

static void ac_task_done(weft__listener *l, weft_task *t)
{
    ac_watch *w = (ac_watch *)l;
    weft_as_completed *ac = w->owner;
    w->listening = false;
    (void)t;
    ac->finished[ac->queued++] = w->handle;
    ac->unfinished--;
    if (ac->unfinished == 0 && ac->timer) {
        /* asyncio: once every task is in, the deadline no longer matters. */
        weft__callback_cancel(weft__loop, ac->timer);
        ac->timer = NULL;
    }
    ac_wake_waiter(ac);
}

static void ac_timed_out(void *arg)
{
    weft_as_completed *ac = arg;
    ac->timer = NULL; /* the record is already free: it is running */
    ac->timed_out = true;
    ac->late = ac->unfinished;
    /* Tasks finishing from now on are not handed out: nothing waits for them. */
    ac_unhook_tasks(ac);
    ac_wake_waiter(ac);
}

static void ac_unwait(weft_task *self, int reason)
{
    (void)self;
    (void)reason;
    /* Nothing to unhook: the iterator's listeners belong to it, not to the waiter,
     * and weft_as_completed_next forgets the waiter when it returns. */
}

static void ac_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_as_completed *ac = self->wait_obj;
    char when[96];
    describe_deadline(ac->timer, when, sizeof when);
    snprintf(buf, size, "%zu of %zu tasks unfinished; timeout %s", ac->unfinished, ac->n, when);
}

static const weft__wait_kind ac_wait = {"as_completed", ac_unwait, ac_describe};

weft_as_completed *weft_as_completed_new(weft_task *const *tasks, size_t n, double timeout)
{
    weft_loop *L = weft__loop;
    if (!L) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_as_completed_new needs a running weft loop (call it from a task)");
        return NULL;
    }
    if (isnan(timeout)) {
        weft__set_errmsg(-EINVAL, "weft_as_completed_new: the timeout is NaN (use WEFT_FOREVER for none)");
        return NULL;
    }
    weft_as_completed *ac = malloc(sizeof *ac + n * (sizeof ac->watches[0] + sizeof ac->finished[0]));
    if (!ac) {
        weft__set_errmsg(-ENOMEM, "weft_as_completed_new: out of memory for watching %zu tasks", n);
        return NULL;
    }
    /* The records go in finished[] for the check, which is overwritten below. */
    if (check_tasks("weft_as_completed_new", tasks, n, (weft_task **)&ac->watches[n]) != 0) {
        free(ac);
        return NULL;
    }
    *ac = (weft_as_completed){.timeout = timeout, .n = n, .finished = (weft_task **)&ac->watches[n]};
    /* Tasks already finished come first, in argument order; without a deadline
     * still ahead, the others are never handed out, so they need no watching. */
    bool deadline_passed = timeout <= 0;
    for (size_t i = 0; i < n; i++)
        ac->watches[i] = (ac_watch){.listener = {.done = ac_task_done}, .owner = ac, .task = ac->finished[i],
                                    .handle = tasks[i]};
    for (size_t i = 0; i < n; i++) {
        ac_watch *w = &ac->watches[i];
        if (WEFT__STATE(w->task) == WEFT__DONE) {
            ac->finished[ac->queued++] = w->handle;
            continue;
        }
        ac->unfinished++;
        if (deadline_passed)
            continue;
        if (weft__task_listen(w->task, &w->listener) != 0) {
            weft__set_errmsg(-ENOMEM, "weft_as_completed_new: out of memory for watching %s",
                             weft_task_name(w->task));
            weft_as_completed_free(ac);
            return NULL;
        }
        w->listening = true;
    }
    if (ac->unfinished > 0 && deadline_passed) {
        ac->timed_out = true;
        ac->late = ac->unfinished;
    } else if (ac->unfinished > 0 && !timeout_is_none(timeout)) {
        ac->timer = weft__callback_schedule(L, weft__now(L) + weft__seconds_to_ns(timeout), ac_timed_out, ac);
        if (!ac->timer) {
            weft__set_errmsg(-ENOMEM, "weft_as_completed_new: out of memory for the timeout");
            weft_as_completed_free(ac);
            return NULL;
        }
    }
    return ac;
}

int weft_as_completed_next(weft_as_completed *ac, weft_task **out)
{
    weft_task *self = weft__current();
    if (out)
        *out = NULL;
    if (!self)
        return not_in_task("weft_as_completed_next");
    if (!ac)
        return weft__set_errmsg(-EINVAL, "weft_as_completed_next: the iterator is NULL (did "
                                         "weft_as_completed_new fail? weft_errmsg() said why)");
    if (ac->waiter)
        return weft__set_errmsg(WEFT_ESTATE, "weft_as_completed_next: %s is already waiting on this iterator; "
                                             "one task at a time may wait on it", weft_task_name(ac->waiter));
    for (;;) {
        if (ac->returned < ac->queued) {
            weft_task *t = ac->finished[ac->returned++];
            if (out)
                *out = t;
            return 1;
        }
        if (ac->timed_out)
            return weft__set_errmsg(-ETIMEDOUT, "as_completed: timed out after %g s with %zu of %zu tasks "
                                                "unfinished (none was cancelled)", ac->timeout, ac->late, ac->n);
        if (ac->unfinished == 0)
            return 0;
        ac->waiter = self;
        int rc = weft__wait(&ac_wait, ac);
        if (rc == AC_FREED)
            return weft__set_errmsg(WEFT_ESTATE, "weft_as_completed_next: the iterator was freed while %s "
                                                 "waited on it", weft_task_name(self));
        ac->waiter = NULL;
        if (rc == -ECANCELED)
            return weft__cancelled_errmsg(self);
        if (rc != 0)
            return rc;
    }
}

void weft_as_completed_free(weft_as_completed *ac)
{
    if (!ac)
        return;
    if (!weft__loop) {
        /* After weft_run returned: the tasks and the timer went with the loop. */
        free(ac);
        return;
    }
    ac_unhook_tasks(ac);
    if (ac->timer)
        weft__callback_cancel(weft__loop, ac->timer);
    weft_task *w = ac->waiter;
    if (w) {
        /* Freed under a task still waiting in next (from another task): that
         * call must return without touching the iterator again. */
        if (WEFT__STATE(w) == WEFT__WAITING)
            weft__wake(w, AC_FREED);
        else
            w->wake = AC_FREED;
    }
    free(ac);
}

/* ------------------------------------------------------------------------ */
/* weft_shield                                                              */
/* ------------------------------------------------------------------------ */

/* A shielded await: the caller watches the task instead of taking its waiter
 * slot, so leaving early leaves the handle exactly as it was. */
typedef struct shield_watch {
    weft__listener listener; /* first: the listener is the watch */
    weft_task *waiter;
    weft_task *task;
} shield_watch;

static void shield_task_done(weft__listener *l, weft_task *t)
{
    (void)t;
    shield_watch *w = (shield_watch *)l;
    if (WEFT__STATE(w->waiter) == WEFT__WAITING)
        weft__wake(w->waiter, 0);
}

static void shield_unwait(weft_task *self, int reason)
{
    (void)reason;
    shield_watch *w = self->wait_obj;
    weft__task_unlisten(w->task, &w->listener);
}

static void shield_describe(const weft_task *self, char *buf, size_t size)
{
    const shield_watch *w = self->wait_obj;
    weft__describe_task(w->task, buf, size);
}

static const weft__wait_kind shield_wait = {"shielded task", shield_unwait, shield_describe};

int weft_shield(weft_task *h, void **result)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (result)
        *result = NULL;
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_shield"));
    if (!self)
        return not_in_task("weft_shield");
    int rc = weft__task_check_claim(t, "weft_shield");
    if (rc != 0)
        return rc;
    /* A cancelled caller keeps the handle even when the task has finished:
     * -ECANCELED from weft_shield always means "the handle is still yours". */
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    if (WEFT__STATE(t) != WEFT__DONE) {
        shield_watch *w = weft__small_alloc(&L->small, sizeof *w);
        if (!w)
            return weft__set_errmsg(-ENOMEM, "weft_shield: out of memory");
        *w = (shield_watch){.listener = {.done = shield_task_done}, .waiter = self, .task = t};
        rc = weft__task_listen(t, &w->listener);
        if (rc == 0)
            rc = weft__wait(&shield_wait, w);
        else
            rc = weft__set_errmsg(-ENOMEM, "weft_shield: out of memory for watching %s", weft_task_name(t));
        if (rc != 0)
            weft__task_unlisten(t, &w->listener); /* woken, then cancelled before it ran */
        weft__small_free(&L->small, w, sizeof *w);
        if (rc == -ECANCELED)
            return weft__cancelled_errmsg(self);
        if (rc != 0)
            return rc;
    }
    return weft_await(t, result);
}

/* ------------------------------------------------------------------------ */
/* weft_task_wait                                                           */
/* ------------------------------------------------------------------------ */

/* A task in weft_task_wait. Told at the task's end, it keeps a copy of the
 * outcome: the handle's owner may take the outcome (and free the record) before
 * this waiter runs again. */
typedef struct task_watch {
    weft__listener listener; /* first: the listener is the watch */
    weft_task *waiter;
    weft_task *task;         /* NULL once it finished */
    int err;
    void *result;
    char *msg;
} task_watch;

static void task_watch_done(weft__listener *l, weft_task *t)
{
    task_watch *w = (task_watch *)l;
    w->task = NULL;
    w->err = t->err;
    w->result = t->err ? NULL : t->result;
    const char *msg = weft__task_errmsg(t);
    w->msg = t->err && *msg ? strdup(msg) : NULL; /* without memory: no message */
    if (WEFT__STATE(w->waiter) == WEFT__WAITING)
        weft__wake(w->waiter, 0);
}

/* The waiter leaves (cancelled, or its timeout expired): as asyncio's `await
 * task`, the task it waited for is cancelled too. */
static void task_watch_unwait(weft_task *self, int reason)
{
    (void)reason;
    task_watch *w = self->wait_obj;
    weft__task_unlisten(w->task, &w->listener);
    weft_cancel(w->task, self->extra ? self->extra->cancel_msg : NULL);
}

static void task_watch_describe(const weft_task *self, char *buf, size_t size)
{
    const task_watch *w = self->wait_obj;
    if (w->task)
        weft__describe_task(w->task, buf, size);
    else
        snprintf(buf, size, "a task that has finished");
}

static const weft__wait_kind task_watch_wait = {"task to finish", task_watch_unwait, task_watch_describe};

int weft_task_wait(weft_task *h, void **result)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (result)
        *result = NULL;
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_task_wait"));
    if (!self)
        return not_in_task("weft_task_wait");
    if (!t)
        return weft__set_errmsg(-EINVAL, "weft_task_wait: the task is NULL (did weft_spawn fail?)");
    if (t == self)
        return weft__set_errmsg(-EINVAL, "weft_task_wait: a task cannot wait for itself");
    if (WEFT__STATE(t) == WEFT__DONE && !self->cancelling)
        return weft_task_result(t, result);
    if (WEFT__STATE(t) == WEFT__DONE)
        return weft__cancelled_errmsg(self);
    task_watch *w = weft__small_alloc(&L->small, sizeof *w);
    if (!w)
        return weft__set_errmsg(-ENOMEM, "weft_task_wait: out of memory");
    *w = (task_watch){.listener = {.done = task_watch_done}, .waiter = self, .task = t};
    if (weft__task_listen(t, &w->listener) != 0) {
        weft__small_free(&L->small, w, sizeof *w);
        return weft__set_errmsg(-ENOMEM, "weft_task_wait: out of memory for watching %s", weft_task_name(t));
    }
    int rc = weft__wait(&task_watch_wait, w);
    int err = w->err;
    void *value = w->result;
    char *msg = w->msg;
    weft__small_free(&L->small, w, sizeof *w);
    if (rc != 0) {
        /* Cancelled; if the task had already finished (woken, then cancelled
         * before running) it is left as it is. */
        free(msg);
        return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
    }
    if (err == 0) {
        free(msg);
        if (result)
            *result = value;
        return 0;
    }
    if (msg)
        weft__take_errmsg(err, msg);
    else
        weft__set_errmsg(err, "the task waited for failed with %s", weft_errname(err));
    return err;
}

