/*
 * group.c — TaskGroup (asyncio.TaskGroup): a task opens a group, spawns children
 * into it and leaves it with weft_group_wait, which waits for every child. The
 * first child failure cancels the other children and the body; every error is
 * collected, in the order it happened, into one error group.
 *
 * The rules follow CPython's Lib/asyncio/taskgroups.py: _abort, _on_task_done,
 * _aexit and create_task have their counterparts here under the same ideas
 * (aborting, parent_cancel_requested, exiting, propagate_cancel).
 */
#include "core/core.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* One child of a group: the group's claim on the child's outcome (the scheduler
 * tells it when the child finishes), kept until weft_group_free so that the
 * child's outcome stays readable. */
typedef struct group_child {
    weft__claim claim;                /* first: the claim is the record */
    weft_group *group;
    weft_task *task;
    struct group_child *next;         /* spawn order */
    struct group_child *next_failed;  /* completion order of the failures */
} group_child;

/*
 * The group lives on the heap, never on the owner's stack: children finish, and
 * the group's listeners run, while the owner is suspended, and a compact owner's
 * stack is elsewhere then.
 */
struct weft_group {
    weft_loop *loop;
    weft_task *owner;                 /* NULL once it returned without leaving the group */
    weft__listener owner_gone;        /* tells the group if the owner returns first */
    group_child *children, *last_child;
    group_child *failed, *last_failed;
    size_t nfailed;
    size_t pending;                   /* children not finished */
    bool exiting;                     /* weft_group_wait has been called */
    bool left;                        /* weft_group_wait has returned */
    bool aborting;                    /* children were cancelled: no new child may join */
    bool parent_cancel_requested;     /* the group cancelled its owner and must take it back */
    bool owner_waiting;               /* the owner sleeps in weft_group_wait until pending == 0 */
};

#define GROUP_OF_OWNER_LISTENER(l) ((weft_group *)((char *)(l) - offsetof(weft_group, owner_gone)))

static const char *owner_name(const weft_group *g)
{
    return g->owner ? weft_task_name(g->owner) : "a task that has returned";
}

/* Cancels every unfinished child (asyncio's _abort). From then on nothing may join. */
static void group_abort(weft_group *g)
{
    g->aborting = true;
    for (group_child *c = g->children; c; c = c->next)
        if (WEFT__STATE(c->task) != WEFT__DONE)
            weft_cancel(c->task, NULL);
}

/* A child has finished (asyncio's _on_task_done); called from the loop. */
static void child_done(weft__claim *claim, weft_task *child)
{
    group_child *c = (group_child *)claim;
    weft_group *g = c->group;
    g->pending--;
    if (g->pending == 0 && g->owner_waiting) {
        g->owner_waiting = false;
        weft__wake(g->owner, 0);
    }
    if (child->err == 0 || child->err == -ECANCELED)
        return;

    /* The group answers for this error: the loop's end must not report it again
     * if the group is never freed. */
    WEFT__FLAGS(child) |= WEFT__QUIET;
    if (!g->owner) {
        weft__task_report_unretrieved(child, "its weft_group's task returned without leaving the group");
        return;
    }
    c->next_failed = NULL;
    if (g->last_failed)
        g->last_failed->next_failed = c;
    else
        g->failed = c;
    g->last_failed = c;
    g->nfailed++;

    if (!g->aborting && !g->parent_cancel_requested) {
        /* Interrupt whatever the body is doing now, once; weft_group_wait takes
         * this cancellation back so the owner is not left cancelled. */
        group_abort(g);
        g->parent_cancel_requested = true;
        weft_cancel(g->owner, NULL);
    }
}

/* The owner returned without calling weft_group_wait: its children run on alone. */
static void owner_finished(weft__listener *l, weft_task *owner)
{
    weft_group *g = GROUP_OF_OWNER_LISTENER(l);
    weft__report("weft: %s returned without leaving its weft_group (weft_group_wait was not called); "
                 "%zu unfinished child%s run%s on unsupervised", weft_task_name(owner), g->pending,
                 g->pending == 1 ? "" : "ren", g->pending == 1 ? "s" : "");
    g->owner = NULL;
}

weft_group *weft_group_new(void)
{
    weft_task *self = weft__current();
    if (!self) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "weft_group_new must be called from a task of a running weft loop "
                                          "(start one with weft_run)");
        return NULL;
    }
    weft_group *g = calloc(1, sizeof *g);
    if (g) {
        g->owner_gone.done = owner_finished;
        if (weft__task_listen(self, &g->owner_gone) != 0) {
            free(g);
            g = NULL;
        }
    }
    if (!g) {
        weft__set_errmsg(-ENOMEM, "weft_group_new: out of memory");
        return NULL;
    }
    g->loop = weft__loop;
    g->owner = self;
    return g;
}

