/*
 * test_process.c — subprocesses (src/proc/process.c) with real children (/bin/sh,
 * cat, head, yes, sleep, ls, grep): the pipes as streams (readline, readexactly,
 * drain), communicate (both outputs, 10 MB each way, a child that leaves before
 * taking its input), returncodes (exit status, -signal), terminate, kill and
 * send_signal, the child's descriptors (only 0-2: none leaks; stdio kinds;
 * sources below 3 swapped), its signal mask and SIGPIPE, environment and working
 * directory, a missing program, cancelled waits and communicates, 1,000 children
 * with no zombie and no descriptor left (counted in /proc), a freed child still
 * running, the loop's end, the process pool beside it, and misused handles.
 * Real time: the children are real.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

TestSuite(process, .timeout = 60);

#define ARGV(...) ((const char *[]){__VA_ARGS__, NULL})

/* ---- what /proc says ------------------------------------------------------ */

/* Descriptors open in this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

/* Processes whose parent is this one; *zombies of them not reaped. */
static int count_children(int *zombies)
{
    DIR *d = opendir("/proc");
    cr_assert(d);
    int n = 0, z = 0;
    pid_t me = getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        char *close_paren = strrchr(buf, ')');
        char state;
        int ppid;
        if (!close_paren || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2)
            continue;
        if (ppid == me) {
            n++;
            if (state == 'Z')
                z++;
        }
    }
    closedir(d);
    if (zombies)
        *zombies = z;
    return n;
}

/* Whether pid is a live process or a zombie. */
static bool pid_exists(pid_t pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}

static weft_process *start(const char *const argv[], const weft_process_options *o)
{
    weft_process *p = weft_create_subprocess_exec(argv, o);
    cr_assert(p, "create_subprocess_exec(%s): %s", argv[0], weft_errmsg());
    return p;
}

static const weft_process_options pipes_out = {.out = WEFT_STDIO_PIPE};
static const weft_process_options pipes_all = {.in = WEFT_STDIO_PIPE, .out = WEFT_STDIO_PIPE, .err = WEFT_STDIO_PIPE};

/* ---- pipes as streams ---------------------------------------------------- */

static void *streams_main(void *arg)
{
    (void)arg;
    weft_process *p = start(ARGV("cat"), &pipes_all);
    weft_stream *in = weft_process_stdin(p), *out = weft_process_stdout(p);
    cr_assert(in && out && weft_process_stderr(p));
    const char *line;
    for (int i = 0; i < 3; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "line %d\n", i);
        cr_expect_eq(weft_stream_write(in, text, (size_t)len), 0);
        cr_expect_eq(weft_stream_drain(in), 0);
        ssize_t n = weft_stream_readline(out, &line);
        cr_expect_eq(n, len, "readline gave %zd: %s", n, weft_errmsg());
        cr_expect_eq(memcmp(line, text, (size_t)len), 0);
    }
    cr_expect_eq(weft_stream_write(in, "0123456789", 10), 0);
    char buf[10];
    cr_expect_eq(weft_stream_readexactly(out, buf, 10), 10);
    cr_expect_eq(memcmp(buf, "0123456789", 10), 0);
    int rc = -1;
    cr_expect_eq(weft_process_returncode(p, &rc), 0, "cat runs until its stdin ends");
    cr_expect_eq(rc, -1, "returncode untouched while running");
    cr_expect_eq(weft_stream_close(in), 0, "closing stdin sends end of file");
    cr_expect_eq(weft_stream_readline(out, &line), 0, "cat's stdout ends");
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, 0);
    cr_expect_eq(weft_process_returncode(p, &rc), 1);
    cr_expect_null(weft_process_stdin(p), "stdin was closed");
    cr_expect_eq(weft_errcode(), WEFT_ECLOSED);
    cr_expect_eq(weft_process_free(p), 0);
    return NULL;
}

Test(process, pipes_are_streams)
{
    cr_assert_eq(weft_run(streams_main, NULL, NULL), 0);
}

/* ---- communicate ---------------------------------------------------------- */

static void *communicate_main(void *arg)
{
    (void)arg;
    weft_process *p = weft_create_subprocess_shell("echo out; echo err >&2; read x; echo \"got $x\"; exit 3",
                                                   &pipes_all);
    cr_assert(p, "%s", weft_errmsg());
    char *out, *err;
    size_t out_len, err_len;
    cr_expect_eq(weft_process_communicate(p, "hi\n", 3, &out, &out_len, &err, &err_len), 0, "%s", weft_errmsg());
    cr_expect_str_eq(out, "out\ngot hi\n");
    cr_expect_eq(out_len, 11);
    cr_expect_str_eq(err, "err\n");
    cr_expect_eq(err_len, 4);
    int rc;
    cr_expect_eq(weft_process_returncode(p, &rc), 1, "communicate returns once the child has exited");
    cr_expect_eq(rc, 3);
    free(out);
    free(err);
    weft_process_free(p);

    /* Only stdout a pipe: err comes back NULL. */
    p = start(ARGV("echo", "only"), &pipes_out);
    cr_expect_eq(weft_process_communicate(p, NULL, 0, &out, &out_len, &err, &err_len), 0);
    cr_expect_str_eq(out, "only\n");
    cr_expect_null(err);
    cr_expect_eq(err_len, 0);
    free(out);
    weft_process_free(p);
    return NULL;
}

