/*
 * test_procpool.c — the process pool (src/procpool.c): results, errors and their
 * messages come back from worker processes; large buffers travel intact; calls on
 * two workers overlap; a worker killed or crashing mid-call fails that call with
 * WEFT_EBROKENPOOL at once and is replaced; cancellation of a queued call (it never
 * runs) and of a running one (returns at once, the late result is drained); free
 * answers waiting calls with -ESHUTDOWN and leaves no process behind; creation is
 * refused while other threads exist. Real time: the processes are real, so timing
 * checks keep wide margins.
 *
 * Criterion's test process has a thread of its own, and a process pool refuses to
 * be created next to threads; so each scenario runs in a forked child, which has
 * one thread, checks with CHECK (written to stderr, counted into the exit status)
 * and the test asserts that the child exited 0, showing what it wrote if not.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>

TestSuite(procpool, .timeout = 60);

/* ---- checks inside the forked scenario ------------------------------------ */

static int failures;

static void check_at(int line, bool ok, const char *fmt, ...) WEFT_PRINTF(3, 4);

static void check_at(int line, bool ok, const char *fmt, ...)
{
    if (ok)
        return;
    failures++;
    fprintf(stderr, "test_procpool.c:%d: check failed: ", line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond, ...) check_at(__LINE__, (cond), __VA_ARGS__)
#define CHECK_EQ(a, b)                                                                     \
    do {                                                                                   \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
        check_at(__LINE__, check_a_ == check_b_, "%s == %s: %lld != %lld", #a, #b, check_a_, \
                 check_b_);                                                                \
    } while (0)

/* A hung scenario fails within this many seconds instead of at Criterion's limit. */
#define SCENARIO_SECONDS 30

static int (*current_scenario)(void);

/* In the child: it dies with the test process (and its pools' processes with it,
 * each dying with its parent), and a hang ends it by SIGALRM; nothing is left. */
static int scenario_child(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(SCENARIO_SECONDS);
    return current_scenario();
}

/* Runs the scenario in a single-threaded child; the test passes if it did. */
static void run_scenario(int (*scenario)(void))
{
    child_outcome out;
    current_scenario = scenario;
    run_forked(scenario_child, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "the scenario %s %d:\n%s",
              WIFEXITED(out.status) ? "exited with" : "was killed by signal",
              WIFEXITED(out.status) ? WEXITSTATUS(out.status) : WTERMSIG(out.status), out.stderr_text);
}

/* ---- functions run in the workers ----------------------------------------- */

static void block_for(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int give_int(int value, void **out, size_t *out_len)
{
    int *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    *p = value;
    *out = p;
    *out_len = sizeof *p;
    return 0;
}

/* in: two ints; out: their sum. */
static int add(const void *in, size_t in_len, void **out, size_t *out_len)
{
    if (in_len != 2 * sizeof(int))
        return -EINVAL;
    int xy[2];
    memcpy(xy, in, sizeof xy);
    return give_int(xy[0] + xy[1], out, out_len);
}

/* out: the input reversed. */
static int reverse(const void *in, size_t in_len, void **out, size_t *out_len)
{
    unsigned char *r = malloc(in_len);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < in_len; i++)
        r[i] = ((const unsigned char *)in)[in_len - 1 - i];
    *out = r;
    *out_len = in_len;
    return 0;
}

/* Fails with a message, as a pool thread's function does. */
static int refuse(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)out;
    (void)out_len;
    int value = in_len == sizeof(int) ? *(const int *)in : -1;
    weft_fail(-EINVAL, "bad input %d", value);
    return -EINVAL;
}

/* Fails without a message. */
static int refuse_quietly(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return -ERANGE;
}

/* in: a double of seconds to block; out: the worker's pid. */
static int nap(const void *in, size_t in_len, void **out, size_t *out_len)
{
    double seconds = 0;
    if (in_len == sizeof seconds)
        memcpy(&seconds, in, sizeof seconds);
    block_for(seconds);
    return give_int((int)getpid(), out, out_len);
}

/* out: the worker's parent, the pool's helper process. */
static int parent_pid(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    return give_int((int)getppid(), out, out_len);
}

