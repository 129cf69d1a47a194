/*
 * scenario.c — one program that goes through most of weft's calls, for the fault
 * sweep: run once per injection point with that allocation or system call failing
 * (wrap.c), it must end by itself with status 0 every time — an error from weft is
 * an acceptable outcome, a crash, a hang, a sanitizer report or a leak is not. So
 * every result is looked at and everything made is given back on every path.
 * It allocates nothing itself: every allocation counted is weft's (the worker
 * functions of the process pool allocate in the workers, which count nothing).
 * The process pool comes first: it can only be made while the process has one
 * thread, and the thread pools' threads outlive the later runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

static void *value(void *arg)
{
    int rc = weft_sleep(0.001);
    if (rc)
        return weft_fail(rc, "sleep: %s", weft_errmsg());
    return arg;
}

static void *failing(void *arg)
{
    (void)arg;
    return weft_fail(-EIO, "failing on purpose");
}

static void *blocking(void *arg)
{
    return arg;
}

static void note(void *arg)
{
    ++*(int *)arg;
}

static int pipe_fds[2] = {-1, -1};

static void *pipe_writer(void *arg)
{
    (void)arg;
    if (weft_sleep(0.001) == 0 && write(pipe_fds[1], "x", 1) != 1)
        return weft_fail(-EIO, "write");
    return NULL;
}

static void tasks_and_gather(void)
{
    weft_task *t[3] = {weft_spawn(value, (void *)1), weft_spawn_opts(value, (void *)2, &(weft_spawn_options){.compact = 1}),
                       weft_spawn_opts(value, (void *)3, &(weft_spawn_options){.name = "third"})};
    if (t[0] && t[1] && t[2]) {
        void *results[3];
        int errs[3];
        (void)weft_gather(t, 3, results, errs, WEFT_RETURN_EXCEPTIONS);
    } else {
        for (int i = 0; i < 3; i++)
            weft_detach(t[i]);
    }
    weft_task *w = weft_spawn(value, (void *)4);
    if (w) {
        void *r;
        (void)weft_task_wait(w, &r);
        (void)weft_await(w, &r);
    }
}

static void group_and_timeouts(void)
{
    weft_group *g = weft_group_new();
    if (g) {
        weft_group_spawn(g, value, (void *)5);
        weft_group_spawn(g, failing, NULL);
        (void)weft_group_wait(g, 0);
        weft_group_free(g);
    }
    weft_timeout *scope = weft_timeout_enter(0.0005);
    if (scope) {
        int rc = weft_sleep(0.01);
        (void)weft_timeout_exit(scope, rc);
    }
    weft_task *t = weft_spawn(value, (void *)6);
    if (t) {
        void *r;
        (void)weft_wait_for(t, 0.0005, &r);
    }
}

static void sync_queue_chan(void)
{
    weft_lock *lock = weft_lock_new();
    if (lock) {
        if (weft_lock_acquire(lock) == 0)
            (void)weft_lock_release(lock);
        (void)weft_lock_free(lock);
    }
    weft_event *ev = weft_event_new();
    if (ev) {
        weft_event_set(ev);
        (void)weft_event_wait(ev);
        (void)weft_event_free(ev);
    }
    weft_queue *q = weft_queue_new(2);
    if (q) {
        void *item;
        if (weft_queue_put(q, (void *)1) == 0)
            (void)weft_queue_get(q, &item);
        (void)weft_queue_free(q);
    }
    weft_chan *ch = weft_chan_new(sizeof(int), 1);
    if (ch) {
        int v = 7;
        if (weft_chan_send(ch, &v) == 0)
            (void)weft_chan_recv(ch, &v);
        (void)weft_chan_close(ch);
        (void)weft_chan_free(ch);
    }
    weft_future *f = weft_future_new();
    if (f) {
        (void)weft_future_set_result(f, (void *)8);
        void *r;
        (void)weft_future_await(f, &r);
        (void)weft_future_free(f);
    }
}

static void callbacks_threads_fds(void)
{
    int count = 0;
    (void)weft_call_soon(note, &count);
    (void)weft_call_later(0.0005, note, &count);
    weft_call c = weft_call_later(10, note, &count);
    (void)weft_call_cancel(c);
    (void)weft_sleep(0.001);
    void *r;
    (void)weft_to_thread(blocking, (void *)9, &r);
    if (pipe(pipe_fds) == 0) {
        (void)fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
        weft_task *w = weft_spawn(pipe_writer, NULL);
        weft_timeout *scope = weft_timeout_enter(1);
        if (scope) {
            int rc = weft_fd_wait(pipe_fds[0], WEFT_READABLE);
            (void)weft_timeout_exit(scope, rc);
        }
        if (w)
            (void)weft_await(w, NULL);
        (void)weft_fd_close(pipe_fds[0]);
        close(pipe_fds[1]);
    }
    weft_task *bad = weft_spawn(failing, NULL);
    if (bad)
        (void)weft_await(bad, NULL);
    weft_detach(weft_spawn(value, (void *)10));
}

static int cmp_int(const void *a, const void *b)
{
    return (int)((intptr_t)a - (intptr_t)b);
}

static void more_sync(void)
{
    weft_sem *sem = weft_sem_new(1);
    if (sem) {
        if (weft_sem_acquire(sem) == 0)
            (void)weft_sem_release(sem);
        (void)weft_sem_free(sem);
    }
    weft_cond *cond = weft_cond_new(NULL);
    if (cond) {
        if (weft_lock_acquire(weft_cond_lock(cond)) == 0) {
            (void)weft_cond_notify_all(cond);
            (void)weft_lock_release(weft_cond_lock(cond));
        }
        (void)weft_cond_free(cond);
    }
    weft_barrier *b = weft_barrier_new(1);
    if (b) {
        (void)weft_barrier_wait(b);
        (void)weft_barrier_free(b);
    }
    weft_queue *lifo = weft_lifo_queue_new(0), *prio = weft_priority_queue_new(0, cmp_int);
    for (int i = 0; i < 20; i++) {
        if (lifo)
            (void)weft_queue_put_nowait(lifo, (void *)(intptr_t)i);
        if (prio)
            (void)weft_queue_put_nowait(prio, (void *)(intptr_t)(20 - i));
    }
    void *item;
    while (lifo && weft_queue_get_nowait(lifo, &item) == 0) {
    }
    while (prio && weft_queue_get_nowait(prio, &item) == 0) {
    }
    (void)weft_queue_free(lifo);
    (void)weft_queue_free(prio);
    weft_chan *a = weft_chan_new(sizeof(int), 0), *c = weft_chan_new(sizeof(int), 2);
    if (a && c) {
        int v = 1, w = 0;
        weft_select_case cases[] = {{a, WEFT_RECV, &w, 0}, {c, WEFT_SEND, &v, 0}};
        (void)weft_select(cases, 2, 0.001);
    }
    (void)weft_chan_free(a);
    (void)weft_chan_free(c);
}

static void watching(void)
{
    weft_task *t[2] = {weft_spawn(value, (void *)11), weft_spawn(failing, NULL)};
    if (!t[0] || !t[1]) {
        weft_detach(t[0]);
        weft_detach(t[1]);
        return;
    }
    weft_task *done[2], *pending[2];
    size_t nd, np;
    (void)weft_wait(t, 2, WEFT_ALL_COMPLETED, 1, done, &nd, pending, &np);
    weft_as_completed *ac = weft_as_completed_new(t, 2, 1);
    if (ac) {
        weft_task *next;
        while (weft_as_completed_next(ac, &next) == 1) {
        }
        weft_as_completed_free(ac);
    }
    void *r;
    (void)weft_shield(t[0], &r); /* consumes it when it works */
    if (weft_task_done(t[0]))
        (void)weft_await(t[0], &r); /* stale after the shield: an error, never a crash */
    (void)weft_await(t[1], &r);
}