weft_task *weft_group_spawn_opts(weft_group *g, weft_fn fn, void *arg, const weft_spawn_options *opts)
{
    weft_loop *L = weft__loop;
    if (!g) {
        weft__set_errmsg(-EINVAL, "weft_group_spawn: the group is NULL (did weft_group_new fail? "
                                  "weft_errmsg() said why when it returned NULL)");
        return NULL;
    }
    if (L != g->loop) {
        weft__set_errmsg(WEFT_ESTATE, "weft_group_spawn: the group belongs to another loop; spawn into it "
                                      "from a task or callback of the loop that opened it");
        return NULL;
    }
    if (g->exiting && g->pending == 0) {
        weft__set_errmsg(WEFT_ESTATE, "weft_group_spawn: the weft_group of %s is finished (every child ended "
                                      "after weft_group_wait was called); open a new group", owner_name(g));
        return NULL;
    }
    if (g->aborting) {
        if (g->failed)
            weft__set_errmsg(WEFT_ESTATE, "weft_group_spawn: the weft_group of %s is shutting down because %s "
                                          "failed; no new task can join it", owner_name(g),
                             weft_task_name(g->failed->task));
        else
            weft__set_errmsg(WEFT_ESTATE, "weft_group_spawn: the weft_group of %s is shutting down (its body "
                                          "failed or its task was cancelled); no new task can join it",
                             owner_name(g));
        return NULL;
    }
    if (!g->owner) {
        weft__set_errmsg(WEFT_ESTATE, "weft_group_spawn: the task that opened the group returned without "
                                      "leaving it (weft_group_wait), so nothing would wait for a new child");
        return NULL;
    }
    group_child *c = weft__small_alloc(&L->small, sizeof *c);
    if (!c) {
        weft__set_errmsg(-ENOMEM, "weft_group_spawn: out of memory");
        return NULL;
    }
    weft_task *t = weft__spawn(fn, arg, opts);
    if (!t) {
        weft__small_free(&L->small, c, sizeof *c); /* weft_spawn_opts said why */
        return NULL;
    }
    *c = (group_child){.claim = {child_done}, .group = g, .task = t};
    weft__task_claim(t, &c->claim);
    WEFT__FLAGS(t) |= WEFT__GROUP_CHILD;
    if (g->last_child)
        g->last_child->next = c;
    else
        g->children = c;
    g->last_child = c;
    g->pending++;
    return weft__handle(t);
}

weft_task *weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    return weft_group_spawn_opts(g, fn, arg, NULL);
}

/* The owner is woken for another reason (cancelled) while it waits for children. */
static void group_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_group *g = self->wait_obj;
    g->owner_waiting = false;
}

/* weft_dump: how many children are left, and the first of them. */
static void group_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_group *g = self->wait_obj;
    char first[128] = "";
    for (const group_child *c = g->children; c; c = c->next) {
        if (WEFT__STATE(c->task) != WEFT__DONE) {
            char who[112];
            weft__describe_task(c->task, who, sizeof who);
            snprintf(first, sizeof first, ", the first %s", who);
            break;
        }
    }
    snprintf(buf, size, "group %p: %zu children unfinished%s%s", (const void *)g, g->pending, first,
             g->aborting ? "; aborting (children cancelled)" : "");
}

static const weft__wait_kind group_wait = {"task group's children", group_unwait, group_describe};

/*
 * Suspends the owner until the last child finishes or someone cancels it, and
 * returns the wake reason (0 or -ECANCELED).
 *
 * asyncio's __aexit__ loops on `await self._on_completed_fut`, catching each
 * CancelledError, until no child is left: a cancellation interrupts one await,
 * not the whole wait. weft's cancellation is level-triggered instead: while the
 * owner's `cancelling` count is above 0, weft__wait returns -ECANCELED at once
 * without suspending, and a loop around it would spin. So for the time of one
 * wait the owner's count is set aside and the owner waits with a count of 0:
 * cancellations made meanwhile (weft_cancel increments the count, calls our
 * unwait and wakes the owner) show up as a -ECANCELED wake, exactly one per
 * interruption, like asyncio's edge-triggered delivery. Afterwards the count is
 * the one set aside plus those new requests, so no request is lost or invented
 * and the owner stays cancelled as before once weft_group_wait returns. Nothing
 * else reads a waiting task's count: only the task itself can weft_uncancel.
 */
static int wait_for_children(weft_group *g, weft_task *self)
{
    g->owner_waiting = true;
    return weft__wait_through_cancel(self, &group_wait, g);
}

/* Builds the error group of the failures (completion order), then the body's
 * error, hands it to the owner and returns WEFT_EGROUP (-ENOMEM if it cannot be
 * built). Takes ownership of body_msg and body_group. */
