/*
 * w7_queue.c — W7 of peers/README.md: N integers 0..N-1 through a bounded weft_queue of
 * capacity CAP between two tasks. The producer puts them in order (weft_queue_put waits
 * while the queue is full), the consumer gets N items and sums them; the sum is checked
 * against N(N-1)/2. The clock runs from before the two tasks start (they are spawned but
 * have not run) until the consumer's sum is back in main.
 * usage: w7_queue [N [CAP]]   (default 1000000 100)
 * prints: queue weft n=N maxsize=CAP wall_s=.. items_per_s=.. peak_rss_kb=..
 */
#include "bench_common.h"

#include <weft.h>

typedef struct run {
    weft_queue *queue;
    long n;
} run;

/* Returns how many items it put, so main can check none was refused. */
static void *producer(void *arg) {
    const run *r = arg;
    long put = 0;
    for (long i = 0; i < r->n; i++) {
        if (weft_queue_put(r->queue, (void *)(intptr_t)i) != 0)
            break;
        put++;
    }
    return (void *)(intptr_t)put;
}

/* Returns the sum of the N items, or fails with the get's error. */
static void *consumer(void *arg) {
    const run *r = arg;
    uint64_t sum = 0;
    for (long i = 0; i < r->n; i++) {
        void *item;
        int err = weft_queue_get(r->queue, &item);
        if (err != 0)
            return weft_fail(err, "get %ld of %ld failed: %s", i, r->n, weft_errmsg());
        sum += (uint64_t)(intptr_t)item;
    }
    return (void *)(uintptr_t)sum;
}

static long parse_arg(const char *prog, const char *name, const char *text, long max) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < 1 || v > max) {
        fprintf(stderr, "%s: %s must be a whole number from 1 to %ld, got '%s'\nusage: %s [N [CAP]]   "
                        "(default 1000000 100)\n", prog, name, max, text, prog);
        exit(2);
    }
    return v;
}

static run the_run;

static void *bench_main(void *arg) {
    const char *prog = arg;
    run *r = &the_run;
    weft_task *prod = weft_spawn(producer, r);
    weft_task *cons = weft_spawn(consumer, r);
    if (prod == NULL || cons == NULL)
        bench_die(prog, "weft_spawn failed: %s", weft_errmsg());

    double t0 = bench_now();
    void *sum = NULL, *put = NULL;
    int err_cons = weft_await(cons, &sum);
    double wall = bench_now() - t0;
    int err_prod = weft_await(prod, &put);

    if (err_cons != 0 || err_prod != 0)
        bench_die(prog, "the %s failed: %s (%s)", err_cons ? "consumer" : "producer",
                  weft_errname(err_cons ? err_cons : err_prod), weft_errmsg());
    if ((intptr_t)put != r->n)
        bench_die(prog, "the producer put %ld items, expected %ld", (long)(intptr_t)put, r->n);
    uint64_t expected = (uint64_t)r->n * (uint64_t)(r->n - 1) / 2;
    if ((uint64_t)(uintptr_t)sum != expected)
        bench_die(prog, "bad sum %llu, expected %llu", (unsigned long long)(uintptr_t)sum,
                  (unsigned long long)expected);

    printf("queue weft n=%ld maxsize=%zu wall_s=%.6g items_per_s=%.1f peak_rss_kb=%ld\n", r->n,
           weft_queue_maxsize(r->queue), wall, (double)r->n / wall, bench_peak_rss_kb());
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    const char *prog = argv[0];
    if (argc > 3) {
        fprintf(stderr, "%s: too many arguments\nusage: %s [N [CAP]]   (default 1000000 100)\n", prog, prog);
        exit(2);
    }
    the_run.n = argc > 1 ? parse_arg(prog, "N", argv[1], 1000000000L) : 1000000;
    long cap = argc > 2 ? parse_arg(prog, "CAP", argv[2], 1L << 30) : 100;
    the_run.queue = weft_queue_new((size_t)cap);
    if (the_run.queue == NULL)
        bench_die(prog, "weft_queue_new: %s", weft_errmsg());
    int err = weft_run(bench_main, (void *)prog, NULL);
    if (err != 0)
        bench_die(prog, "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
    weft_queue_free(the_run.queue);
    return 0;
}
