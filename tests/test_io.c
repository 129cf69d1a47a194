/*
 * test_io.c — waiting on descriptors (src/core/fdwait.c over src/io/): weft_fd_wait
 * wakes a task when a pipe becomes readable, a hang-up wakes it with
 * WEFT_FD_ERROR, a cancelled or timed-out waiter leaves nothing behind, misuse
 * gives its own error, registrations persist (counted at epoll_ctl), and
 * weft_add_reader / weft_add_writer call back while the descriptor stays ready,
 * and an interest change refused at a poll is asked of the kernel again.
 * Real time: I/O is real.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* Every epoll_ctl the library makes comes here first (the executable's definition
 * wins over libc's), so a test can count the registrations a scenario costs. */
static int epoll_ctl_calls;
/* While positive, that many EPOLL_CTL_MOD calls fail with ENOMEM, the kernel's
 * registration left as it was (a kernel out of memory). */
static int mods_to_refuse;

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    epoll_ctl_calls++;
    if (op == EPOLL_CTL_MOD && mods_to_refuse > 0) {
        mods_to_refuse--;
        errno = ENOMEM;
        return -1;
    }
    return (int)syscall(SYS_epoll_ctl, epfd, op, fd, event);
}

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
    int rc = weft_fd_wait(fds[0], WEFT_READABLE);
    trace("ready:%d", rc);
    cr_expect(weft_time() - start >= 0.045, "woke after %f s", weft_time() - start);
    char c = 0;
    cr_expect_eq(read(fds[0], &c, 1), 1);
    cr_expect_eq(c, 'x');
    /* Still registered after the first wait: a second wait works at once. */
    cr_expect_eq(write(fds[1], "y", 1), 1);
    cr_expect_eq(weft_fd_wait(fds[0], WEFT_READABLE), WEFT_READABLE);
    cr_expect_eq(weft_await(w, NULL), 0);
    weft_fd_forget(fds[0]);
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
    int rc = weft_fd_wait(fds[0], WEFT_READABLE);
    if (rc < 0)
        return weft_fail(rc, "%s", weft_errmsg());
    return (void *)(intptr_t)rc;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    weft_task *r = weft_spawn(stuck_reader, NULL);
    weft_sleep(0.01);
    weft_cancel(r, NULL);
    void *result = NULL;
    cr_expect_eq(weft_await(r, &result), -ECANCELED);
    /* Nothing of the cancelled waiter is left: a new waiter on the same
     * descriptor is accepted, and a hang-up (the write end closed) wakes it. */
    weft_task *again = weft_spawn(stuck_reader, NULL);
    weft_sleep(0.01);
    close(fds[1]);
    cr_expect_eq(weft_await(again, &result), 0);
    cr_expect_eq((intptr_t)result, WEFT_READABLE | WEFT_FD_ERROR, "the hang-up gave %ld", (long)(intptr_t)result);
    cr_expect_eq(weft_fd_close(fds[0]), 0);
    return NULL;
}

Test(io, a_cancelled_waiter_leaves_nothing_registered_and_a_hang_up_wakes)
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_run(cancel_main, NULL, NULL), 0);
}

static void *timeout_main(void *arg)
{
    (void)arg;
    weft_timeout *scope = weft_timeout_enter(0.03);
    cr_expect_neq(scope, NULL);
    double start = weft_time();
    int rc = weft_fd_wait(fds[0], WEFT_READABLE);
    cr_expect_eq(rc, -ECANCELED, "inside the expired scope: %d", rc);
    cr_expect_eq(weft_timeout_exit(scope, rc), -ETIMEDOUT);
    cr_expect(weft_time() - start >= 0.025);
    /* The descriptor can be waited on again. */
    cr_expect_eq(write(fds[1], "z", 1), 1);
    cr_expect_eq(weft_fd_wait(fds[0], WEFT_READABLE), WEFT_READABLE);
    weft_fd_forget(fds[0]);
    return NULL;
}

