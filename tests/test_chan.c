/*
 * test_chan.c — channels and select (Go's chan and select) as a user sees them:
 * unbuffered hand-over and its timings, buffered sends that wait only when full,
 * FIFO among waiting senders and receivers, close, select's choice, wake-up,
 * timeout, default, fairness, NULL channels and cancellation, values of a struct
 * type, compact tasks, and the errors with their messages.
 */
#include "common.h"

TestSuite(chan, .timeout = 20);

static bool errmsg_has(const char *part)
{
    return strstr(weft_errmsg(), part) != NULL;
}

static weft_task *spawn_compact(weft_fn fn, void *arg)
{
    return weft_spawn_opts(fn, arg, &(weft_spawn_options){.compact = 1});
}

/* ---- shared task bodies --------------------------------------------------- */

typedef struct peer {
    weft_chan *chan;
    const char *name;
    double delay;    /* sleeps this long first */
    long value;      /* sends this, or received this */
    int rc;          /* what the operation returned */
    double done_at;  /* when it returned */
} peer;

static void peer_reset(peer *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i].rc = 99;
        p[i].done_at = -1;
    }
}

static void *sender(void *arg)
{
    peer *p = arg;
    if (p->delay > 0)
        weft_sleep(p->delay);
    trace("%s>", p->name);
    p->rc = weft_chan_send(p->chan, &p->value);
    p->done_at = weft_time();
    trace("%s:%d", p->name, p->rc);
    return NULL;
}

static void *receiver(void *arg)
{
    peer *p = arg;
    if (p->delay > 0)
        weft_sleep(p->delay);
    trace("%s<", p->name);
    long v = -7;
    p->rc = weft_chan_recv(p->chan, &v);
    p->value = v;
    p->done_at = weft_time();
    trace("%s:%d=%ld", p->name, p->rc, v);
    return NULL;
}

/* Runs a list of peers to completion. */
static void run_peers(peer *p, const bool *is_sender, size_t n)
{
    weft_task *t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = weft_spawn(is_sender[i] ? sender : receiver, &p[i]);
    cr_expect_eq(weft_gather(t, n, NULL, NULL, 0), 0);
}

/* ---- unbuffered ------------------------------------------------------------ */

static void *unbuffered_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 0);
    cr_expect_eq(weft_chan_cap(ch), 0);
    /* The sender arrives first and waits for the receiver, who comes at 1 s. */
    peer p[2] = {{.chan = ch, .name = "S", .value = 42}, {.chan = ch, .name = "R", .delay = 1}};
    peer_reset(p, 2);
    run_peers(p, (bool[]){true, false}, 2);
    cr_expect_eq(p[0].rc, 0);
    cr_expect_eq(p[1].rc, 0);
    cr_expect_eq(p[1].value, 42);
    cr_expect(time_is(p[0].done_at, 1.0), "send returned at %f", p[0].done_at);
    cr_expect(time_is(p[1].done_at, 1.0));
    cr_expect_str_eq(trace_text, "S> R< R:0=42 S:0");

    /* The receiver arrives first (at 1 s) and waits for the sender, who comes at 3 s. */
    trace_reset();
    peer q[2] = {{.chan = ch, .name = "R", .delay = 0}, {.chan = ch, .name = "S", .delay = 2, .value = 7}};
    peer_reset(q, 2);
    run_peers(q, (bool[]){false, true}, 2);
    cr_expect_eq(q[0].value, 7);
    cr_expect(time_is(q[0].done_at, 3.0), "receive returned at %f", q[0].done_at);
    cr_expect(time_is(q[1].done_at, 3.0));
    /* The sender goes on without waiting; the woken receiver runs after it. */
    cr_expect_str_eq(trace_text, "R< S> S:0 R:0=7");
    cr_expect_eq(weft_chan_len(ch), 0);
    cr_expect_eq(weft_chan_free(ch), 0);
    return NULL;
}

Test(chan, unbuffered_send_waits_for_receiver)
{
    trace_reset();
    cr_assert_eq(run_virtual(unbuffered_main, NULL, NULL), 0);
}

/* ---- buffered ---------------------------------------------------------------- */

static void *bystander(void *arg)
{
    (void)arg;
    trace("other");
    return NULL;
}

static void *buffered_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 3);
    weft_task *other = weft_spawn(bystander, NULL);
    for (long i = 1; i <= 3; i++) {
        cr_expect_eq(weft_chan_send(ch, &i), 0);
        trace("sent%ld", i);
    }
    cr_expect_eq(weft_chan_len(ch), 3);
    cr_expect_eq(weft_chan_cap(ch), 3);
    /* The fourth send waits: the bystander runs, then a receiver at 1 s makes room. */
    peer r = {.chan = ch, .name = "R", .delay = 1};
    peer_reset(&r, 1);
    weft_task *rt = weft_spawn(receiver, &r);
    long four = 4;
    cr_expect_eq(weft_chan_send(ch, &four), 0);
    trace("sent4");
    cr_expect(time_is(weft_time(), 1.0), "the fourth send returned at %f", weft_time());
    cr_expect_eq(weft_await(rt, NULL), 0);
    cr_expect_eq(r.value, 1);
    cr_expect_eq(weft_chan_len(ch), 3);
    for (long want = 2; want <= 4; want++) {
        long v = 0;
        cr_expect_eq(weft_chan_recv(ch, &v), 0);
        cr_expect_eq(v, want);
    }
    cr_expect_eq(weft_chan_len(ch), 0);
    cr_expect_eq(weft_await(other, NULL), 0);
    cr_expect_eq(weft_chan_free(ch), 0);
    return NULL;
}