static void pools_and_readers(void)
{
    weft_pool *pool = weft_pool_new(2);
    if (pool) {
        void *r;
        (void)weft_pool_run(pool, blocking, (void *)12, &r);
        (void)weft_pool_shutdown(pool, true);
        weft_pool_free(pool);
    }
    int fds[2];
    if (pipe(fds) == 0) {
        int count = 0;
        if (write(fds[1], "y", 1) == 1 && weft_add_reader(fds[0], note, &count) == 0) {
            (void)weft_sleep(0.001);
            (void)weft_remove_reader(fds[0]);
        }
        (void)weft_fd_close(fds[0]);
        close(fds[1]);
    }
}

static void on_signal(int sig, unsigned arrivals, void *arg)
{
    (void)sig;
    *(unsigned *)arg += arrivals;
}

static void *signal_waiter(void *arg)
{
    (void)arg;
    int n = weft_signal_wait(SIGUSR2);
    return (void *)(intptr_t)n;
}

/* Signals: a handler, a wait, a removal; raised only once weft owns the signal
 * (its default would end the process). */
static void signals(void)
{
    unsigned seen = 0;
    if (weft_add_signal_handler(SIGUSR1, on_signal, &seen) == 0) {
        raise(SIGUSR1);
        (void)weft_sleep(0.001);
        (void)weft_signal_wait(SIGUSR1);
        (void)weft_remove_signal_handler(SIGUSR1);
    }
    weft_task *t = weft_spawn(signal_waiter, NULL);
    if (t) {
        (void)weft_sleep(0.001);
        struct sigaction now;
        if (sigaction(SIGUSR2, NULL, &now) == 0 && now.sa_handler != SIG_DFL)
            raise(SIGUSR2);
        else
            weft_cancel(t, NULL); /* its wait failed, or it waits without owning */
        (void)weft_await(t, NULL);
    }
    (void)weft_remove_signal_handler(SIGUSR2);
}

