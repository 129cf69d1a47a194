/*
 * w1_switch.c — W1 of peers/README.md: the cost of one task switch through weft's scheduler.
 * Two spawned tasks each call weft_yield() N times (asyncio's `await sleep(0)`), so they
 * alternate: 2N switches. The clock runs from after both are spawned (neither has run: a
 * spawned task waits until its spawner suspends) until both have finished.
 * usage: w1_switch [N]   (default 5000000)
 * prints: switch weft n=N switches=2N wall_s=.. ns_per_switch=.. peak_rss_kb=..
 */
#include "bench_common.h"

#include <weft.h>

static long switch_count;

/* Returns how many of its yields succeeded, so main can check all of them happened. */
static void *yielder(void *arg) {
    long n = *(const long *)arg;
    long done = 0;
    for (long i = 0; i < n; i++) {
        if (weft_yield() != 0)
            break;
        done++;
    }
    return (void *)(intptr_t)done;
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    long n = switch_count;
    weft_task *a = weft_spawn(yielder, &n);
    weft_task *b = weft_spawn(yielder, &n);
    if (a == NULL || b == NULL)
        bench_die(prog, "weft_spawn failed: %s", weft_errmsg());

    double t0 = bench_now();
    void *done_a = NULL, *done_b = NULL;
    int err_a = weft_await(a, &done_a);
    int err_b = weft_await(b, &done_b);
    double wall = bench_now() - t0;

    if (err_a != 0 || err_b != 0)
        bench_die(prog, "a yielding task failed: %s (%s)", weft_errname(err_a ? err_a : err_b),
                  weft_errmsg());
    if ((intptr_t)done_a != n || (intptr_t)done_b != n)
        bench_die(prog, "yields done: %ld and %ld, expected %ld each", (long)(intptr_t)done_a,
                  (long)(intptr_t)done_b, n);

    long switches = 2 * n;
    printf("switch weft n=%ld switches=%ld wall_s=%.6g ns_per_switch=%.4g peak_rss_kb=%ld\n", n,
           switches, wall, wall * 1e9 / (double)switches, bench_peak_rss_kb());
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    switch_count = bench_arg_n(argc, argv, 5000000, LONG_MAX / 2);
    int err = weft_run(bench_main, argv[0], NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    return 0;
}