Test(chan, buffered_send_does_not_suspend_until_full)
{
    trace_reset();
    cr_assert_eq(run_virtual(buffered_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "sent1 sent2 sent3 other R< R:0=1 sent4");
}

/* ---- FIFO ---------------------------------------------------------------------- */

static void *fifo_senders_main(void *arg)
{
    weft_chan *ch = weft_chan_new(sizeof(long), (size_t)(intptr_t)arg);
    peer p[3] = {{.chan = ch, .name = "A", .value = 10},
                 {.chan = ch, .name = "B", .value = 20},
                 {.chan = ch, .name = "C", .value = 30}};
    peer_reset(p, 3);
    long first = 1;
    if (weft_chan_cap(ch) == 1)
        weft_chan_send(ch, &first); /* full: every sender below waits */
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(sender, &p[i]);
    weft_sleep(1);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(p[i].rc, 99, "sender %d has not returned yet", i);
    long got[4] = {0};
    size_t n = weft_chan_cap(ch) == 1 ? 4 : 3;
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(weft_chan_recv(ch, &got[i]), 0);
    if (n == 4) {
        cr_expect_eq(got[0], 1);
        cr_expect_eq(got[1], 10);
        cr_expect_eq(got[2], 20);
        cr_expect_eq(got[3], 30);
    } else {
        cr_expect_eq(got[0], 10);
        cr_expect_eq(got[1], 20);
        cr_expect_eq(got[2], 30);
    }
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(p[i].rc, 0);
    weft_chan_free(ch);
    return NULL;
}

Test(chan, blocked_senders_are_served_in_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(fifo_senders_main, (void *)(intptr_t)0, NULL), 0);
    cr_assert_str_eq(trace_text, "A> B> C> A:0 B:0 C:0");
    trace_reset();
    cr_assert_eq(run_virtual(fifo_senders_main, (void *)(intptr_t)1, NULL), 0);
}

static void *fifo_receivers_main(void *arg)
{
    weft_chan *ch = weft_chan_new(sizeof(long), (size_t)(intptr_t)arg);
    peer p[3] = {{.chan = ch, .name = "A"}, {.chan = ch, .name = "B"}, {.chan = ch, .name = "C"}};
    peer_reset(p, 3);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(receiver, &p[i]);
    weft_sleep(1);
    for (long v = 1; v <= 3; v++)
        cr_expect_eq(weft_chan_send(ch, &v), 0);
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(p[i].rc, 0);
        cr_expect_eq(p[i].value, i + 1, "receiver %d got %ld", i, p[i].value);
        cr_expect(time_is(p[i].done_at, 1.0));
    }
    weft_chan_free(ch);
    return NULL;
}

Test(chan, blocked_receivers_are_served_in_order)
{
    trace_reset();
    cr_assert_eq(run_virtual(fifo_receivers_main, (void *)(intptr_t)0, NULL), 0);
    cr_assert_str_eq(trace_text, "A< B< C< A:0=1 B:0=2 C:0=3");
    trace_reset();
    cr_assert_eq(run_virtual(fifo_receivers_main, (void *)(intptr_t)4, NULL), 0);
    cr_assert_str_eq(trace_text, "A< B< C< A:0=1 B:0=2 C:0=3");
}

/* ---- close ------------------------------------------------------------------ */

static void *close_receivers_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 2);
    /* Two receivers that wait and are handed values first, so that the memory
     * the next waiting receivers get has held a value (the zeroes are written). */
    peer warm[2] = {{.chan = ch, .name = "a"}, {.chan = ch, .name = "b"}};
    peer_reset(warm, 2);
    weft_task *w[2] = {weft_spawn(receiver, &warm[0]), weft_spawn(receiver, &warm[1])};
    weft_yield();
    for (long v = 41; v <= 42; v++)
        weft_chan_send(ch, &v);
    weft_gather(w, 2, NULL, NULL, 0);
    cr_expect_eq(warm[1].value, 42);
    trace_reset();

    peer p[2] = {{.chan = ch, .name = "A"}, {.chan = ch, .name = "B"}};
    peer_reset(p, 2);
    weft_task *t[2] = {weft_spawn(receiver, &p[0]), weft_spawn(receiver, &p[1])};
    weft_sleep(1);
    cr_expect_eq(weft_chan_close(ch), 0);
    cr_expect_eq(weft_gather(t, 2, NULL, NULL, 0), 0);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(p[i].rc, WEFT_ECLOSED, "receiver %d: %s", i, weft_errname(p[i].rc));
        cr_expect_eq(p[i].value, 0, "the zero value, not %ld", p[i].value);
        cr_expect(time_is(p[i].done_at, 1.0));
    }
    weft_chan_free(ch);

    /* Values sent before the close are still received, in order; then ECLOSED. */
    ch = weft_chan_new(sizeof(long), 2);
    long v1 = 5, v2 = 6;
    weft_chan_send(ch, &v1);
    weft_chan_send(ch, &v2);
    cr_expect_eq(weft_chan_close(ch), 0);
    cr_expect_eq(weft_chan_len(ch), 2);
    long got = 0;
    cr_expect_eq(weft_chan_recv(ch, &got), 0);
    cr_expect_eq(got, 5);
    cr_expect_eq(weft_chan_recv(ch, &got), 0);
    cr_expect_eq(got, 6);
    got = 123;
    cr_expect_eq(weft_chan_recv(ch, &got), WEFT_ECLOSED);
    cr_expect_eq(got, 0);
    cr_expect(errmsg_has("closed"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_chan_recv(ch, NULL), WEFT_ECLOSED, "again, and without a destination");
    weft_chan_free(ch);
    return NULL;
}