static void *amain(void *arg)
{
    (void)arg;
    signals();
    tasks_and_gather();
    group_and_timeouts();
    sync_queue_chan();
    more_sync();
    watching();
    callbacks_threads_fds();
    pools_and_readers();
    return NULL;
}

static void *in_loop(void *arg)
{
    return arg;
}

static atomic_int thread_done;

static void *from_a_thread(void *loop)
{
    void *r;
    (void)weft_run_in_loop(loop, in_loop, (void *)13, &r, 5);
    atomic_store(&thread_done, 1);
    return NULL;
}

static void *threads_main(void *arg)
{
    (void)arg;
    pthread_t thread;
    if (pthread_create(&thread, NULL, from_a_thread, weft_loop_current()) != 0)
        return NULL;
    /* Run the loop until the thread's call is answered (or it gave up), then join. */
    for (int i = 0; i < 5000 && !atomic_load(&thread_done) && weft_sleep(0.001) == 0; i++) {
    }
    pthread_join(thread, NULL);
    return NULL;
}

/* ---- the process pool: first, while the process has one thread -------------- */

/* Worker functions, run in the pool's worker processes. */
static int echo(const void *in, size_t in_len, void **out, size_t *out_len)
{
    void *copy = malloc(in_len ? in_len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, in, in_len);
    *out = copy;
    *out_len = in_len;
    return 0;
}

static int refuse(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in, (void)in_len, (void)out, (void)out_len;
    weft_fail(-EPERM, "refused on purpose");
    return -EPERM;
}

static int die(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in, (void)in_len, (void)out, (void)out_len;
    _exit(3);
}

static int linger(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in, (void)in_len, (void)out, (void)out_len;
    usleep(20000);
    return 0;
}

static void *procpool_call(void *arg)
{
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(arg, echo, "ping", 4, &out, &out_len);
    free(out);
    return (void *)(intptr_t)rc;
}

static void *procpool_main(void *arg)
{
    (void)arg;
    weft_procpool *pp = weft_procpool_new(2);
    if (!pp)
        return NULL;
    void *out = NULL;
    size_t out_len = 0;
    /* A call, a failing call, a worker that dies (replaced through the zygote). */
    (void)weft_procpool_run(pp, echo, "hello", 5, &out, &out_len);
    free(out);
    out = NULL;
    (void)weft_procpool_run(pp, refuse, NULL, 0, &out, &out_len);
    (void)weft_procpool_run(pp, die, NULL, 0, &out, &out_len);
    /* Three calls on two workers: one waits for a worker. */
    weft_task *t[3] = {weft_spawn(procpool_call, pp), weft_spawn(procpool_call, pp), weft_spawn(procpool_call, pp)};
    for (int i = 0; i < 3; i++)
        if (t[i])
            (void)weft_await(t[i], NULL);
    /* A call left by its caller (timeout) while the worker runs it: the next call
     * on that worker drains the late reply. */
    weft_timeout *scope = weft_timeout_enter(0.005);
    if (scope) {
        int rc = weft_procpool_run(pp, linger, NULL, 0, &out, &out_len);
        (void)weft_timeout_exit(scope, rc);
    }
    (void)weft_procpool_run(pp, echo, "again", 5, &out, &out_len);
    free(out);
    weft_procpool_free(pp);
    return NULL;
}

/* The unwrapped waitpid: the scenario's own check must not be an injection point. */
pid_t __real_waitpid(pid_t pid, int *status, int options);

int main(void)
{
    /* Any outcome weft reports is fine; the sweep looks for crashes, hangs, leaks. */
    int rc = weft_run(procpool_main, NULL, NULL);
    rc = weft_run(amain, NULL, NULL);
    rc = weft_run_opts(amain, NULL, NULL, &(weft_options){.virtual_time = 1});
    rc = weft_run(threads_main, NULL, NULL);
    (void)rc;
    /* The pool's helper process was reaped (and it reaps the workers): a child
     * still here, running or a zombie, is a process weft leaked. */
    if (__real_waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) {
        fprintf(stderr, "scenario: a child process was left behind\n");
        return 1;
    }
    return 0;
}