Test(io, a_timeout_scope_interrupts_the_wait)
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_run(timeout_main, NULL, NULL), 0);
    close(fds[0]);
    close(fds[1]);
}

static void *busy_main(void *arg)
{
    (void)arg;
    weft_task *r = weft_spawn(stuck_reader, NULL);
    weft_sleep(0.01);
    /* A second reader of the same descriptor is refused, naming the rule. */
    cr_expect_eq(weft_fd_wait(fds[0], WEFT_READABLE), -EBUSY);
    cr_expect(strstr(weft_errmsg(), "already has a reader") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_add_reader(fds[0], (weft_callback_fn)abort, NULL), -EBUSY);
    /* A writer of the other end is another descriptor: fine. */
    cr_expect_eq(weft_fd_wait(fds[1], WEFT_WRITABLE), WEFT_WRITABLE);
    /* Forgetting the descriptor wakes its waiter with -EBADF. */
    cr_expect(weft_fd_forget(fds[0]));
    cr_expect_eq(weft_await(r, NULL), -EBADF);
    cr_expect(strstr(weft_errmsg(), "forgotten") != NULL, "%s", weft_errmsg());
    weft_fd_forget(fds[1]);
    return NULL;
}

Test(io, one_waiter_per_direction_and_forget_wakes_it)
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_run(busy_main, NULL, NULL), 0);
    close(fds[0]);
    close(fds[1]);
}

static void *misuse_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_fd_wait(-1, WEFT_READABLE), -EBADF);
    cr_expect_eq(weft_fd_wait(fds[0], 0), -EINVAL);
    cr_expect_eq(weft_fd_wait(fds[0], 8), -EINVAL);
    int closed = dup(fds[0]);
    close(closed);
    cr_expect_eq(weft_fd_wait(closed, WEFT_READABLE), -EBADF);
    cr_expect(strstr(weft_errmsg(), "not an open descriptor") != NULL, "%s", weft_errmsg());
    char path[] = "/tmp/weft-io-XXXXXX";
    int file = mkstemp(path);
    cr_expect(file >= 0);
    unlink(path);
    cr_expect_eq(weft_fd_wait(file, WEFT_READABLE), -EPERM);
    cr_expect(strstr(weft_errmsg(), "regular file") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_add_reader(file, (weft_callback_fn)abort, NULL), -EPERM);
    close(file);
    cr_expect_eq(weft_add_reader(fds[0], NULL, NULL), -EINVAL);
    return NULL;
}

Test(io, misuse_gives_its_own_error)
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_run(misuse_main, NULL, NULL), 0);
    cr_assert_eq(weft_fd_wait(fds[0], WEFT_READABLE), WEFT_ENOTINLOOP);
    cr_assert_eq(weft_add_reader(fds[0], (weft_callback_fn)abort, NULL), WEFT_ENOTINLOOP);
    close(fds[0]);
    close(fds[1]);
}

/* Two tasks bounce a byte over a socket pair: each wait is on a descriptor weft
 * already watches, so after the first round no wait costs an epoll_ctl. */
enum { ROUNDS = 2000 };

static void *bouncer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (int i = 0; i < ROUNDS; i++) {
        char c;
        ssize_t n;
        while ((n = read(fd, &c, 1)) < 0 && errno == EAGAIN) {
            int rc = weft_fd_wait(fd, WEFT_READABLE);
            if (rc < 0)
                return weft_fail(rc, "wait: %s", weft_errmsg());
        }
        if (n != 1 || write(fd, &c, 1) != 1)
            return weft_fail(-EIO, "bounce %d failed", i);
    }
    return NULL;
}