Test(process, communicate)
{
    cr_assert_eq(weft_run(communicate_main, NULL, NULL), 0);
}

#define BIG (10u << 20)

static void *big_main(void *arg)
{
    (void)arg;
    /* 10 MB through cat: its stdout fills while stdin is still being written, so
     * a communicate that did one after the other would never end. */
    char *input = malloc(BIG);
    cr_assert(input);
    for (size_t i = 0; i < BIG; i++)
        input[i] = (char)('a' + i % 26);
    weft_process *p = start(ARGV("cat"), &pipes_all);
    char *out;
    size_t out_len;
    cr_expect_eq(weft_process_communicate(p, input, BIG, &out, &out_len, NULL, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(out_len, BIG);
    cr_expect(out && memcmp(out, input, BIG) == 0, "10 MB back, byte for byte");
    free(out);
    weft_process_free(p);

    /* 1 MB to stderr before 10 MB to stdout: stdout alone would block it. */
    p = weft_create_subprocess_shell("head -c 1048576 /dev/zero >&2; head -c 10485760 /dev/zero",
                                     &(weft_process_options){.out = WEFT_STDIO_PIPE, .err = WEFT_STDIO_PIPE});
    cr_assert(p);
    char *err;
    size_t err_len;
    cr_expect_eq(weft_process_communicate(p, NULL, 0, &out, &out_len, &err, &err_len), 0, "%s", weft_errmsg());
    cr_expect_eq(out_len, BIG);
    cr_expect_eq(err_len, 1u << 20);
    free(out);
    free(err);
    /* Outputs nobody keeps are still read. */
    weft_process_free(p);
    p = weft_create_subprocess_shell("head -c 1048576 /dev/zero >&2; head -c 10485760 /dev/zero",
                                     &(weft_process_options){.out = WEFT_STDIO_PIPE, .err = WEFT_STDIO_PIPE});
    cr_expect_eq(weft_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL), 0);
    int rc;
    cr_expect_eq(weft_process_returncode(p, &rc), 1);
    cr_expect_eq(rc, 0);
    weft_process_free(p);
    free(input);
    return NULL;
}

Test(process, communicate_ten_megabytes)
{
    cr_assert_eq(weft_run(big_main, NULL, NULL), 0);
}

static void *early_exit_main(void *arg)
{
    (void)arg;
    size_t n = 4u << 20;
    char *input = calloc(1, n);
    cr_assert(input);
    memcpy(input, "0123456789abcdef", 16);
    /* head takes 10 bytes and leaves: the rest of stdin meets EPIPE. */
    weft_process *p = start(ARGV("head", "-c", "10"), &pipes_all);
    char *out;
    size_t out_len;
    cr_expect_eq(weft_process_communicate(p, input, n, &out, &out_len, NULL, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(out_len, 10);
    cr_expect_eq(memcmp(out, "0123456789", 10), 0);
    free(out);
    int rc;
    cr_expect_eq(weft_process_returncode(p, &rc), 1);
    cr_expect_eq(rc, 0);
    weft_process_free(p);
    /* A child that never reads its stdin at all. */
    p = start(ARGV("true"), &(weft_process_options){.in = WEFT_STDIO_PIPE});
    cr_expect_eq(weft_process_communicate(p, input, n, NULL, NULL, NULL, NULL), 0, "%s", weft_errmsg());
    weft_process_free(p);
    free(input);
    return NULL;
}

Test(process, communicate_child_leaves_early)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test */
    cr_assert_eq(weft_run(early_exit_main, NULL, NULL), 0);
}

/* ---- returncode, signals -------------------------------------------------- */

static void *signals_main(void *arg)
{
    (void)arg;
    int rc = 12345;
    weft_process *p = start(ARGV("sleep", "10"), NULL);
    cr_expect_gt(weft_process_pid(p), 0);
    cr_expect_eq(weft_process_returncode(p, &rc), 0, "none while running");
    cr_expect_eq(weft_process_terminate(p), 0);
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, -SIGTERM, "killed by SIGTERM: %d", rc);
    cr_expect_eq(weft_process_returncode(p, &rc), 1);
    cr_expect_eq(rc, -SIGTERM);
    cr_expect_eq(weft_process_wait(p, &rc), 0, "a second wait returns at once");
    cr_expect_eq(weft_process_kill(p), -ESRCH, "reaped: no signal to a recycled pid");
    cr_expect(strstr(weft_errmsg(), "has exited (returncode -15)"), "%s", weft_errmsg());
    weft_process_free(p);

    p = start(ARGV("sleep", "10"), NULL);
    cr_expect_eq(weft_process_kill(p), 0);
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, -SIGKILL);
    weft_process_free(p);

    p = start(ARGV("sleep", "10"), NULL);
    cr_expect_eq(weft_process_send_signal(p, SIGUSR1), 0);
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, -SIGUSR1);
    cr_expect_eq(weft_process_send_signal(p, 0), -ESRCH);
    weft_process_free(p);

    p = start(ARGV("sleep", "10"), NULL);
    cr_expect_eq(weft_process_send_signal(p, 999), -EINVAL);
    cr_expect_eq(weft_process_send_signal(p, 0), 0, "signal 0: the child is there");
    weft_process_free(p);

    p = weft_create_subprocess_shell("exit 7", NULL);
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, 7);
    /* The child has exited and was reaped: a signal is refused, not sent. */
    cr_expect_eq(weft_process_terminate(p), -ESRCH);
    weft_process_free(p);

    p = weft_create_subprocess_shell("weft-no-such-command-xyz 2>/dev/null", NULL);
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, 127, "the shell's own not-found");
    weft_process_free(p);
    return NULL;
}

