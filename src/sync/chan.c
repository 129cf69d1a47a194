/*
 * chan.c — Go's channels and select for the tasks of one loop: unbuffered
 * channels that hand a value from sender to receiver, buffered ones with a ring,
 * close, and a select that performs exactly one of several operations.
 *
 * The shape is Go's runtime (chan.go, select.go): a channel holds its ring and two
 * FIFO queues of waiter records, one for blocked senders and one for blocked
 * receivers. An operation first looks for a counterpart or buffer room; only when
 * there is none does it queue a record and suspend. A counterpart that arrives
 * later performs the operation for the waiter, completes its record, and wakes it.
 * A select queues one record per case, all sharing one wait block: the first
 * counterpart to complete any of them unlinks the others, so exactly one case
 * happens.
 *
 * Values never move in or out of a suspended task's stack (a compact task's stack
 * is copied away while it waits): a blocked sender copies its value into its
 * record before it suspends, and a blocked receiver is handed the value in its
 * record and copies it to its destination itself once it runs again. Records live
 * in a heap block owned by the waiting task, which frees it when it resumes.
 *
 * Cancellation, as for asyncio's queues: an operation that can complete without
 * waiting completes even in a cancelled task (so a cancelled task can still hand
 * over a last value or drain a channel while it cleans up); one that would wait
 * returns -ECANCELED with nothing done. And once an operation has completed, its
 * task is woken with success even if a cancellation arrives before it runs: the
 * value has moved, so reporting "nothing done" would lose or duplicate it. The
 * cancellation, level-triggered, is reported by the task's next wait.
 */
#include "util/dlist.h"
#include "core/core.h"

#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Timeouts from here up mean "none" (WEFT_FOREVER is 1e300). */
#define NO_TIMEOUT 1e18

/* The largest value a channel carries, so that a record holds its size in 32
 * bits and a select's record sizes cannot overflow (Go's limit is 64 KiB). */
#define MAX_ELEM_SIZE ((size_t)1 << 30)

/* Values in records and the ring are aligned for any type. */
#define VALUE_ALIGN alignof(max_align_t)
#define ROUND_UP(n) (((n) + VALUE_ALIGN - 1) & ~(size_t)(VALUE_ALIGN - 1))

typedef struct chan_wait chan_wait;

/* One blocked operation: a plain send or receive, or one case of a select. Its
 * value (elem_size bytes) follows the record at WAITER_HEAD. */
typedef struct chan_waiter {
    weft__dlink link;                /* in the channel's senders or receivers */
    chan_wait *wait;
    weft_chan *chan;
    uint32_t index;                  /* the select case; 0 for send and receive */
    uint32_t elem_size;              /* the channel's, kept here: the waiter reads its
                                      * value after the channel may be freed (a close
                                      * wakes it, then the closer frees) */
    uint8_t op;                      /* WEFT_SEND or WEFT_RECV */
    bool queued;
} chan_waiter;

#define WAITER_HEAD ROUND_UP(sizeof(chan_waiter))

/* The heap block a waiting task owns: this header, then `n` records. */
struct chan_wait {
    weft_task *task;
    weft__callback *timer;           /* a select's timeout, while scheduled */
    chan_waiter *fired;              /* the record whose operation happened, or NULL */
    int result;                      /* its outcome: 0 or WEFT_ECLOSED */
    uint32_t n;
    size_t bytes;                    /* of the whole block */
};

#define WAIT_HEAD ROUND_UP(sizeof(chan_wait))

struct weft_chan {
    unsigned char *buf;              /* the ring: cap slots of elem_size bytes */
    size_t elem_size;
    size_t cap;
    size_t count;                    /* values in the ring */
    size_t head;                     /* slot of the oldest value */
    size_t tail;                     /* slot the next value goes to */
    weft__dlist senders;             /* non-empty only while the ring is full */
    weft__dlist receivers;           /* non-empty only while the ring is empty */
    uint64_t rng;                    /* xorshift state for selects that start here */
    bool closed;
    weft_loop *loop;                 /* the loop whose tasks use it: the creator's, or the first user's */
};