/* in: a path; writes the worker's pid there, then blocks for 10 s. */
static int announce_then_block(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in_len;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", (const char *)in);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
        rename(tmp, (const char *)in); /* readers see all of it or nothing */
    }
    block_for(10);
    return give_int(0, out, out_len);
}

/* in: a path; creates that file: the side effect a call that never ran lacks. */
static int touch(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in_len;
    (void)out;
    (void)out_len;
    int fd = open((const char *)in, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
    return 0;
}

static int crash_abort(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    abort();
}

static int crash_segv(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    volatile int *volatile nowhere = NULL; /* volatile: the compiler cannot see the fault coming */
    *nowhere = 1;
    return 0;
}

/* out: how many descriptors the worker has open (its listing's own included). */
static int count_fds(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return give_int(n, out, out_len);
}

/* Uses 1 MiB of stack: more than a task's, as much as a main thread's allows. */
static int deep_stack(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in;
    (void)in_len;
    volatile char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i += 4096)
        big[i] = (char)i;
    return give_int(big[4096], out, out_len);
}

/* ---- helpers for the tasks ------------------------------------------------ */

static weft_procpool *pool;

static int call_int(weft_proc_fn fn, const void *in, size_t in_len, int *value)
{
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(pool, fn, in, in_len, &out, &out_len);
    if (rc == 0) {
        CHECK_EQ(out_len, sizeof(int));
        if (out && out_len == sizeof(int))
            memcpy(value, out, sizeof(int));
    } else {
        CHECK(out == NULL, "no output comes with an error");
    }
    free(out);
    return rc;
}

static int call_add(int x, int y, int *sum)
{
    int xy[2] = {x, y};
    return call_int(add, xy, sizeof xy, sum);
}

static void *nap_task(void *arg)
{
    double seconds = *(double *)arg;
    int pid = 0;
    int rc = call_int(nap, &seconds, sizeof seconds, &pid);
    trace("nap:%d", rc);
    return rc == 0 ? (void *)(intptr_t)pid : weft_fail(rc, "%s", weft_errmsg());
}

static void *path_task(void *arg)
{
    const char *path = arg;
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(pool, touch, path, strlen(path) + 1, &out, &out_len);
    trace("touch:%d", rc);
    free(out);
    return rc == 0 ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

static void temp_path(char *buf, size_t size, const char *what)
{
    snprintf(buf, size, "/tmp/weft_test_procpool_%d_%s", (int)getpid(), what);
    unlink(buf);
}

static bool no_children_left(void)
{
    errno = 0;
    return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

static bool process_gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* The usual scenario: a pool of `workers`, main_fn run on a loop, the pool freed,
 * and no process left behind. */
static int with_pool(size_t workers, weft_fn main_fn)
{
    pool = weft_procpool_new(workers);
    if (!pool) {
        fprintf(stderr, "weft_procpool_new failed: %s\n", weft_errmsg());
        return 1;
    }
    int rc = weft_run(main_fn, NULL, NULL);
    CHECK(rc == 0, "weft_run gave %d: %s", rc, weft_errmsg());
    weft_procpool_free(pool);
    CHECK(no_children_left(), "free left a child process");
    return failures;
}

/* ---- results and errors --------------------------------------------------- */

static void *results_main(void *arg)
{
    (void)arg;
    int sum = 0;
    CHECK_EQ(call_add(2, 3, &sum), 0);
    CHECK_EQ(sum, 5);
    CHECK_EQ(call_add(-40, 2, &sum), 0);
    CHECK_EQ(sum, -38);

    int seven = 7, value = 0;
    CHECK_EQ(call_int(refuse, &seven, sizeof seven, &value), -EINVAL);
    CHECK(strcmp(weft_errmsg(), "bad input 7") == 0, "got \"%s\"", weft_errmsg());
    CHECK_EQ(call_int(refuse_quietly, NULL, 0, &value), -ERANGE);
    CHECK(strstr(weft_errmsg(), "worker process") && strstr(weft_errmsg(), "ERANGE"),
          "message: %s", weft_errmsg());
    /* An error leaves no trace on the next call of the same worker. */
    CHECK_EQ(call_add(1, 1, &sum), 0);
    CHECK_EQ(sum, 2);

    /* A function giving nothing back: NULL, 0. */
    char path[128];
    temp_path(path, sizeof path, "results");
    void *out = (void *)1;
    size_t out_len = 99;
    CHECK_EQ(weft_procpool_run(pool, touch, path, strlen(path) + 1, &out, &out_len), 0);
    CHECK(out == NULL, "no output is NULL");
    CHECK_EQ(out_len, 0);
    CHECK_EQ(access(path, F_OK), 0);
    unlink(path);
    return NULL;
}

static int results_and_errors_come_back_with_their_messages_scenario(void)
{
    return with_pool(1, results_main);
}

Test(procpool, results_and_errors_come_back_with_their_messages)
{
    run_scenario(results_and_errors_come_back_with_their_messages_scenario);
}

/* ---- large buffers -------------------------------------------------------- */

static void *buffers_main(void *arg)
{
    (void)arg;
    /* 1 MiB is several socket buffers: both directions wait for room. */
    size_t sizes[] = {5000, 1u << 20, 0};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *in = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 2654435761u >> 13);
        void *out = NULL;
        size_t out_len = 0;
        CHECK_EQ(weft_procpool_run(pool, reverse, n ? in : NULL, n, &out, &out_len), 0);
        CHECK_EQ(out_len, n);
        bool intact = out_len == n;
        for (size_t i = 0; intact && i < n; i++)
            intact = ((unsigned char *)out)[i] == in[n - 1 - i];
        CHECK(intact, "the %zu bytes came back reversed and intact", n);
        free(out);
        free(in);
    }
    return NULL;
}