Test(process, returncode_and_signals)
{
    cr_assert_eq(weft_run(signals_main, NULL, NULL), 0);
}

/* A task that waits; a second task waiting on the same process. */
static void *waiter(void *arg)
{
    int rc = 0;
    int err = weft_process_wait(arg, &rc);
    return (void *)(intptr_t)(err ? err : rc);
}

static void *many_waiters_main(void *arg)
{
    (void)arg;
    weft_process *p = weft_create_subprocess_shell("sleep 0.1; exit 5", NULL);
    cr_assert(p);
    weft_task *t[3] = {weft_spawn(waiter, p), weft_spawn(waiter, p), weft_spawn(waiter, p)};
    void *r[3];
    cr_expect_eq(weft_gather(t, 3, r, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq((intptr_t)r[i], 5);
    weft_process_free(p);
    return NULL;
}

Test(process, many_tasks_wait_for_one_child)
{
    cr_assert_eq(weft_run(many_waiters_main, NULL, NULL), 0);
}

static void *killed_mid_write_main(void *arg)
{
    (void)arg;
    /* yes writes for ever; it is killed while writing, and its stdout ends. */
    weft_process *p = start(ARGV("yes", "weft"), &pipes_out);
    weft_stream *out = weft_process_stdout(p);
    const char *line;
    for (int i = 0; i < 1000; i++) {
        cr_expect_eq(weft_stream_readline(out, &line), 5);
        cr_expect_eq(memcmp(line, "weft\n", 5), 0);
    }
    cr_expect_eq(weft_process_kill(p), 0);
    int rc;
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    cr_expect_eq(rc, -SIGKILL);
    char *rest = NULL;
    ssize_t n = weft_stream_read_to_eof(out, &rest);
    cr_expect_geq(n, 0, "what it wrote before dying, then end of file: %s", weft_errmsg());
    cr_expect_eq(n % 5, 0, "only whole lines: %zd", n);
    free(rest);
    weft_process_free(p);
    return NULL;
}

Test(process, child_killed_mid_write)
{
    cr_assert_eq(weft_run(killed_mid_write_main, NULL, NULL), 0);
}

/* ---- cancellation ----------------------------------------------------------- */

static void *cancelled_wait_main(void *arg)
{
    (void)arg;
    weft_process *p = start(ARGV("sleep", "10"), NULL);
    pid_t pid = weft_process_pid(p);
    weft_task *t = weft_spawn(waiter, p);
    cr_expect_eq(weft_sleep(0.05), 0);
    weft_cancel(t, NULL);
    void *r;
    cr_expect_eq(weft_await(t, &r), -ECANCELED);
    int rc;
    cr_expect_eq(weft_process_returncode(p, &rc), 0, "the child runs on");
    /* A timeout around a wait is a cancellation too. */
    weft_timeout *to = weft_timeout_enter(0.05);
    int w = weft_process_wait(p, &rc);
    cr_expect_eq(weft_timeout_exit(to, w), -ETIMEDOUT);
    cr_expect_eq(weft_process_returncode(p, &rc), 0);
    /* Freed while running: killed, and reaped without anyone waiting. */
    weft_process_free(p);
    for (int i = 0; i < 200 && pid_exists(pid); i++)
        cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect_not(pid_exists(pid), "the freed child was killed and reaped");
    return NULL;
}

Test(process, cancelled_wait)
{
    cr_assert_eq(weft_run(cancelled_wait_main, NULL, NULL), 0);
    int zombies;
    cr_expect_eq(count_children(&zombies), 0);
}

static void *communicator(void *arg)
{
    char *out = NULL, *err = NULL;
    int rc = weft_process_communicate(arg, "abc", 3, &out, NULL, &err, NULL);
    cr_expect_null(out);
    cr_expect_null(err);
    return (void *)(intptr_t)rc;
}

static void *cancelled_communicate_main(void *arg)
{
    (void)arg;
    /* Takes its input, writes some output, then sleeps: communicate waits. */
    weft_process *p = weft_create_subprocess_shell("cat; echo tail; echo more >&2; sleep 10", &pipes_all);
    cr_assert(p);
    pid_t pid = weft_process_pid(p);
    weft_task *t = weft_spawn(communicator, p);
    cr_expect_eq(weft_sleep(0.1), 0);
    weft_cancel(t, NULL);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    int rc;
    cr_expect_eq(weft_process_returncode(p, &rc), 0, "the child runs on");
    cr_expect_null(weft_process_stdin(p), "stdin was closed by communicate");
    cr_expect_not_null(weft_process_stdout(p), "stdout stays open");
    weft_process_free(p);
    for (int i = 0; i < 200 && pid_exists(pid); i++)
        cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect_not(pid_exists(pid));
    return NULL;
}

Test(process, cancelled_communicate)
{
    cr_assert_eq(weft_run(cancelled_communicate_main, NULL, NULL), 0);
}

static void *creator(void *arg)
{
    (void)arg;
    weft_process *p = weft_create_subprocess_exec(ARGV("sleep", "30"), &pipes_all);
    if (p) {
        weft_process_free(p);
        return weft_fail(-EIO, "the start was not cancelled");
    }
    return weft_fail(weft_errcode(), "%s", weft_errmsg());
}

static void *cancelled_start_main(void *arg)
{
    (void)arg;
    int fds = count_fds();
    for (int i = 0; i < 10; i++) {
        weft_task *t = weft_spawn(creator, NULL);
        cr_expect_eq(weft_yield(), 0); /* it runs, and waits for its start's thread */
        weft_cancel(t, NULL);
        cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    }
    /* The children started meanwhile are killed and reaped in the background. A
     * start's thread holds the child's ends of the pipes until the child has
     * exec'd, so the descriptors say when every start is over. */
    int zombies;
    for (int i = 0; i < 300 && (count_children(&zombies) > 0 || count_fds() != fds); i++)
        cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect_eq(count_children(&zombies), 0, "no child of a cancelled start is left");
    cr_expect_eq(count_fds(), fds, "no pipe or pidfd of a cancelled start is left");
    /* A task already cancelled starts nothing. */
    weft_cancel(weft_current(), NULL);
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), NULL));
    cr_expect_eq(weft_errcode(), -ECANCELED);
    cr_expect_eq(weft_uncancel(), 0);
    cr_expect_eq(count_children(&zombies), 0);
    return NULL;
}