/* ------------------------------------------------------------------------ */
/* Values, records and queues                                               */
/* ------------------------------------------------------------------------ */

/* memcpy of the common small sizes as fixed-size moves: the fast paths of send
 * and receive are otherwise dominated by a call into the library's memcpy. */
static inline void copy_value(void *dst, const void *src, size_t size)
{
    switch (size) {
    case 4:
        memcpy(dst, src, 4);
        break;
    case 8:
        memcpy(dst, src, 8);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, size);
        break;
    }
}

static inline unsigned char *waiter_value(chan_waiter *w)
{
    return (unsigned char *)w + WAITER_HEAD;
}

static inline size_t waiter_size(size_t elem_size)
{
    return WAITER_HEAD + ROUND_UP(elem_size);
}

static inline chan_waiter *first_waiter(chan_wait *w)
{
    return (chan_waiter *)((unsigned char *)w + WAIT_HEAD);
}

static inline chan_waiter *next_waiter(chan_waiter *r)
{
    return (chan_waiter *)((unsigned char *)r + waiter_size(r->elem_size));
}

static inline weft__dlist *queue_of(chan_waiter *r)
{
    return r->op == WEFT_SEND ? &r->chan->senders : &r->chan->receivers;
}

static inline chan_waiter *waiter_of(weft__dlink *link)
{
    return WEFT__CONTAINER_OF(link, chan_waiter, link);
}

static void queue_push(weft__dlist *q, chan_waiter *r)
{
    weft__dlist_push_back(q, &r->link);
    r->queued = true;
}

static void queue_unlink(weft__dlist *q, chan_waiter *r)
{
    weft__dlist_unlink(q, &r->link);
    r->queued = false;
}

/* The first waiter, taken off the queue; the queue must not be empty. */
static inline chan_waiter *queue_take(weft__dlist *q)
{
    chan_waiter *r = waiter_of(q->head);
    queue_unlink(q, r);
    return r;
}

/* Takes every record of a wait block off its queue and stops its timer. */
static void wait_unhook(chan_wait *w)
{
    chan_waiter *r = first_waiter(w);
    for (uint32_t i = 0; i < w->n; i++, r = next_waiter(r))
        if (r->queued)
            queue_unlink(queue_of(r), r);
    if (w->timer) {
        weft__callback_cancel(weft__loop, w->timer);
        w->timer = NULL;
    }
}

/* The operation of `r` (already off its queue) has happened: the other cases of
 * its select can no longer happen, and its task goes on. */
static void complete(chan_waiter *r, int result)
{
    chan_wait *w = r->wait;
    w->fired = r;
    w->result = result;
    wait_unhook(w);
    weft__wake(w->task, 0);
}

/* The waiting task leaves without any operation done (cancelled). */
static void chan_unwait(weft_task *self, int reason)
{
    (void)reason;
    wait_unhook(self->wait_obj);
}

/* weft_dump: the operation (or a select's cases, a few of them) and its channel. */
static void chan_describe(const weft_task *self, char *buf, size_t size)
{
    chan_wait *w = self->wait_obj;
    size_t used = 0;
    if (w->n > 1 || w->timer) {
        int n = snprintf(buf, size, "select of %u case%s:", w->n, w->n == 1 ? "" : "s");
        used = n > 0 ? (size_t)n : 0;
    }
    chan_waiter *r = first_waiter(w);
    for (uint32_t i = 0; i < w->n && i < 4 && used < size; i++, r = next_waiter(r)) {
        const weft_chan *ch = r->chan;
        int n = snprintf(buf + used, size - used, "%s%s %p (%zu of %zu buffered%s)", i ? ", " : used ? " " : "",
                         r->op == WEFT_SEND ? "send on" : "receive from", (const void *)ch, ch->count, ch->cap,
                         ch->closed ? ", closed" : "");
        used += n > 0 ? (size_t)n : 0;
    }
    if (w->n > 4 && used < size) {
        int n = snprintf(buf + used, size - used, " and %u more", w->n - 4);
        used += n > 0 ? (size_t)n : 0;
    }
    if (w->timer && used < size) {
        char when[96];
        weft__describe_timer(weft__loop, &w->timer->node, when, sizeof when);
        snprintf(buf + used, size - used, "; times out %s", when);
    }
}