static void *persist_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_expect_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    weft_task *a = weft_spawn(bouncer, (void *)(intptr_t)sv[0]);
    weft_task *b = weft_spawn(bouncer, (void *)(intptr_t)sv[1]);
    cr_expect_eq(write(sv[0], "!", 1), 1);
    int before = epoll_ctl_calls;
    cr_expect_eq(weft_await(a, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_await(b, NULL), 0, "%s", weft_errmsg());
    int calls = epoll_ctl_calls - before;
    /* One-shot registrations cost two per wait (~2 * 2 * ROUNDS). */
    cr_expect(calls <= 8, "%d epoll_ctl calls for %d round trips", calls, ROUNDS);
    cr_expect_eq(weft_fd_close(sv[0]), 0);
    cr_expect_eq(weft_fd_close(sv[1]), 0);
    return NULL;
}

Test(io, registrations_persist_across_waits)
{
    cr_assert_eq(weft_run(persist_main, NULL, NULL), 0);
}

/* ---- callbacks ---------------------------------------------------------- */

static int reads_seen;

static void on_readable(void *arg)
{
    int fd = *(int *)arg;
    char c;
    /* Level-triggered: called again on the next iteration while data remains. */
    if (read(fd, &c, 1) == 1)
        trace("r%c", c);
    if (++reads_seen == 3) {
        cr_expect(weft_remove_reader(fd));
        cr_expect(!weft_remove_reader(fd));
    }
}

static void on_writable(void *arg)
{
    (void)arg;
    trace("w");
    cr_expect(weft_remove_writer(fds[1]));
}

static void *callback_main(void *arg)
{
    (void)arg;
    cr_expect_eq(write(fds[1], "abcd", 4), 4);
    cr_expect_eq(weft_add_reader(fds[0], on_readable, &fds[0]), 0);
    cr_expect_eq(weft_add_writer(fds[1], on_writable, NULL), 0);
    /* A waiting task cannot share the reader's direction. */
    cr_expect_eq(weft_fd_wait(fds[0], WEFT_READABLE), -EBUSY);
    weft_sleep(0.05);
    /* Removed after three reads: the fourth byte is still there. */
    char c = 0;
    cr_expect_eq(read(fds[0], &c, 1), 1);
    cr_expect_eq(c, 'd');
    weft_fd_forget(fds[0]);
    weft_fd_forget(fds[1]);
    return NULL;
}

Test(io, reader_and_writer_callbacks_run_while_ready)
{
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    trace_reset();
    reads_seen = 0;
    cr_assert_eq(weft_run(callback_main, NULL, NULL), 0);
    cr_assert_eq(reads_seen, 3);
    cr_assert(strstr(trace_text, "ra") && strstr(trace_text, "rb") && strstr(trace_text, "rc"), "%s", trace_text);
    cr_assert(strstr(trace_text, "w") != NULL, "%s", trace_text);
    close(fds[0]);
    close(fds[1]);
}

/* A callback that forgets and closes another ready descriptor in the same poll:
 * the other's event, already fetched, must not be delivered (ASan would see a
 * use of the forgotten record otherwise; here the trace shows it). */
static int pa[2], pb[2];

static void forget_other(void *arg)
{
    (void)arg;
    trace("a");
    weft_remove_reader(pa[0]);
    if (weft_fd_forget(pb[0]))
        trace("forgot-b");
}

static void never(void *arg)
{
    (void)arg;
    trace("b-ran");
}

static void *forget_main(void *arg)
{
    (void)arg;
    cr_expect_eq(write(pa[1], "1", 1), 1);
    cr_expect_eq(write(pb[1], "1", 1), 1);
    cr_expect_eq(weft_add_reader(pa[0], forget_other, NULL), 0);
    cr_expect_eq(weft_add_reader(pb[0], never, NULL), 0);
    weft_sleep(0.02);
    return NULL;
}

Test(io, a_descriptor_forgotten_during_dispatch_gets_no_callback)
{
    cr_assert_eq(pipe(pa), 0);
    cr_assert_eq(pipe(pb), 0);
    trace_reset();
    cr_assert_eq(weft_run(forget_main, NULL, NULL), 0);
    /* Whichever came first in the poll, b never runs after a forgot it; if b's
     * event came first, b ran before a and a forgot nothing left to forget. */
    cr_assert(strcmp(trace_text, "a forgot-b") == 0 || strcmp(trace_text, "b-ran a forgot-b") == 0 ||
                  strncmp(trace_text, "b-ran", 5) == 0,
              "%s", trace_text);
    cr_assert(strstr(trace_text, "forgot-b b-ran") == NULL, "%s", trace_text);
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
}

