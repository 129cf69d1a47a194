/*
 * test_dump.c — task dumps as a user reads them: weft_dump of a scenario where each
 * task waits on something else (a sleep, a lock another task holds, a queue, a
 * channel, an awaited task, an event, a semaphore, a descriptor, a thread pool call)
 * lists every task with what it waits on, its stack down to this file's functions,
 * and in debug mode where it was created; the loop's timed callback and the pool call
 * in flight are listed too. SIGQUIT, with weft_options.dump_signal, prints the dump on
 * stderr and the program goes on; without it (or with SIGQUIT handled by the
 * program) SIGQUIT is left as it was.
 *
 * The scenario runs in real time (a pool thread blocks in it); its sleeps are long,
 * and every task is cancelled once the dump is taken, so nothing depends on timing
 * but "the tasks have reached their waits", which the main task waits for.
 */
#include "../common.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

TestSuite(dump, .timeout = 60);

/* ---- the scenario --------------------------------------------------------- */

typedef struct scene {
    weft_lock *lock;
    weft_event *hold_ev;     /* the holder waits here, the lock held */
    weft_queue *queue;
    weft_chan *chan;
    weft_sem *sem;
    weft_task *target;       /* awaited by the awaiter */
    int fd_pipe[2];          /* the reader waits on fd_pipe[0] */
    int pool_pipe[2];        /* blocking_read blocks on pool_pipe[0] */
    atomic_int pool_started;
    char *dump;              /* what weft_dump wrote */
    size_t dump_len;
    int dump_rc;
} scene;

static scene S;

static void *sleeper_fn(void *arg)
{
    (void)arg;
    weft_sleep(100);
    return NULL;
}

static void *holder_fn(void *arg)
{
    (void)arg;
    if (weft_lock_acquire(S.lock) == 0) {
        weft_event_wait(S.hold_ev);
        weft_lock_release(S.lock);
    }
    return NULL;
}

static void *locker_fn(void *arg)
{
    (void)arg;
    if (weft_lock_acquire(S.lock) == 0)
        weft_lock_release(S.lock);
    return NULL;
}

static void *getter_fn(void *arg)
{
    (void)arg;
    void *item;
    weft_queue_get(S.queue, &item);
    return NULL;
}

static void *receiver_fn(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(S.chan, &v);
    return NULL;
}

static void *target_fn(void *arg)
{
    (void)arg;
    weft_sem_acquire(S.sem);
    return NULL;
}

static void *awaiter_fn(void *arg)
{
    (void)arg;
    weft_await(S.target, NULL);
    return NULL;
}

static void *reader_fn(void *arg)
{
    (void)arg;
    weft_fd_wait(S.fd_pipe[0], WEFT_READABLE);
    return NULL;
}