Test(chan, close_wakes_receivers_after_the_buffer_is_drained)
{
    trace_reset();
    cr_assert_eq(run_virtual(close_receivers_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A< B< A:-10009=0 B:-10009=0");
}

static void *close_senders_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 1);
    long first = 1;
    weft_chan_send(ch, &first);
    peer p[2] = {{.chan = ch, .name = "A", .value = 2}, {.chan = ch, .name = "B", .value = 3}};
    peer_reset(p, 2);
    weft_task *t[2] = {weft_spawn(sender, &p[0]), weft_spawn(sender, &p[1])};
    weft_sleep(1.5);
    cr_expect_eq(weft_chan_close(ch), 0);
    cr_expect_eq(weft_gather(t, 2, NULL, NULL, 0), 0);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(p[i].rc, WEFT_ECLOSED, "sender %d: %s", i, weft_errname(p[i].rc));
        cr_expect(time_is(p[i].done_at, 1.5));
    }
    /* Only the value buffered before the close comes out. */
    long got = 0;
    cr_expect_eq(weft_chan_recv(ch, &got), 0);
    cr_expect_eq(got, 1);
    cr_expect_eq(weft_chan_recv(ch, &got), WEFT_ECLOSED);

    /* Send on a closed channel; close twice. */
    long v = 9;
    cr_expect_eq(weft_chan_send(ch, &v), WEFT_ECLOSED);
    cr_expect(errmsg_has("weft_chan_send: the channel is closed"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_chan_close(ch), WEFT_ESTATE);
    cr_expect(errmsg_has("already closed"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_chan_free(ch), 0);
    return NULL;
}

Test(chan, close_wakes_senders_with_eclosed)
{
    trace_reset();
    cr_assert_eq(run_virtual(close_senders_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "A> B> A:-10009 B:-10009");
}

static void *closed_sender_message(void *arg)
{
    peer *p = arg;
    p->rc = weft_chan_send(p->chan, &p->value);
    cr_expect(errmsg_has("closed while the send waited"), "message: %s", weft_errmsg());
    return NULL;
}

static void *closed_while_waiting_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 0);
    peer p = {.chan = ch, .value = 1, .rc = 99};
    weft_task *t = weft_spawn(closed_sender_message, &p);
    weft_yield();
    weft_chan_close(ch);
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(p.rc, WEFT_ECLOSED);
    weft_chan_free(ch);
    return NULL;
}

Test(chan, a_waiting_send_says_the_channel_closed_meanwhile)
{
    cr_assert_eq(run_virtual(closed_while_waiting_main, NULL, NULL), 0);
}

/* ---- select ------------------------------------------------------------------- */

static void *select_ready_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 1);
    weft_chan *b = weft_chan_new(sizeof(long), 1);
    weft_chan *c = weft_chan_new(sizeof(long), 0);
    long vb = 77;
    weft_chan_send(b, &vb);
    long ra = -1, rb = -1, sc = 5;
    /* Only b's receive can proceed: a is empty, c has no receiver. */
    for (int round = 0; round < 20; round++) {
        weft_select_case cases[] = {{a, WEFT_RECV, &ra, 99}, {b, WEFT_RECV, &rb, 99}, {c, WEFT_SEND, &sc, 99}};
        if (round > 0)
            weft_chan_send(b, &vb);
        rb = -1;
        cr_expect_eq(weft_select(cases, 3, WEFT_FOREVER), 1);
        cr_expect_eq(cases[1].result, 0);
        cr_expect_eq(cases[0].result, 99, "cases not chosen are untouched");
        cr_expect_eq(cases[2].result, 99);
        cr_expect_eq(rb, 77);
        cr_expect_eq(ra, -1);
    }
    cr_expect(time_is(weft_time(), 0));
    /* A send case whose buffer has room. */
    weft_select_case send_case[] = {{c, WEFT_SEND, &sc, 99}, {a, WEFT_SEND, &sc, 99}};
    cr_expect_eq(weft_select(send_case, 2, 0), 1);
    cr_expect_eq(weft_chan_len(a), 1);
    weft_chan_free(a);
    weft_chan_free(b);
    weft_chan_free(c);
    return NULL;
}

Test(chan, select_performs_the_ready_case)
{
    cr_assert_eq(run_virtual(select_ready_main, NULL, NULL), 0);
}

typedef struct select_probe {
    weft_select_case cases[2];
    long values[2];
    int rc;
    double done_at;
} select_probe;

static void *selecting(void *arg)
{
    select_probe *s = arg;
    trace("select");
    s->rc = weft_select(s->cases, 2, WEFT_FOREVER);
    s->done_at = weft_time();
    trace("selected%d", s->rc);
    return NULL;
}