static int input_and_output_of_a_megabyte_travel_intact_scenario(void)
{
    return with_pool(2, buffers_main);
}

Test(procpool, input_and_output_of_a_megabyte_travel_intact)
{
    run_scenario(input_and_output_of_a_megabyte_travel_intact_scenario);
}

/* Compact callers: their inputs and outputs are locals of stacks that are copied
 * away while they wait (the pool must only touch them while they run). */
static void *compact_caller(void *arg)
{
    int seed = (int)(intptr_t)arg;
    unsigned char in[20000];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 7 + (size_t)seed);
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(pool, reverse, in, sizeof in, &out, &out_len);
    bool intact = rc == 0 && out_len == sizeof in;
    for (size_t i = 0; intact && i < sizeof in; i++)
        intact = ((unsigned char *)out)[i] == in[sizeof in - 1 - i];
    free(out);
    CHECK(intact, "compact caller %d got its own input back reversed (rc %d)", seed, rc);
    return NULL;
}

static void *compact_main(void *arg)
{
    (void)arg;
    weft_spawn_options opts = {.compact = 1};
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = weft_spawn_opts(compact_caller, (void *)(intptr_t)i, &opts);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(weft_await(t[i], NULL), 0);
    return NULL;
}

static int compact_tasks_can_call_the_pool_scenario(void)
{
    return with_pool(2, compact_main);
}

Test(procpool, compact_tasks_can_call_the_pool)
{
    run_scenario(compact_tasks_can_call_the_pool_scenario);
}

/* ---- parallelism ----------------------------------------------------------- */

static void *parallel_main(void *arg)
{
    (void)arg;
    double seconds = 0.2;
    double start = weft_time();
    weft_task *a = weft_spawn(nap_task, &seconds);
    weft_task *b = weft_spawn(nap_task, &seconds);
    void *pa = NULL, *pb = NULL;
    CHECK_EQ(weft_await(a, &pa), 0);
    CHECK_EQ(weft_await(b, &pb), 0);
    double took = weft_time() - start;
    CHECK(took >= 0.19 && took < 0.35, "two 0.2 s calls on two workers took %f s", took);
    CHECK((intptr_t)pa != (intptr_t)pb, "they ran in different workers");
    CHECK((intptr_t)pa != (intptr_t)getpid(), "the call ran in another process");

    /* Three calls on two workers: the third waits for a free one. */
    start = weft_time();
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(nap_task, &seconds);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_await(t[i], NULL), 0);
    took = weft_time() - start;
    CHECK(took >= 0.39 && took < 0.55, "three 0.2 s calls on two workers took %f s", took);
    return NULL;
}