static const weft__wait_kind chan_wait_kind = {"channel", chan_unwait, chan_describe};

static void select_timed_out(void *arg)
{
    chan_wait *w = arg;
    w->timer = NULL; /* the callback record is already free: it is running */
    wait_unhook(w);
    weft__wake(w->task, -ETIMEDOUT);
}

/* A wait block for `n` records of the given total value bytes; NULL on ENOMEM. */
static chan_wait *wait_new(weft_loop *L, weft_task *self, uint32_t n, size_t record_bytes)
{
    size_t bytes = WAIT_HEAD + record_bytes;
    chan_wait *w = weft__small_alloc(&L->small, bytes);
    if (!w)
        return NULL;
    *w = (chan_wait){.task = self, .n = n, .bytes = bytes};
    return w;
}

static void wait_free(weft_loop *L, chan_wait *w)
{
    weft__small_free(&L->small, w, w->bytes);
}

static chan_waiter *waiter_init(chan_waiter *r, chan_wait *w, weft_chan *ch, uint32_t index, int op)
{
    *r = (chan_waiter){
        .wait = w, .chan = ch, .index = index, .elem_size = (uint32_t)ch->elem_size, .op = (uint8_t)op};
    return r;
}

/* ------------------------------------------------------------------------ */
/* The operations that do not wait, shared by send, receive and select       */
/* ------------------------------------------------------------------------ */

/* Sends at once to a waiting receiver or into the ring; false if it would wait.
 * The channel is open. */
static inline bool send_now(weft_chan *ch, const void *elem)
{
    if (!weft__dlist_empty(&ch->receivers)) {
        chan_waiter *r = queue_take(&ch->receivers);
        copy_value(waiter_value(r), elem, ch->elem_size);
        complete(r, 0);
        return true;
    }
    if (WEFT__LIKELY(ch->count < ch->cap)) {
        copy_value(ch->buf + ch->tail * ch->elem_size, elem, ch->elem_size);
        if (++ch->tail == ch->cap)
            ch->tail = 0;
        ch->count++;
        return true;
    }
    return false;
}

enum { WOULD_WAIT = 1 };

/* Receives at once from the ring or a waiting sender (out may be NULL).
 * Returns 0, WEFT_ECLOSED (closed and drained: *out zeroed) or WOULD_WAIT. */
static inline int recv_now(weft_chan *ch, void *out)
{
    size_t size = ch->elem_size;
    if (WEFT__LIKELY(ch->count > 0)) {
        unsigned char *slot = ch->buf + ch->head * size;
        if (out)
            copy_value(out, slot, size);
        if (++ch->head == ch->cap)
            ch->head = 0;
        if (WEFT__UNLIKELY(!weft__dlist_empty(&ch->senders))) {
            /* The ring was full: the first waiting sender's value takes the
             * slot just freed, behind every value already there. */
            chan_waiter *s = queue_take(&ch->senders);
            copy_value(slot, waiter_value(s), size);
            ch->tail = ch->head;
            complete(s, 0);
        } else {
            ch->count--;
        }
        return 0;
    }
    if (!weft__dlist_empty(&ch->senders)) {
        /* Unbuffered: straight from the sender's record. */
        chan_waiter *s = queue_take(&ch->senders);
        if (out)
            copy_value(out, waiter_value(s), size);
        complete(s, 0);
        return 0;
    }
    if (ch->closed) {
        if (out)
            memset(out, 0, size);
        return WEFT_ECLOSED;
    }
    return WOULD_WAIT;
}

/* ------------------------------------------------------------------------ */
/* Channels                                                                 */
/* ------------------------------------------------------------------------ */