static void *select_wake_recv_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    weft_chan *b = weft_chan_new(sizeof(long), 0);
    select_probe s = {.values = {-1, -1}, .rc = 99};
    s.cases[0] = (weft_select_case){a, WEFT_RECV, &s.values[0], 99};
    s.cases[1] = (weft_select_case){b, WEFT_RECV, &s.values[1], 99};
    weft_task *t = weft_spawn(selecting, &s);
    weft_sleep(1);
    /* Two senders arrive on b and a in the same instant: only the first is taken. */
    peer p[2] = {{.chan = b, .name = "Sb", .value = 11}, {.chan = a, .name = "Sa", .value = 22}};
    peer_reset(p, 2);
    weft_task *st[2] = {weft_spawn(sender, &p[0]), weft_spawn(sender, &p[1])};
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(s.rc, 1);
    cr_expect_eq(s.cases[1].result, 0);
    cr_expect_eq(s.values[1], 11);
    cr_expect_eq(s.values[0], -1, "a's case did not happen");
    cr_expect(time_is(s.done_at, 1.0));
    /* a's sender is still waiting, untouched: a receive takes its value now. */
    cr_expect_eq(p[1].rc, 99);
    long got = 0;
    weft_sleep(1);
    cr_expect_eq(p[1].rc, 99, "a's sender still waits at 2 s");
    cr_expect_eq(weft_chan_recv(a, &got), 0);
    cr_expect_eq(got, 22);
    cr_expect_eq(weft_gather(st, 2, NULL, NULL, 0), 0);
    cr_expect_eq(p[0].rc, 0);
    cr_expect(time_is(p[0].done_at, 1.0));
    cr_expect(time_is(p[1].done_at, 2.0));
    cr_expect_eq(weft_chan_free(a), 0, "no record of the select is left on a");
    cr_expect_eq(weft_chan_free(b), 0);
    return NULL;
}

Test(chan, select_waits_and_a_later_send_completes_exactly_one_case)
{
    trace_reset();
    cr_assert_eq(run_virtual(select_wake_recv_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "select Sb> Sb:0 Sa> selected1 Sa:0");
}

static void *select_wake_send_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    weft_chan *b = weft_chan_new(sizeof(long), 0);
    select_probe s = {.values = {100, 200}, .rc = 99};
    s.cases[0] = (weft_select_case){a, WEFT_SEND, &s.values[0], 99};
    s.cases[1] = (weft_select_case){b, WEFT_SEND, &s.values[1], 99};
    weft_task *t = weft_spawn(selecting, &s);
    weft_sleep(2);
    long got = 0;
    cr_expect_eq(weft_chan_recv(a, &got), 0);
    cr_expect_eq(got, 100);
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(s.rc, 0);
    cr_expect_eq(s.cases[0].result, 0);
    cr_expect(time_is(s.done_at, 2.0));
    /* Nothing was sent on b: a receive that does not wait finds nothing. */
    weft_select_case probe[] = {{b, WEFT_RECV, &got, 99}};
    cr_expect_eq(weft_select(probe, 1, 0), -ETIMEDOUT);
    cr_expect_eq(weft_chan_free(a), 0);
    cr_expect_eq(weft_chan_free(b), 0);
    return NULL;
}

Test(chan, select_waits_and_a_later_receive_completes_exactly_one_case)
{
    cr_assert_eq(run_virtual(select_wake_send_main, NULL, NULL), 0);
}

static void *select_two(void *arg)
{
    select_probe *s = arg;
    s->rc = weft_select(s->cases, 2, WEFT_FOREVER);
    return NULL;
}

static void *close_then_free_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    weft_chan *b = weft_chan_new(sizeof(long), 0);
    peer p = {.chan = a, .name = "R"};
    peer_reset(&p, 1);
    select_probe s = {.values = {3, 4}, .rc = 99};
    s.cases[0] = (weft_select_case){a, WEFT_RECV, &s.values[0], 99};
    s.cases[1] = (weft_select_case){b, WEFT_RECV, &s.values[1], 99};
    weft_task *t[2] = {weft_spawn(receiver, &p), weft_spawn(select_two, &s)};
    weft_yield();
    /* Closing takes every waiter off the channel, so it can be freed at once,
     * before the woken tasks run. */
    cr_expect_eq(weft_chan_close(a), 0);
    cr_expect_eq(weft_chan_free(a), 0);
    cr_expect_eq(weft_chan_free(b), 0, "the select's record on b went with the close of a");
    cr_expect_eq(weft_gather(t, 2, NULL, NULL, 0), 0);
    cr_expect_eq(p.rc, WEFT_ECLOSED);
    cr_expect_eq(p.value, 0);
    cr_expect_eq(s.rc, 0);
    cr_expect_eq(s.cases[0].result, WEFT_ECLOSED);
    cr_expect_eq(s.values[0], 0);
    cr_expect_eq(s.values[1], 4);
    return NULL;
}

Test(chan, a_channel_can_be_freed_right_after_close)
{
    trace_reset();
    cr_assert_eq(run_virtual(close_then_free_main, NULL, NULL), 0);
}

static void *select_timeout_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    weft_chan *b = weft_chan_new(sizeof(long), 0);
    long ra = 1, sb = 2;
    weft_select_case cases[] = {{a, WEFT_RECV, &ra, 99}, {b, WEFT_SEND, &sb, 99}};
    cr_expect_eq(weft_select(cases, 2, 1.5), -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 1.5), "timed out at %f", weft_time());
    cr_expect(errmsg_has("within 1.5 s"), "message: %s", weft_errmsg());
    cr_expect_eq(cases[0].result, 99);
    cr_expect_eq(ra, 1);
    /* Its records left both channels. */
    cr_expect_eq(weft_chan_free(a), 0);
    cr_expect_eq(weft_chan_free(b), 0);
    return NULL;
}

Test(chan, select_times_out_at_exactly_the_timeout)
{
    cr_assert_eq(run_virtual(select_timeout_main, NULL, NULL), 0);
}