static int raise_errgroup(weft_group *g, weft_task *self, int body_rc, char *body_msg,
                          weft_error_group *body_group)
{
    size_t count = g->nfailed + (body_rc ? 1 : 0);
    weft_error_item *items = malloc(count * sizeof *items);
    if (!items) {
        weft__errgroup_free(body_group);
        free(body_msg);
        const weft_task *first = g->failed ? g->failed->task : self;
        return weft__set_errmsg(-ENOMEM, "weft_group_wait: out of memory for the error group of %zu errors "
                                         "(the first from %s: %s)", count, weft_task_name(first),
                                weft_errname(g->failed ? first->err : body_rc));
    }
    size_t i = 0;
    for (group_child *c = g->failed; c; c = c->next_failed, i++) {
        weft_task *t = c->task;
        weft_error_group *nested = NULL;
        if (t->err == WEFT_EGROUP && t->extra) {
            /* The child's own group stays whole, nested under its item; a copy,
             * so weft_task_result on the child still gives it to weft_errgroup(). */
            nested = weft__errgroup_copy(t->extra->group);
        }
        items[i] = (weft_error_item){.code = t->err, .msg = weft__task_errmsg(t), .task = weft_task_name(t),
                                     .nested = nested};
    }
    if (body_rc)
        items[i] = (weft_error_item){.code = body_rc, .msg = body_msg ? body_msg : "",
                                     .task = weft_task_name(self), .nested = body_group};
    weft_error_group *eg = weft__errgroup_new(items, count);
    free(items);
    free(body_msg);
    if (!eg)
        return weft__set_errmsg(-ENOMEM, "weft_group_wait: out of memory for the error group of %zu errors",
                                count);
    const weft_error_item *first = &eg->items[0];
    weft__set_errmsg(WEFT_EGROUP, "unhandled errors in the weft_group of %s (%zu sub-error%s); the first: "
                                  "%s failed with %s%s%s", weft_task_name(self), count, count == 1 ? "" : "s",
                     first->task, weft_errname(first->code), first->msg[0] ? ": " : "", first->msg);
    weft__take_errgroup(eg);
    return WEFT_EGROUP;
}

int weft_group_wait(weft_group *g, int body_rc)
{
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_group_wait must be called from the task that opened "
                                                 "the group");
    if (!g)
        return weft__set_errmsg(-EINVAL, "weft_group_wait: the group is NULL (did weft_group_new fail?)");
    if (g->exiting)
        return weft__set_errmsg(WEFT_ESTATE, "weft_group_wait: the group has already been left (call "
                                             "weft_group_wait once per group)");
    if (g->owner != self)
        return weft__set_errmsg(WEFT_ESTATE, "weft_group_wait: called from %s, but the group belongs to %s, "
                                             "which must leave it itself", weft_task_name(self), owner_name(g));
    g->exiting = true;

    if (body_rc > 0)
        body_rc = -body_rc;
    /* asyncio's `et`: the body ended with a cancellation, or with an error. */
    bool body_cancelled = body_rc == -ECANCELED;
    int body_err = body_cancelled ? 0 : body_rc;
    char *body_msg = NULL;
    weft_error_group *body_group = NULL;
    if (body_err && self->extra) {
        /* The message (and group) the body received with its error: taken now,
         * before anything else can replace them. */
        body_msg = self->extra->es.msg;
        self->extra->es.msg = NULL;
        if (body_err == WEFT_EGROUP) {
            body_group = self->extra->group;
            self->extra->group = NULL;
        }
    }

    bool propagate_cancel = body_cancelled;
    if (body_rc && !g->aborting)
        group_abort(g);

    /* A cancellation the owner has not seen yet (requested while it ran) is, in
     * asyncio, raised by the first await of __aexit__; level-triggered here, it
     * is still pending on entry. */
    bool pending_cancel = false;
    if (g->pending > 0 && self->cancelling > 0) {
        pending_cancel = true;
        if (!g->aborting) {
            propagate_cancel = true;
            group_abort(g);
        }
    }
    while (g->pending > 0) {
        if (wait_for_children(g, self) != 0) {
            pending_cancel = true;
            if (!g->aborting) {
                /* The owner is cancelled from outside while it waits: the
                 * children are cancelled, and still waited for. */
                propagate_cancel = true;
                group_abort(g);
            }
        }
    }
    weft__task_unlisten(self, &g->owner_gone);
    g->left = true;

    if (g->parent_cancel_requested) {
        /* The group's own cancellation of the owner is taken back. Only if no
         * other request remains is the cancellation not passed on. */
        if (weft_uncancel() == 0)
            propagate_cancel = false;
        else if (!propagate_cancel)
            propagate_cancel = pending_cancel;
    }
    /* Errors have priority over the cancellation. */
    if (propagate_cancel && g->nfailed == 0) {
        weft__errgroup_free(body_group);
        free(body_msg);
        return weft__cancelled_errmsg(self);
    }
    if (g->nfailed == 0 && body_err == 0)
        return 0;
    return raise_errgroup(g, self, body_err, body_msg, body_group);
}

void weft_group_free(weft_group *g)
{
    if (!g)
        return;
    weft_loop *L = weft__loop;
    if (L != g->loop) {
        weft__report("weft: weft_group_free ignored: call it on the loop that ran the group, before weft_run "
                     "returns (the children's records belong to that loop)");
        return;
    }
    if (!g->left) {
        weft__report("weft: weft_group_free ignored: the weft_group of %s has not been left; call "
                     "weft_group_wait(g, rc) first (the group and its children stay allocated)", owner_name(g));
        return;
    }
    group_child *c = g->children;
    while (c) {
        group_child *next = c->next;
        weft__task_drop(L, c->task);
        weft__small_free(&L->small, c, sizeof *c);
        c = next;
    }
    free(g);
}