weft_chan *weft_chan_new(size_t elem_size, size_t capacity)
{
    if (elem_size == 0) {
        weft__set_errmsg(-EINVAL, "weft_chan_new: elem_size is 0; a channel carries values of at least one "
                                  "byte (send a char to signal)");
        return NULL;
    }
    if (elem_size > MAX_ELEM_SIZE) {
        weft__set_errmsg(-EINVAL, "weft_chan_new: elem_size is %zu bytes, above the 1 GiB a channel's value may "
                                  "have; send a pointer to the data instead", elem_size);
        return NULL;
    }
    size_t head = ROUND_UP(sizeof(weft_chan));
    if (capacity > (SIZE_MAX - head) / elem_size) {
        weft__set_errmsg(-ENOMEM, "weft_chan_new: a ring of %zu values of %zu bytes does not fit in memory",
                         capacity, elem_size);
        return NULL;
    }
    weft_chan *ch = malloc(head + capacity * elem_size);
    if (!ch) {
        weft__set_errmsg(-ENOMEM, "weft_chan_new: out of memory for a channel of %zu values of %zu bytes",
                         capacity, elem_size);
        return NULL;
    }
    *ch = (weft_chan){.buf = (unsigned char *)ch + head,
                      .elem_size = elem_size,
                      .cap = capacity,
                      /* Every channel starts its own sequence from the same seed, so
                       * a program's selects choose the same way on every run. */
                      .rng = 0x9e3779b97f4a7c15ull,
                      .loop = weft__loop};
    return ch;
}

static size_t queue_length(const weft__dlist *q)
{
    size_t n = 0;
    for (const weft__dlink *r = q->head; r; r = r->next)
        n++;
    return n;
}

int weft_chan_free(weft_chan *ch)
{
    if (!ch)
        return 0;
    size_t waiting = queue_length(&ch->senders) + queue_length(&ch->receivers);
    if (waiting)
        return weft__set_errmsg(-EBUSY, "weft_chan_free: %zu operation%s still wait%s on the channel; close it "
                                        "first (they then return WEFT_ECLOSED)",
                                waiting, waiting == 1 ? "" : "s", waiting == 1 ? "s" : "");
    free(ch);
    return 0;
}

static int chan_loop_check(weft_chan *ch, weft_loop *L, const char *what);
static int not_in_loop(const char *what);

int weft_chan_close(weft_chan *ch)
{
    if (!ch)
        return weft__set_errmsg(-EINVAL, "weft_chan_close: the channel is NULL");
    /* A channel no loop has used yet can be closed anywhere: nobody waits on it. */
    if (!weft__loop && ch->loop)
        return not_in_loop("weft_chan_close");
    int bad = weft__loop ? chan_loop_check(ch, weft__loop, "weft_chan_close") : 0;
    if (bad)
        return bad;
    if (ch->closed)
        return weft__set_errmsg(WEFT_ESTATE, "weft_chan_close: the channel is already closed (close a channel "
                                             "once, from the sending side)");
    ch->closed = true;
    /* Waiting receivers mean an empty ring: nothing is left for them. */
    while (!weft__dlist_empty(&ch->receivers)) {
        chan_waiter *r = queue_take(&ch->receivers);
        memset(waiter_value(r), 0, ch->elem_size);
        complete(r, WEFT_ECLOSED);
    }
    while (!weft__dlist_empty(&ch->senders))
        complete(queue_take(&ch->senders), WEFT_ECLOSED);
    return 0;
}

size_t weft_chan_len(const weft_chan *ch)
{
    return ch ? ch->count : 0;
}

size_t weft_chan_cap(const weft_chan *ch)
{
    return ch ? ch->cap : 0;
}

static int not_in_loop(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task or callback of a running weft "
                                             "loop (start one with weft_run)", what);
}

static int would_wait_outside_task(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s would have to wait, which only a task can do (it was called "
                                             "from a callback; weft_select with timeout 0 tries without "
                                             "waiting)", what);
}

/* Why a send was refused before it could start: the checks of the fast path, one
 * by one, for the message. */
/* A channel is for the tasks of one loop (nothing in it is locked): a call from
 * another thread's loop is refused. One made outside a loop belongs to the first
 * loop that uses it. Returns 0, or WEFT_ESTATE with the message set. */