Test(process, cancelled_start)
{
    cr_assert_eq(weft_run(cancelled_start_main, NULL, NULL), 0);
}

/* Tasks cancelled while their starts are out, and main returns at once: the loop's
 * end waits for the starts' threads, then kills and reaps their children. */
static void *start_then_leave_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        weft_detach(weft_spawn(creator, NULL));
    (void)weft_yield();
    return NULL;
}

static int start_then_leave_body(void)
{
    if (weft_run(start_then_leave_main, NULL, NULL) != 0)
        return 40;
    int zombies;
    return count_children(&zombies) == 0 ? 0 : 41;
}

Test(process, loop_end_waits_for_starts)
{
    child_outcome out;
    run_forked(start_then_leave_body, &out);
    cr_assert(WIFEXITED(out.status), "%s", out.stderr_text);
    cr_expect_eq(WEXITSTATUS(out.status), 0, "status %d: %s", WEXITSTATUS(out.status), out.stderr_text);
}

static weft_process *from_callback;

static void start_in_callback(void *arg)
{
    (void)arg;
    from_callback = weft_create_subprocess_exec(ARGV("sh", "-c", "exit 9"), NULL);
}

static void *callback_main(void *arg)
{
    (void)arg;
    weft_call_soon(start_in_callback, NULL);
    cr_expect_eq(weft_yield(), 0);
    cr_assert(from_callback, "a callback starts a child without suspending: %s", weft_errmsg());
    int rc;
    cr_expect_eq(weft_process_wait(from_callback, &rc), 0);
    cr_expect_eq(rc, 9);
    weft_process_free(from_callback);
    return NULL;
}

Test(process, started_from_a_callback)
{
    cr_assert_eq(weft_run(callback_main, NULL, NULL), 0);
}

/* ---- what the child gets -------------------------------------------------- */

static char *run_for_output(const char *const argv[], const weft_process_options *o, int *rc)
{
    weft_process *p = start(argv, o);
    char *out = NULL;
    cr_expect_eq(weft_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_process_returncode(p, rc), 1);
    weft_process_free(p);
    return out;
}

static void *no_leak_main(void *arg)
{
    (void)arg;
    int rc;
    /* Descriptor 100 is not close-on-exec: it still must not reach the child. */
    int fd = open("/dev/null", O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dup2(fd, 100), 100);
    close(fd);
    char *out = run_for_output(ARGV("ls", "/proc/self/fd"), &pipes_out, &rc);
    cr_expect_str_eq(out, "0\n1\n2\n3\n", "only 0-2 (3 is ls's own directory): %s", out);
    free(out);
    close(100);
    return NULL;
}

Test(process, no_other_descriptor_reaches_the_child)
{
    cr_assert_eq(weft_run(no_leak_main, NULL, NULL), 0);
}

static void *stdio_main(void *arg)
{
    (void)arg;
    int rc;
    /* stderr into stdout, in order. */
    weft_process_options merged = {.out = WEFT_STDIO_PIPE, .err = WEFT_STDIO_STDOUT};
    char *out = run_for_output(ARGV("sh", "-c", "echo one; echo two >&2; echo three"), &merged, &rc);
    cr_expect_str_eq(out, "one\ntwo\nthree\n");
    free(out);
    /* /dev/null: cat reads nothing, and stderr goes nowhere. */
    weft_process_options nulls = {.in = WEFT_STDIO_DEVNULL, .out = WEFT_STDIO_PIPE, .err = WEFT_STDIO_DEVNULL};
    out = run_for_output(ARGV("sh", "-c", "cat; echo lost >&2; echo done"), &nulls, &rc);
    cr_expect_str_eq(out, "done\n");
    free(out);
    /* A descriptor of ours, which stays ours. */
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    weft_process *p = start(ARGV("echo", "into our pipe"), &(weft_process_options){.out = WEFT_STDIO_FD, .out_fd = pfd[1]});
    cr_expect_eq(weft_process_wait(p, &rc), 0);
    weft_process_free(p);
    cr_expect_neq(fcntl(pfd[1], F_GETFD), -1, "the caller's descriptor is still open");
    close(pfd[1]);
    char buf[64] = "";
    cr_expect_eq(read(pfd[0], buf, sizeof buf - 1), 14);
    cr_expect_str_eq(buf, "into our pipe\n");
    close(pfd[0]);
    /* Refused before anything starts. */
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), &(weft_process_options){.out = WEFT_STDIO_STDOUT}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), &(weft_process_options){.in = WEFT_STDIO_FD, .in_fd = 555}));
    cr_expect_eq(weft_errcode(), -EBADF);
    cr_expect(strstr(weft_errmsg(), "descriptor 555"), "%s", weft_errmsg());
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), &(weft_process_options){.err = (weft_stdio)42}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    return NULL;
}

