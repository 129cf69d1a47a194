/*
 * timeout.c — deadlines: timeout scopes (asyncio.timeout / timeout_at) and
 * weft_wait_for (asyncio.wait_for).
 *
 * A scope is asyncio 3.12's Timeout. Its deadline is a loop callback that cancels
 * the owning task; leaving the scope takes that cancellation back and turns the
 * -ECANCELED it caused into -ETIMEDOUT, but only when no other cancellation arrived
 * meanwhile (the owner's cancel count is back to what it was at entry), so nested
 * scopes each convert only their own expiry and a cancellation from outside stays
 * -ECANCELED.
 *
 * Records shared with callbacks live on the heap: the owner may be a compact task,
 * whose stack moves while it waits.
 */
#include "core/core.h"

#include <math.h>
#include <stdio.h>

/* Deadlines and timeouts from here up mean "none" (WEFT_FOREVER and anything a
 * clock could never reach). */
#define NO_DEADLINE 1e18

/* ------------------------------------------------------------------------ */
/* Timeout scopes                                                           */
/* ------------------------------------------------------------------------ */

enum scope_state {
    SCOPE_ACTIVE = 1, /* entered, deadline not reached */
    SCOPE_EXPIRING,   /* the deadline cancelled the owner; exit has not run yet */
    SCOPE_EXPIRED,    /* exit is taking the cancellation back */
};

struct weft_timeout {
    /* First member: the scope is a listener on its owner, which tells it when the
     * owner finishes without having left it. The owner's listener list also keeps
     * its open scopes in the order they were entered, which lets exit check that
     * scopes are left innermost first without a field in the task record. */
    weft__listener listener;
    weft_task *owner;
    weft__callback *timer;        /* the pending deadline; NULL if none or it fired */
    double when;                  /* the deadline in loop seconds; WEFT_FOREVER = none */
    int64_t entered_ns;
    int64_t deadline_ns;          /* of the armed deadline, for the message */
    uint16_t cancelling_at_enter; /* the owner's cancel count when it entered */
    uint8_t state;
};

static void scope_free(weft_loop *L, weft_timeout *to)
{
    weft__small_free(&L->small, to, sizeof *to);
}

/* The deadline: interrupt the owner's current (or next) suspension point. */
static void scope_on_deadline(void *arg)
{
    weft_timeout *to = arg;
    to->timer = NULL; /* the record is already free and may be reused */
    to->state = SCOPE_EXPIRING;
    /* No message, as in asyncio: the -ECANCELED is internal to the scope, which
     * replaces it with its own at exit. */
    weft_cancel(to->owner, NULL);
}

/* The owner finished without leaving the scope: a bug in the caller. The scope
 * goes now, so that its deadline can never touch a freed task record. */
static void scope_owner_done(weft__listener *l, weft_task *owner)
{
    weft_timeout *to = (weft_timeout *)l;
    weft_loop *L = weft__loop;
    if (to->timer)
        weft__callback_cancel(L, to->timer);
    weft__report("weft: %s finished inside a timeout scope it never left; call weft_timeout_exit "
                 "before returning (the scope has been closed for it)", weft_task_name(owner));
    scope_free(L, to);
}

/* The innermost scope `owner` is in: the last scope listener it has. */
static weft_timeout *innermost_scope(const weft_task *owner)
{
    weft_timeout *inner = NULL;
    if (!owner->extra)
        return NULL;
    for (weft__listener *l = owner->extra->listeners; l; l = l->next) {
        if (l->done == scope_owner_done)
            inner = (weft_timeout *)l;
    }
    return inner;
}

/* Arms the deadline at loop time `when` (seconds), replacing any armed before.
 * A deadline already passed runs soon, as asyncio uses call_soon for it, so it
 * interrupts the owner's next suspension point. `when_ns` < 0: compute it from
 * `when`. Returns 0 or -ENOMEM (then nothing changed). */
static int scope_arm(weft_loop *L, weft_timeout *to, double when, int64_t when_ns)
{
    weft__callback *timer = NULL;
    if (when >= NO_DEADLINE) {
        when = WEFT_FOREVER;
    } else {
        if (when_ns < 0)
            when_ns = weft__seconds_to_ns(when);
        int64_t now = weft__now(L);
        timer = weft__callback_schedule(L, when_ns <= now ? WEFT__SOON : when_ns, scope_on_deadline, to);
        if (!timer)
            return -ENOMEM;
        to->deadline_ns = when_ns;
    }
    if (to->timer)
        weft__callback_cancel(L, to->timer);
    to->timer = timer;
    to->when = when;
    return 0;
}

/* Opens a scope owned by the current task with its deadline at `when` seconds of
 * loop time (`when_ns` ≥ 0: that instant exactly, in ns), entered at `entered_ns`
 * (< 0: now) — the clock reading the caller computed the deadline from, so that the
 * timeout's message says the span asked for, not that minus the time spent here.
 * The caller checked that it runs in a task and that `when` is a number. */
