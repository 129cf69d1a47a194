/*
 * test_io.c — the loop's descriptor waiting (src/io.c), which the process pool and
 * later sockets stand on: a task waiting for a pipe wakes when it becomes readable
 * (the loop sleeps in the kernel meanwhile), a cancelled waiter leaves no
 * registration behind, and a hang-up wakes the waiter too. Real time: I/O is real.
 */

#include "common.h"

/* Internal (src/internal.h); the tests link the static library. */
int weft__wait_fd(int fd, uint32_t events);
enum { WAIT_IN = 1 }; /* WEFT__POLL_IN */

TestSuite(io, .timeout = 30);

static int fds[2];

static void *late_writer(void *arg)
{
    (void)arg;
    weft_sleep(0.05);
    trace("write");
    cr_expect_eq(write(fds[1], "x", 1), 1);
    return NULL;
}

static void *reader_main(void *arg)
{
    (void)arg;
    weft_task *w = weft_spawn(late_writer, NULL);
    double start = weft_time();
    int rc = weft__wait_fd(fds[0], WAIT_IN);
    trace("ready:%d", rc);
    cr_expect(weft_time() - start >= 0.045, "woke after %f s", weft_time() - start);
    char c = 0;
    cr_expect_eq(read(fds[0], &c, 1), 1);
    cr_expect_eq(c, 'x');
    /* Registered again after the first wait: a second wait works. */
    cr_expect_eq(write(fds[1], "y", 1), 1);
    cr_expect_eq(weft__wait_fd(fds[0], WAIT_IN), WAIT_IN);
    weft_await(w, NULL);
    return NULL;
}

Test(io, a_task_wakes_when_its_pipe_becomes_readable)
{
    cr_assert_eq(pipe(fds), 0);
    trace_reset();
    cr_assert_eq(weft_run(reader_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "write ready:1");
    close(fds[0]);
    close(fds[1]);
}

static void *stuck_reader(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft__wait_fd(fds[0], WAIT_IN);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    weft_task *r = weft_spawn(stuck_reader, NULL);
    weft_sleep(0.01);
    weft_cancel(r, NULL);
    void *result = NULL;
    cr_expect_eq(weft_await(r, &result), -ECANCELED);
    /* Nothing left registered: a new waiter on the same descriptor is accepted,
     * and a hang-up (the write end closed) wakes it. */
    weft_task *again = weft_spawn(stuck_reader, NULL);
    weft_sleep(0.01);
    close(fds[1]);
    cr_expect_eq(weft_await(again, &result), 0);
    cr_expect((intptr_t)result > 0, "the hang-up gave %ld", (long)(intptr_t)result);
    return NULL;
}

Test(io, a_cancelled_waiter_leaves_nothing_registered)
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_run(cancel_main, NULL, NULL), 0);
    close(fds[0]);
}
