/*
 * test_signal.c — signals handled on the loop (weft/signal.h), as a user sees them:
 * a handler's callback runs on the loop's thread, outside the signal handler (the
 * signal is not blocked there, malloc and weft calls are fine) and after the
 * raise that sent it has returned; a task woken from the poller by a real timer
 * signal; arrivals merged into one call with their count, waits that return
 * arrivals made while nobody waited and wake every waiter; a handler replaced,
 * removed (the previous disposition back, checked with sigaction: a handler of
 * the program's, SIG_IGN) and given back when weft_run ends; the refusals
 * (SIGKILL, SIGSTOP, 0, 65, a fault signal, the C library's, NULL, outside a
 * loop, a signal another loop owns: -EBUSY naming its thread); a wait ended by a
 * removal or by a cancellation; a loop waiting for a signal is not deadlocked
 * while one waiting only with weft_run's Ctrl-C handling is; children of fork and
 * of the process pool get the previous dispositions back.
 *
 * Ctrl-C is seen from outside: tests/signal/sigint_child.c runs weft_run in a
 * child process that this file sends SIGINT with kill(2) (one, then two, after
 * main finished, with the option off, with SIGINT ignored, taken over by a task),
 * every wait bounded. Two loops in two threads each owning a signal are in
 * test_signal_threads.c (ThreadSanitizer runs that one).
 */
#define _DEFAULT_SOURCE /* syscall(SYS_gettid) */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

TestSuite(signal, .timeout = 60);

static long tid(void)
{
    return (long)syscall(SYS_gettid);
}

static void sa_get(int sig, struct sigaction *sa)
{
    cr_assert_eq(sigaction(sig, NULL, sa), 0);
}

static void set_default(int sig)
{
    signal(sig, SIG_DFL);
}

/* ---- the callback runs on the loop, not in the signal handler ------------------ */

static int calls;
static unsigned last_arrivals;
static int last_sig;
static long callback_tid;
static bool blocked_in_callback, had_loop, had_task;
static char *allocated;

static void record(int sig, unsigned arrivals, void *arg)
{
    calls++;
    last_sig = sig;
    last_arrivals = arrivals;
    callback_tid = tid();
    /* Inside a signal handler the signal itself is blocked; on the loop it is not. */
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    blocked_in_callback = sigismember(&now, sig);
    had_loop = weft_loop_current() != NULL;
    had_task = weft_current() != NULL;
    /* Not async-signal-safe, fine here. */
    free(allocated);
    allocated = malloc(64);
    snprintf(allocated, 64, "%s:%d", (const char *)arg, sig);
}

static void *callback_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, record, "usr1"), 0, "%s", weft_errmsg());
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(calls, 0, "the callback does not run inside the signal handler");
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 1);
    cr_expect_eq(last_sig, SIGUSR1);
    cr_expect_eq(last_arrivals, 1);
    cr_expect_eq(callback_tid, tid(), "the callback ran on thread %ld, the loop's is %ld", callback_tid, tid());
    cr_expect(!blocked_in_callback, "SIGUSR1 was blocked: the callback ran inside the handler");
    cr_expect(had_loop && !had_task, "a loop callback: a loop, no task");
    cr_expect_str_eq(allocated, "usr1:10");
    cr_expect_eq(weft_remove_signal_handler(SIGUSR1), 1);
    return NULL;
}

Test(signal, callback_runs_on_the_loop_thread_outside_the_handler)
{
    calls = 0;
    cr_assert_eq(weft_run(callback_main, NULL, NULL), 0, "%s", weft_errmsg());
    free(allocated);
    allocated = NULL;
}

/* ---- a task woken by a real signal, from the poller -------------------------------- */

