/*
 * w3_sleepers.c — W3 of peers/README.md: many concurrent sleeping tasks.
 * Spawns N tasks, task i sleeping delay_ms[i] / 1000 s (the shared sequence), then gathers
 * them all. The clock runs from before the first spawn until all N have finished.
 * usage: w3_sleepers [N]   (default 100000; run.sh uses 1, 100000 and 1000000)
 * prints: sleepers weft n=N wall_s=.. spawn_s=.. max_sleep_s=.. overhead_s=.. max_alive=..
 *         peak_rss_kb=..
 *
 * The start gate. The peers make each task wait on one shared gate (an asyncio.Event, a
 * closed channel) that the spawner opens after spawning all N, so that all N tasks are alive
 * at once and peak RSS measures N live tasks. weft has no Event yet, and needs none here:
 * a spawned weft task does not run until its spawner suspends, so main spawning all N and
 * then suspending in weft_gather is the gate opening. The N tasks then start in FIFO order,
 * each taking a stack and parking in weft_sleep. max_alive reports the most tasks that were
 * started and not yet finished at any moment; it equals N when no task finished before the
 * last one started, i.e. when the property the gate gives held in this run too.
 *
 * Two builds of this file. The default spawns ordinary tasks (weft_spawn's defaults, as
 * every peer runs with its defaults): each sleeping task keeps its own stack, of which it
 * touched at least a page. Built with -DW3_COMPACT (CMake puts that one in
 * bench/compact/w3_sleepers) it spawns compact tasks, weft's documented option for many
 * mostly idle tasks, and prints peer name weft-compact so both can sit in one table.
 */
#include "bench_common.h"

#include <weft.h>

#ifdef W3_COMPACT
#define PEER_NAME "weft-compact"
static const weft_spawn_options spawn_options = {.compact = 1};
#else
#define PEER_NAME "weft"
static const weft_spawn_options spawn_options = {0};
#endif

static long sleeper_count;
static long started, finished, max_alive;

static void *sleeper(void *arg) {
    uint32_t delay_ms = (uint32_t)(uintptr_t)arg;
    started++;
    if (started - finished > max_alive)
        max_alive = started - finished;
    int err = weft_sleep(delay_ms / 1000.0);
    finished++;
    if (err != 0)
        return weft_fail(err, "weft_sleep(%u ms) failed: %s", (unsigned)delay_ms, weft_errname(err));
    return NULL;
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    size_t n = (size_t)sleeper_count;
    uint32_t max_ms = 0;
    uint32_t *delays = bench_delays_ms((long)n, &max_ms);
    weft_task **tasks = malloc(n * sizeof *tasks);
    if (delays == NULL || tasks == NULL)
        bench_die(prog, "out of memory for %zu delays and task handles", n);

    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        tasks[i] = weft_spawn_opts(sleeper, (void *)(uintptr_t)delays[i], &spawn_options);
        if (tasks[i] == NULL)
            bench_die(prog, "weft_spawn failed at task %zu: %s", i, weft_errmsg());
    }
    double spawn = bench_now() - t0;
    int err = weft_gather(tasks, n, NULL, NULL, 0);
    double wall = bench_now() - t0;

    if (err != 0)
        bench_die(prog, "a sleeper failed: %s (%s)", weft_errname(err), weft_errmsg());
    if (finished != (long)n)
        bench_die(prog, "%ld of %zu sleepers finished", finished, n);
    double max_sleep = max_ms / 1000.0;
    printf("sleepers " PEER_NAME " n=%zu wall_s=%.6g spawn_s=%.6g max_sleep_s=%.6g overhead_s=%.6g "
           "max_alive=%ld peak_rss_kb=%ld\n",
           n, wall, spawn, max_sleep, wall - max_sleep, max_alive, bench_peak_rss_kb());
    free(tasks);
    free(delays);
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    sleeper_count = bench_arg_n(argc, argv, 100000, 100000000L);
    int err = weft_run(bench_main, argv[0], NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    return 0;
}