static void *blocking_read(void *arg)
{
    (void)arg;
    char c;
    atomic_store(&S.pool_started, 1);
    while (read(S.pool_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void *pooler_fn(void *arg)
{
    (void)arg;
    weft_to_thread(blocking_read, NULL, NULL);
    return NULL;
}

static void later_cb(void *arg)
{
    (void)arg;
}

static weft_task *spawn_named(weft_fn fn, const char *name)
{
    return weft_spawn_opts(fn, NULL, &(weft_spawn_options){.name = name});
}

static void *scenario_main(void *arg)
{
    (void)arg;
    S.lock = weft_lock_new();
    S.hold_ev = weft_event_new();
    S.queue = weft_queue_new(4);
    S.chan = weft_chan_new(sizeof(int), 0);
    S.sem = weft_sem_new(0);
    weft_task *tasks[9];
    size_t n = 0;
    tasks[n++] = spawn_named(sleeper_fn, "sleeper");
    tasks[n++] = spawn_named(holder_fn, "holder");
    tasks[n++] = spawn_named(locker_fn, "locker");
    tasks[n++] = spawn_named(getter_fn, "getter");
    tasks[n++] = spawn_named(receiver_fn, "receiver");
    S.target = spawn_named(target_fn, "target");
    tasks[n++] = spawn_named(awaiter_fn, "awaiter");
    tasks[n++] = spawn_named(reader_fn, "reader");
    tasks[n++] = spawn_named(pooler_fn, "pooler");
    weft_call later = weft_call_later(50.0, later_cb, NULL);

    /* Every task reaches its wait in its first step; the pool call needs a thread. */
    weft_sleep(0.05);
    for (int i = 0; i < 2000 && !atomic_load(&S.pool_started); i++)
        weft_sleep(0.005);
    cr_expect(atomic_load(&S.pool_started), "the thread pool call never started");

    FILE *mem = open_memstream(&S.dump, &S.dump_len);
    S.dump_rc = weft_dump(mem);
    fclose(mem);

    /* Let everything go: the blocking call returns once the pipe has a byte. */
    weft_call_cancel(later);
    for (size_t i = 0; i < n; i++)
        weft_cancel(tasks[i], NULL);
    cr_expect_eq(write(S.pool_pipe[1], "x", 1), 1);
    for (size_t i = 0; i < n; i++)
        weft_await(tasks[i], NULL);
    weft_lock_free(S.lock);
    weft_event_free(S.hold_ev);
    weft_queue_free(S.queue);
    weft_chan_free(S.chan);
    weft_sem_free(S.sem);
    return NULL;
}

static void run_scenario(int debug)
{
    free(S.dump);
    memset(&S, 0, sizeof S);
    cr_assert_eq(pipe(S.fd_pipe), 0);
    cr_assert_eq(pipe(S.pool_pipe), 0);
    int rc = weft_run_opts(scenario_main, NULL, NULL, &(weft_options){.debug = debug, .slow_step = 100});
    cr_assert_eq(rc, 0, "weft_run: %d %s", rc, weft_errmsg());
    close(S.fd_pipe[0]);
    close(S.fd_pipe[1]);
    close(S.pool_pipe[0]);
    close(S.pool_pipe[1]);
    cr_assert_not_null(S.dump);
}

/* The dump's block of the task named `name`: from its `task N "name"` line to the
 * blank line after it (a copy, freed by the caller), or NULL. */
static char *block_of(const char *dump, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, " \"%s\"", name);
    for (const char *at = strstr(dump, key); at; at = strstr(at + 1, key)) {
        const char *line = at;
        while (line > dump && line[-1] != '\n')
            line--;
        if (strncmp(line, "task ", 5) != 0)
            continue;
        const char *end = strstr(at, "\n\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = malloc(len + 1);
        memcpy(copy, line, len);
        copy[len] = '\0';
        return copy;
    }
    return NULL;
}

/* Checks that the block of task `name` holds every string given (NULL-terminated). */
static void expect_block(const char *name, ...)
{
    char *block = block_of(S.dump, name);
    cr_assert_not_null(block, "no task \"%s\" in the dump:\n%s", name, S.dump);
    va_list ap;
    va_start(ap, name);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;)
        cr_expect_not_null(strstr(block, want), "task \"%s\": no \"%s\" in its block:\n%s", name, want, block);
    va_end(ap);
    free(block);
}

static void expect_scenario_dump(void)
{
    cr_expect_eq(S.dump_rc, 10, "weft_dump returned %d (10 tasks: main and nine)", S.dump_rc);
    cr_expect_not_null(strstr(S.dump, "weft: task dump (weft_dump): 10 tasks (9 waiting, 0 ready, 1 running)"),
                       "header:\n%s", S.dump);
    expect_block("Task-1", "(main) [running]", "stack (it called weft_dump)", "scenario_main at test_dump.c:",
                 NULL);
    expect_block("sleeper", "[waiting", "waits on: sleep (wakes in 99.", "sleeper_fn at test_dump.c:", NULL);
    expect_block("holder", "waits on: event (", "holder_fn at test_dump.c:", NULL);
    expect_block("locker", "waits on: lock (0x", "held by task 3 \"holder\" (waiting)", "1 of 1 waiting",
                 "locker_fn at test_dump.c:", NULL);
    expect_block("getter", "waits on: queue (get from 0x", "0 items (maxsize 4)", "getter_fn at test_dump.c:",
                 NULL);
    expect_block("receiver", "waits on: channel (receive from 0x", "receiver_fn at test_dump.c:", NULL);
    expect_block("target", "waits on: semaphore (0x", "value 0", "target_fn at test_dump.c:", NULL);
    expect_block("awaiter", "waits on: awaited task (task 7 \"target\" (waiting))", "awaiter_fn at test_dump.c:",
                 NULL);
    char fd[48];
    snprintf(fd, sizeof fd, "waits on: descriptor (fd %d, to read)", S.fd_pipe[0]);
    expect_block("reader", fd, "reader_fn at test_dump.c:", NULL);
    expect_block("pooler", "waits on: thread pool call (blocking_read at test_dump.c:",
                 "running on a pool thread", "pooler_fn at test_dump.c:", NULL);
    /* The loop's callbacks and calls in flight. */
    cr_expect_not_null(strstr(S.dump, "loop callbacks: "), "%s", S.dump);
    const char *later = strstr(S.dump, "later_cb at test_dump.c:");
    cr_expect_not_null(later, "the timed callback is not listed:\n%s", S.dump);
    cr_expect_not_null(strstr(S.dump, "  timed, in 49."), "%s", S.dump);
    const char *calls = strstr(S.dump, "thread pool calls in flight: 1 submitted by this loop and not back\n");
    cr_expect_not_null(calls, "%s", S.dump);
    if (calls)
        cr_expect_not_null(strstr(calls, "blocking_read at test_dump.c:"), "%s", calls);
    cr_expect_not_null(strstr(S.dump, "running on a pool thread of the default pool, for task 10 \"pooler\""),
                       "%s", S.dump);
    cr_expect_not_null(strstr(S.dump, "weft: end of task dump\n"), "%s", S.dump);
}

Test(dump, every_task_with_what_it_waits_on)
{
    run_scenario(0);
    expect_scenario_dump();
    /* Outside debug mode the dump says where to learn more, and no task says where
     * it was created. */
    cr_expect_not_null(strstr(S.dump, "shown in debug mode, WEFT_DEBUG=1)"), "%s", S.dump);
    cr_expect_null(strstr(S.dump, "created at"), "%s", S.dump);
}

Test(dump, debug_mode_adds_creation_sites_and_times)
{
    run_scenario(1);
    expect_scenario_dump();
    static const char *const names[] = {"sleeper", "holder", "locker", "getter", "receiver",
                                        "target",  "awaiter", "reader", "pooler"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        expect_block(names[i], "created at spawn_named at test_dump.c:", "[waiting, for ", NULL);
    cr_expect_null(strstr(S.dump, "shown in debug mode"), "%s", S.dump);
}

Test(dump, outside_a_loop_says_so)
{
    cr_expect_eq(weft_dump(NULL), WEFT_ENOTINLOOP);
    cr_expect_not_null(strstr(weft_errmsg(), "weft_dump must be called on a thread running a weft loop"), "%s",
                       weft_errmsg());
}

/* ---- the other kinds of wait ------------------------------------------------ */

/* The waits of the combinators, the other primitives, streams, processes and
 * signals: each is described, and the dump never stumbles on any of them. */
typedef struct more {
    weft_chan *a, *b;        /* a select receives from a and sends on b (full) */
    weft_barrier *barrier;
    weft_cond *cond;
    weft_future *future;
    weft_stream *stream;     /* of a pipe nobody writes to */
    weft_process *process;
    int pid;
    char *dump;
    size_t dump_len;
} more;

static more M;

static void *nap(void *arg)
{
    (void)arg;
    weft_sleep(100);
    return NULL;
}

static weft_task *child(const char *name)
{
    return weft_spawn_opts(nap, NULL, &(weft_spawn_options){.name = name});
}

static void *gatherer_fn(void *arg)
{
    (void)arg;
    weft_task *kids[2] = {child("kid1"), child("kid2")};
    weft_gather(kids, 2, NULL, NULL, 0);
    return NULL;
}

static void *grouper_fn(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    weft_group_spawn_opts(g, nap, NULL, &(weft_spawn_options){.name = "member"});
    weft_group_wait(g, 0);
    weft_group_free(g);
    return NULL;
}

static void *wait_forer_fn(void *arg)
{
    (void)arg;
    weft_wait_for(child("timed"), 30, NULL);
    return NULL;
}

static void *selector_fn(void *arg)
{
    (void)arg;
    int in, out = 7;
    weft_select_case cases[2] = {{M.a, WEFT_RECV, &in, 0}, {M.b, WEFT_SEND, &out, 0}};
    weft_select(cases, 2, 20);
    return NULL;
}

static void *barrier_fn(void *arg)
{
    (void)arg;
    weft_barrier_wait(M.barrier);
    return NULL;
}

static void *cond_fn(void *arg)
{
    (void)arg;
    if (weft_lock_acquire(weft_cond_lock(M.cond)) == 0) {
        weft_cond_wait(M.cond);
        weft_lock_release(weft_cond_lock(M.cond));
    }
    return NULL;
}

static void *future_fn(void *arg)
{
    (void)arg;
    weft_future_await(M.future, NULL);
    return NULL;
}

static void *stream_fn(void *arg)
{
    (void)arg;
    char buf[16];
    weft_stream_read(M.stream, buf, sizeof buf);
    return NULL;
}

static void *waiter_fn(void *arg)
{
    (void)arg;
    weft_task *t = child("watched");
    weft_wait(&t, 1, WEFT_FIRST_COMPLETED, 10, NULL, NULL, NULL, NULL);
    weft_cancel(t, NULL);
    weft_await(t, NULL);
    return NULL;
}

static void *shielder_fn(void *arg)
{
    (void)arg;
    weft_task *t = child("shielded");
    if (weft_shield(t, NULL) == -ECANCELED) {
        weft_cancel(t, NULL);
        weft_uncancel();
        weft_await(t, NULL);
    }
    return NULL;
}

static void *process_fn(void *arg)
{
    (void)arg;
    weft_process_wait(M.process, NULL);
    return NULL;
}

static void *signal_fn(void *arg)
{
    (void)arg;
    weft_signal_wait(SIGUSR1);
    return NULL;
}

static void *more_main(void *arg)
{
    (void)arg;
    M.a = weft_chan_new(sizeof(int), 0);
    M.b = weft_chan_new(sizeof(int), 1);
    int one = 1;
    weft_chan_send(M.b, &one); /* full: the select's send waits */
    M.barrier = weft_barrier_new(3);
    M.cond = weft_cond_new(NULL);
    M.future = weft_future_new();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    M.stream = weft_stream_from_fd(p[0], NULL);
    const char *argv[] = {"sleep", "100", NULL};
    M.process = weft_create_subprocess_exec(argv, NULL);
    cr_assert_not_null(M.process, "%s", weft_errmsg());
    M.pid = weft_process_pid(M.process);

    static const struct {
        weft_fn fn;
        const char *name;
    } who[] = {{gatherer_fn, "gatherer"}, {grouper_fn, "grouper"}, {wait_forer_fn, "wait_forer"},
               {selector_fn, "selector"}, {barrier_fn, "barrier"}, {cond_fn, "conder"},
               {future_fn, "futurer"},    {stream_fn, "streamer"}, {waiter_fn, "waiter"},
               {shielder_fn, "shielder"}, {process_fn, "process"}, {signal_fn, "signaller"}};
    enum { N = sizeof who / sizeof who[0] };
    weft_task *tasks[N];
    for (size_t i = 0; i < N; i++)
        tasks[i] = spawn_named(who[i].fn, who[i].name);
    /* Two compact tasks: the frames of the one that ran last are on the shared
     * stack; the other's are copied away, and the dump says so. */
    weft_task *compact[2];
    for (int i = 0; i < 2; i++)
        compact[i] = weft_spawn_opts(nap, NULL, &(weft_spawn_options){.name = i ? "compact2" : "compact1",
                                                                      .compact = 1});
    weft_sleep(0.1);

    FILE *mem = open_memstream(&M.dump, &M.dump_len);
    int rc = weft_dump(mem);
    fclose(mem);
    cr_expect_gt(rc, (int)N, "weft_dump returned %d", rc);

    weft_process_kill(M.process);
    for (size_t i = 0; i < N; i++)
        weft_cancel(tasks[i], NULL);
    for (size_t i = 0; i < N; i++)
        weft_await(tasks[i], NULL);
    for (int i = 0; i < 2; i++) {
        weft_cancel(compact[i], NULL);
        weft_await(compact[i], NULL);
    }
    weft_process_wait(M.process, NULL);
    weft_process_free(M.process);
    weft_stream_close(M.stream);
    close(p[1]);
    weft_future_free(M.future);
    weft_cond_free(M.cond);
    weft_barrier_free(M.barrier);
    weft_chan_free(M.a);
    weft_chan_free(M.b);
    return NULL;
}

Test(dump, every_kind_of_wait_is_described)
{
    memset(&M, 0, sizeof M);
    int rc = weft_run(more_main, NULL, NULL);
    cr_assert_eq(rc, 0, "weft_run: %d %s", rc, weft_errmsg());
    cr_assert_not_null(M.dump);
    S.dump = M.dump; /* for expect_block */
    expect_block("gatherer", "waits on: gather (2 of 2 tasks unfinished, the first task ", "\"kid1\" (waiting)",
                 NULL);
    expect_block("grouper", "waits on: task group's children (group 0x", "1 children unfinished",
                 "\"member\" (waiting)", NULL);
    expect_block("wait_forer", "waits on: wait_for (task ", "\"timed\" (waiting); deadline in 29.", NULL);
    expect_block("selector", "waits on: channel (select of 2 cases: receive from 0x", "send on 0x",
                 "(1 of 1 buffered)", "times out in 19.", NULL);
    expect_block("barrier", "waits on: barrier (0x", "1 of 3 parties arrived", NULL);
    expect_block("conder", "waits on: condition (0x", "1 waiting for a notification", NULL);
    expect_block("futurer", "waits on: future (0x", "pending; 1 awaiting", NULL);
    expect_block("streamer", "waits on: stream read (fd ", "0 bytes buffered", NULL);
    expect_block("waiter", "waits on: weft_wait (1 of 1 tasks unfinished, until the first completes; timeout in 9.",
                 NULL);
    expect_block("shielder", "waits on: shielded task (task ", "\"shielded\" (waiting)", NULL);
    char pid[64];
    snprintf(pid, sizeof pid, "waits on: process to exit (pid %d (sleep", M.pid);
    expect_block("process", pid, NULL);
    expect_block("signaller", "waits on: signal (SIGUSR1)", NULL);
    expect_block("kid1", "waits on: sleep (wakes in ", NULL);
    expect_block("compact1", "waits on: sleep (wakes in ",
                 "stack: not available: a compact task's frames are copied out of the shared stack", NULL);
    expect_block("compact2", "waits on: sleep (wakes in ", "stack:\n", "nap at test_dump.c:", NULL);
    if (getenv("WEFT_TEST_SHOW_DUMP"))
        fputs(M.dump, stderr);
    S.dump = NULL;
    free(M.dump);
}

/* ---- SIGQUIT --------------------------------------------------------------- */

static void *quit_sleeper(void *arg)
{
    (void)arg;
    weft_sleep(30);
    return NULL;
}

/* Raises SIGQUIT (a handler runs before raise returns), lets the loop turn, and
 * goes on. */
static void *quit_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(quit_sleeper, NULL, &(weft_spawn_options){.name = "napper"});
    weft_sleep(0.01);
    raise(SIGQUIT);
    weft_sleep(0.05);
    fprintf(stderr, "main went on after SIGQUIT\n");
    weft_cancel(t, NULL);
    weft_await(t, NULL);
    return NULL;
}

/* Says on stderr what SIGQUIT's disposition is now. */
static void say_disposition(void)
{
    struct sigaction now;
    sigaction(SIGQUIT, NULL, &now);
    fprintf(stderr, "SIGQUIT afterwards: %s\n", now.sa_handler == SIG_DFL   ? "SIG_DFL"
                                                : now.sa_handler == SIG_IGN ? "SIG_IGN"
                                                                             : "a handler");
}

static int quit_child(int dump_signal)
{
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}); /* no core file if SIGQUIT kills */
    int rc = weft_run_opts(quit_main, NULL, NULL, &(weft_options){.dump_signal = dump_signal});
    say_disposition();
    return rc == 0 ? 0 : 3;
}