static void *alarm_main(void *arg)
{
    (void)arg;
    struct itimerval it = {.it_value = {.tv_usec = 20000}};
    /* Taken first, so that the alarm cannot come before weft owns SIGALRM. */
    cr_expect_eq(weft_add_signal_handler(SIGALRM, record, "alarm"), 0, "%s", weft_errmsg());
    cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    double t0 = weft_time();
    int n = weft_signal_wait(SIGALRM);
    cr_expect_eq(n, 1, "weft_signal_wait returned %d (%s)", n, weft_errmsg());
    cr_expect(weft_time() - t0 >= 0.015, "woken after %.3f s, before the alarm", weft_time() - t0);
    cr_expect_eq(calls, 1, "the callback runs too");
    return NULL;
}

Test(signal, task_waiting_in_the_poller_is_woken_by_a_timer_signal)
{
    calls = 0;
    cr_assert_eq(weft_run(alarm_main, NULL, NULL), 0, "%s", weft_errmsg());
    free(allocated);
    allocated = NULL;
}

/* ---- merged arrivals, and what waits see ------------------------------------------ */

static void count_only(int sig, unsigned arrivals, void *arg)
{
    (void)sig;
    calls++;
    last_arrivals = arrivals;
    *(unsigned *)arg += arrivals;
}

static void *merge_main(void *arg)
{
    (void)arg;
    unsigned total = 0;
    cr_expect_eq(weft_add_signal_handler(SIGUSR2, count_only, &total), 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(raise(SIGUSR2), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 1, "three arrivals before the loop got to them make one call, not %d", calls);
    cr_expect_eq(last_arrivals, 3);
    cr_expect_eq(raise(SIGUSR2), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 2, "a later arrival makes another call");
    cr_expect_eq(last_arrivals, 1);
    cr_expect_eq(total, 4);
    /* Nobody was waiting: a wait returns all four at once, without suspending. */
    double t0 = weft_time();
    cr_expect_eq(weft_signal_wait(SIGUSR2), 4);
    cr_expect_eq(weft_time(), t0);
    cr_expect_eq(weft_remove_signal_handler(SIGUSR2), 1);
    return NULL;
}

Test(signal, arrivals_merge_into_one_call_with_their_count)
{
    calls = 0;
    cr_assert_eq(run_virtual(merge_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static int waited[3];

static void *wait_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    waited[i] = weft_signal_wait(SIGUSR1);
    return NULL;
}

static void *waiters_main(void *arg)
{
    (void)arg;
    weft_task *a = weft_spawn(wait_one, (void *)0);
    weft_task *b = weft_spawn(wait_one, (void *)1);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(weft_await(a, NULL), 0);
    cr_expect_eq(weft_await(b, NULL), 0);
    cr_expect_eq(waited[0], 2, "each waiting task sees the arrivals (got %d)", waited[0]);
    cr_expect_eq(waited[1], 2, "each waiting task sees the arrivals (got %d)", waited[1]);
    /* They were returned: the next wait waits for new ones. */
    weft_task *c = weft_spawn(wait_one, (void *)2);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect_eq(waited[2], 0, "a wait returned %d without an arrival", waited[2]);
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(weft_await(c, NULL), 0);
    cr_expect_eq(waited[2], 1);
    return NULL;
}

Test(signal, every_waiting_task_is_woken_with_the_arrivals)
{
    memset(waited, 0, sizeof waited);
    cr_assert_eq(run_virtual(waiters_main, NULL, NULL), 0, "%s", weft_errmsg());
    struct sigaction sa;
    sa_get(SIGUSR1, &sa);
    cr_expect_eq(sa.sa_handler, SIG_DFL, "the loop's end gave SIGUSR1 back");
}

/* ---- replace, remove, and the previous disposition ------------------------------- */

static volatile sig_atomic_t program_handler_ran;

static void program_handler(int sig)
{
    (void)sig;
    program_handler_ran++;
}

static int first_calls, second_calls;

static void first(int sig, unsigned n, void *arg)
{
    (void)sig, (void)n, (void)arg;
    first_calls++;
}

static void second(int sig, unsigned n, void *arg)
{
    (void)sig, (void)n, (void)arg;
    second_calls++;
}

static void *replace_main(void *arg)
{
    (void)arg;
    struct sigaction before, now;
    sa_get(SIGUSR1, &before);
    cr_expect_eq(before.sa_handler, program_handler);
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, first, NULL), 0);
    sa_get(SIGUSR1, &now);
    cr_expect_neq(now.sa_handler, program_handler, "weft's handler is installed");
    cr_expect(now.sa_flags & SA_RESTART, "weft's handler restarts other threads' system calls");
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, second, NULL), 0, "adding again replaces");
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(first_calls, 0);
    cr_expect_eq(second_calls, 1);
    cr_expect_eq(program_handler_ran, 0, "the program's handler is not called while weft owns the signal");

    cr_expect_eq(weft_remove_signal_handler(SIGUSR1), 1);
    sa_get(SIGUSR1, &now);
    cr_expect_eq(now.sa_handler, program_handler, "the program's handler is back");
    cr_expect_eq(now.sa_flags & (SA_RESTART | SA_SIGINFO), before.sa_flags & (SA_RESTART | SA_SIGINFO));
    cr_expect_eq(weft_remove_signal_handler(SIGUSR1), 0, "nothing left to remove");
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(program_handler_ran, 1);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(second_calls, 1);

    /* SIG_IGN comes back too; and a handler left at the loop's end is given back. */
    signal(SIGUSR2, SIG_IGN);
    cr_expect_eq(weft_add_signal_handler(SIGUSR2, first, NULL), 0);
    cr_expect_eq(weft_remove_signal_handler(SIGUSR2), 1);
    sa_get(SIGUSR2, &now);
    cr_expect_eq(now.sa_handler, SIG_IGN);
    cr_expect_eq(weft_add_signal_handler(SIGHUP, first, NULL), 0);
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, first, NULL), 0);
    return NULL;
}