Test(process, stdio_kinds)
{
    cr_assert_eq(weft_run(stdio_main, NULL, NULL), 0);
}

static void *swapped_main(void *arg)
{
    weft_process *p = weft_create_subprocess_exec(ARGV("sh", "-c", "echo o; echo e >&2"), arg);
    if (!p)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    int rc = 0;
    int err = weft_process_wait(p, &rc);
    weft_process_free(p);
    return err || rc ? weft_fail(-EIO, "sh: %d %d", err, rc) : NULL;
}

/* The child's stdout given as our descriptor 2 and its stderr as our 1: each
 * dup2 in the child must not overwrite the other's source. In a forked child,
 * whose 1 and 2 are made pipes. */
static int swapped_body(void)
{
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0)
        return 10;
    dup2(a[1], 1);
    dup2(b[1], 2);
    close(a[1]);
    close(b[1]);
    weft_process_options o = {.out = WEFT_STDIO_FD, .out_fd = 2, .err = WEFT_STDIO_FD, .err_fd = 1};
    if (weft_run(swapped_main, &o, NULL) != 0)
        return 12;
    close(1);
    close(2);
    char got_a[16] = "", got_b[16] = "";
    if (read(a[0], got_a, sizeof got_a - 1) < 0 || read(b[0], got_b, sizeof got_b - 1) < 0)
        return 13;
    /* stdout ("o") went to our 2 (pipe b), stderr ("e") to our 1 (pipe a). */
    return strcmp(got_a, "e\n") == 0 && strcmp(got_b, "o\n") == 0 ? 0 : 14;
}

Test(process, stdio_sources_below_three_swapped)
{
    child_outcome out;
    run_forked(swapped_body, &out);
    cr_assert(WIFEXITED(out.status), "%s", out.stderr_text);
    cr_assert_eq(WEXITSTATUS(out.status), 0, "status %d: %s", WEXITSTATUS(out.status), out.stderr_text);
}

/* This process's own 0 and 1 closed: the pipes take those numbers, and the child
 * must still get each end where it belongs. */
static void *low_pipes_main(void *arg)
{
    (void)arg;
    weft_process *p = weft_create_subprocess_exec(ARGV("cat"), &pipes_all);
    if (!p)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    const char *line;
    int rc = weft_stream_write(weft_process_stdin(p), "ping\n", 5);
    ssize_t n = rc ? rc : weft_stream_readline(weft_process_stdout(p), &line);
    if (n != 5 || memcmp(line, "ping\n", 5) != 0)
        rc = -EIO;
    if (!rc)
        rc = weft_stream_close(weft_process_stdin(p));
    int status = -1;
    if (!rc)
        rc = weft_process_wait(p, &status);
    weft_process_free(p);
    return rc || status ? weft_fail(-EIO, "cat: %d %d", rc, status) : NULL;
}

static int low_pipes_body(void)
{
    close(0);
    close(1);
    int rc = weft_run(low_pipes_main, NULL, NULL);
    if (rc)
        fprintf(stderr, "%s\n", weft_errmsg());
    return rc ? 60 : 0;
}

Test(process, pipes_when_stdin_and_stdout_are_closed)
{
    child_outcome out;
    run_forked(low_pipes_body, &out);
    cr_assert(WIFEXITED(out.status), "%s", out.stderr_text);
    cr_expect_eq(WEXITSTATUS(out.status), 0, "status %d: %s", WEXITSTATUS(out.status), out.stderr_text);
}

static void *signal_state_main(void *arg)
{
    (void)arg;
    int rc;
    char *out = run_for_output(ARGV("grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"), &pipes_out, &rc);
    cr_assert(out);
    unsigned long long blk = 1, ign = 1;
    cr_expect_eq(sscanf(out, "SigBlk: %llx\nSigIgn: %llx", &blk, &ign), 2, "%s", out);
    cr_expect_eq(blk, 0, "an empty signal mask, whatever the parent blocks: %s", out);
    cr_expect_eq(ign & (1ull << (SIGPIPE - 1)), 0, "SIGPIPE at its default: %s", out);
    cr_expect_neq(ign & (1ull << (SIGUSR2 - 1)), 0, "other ignored signals stay ignored (exec's rule): %s", out);
    free(out);
    return NULL;
}

Test(process, child_signal_mask_and_sigpipe)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    cr_assert_eq(weft_run(signal_state_main, NULL, NULL), 0);
}

