/*
 * future.c — futures (asyncio.Future): a value that will exist later, awaited by
 * any number of tasks, with done callbacks run from the loop.
 *
 * Waiting tasks are chained through their node.next (free while a task waits),
 * in the order they started waiting; that is also the order they are woken.
 * Done callbacks reserve their callback record when they are added, so completing
 * a future cannot fail half-way.
 */
#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PENDING = 0, HAS_RESULT, HAS_ERROR, CANCELLED };

typedef struct future_callback {
    struct future_callback *next;
    weft_future *future;
    weft_future_done_fn cb;
    void *arg;
    weft__callback *post;
} future_callback;

struct weft_future {
    weft_loop *loop;
    int state;
    int err;
    void *result;
    char *msg;
    weft__fifo waiters;         /* tasks suspended in weft_future_await */
    size_t awaiting;             /* tasks inside weft_future_await, woken or not */
    size_t scheduled;            /* done callbacks posted and not yet run */
    future_callback *callbacks;  /* registered, not posted yet */
};

static int not_in_loop(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a running weft loop", what);
}

/* A future belongs to the loop that made it: its awaiters and callbacks are that
 * loop's, and nothing in it is locked. A call from another thread or loop is
 * refused rather than waking tasks on the wrong loop. */
static int future_loop_check(const weft_future *f, const char *what)
{
    if (WEFT__LIKELY(f->loop == weft__loop))
        return 0;
    if (!weft__loop)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a task or callback of the loop that made the future "
                                                 "(from another thread: post the call to that loop with "
                                                 "weft_call_soon_threadsafe)", what);
    return weft__set_errmsg(WEFT_ESTATE, "%s: the future belongs to another thread's loop; call it there "
                                         "through weft_call_soon_threadsafe", what);
}

weft_future *weft_future_new(void)
{
    weft_loop *L = weft__loop;
    if (!L) {
        not_in_loop("weft_future_new");
        return NULL;
    }
    weft_future *f = calloc(1, sizeof *f);
    if (!f) {
        weft__set_errmsg(-ENOMEM, "weft_future_new: out of memory");
        return NULL;
    }
    f->loop = L;
    return f;
}

static void callback_run(void *arg)
{
    future_callback *c = arg;
    weft_future *f = c->future;
    weft_future_done_fn cb = c->cb;
    void *cb_arg = c->arg;
    free(c);
    f->scheduled--;
    cb(f, cb_arg);
}

/* The future has just become done: wake its waiters, post its callbacks. */
static void complete(weft_future *f)
{
    weft_loop *L = f->loop;
    weft__node *n;
    while ((n = weft__fifo_pop(&f->waiters)) != NULL)
        weft__wake((weft_task *)n, 0);
    future_callback *c = f->callbacks;
    f->callbacks = NULL;
    while (c) {
        future_callback *next = c->next;
        f->scheduled++;
        weft__callback_post(L, c->post, callback_run, c);
        c = next;
    }
}

static int already_done(const char *what)
{
    return weft__set_errmsg(WEFT_ESTATE, "%s: the future is already done", what);
}

/* The checks before completing a future: it exists, it is this loop's, it is
 * still pending. Returns 0 or the error, with its message. */
static int completable(const weft_future *f, const char *what)
{
    if (!f)
        return weft__set_errmsg(-EINVAL, "%s: the future is NULL", what);
    int bad = future_loop_check(f, what);
    if (bad)
        return bad;
    return f->state == PENDING ? 0 : already_done(what);
}

int weft_future_set_result(weft_future *f, void *result)
{
    int bad = completable(f, "weft_future_set_result");
    if (bad)
        return bad;
    f->state = HAS_RESULT;
    f->result = result;
    complete(f);
    return 0;
}

int weft_future_set_error(weft_future *f, int code, const char *fmt, ...)
{
    int bad = completable(f, "weft_future_set_error");
    if (bad)
        return bad;
    if (code > 0)
        code = -code;
    if (code == 0)
        code = -EINVAL;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
            msg = NULL;
        va_end(ap);
    }
    f->state = code == -ECANCELED ? CANCELLED : HAS_ERROR;
    f->err = code;
    f->msg = msg;
    complete(f);
    return 0;
}

bool weft_future_cancel(weft_future *f, const char *msg)
{
    if (!f || f->state != PENDING || future_loop_check(f, "weft_future_cancel") != 0)
        return false;
    f->state = CANCELLED;
    f->err = -ECANCELED;
    f->msg = strdup(msg ? msg : "the future was cancelled");
    complete(f);
    return true;
}

bool weft_future_done(const weft_future *f)
{
    return f && f->state != PENDING;
}