Test(signal, replace_remove_and_the_previous_disposition_comes_back)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = program_handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    cr_assert_eq(weft_run(replace_main, NULL, NULL), 0, "%s", weft_errmsg());
    struct sigaction now;
    sa_get(SIGHUP, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL, "weft_run's end gave SIGHUP back");
    sa_get(SIGUSR1, &now);
    cr_expect_eq(now.sa_handler, program_handler, "weft_run's end gave SIGUSR1 back to the program");
    set_default(SIGUSR1);
    set_default(SIGUSR2);
}

static void remove_self(int sig, unsigned n, void *arg)
{
    (void)n, (void)arg;
    calls++;
    cr_expect_eq(weft_remove_signal_handler(sig), 1, "a callback may remove its own handler");
}

static void *remove_in_callback_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, remove_self, NULL), 0);
    cr_expect_eq(weft_add_signal_handler(SIGUSR2, remove_self, NULL), 0);
    cr_expect_eq(raise(SIGUSR1), 0);
    cr_expect_eq(raise(SIGUSR2), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 2);
    struct sigaction now;
    sa_get(SIGUSR1, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL);
    sa_get(SIGUSR2, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL);
    return NULL;
}

Test(signal, callback_removes_its_own_handler)
{
    calls = 0;
    cr_assert_eq(run_virtual(remove_in_callback_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- refusals ------------------------------------------------------------------- */

static void *refusals_main(void *arg)
{
    (void)arg;
    static const int bad[] = {SIGKILL, SIGSTOP, 0, 65, -1, SIGSEGV, SIGBUS, SIGILL, SIGFPE, 32, 33};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(weft_add_signal_handler(bad[i], first, NULL), -EINVAL, "signal %d accepted", bad[i]);
        cr_expect_eq(weft_remove_signal_handler(bad[i]), -EINVAL);
        cr_expect_eq(weft_signal_wait(bad[i]), -EINVAL);
    }
    cr_expect_eq(weft_add_signal_handler(SIGKILL, first, NULL), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "SIGKILL") && strstr(weft_errmsg(), "cannot be handled"), "message: %s",
              weft_errmsg());
    cr_expect_eq(weft_add_signal_handler(65, first, NULL), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "65 is not a signal number"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_add_signal_handler(SIGSEGV, first, NULL), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "fault"), "message: %s", weft_errmsg());
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, NULL, NULL), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "weft_signal_wait"), "message: %s", weft_errmsg());
    struct sigaction now;
    sa_get(SIGUSR1, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL, "a refused call installs nothing");
    return NULL;
}

