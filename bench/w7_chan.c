/*
 * w7_chan.c — W7 of peers/README.md on a weft channel (Go's buffered chan, as go_w7_queue
 * uses): N integers 0..N-1 through a channel of capacity CAP, from a producer task to a
 * consumer task that sums them; the sum is checked. The clock runs from before the two
 * tasks start (both are spawned, neither has run) until the consumer has the sum.
 * usage: w7_chan [N [CAP]]   (defaults 1000000 100, the arguments run.sh gives w7_queue)
 * prints: queue weft-chan n=N maxsize=CAP wall_s=.. items_per_s=.. peak_rss_kb=..
 */
#include "bench_common.h"

#include <weft.h>

typedef struct workload {
    const char *prog;
    long n;
    weft_chan *chan;
    double consumer_done; /* when the consumer had the sum */
    double wall;
} workload;

static void *producer(void *arg) {
    workload *w = arg;
    for (long i = 0; i < w->n; i++) {
        int rc = weft_chan_send(w->chan, &i);
        if (rc != 0)
            return weft_fail(rc, "send %ld: %s", i, weft_errmsg());
    }
    return NULL;
}

static void *consumer(void *arg) {
    workload *w = arg;
    long sum = 0;
    for (long i = 0; i < w->n; i++) {
        long v;
        int rc = weft_chan_recv(w->chan, &v);
        if (rc != 0)
            return weft_fail(rc, "receive %ld: %s", i, weft_errmsg());
        sum += v;
    }
    w->consumer_done = bench_now();
    return (void *)(intptr_t)sum;
}

static void *bench_main(void *arg) {
    workload *w = arg;
    double t0 = bench_now();
    weft_task *prod = weft_spawn(producer, w);
    weft_task *cons = weft_spawn(consumer, w);
    if (prod == NULL || cons == NULL)
        bench_die(w->prog, "weft_spawn failed: %s", weft_errmsg());
    void *sum = NULL;
    int err_p = weft_await(prod, NULL);
    if (err_p != 0)
        bench_die(w->prog, "the producer failed: %s (%s)", weft_errname(err_p), weft_errmsg());
    int err_c = weft_await(cons, &sum);
    if (err_c != 0)
        bench_die(w->prog, "the consumer failed: %s (%s)", weft_errname(err_c), weft_errmsg());
    w->wall = w->consumer_done - t0;
    long expected = w->n * (w->n - 1) / 2;
    if ((long)(intptr_t)sum != expected)
        bench_die(w->prog, "bad sum %ld, expected %ld", (long)(intptr_t)sum, expected);
    return NULL;
}

/* argv[i] as a whole number from 1 to max, or exit with the usage. */
static long arg_number(char **argv, int i, long max) {
    char *end = NULL;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || errno == ERANGE || v < 1 || v > max) {
        fprintf(stderr, "%s: argument %d must be a whole number from 1 to %ld, got '%s'\n"
                        "usage: %s [N [CAP]]   (defaults 1000000 100)\n",
                argv[0], i, max, argv[i], argv[0]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    if (argc > 3) {
        fprintf(stderr, "%s: too many arguments\nusage: %s [N [CAP]]   (defaults 1000000 100)\n", argv[0],
                argv[0]);
        return 2;
    }
    /* The sum of 0..N-1 must fit in a long. */
    long n = argc > 1 ? arg_number(argv, 1, 3000000000L) : 1000000;
    long cap = argc > 2 ? arg_number(argv, 2, 1L << 30) : 100;
    workload w = {.prog = argv[0], .n = n};
    w.chan = weft_chan_new(sizeof(long), (size_t)cap);
    if (w.chan == NULL)
        bench_die(argv[0], "weft_chan_new: %s", weft_errmsg());
    int err = weft_run(bench_main, &w, NULL);
    if (err != 0)
        bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    weft_chan_free(w.chan);
    double wall = w.wall;
    printf("queue weft-chan n=%ld maxsize=%ld wall_s=%.6g items_per_s=%.1f peak_rss_kb=%ld\n", n, cap, wall,
           (double)n / wall, bench_peak_rss_kb());
    return 0;
}