static int quit_with_dump_signal(void)
{
    return quit_child(1);
}

static int quit_without(void)
{
    unsetenv("WEFT_DUMP_SIGNAL");
    unsetenv("WEFT_DEBUG");
    return quit_child(0);
}

static int quit_ignored_by_program(void)
{
    signal(SIGQUIT, SIG_IGN);
    return quit_child(1);
}

Test(dump, sigquit_prints_the_dump_and_the_program_goes_on)
{
    child_outcome out;
    run_forked(quit_with_dump_signal, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %#x, stderr:\n%s", out.status,
              out.stderr_text);
    /* Run as a loop callback: no task is running; main waits in its sleep. */
    const char *dump = strstr(out.stderr_text, "weft: task dump (SIGQUIT): 2 tasks (2 waiting, 0 ready, 0 running)");
    cr_assert_not_null(dump, "no dump on stderr:\n%s", out.stderr_text);
    cr_expect_not_null(strstr(dump, "task 2 \"napper\" [waiting]\n  waits on: sleep (wakes in "), "%s", dump);
    cr_expect_not_null(strstr(dump, "quit_sleeper at test_dump.c:"), "%s", dump);
    cr_expect_not_null(strstr(dump, "weft: end of task dump"), "%s", dump);
    const char *went_on = strstr(out.stderr_text, "main went on after SIGQUIT");
    cr_expect(went_on && went_on > dump, "%s", out.stderr_text);
    cr_expect_not_null(strstr(out.stderr_text, "SIGQUIT afterwards: SIG_DFL"), "%s", out.stderr_text);
}