static int chan_loop_check(weft_chan *ch, weft_loop *L, const char *what)
{
    if (WEFT__LIKELY(ch->loop == L))
        return 0;
    if (!ch->loop) {
        ch->loop = L;
        return 0;
    }
    return weft__set_errmsg(WEFT_ESTATE, "%s: the channel belongs to another thread's loop; channels connect "
                                         "the tasks of one loop (between threads, post to the other loop with "
                                         "weft_call_soon_threadsafe)", what);
}

static int chan_send_checked(weft_loop *L, weft_chan *ch, const void *elem);

static int send_refused(weft_loop *L, weft_chan *ch, const void *elem)
{
    if (!L)
        return not_in_loop("weft_chan_send");
    if (!ch)
        return weft__set_errmsg(-EINVAL, "weft_chan_send: the channel is NULL");
    if (!elem)
        return weft__set_errmsg(-EINVAL, "weft_chan_send: elem is NULL; pass the address of the value to send");
    int bad = chan_loop_check(ch, L, "weft_chan_send");
    if (bad)
        return bad;
    if (!ch->closed)
        return chan_send_checked(L, ch, elem); /* it was only not bound to this loop yet */
    return weft__set_errmsg(WEFT_ECLOSED, "weft_chan_send: the channel is closed; nothing was sent");
}

/* Waits as a queued sender until a receiver takes the value or the channel closes. */
static int send_wait(weft_loop *L, weft_task *self, weft_chan *ch, const void *elem)
{
    if (!self)
        return would_wait_outside_task("weft_chan_send");
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    chan_wait *w = wait_new(L, self, 1, waiter_size(ch->elem_size));
    if (!w)
        return weft__set_errmsg(-ENOMEM, "weft_chan_send: out of memory for the waiting sender's record; "
                                         "nothing was sent");
    chan_waiter *r = waiter_init(first_waiter(w), w, ch, 0, WEFT_SEND);
    copy_value(waiter_value(r), elem, ch->elem_size);
    queue_push(&ch->senders, r);
    weft__wait(&chan_wait_kind, w);
    bool sent = w->fired != NULL;
    int result = w->result;
    wait_free(L, w);
    /* Only a cancellation wakes a sender whose value was not taken. */
    if (!sent)
        return weft__cancelled_errmsg(self);
    if (result != 0)
        return weft__set_errmsg(result, "weft_chan_send: the channel was closed while the send waited; nothing "
                                        "was sent");
    return 0;
}

/* A send that cannot go into the ring: to a waiting receiver, or it waits. Out
 * of line, so that the fast path saves no registers. */
static NOINLINE int send_slow(weft_loop *L, weft_chan *ch, const void *elem)
{
    if (send_now(ch, elem))
        return 0;
    return send_wait(L, L->current, ch, elem);
}

int weft_chan_send(weft_chan *ch, const void *elem)
{
    weft_loop *L = weft__loop;
    if (WEFT__UNLIKELY(!L || !ch || !elem || ch->closed || ch->loop != L))
        return send_refused(L, ch, elem);
    return chan_send_checked(L, ch, elem);
}

static int chan_send_checked(weft_loop *L, weft_chan *ch, const void *elem)
{
    if (WEFT__LIKELY(ch->count < ch->cap && weft__dlist_empty(&ch->receivers))) {
        copy_value(ch->buf + ch->tail * ch->elem_size, elem, ch->elem_size);
        if (++ch->tail == ch->cap)
            ch->tail = 0;
        ch->count++;
        return 0;
    }
    return send_slow(L, ch, elem);
}

static int recv_closed(void)
{
    return weft__set_errmsg(WEFT_ECLOSED, "weft_chan_recv: the channel is closed and every value has been "
                                          "received");
}