Test(signal, impossible_signals_are_refused_with_einval)
{
    cr_assert_eq(run_virtual(refusals_main, NULL, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, first, NULL), WEFT_ENOTINLOOP);
    cr_expect_eq(weft_remove_signal_handler(SIGUSR1), WEFT_ENOTINLOOP);
    cr_expect_eq(weft_signal_wait(SIGUSR1), WEFT_ENOTINLOOP);
}

/* Another loop, on a thread of its own, owns SIGUSR2 until told to stop. */
static atomic_int other_owns, other_stop;
static atomic_long other_tid;

static void *other_main(void *arg)
{
    (void)arg;
    int rc = weft_add_signal_handler(SIGUSR2, first, NULL);
    atomic_store(&other_tid, tid());
    atomic_store(&other_owns, rc == 0 ? 1 : -1);
    for (int i = 0; i < 20000 && !atomic_load(&other_stop); i++)
        if (weft_sleep(0.001) != 0)
            break;
    return NULL;
}

static void *other_thread(void *arg)
{
    (void)arg;
    weft_run(other_main, NULL, NULL);
    return NULL;
}

static void *busy_main(void *arg)
{
    (void)arg;
    char owner[32];
    snprintf(owner, sizeof owner, "thread %ld", atomic_load(&other_tid));
    cr_expect_eq(weft_add_signal_handler(SIGUSR2, second, NULL), -EBUSY);
    cr_expect(strstr(weft_errmsg(), "SIGUSR2") && strstr(weft_errmsg(), owner), "message: %s (owner: %s)",
              weft_errmsg(), owner);
    cr_expect_eq(weft_signal_wait(SIGUSR2), -EBUSY);
    cr_expect_eq(weft_remove_signal_handler(SIGUSR2), -EBUSY);
    cr_expect(strstr(weft_errmsg(), owner), "message: %s", weft_errmsg());
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, second, NULL), 0, "another signal is free");
    return NULL;
}

