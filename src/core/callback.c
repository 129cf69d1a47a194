/*
 * callback.c — callbacks the loop runs outside any task: weft_call_soon,
 * weft_call_later, weft_call_at, and the handles that cancel them.
 *
 * A handle is (record, id). Records come from the loop's small-record memory and,
 * once used, only ever go back to the loop's own free list of callback records, so
 * a stale handle always points at a callback record, whose id tells whether it is
 * still the same use: ids count up per loop and a free record has id 0. Cancelling
 * through a handle whose callback already ran is so a clean "false", never a write
 * into memory something else owns.
 */
#include "core/core.h"

#include <math.h>
#include <string.h>

/* Records are carved in batches from the largest small block, so each costs its
 * own 48 bytes rather than its size class's 64: W8 keeps a million of them. */
#define RECORDS_PER_BATCH (WEFT__SMALL_GRANULE * WEFT__SMALL_CLASSES / sizeof(weft__callback))

static weft__callback *record_new(weft_loop *L)
{
    if (!L->free_callbacks) {
        weft__callback *batch = weft__small_alloc(&L->small, RECORDS_PER_BATCH * sizeof *batch);
        if (!batch)
            return NULL;
        for (size_t i = RECORDS_PER_BATCH; i-- > 0;) {
            batch[i].node.next = (weft__node *)L->free_callbacks;
            L->free_callbacks = &batch[i];
        }
    }
    weft__callback *c = L->free_callbacks;
    L->free_callbacks = (weft__callback *)c->node.next;
    memset(c, 0, sizeof *c);
    c->node.kind = WEFT__NODE_CALLBACK;
    c->id = ++L->next_callback_id;
    return c;
}

static void record_free(weft_loop *L, weft__callback *c)
{
    c->id = 0;
    c->node.b1 = 0;
    c->node.next = (weft__node *)L->free_callbacks;
    L->free_callbacks = c;
}

weft__callback *weft__callback_schedule(weft_loop *L, int64_t when, weft_callback_fn cb, void *arg)
{
    weft__callback *c = record_new(L);
    if (!c)
        return NULL;
    c->cb = cb;
    c->arg = arg;
    if (when == WEFT__SOON) {
        c->node.b1 = WEFT__CB_READY;
        weft__fifo_push(&L->ready, &c->node);
        return c;
    }
    c->node.b1 = WEFT__CB_IN_HEAP;
    if (weft__heap_push(&L->timers, when, &c->node) != 0) {
        record_free(L, c);
        return NULL;
    }
    return c;
}

weft__callback *weft__callback_reserve(weft_loop *L)
{
    return record_new(L);
}

void weft__callback_post(weft_loop *L, weft__callback *c, weft_callback_fn cb, void *arg)
{
    c->cb = cb;
    c->arg = arg;
    c->node.b1 = WEFT__CB_READY;
    weft__fifo_push(&L->ready, &c->node);
}

void weft__callback_release(weft_loop *L, weft__callback *c)
{
    record_free(L, c);
}

void weft__callback_due(weft_loop *L, weft__callback *c)
{
    c->node.b1 = WEFT__CB_READY;
    weft__fifo_push(&L->ready, &c->node);
}

void weft__callback_run(weft_loop *L, weft__callback *c)
{
    if (c->node.b1 == WEFT__CB_READY) {
        /* Freed before the call, so the callback may schedule (and so reuse this
         * record) and a handle to it reads as already run. */
        weft_callback_fn cb = c->cb;
        void *arg = c->arg;
        record_free(L, c);
        L->stats.callbacks_run++;
        if (WEFT__UNLIKELY(L->observer)) {
            L->observer->callback_begin(L, cb, arg);
            cb(arg);
            L->observer->callback_end(L);
        } else {
            cb(arg);
        }
    } else {
        record_free(L, c); /* cancelled while in the ready queue */
    }
}

bool weft__callback_cancel(weft_loop *L, weft__callback *c)
{
    switch (c->node.b1) {
    case WEFT__CB_IN_HEAP:
        weft__heap_remove(&L->timers, &c->node);
        record_free(L, c);
        return true;
    case WEFT__CB_READY:
        c->node.b1 = WEFT__CB_CANCELLED; /* freed when the queue reaches it */
        c->id = 0;
        return true;
    default:
        return false;
    }
}

void weft__callbacks_destroy(weft_loop *L)
{
    /* The records live in L->small, released with it. */
    L->free_callbacks = NULL;
}

/* ------------------------------------------------------------------------ */
/* The public calls                                                         */
/* ------------------------------------------------------------------------ */

static weft_call failed(int code, const char *fmt, const char *what)
{
    weft__set_errmsg(code, fmt, what);
    return (weft_call){NULL, 0};
}

static weft_call schedule(const char *what, int64_t when, weft_callback_fn cb, void *arg)
{
    weft_loop *L = weft__loop;
    if (!L)
        return failed(WEFT_ENOTINLOOP, "%s needs a running weft loop (call it from a task or a callback)", what);
    if (!cb)
        return failed(-EINVAL, "%s: the callback is NULL", what);
    weft__callback *c = weft__callback_schedule(L, when, cb, arg);
    if (!c)
        return failed(-ENOMEM, "%s: out of memory for the callback", what);
    return (weft_call){c, c->id};
}

weft_call weft_call_soon(weft_callback_fn cb, void *arg)
{
    return schedule("weft_call_soon", WEFT__SOON, cb, arg);
}

weft_call weft_call_at(double when, weft_callback_fn cb, void *arg)
{
    if (isnan(when))
        return failed(-EINVAL, "%s: the time is NaN", "weft_call_at");
    /* A time in the past (even before the loop's origin) is due at once, and due
     * callbacks run in deadline order, as asyncio's do. */
    return schedule("weft_call_at", weft__seconds_to_ns_signed(when), cb, arg);
}

weft_call weft_call_later(double delay, weft_callback_fn cb, void *arg)
{
    weft_loop *L = weft__loop;
    if (!L)
        return failed(WEFT_ENOTINLOOP, "%s needs a running weft loop (call it from a task or a callback)",
                      "weft_call_later");
    if (isnan(delay))
        return failed(-EINVAL, "%s: the delay is NaN", "weft_call_later");
    /* Negative delays keep their order (-2 s before -1 s), as in asyncio. */
    return schedule("weft_call_later", weft__now(L) + weft__seconds_to_ns_signed(delay), cb, arg);
}

bool weft_call_cancel(weft_call h)
{
    weft_loop *L = weft__loop;
    weft__callback *c = h.rec;
    if (!c || !L || h.id == 0 || c->id != h.id)
        return false;
    return weft__callback_cancel(L, c);
}
