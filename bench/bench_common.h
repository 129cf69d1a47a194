/*
 * bench_common.h — what every weft benchmark program shares with the peers of
 * ../shared/peers: the monotonic clock, peak RSS, the shared delay sequence, the
 * argument parsing (N as the first argument) and the one-line "failed" exit.
 * Included first by every program here, so the feature macro below precedes any system header.
 */
#ifndef WEFT_BENCH_COMMON_H
#define WEFT_BENCH_COMMON_H

/* clock_gettime and getrusage are POSIX, hidden by -std=c11 without this. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* Seconds on the monotonic clock: the peers' clock_gettime(CLOCK_MONOTONIC). */
static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* getrusage's ru_maxrss (KiB on Linux), read at the end as every peer does. */
static inline long bench_peak_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

/*
 * Give stdout its buffer before the benchmark runs. Left to itself, glibc mallocs that
 * buffer at the first printf, i.e. after a million timer or task records have been freed,
 * and that one malloc then consolidates all of them: ~0.2 s outside the clock but inside
 * the whole-process time run.sh also records.
 */
static inline void bench_stdout_setup(void) {
    static char buffer[4096];
    setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
}

/* Print to stderr and exit non-zero: a benchmark that did not do its work prints no line,
 * so run.sh records it as FAILED rather than a figure. */
static inline void bench_die(const char *prog, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/*
 * The shared delay sequence of peers/README.md ("Random delays"), in integer ms:
 * x <- 1664525*x + 1013904223 (mod 2^32) from x0 = 12345, delay_ms = (x*1000) >> 32.
 * Returns a malloc'd array of n values (0..999), their maximum in *max_ms.
 */
static inline uint32_t *bench_delays_ms(long n, uint32_t *max_ms) {
    uint32_t *delays = malloc((size_t)n * sizeof *delays);
    if (delays == NULL)
        return NULL;
    uint32_t x = 12345u, max = 0;
    for (long i = 0; i < n; i++) {
        x = 1664525u * x + 1013904223u;
        delays[i] = (uint32_t)(((uint64_t)x * 1000u) >> 32);
        if (delays[i] > max)
            max = delays[i];
    }
    *max_ms = max;
    return delays;
}

/*
 * N from argv[1], or `fallback` (the peers' default) when absent. Anything but a whole
 * number from 1 to `max` is an error: a typo must not silently benchmark N = 0.
 */
static inline long bench_arg_n(int argc, char **argv, long fallback, long max) {
    const char *prog = argv[0];
    if (argc > 2) {
        fprintf(stderr, "%s: too many arguments\nusage: %s [N]   (default N = %ld)\n", prog, prog,
                fallback);
        exit(2);
    }
    if (argc < 2)
        return fallback;
    const char *text = argv[1];
    char *end = NULL;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || n < 1 || n > max) {
        fprintf(stderr, "%s: N must be a whole number from 1 to %ld, got '%s'\nusage: %s [N]   (default N = %ld)\n",
                prog, max, text, prog, fallback);
        exit(2);
    }
    return n;
}

#endif /* WEFT_BENCH_COMMON_H */