bool weft_future_cancelled(const weft_future *f)
{
    return f && f->state == CANCELLED;
}

int weft_future_result(const weft_future *f, void **result)
{
    if (result)
        *result = NULL;
    if (!f)
        return weft__set_errmsg(-EINVAL, "weft_future_result: the future is NULL");
    switch (f->state) {
    case PENDING:
        return weft__set_errmsg(-EINPROGRESS, "weft_future_result: the future is still pending");
    case HAS_RESULT:
        if (result)
            *result = f->result;
        return 0;
    default:
        return weft__set_errmsg(f->err, "%s", f->msg ? f->msg : weft_strerror(f->err));
    }
}

/* The awaiting task leaves early (cancelled, or a timeout scope expired): as in
 * asyncio, the cancellation goes on to the future. */
static void await_unwait(weft_task *self, int reason)
{
    weft_future *f = self->wait_obj;
    /* Unlink self from the waiters. */
    weft__node **p = &f->waiters.head, *prev = NULL;
    while (*p && *p != &self->node) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p) {
        *p = self->node.next;
        if (f->waiters.tail == &self->node)
            f->waiters.tail = prev;
        f->waiters.count--;
    }
    if (reason == -ECANCELED) {
        const char *msg = self->extra ? self->extra->cancel_msg : NULL;
        weft_future_cancel(f, msg);
    }
}

static void future_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_future *f = self->wait_obj;
    snprintf(buf, size, "%p, pending; %zu awaiting", (const void *)f, f->waiters.count);
}

static const weft__wait_kind future_wait = {"future", await_unwait, future_describe};

int weft_future_await(weft_future *f, void **result)
{
    weft_task *self = weft__current();
    if (result)
        *result = NULL;
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_future_await must be called from a task of a "
                                                 "running weft loop");
    if (!f)
        return weft__set_errmsg(-EINVAL, "weft_future_await: the future is NULL");
    int bad = future_loop_check(f, "weft_future_await");
    if (bad)
        return bad;
    if (f->state == PENDING) {
        f->awaiting++;
        weft__fifo_push(&f->waiters, &self->node);
        int rc = weft__wait(&future_wait, f);
        f->awaiting--;
        if (rc == -ECANCELED && f->state != CANCELLED)
            return weft__cancelled_errmsg(self);
        if (rc != 0 && rc != -ECANCELED)
            return rc;
    }
    if (f->state == CANCELLED && self->cancelling)
        return weft__cancelled_errmsg(self);
    return weft_future_result(f, result);
}

int weft_future_add_done_callback(weft_future *f, weft_future_done_fn cb, void *arg)
{
    if (!f || !cb)
        return weft__set_errmsg(-EINVAL, "weft_future_add_done_callback: the %s is NULL",
                                f ? "callback" : "future");
    int bad = future_loop_check(f, "weft_future_add_done_callback");
    if (bad)
        return bad;
    future_callback *c = malloc(sizeof *c);
    weft__callback *post = c ? weft__callback_reserve(f->loop) : NULL;
    if (!post) {
        free(c);
        return weft__set_errmsg(-ENOMEM, "weft_future_add_done_callback: out of memory");
    }
    *c = (future_callback){.future = f, .cb = cb, .arg = arg, .post = post};
    if (f->state != PENDING) {
        f->scheduled++;
        weft__callback_post(f->loop, post, callback_run, c);
        return 0;
    }
    future_callback **p = &f->callbacks;
    while (*p)
        p = &(*p)->next;
    *p = c;
    return 0;
}

size_t weft_future_remove_done_callback(weft_future *f, weft_future_done_fn cb, void *arg)
{
    if (!f)
        return 0;
    size_t removed = 0;
    future_callback **p = &f->callbacks;
    while (*p) {
        future_callback *c = *p;
        if (c->cb == cb && c->arg == arg) {
            *p = c->next;
            weft__callback_release(f->loop, c->post);
            free(c);
            removed++;
        } else {
            p = &c->next;
        }
    }
    return removed;
}

int weft_future_free(weft_future *f)
{
    if (!f)
        return 0;
    if (f->awaiting || f->scheduled)
        return weft__set_errmsg(-EBUSY, "weft_future_free: %zu task(s) still await the future and %zu done "
                                        "callback(s) of it have not run yet; free it after them",
                                f->awaiting, f->scheduled);
    while (f->callbacks) {
        future_callback *c = f->callbacks;
        f->callbacks = c->next;
        if (weft__loop == f->loop)
            weft__callback_release(f->loop, c->post);
        free(c);
    }
    free(f->msg);
    free(f);
    return 0;
}