/* A descriptor closed through weft_fd_close and reopened under the same number
 * is watched afresh. */
static void *reuse_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 3; round++) {
        int p[2];
        cr_expect_eq(pipe(p), 0);
        cr_expect_eq(write(p[1], "x", 1), 1);
        cr_expect_eq(weft_fd_wait(p[0], WEFT_READABLE), WEFT_READABLE);
        cr_expect_eq(weft_fd_close(p[0]), 0);
        close(p[1]);
    }
    return NULL;
}

Test(io, closed_and_reopened_descriptors_are_watched_afresh)
{
    cr_assert_eq(weft_run(reuse_main, NULL, NULL), 0);
}

/* asyncio's way of closing: remove the callback, then close. The next descriptor
 * opened under the same number is watched afresh. (The kernel registration used to
 * wait for the next poll to go, and the new descriptor never reported.) */
static int trap_calls;

static void trap_cb(void *arg)
{
    int fd = *(int *)arg;
    char c;
    if (read(fd, &c, 1) == 1)
        trap_calls++;
}

static void *remove_then_close_main(void *arg)
{
    (void)arg;
    static int a[2], b[2];
    cr_expect_eq(pipe(a), 0);
    cr_expect_eq(fcntl(a[0], F_SETFL, O_NONBLOCK), 0);
    cr_expect_eq(weft_add_reader(a[0], trap_cb, &a[0]), 0);
    cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect(weft_remove_reader(a[0]));
    int number = a[0];
    close(a[0]);
    close(a[1]);
    cr_expect_eq(pipe(b), 0);
    cr_expect_eq(b[0], number, "the kernel gave another number; the scenario needs the same");
    cr_expect_eq(fcntl(b[0], F_SETFL, O_NONBLOCK), 0);
    cr_expect_eq(write(b[1], "x", 1), 1);
    cr_expect_eq(weft_add_reader(b[0], trap_cb, &b[0]), 0);
    cr_expect_eq(weft_sleep(0.05), 0);
    cr_expect_eq(trap_calls, 1, "the reused descriptor's callback ran %d times", trap_calls);
    weft_fd_forget(b[0]);
    close(b[0]);
    close(b[1]);
    return NULL;
}

Test(io, remove_reader_then_close_is_safe_for_the_next_descriptor)
{
    trap_calls = 0;
    cr_assert_eq(weft_run(remove_then_close_main, NULL, NULL), 0);
}

#ifdef WEFT_TEST_ASSERTS
/* Closing without weft_fd_forget and reopening under the same number: Debug and
 * sanitizer builds notice (the file changed), say so, and register the new one. */
static void *reopened_main(void *arg)
{
    (void)arg;
    int p[2], q[2];
    cr_expect_eq(pipe(p), 0);
    cr_expect_eq(write(p[1], "x", 1), 1);
    cr_expect_eq(weft_fd_wait(p[0], WEFT_READABLE), WEFT_READABLE);
    int number = p[0];
    close(p[0]); /* the misuse: no weft_fd_forget */
    close(p[1]);
    cr_expect_eq(pipe(q), 0);
    cr_expect_eq(q[0], number);
    cr_expect_eq(write(q[1], "y", 1), 1);
    weft_timeout *scope = weft_timeout_enter(1);
    int rc = weft_timeout_exit(scope, weft_fd_wait(q[0], WEFT_READABLE));
    cr_expect_eq(rc, WEFT_READABLE, "the reopened descriptor gave %d", rc);
    weft_fd_close(q[0]);
    close(q[1]);
    return NULL;
}