Test(dump, sigquit_without_dump_signal_kills_as_before)
{
    child_outcome out;
    run_forked(quit_without, &out);
    cr_expect(WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGQUIT, "status %#x, stderr:\n%s", out.status,
              out.stderr_text);
    cr_expect_null(strstr(out.stderr_text, "task dump"), "%s", out.stderr_text);
}

Test(dump, sigquit_handled_by_the_program_is_left_alone)
{
    child_outcome out;
    run_forked(quit_ignored_by_program, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %#x, stderr:\n%s", out.status,
              out.stderr_text);
    cr_expect_null(strstr(out.stderr_text, "task dump"), "%s", out.stderr_text);
    cr_expect_not_null(strstr(out.stderr_text, "SIGQUIT afterwards: SIG_IGN"), "%s", out.stderr_text);
    /* Asked for and not possible: said, once. */
    cr_expect_not_null(strstr(out.stderr_text, "weft: no SIGQUIT dump for this loop (weft_options.dump_signal / "
                                               "WEFT_DUMP_SIGNAL): SIGQUIT is ignored"),
                       "%s", out.stderr_text);
}

/* SIGQUIT's notifier does not keep the loop waiting: a deadlock is still reported. */
static void *stuck_main(void *arg)
{
    (void)arg;
    weft_event *ev = weft_event_new();
    weft_event_wait(ev); /* nobody sets it */
    weft_event_free(ev);
    return NULL;
}