static void *select_default_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    long ra = 1;
    weft_select_case cases[] = {{a, WEFT_RECV, &ra, 99}};
    weft_task *other = weft_spawn(bystander, NULL);
    trace("before");
    cr_expect_eq(weft_select(cases, 1, 0), -ETIMEDOUT);
    trace("after");
    cr_expect(errmsg_has("default"), "message: %s", weft_errmsg());
    cr_expect(time_is(weft_time(), 0));
    /* Ready: done at once, even with timeout 0. */
    weft_chan *b = weft_chan_new(sizeof(long), 1);
    long v = 3;
    weft_chan_send(b, &v);
    weft_select_case ready[] = {{a, WEFT_RECV, &ra, 99}, {b, WEFT_RECV, &ra, 99}};
    cr_expect_eq(weft_select(ready, 2, 0), 1);
    cr_expect_eq(ra, 3);
    weft_await(other, NULL);
    weft_chan_free(a);
    weft_chan_free(b);
    return NULL;
}

Test(chan, select_with_timeout_zero_is_go_default)
{
    trace_reset();
    cr_assert_eq(run_virtual(select_default_main, NULL, NULL), 0);
    /* It did not suspend: the other task ran only when main awaited it. */
    cr_assert_str_eq(trace_text, "before after other");
}

static void *select_fair_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(int), 1);
    weft_chan *b = weft_chan_new(sizeof(int), 1);
    int one = 1, two = 2, got = 0;
    int count[2] = {0, 0};
    for (int i = 0; i < 1000; i++) {
        if (weft_chan_len(a) == 0)
            weft_chan_send(a, &one);
        if (weft_chan_len(b) == 0)
            weft_chan_send(b, &two);
        weft_select_case cases[] = {{a, WEFT_RECV, &got, 99}, {b, WEFT_RECV, &got, 99}};
        int rc = weft_select(cases, 2, WEFT_FOREVER);
        cr_expect(rc == 0 || rc == 1);
        cr_expect_eq(got, rc + 1);
        count[rc]++;
    }
    cr_expect(count[0] >= 400 && count[0] <= 600, "a chosen %d times of 1000", count[0]);
    cr_expect(count[1] >= 400 && count[1] <= 600, "b chosen %d times of 1000", count[1]);

    /* Three ready cases, one of them a send: each gets its share. */
    weft_chan *c = weft_chan_new(sizeof(int), 1000);
    int share[3] = {0, 0, 0};
    for (int i = 0; i < 900; i++) {
        if (weft_chan_len(a) == 0)
            weft_chan_send(a, &one);
        if (weft_chan_len(b) == 0)
            weft_chan_send(b, &two);
        weft_select_case cases[] = {{a, WEFT_RECV, &got, 99}, {b, WEFT_RECV, &got, 99}, {c, WEFT_SEND, &one, 99}};
        share[weft_select(cases, 3, WEFT_FOREVER)]++;
    }
    for (int i = 0; i < 3; i++)
        cr_expect(share[i] >= 240 && share[i] <= 360, "case %d chosen %d times of 900", i, share[i]);
    cr_expect_eq(weft_chan_len(c), (size_t)share[2]);
    weft_chan_free(a);
    weft_chan_free(b);
    weft_chan_free(c);
    return NULL;
}

Test(chan, select_chooses_fairly_among_ready_cases)
{
    cr_assert_eq(run_virtual(select_fair_main, NULL, NULL), 0);
}

static void *select_closed_main(void *arg)
{
    (void)arg;
    weft_chan *open = weft_chan_new(sizeof(long), 0);
    weft_chan *closed = weft_chan_new(sizeof(long), 0);
    weft_chan_close(closed);
    long r1 = 5, r2 = 6;
    weft_select_case cases[] = {{open, WEFT_RECV, &r1, 99}, {closed, WEFT_RECV, &r2, 99}};
    cr_expect_eq(weft_select(cases, 2, WEFT_FOREVER), 1);
    cr_expect_eq(cases[1].result, WEFT_ECLOSED);
    cr_expect_eq(r2, 0, "zeroed");
    cr_expect_eq(r1, 5);
    cr_expect(errmsg_has("case 1 receives from a closed channel"), "message: %s", weft_errmsg());
    /* A send case on a closed channel is ready too, with the same result. */
    long v = 1;
    weft_select_case send[] = {{open, WEFT_SEND, &v, 99}, {closed, WEFT_SEND, &v, 99}};
    cr_expect_eq(weft_select(send, 2, WEFT_FOREVER), 1);
    cr_expect_eq(send[1].result, WEFT_ECLOSED);
    weft_chan_free(open);
    weft_chan_free(closed);
    return NULL;
}

Test(chan, select_on_a_closed_channel_is_ready_with_eclosed)
{
    cr_assert_eq(run_virtual(select_closed_main, NULL, NULL), 0);
}

static void *closing_later(void *arg)
{
    weft_sleep(1);
    weft_chan_close(arg);
    return NULL;
}

static void *select_closed_later_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    weft_chan *b = weft_chan_new(sizeof(long), 0);
    long ra = 4, rb = 4;
    weft_select_case cases[] = {{a, WEFT_RECV, &ra, 99}, {b, WEFT_RECV, &rb, 99}};
    weft_task *t = weft_spawn(closing_later, b);
    cr_expect_eq(weft_select(cases, 2, WEFT_FOREVER), 1);
    cr_expect(time_is(weft_time(), 1.0));
    cr_expect_eq(cases[1].result, WEFT_ECLOSED);
    cr_expect_eq(rb, 0);
    cr_expect_eq(ra, 4);
    weft_await(t, NULL);
    cr_expect_eq(weft_chan_free(a), 0);
    weft_chan_free(b);
    return NULL;
}

Test(chan, a_close_completes_a_waiting_select)
{
    cr_assert_eq(run_virtual(select_closed_later_main, NULL, NULL), 0);
}

