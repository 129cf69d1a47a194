/*
 * proc_scenario.c — subprocesses' program for the fault sweep: run once per
 * injection point with that allocation or system call failing (wrap.c built with
 * WEFT_FAULT_PROC: pipe2, posix_spawn, pidfd_open, waitid and pidfd_send_signal
 * besides the allocations, pthread_create and waitpid), it must end by itself
 * with status 0 every time: a child that exits, one with pipes read line by line,
 * communicate with input and both outputs, a missing program, a child killed, and
 * a wait that is cancelled before the child is freed. Written as a careful user
 * writes: every result is looked at, a failure ends that part, and every process
 * is freed on every path, so a handle left for the loop's end (weft reports it)
 * is a lost handle the sweep looks for (sweep.py --forbid "was never
 * (freed|closed)": a process, or a pipe's stream).
 *
 * One thing happens at a time (each start or wait is waited for before the next),
 * so that the calls of a start's thread and of a child's reaping come in the same
 * order on every run and each point is the same call from run to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define WATCHDOG_S 10.0 /* far beyond a clean run (~50 ms); a run that reaches it hangs */
#define ARGV(...) ((const char *[]){__VA_ARGS__, NULL})

/* A part's outcome, said when it failed (in the sweep's output of a failing point). */
static int said(const char *part, int rc)
{
    if (rc)
        fprintf(stderr, "proc_scenario: the %s part ended: %s\n", part, weft_errmsg());
    return rc;
}

static int exit_part(void)
{
    weft_process *p = weft_create_subprocess_shell("exit 3", NULL);
    if (!p)
        return weft_errcode();
    int status = -1;
    int rc = weft_process_wait(p, &status);
    if (rc == 0 && status != 3)
        rc = -EIO;
    (void)weft_process_free(p);
    return rc;
}

static int pipes_part(void)
{
    weft_process *p = weft_create_subprocess_exec(
        ARGV("cat"), &(weft_process_options){.in = WEFT_STDIO_PIPE, .out = WEFT_STDIO_PIPE});
    if (!p)
        return weft_errcode();
    weft_stream *in = weft_process_stdin(p), *out = weft_process_stdout(p);
    int rc = in && out ? weft_stream_write(in, "hello\n", 6) : weft_errcode();
    const char *line;
    if (rc == 0) {
        ssize_t n = weft_stream_readline(out, &line);
        rc = n == 6 ? 0 : n < 0 ? (int)n : -EIO;
    }
    if (rc == 0)
        rc = weft_stream_close(in);
    if (rc == 0)
        rc = weft_process_wait(p, NULL);
    (void)weft_process_free(p); /* kills cat if it still runs */
    return rc;
}

static int communicate_part(void)
{
    weft_process *p = weft_create_subprocess_shell(
        "cat; echo err >&2", &(weft_process_options){.in = WEFT_STDIO_PIPE, .out = WEFT_STDIO_PIPE,
                                                     .err = WEFT_STDIO_PIPE});
    if (!p)
        return weft_errcode();
    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    int rc = weft_process_communicate(p, "abc", 3, &out, &out_len, &err, &err_len);
    if (rc == 0 && (out_len != 3 || memcmp(out, "abc", 3) != 0 || err_len != 4))
        rc = -EIO;
    free(out);
    free(err);
    (void)weft_process_free(p);
    return rc;
}

static int missing_part(void)
{
    weft_process *p = weft_create_subprocess_exec(ARGV("weft-fault-no-such-program"), NULL);
    if (p) {
        (void)weft_process_free(p);
        return -EIO;
    }
    return weft_errcode() == -ENOENT ? 0 : weft_errcode();
}

static int kill_part(void)
{
    weft_process *p = weft_create_subprocess_exec(ARGV("sleep", "5"), NULL);
    if (!p)
        return weft_errcode();
    int status = 0;
    int rc = weft_process_kill(p);
    if (rc == 0)
        rc = weft_process_wait(p, &status);
    if (rc == 0 && status != -SIGKILL)
        rc = -EIO;
    (void)weft_process_free(p);
    return rc;
}

static void *waiter(void *arg)
{
    int rc = weft_process_wait(arg, NULL);
    return rc == -ECANCELED ? NULL : weft_fail(rc ? rc : -EIO, "the wait was not cancelled");
}

/* Last: the freed child is reaped in the background, after everything else. */
static int cancel_part(void)
{
    weft_process *p = weft_create_subprocess_exec(ARGV("sleep", "5"), NULL);
    if (!p)
        return weft_errcode();
    weft_task *t = weft_spawn(waiter, p);
    int rc = t ? weft_yield() : weft_errcode();
    if (t) {
        (void)weft_cancel(t, NULL);
        int w = weft_await(t, NULL); /* -ECANCELED: the wait was cancelled, as asked */
        rc = rc ? rc : w == -ECANCELED ? 0 : w;
    }
    (void)weft_process_free(p);
    return rc;
}

typedef struct outcome {
    int timed_out;
    int rc[6];
} outcome;

static void *amain(void *arg)
{
    outcome *out = arg;
    weft_timeout *watchdog = weft_timeout_enter(WATCHDOG_S);
    out->rc[0] = said("exit", exit_part());
    out->rc[1] = said("pipes", pipes_part());
    out->rc[2] = said("communicate", communicate_part());
    out->rc[3] = said("missing", missing_part());
    out->rc[4] = said("kill", kill_part());
    out->rc[5] = said("cancel", cancel_part());
    if (watchdog) {
        out->timed_out = weft_timeout_expired(watchdog);
        (void)weft_timeout_exit(watchdog, 0);
    }
    return NULL;
}

int main(void)
{
    outcome out = {0};
    int rc = weft_run(amain, &out, NULL);
    if (out.timed_out) {
        fprintf(stderr, "proc_scenario: still running after %.0f s: a hang\n", WATCHDOG_S);
        return 1;
    }
    int failed = rc;
    for (int i = 0; i < 6; i++)
        failed |= out.rc[i];
    /* With a fault injected, any error weft reports is acceptable; without one,
     * every part must work (a part that fails by itself hides its calls). */
    if (!getenv("WEFT_FAULT_AT") && failed) {
        fprintf(stderr, "proc_scenario: failed without a fault (weft_run %d; parts %d %d %d %d %d %d)\n", rc,
                out.rc[0], out.rc[1], out.rc[2], out.rc[3], out.rc[4], out.rc[5]);
        return 1;
    }
    return 0;
}
