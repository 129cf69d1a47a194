/*
 * w6_to_thread.c — W6 of peers/README.md: offloading blocking calls to a thread pool.
 * N calls of f(i) = i + 1 through weft_to_thread on the default pool sized to THREADS
 * threads, INFLIGHT calls outstanding at any time: INFLIGHT tasks, task k awaits the
 * calls for i = k, k + INFLIGHT, k + 2*INFLIGHT, ... < N one after the other. The
 * results are summed and checked (sum == N(N-1)/2 + N). The pool's threads are
 * started by warm-up calls before the clock starts; the clock runs from the first
 * submission until the last result.
 * usage: w6_to_thread [N [INFLIGHT [THREADS]]]   (defaults 200000 64 4, as run.sh passes)
 * prints: to_thread weft n=N inflight=.. threads=.. wall_s=.. calls_per_s=.. peak_rss_kb=..
 */
#include "bench_common.h"

#include <string.h>
#include <weft.h>

static long call_count, inflight, threads;

static void *plus_one(void *arg) {
    return (void *)((uintptr_t)arg + 1);
}

static void *pause_a_millisecond(void *arg) {
    (void)arg;
    nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    return NULL;
}

/* Task k: the calls for i = k, k + inflight, ... one after the other; returns their sum. */
static void *caller(void *arg) {
    uint64_t sum = 0;
    for (long i = (long)(uintptr_t)arg; i < call_count; i += inflight) {
        void *result = NULL;
        int err = weft_to_thread(plus_one, (void *)(uintptr_t)i, &result);
        if (err != 0)
            return weft_fail(err, "%s", weft_errmsg());
        sum += (uint64_t)(uintptr_t)result;
    }
    return (void *)(uintptr_t)sum;
}

static void *warm_up(void *arg) {
    (void)arg;
    int err = weft_to_thread(pause_a_millisecond, NULL, NULL);
    return err ? weft_fail(err, "%s", weft_errmsg()) : NULL;
}

/* Spawns n tasks of fn (task k gets k) and sums their results; dies on any failure. */
static uint64_t run_tasks(const char *prog, weft_fn fn, long n) {
    weft_task **tasks = malloc((size_t)n * sizeof *tasks);
    if (tasks == NULL)
        bench_die(prog, "out of memory for %ld task handles", n);
    for (long k = 0; k < n; k++) {
        tasks[k] = weft_spawn(fn, (void *)(uintptr_t)k);
        if (tasks[k] == NULL)
            bench_die(prog, "weft_spawn failed: %s", weft_errmsg());
    }
    uint64_t sum = 0;
    for (long k = 0; k < n; k++) {
        void *result = NULL;
        int err = weft_await(tasks[k], &result);
        if (err != 0)
            bench_die(prog, "a task failed: %s (%s)", weft_errname(err), weft_errmsg());
        sum += (uint64_t)(uintptr_t)result;
    }
    free(tasks);
    return sum;
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    /* Every thread of the pool busy at once starts them all. */
    run_tasks(prog, warm_up, 2 * threads);

    double t0 = bench_now();
    uint64_t sum = run_tasks(prog, caller, inflight < call_count ? inflight : call_count);
    double wall = bench_now() - t0;

    uint64_t n = (uint64_t)call_count;
    uint64_t expected = n * (n - 1) / 2 + n;
    if (sum != expected)
        bench_die(prog, "sum of results %llu, expected %llu", (unsigned long long)sum,
                  (unsigned long long)expected);
    printf("to_thread weft n=%ld inflight=%ld threads=%ld wall_s=%.6g calls_per_s=%.1f peak_rss_kb=%ld\n",
           call_count, inflight, threads, wall, (double)call_count / wall, bench_peak_rss_kb());
    return NULL;
}

/* argv[i] as a whole number from 1 to max, or `fallback` when absent. */
static long arg_at(int argc, char **argv, int i, long fallback, long max) {
    if (argc <= i)
        return fallback;
    char *end = NULL;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || errno == ERANGE || v < 1 || v > max) {
        fprintf(stderr, "%s: argument %d must be a whole number from 1 to %ld, got '%s'\n"
                        "usage: %s [N [INFLIGHT [THREADS]]]   (defaults 200000 64 4)\n",
                argv[0], i, max, argv[i], argv[0]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    if (argc > 4) {
        fprintf(stderr, "%s: too many arguments\nusage: %s [N [INFLIGHT [THREADS]]]\n", argv[0], argv[0]);
        return 2;
    }
    call_count = arg_at(argc, argv, 1, 200000, 1000000000L);
    inflight = arg_at(argc, argv, 2, 64, 1000000L);
    threads = arg_at(argc, argv, 3, 4, 1024);
    if (weft_set_default_pool_size((size_t)threads) != 0)
        bench_die(argv[0], "weft_set_default_pool_size: %s", weft_errmsg());
    int err = weft_run(bench_main, argv[0], NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    return 0;
}