static void *select_null_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 4);
    long v = 8, got = 0;
    for (int i = 0; i < 20; i++) {
        weft_chan_send(a, &v);
        /* The NULL case's op is garbage: an ignored case is not checked. */
        weft_select_case cases[] = {{NULL, WEFT_RECV, &got, 99}, {NULL, 12345, NULL, 99}, {a, WEFT_RECV, &got, 99}};
        cr_expect_eq(weft_select(cases, 3, WEFT_FOREVER), 2);
        cr_expect_eq(cases[0].result, 99);
    }
    /* Nothing but NULL channels: waits for the timeout, or refuses to wait forever. */
    weft_select_case none[] = {{NULL, WEFT_RECV, &got, 99}};
    cr_expect_eq(weft_select(none, 1, 2.0), -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 2.0));
    cr_expect_eq(weft_select(none, 1, WEFT_FOREVER), -EINVAL);
    cr_expect(errmsg_has("wait forever"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_select(NULL, 0, 0.5), -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 2.5));
    weft_chan_free(a);
    return NULL;
}

Test(chan, select_ignores_null_channels)
{
    cr_assert_eq(run_virtual(select_null_main, NULL, NULL), 0);
}

/* ---- cancellation -------------------------------------------------------------- */

static void *cancelled_select(void *arg)
{
    select_probe *s = arg;
    s->rc = weft_select(s->cases, 2, 10.0);
    s->done_at = weft_time();
    return NULL;
}

static void *select_cancel_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_new(sizeof(long), 0);
    weft_chan *b = weft_chan_new(sizeof(long), 0);
    select_probe s = {.values = {-1, 55}, .rc = 99};
    s.cases[0] = (weft_select_case){a, WEFT_RECV, &s.values[0], 99};
    s.cases[1] = (weft_select_case){b, WEFT_SEND, &s.values[1], 99};
    weft_task *t = weft_spawn(cancelled_select, &s);
    weft_sleep(1);
    cr_expect(weft_cancel(t, "stop selecting"));
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(s.rc, -ECANCELED);
    cr_expect(time_is(s.done_at, 1.0));
    cr_expect_eq(s.values[0], -1);
    cr_expect_eq(s.cases[0].result, 99);
    cr_expect_eq(s.cases[1].result, 99);
    /* Nothing is left waiting on either channel: b has nothing to receive, a no receiver. */
    long got = 0, v = 1;
    weft_select_case probe[] = {{b, WEFT_RECV, &got, 99}, {a, WEFT_SEND, &v, 99}};
    cr_expect_eq(weft_select(probe, 2, 0), -ETIMEDOUT);
    /* And its timer is gone: the loop does not wait for the 10 s. */
    cr_expect_eq(weft_chan_free(a), 0);
    cr_expect_eq(weft_chan_free(b), 0);
    return NULL;
}

Test(chan, cancelling_a_select_leaves_nothing_done)
{
    cr_assert_eq(run_virtual(select_cancel_main, NULL, NULL), 0);
}

static void *cancel_send_recv_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 0);
    peer s = {.chan = ch, .name = "S", .value = 5}, r = {.chan = ch, .name = "R"};
    peer_reset(&s, 1);
    peer_reset(&r, 1);
    weft_task *ts = weft_spawn(sender, &s);
    weft_sleep(1);
    weft_cancel(ts, NULL);
    cr_expect_eq(weft_await(ts, NULL), -ECANCELED);
    cr_expect_eq(s.rc, -ECANCELED);
    cr_expect(time_is(s.done_at, 1.0));
    long got = 0;
    weft_select_case probe[] = {{ch, WEFT_RECV, &got, 99}};
    cr_expect_eq(weft_select(probe, 1, 0), -ETIMEDOUT, "the cancelled sender sent nothing");

    weft_task *tr = weft_spawn(receiver, &r);
    weft_sleep(1);
    weft_cancel(tr, NULL);
    cr_expect_eq(weft_await(tr, NULL), -ECANCELED);
    cr_expect_eq(r.rc, -ECANCELED);
    cr_expect_eq(r.value, -7, "nothing received");
    long v = 1;
    weft_select_case give[] = {{ch, WEFT_SEND, &v, 99}};
    cr_expect_eq(weft_select(give, 1, 0), -ETIMEDOUT, "no receiver is left waiting");
    cr_expect_eq(weft_chan_free(ch), 0);
    return NULL;
}

Test(chan, cancelling_a_send_or_receive_leaves_nothing_done)
{
    trace_reset();
    cr_assert_eq(run_virtual(cancel_send_recv_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "S> S:-125 R< R:-125=-7");
}

typedef struct handed {
    weft_chan *chan;
    long value;
    int recv_rc, sleep_rc;
} handed;

static void *receive_then_sleep(void *arg)
{
    handed *h = arg;
    h->recv_rc = weft_chan_recv(h->chan, &h->value);
    h->sleep_rc = weft_sleep(1);
    return NULL;
}

static void *completed_then_cancelled_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 0);
    handed h = {.chan = ch, .value = -1, .recv_rc = 99, .sleep_rc = 99};
    weft_task *t = weft_spawn(receive_then_sleep, &h);
    weft_yield();
    long v = 31;
    cr_expect_eq(weft_chan_send(ch, &v), 0);
    /* The value is already the receiver's: the cancellation reaches its next wait. */
    weft_cancel(t, NULL);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(h.recv_rc, 0);
    cr_expect_eq(h.value, 31);
    cr_expect_eq(h.sleep_rc, -ECANCELED);
    weft_chan_free(ch);
    return NULL;
}