static int calls_on_two_workers_overlap_scenario(void)
{
    return with_pool(2, parallel_main);
}

Test(procpool, calls_on_two_workers_overlap)
{
    run_scenario(calls_on_two_workers_overlap_scenario);
}

/* ---- dead workers ---------------------------------------------------------- */

static char announce_path[128];

static void *announcing_task(void *arg)
{
    (void)arg;
    int value = 0;
    int rc = call_int(announce_then_block, announce_path, strlen(announce_path) + 1, &value);
    return rc == 0 ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

static pid_t read_announced_pid(void)
{
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(announce_path, "r");
        if (f) {
            int pid = 0;
            int got = fscanf(f, "%d", &pid);
            fclose(f);
            if (got == 1)
                return pid;
        }
        weft_sleep(0.01);
    }
    return 0;
}

static void *killed_main(void *arg)
{
    (void)arg;
    temp_path(announce_path, sizeof announce_path, "announce");
    weft_task *t = weft_spawn(announcing_task, NULL);
    pid_t pid = read_announced_pid();
    CHECK(pid > 0, "the worker wrote its pid");
    if (pid <= 0) {
        weft_cancel(t, NULL);
        weft_await(t, NULL);
        return NULL;
    }
    double killed_at = weft_time();
    CHECK_EQ(kill(pid, SIGKILL), 0);
    int rc = weft_await(t, NULL);
    double took = weft_time() - killed_at;
    CHECK_EQ(rc, WEFT_EBROKENPOOL);
    CHECK(took < 1.0, "the call failed %f s after the kill", took);
    char expected[96];
    snprintf(expected, sizeof expected, "worker process %d died during the call: it was killed by signal 9",
             (int)pid);
    CHECK(strstr(weft_errmsg(), expected), "message: %s", weft_errmsg());
    CHECK(strstr(weft_errmsg(), "killed by signal 9"), "message: %s", weft_errmsg());
    CHECK(process_gone(pid), "the dead worker was reaped");
    unlink(announce_path);

    /* Replaced: the pool goes on. */
    int sum = 0;
    CHECK_EQ(call_add(2, 3, &sum), 0);
    CHECK_EQ(sum, 5);
    return NULL;
}

static int a_worker_killed_mid_call_fails_that_call_and_is_replaced_scenario(void)
{
    return with_pool(1, killed_main);
}

Test(procpool, a_worker_killed_mid_call_fails_that_call_and_is_replaced)
{
    run_scenario(a_worker_killed_mid_call_fails_that_call_and_is_replaced_scenario);
}

static void *crash_main(void *arg)
{
    (void)arg;
    void *out = NULL;
    size_t out_len = 0;
    CHECK_EQ(weft_procpool_run(pool, crash_abort, NULL, 0, &out, &out_len), WEFT_EBROKENPOOL);
    CHECK(strstr(weft_errmsg(), "died during the call"), "message: %s", weft_errmsg());
    CHECK(strstr(weft_errmsg(), "signal 6"), "message: %s", weft_errmsg());
    CHECK(out == NULL, "no output comes with an error");

    /* A segfault (under AddressSanitizer, its report and exit status 1). */
    CHECK_EQ(weft_procpool_run(pool, crash_segv, NULL, 0, &out, &out_len), WEFT_EBROKENPOOL);
    CHECK(strstr(weft_errmsg(), "died during the call"), "message: %s", weft_errmsg());

    /* The other worker and the replacements serve the next calls. */
    for (int i = 0; i < 4; i++) {
        int sum = 0;
        CHECK_EQ(call_add(i, 1, &sum), 0);
        CHECK_EQ(sum, i + 1);
    }
    return NULL;
}

static int a_worker_crashing_in_the_function_fails_that_call_only_scenario(void)
{
    return with_pool(2, crash_main);
}

Test(procpool, a_worker_crashing_in_the_function_fails_that_call_only)
{
    run_scenario(a_worker_crashing_in_the_function_fails_that_call_only_scenario);
}

