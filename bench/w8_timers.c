/*
 * w8_timers.c — W8 of peers/README.md: a million one-shot timers.
 * Schedules N callbacks with weft_call_later(delay_ms[i] / 1000 s) (the shared sequence);
 * each only counts. The clock runs from before the first is scheduled until the last fired.
 * usage: w8_timers [N]   (default 1000000)
 * prints: timers weft n=N wall_s=.. sched_s=.. max_delay_s=.. overhead_s=.. peak_rss_kb=..
 *
 * Waiting for the last timer. weft_run returns only when main returns, so main must wake up
 * when the last callback has run, not later: polling the count every millisecond would add
 * up to a millisecond (and a thousand wake-ups a second) to the figure. weft.h has no Event
 * or future yet; what a callback can do to a task is cancel it, and cancellation wakes a
 * sleeping task at once. So main sleeps "forever", the last callback cancels main, and main
 * takes the cancellation back with weft_uncancel() (asyncio: catching CancelledError), the
 * analogue of the Python peers' last callback resolving a future.
 */
#include "bench_common.h"

#include <weft.h>

static long timer_count;
static long fired;
static weft_task *main_task;

static void count_timer(void *arg) {
    (void)arg;
    if (++fired == timer_count)
        weft_cancel(main_task, NULL);
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    long n = timer_count;
    uint32_t max_ms = 0;
    uint32_t *delays = bench_delays_ms(n, &max_ms);
    if (delays == NULL)
        bench_die(prog, "out of memory for %ld delays", n);
    main_task = weft_current();

    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (!weft_call_ok(weft_call_later(delays[i] / 1000.0, count_timer, NULL)))
            bench_die(prog, "weft_call_later failed at timer %ld: %s", i, weft_errmsg());
    }
    double sched = bench_now() - t0;
    while (fired < n) {
        int err = weft_sleep(3600.0);
        if (err == -ECANCELED)
            weft_uncancel();
        else if (err != 0)
            bench_die(prog, "main's weft_sleep failed: %s (%s)", weft_errname(err), weft_errmsg());
    }
    double wall = bench_now() - t0;

    if (fired != n)
        bench_die(prog, "%ld of %ld timers fired", fired, n);
    double max_delay = max_ms / 1000.0;
    printf("timers weft n=%ld wall_s=%.6g sched_s=%.6g max_delay_s=%.6g overhead_s=%.6g "
           "peak_rss_kb=%ld\n",
           n, wall, sched, max_delay, wall - max_delay, bench_peak_rss_kb());
    free(delays);
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    timer_count = bench_arg_n(argc, argv, 1000000, 1000000000L);
    int err = weft_run(bench_main, argv[0], NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    return 0;
}