/* Waits as a queued receiver until a sender hands it a value or the channel closes. */
static int recv_wait(weft_loop *L, weft_task *self, weft_chan *ch, void *out)
{
    if (!self)
        return would_wait_outside_task("weft_chan_recv");
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    chan_wait *w = wait_new(L, self, 1, waiter_size(ch->elem_size));
    if (!w)
        return weft__set_errmsg(-ENOMEM, "weft_chan_recv: out of memory for the waiting receiver's record; "
                                         "nothing was received");
    chan_waiter *r = waiter_init(first_waiter(w), w, ch, 0, WEFT_RECV);
    queue_push(&ch->receivers, r);
    weft__wait(&chan_wait_kind, w);
    bool received = w->fired != NULL;
    int result = w->result;
    /* Back on its own stack: now the value can go where the caller wants it
     * (zeroes when the channel closed). */
    if (received && out)
        copy_value(out, waiter_value(r), r->elem_size);
    wait_free(L, w);
    /* Only a cancellation wakes a receiver that was handed nothing. */
    if (!received)
        return weft__cancelled_errmsg(self);
    return result != 0 ? recv_closed() : 0;
}

/* A receive that cannot simply take the ring's oldest value: one that also lets
 * a waiting sender in, one from a waiting sender, or one that waits. */
static NOINLINE int recv_slow(weft_loop *L, weft_chan *ch, void *out)
{
    int rc = recv_now(ch, out);
    if (rc == 0)
        return 0;
    if (rc == WEFT_ECLOSED)
        return recv_closed();
    return recv_wait(L, L->current, ch, out);
}

int weft_chan_recv(weft_chan *ch, void *out)
{
    weft_loop *L = weft__loop;
    if (WEFT__UNLIKELY(!L || !ch)) {
        if (!L)
            return not_in_loop("weft_chan_recv");
        return weft__set_errmsg(-EINVAL, "weft_chan_recv: the channel is NULL");
    }
    if (WEFT__LIKELY(ch->count > 0 && weft__dlist_empty(&ch->senders) && out && ch->loop == L)) {
        copy_value(out, ch->buf + ch->head * ch->elem_size, ch->elem_size);
        if (++ch->head == ch->cap)
            ch->head = 0;
        ch->count--;
        return 0;
    }
    int bad = chan_loop_check(ch, L, "weft_chan_recv");
    if (bad)
        return bad;
    return recv_slow(L, ch, out);
}

/* ------------------------------------------------------------------------ */
/* Select                                                                   */
/* ------------------------------------------------------------------------ */

