/*
 * common.h — helpers shared by the core tests: running a loop on virtual time, a
 * trace of events to compare against an expected order, float comparison for exact
 * virtual timings, and running a scenario in a forked child to observe its stderr
 * and how it died.
 *
 * Checks made inside tasks use cr_expect (which records and goes on) rather than
 * cr_assert, whose failure jumps off the task's stack; the fatal checks come after
 * weft_run has returned, back on the thread's own stack.
 */
#ifndef WEFT_TESTS_COMMON_H
#define WEFT_TESTS_COMMON_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

/* Virtual timings are sums of the sleeps, so they are exact up to rounding. */
#define TIME_EPS 1e-9

static inline bool time_is(double actual, double expected)
{
    return fabs(actual - expected) < TIME_EPS;
}

static inline int run_virtual(weft_fn main_fn, void *arg, void **result)
{
    return weft_run_opts(main_fn, arg, result, &(weft_options){.virtual_time = 1});
}

/* ---- trace: "M0 A0 B0 ..." built as events happen ---------------------- */

static char trace_text[8192];

static inline void trace_reset(void)
{
    trace_text[0] = '\0';
}

static inline void trace(const char *fmt, ...) WEFT_PRINTF(1, 2);

static inline void trace(const char *fmt, ...)
{
    size_t used = strlen(trace_text);
    if (used > 0 && used + 1 < sizeof trace_text)
        trace_text[used++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trace_text + used, sizeof trace_text - used, fmt, ap);
    va_end(ap);
}

/* ---- a scenario in a forked child ---------------------------------------- */

typedef struct child_outcome {
    int status;         /* as from waitpid */
    char stderr_text[16384];
} child_outcome;

/*
 * Runs body() in a forked child whose stderr goes to a pipe, then exits the child
 * with body's return value. The parent collects everything written to stderr and the
 * wait status, so a test can check a crash report and the signal that ended it.
 */
static inline void run_forked(int (*body)(void), child_outcome *out)
{
    int fds[2];
    memset(out, 0, sizeof *out);
    cr_assert_eq(pipe(fds), 0, "pipe failed");
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork failed");
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        int code = body();
        fflush(NULL);
        _exit(code);
    }
    close(fds[1]);
    size_t used = 0;
    for (;;) {
        ssize_t got = read(fds[0], out->stderr_text + used, sizeof out->stderr_text - 1 - used);
        if (got > 0) {
            used += (size_t)got;
            if (used == sizeof out->stderr_text - 1) {
                /* Keep draining so the child never blocks on a full pipe. */
                char sink[4096];
                while (read(fds[0], sink, sizeof sink) > 0) {
                }
                break;
            }
            continue;
        }
        if (got == 0)
            break;
        if (errno != EINTR)
            break;
    }
    out->stderr_text[used] = '\0';
    close(fds[0]);
    while (waitpid(pid, &out->status, 0) == -1 && errno == EINTR) {
    }
}

#endif