static void *env_cwd_main(void *arg)
{
    (void)arg;
    int rc;
    const char *env[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
    char *out = run_for_output(ARGV("sh", "-c", "echo \"$FOO\"; pwd; echo \"${HOME-unset}\""),
                               &(weft_process_options){.out = WEFT_STDIO_PIPE, .env = env, .cwd = "/tmp"}, &rc);
    cr_expect_str_eq(out, "bar baz\n/tmp\nunset\n");
    free(out);
    /* An environment without PATH: argv[0] is searched in /bin:/usr/bin. */
    const char *bare[] = {"X=1", NULL};
    out = run_for_output(ARGV("env"), &(weft_process_options){.out = WEFT_STDIO_PIPE, .env = bare}, &rc);
    cr_expect_str_eq(out, "X=1\n");
    free(out);
    /* After clearenv() (environ NULL), the child gets an empty environment. */
    clearenv();
    out = run_for_output(ARGV("env"), &pipes_out, &rc);
    cr_expect_str_eq(out, "");
    free(out);
    /* The child's PATH is the one searched, not ours. */
    const char *nopath[] = {"PATH=/nonexistent", NULL};
    cr_expect_null(weft_create_subprocess_exec(ARGV("sh", "-c", "true"), &(weft_process_options){.env = nopath}));
    cr_expect_eq(weft_errcode(), -ENOENT);
    /* With cwd, a relative program is taken from there. */
    out = run_for_output(ARGV("./sh", "-c", "pwd"),
                         &(weft_process_options){.out = WEFT_STDIO_PIPE, .cwd = "/usr/bin"}, &rc);
    cr_expect_str_eq(out, "/usr/bin\n");
    free(out);
    return NULL;
}

Test(process, environment_and_working_directory)
{
    cr_assert_eq(weft_run(env_cwd_main, NULL, NULL), 0);
}

static void *shell_main(void *arg)
{
    (void)arg;
    weft_process *p = weft_create_subprocess_shell("echo $((6 * 7)) | tr 2 X", &pipes_out);
    cr_assert(p);
    char *out;
    cr_expect_eq(weft_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL), 0);
    cr_expect_str_eq(out, "4X\n");
    free(out);
    weft_process_free(p);
    cr_expect_null(weft_create_subprocess_shell(NULL, NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    return NULL;
}

Test(process, shell)
{
    cr_assert_eq(weft_run(shell_main, NULL, NULL), 0);
}

/* Compact tasks share one stack, copied away while they wait: nothing of a start,
 * a wait or a communicate may live there. Several at once, so their frames move. */
static void *compact_user(void *arg)
{
    int i = (int)(intptr_t)arg;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "cat; exit %d", i);
    weft_process *p = weft_create_subprocess_shell(cmd, &pipes_all);
    if (!p)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    char input[16], *out = NULL;
    int len = snprintf(input, sizeof input, "task %d\n", i);
    int rc = weft_process_communicate(p, input, (size_t)len, &out, NULL, NULL, NULL);
    int status = -1;
    if (rc == 0)
        rc = weft_process_wait(p, &status);
    bool same = out && strcmp(out, input) == 0 && status == i;
    free(out);
    weft_process_free(p);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : same ? NULL : weft_fail(-EIO, "task %d: wrong output", i);
}

static void *compact_main(void *arg)
{
    (void)arg;
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = weft_spawn_opts(compact_user, (void *)(intptr_t)i, &(weft_spawn_options){.compact = 1});
    int errs[6];
    cr_expect_eq(weft_gather(t, 6, NULL, errs, WEFT_RETURN_EXCEPTIONS), 0);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(errs[i], 0, "task %d: %d", i, errs[i]);
    return NULL;
}

Test(process, compact_tasks)
{
    cr_assert_eq(weft_run(compact_main, NULL, NULL), 0);
}

/* ---- errors at creation --------------------------------------------------- */

static void *missing_main(void *arg)
{
    (void)arg;
    int fds = count_fds();
    cr_expect_null(weft_create_subprocess_exec(ARGV("weft-no-such-program"), &pipes_all));
    cr_expect_eq(weft_errcode(), -ENOENT);
    cr_expect(strstr(weft_errmsg(), "\"weft-no-such-program\"") && strstr(weft_errmsg(), "not found in PATH"), "%s",
              weft_errmsg());
    cr_expect_null(weft_create_subprocess_exec(ARGV("/nonexistent/prog"), NULL));
    cr_expect_eq(weft_errcode(), -ENOENT);
    cr_expect(strstr(weft_errmsg(), "\"/nonexistent/prog\"") && strstr(weft_errmsg(), "no such file"), "%s",
              weft_errmsg());
    cr_expect_null(weft_create_subprocess_exec(ARGV("/etc/passwd"), NULL));
    cr_expect_eq(weft_errcode(), -EACCES, "not executable: %s", weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "cannot run \"/etc/passwd\": Permission denied"), "%s", weft_errmsg());
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), &(weft_process_options){.cwd = "/nonexistent-dir"}));
    cr_expect_eq(weft_errcode(), -ENOENT);
    cr_expect(strstr(weft_errmsg(), "working directory \"/nonexistent-dir\""), "%s", weft_errmsg());
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), &(weft_process_options){.cwd = "/etc/passwd"}));
    cr_expect_eq(weft_errcode(), -ENOTDIR, "%s", weft_errmsg());
    cr_expect_null(weft_create_subprocess_exec(NULL, NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_create_subprocess_exec((const char *[]){NULL}, NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"),
                                               &(weft_process_options){.out = WEFT_STDIO_PIPE,
                                                                       .stream = {.high_water = 10, .low_water = 20}}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_eq(count_fds(), fds, "the pipes of the failed starts are closed");
    int zombies;
    cr_expect_eq(count_children(&zombies), 0);
    return NULL;
}

Test(process, missing_program_and_bad_options)
{
    cr_assert_eq(weft_run(missing_main, NULL, NULL), 0);
}

/* ---- many children: no zombie, no descriptor left --------------------------- */

#define CHILDREN 1000
#define WORKERS 16

static int spawned;

static void *spawner(void *arg)
{
    (void)arg;
    weft_process_options o = {.in = WEFT_STDIO_DEVNULL, .out = WEFT_STDIO_DEVNULL, .err = WEFT_STDIO_DEVNULL};
    while (spawned < CHILDREN) {
        spawned++;
        /* Every fourth one with pipes, read to the end. */
        bool piped = spawned % 4 == 0;
        weft_process *p = piped ? weft_create_subprocess_exec(ARGV("echo", "x"), &pipes_all)
                                : weft_create_subprocess_exec(ARGV("/bin/true"), &o);
        if (!p)
            return weft_fail(weft_errcode(), "%s", weft_errmsg());
        int rc = -1;
        int err = piped ? weft_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL) : 0;
        if (!err)
            err = weft_process_wait(p, &rc);
        weft_process_free(p);
        if (err || rc != 0)
            return weft_fail(err ? err : -EIO, "child %d: %d %d", spawned, err, rc);
    }
    return NULL;
}

static int fds_before;

static void *thousand_main(void *arg)
{
    (void)arg;
    fds_before = count_fds();
    weft_task *t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        t[i] = weft_spawn(spawner, NULL);
    int rc = weft_gather(t, WORKERS, NULL, NULL, 0);
    cr_expect_eq(rc, 0, "%s", weft_errmsg());
    cr_expect_eq(count_fds(), fds_before, "no descriptor left behind");
    int zombies = -1;
    cr_expect_eq(count_children(&zombies), 0, "no child left, zombie or not");
    return NULL;
}

Test(process, thousand_children_no_zombie_no_descriptor)
{
    cr_assert_eq(weft_run(thousand_main, NULL, NULL), 0);
    cr_expect_eq(spawned, CHILDREN);
}

/* ---- the loop's end ------------------------------------------------------- */

static pid_t left_pid, freed_pid;

static void *leave_running_main(void *arg)
{
    (void)arg;
    weft_process *p = weft_create_subprocess_exec(ARGV("sleep", "30"), &pipes_all);
    weft_process *q = weft_create_subprocess_exec(ARGV("sleep", "30"), NULL);
    if (!p || !q)
        return weft_fail(-EIO, "%s", weft_errmsg());
    left_pid = weft_process_pid(p);
    freed_pid = weft_process_pid(q);
    weft_process_free(q); /* killed, not yet reaped when main returns */
    return NULL;          /* p never freed */
}

static int leave_running_body(void)
{
    if (weft_run(leave_running_main, NULL, NULL) != 0)
        return 20;
    /* Both gone, and not zombies: kill(pid, 0) succeeds on a zombie. */
    if (kill(left_pid, 0) == 0 || errno != ESRCH)
        return 21;
    if (kill(freed_pid, 0) == 0 || errno != ESRCH)
        return 22;
    return 0;
}

Test(process, loop_end_kills_and_reaps)
{
    child_outcome out;
    run_forked(leave_running_body, &out);
    cr_assert(WIFEXITED(out.status), "%s", out.stderr_text);
    cr_expect_eq(WEXITSTATUS(out.status), 0, "status %d: %s", WEXITSTATUS(out.status), out.stderr_text);
    cr_expect(strstr(out.stderr_text, "\"sleep\") was never freed; weft kills it (SIGKILL), reaps it and closes "
                                      "its pipes"),
              "%s", out.stderr_text);
    cr_expect_null(strstr(out.stderr_text, "stream"), "the pipes are not reported as streams: %s", out.stderr_text);
    cr_expect_null(strstr(strstr(out.stderr_text, "never freed") + 1, "never freed"), "one report: %s",
                   out.stderr_text);
}

/* ---- beside the process pool -------------------------------------------- */

static int square(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)len;
    int *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = *(const int *)in * *(const int *)in;
    *out = r;
    *out_len = sizeof *r;
    return 0;
}

