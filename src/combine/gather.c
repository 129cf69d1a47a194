/*
 * gather.c — weft_gather: wait for many tasks, outcomes in argument order, either
 * failing fast at the first error by completion time or collecting every error.
 */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gather {
    weft__claim claim;      /* first: the gather claims each child's outcome */
    weft_task *waiter;
    weft_task **tasks;
    size_t n;
    size_t remaining;       /* children not finished yet */
    weft_task *failed;      /* the first to fail (fail-fast mode) */
    unsigned flags;
} gather;

static void child_done(weft__claim *claim, weft_task *child)
{
    gather *g = (gather *)claim;
    g->remaining--;
    int wake = g->remaining == 0;
    if (child->err && !(g->flags & WEFT_RETURN_EXCEPTIONS) && !g->failed) {
        g->failed = child;
        wake = 1;
    }
    if (wake && WEFT__STATE(g->waiter) == WEFT__WAITING)
        weft__wake(g->waiter, 0);
}

static int is_ours(const gather *g, const weft_task *t)
{
    return weft__task_claimed_by(t, &g->claim);
}

/* The gathering task leaves early (cancelled): unfinished children are cancelled
 * at once, as asyncio cancels a gather's children. A child let go may finish and
 * be freed before the gatherer runs again, so only children still linked to this
 * gather are touched afterwards. */
static void cancel_children(gather *g)
{
    for (size_t i = 0; i < g->n; i++) {
        weft_task *t = g->tasks[i];
        if (is_ours(g, t) && WEFT__STATE(t) != WEFT__DONE)
            weft__task_let_go(t, true, NULL);
    }
}

static void gather_unwait(weft_task *self, int reason)
{
    (void)reason;
    cancel_children(self->wait_obj);
}

/* weft_dump: how many children are left, and the first of them. */
static void gather_describe(const weft_task *self, char *buf, size_t size)
{
    const gather *g = self->wait_obj;
    char first[128] = "";
    for (size_t i = 0; i < g->n; i++) {
        const weft_task *t = g->tasks[i];
        if (is_ours(g, t) && WEFT__STATE(t) != WEFT__DONE) {
            char who[112];
            weft__describe_task(t, who, sizeof who);
            snprintf(first, sizeof first, ", the first %s", who);
            break;
        }
    }
    snprintf(buf, size, "%zu of %zu tasks unfinished%s", g->remaining, g->n, first);
}

static const weft__wait_kind gather_wait_kind = {"gather", gather_unwait, gather_describe};

/* While the arguments are checked, each task is claimed by this marker, so that a
 * task given twice is found; the gather's own state claims them afterwards. */
static void marking_done(weft__claim *c, weft_task *t)
{
    (void)c;
    (void)t; /* never called: nothing runs while the arguments are checked */
}

static weft__claim marking = {marking_done};

/* Gives up handles after bad arguments, so that nothing leaks: the tasks run on
 * alone, and their errors are still reported since nobody else can see them. */
static void give_up(weft_task **tasks, size_t n, size_t marked, weft_task *self)
{
    for (size_t j = 0; j < marked; j++)
        weft__task_unclaim(tasks[j]);
    for (size_t j = 0; j < n; j++) {
        weft_task *u = tasks[j];
        if (u && u != self && WEFT__STATE(u) != WEFT__FREE && WEFT__WAITER_KIND(u) == WEFT__WAITER_NONE &&
            !(WEFT__FLAGS(u) & (WEFT__DETACHED | WEFT__GROUP_CHILD)))
            weft_detach(u);
    }
}

static int gather_wait(weft_loop *L, weft_task *self, gather *g, void **results, int *errs, char **msgs);