/* A number in [0, k) from the channel's xorshift64* sequence. */
static uint32_t random_below(weft_chan *ch, uint32_t k)
{
    uint64_t x = ch->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ch->rng = x;
    uint32_t r = (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
    return (uint32_t)(((uint64_t)r * k) >> 32);
}

static bool case_ready(const weft_select_case *c)
{
    const weft_chan *ch = c->chan;
    if (c->op == WEFT_RECV)
        return ch->count > 0 || !weft__dlist_empty(&ch->senders) || ch->closed;
    return ch->closed || !weft__dlist_empty(&ch->receivers) || ch->count < ch->cap;
}

static int case_closed(size_t index, int op)
{
    return weft__set_errmsg(WEFT_ECLOSED, "weft_select: case %zu %s a closed channel", index,
                            op == WEFT_SEND ? "sends on" : "receives from");
}

/* Performs a ready case and returns its index. */
static int case_perform(weft_select_case *cases, size_t index)
{
    weft_select_case *c = &cases[index];
    int result;
    if (c->op == WEFT_RECV) {
        result = recv_now(c->chan, c->elem);
    } else if (c->chan->closed) {
        result = WEFT_ECLOSED;
    } else {
        send_now(c->chan, c->elem);
        result = 0;
    }
    c->result = result;
    if (result != 0)
        case_closed(index, c->op);
    return (int)index;
}

static int select_wait(weft_loop *L, weft_task *self, weft_select_case *cases, size_t n, uint32_t live,
                       double timeout)
{
    size_t record_bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (cases[i].chan)
            record_bytes += waiter_size(cases[i].chan->elem_size);
    chan_wait *w = wait_new(L, self, live, record_bytes);
    if (!w)
        return weft__set_errmsg(-ENOMEM, "weft_select: out of memory for the records of %u waiting cases; "
                                         "nothing was done", (unsigned)live);
    chan_waiter *r = first_waiter(w);
    for (size_t i = 0; i < n; i++) {
        weft_select_case *c = &cases[i];
        if (!c->chan)
            continue;
        waiter_init(r, w, c->chan, (uint32_t)i, c->op);
        if (c->op == WEFT_SEND)
            copy_value(waiter_value(r), c->elem, c->chan->elem_size);
        queue_push(queue_of(r), r);
        r = next_waiter(r);
    }
    if (timeout < NO_TIMEOUT) {
        w->timer = weft__callback_schedule(L, weft__now(L) + weft__seconds_to_ns(timeout), select_timed_out, w);
        if (!w->timer) {
            wait_unhook(w);
            wait_free(L, w);
            return weft__set_errmsg(-ENOMEM, "weft_select: out of memory for the timeout; nothing was done");
        }
    }
    int rc = weft__wait(&chan_wait_kind, w);
    chan_waiter *fired = w->fired;
    if (fired) {
        weft_select_case *c = &cases[fired->index];
        c->result = w->result;
        if (c->op == WEFT_RECV && c->elem)
            copy_value(c->elem, waiter_value(fired), fired->elem_size);
        int index = (int)fired->index;
        wait_free(L, w);
        if (c->result != 0)
            case_closed((size_t)index, c->op);
        return index;
    }
    wait_free(L, w);
    if (rc == -ETIMEDOUT)
        return weft__set_errmsg(-ETIMEDOUT, "weft_select: no case could proceed within %g s; nothing was done",
                                timeout);
    return weft__cancelled_errmsg(self);
}

int weft_select(weft_select_case *cases, size_t n, double timeout)
{
    weft_loop *L = weft__loop;
    if (!L)
        return not_in_loop("weft_select");
    weft_task *self = L->current;
    if (n > 0 && !cases)
        return weft__set_errmsg(-EINVAL, "weft_select: cases is NULL but n is %zu", n);
    if (n > INT_MAX)
        return weft__set_errmsg(-EINVAL, "weft_select: %zu cases; at most INT_MAX can be given", n);
    if (isnan(timeout))
        return weft__set_errmsg(-EINVAL, "weft_select: the timeout is NaN (use WEFT_FOREVER for none)");
    uint32_t live = 0;
    weft_chan *chooser = NULL;
    for (size_t i = 0; i < n; i++) {
        const weft_select_case *c = &cases[i];
        if (!c->chan)
            continue;
        if (c->op != WEFT_SEND && c->op != WEFT_RECV)
            return weft__set_errmsg(-EINVAL, "weft_select: case %zu has op %d; use WEFT_SEND or WEFT_RECV", i,
                                    c->op);
        if (c->op == WEFT_SEND && !c->elem)
            return weft__set_errmsg(-EINVAL, "weft_select: case %zu sends but its elem is NULL; point it at the "
                                             "value to send", i);
        int bad = chan_loop_check(c->chan, L, "weft_select");
        if (bad)
            return bad;
        if (!chooser)
            chooser = c->chan;
        live++;
    }
    if (live == 0 && timeout >= NO_TIMEOUT)
        return weft__set_errmsg(-EINVAL, "weft_select: no case has a channel and there is no timeout, so it "
                                         "would wait forever");

    uint32_t ready = 0;
    for (size_t i = 0; i < n; i++)
        if (cases[i].chan && case_ready(&cases[i]))
            ready++;
    if (ready > 0) {
        /* Uniformly among the ready cases, so that none starves. */
        uint32_t pick = ready == 1 ? 0 : random_below(chooser, ready);
        for (size_t i = 0;; i++)
            if (cases[i].chan && case_ready(&cases[i]) && pick-- == 0)
                return case_perform(cases, i);
    }
    if (!(timeout > 0))
        return weft__set_errmsg(-ETIMEDOUT, "weft_select: no case could proceed and the timeout is %g (Go's "
                                            "default:); nothing was done", timeout);
    if (!self)
        return would_wait_outside_task("weft_select");
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    return select_wait(L, self, cases, n, live, timeout);
}