Test(chan, a_completed_receive_keeps_its_value_when_cancelled_before_it_runs)
{
    cr_assert_eq(run_virtual(completed_then_cancelled_main, NULL, NULL), 0);
}

typedef struct cancelled_self {
    weft_chan *buffered, *unbuffered;
    int send_rc, recv_rc, wait_rc, select_rc;
} cancelled_self;

static void *already_cancelled(void *arg)
{
    cancelled_self *c = arg;
    weft_cancel(weft_current(), NULL);
    long v = 1, got = 0;
    /* What needs no waiting still happens; what would wait returns -ECANCELED. */
    c->send_rc = weft_chan_send(c->buffered, &v);
    c->recv_rc = weft_chan_recv(c->buffered, &got);
    c->wait_rc = weft_chan_recv(c->unbuffered, &got);
    weft_select_case cases[] = {{c->unbuffered, WEFT_SEND, &v, 99}};
    c->select_rc = weft_select(cases, 1, 5.0);
    return NULL;
}

static void *already_cancelled_main(void *arg)
{
    cancelled_self *c = arg;
    c->buffered = weft_chan_new(sizeof(long), 1);
    c->unbuffered = weft_chan_new(sizeof(long), 0);
    weft_task *t = weft_spawn(already_cancelled, c);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect(time_is(weft_time(), 0));
    cr_expect_eq(weft_chan_free(c->buffered), 0);
    cr_expect_eq(weft_chan_free(c->unbuffered), 0);
    return NULL;
}

Test(chan, a_cancelled_task_completes_what_needs_no_wait)
{
    cancelled_self c = {0};
    cr_assert_eq(run_virtual(already_cancelled_main, &c, NULL), 0);
    cr_assert_eq(c.send_rc, 0);
    cr_assert_eq(c.recv_rc, 0);
    cr_assert_eq(c.wait_rc, -ECANCELED);
    cr_assert_eq(c.select_rc, -ECANCELED);
}

static void *scope_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 0);
    long got = 8;
    weft_timeout *to = weft_timeout_enter(1.25);
    int rc = weft_chan_recv(ch, &got);
    cr_expect_eq(rc, -ECANCELED, "inside the scope the expiry is a cancellation");
    cr_expect_eq(weft_timeout_exit(to, rc), -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 1.25));
    cr_expect_eq(got, 8, "nothing received");
    cr_expect_eq(weft_chan_free(ch), 0, "the receiver's record left the channel");
    return NULL;
}

Test(chan, a_timeout_scope_interrupts_a_waiting_receive)
{
    cr_assert_eq(run_virtual(scope_main, NULL, NULL), 0);
}

/* ---- values of a struct type, compact tasks --------------------------------------- */

typedef struct point {
    double x;
    long id;
    char tag[8];
} point;

typedef struct point_run {
    weft_chan *chan;
    int count;
    int bad;         /* values that did not arrive intact */
    int received;
} point_run;

static point make_point(int i)
{
    point p = {.x = i * 0.5, .id = 1000 + i};
    memcpy(p.tag, "point", 6);
    p.tag[6] = (char)('A' + i % 26); /* the last byte too, so a short copy shows */
    p.tag[7] = (char)('a' + i % 26);
    return p;
}

static void *point_sender(void *arg)
{
    point_run *r = arg;
    for (int i = 0; i < r->count; i++) {
        point p = make_point(i); /* on this task's own (maybe compact) stack */
        if (i % 3 == 0)
            weft_sleep(0.1);
        cr_expect_eq(weft_chan_send(r->chan, &p), 0);
    }
    weft_chan_close(r->chan);
    return NULL;
}

static void *point_receiver(void *arg)
{
    point_run *r = arg;
    for (;;) {
        point p;
        memset(&p, 0xee, sizeof p);
        if (r->received % 4 == 1)
            weft_sleep(0.05);
        int rc = weft_chan_recv(r->chan, &p);
        if (rc == WEFT_ECLOSED)
            break;
        cr_expect_eq(rc, 0);
        point want = make_point(r->received);
        if (memcmp(&p, &want, sizeof p) != 0)
            r->bad++;
        r->received++;
    }
    return NULL;
}

/* A select in a compact task, receiving points through a second channel. */
static void *point_selector(void *arg)
{
    point_run *r = arg;
    weft_chan *never = weft_chan_new(sizeof(point), 0);
    for (;;) {
        point p;
        memset(&p, 0xee, sizeof p);
        weft_select_case cases[] = {{never, WEFT_RECV, NULL, 99}, {r->chan, WEFT_RECV, &p, 99}};
        int rc = weft_select(cases, 2, WEFT_FOREVER);
        cr_expect_eq(rc, 1);
        if (cases[1].result == WEFT_ECLOSED)
            break;
        point want = make_point(r->received);
        if (memcmp(&p, &want, sizeof p) != 0)
            r->bad++;
        r->received++;
    }
    weft_chan_free(never);
    return NULL;
}