int weft_gather_msgs(weft_task **tasks, size_t n, void **results, int *errs, char **msgs, unsigned flags)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    for (size_t i = 0; i < n; i++) {
        if (results)
            results[i] = NULL;
        if (errs)
            errs[i] = 0;
        if (msgs)
            msgs[i] = NULL;
    }
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_gather must be called from a task of a running "
                                                 "weft loop (start one with weft_run)");
    if (n > 0 && !tasks)
        return weft__set_errmsg(-EINVAL, "weft_gather: tasks is NULL but n is %zu", n);

    /* The records the handles name, in a list beside the gather's state. The
     * children point at that state while the caller waits, so a compact caller
     * (whose stack moves) keeps both on the heap; so does a long list. */
    gather local, *gp = &local;
    weft_task *few[16];
    weft_task **list = few;
    if ((WEFT__FLAGS(self) & WEFT__COMPACT) || n > 16) {
        gp = malloc(sizeof *gp + n * sizeof *list);
        if (!gp) {
            for (size_t i = 0; i < n; i++)
                weft_detach(tasks[i]);
            return weft__set_errmsg(-ENOMEM, "weft_gather: out of memory");
        }
        list = (weft_task **)(gp + 1);
    }
    size_t stale_at = n;
    for (size_t i = 0; i < n; i++) {
        bool stale;
        list[i] = weft__task_from(tasks[i], &stale);
        if (stale && stale_at == n)
            stale_at = i;
    }
    int rc = 0;
    size_t marked = 0;
    for (; marked < n; marked++) {
        char what[48];
        if (marked == stale_at) {
            snprintf(what, sizeof what, "weft_gather: task %zu", marked);
            rc = weft__stale_handle(what);
            break;
        }
        if (!weft__task_claimable(list[marked])) {
            snprintf(what, sizeof what, "weft_gather: task %zu", marked);
            rc = weft__task_claim_refused(list[marked], what);
            break;
        }
        weft__task_claim(list[marked], &marking);
    }
    if (rc != 0) {
        give_up(list, n, marked, self);
        if (gp != &local)
            free(gp);
        return rc;
    }
    gather g_init = {.claim = {child_done}, .waiter = self, .tasks = list, .n = n, .flags = flags};
    *gp = g_init;
    int result = gather_wait(L, self, gp, results, errs, msgs);
    if (gp != &local)
        free(gp);
    return result;
}

static int gather_wait(weft_loop *L, weft_task *self, gather *g, void **results, int *errs, char **msgs)
{
    weft_task **tasks = g->tasks;
    size_t n = g->n;
    unsigned flags = g->flags;
    for (size_t i = 0; i < n; i++) {
        weft_task *t = tasks[i];
        weft__task_unclaim(t); /* from the marker to the gather */
        weft__task_claim(t, &g->claim);
        if (WEFT__STATE(t) != WEFT__DONE)
            g->remaining++;
        else if (t->err && !(flags & WEFT_RETURN_EXCEPTIONS) && !g->failed)
            g->failed = t;
    }

    int rc = 0;
    while (g->remaining > 0 && !g->failed) {
        rc = weft__wait(&gather_wait_kind, g);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        /* Woken normally, then cancelled before running: children still linked. */
        cancel_children(g);
        for (size_t i = 0; i < n; i++)
            if (is_ours(g, tasks[i]))
                weft__task_drop(L, tasks[i]);
        return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
    }

    int result = 0;
    for (size_t i = 0; i < n; i++) {
        weft_task *t = tasks[i];
        if (WEFT__STATE(t) != WEFT__DONE) {
            weft__task_let_go(t, false, NULL);
            if (errs)
                errs[i] = -EINPROGRESS;
            continue;
        }
        if (results) {
            results[i] = t->err ? NULL : t->result;
            t->result = NULL; /* taken: not the drop function's */
        }
        if (errs)
            errs[i] = t->err;
        char *msg = t->err && t->extra ? t->extra->es.msg : NULL;
        if (t == g->failed) {
            result = t->err;
            weft__take_errmsg(t->err, msg ? strdup(msg) : NULL);
        }
        if (msgs && msg) {
            msgs[i] = msg; /* handed over: the record is freed below */
            t->extra->es.msg = NULL;
        }
        weft__task_drop(L, t);
    }
    return result;
}

int weft_gather(weft_task **tasks, size_t n, void **results, int *errs, unsigned flags)
{
    return weft_gather_msgs(tasks, n, results, errs, NULL, flags);
}