static void *add_task(void *arg)
{
    (void)arg;
    int sum = 0;
    int rc = call_add(2, 3, &sum);
    return rc == 0 ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

static void *broken_main(void *arg)
{
    (void)arg;
    int zygote = 0;
    CHECK_EQ(call_int(parent_pid, NULL, 0, &zygote), 0);
    CHECK(zygote != (int)getpid(), "workers are not the program's children");
    double seconds = 5;
    weft_task *first = weft_spawn(nap_task, &seconds);
    weft_task *queued = weft_spawn(add_task, NULL);
    weft_sleep(0.05);
    /* Without the helper the workers die too (and nothing can replace them):
     * the running call fails, and the call queued behind it fails with it
     * instead of waiting for ever. */
    CHECK_EQ(kill(zygote, SIGKILL), 0);
    double start = weft_time();
    CHECK_EQ(weft_await(first, NULL), WEFT_EBROKENPOOL);
    CHECK(weft_time() - start < 1.0, "the call failed %f s after the kill", weft_time() - start);
    CHECK(strstr(weft_errmsg(), "broken"), "message: %s", weft_errmsg());
    CHECK_EQ(weft_await(queued, NULL), WEFT_EBROKENPOOL);
    CHECK(strstr(weft_errmsg(), "broken"), "message: %s", weft_errmsg());
    int sum = 0;
    CHECK_EQ(call_add(2, 3, &sum), WEFT_EBROKENPOOL);
    CHECK(strstr(weft_errmsg(), "the process pool is broken: worker process") &&
          strstr(weft_errmsg(), "create a new one"),
          "message: %s", weft_errmsg());
    return NULL;
}

static int a_pool_that_cannot_replace_workers_refuses_calls_scenario(void)
{
    return with_pool(1, broken_main);
}

Test(procpool, a_pool_that_cannot_replace_workers_refuses_calls)
{
    run_scenario(a_pool_that_cannot_replace_workers_refuses_calls_scenario);
}

/* ---- cancellation ---------------------------------------------------------- */

static void *cancel_queued_main(void *arg)
{
    (void)arg;
    char path[128];
    temp_path(path, sizeof path, "queued");
    double seconds = 0.3;
    weft_task *busy = weft_spawn(nap_task, &seconds);
    weft_task *queued = weft_spawn(path_task, path);
    weft_sleep(0.05);
    double cancelled_at = weft_time();
    weft_cancel(queued, NULL);
    CHECK_EQ(weft_await(queued, NULL), -ECANCELED);
    CHECK(weft_time() - cancelled_at < 0.05, "the queued call left at once");
    CHECK_EQ(weft_await(busy, NULL), 0);
    /* The worker is free again and has done nothing more. */
    int sum = 0;
    CHECK_EQ(call_add(2, 3, &sum), 0);
    CHECK_EQ(access(path, F_OK), -1);
    CHECK(strcmp(trace_text, "touch:-125 nap:0") == 0, "got \"%s\"", trace_text);
    unlink(path);
    return NULL;
}

static int a_cancelled_queued_call_never_runs_scenario(void)
{
    trace_reset();
    return with_pool(1, cancel_queued_main);
}

Test(procpool, a_cancelled_queued_call_never_runs)
{
    run_scenario(a_cancelled_queued_call_never_runs_scenario);
}

static void *cancel_running_main(void *arg)
{
    (void)arg;
    double seconds = 0.3;
    double start = weft_time();
    weft_task *running = weft_spawn(nap_task, &seconds);
    weft_sleep(0.05);
    weft_cancel(running, "enough");
    CHECK_EQ(weft_await(running, NULL), -ECANCELED);
    CHECK(strcmp(weft_errmsg(), "enough") == 0, "got \"%s\"", weft_errmsg());
    CHECK(weft_time() - start < 0.1, "the running call returned at once (%f s)", weft_time() - start);
    /* The next call gets its own result, not the late one, once the worker is
     * free: the late result is read and dropped first. */
    int sum = 0;
    CHECK_EQ(call_add(20, 22, &sum), 0);
    CHECK_EQ(sum, 42);
    double took = weft_time() - start;
    CHECK(took >= 0.29 && took < 0.6, "the worker was free after %f s", took);
    CHECK_EQ(call_add(1, 2, &sum), 0);
    CHECK_EQ(sum, 3);
    return NULL;
}

static int a_cancelled_running_call_returns_at_once_and_the_pool_stays_usable_scenario(void)
{
    return with_pool(1, cancel_running_main);
}

Test(procpool, a_cancelled_running_call_returns_at_once_and_the_pool_stays_usable)
{
    run_scenario(a_cancelled_running_call_returns_at_once_and_the_pool_stays_usable_scenario);
}

/* Cancelled while its megabyte of input is still being written: the rest is sent
 * from a copy, the late reply drained, and the next call is unaffected. */
static unsigned char *big_input;

static void *big_call_task(void *arg)
{
    (void)arg;
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(pool, reverse, big_input, 4u << 20, &out, &out_len);
    free(out);
    return rc == 0 ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

static void *cancel_sending_main(void *arg)
{
    (void)arg;
    big_input = calloc(4u << 20, 1);
    weft_task *t = weft_spawn(big_call_task, NULL);
    weft_yield(); /* it starts writing and waits for room */
    weft_cancel(t, NULL);
    CHECK_EQ(weft_await(t, NULL), -ECANCELED);
    memset(big_input, 0xee, 4u << 20); /* the caller's buffer is no longer used */
    free(big_input);
    int sum = 0;
    CHECK_EQ(call_add(5, 6, &sum), 0);
    CHECK_EQ(sum, 11);
    return NULL;
}

static int a_call_cancelled_while_sending_leaves_the_worker_in_step_scenario(void)
{
    return with_pool(1, cancel_sending_main);
}

Test(procpool, a_call_cancelled_while_sending_leaves_the_worker_in_step)
{
    run_scenario(a_call_cancelled_while_sending_leaves_the_worker_in_step_scenario);
}

/* ---- free ------------------------------------------------------------------ */

static void *free_main(void *arg)
{
    (void)arg;
    char path[128];
    temp_path(path, sizeof path, "after_free");
    double seconds = 0.3;
    weft_task *running = weft_spawn(nap_task, &seconds);
    weft_task *queued = weft_spawn(path_task, path);
    weft_sleep(0.05);
    double start = weft_time();
    weft_procpool_free(pool);
    double took = weft_time() - start;
    CHECK(took >= 0.2 && took < 1.0, "free waited %f s for the running call to end", took);
    CHECK(no_children_left(), "free reaped every process");
    CHECK_EQ(weft_await(running, NULL), -ESHUTDOWN);
    CHECK_EQ(weft_await(queued, NULL), -ESHUTDOWN);
    CHECK(strstr(weft_errmsg(), "freed"), "message: %s", weft_errmsg());
    CHECK_EQ(access(path, F_OK), -1);
    return NULL;
}

static int free_scenario(void)
{
    pool = weft_procpool_new(1);
    if (!pool) {
        fprintf(stderr, "weft_procpool_new failed: %s\n", weft_errmsg());
        return 1;
    }
    CHECK_EQ(weft_run(free_main, NULL, NULL), 0);
    return failures;
}

Test(procpool, free_answers_waiting_calls_with_eshutdown)
{
    run_scenario(free_scenario);
}

static pid_t seen_pids[8];

static void *zombie_main(void *arg)
{
    (void)arg;
    double seconds = 0.05;
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_spawn(nap_task, &seconds);
    for (int i = 0; i < 3; i++) {
        void *pid = NULL;
        CHECK_EQ(weft_await(t[i], &pid), 0);
        seen_pids[i] = (pid_t)(intptr_t)pid;
    }
    int zygote = 0;
    CHECK_EQ(call_int(parent_pid, NULL, 0, &zygote), 0);
    seen_pids[3] = zygote;
    return NULL;
}

static int no_process_scenario(void)
{
    CHECK_EQ(with_pool(3, zombie_main), 0);
    for (int i = 0; i < 4; i++)
        CHECK(seen_pids[i] > 0 && process_gone(seen_pids[i]), "process %d is gone", (int)seen_pids[i]);
    return failures;
}

Test(procpool, free_leaves_no_process_behind)
{
    run_scenario(no_process_scenario);
}

/* ---- what workers inherit ------------------------------------------------- */

static weft_procpool *second;

static void *inherit_main(void *arg)
{
    (void)arg;
    int fds = 0;
    CHECK_EQ(call_int(count_fds, NULL, 0, &fds), 0);
    CHECK_EQ(fds, 4);
    int value = -1;
    CHECK_EQ(call_int(deep_stack, NULL, 0, &value), 0);
    return NULL;
}

/* Created from a task, on its 256 KiB stack: the workers must still get a full one. */
static void *create_second_main(void *arg)
{
    (void)arg;
    second = weft_procpool_new(1);
    CHECK(second != NULL, "weft_procpool_new failed in a task: %s", weft_errmsg());
    return NULL;
}

static int inherit_scenario(void)
{
    /* Two pools: the second one's processes must not hold the first one's
     * sockets, or freeing the first would wait forever for its workers. */
    pool = weft_procpool_new(1);
    if (!pool) {
        fprintf(stderr, "weft_procpool_new failed: %s\n", weft_errmsg());
        return 1;
    }
    CHECK_EQ(weft_run(create_second_main, NULL, NULL), 0);
    if (!second)
        return failures;
    CHECK_EQ(weft_run(inherit_main, NULL, NULL), 0);
    weft_procpool_free(pool);
    pool = second;
    CHECK_EQ(weft_run(inherit_main, NULL, NULL), 0);
    weft_procpool_free(second);
    CHECK(no_children_left(), "free left a child process");
    return failures;
}

Test(procpool, workers_hold_only_their_socket_and_have_a_full_stack)
{
    run_scenario(inherit_scenario);
}

/* ---- refusals --------------------------------------------------------------- */

static int release_pipe[2];

static void *blocked_thread(void *arg)
{
    (void)arg;
    char c;
    ssize_t n = read(release_pipe[0], &c, 1);
    (void)n;
    return NULL;
}

static int threads_scenario(void)
{
    CHECK_EQ(pipe(release_pipe), 0);
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, blocked_thread, NULL), 0);
    weft_procpool *p = weft_procpool_new(1);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", weft_errmsg());
    CHECK_EQ(write(release_pipe[1], "x", 1), 1);
    pthread_join(thread, NULL);
    CHECK(p == NULL, "creation was refused");
    CHECK(strstr(msg, "has 2 threads") && strstr(msg, "start of the program"), "message: %s", msg);
    CHECK(no_children_left(), "nothing was forked");
    if (p)
        weft_procpool_free(p);
    return failures;
}