static void *points_main(void *arg)
{
    int compact = *(int *)arg;
    weft_task *(*spawn)(weft_fn, void *) = compact ? spawn_compact : weft_spawn;
    for (size_t cap = 0; cap <= 2; cap += 2) {
        point_run r = {.chan = weft_chan_new(sizeof(point), cap), .count = 30};
        cr_expect_eq(sizeof(point), 24);
        weft_task *t[2] = {spawn(point_sender, &r), spawn(point_receiver, &r)};
        cr_expect_eq(weft_gather(t, 2, NULL, NULL, 0), 0);
        cr_expect_eq(r.received, 30, "capacity %zu", cap);
        cr_expect_eq(r.bad, 0, "capacity %zu: %d values damaged", cap, r.bad);
        weft_chan_free(r.chan);

        point_run s = {.chan = weft_chan_new(sizeof(point), cap), .count = 30};
        weft_task *u[2] = {spawn(point_sender, &s), spawn(point_selector, &s)};
        cr_expect_eq(weft_gather(u, 2, NULL, NULL, 0), 0);
        cr_expect_eq(s.received, 30);
        cr_expect_eq(s.bad, 0, "select, capacity %zu: %d values damaged", cap, s.bad);
        weft_chan_free(s.chan);
    }
    return NULL;
}

Test(chan, struct_values_arrive_intact)
{
    int compact = 0;
    cr_assert_eq(run_virtual(points_main, &compact, NULL), 0);
}

Test(chan, compact_tasks_send_and_receive_through_their_records)
{
    int compact = 1;
    cr_assert_eq(run_virtual(points_main, &compact, NULL), 0);
}

/* ---- errors -------------------------------------------------------------------- */

static void try_recv_from_callback(void *arg)
{
    int *rc = arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 1);
    long v = 2, got = 0;
    rc[0] = weft_chan_send(ch, &v);         /* room: fine from a callback */
    rc[1] = weft_chan_recv(ch, &got);
    rc[2] = weft_chan_recv(ch, &got);       /* would wait */
    cr_expect(errmsg_has("only a task can"), "message: %s", weft_errmsg());
    weft_chan_free(ch);
}

static void *errors_main(void *arg)
{
    (void)arg;
    weft_chan *ch = weft_chan_new(sizeof(long), 0);
    long v = 1;
    cr_expect_eq(weft_chan_send(NULL, &v), -EINVAL);
    cr_expect(errmsg_has("NULL"));
    cr_expect_eq(weft_chan_send(ch, NULL), -EINVAL);
    cr_expect(errmsg_has("elem is NULL"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_chan_recv(NULL, &v), -EINVAL);
    cr_expect_eq(weft_chan_close(NULL), -EINVAL);
    cr_expect_eq(weft_chan_len(NULL), 0);
    cr_expect_eq(weft_chan_cap(NULL), 0);
    cr_expect_eq(weft_chan_free(NULL), 0);

    weft_select_case bad_op[] = {{ch, 7, &v, 99}};
    cr_expect_eq(weft_select(bad_op, 1, 0), -EINVAL);
    cr_expect(errmsg_has("case 0 has op 7"), "message: %s", weft_errmsg());
    weft_select_case no_elem[] = {{ch, WEFT_RECV, NULL, 99}, {ch, WEFT_SEND, NULL, 99}};
    cr_expect_eq(weft_select(no_elem, 2, 0), -EINVAL);
    cr_expect(errmsg_has("case 1 sends"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_select(no_elem, 1, NAN), -EINVAL);
    cr_expect(errmsg_has("NaN"));
    cr_expect_eq(weft_select(NULL, 2, 0), -EINVAL);

    /* Freeing a channel someone waits on. */
    peer p = {.chan = ch, .name = "S", .value = 3};
    peer_reset(&p, 1);
    weft_task *t = weft_spawn(sender, &p);
    weft_yield();
    cr_expect_eq(weft_chan_free(ch), -EBUSY);
    cr_expect(errmsg_has("1 operation still waits"), "message: %s", weft_errmsg());
    weft_chan_close(ch);
    weft_await(t, NULL);
    cr_expect_eq(p.rc, WEFT_ECLOSED);
    cr_expect_eq(weft_chan_free(ch), 0);

    int rc[3] = {99, 99, 99};
    weft_call_soon(try_recv_from_callback, rc);
    weft_sleep(0.1);
    cr_expect_eq(rc[0], 0);
    cr_expect_eq(rc[1], 0);
    cr_expect_eq(rc[2], WEFT_ENOTINLOOP);
    return NULL;
}

Test(chan, errors_are_reported_with_messages)
{
    trace_reset();
    cr_assert_eq(run_virtual(errors_main, NULL, NULL), 0);
}

Test(chan, new_and_calls_outside_a_loop)
{
    cr_assert_null(weft_chan_new(0, 4));
    cr_assert(errmsg_has("elem_size is 0"), "message: %s", weft_errmsg());
    cr_assert_null(weft_chan_new((size_t)1 << 31, 0));
    cr_assert(errmsg_has("1 GiB"), "message: %s", weft_errmsg());
    cr_assert_null(weft_chan_new(16, SIZE_MAX / 8));
    cr_assert(errmsg_has("does not fit"), "message: %s", weft_errmsg());
    /* A channel can be made before the loop runs; using it needs one. */
    weft_chan *ch = weft_chan_new(sizeof(int), 2);
    cr_assert_not_null(ch);
    cr_assert_eq(weft_chan_cap(ch), 2);
    int v = 1;
    cr_assert_eq(weft_chan_send(ch, &v), WEFT_ENOTINLOOP);
    cr_assert_eq(weft_chan_recv(ch, &v), WEFT_ENOTINLOOP);
    weft_select_case cases[] = {{ch, WEFT_RECV, &v, 99}};
    cr_assert_eq(weft_select(cases, 1, 0), WEFT_ENOTINLOOP);
    cr_assert(errmsg_has("running weft loop"), "message: %s", weft_errmsg());
    cr_assert_eq(weft_chan_close(ch), 0);
    cr_assert_eq(weft_chan_free(ch), 0);
}