static void *pool_call(void *arg)
{
    int x = 12;
    void *out = NULL;
    size_t len = 0;
    int rc = weft_procpool_run(arg, square, &x, sizeof x, &out, &len);
    int v = rc == 0 ? *(int *)out : rc;
    free(out);
    return (void *)(intptr_t)v;
}

/* In a forked child (Criterion's process has a thread, and a pool refuses to
 * start beside one): problems are counted and written to stderr. */
static int pool_problems;

static void pool_check(bool ok, const char *what)
{
    if (!ok) {
        pool_problems++;
        fprintf(stderr, "problem: %s (%s)\n", what, weft_errmsg());
    }
}

static void *with_pool_main(void *arg)
{
    weft_procpool *pool = arg;
    for (int i = 0; i < 20; i++) {
        weft_task *t = weft_spawn(pool_call, pool);
        weft_process *p = weft_create_subprocess_shell("echo $PPID", &pipes_out);
        pool_check(p != NULL, "create");
        if (!p)
            break;
        char *out = NULL;
        pool_check(weft_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL) == 0, "communicate");
        pool_check(out && atoi(out) == getpid(), "the child is ours, not the pool's zygote's");
        free(out);
        weft_process_free(p);
        void *r = NULL;
        pool_check(weft_await(t, &r) == 0 && (intptr_t)r == 144, "the pool's call");
    }
    return NULL;
}