static int deadlock_with_dump_signal(void)
{
    int rc = weft_run_opts(stuck_main, NULL, NULL, &(weft_options){.dump_signal = 1});
    fprintf(stderr, "weft_run returned %s\n", weft_errname(rc));
    say_disposition();
    return 0;
}

Test(dump, dump_signal_leaves_deadlocks_reported)
{
    child_outcome out;
    run_forked(deadlock_with_dump_signal, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %#x, stderr:\n%s", out.status,
              out.stderr_text);
    cr_expect_not_null(strstr(out.stderr_text, "weft_run returned WEFT_EDEADLOCK_LOOP"), "%s", out.stderr_text);
    cr_expect_not_null(strstr(out.stderr_text, "SIGQUIT afterwards: SIG_DFL"), "%s", out.stderr_text);
}

/* A SIGQUIT that comes as the loop ends, after its last turn, is said, not lost. */
static void *quit_then_return(void *arg)
{
    (void)arg;
    raise(SIGQUIT); /* handled: the dump waits for a loop turn that main's return ends */
    return NULL;
}

static int quit_at_the_end(void)
{
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    return weft_run_opts(quit_then_return, NULL, NULL, &(weft_options){.dump_signal = 1}) == 0 ? 0 : 3;
}

Test(dump, sigquit_as_the_loop_ends_is_said)
{
    child_outcome out;
    run_forked(quit_at_the_end, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %#x, stderr:\n%s", out.status,
              out.stderr_text);
    cr_expect_not_null(strstr(out.stderr_text, "weft: SIGQUIT came as the loop was ending"), "%s",
                       out.stderr_text);
}