Test(signal, a_signal_another_loop_owns_is_ebusy_naming_its_thread)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    for (int i = 0; i < 5000 && !atomic_load(&other_owns); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    cr_assert_eq(atomic_load(&other_owns), 1);
    cr_expect_eq(weft_run(busy_main, NULL, NULL), 0, "%s", weft_errmsg());
    atomic_store(&other_stop, 1);
    pthread_join(th, NULL);
    /* Once that loop has ended, SIGUSR2 is free. */
    cr_expect_eq(run_virtual(merge_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- a wait ended by a removal, or by a cancellation ------------------------------ */

static int wait_rc;

static void *wait_usr1(void *arg)
{
    (void)arg;
    wait_rc = weft_signal_wait(SIGUSR1);
    return NULL;
}

static void *removal_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(wait_usr1, NULL);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(weft_remove_signal_handler(SIGUSR1), 1, "a wait made the loop handle it");
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(wait_rc, WEFT_ECLOSED);

    /* Cancelled: the arrivals it did not return are there for the next wait. */
    t = weft_spawn(wait_usr1, NULL);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(raise(SIGUSR1), 0);
    weft_cancel(t, NULL); /* before it ran with the arrival */
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(wait_rc, -ECANCELED);
    cr_expect_eq(weft_signal_wait(SIGUSR1), 1);
    struct sigaction now;
    sa_get(SIGUSR1, &now);
    cr_expect_neq(now.sa_handler, SIG_DFL, "the loop still handles SIGUSR1 after a wait");
    return NULL;
}

Test(signal, a_wait_ends_with_eclosed_on_removal_and_keeps_arrivals_on_cancel)
{
    cr_assert_eq(run_virtual(removal_main, NULL, NULL), 0, "%s", weft_errmsg());
    struct sigaction now;
    sa_get(SIGUSR1, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL);
}

/* ---- deadlock detection ---------------------------------------------------------- */

static void *send_later(void *arg)
{
    (void)arg;
    nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
    kill(getpid(), SIGUSR1); /* to the process: any thread may take it */
    return NULL;
}

static void *only_a_signal_can_wake(void *arg)
{
    (void)arg;
    pthread_t th;
    cr_expect_eq(weft_signal_wait(-5), -EINVAL);
    /* Owned before the thread starts, so the signal cannot find SIG_DFL. */
    cr_expect_eq(weft_add_signal_handler(SIGUSR1, first, NULL), 0);
    cr_assert_eq(pthread_create(&th, NULL, send_later, NULL), 0);
    int n = weft_signal_wait(SIGUSR1);
    pthread_join(th, NULL);
    return (void *)(intptr_t)n;
}

Test(signal, a_loop_waiting_for_a_signal_is_not_deadlocked)
{
    void *n = NULL;
    cr_assert_eq(weft_run(only_a_signal_can_wake, NULL, &n), 0, "%s", weft_errmsg());
    cr_expect_eq((intptr_t)n, 1);
}

static bool ctrl_c_installed;

static void *waits_forever(void *arg)
{
    (void)arg;
    struct sigaction now;
    sa_get(SIGINT, &now);
    ctrl_c_installed = now.sa_handler != SIG_DFL;
    weft_event *ev = weft_event_new();
    int rc = weft_event_wait(ev);
    weft_event_free(ev);
    return (void *)(intptr_t)rc;
}

Test(signal, the_ctrl_c_handling_alone_does_not_hide_a_deadlock)
{
    set_default(SIGINT);
    cr_expect_eq(weft_run(waits_forever, NULL, NULL), WEFT_EDEADLOCK_LOOP);
    if ((long)getpid() == tid())
        cr_expect(ctrl_c_installed, "on the main thread weft_run takes SIGINT");
    struct sigaction now;
    sa_get(SIGINT, &now);
    cr_expect_eq(now.sa_handler, SIG_DFL, "given back when weft_run returned");
    /* Turned off: left alone. */
    cr_expect_eq(weft_run_opts(waits_forever, NULL, NULL, &(weft_options){.no_sigint = 1}), WEFT_EDEADLOCK_LOOP);
    cr_expect(!ctrl_c_installed);
}

/* ---- children get the previous dispositions ------------------------------------ */

/* Runs in a process pool worker: SIGUSR1's and SIGINT's dispositions there. */
static int dispositions(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in, (void)in_len;
    struct sigaction usr1, intr;
    sigaction(SIGUSR1, NULL, &usr1);
    sigaction(SIGINT, NULL, &intr);
    char *answer = malloc(64);
    if (!answer)
        return -ENOMEM;
    snprintf(answer, 64, "%s %s", usr1.sa_handler == program_handler ? "program" : "other",
             intr.sa_handler == SIG_DFL ? "default" : "other");
    *out = answer;
    *out_len = strlen(answer) + 1;
    return 0;
}

/* The process pool refuses to start beside Criterion's thread: this runs in a
 * forked, single-threaded child (run_forked), checks written to stderr. */
static int fork_failures;
#define FORK_CHECK(cond, ...)                                                       \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fork_failures++;                                                        \
            fprintf(stderr, "test_signal.c:%d: failed: %s: ", __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
        }                                                                           \
    } while (0)

static void *fork_main(void *arg)
{
    (void)arg;
    FORK_CHECK(weft_add_signal_handler(SIGUSR1, first, NULL) == 0, "%s", weft_errmsg());
    struct sigaction now;
    sigaction(SIGINT, NULL, &now);
    FORK_CHECK(now.sa_handler != SIG_DFL, "weft_run on this single thread took SIGINT for Ctrl-C");
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction u1, in;
        sigaction(SIGUSR1, NULL, &u1);
        sigaction(SIGINT, NULL, &in);
        _exit(u1.sa_handler == program_handler && in.sa_handler == SIG_DFL ? 0 : 1);
    }
    int status = 0;
    FORK_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
    FORK_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child kept weft's handlers");
    sigaction(SIGUSR1, NULL, &now);
    FORK_CHECK(now.sa_handler != program_handler, "the parent keeps weft's");

    weft_procpool *pool = weft_procpool_new(1);
    FORK_CHECK(pool != NULL, "%s", weft_errmsg());
    if (!pool)
        return NULL;
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(pool, dispositions, NULL, 0, &out, &out_len);
    FORK_CHECK(rc == 0, "%s", weft_errmsg());
    FORK_CHECK(out && strcmp(out, "program default") == 0, "the worker's dispositions: %s",
               out ? (char *)out : "(none)");
    free(out);
    weft_procpool_free(pool);
    return NULL;
}

