/*
 * w9_spawn.c — W9: processes started and reaped per second. CONC tasks each start
 * /bin/true (stdin, stdout and stderr on /dev/null), wait for it and free it, until
 * N have run; every exit status must be 0. The clock runs from before the first
 * start until the last child is reaped. bench/spawn_compare.sh runs it beside
 * Python asyncio (bench/spawn_asyncio.py) and Go's os/exec (bench/go_spawn).
 *
 * usage: w9_spawn [N [CONC [PARENT_MB]]]   (defaults 2000 8 0)
 * PARENT_MB > 0 first allocates and touches that many MiB, to show that starting a
 * child does not copy the parent (posix_spawn is clone(CLONE_VM | CLONE_VFORK)).
 * prints: procs weft n=N conc=CONC parent_mb=MB wall_s=.. procs_per_s=.. peak_rss_kb=..
 */
#include "bench_common.h"

#include <string.h>
#include <weft.h>

static long proc_count, conc, parent_mb;
static long started, failed_status;

static void *starter(void *arg) {
    const char *prog = arg;
    static const char *const argv[] = {"/bin/true", NULL};
    weft_process_options o = {.in = WEFT_STDIO_DEVNULL, .out = WEFT_STDIO_DEVNULL, .err = WEFT_STDIO_DEVNULL};
    while (started < proc_count) {
        started++;
        weft_process *p = weft_create_subprocess_exec(argv, &o);
        if (!p)
            bench_die(prog, "weft_create_subprocess_exec: %s", weft_errmsg());
        int rc = -1;
        int err = weft_process_wait(p, &rc);
        if (err != 0)
            bench_die(prog, "weft_process_wait: %s", weft_errmsg());
        if (rc != 0)
            failed_status++;
        weft_process_free(p);
    }
    return NULL;
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    weft_task **tasks = malloc((size_t)conc * sizeof *tasks);
    if (!tasks)
        bench_die(prog, "out of memory");
    double t0 = bench_now();
    for (long i = 0; i < conc; i++)
        if (!(tasks[i] = weft_spawn(starter, arg)))
            bench_die(prog, "weft_spawn: %s", weft_errmsg());
    int err = weft_gather(tasks, (size_t)conc, NULL, NULL, 0);
    double wall = bench_now() - t0;
    free(tasks);
    if (err != 0)
        bench_die(prog, "gather: %s", weft_errmsg());
    if (failed_status)
        bench_die(prog, "%ld children exited with a status other than 0", failed_status);
    printf("procs weft n=%ld conc=%ld parent_mb=%ld wall_s=%.6g procs_per_s=%.1f peak_rss_kb=%ld\n", proc_count,
           conc, parent_mb, wall, (double)proc_count / wall, bench_peak_rss_kb());
    return NULL;
}

/* argv[i] as a whole number from min to max, or `fallback` when absent. */
static long arg_at(int argc, char **argv, int i, long fallback, long min, long max) {
    if (argc <= i)
        return fallback;
    char *end = NULL;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "%s: argument %d must be a whole number from %ld to %ld, got '%s'\n"
                        "usage: %s [N [CONC [PARENT_MB]]]   (defaults 2000 8 0)\n",
                argv[0], i, min, max, argv[i], argv[0]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    if (argc > 4) {
        fprintf(stderr, "%s: too many arguments\nusage: %s [N [CONC [PARENT_MB]]]\n", argv[0], argv[0]);
        return 2;
    }
    proc_count = arg_at(argc, argv, 1, 2000, 1, 100000000L);
    conc = arg_at(argc, argv, 2, 8, 1, 10000);
    parent_mb = arg_at(argc, argv, 3, 0, 0, 1 << 20);
    char *ballast = NULL;
    if (parent_mb > 0) {
        size_t bytes = (size_t)parent_mb << 20;
        if (!(ballast = malloc(bytes)))
            bench_die(argv[0], "cannot allocate %ld MiB", parent_mb);
        memset(ballast, 1, bytes);
    }
    int err = weft_run(bench_main, argv[0], NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    free(ballast);
    return 0;
}
