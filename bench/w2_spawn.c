/*
 * w2_spawn.c — W2 of peers/README.md: task creation and completion throughput.
 * Spawns N tasks, task i returning i; none runs before all are spawned (a spawned task
 * waits until its spawner suspends), then collects all N results, sums them and checks
 * sum == N(N-1)/2. The clock runs from before the first spawn until the sum is checked.
 * usage: w2_spawn [N]   (default 1000000)
 * prints: spawn weft n=N wall_s=.. tasks_per_s=.. peak_rss_kb=..
 *
 * Collecting: weft_await on each handle in order, the faster of the two ways measured.
 * Build with -DW2_GATHER for one weft_gather over the whole array (asyncio's
 * `await gather(*tasks)`, what the Python peers do). Measured 2026-11-24 on the 2-core VM,
 * N = 1M, 9 interleaved runs each on CPU 1: await-in-order wall median 0.096 s (min 0.086),
 * gather median 0.121 s (min 0.106); weft_gather's own code was 11% of the gather build's
 * profile. Summing while awaiting also spares gather's 8 MB results array (peak RSS
 * 109 MB against 117 MB).
 */
#include "bench_common.h"

#include <weft.h>

static long task_count;

static void *return_index(void *arg) {
    return arg;
}

#ifdef W2_GATHER
/* The results array is made inside the clock, as the Python peers' gather makes its list. */
static int collect_sum(weft_task **tasks, size_t n, uint64_t *sum) {
    void **results = malloc(n * sizeof *results);
    if (results == NULL)
        return -ENOMEM;
    int err = weft_gather(tasks, n, results, NULL, 0);
    for (size_t i = 0; err == 0 && i < n; i++)
        *sum += (uint64_t)(uintptr_t)results[i];
    free(results);
    return err;
}
#else
/* Awaits each handle in turn and adds its result at once, so no results array: the first
 * await suspends main until task 0 is done (by then every task has run, since the ready
 * queue is FIFO), the rest return at once. */
static int collect_sum(weft_task **tasks, size_t n, uint64_t *sum) {
    for (size_t i = 0; i < n; i++) {
        void *result = NULL;
        int err = weft_await(tasks[i], &result);
        if (err != 0) {
            for (size_t j = i + 1; j < n; j++)
                weft_detach(tasks[j]);
            return err;
        }
        *sum += (uint64_t)(uintptr_t)result;
    }
    return 0;
}
#endif

static void *bench_main(void *arg) {
    const char *prog = arg;
    size_t n = (size_t)task_count;
    weft_task **tasks = malloc(n * sizeof *tasks);
    if (tasks == NULL)
        bench_die(prog, "out of memory for %zu task handles", n);

    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        tasks[i] = weft_spawn(return_index, (void *)(uintptr_t)i);
        if (tasks[i] == NULL)
            bench_die(prog, "weft_spawn failed at task %zu: %s", i, weft_errmsg());
    }
    uint64_t sum = 0;
    int err = collect_sum(tasks, n, &sum);
    if (err != 0)
        bench_die(prog, "collecting the tasks failed: %s (%s)", weft_errname(err), weft_errmsg());
    uint64_t expected = (uint64_t)n * (n - 1) / 2;
    if (sum != expected)
        bench_die(prog, "sum of results %llu, expected %llu", (unsigned long long)sum,
                  (unsigned long long)expected);
    double wall = bench_now() - t0;

    printf("spawn weft n=%zu wall_s=%.6g tasks_per_s=%.0f peak_rss_kb=%ld\n", n, wall,
           (double)n / wall, bench_peak_rss_kb());
    free(tasks);
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    task_count = bench_arg_n(argc, argv, 1000000, 1000000000L);
    int err = weft_run(bench_main, argv[0], NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    return 0;
}