static weft_timeout *scope_enter(const char *what, double when, int64_t when_ns, int64_t entered_ns)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    weft_timeout *to = weft__small_alloc(&L->small, sizeof *to);
    if (!to) {
        weft__set_errmsg(-ENOMEM, "%s: out of memory for the scope", what);
        return NULL;
    }
    *to = (weft_timeout){
        .listener = {.done = scope_owner_done},
        .owner = self,
        .entered_ns = entered_ns >= 0 ? entered_ns : weft__now(L),
        .cancelling_at_enter = self->cancelling,
        .state = SCOPE_ACTIVE,
    };
    if (weft__task_listen(self, &to->listener) != 0) {
        scope_free(L, to);
        weft__set_errmsg(-ENOMEM, "%s: out of memory for the scope", what);
        return NULL;
    }
    if (scope_arm(L, to, when, when_ns) != 0) {
        weft__task_unlisten(self, &to->listener);
        scope_free(L, to);
        weft__set_errmsg(-ENOMEM, "%s: out of memory for the deadline's timer", what);
        return NULL;
    }
    return to;
}

/* The checks both ways of entering make; false with the message set. */
static bool can_enter(const char *what, double value, const char *value_name)
{
    if (!weft__current()) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                          "(start one with weft_run)", what);
        return false;
    }
    if (isnan(value)) {
        weft__set_errmsg(-EINVAL, "%s: the %s is NaN", what, value_name);
        return false;
    }
    return true;
}

weft_timeout *weft_timeout_enter(double delay)
{
    if (!can_enter("weft_timeout_enter", delay, "delay"))
        return NULL;
    if (delay >= NO_DEADLINE)
        return scope_enter("weft_timeout_enter", WEFT_FOREVER, -1, -1);
    /* From the loop's time in ns, exactly as weft_sleep computes its wake-up, so a
     * sleep as long as the timeout ends at the same instant as the deadline. */
    int64_t now = weft__now(weft__loop);
    return scope_enter("weft_timeout_enter", (double)now / 1e9 + delay, now + weft__seconds_to_ns(delay), now);
}

weft_timeout *weft_timeout_enter_at(double when)
{
    if (!can_enter("weft_timeout_enter_at", when, "deadline"))
        return NULL;
    return scope_enter("weft_timeout_enter_at", when, -1, -1);
}

int weft_timeout_reschedule(weft_timeout *to, double when)
{
    weft_loop *L = weft__loop;
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_timeout_reschedule needs a running weft loop");
    if (!to)
        return weft__set_errmsg(-EINVAL, "weft_timeout_reschedule: the scope is NULL "
                                         "(did weft_timeout_enter fail?)");
    if (isnan(when))
        return weft__set_errmsg(-EINVAL, "weft_timeout_reschedule: the deadline is NaN");
    if (to->state != SCOPE_ACTIVE)
        return weft__set_errmsg(WEFT_ESTATE, "weft_timeout_reschedule: the scope has already expired; "
                                             "its deadline can no longer be moved");
    if (scope_arm(L, to, when, -1) != 0)
        return weft__set_errmsg(-ENOMEM, "weft_timeout_reschedule: out of memory for the deadline's "
                                         "timer (the old deadline stays)");
    return 0;
}

double weft_timeout_when(const weft_timeout *to)
{
    return to ? to->when : NAN;
}

bool weft_timeout_expired(const weft_timeout *to)
{
    return to && to->state != SCOPE_ACTIVE;
}

int weft_timeout_exit(weft_timeout *to, int rc)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_timeout_exit must be called from the task that "
                                                 "entered the scope");
    if (!to)
        return weft__set_errmsg(-EINVAL, "weft_timeout_exit: the scope is NULL (did weft_timeout_enter "
                                         "fail? weft_errmsg() said why when it returned NULL)");
    if (to->owner != self)
        return weft__set_errmsg(WEFT_ESTATE, "weft_timeout_exit: the scope belongs to %s; only the task "
                                             "that entered a scope can leave it", weft_task_name(to->owner));
    if (innermost_scope(self) != to)
        return weft__set_errmsg(WEFT_ESTATE, "weft_timeout_exit: a scope entered inside this one is still "
                                             "open; leave scopes innermost first");
    if (to->timer)
        weft__callback_cancel(L, to->timer);
    weft__task_unlisten(self, &to->listener);
    int out = rc;
    if (to->state == SCOPE_EXPIRING) {
        to->state = SCOPE_EXPIRED;
        if (self->cancelling > 0)
            self->cancelling--; /* the owner's uncancel, as weft_uncancel does */
        if (self->cancelling <= to->cancelling_at_enter && rc == -ECANCELED) {
            /* No cancellation but ours is pending: the -ECANCELED was our doing. */
            int64_t span = to->deadline_ns > to->entered_ns ? to->deadline_ns - to->entered_ns : 0;
            out = weft__set_errmsg(-ETIMEDOUT, "timed out after %g s (the timeout scope's deadline passed)",
                                   (double)span / 1e9);
        }
    }
    scope_free(L, to);
    return out;
}