static int reopened_body(void)
{
    return weft_run(reopened_main, NULL, NULL) == 0 ? 0 : 1;
}

Test(io, a_descriptor_closed_without_forget_is_reported_in_debug_builds)
{
    child_outcome out;
    run_forked(reopened_body, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %d: %s", out.status,
              out.stderr_text);
    cr_assert(strstr(out.stderr_text, "was closed and opened again without weft_fd_forget") != NULL, "%s",
              out.stderr_text);
}
#endif

/* Virtual time with a descriptor waited on: when nothing is ready the loop looks
 * at the descriptors without waiting and moves time on to the next timer, which
 * here is what makes the pipe readable. (It used to wait on the pipe forever.) */
static void *virtual_reader_main(void *arg)
{
    (void)arg;
    weft_task *w = weft_spawn(late_writer, NULL); /* writes after 0.05 s of (virtual) sleep */
    cr_expect_eq(weft_fd_wait(fds[0], WEFT_READABLE), WEFT_READABLE);
    cr_expect(weft_time() >= 0.05 - 1e-9, "woke at %f", weft_time());
    cr_expect_eq(weft_await(w, NULL), 0);
    weft_fd_forget(fds[0]);
    return NULL;
}

Test(io, virtual_time_moves_on_while_a_descriptor_is_waited_on)
{
    cr_assert_eq(pipe(fds), 0);
    trace_reset();
    cr_assert_eq(run_virtual(virtual_reader_main, NULL, NULL), 0);
    close(fds[0]);
    close(fds[1]);
}

/* ---- a change refused at the poll ------------------------------------------------ */

#define REFUSED_BYTES (1 << 20)
static char refused_buf[REFUSED_BYTES];

/* The stream's peer: reads everything, after the stream found its socket full. */
static void *slow_peer(void *arg)
{
    int fd = *(int *)arg;
    usleep(100 * 1000);
    static char sink[65536];
    size_t total = 0;
    while (total < REFUSED_BYTES) {
        ssize_t n = read(fd, sink, sizeof sink);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    return (void *)(uintptr_t)total;
}

/* The queued change asking for writability is refused at the poll (one MOD fails):
 * the stream is told (POLL_ERR), finds its socket still full and asks for the same
 * events again, which must register anew. Before, the watcher kept wanting them
 * without the kernel being asked, and the drain waited for ever (found reading the
 * io layer for the network fault sweep; here a timeout scope turns the hang into
 * an error). */
static void *refused_change_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    weft_stream *s = weft_stream_from_fd(sv[0], NULL);
    cr_assert(s, "%s", weft_errmsg());
    pthread_t peer;
    cr_assert_eq(pthread_create(&peer, NULL, slow_peer, &sv[1]), 0);
    cr_expect_eq(weft_stream_write(s, refused_buf, sizeof refused_buf), 0);
    cr_expect_gt(weft_stream_write_buffer_size(s), 0, "the socket took only part");
    mods_to_refuse = 1; /* the change to writability, at the drain's poll */
    weft_timeout *to = weft_timeout_enter(5);
    cr_assert(to);
    int rc = weft_timeout_exit(to, weft_stream_drain(s));
    cr_expect_eq(rc, 0, "drain gave %d (%s)", rc, weft_errmsg());
    cr_expect_eq(mods_to_refuse, 0, "the refusal happened");
    if (rc == 0) {
        cr_expect_eq(weft_stream_close(s), 0, "%s", weft_errmsg());
    } else {
        cr_expect_eq(weft_stream_abort(s), 0); /* a close would wait for ever too */
    }
    void *total;
    pthread_join(peer, &total);
    if (rc == 0)
        cr_expect_eq((uintptr_t)total, REFUSED_BYTES);
    close(sv[1]);
    return NULL;
}

Test(io, a_change_refused_at_the_poll_is_asked_again)
{
    cr_assert_eq(weft_run(refused_change_main, NULL, NULL), 0, "%s", weft_errmsg());
}