static int fork_scenario(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = program_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGINT, SIG_DFL);
    int rc = weft_run(fork_main, NULL, NULL);
    FORK_CHECK(rc == 0, "weft_run: %s", weft_errmsg());
    return fork_failures ? 1 : 0;
}

Test(signal, forked_children_and_pool_workers_get_the_previous_dispositions)
{
    child_outcome out;
    run_forked(fork_scenario, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %#x:\n%s", out.status,
              out.stderr_text);
}

/* ---- Ctrl-C, from outside: tests/signal/sigint_child.c --------------------------- */

typedef struct child {
    pid_t pid;
    int out;          /* its stdout and stderr */
    char text[8192];  /* what it printed so far */
    size_t len;
    bool eof;
} child;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void child_start(child *c, const char *mode, bool sigint_ignored)
{
    memset(c, 0, sizeof *c);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    c->pid = fork();
    cr_assert(c->pid >= 0);
    if (c->pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        /* As a shell starts it: SIGINT default (or ignored, as for a background job). */
        signal(SIGINT, sigint_ignored ? SIG_IGN : SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(WEFT_SIGINT_CHILD, WEFT_SIGINT_CHILD, mode, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    c->out = p[0];
}

/* Reads what the child prints until `text` has appeared (true) or `timeout` s
 * passed or it closed its output (false). NULL text: until it closes. */
static bool child_read_until(child *c, const char *text, double timeout)
{
    double deadline = now_s() + timeout;
    while (!(text && strstr(c->text, text))) {
        if (c->eof)
            return false;
        double left = deadline - now_s();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = c->out, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t n = read(c->out, c->text + c->len, sizeof c->text - 1 - c->len);
        if (n <= 0) {
            c->eof = true;
        } else {
            c->len += (size_t)n;
            c->text[c->len] = '\0';
        }
    }
    return true;
}

/* Waits for the child to end (killing it after `timeout` s). Returns its status. */
static int child_finish(child *c, double timeout)
{
    child_read_until(c, NULL, timeout);
    double deadline = now_s() + timeout;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid)
            break;
        if (now_s() > deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            cr_expect(false, "the child did not end within %.0f s; it printed:\n%s", timeout, c->text);
            break;
        }
        nanosleep(&(struct timespec){0, 5 * 1000000}, NULL);
    }
    close(c->out);
    return status;
}

static bool died_of_sigint(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGINT;
}

Test(signal, ctrl_c_cancels_main_which_cleans_up_and_the_process_dies_of_sigint)
{
    child c;
    child_start(&c, "plain", false);
    cr_assert(child_read_until(&c, "ready weft\n", 10), "printed: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    int status = child_finish(&c, 10);
    cr_expect(strstr(c.text, "cancelled: ECANCELED: weft_run: SIGINT (Ctrl-C): main task cancelled\n"),
              "printed: %s", c.text);
    cr_expect(strstr(c.text, "cleaned up\n"), "printed: %s", c.text);
    cr_expect(strstr(c.text, "weft_run: WEFT_EINTERRUPTED: weft_run: main was cancelled by SIGINT"),
              "printed: %s", c.text);
    cr_expect(strstr(c.text, "after: default\n"), "SIGINT given back: %s", c.text);
    cr_expect(died_of_sigint(status), "status %#x; printed: %s", status, c.text);
}

Test(signal, a_second_ctrl_c_kills_at_once_while_cleanup_blocks)
{
    child c;
    child_start(&c, "blocking", false);
    cr_assert(child_read_until(&c, "ready weft\n", 10), "printed: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    cr_assert(child_read_until(&c, "cleaning up\n", 10), "printed: %s", c.text);
    double t0 = now_s();
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    int status = child_finish(&c, 10);
    double took = now_s() - t0;
    cr_expect(died_of_sigint(status), "status %#x; printed: %s", status, c.text);
    cr_expect(took < 5, "it took %.1f s to die: the cleanup's sleep was not interrupted", took);
    cr_expect(!strstr(c.text, "cleaned up"), "printed: %s", c.text);
}

Test(signal, a_ctrl_c_after_main_finished_kills_at_once)
{
    child c;
    child_start(&c, "leftover", false);
    cr_assert(child_read_until(&c, "leftover blocking\n", 10), "printed: %s", c.text);
    double t0 = now_s();
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    int status = child_finish(&c, 10);
    cr_expect(died_of_sigint(status), "status %#x; printed: %s", status, c.text);
    cr_expect(now_s() - t0 < 5);
    cr_expect(!strstr(c.text, "leftover done"), "printed: %s", c.text);
}

Test(signal, main_that_survives_the_cancellation_returns_normally)
{
    child c;
    child_start(&c, "uncancel", false);
    cr_assert(child_read_until(&c, "ready weft\n", 10), "printed: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    int status = child_finish(&c, 10);
    cr_expect(strstr(c.text, "uncancel 0\n"), "printed: %s", c.text);
    cr_expect(strstr(c.text, "weft_run: 0: survived\n"), "printed: %s", c.text);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x; printed: %s", status, c.text);
}

Test(signal, with_no_sigint_ctrl_c_keeps_its_default_action)
{
    child c;
    child_start(&c, "no_sigint", false);
    cr_assert(child_read_until(&c, "ready default\n", 10), "printed: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    int status = child_finish(&c, 10);
    cr_expect(died_of_sigint(status), "status %#x; printed: %s", status, c.text);
    cr_expect(!strstr(c.text, "cancelled"), "printed: %s", c.text);
}

Test(signal, an_ignored_sigint_is_left_alone)
{
    child c;
    child_start(&c, "uncancel", true);
    cr_assert(child_read_until(&c, "ready ignored\n", 10), "printed: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    /* Ignored: main sleeps on; nothing is printed. */
    cr_expect(!child_read_until(&c, "cancelled", 0.3), "printed: %s", c.text);
    kill(c.pid, SIGKILL);
    int status = child_finish(&c, 10);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

Test(signal, a_task_waiting_for_sigint_takes_it_over_until_removed)
{
    child c;
    child_start(&c, "takeover", false);
    cr_assert(child_read_until(&c, "ready weft\n", 10), "printed: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    cr_assert(child_read_until(&c, "ready again weft\n", 10), "printed: %s", c.text);
    cr_expect(strstr(c.text, "got SIGINT 1\nremoved 1\n"), "printed: %s", c.text);
    cr_expect(!strstr(c.text, "cancelled"), "the first SIGINT went to the task, not to main: %s", c.text);
    cr_assert_eq(kill(c.pid, SIGINT), 0);
    int status = child_finish(&c, 10);
    cr_expect(strstr(c.text, "cleaned up\n"), "printed: %s", c.text);
    cr_expect(strstr(c.text, "weft_run: WEFT_EINTERRUPTED"), "printed: %s", c.text);
    cr_expect(died_of_sigint(status), "status %#x; printed: %s", status, c.text);
}
