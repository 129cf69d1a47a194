/*
 * trace_prog.c — loops for the trace tests (trace_test.py reads what they write):
 *
 *   trace_prog api FILE        weft_options.trace_file: named, renamed, failing and
 *                              cancelled-before-start tasks, a name that needs escaping
 *   trace_prog virtual FILE    a virtual-time loop whose task sleeps 10 virtual seconds
 *   trace_prog threads FILE N  N loops on N threads tracing to FILE at once, then one more
 *   trace_prog many FILE N     N tasks that yield twice: more events than one buffer holds
 *   trace_prog badopt PATH     weft_run with trace_file = PATH (unwritable): prints the error
 *
 * Exits 0 when every weft_run returned 0 (badopt: when it failed, as it must).
 */
#include <weft.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
    double s = *(const double *)arg;
    return weft_sleep(s) == 0 ? NULL : weft_fail(weft_error(), "sleep failed");
}

static void *failer(void *unused)
{
    (void)unused;
    return weft_fail(-EIO, "failing on purpose");
}

/* Waits for a pipe to become readable, which main makes it after a while. */
static int pipe_fds[2];
static void *pipe_reader(void *unused)
{
    (void)unused;
    int rc = weft_fd_wait(pipe_fds[0], WEFT_READABLE);
    return rc > 0 ? NULL : weft_fail(rc ? rc : -EIO, "the pipe wait failed");
}

static void *yielder(void *unused)
{
    (void)unused;
    if (weft_yield() != 0 || weft_yield() != 0)
        return weft_fail(-ECANCELED, "yield cancelled");
    return NULL;
}

static void *api_main(void *unused)
{
    (void)unused;
    static double short_sleep = 0.01;
    weft_spawn_options named = {.name = "worker"};
    weft_task *w = weft_spawn_opts(sleeper, &short_sleep, &named);
    weft_task *r = weft_spawn(sleeper, &short_sleep);
    weft_task *f = weft_spawn(failer, NULL);
    weft_task *never = weft_spawn(sleeper, &short_sleep);
    if (!w || !r || !f || !never)
        return weft_fail(-ENOMEM, "spawn failed");
    if (weft_task_set_name(r, "renamed \"quoted\"\n\tline") != 0)
        return weft_fail(-ENOMEM, "set_name failed");
    weft_cancel(never, "not wanted");
    if (weft_await(w, NULL) != 0 || weft_await(r, NULL) != 0)
        return weft_fail(-EIO, "a sleeper failed");
    if (weft_await(f, NULL) != -EIO)
        return weft_fail(-EIO, "the failer did not fail with EIO");
    if (weft_await(never, NULL) != -ECANCELED)
        return weft_fail(-EIO, "the cancelled task was not cancelled");
    /* A descriptor wait that ends with the descriptor ready. */
    if (pipe(pipe_fds) != 0)
        return weft_fail(-errno, "pipe failed");
    weft_task *p = weft_spawn_opts(pipe_reader, NULL, &(weft_spawn_options){.name = "pipe-reader"});
    if (!p || weft_sleep(0.005) != 0 || write(pipe_fds[1], "x", 1) != 1 || weft_await(p, NULL) != 0)
        return weft_fail(-EIO, "the pipe reader failed");
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return NULL;
}

static void *virtual_main(void *unused)
{
    (void)unused;
    static double ten = 10.0;
    weft_task *t = weft_spawn(sleeper, &ten);
    return t && weft_await(t, NULL) == 0 ? NULL : weft_fail(-EIO, "the sleeper failed");
}

static void *thread_main(void *arg)
{
    (void)arg;
    static double tiny = 0.005;
    weft_task *ts[4];
    for (int i = 0; i < 4; i++)
        ts[i] = i % 2 ? weft_spawn(sleeper, &tiny) : weft_spawn(yielder, NULL);
    for (int i = 0; i < 4; i++)
        if (!ts[i])
            return weft_fail(-ENOMEM, "spawn failed");
    return weft_gather(ts, 4, NULL, NULL, 0) == 0 ? NULL : weft_fail(-EIO, "gather failed");
}

static const char *trace_path;

static void *loop_thread(void *unused)
{
    (void)unused;
    weft_options o = {0};
    o.trace_file = trace_path;
    int rc = weft_run_opts(thread_main, NULL, NULL, &o);
    if (rc != 0)
        fprintf(stderr, "trace_prog: a thread's weft_run: %s\n", weft_errmsg());
    return (void *)(intptr_t)rc;
}

static long many_count;

/* Ends the process from a task with exit(), as a program may: the loop never ends. */
static void *exiting_main(void *unused)
{
    (void)unused;
    weft_task *t = weft_spawn_opts(yielder, NULL, &(weft_spawn_options){.name = "before-exit"});
    if (!t || weft_await(t, NULL) != 0 || weft_sleep(0.01) != 0)
        return weft_fail(-EIO, "the task before exit failed");
    exit(0);
}

static void *many_main(void *unused)
{
    (void)unused;
    weft_task **ts = calloc((size_t)many_count, sizeof *ts);
    if (!ts)
        return weft_fail(-ENOMEM, "no memory");
    for (long i = 0; i < many_count; i++) {
        ts[i] = weft_spawn(yielder, NULL);
        if (!ts[i])
            return weft_fail(-ENOMEM, "spawn failed");
    }
    int rc = weft_gather(ts, (size_t)many_count, NULL, NULL, 0);
    free(ts);
    return rc == 0 ? NULL : weft_fail(rc, "gather failed");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: trace_prog api|virtual|threads|many|exit|badopt FILE [N]\n");
        return 2;
    }
    const char *mode = argv[1];
    trace_path = argv[2];
    weft_options o = {0};
    o.trace_file = trace_path;
    int rc;
    if (strcmp(mode, "api") == 0) {
        rc = weft_run_opts(api_main, NULL, NULL, &o);
    } else if (strcmp(mode, "virtual") == 0) {
        o.virtual_time = 1;
        rc = weft_run_opts(virtual_main, NULL, NULL, &o);
    } else if (strcmp(mode, "threads") == 0 && argc == 4) {
        int n = atoi(argv[3]);
        pthread_t th[16];
        if (n < 1 || n > 16)
            return 2;
        for (int i = 0; i < n; i++)
            pthread_create(&th[i], NULL, loop_thread, NULL);
        rc = 0;
        for (int i = 0; i < n; i++) {
            void *r;
            pthread_join(th[i], &r);
            if (r)
                rc = (int)(intptr_t)r;
        }
        /* One more loop after the others ended: its events join the same file. */
        if (rc == 0)
            rc = (int)(intptr_t)loop_thread(NULL);
    } else if (strcmp(mode, "many") == 0 && argc == 4) {
        many_count = atol(argv[3]);
        rc = weft_run_opts(many_main, NULL, NULL, &o);
    } else if (strcmp(mode, "exit") == 0) {
        rc = weft_run_opts(exiting_main, NULL, NULL, &o);
    } else if (strcmp(mode, "badopt") == 0) {
        rc = weft_run_opts(virtual_main, NULL, NULL, &o);
        if (rc == 0) {
            fprintf(stderr, "trace_prog: weft_run accepted the trace file %s\n", trace_path);
            return 1;
        }
        fprintf(stderr, "weft_run failed: %s: %s\n", weft_errname(rc), weft_errmsg());
        return 0;
    } else {
        fprintf(stderr, "trace_prog: unknown mode %s\n", mode);
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "trace_prog %s: weft_run: %s: %s\n", mode, weft_errname(rc), weft_errmsg());
        return 1;
    }
    return 0;
}