/* ------------------------------------------------------------------------ */
/* wait_for                                                                 */
/* ------------------------------------------------------------------------ */

/* What the waiting task shares with its deadline callback. */
typedef struct wait_for_state {
    weft_task *child;         /* NULL once the caller let it go */
    weft__callback *timer;    /* the pending deadline; NULL if none or it fired */
    bool timed_out;           /* the deadline cancelled the child */
} wait_for_state;

/* The deadline: cancel the child and keep waiting for its clean-up. */
static void wait_for_on_deadline(void *arg)
{
    wait_for_state *st = arg;
    st->timer = NULL;
    /* A child that finished already (its waiter not resumed yet) keeps its
     * outcome: there is nothing left to time out. */
    if (st->child && weft_cancel(st->child, NULL))
        st->timed_out = true;
}

/* The caller leaves early (it was cancelled): as weft_await, the child is
 * cancelled too and finishes on its own, its outcome dropped. The deadline goes
 * now, before the child may finish and its record be reused. */
static void wait_for_unwait(weft_task *self, int reason)
{
    wait_for_state *st = self->wait_obj;
    weft_task *child = st->child;
    (void)reason;
    if (st->timer) {
        weft__callback_cancel(weft__loop, st->timer);
        st->timer = NULL;
    }
    st->child = NULL;
    weft__task_let_go(child, true, self->extra ? self->extra->cancel_msg : NULL);
}

/* weft_dump: the task waited for and the deadline. */
static void wait_for_describe(const weft_task *self, char *buf, size_t size)
{
    const wait_for_state *st = self->wait_obj;
    char who[112] = "a task let go", when[96] = "passed";
    if (st->child)
        weft__describe_task(st->child, who, sizeof who);
    if (st->timer)
        weft__describe_timer(weft__loop, &st->timer->node, when, sizeof when);
    snprintf(buf, size, "%s; deadline %s%s", who, when, st->timed_out ? " (timed out: its cancellation is waited for)" : "");
}

static const weft__wait_kind wait_for_wait = {"wait_for", wait_for_unwait, wait_for_describe};

int weft_wait_for(weft_task *h, double timeout, void **result)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (result)
        *result = NULL;
    WEFT__TASK_ARG(t, h, return weft__stale_handle("weft_wait_for"));
    if (!self)
        return weft_await(t, result); /* it says why, and detaches t */
    int rc = weft__task_check_claim(t, "weft_wait_for");
    if (rc != 0)
        return rc;
    if (isnan(timeout)) {
        weft_detach(t); /* the handle is consumed in every case */
        return weft__set_errmsg(-EINVAL, "weft_wait_for: the timeout is NaN (the task was detached and "
                                         "runs on)");
    }
    if (timeout >= NO_DEADLINE || WEFT__STATE(t) == WEFT__DONE)
        return weft_await(t, result);

    wait_for_state *st = weft__small_alloc(&L->small, sizeof *st);
    if (!st) {
        weft_detach(t);
        return weft__set_errmsg(-ENOMEM, "weft_wait_for: out of memory (the task was detached and runs on)");
    }
    *st = (wait_for_state){.child = t};
    if (timeout > 0) {
        st->timer = weft__callback_schedule(L, weft__now(L) + weft__seconds_to_ns(timeout),
                                            wait_for_on_deadline, st);
        if (!st->timer) {
            weft__small_free(&L->small, st, sizeof *st);
            weft_detach(t);
            return weft__set_errmsg(-ENOMEM, "weft_wait_for: out of memory for the timer (the task was "
                                             "detached and runs on)");
        }
    } else if (!self->cancelling) {
        /* asyncio 3.12: no time at all is an immediate timeout, whose
         * cancellation is still waited for. (A cancelled caller leaves at once
         * below, cancelling the task on its way out.) */
        weft_cancel(t, NULL);
        st->timed_out = true;
    }
    weft__task_claim_wake(t, self);
    rc = weft__wait(&wait_for_wait, st);
    if (st->timer)
        weft__callback_cancel(L, st->timer);
    bool timed_out = st->timed_out;
    bool let_go = st->child == NULL; /* then t may already be freed */
    weft__small_free(&L->small, st, sizeof *st);

    if (rc != 0) {
        if (!let_go && WEFT__STATE(t) == WEFT__DONE) {
            /* It finished, then we were cancelled before we could run: its
             * outcome is dropped, as weft_await drops it. */
            weft__task_drop(L, t);
        }
        return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
    }
    weft__task_unclaim(t); /* done: weft_await takes its outcome at once */
    if (!timed_out)
        return weft_await(t, result);
    char name[64];
    snprintf(name, sizeof name, "%s", weft_task_name(t));
    rc = weft_await(t, result);
    if (rc != -ECANCELED)
        return rc; /* it swallowed the cancellation and ended its own way */
    return weft__set_errmsg(-ETIMEDOUT, "weft_wait_for: timed out after %g s waiting for %s",
                            timeout > 0 ? timeout : 0.0, name);
}