static int with_pool_body(void)
{
    weft_procpool *pool = weft_procpool_new(2);
    if (!pool) {
        fprintf(stderr, "weft_procpool_new: %s\n", weft_errmsg());
        return 30;
    }
    pool_check(weft_run(with_pool_main, pool, NULL) == 0, "weft_run");
    weft_procpool_free(pool);
    int zombies;
    pool_check(count_children(&zombies) == 0, "the zygote and every child reaped");
    return pool_problems ? 31 : 0;
}

Test(process, beside_the_process_pool)
{
    child_outcome out;
    run_forked(with_pool_body, &out);
    cr_assert(WIFEXITED(out.status), "%s", out.stderr_text);
    cr_expect_eq(WEXITSTATUS(out.status), 0, "status %d: %s", WEXITSTATUS(out.status), out.stderr_text);
}

/* The starts' threads exit with them: a process pool can be created after. */
static void *some_children_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        weft_process *p = weft_create_subprocess_exec(ARGV("true"), NULL);
        if (!p || weft_process_wait(p, NULL) != 0)
            return weft_fail(-EIO, "%s", weft_errmsg());
        weft_process_free(p);
    }
    return NULL;
}

static int pool_after_body(void)
{
    if (weft_run(some_children_main, NULL, NULL) != 0)
        return 50;
    /* A start's thread exits right after posting its outcome: give it a moment. */
    weft_procpool *pool = NULL;
    for (int i = 0; i < 200 && !pool; i++) {
        pool = weft_procpool_new(1);
        if (!pool)
            usleep(5000);
    }
    if (!pool) {
        fprintf(stderr, "weft_procpool_new: %s\n", weft_errmsg());
        return 51;
    }
    weft_procpool_free(pool);
    return 0;
}

Test(process, a_process_pool_after_starts)
{
    child_outcome out;
    run_forked(pool_after_body, &out);
    cr_assert(WIFEXITED(out.status), "%s", out.stderr_text);
    cr_expect_eq(WEXITSTATUS(out.status), 0, "status %d: %s", WEXITSTATUS(out.status), out.stderr_text);
}

/* ---- misuse --------------------------------------------------------------- */

static weft_process *foreign;
static int foreign_rc;

static void *other_loop_main(void *arg)
{
    (void)arg;
    foreign_rc = weft_process_pid(foreign);
    return NULL;
}

static void *other_thread(void *arg)
{
    (void)arg;
    weft_run(other_loop_main, NULL, NULL);
    return NULL;
}

static void *misuse_main(void *arg)
{
    (void)arg;
    weft_process *p = start(ARGV("true"), NULL);
    cr_expect_null(weft_process_stdout(p), "not a pipe");
    cr_expect_eq(weft_errcode(), WEFT_ESTATE);
    cr_expect(strstr(weft_errmsg(), "stdout is not a pipe"), "%s", weft_errmsg());
    cr_expect_eq(weft_process_communicate(p, "x", 1, NULL, NULL, NULL, NULL), -EINVAL, "input without a stdin pipe");

    foreign = p;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    pthread_join(th, NULL);
    cr_expect_eq(foreign_rc, WEFT_ESTATE, "another loop's process");

    cr_expect_eq(weft_process_wait(p, NULL), 0);
    cr_expect_eq(weft_process_free(p), 0);
    weft_process *q = start(ARGV("true"), NULL); /* may take p's record */
    cr_expect_eq(weft_process_pid(p), -ESTALE);
    cr_expect(strstr(weft_errmsg(), "the process handle is stale"), "%s", weft_errmsg());
    cr_expect_eq(weft_process_wait(p, NULL), -ESTALE);
    cr_expect_eq(weft_process_returncode(p, NULL), -ESTALE);
    cr_expect_eq(weft_process_kill(p), -ESTALE);
    cr_expect_eq(weft_process_free(p), -ESTALE, "freed twice");
    cr_expect_eq(weft_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL), -ESTALE);
    cr_expect_gt(weft_process_pid(q), 0, "the new process is untouched");
    cr_expect_eq(weft_process_wait(q, NULL), 0);
    weft_process_free(q);
    cr_expect_eq(weft_process_pid(NULL), -EINVAL);
    cr_expect_eq(weft_process_free(NULL), 0);
    return NULL;
}

Test(process, misuse_is_loud)
{
    cr_assert_eq(weft_run(misuse_main, NULL, NULL), 0);
    cr_expect_null(weft_create_subprocess_exec(ARGV("true"), NULL), "outside a loop");
    cr_expect_eq(weft_errcode(), WEFT_ENOTINLOOP);
}