Test(procpool, creation_is_refused_while_other_threads_exist)
{
    run_scenario(threads_scenario);
}

static void *misuse_main(void *arg)
{
    (void)arg;
    void *out = NULL;
    size_t out_len = 0;
    CHECK_EQ(weft_procpool_run(pool, NULL, NULL, 0, &out, &out_len), -EINVAL);
    CHECK(strstr(weft_errmsg(), "fn is NULL"), "message: %s", weft_errmsg());
    CHECK_EQ(weft_procpool_run(pool, add, NULL, 8, &out, &out_len), -EINVAL);
    CHECK_EQ(weft_procpool_run(NULL, add, NULL, 0, &out, &out_len), -EINVAL);
    return NULL;
}

static int misuse_scenario(void)
{
    CHECK(weft_procpool_new(5000) == NULL, "5000 workers are refused");
    CHECK(strstr(weft_errmsg(), "at most 1024"), "message: %s", weft_errmsg());
    pool = weft_procpool_new(1);
    if (!pool) {
        fprintf(stderr, "weft_procpool_new failed: %s\n", weft_errmsg());
        return 1;
    }
    void *out = NULL;
    size_t out_len = 0;
    CHECK_EQ(weft_procpool_run(pool, add, NULL, 0, &out, &out_len), WEFT_ENOTINLOOP);
    CHECK_EQ(weft_run(misuse_main, NULL, NULL), 0);
    weft_procpool_free(pool);
    weft_procpool_free(NULL);
    return failures;
}

Test(procpool, misuse_is_refused_with_a_message)
{
    run_scenario(misuse_scenario);
}
