/*
 * seed.h — what every seed port shares, so that each examples/seeds/<name>.c reads like
 * the Python program it ports: the WEFT_TIME_SCALE harness (both kinds of sleep scaled),
 * Python's clocks, Python's spelling of floats, strings, lists and exceptions, and
 * Python's `random` (the same Mersenne Twister, so seeded runs draw the same numbers).
 *
 * Header-only (static inline) because each port is a single file built on its own.
 * Include it first: it asks for the POSIX clocks and nanosleep.
 */
#ifndef SEED_H
#define SEED_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <weft.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* The harness: WEFT_TIME_SCALE multiplies every wait                        */
/* ------------------------------------------------------------------------ */

/* One slot per program; a function keeps the header free of unused statics. */
static inline double *seed__scale_slot(void)
{
    static double scale = -1.0;
    return &scale;
}

/*
 * Reads WEFT_TIME_SCALE as the Python harness does (a float, default 1.0), but refuses
 * what would make the lesson meaningless (negative, NaN, infinite) instead of failing
 * halfway through the first sleep as Python would.
 */
static inline double seed_time_scale(void)
{
    double *slot = seed__scale_slot();
    if (*slot >= 0.0)
        return *slot;
    const char *text = getenv("WEFT_TIME_SCALE");
    if (text == NULL) {
        *slot = 1.0;
        return *slot;
    }
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    while (end != NULL && *end != '\0' && isspace((unsigned char)*end))
        end++;
    if (end == text || end == NULL || *end != '\0' || errno == ERANGE || !isfinite(value) ||
        value < 0.0) {
        fprintf(stderr,
                "WEFT_TIME_SCALE='%s' is not a usable time scale: expected a finite number "
                ">= 0 such as 0.1 (every sleep is multiplied by it; unset means 1.0)\n",
                text);
        exit(2);
    }
    *slot = value;
    return *slot;
}

/*
 * Call first in main(): validates the scale before anything is printed, seeds random,
 * and makes stdout line-buffered so that a tour piped through `tee` or `make` still shows each
 * line at the moment it happens, which is the point of these examples.
 */
static inline void seed_random_seed(uint32_t n);

static inline void seed_init(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    (void)seed_time_scale();
    seed_random_seed(1); /* as the harness does, so runs repeat and match Python's draws */
}

/* `await asyncio.sleep(seconds)`: suspends this task only; others run meanwhile. */
static inline int seed_sleep(double seconds)
{
    return weft_sleep(seconds * seed_time_scale());
}

/*
 * `time.sleep(seconds)`: blocks the whole thread, loop included. The seeds do this on
 * purpose to stand for CPU-heavy work and to show what blocking the loop costs.
 */
static inline void seed_block(double seconds)
{
    double scaled = seconds * seed_time_scale();
    if (!(scaled > 0.0))
        return;
    struct timespec remaining;
    remaining.tv_sec = (time_t)scaled;
    remaining.tv_nsec = (long)((scaled - (double)remaining.tv_sec) * 1e9);
    if (remaining.tv_nsec >= 1000000000L)
        remaining.tv_nsec = 999999999L;
    while (nanosleep(&remaining, &remaining) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------ */
/* Passing exceptions on                                                     */
/* ------------------------------------------------------------------------ */

/*
 * An exception that is not caught propagates: end the current coroutine with the error
 * a weft call just returned, keeping its message. The message is copied first because
 * weft_fail may reuse the buffer weft_errmsg() points into.
 */
static inline void *seed_reraise(int code)
{
    char message[256];
    const char *received = weft_errmsg();
    snprintf(message, sizeof message, "%s", received[0] != '\0' ? received : weft_strerror(code));
    return weft_fail(code, "%s", message);
}

/* weft_spawn gave NULL: inside a running loop that means out of memory. */
static inline void *seed_spawn_failed(void)
{
    return seed_reraise(-ENOMEM);
}

/* The Python exception class a weft error code stands for in these ports. */
static inline const char *seed_exception_name(int code)
{
    switch (code) {
    case -EINVAL:
        return "ValueError";
    case -ECANCELED:
        return "CancelledError";
    case -ETIMEDOUT:
        return "TimeoutError";
    case -ENOMEM:
        return "MemoryError";
    default:
        return weft_errname(code);
    }
}

/* asyncio.run() ending in an exception: say so on stderr, exit status 1 as Python. */
static inline int seed_exit_status(const char *program, int run_result)
{
    if (run_result == 0)
        return 0;
    fprintf(stderr, "%s: main ended with %s (%s): %s\n", program,
            seed_exception_name(run_result), weft_errname(run_result), weft_errmsg());
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Clocks                                                                    */
/* ------------------------------------------------------------------------ */

/* time.time(): wall-clock seconds since the epoch. */
static inline double seed_wall_time(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* time.perf_counter(): a monotonic clock for measuring intervals. */
static inline double seed_perf_counter(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* datetime.datetime.now(): one instant, both printable and subtractable. */
static inline struct timespec seed_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now;
}

/* (finish - start).total_seconds() */
static inline double seed_seconds_between(struct timespec start, struct timespec finish)
{
    return (double)(finish.tv_sec - start.tv_sec) + (double)(finish.tv_nsec - start.tv_nsec) / 1e9;
}

/* strftime('%H:%M:%S') (also time.strftime('%X') in the C locale), local time. */
typedef struct seed_hms_text {
    char text[16];
} seed_hms_text;

static inline seed_hms_text seed_hms(struct timespec instant)
{
    seed_hms_text out;
    struct tm local;
    time_t seconds = instant.tv_sec;
    if (localtime_r(&seconds, &local) == NULL ||
        strftime(out.text, sizeof out.text, "%H:%M:%S", &local) == 0)
        snprintf(out.text, sizeof out.text, "??:??:??");
    return out;
}

/* ------------------------------------------------------------------------ */
/* Python's spelling of values                                               */
/* ------------------------------------------------------------------------ */

typedef struct seed_float_text {
    char text[48];
} seed_float_text;

/*
 * repr(x) / f'{x}' / print(x) of a float: the shortest digits that read back as the
 * same double, in fixed notation for exponents -4..15 (always with a '.0' or more)
 * and as d.ddde±XX otherwise — Python's rules, so elapsed times print alike.
 */
static inline seed_float_text seed_float_repr(double x)
{
    seed_float_text out;
    if (isnan(x)) {
        snprintf(out.text, sizeof out.text, "nan");
        return out;
    }
    if (isinf(x)) {
        snprintf(out.text, sizeof out.text, x < 0 ? "-inf" : "inf");
        return out;
    }
    char scientific[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision - 1, x);
        if (strtod(scientific, NULL) == x)
            break;
    }
    /* scientific is now [-]d[.ddd]e±XX with the shortest round-tripping digits. */
    const char *cursor = scientific;
    int negative = 0;
    if (*cursor == '-') {
        negative = 1;
        cursor++;
    }
    char digits[24];
    size_t ndigits = 0;
    for (; *cursor != 'e'; cursor++)
        if (*cursor != '.' && ndigits + 1 < sizeof digits)
            digits[ndigits++] = *cursor;
    digits[ndigits] = '\0';
    int exponent = atoi(cursor + 1);
    while (ndigits > 1 && digits[ndigits - 1] == '0')
        digits[--ndigits] = '\0';

    char body[40];
    size_t len = 0;
    if (exponent >= -4 && exponent < 16) {
        if (exponent < 0) {
            len += (size_t)snprintf(body + len, sizeof body - len, "0.");
            for (int zeros = -exponent - 1; zeros > 0; zeros--)
                body[len++] = '0';
            len += (size_t)snprintf(body + len, sizeof body - len, "%s", digits);
        } else {
            size_t integer_digits = (size_t)exponent + 1;
            for (size_t i = 0; i < integer_digits; i++)
                body[len++] = i < ndigits ? digits[i] : '0';
            body[len++] = '.';
            if (ndigits > integer_digits)
                len += (size_t)snprintf(body + len, sizeof body - len, "%s", digits + integer_digits);
            else
                body[len++] = '0';
            body[len] = '\0';
        }
    } else {
        body[len++] = digits[0];
        if (ndigits > 1)
            len += (size_t)snprintf(body + len, sizeof body - len, ".%s", digits + 1);
        snprintf(body + len, sizeof body - len, "e%c%02d", exponent < 0 ? '-' : '+',
                 exponent < 0 ? -exponent : exponent);
    }
    snprintf(out.text, sizeof out.text, "%s%s", negative ? "-" : "", body);
    return out;
}

/* repr(s) of a str: single quotes unless the text holds a ' and no ". */
static inline void seed_print_str_repr(const char *s)
{
    char quote = (strchr(s, '\'') != NULL && strchr(s, '"') == NULL) ? '"' : '\'';
    putchar(quote);
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '\\' || *c == (unsigned char)quote)
            printf("\\%c", *c);
        else if (*c == '\n')
            printf("\\n");
        else if (*c == '\t')
            printf("\\t");
        else if (*c == '\r')
            printf("\\r");
        else if (*c < 0x20 || *c == 0x7f)
            printf("\\x%02x", *c);
        else
            putchar(*c);
    }
    putchar(quote);
}

/* One element of a printed Python list: a str, None, or an exception object. */
typedef struct seed_value {
    enum { SEED_STR, SEED_NONE, SEED_EXCEPTION } kind;
    const char *text; /* the str, or the exception's message */
    int code;         /* the exception's weft error code */
} seed_value;

static inline seed_value seed_str(const char *text)
{
    seed_value v = {SEED_STR, text, 0};
    return v;
}

static inline seed_value seed_none(void)
{
    seed_value v = {SEED_NONE, NULL, 0};
    return v;
}

static inline seed_value seed_exception(int code, const char *message)
{
    seed_value v = {SEED_EXCEPTION, message, code};
    return v;
}

/* repr(value): 'text', None, or ValueError('message'). */
static inline void seed_print_value(seed_value v)
{
    switch (v.kind) {
    case SEED_STR:
        seed_print_str_repr(v.text);
        break;
    case SEED_NONE:
        fputs("None", stdout);
        break;
    case SEED_EXCEPTION:
        printf("%s(", seed_exception_name(v.code));
        seed_print_str_repr(v.text != NULL ? v.text : "");
        putchar(')');
        break;
    }
}

/* print(list): ['A1', 'B2'] followed by a newline. */
static inline void seed_print_list(const seed_value *values, size_t count)
{
    putchar('[');
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            fputs(", ", stdout);
        seed_print_value(values[i]);
    }
    puts("]");
}

/* ------------------------------------------------------------------------ */
/* Python's random: MT19937 seeded and drawn exactly as CPython does         */
/* ------------------------------------------------------------------------ */

enum { SEED_MT_N = 624, SEED_MT_M = 397 };

typedef struct seed_mt {
    uint32_t state[SEED_MT_N];
    int next;
} seed_mt;

static inline seed_mt *seed__mt(void)
{
    static seed_mt generator = {{0}, SEED_MT_N + 1};
    return &generator;
}

static inline void seed__mt_init(seed_mt *g, uint32_t s)
{
    g->state[0] = s;
    for (int i = 1; i < SEED_MT_N; i++)
        g->state[i] = 1812433253u * (g->state[i - 1] ^ (g->state[i - 1] >> 30)) + (uint32_t)i;
    g->next = SEED_MT_N;
}

/*
 * random.seed(n) for a non-negative integer below 2**32: CPython feeds the integer's
 * 32-bit words to init_by_array, so seed(1) here draws what seed(1) draws in Python.
 */
static inline void seed_random_seed(uint32_t n)
{
    seed_mt *g = seed__mt();
    seed__mt_init(g, 19650218u);
    const uint32_t key[1] = {n};
    const int key_length = 1;
    int i = 1, j = 0;
    for (int k = SEED_MT_N > key_length ? SEED_MT_N : key_length; k > 0; k--) {
        g->state[i] = (g->state[i] ^ ((g->state[i - 1] ^ (g->state[i - 1] >> 30)) * 1664525u)) +
                      key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= SEED_MT_N) {
            g->state[0] = g->state[SEED_MT_N - 1];
            i = 1;
        }
        if (j >= key_length)
            j = 0;
    }
    for (int k = SEED_MT_N - 1; k > 0; k--) {
        g->state[i] = (g->state[i] ^ ((g->state[i - 1] ^ (g->state[i - 1] >> 30)) * 1566083941u)) -
                      (uint32_t)i;
        i++;
        if (i >= SEED_MT_N) {
            g->state[0] = g->state[SEED_MT_N - 1];
            i = 1;
        }
    }
    g->state[0] = 0x80000000u;
    g->next = SEED_MT_N;
}

static inline uint32_t seed__mt_next(void)
{
    seed_mt *g = seed__mt();
    if (g->next > SEED_MT_N)
        seed_random_seed(1); /* the harness seeds with 1; so does an unseeded port */
    if (g->next >= SEED_MT_N) {
        static const uint32_t twist[2] = {0u, 0x9908b0dfu};
        for (int k = 0; k < SEED_MT_N; k++) {
            uint32_t y = (g->state[k] & 0x80000000u) | (g->state[(k + 1) % SEED_MT_N] & 0x7fffffffu);
            g->state[k] = g->state[(k + SEED_MT_M) % SEED_MT_N] ^ (y >> 1) ^ twist[y & 1u];
        }
        g->next = 0;
    }
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* random.random(): a double in [0, 1) built from 53 random bits. */
static inline double seed_random(void)
{
    uint32_t high = seed__mt_next() >> 5, low = seed__mt_next() >> 6;
    return ((double)high * 67108864.0 + (double)low) * (1.0 / 9007199254740992.0);
}

/* random.randrange(n) for 0 < n < 2**32: rejection sampling on bit_length(n) bits. */
static inline uint32_t seed_randrange(uint32_t n)
{
    int bits = 0;
    for (uint32_t v = n; v != 0; v >>= 1)
        bits++;
    uint32_t r;
    do
        r = seed__mt_next() >> (32 - bits);
    while (r >= n);
    return r;
}

/* ------------------------------------------------------------------------ */
/* A coroutine object                                                        */
/* ------------------------------------------------------------------------ */

/*
 * What `f(x)` makes in Python before anything awaits it: a function and its argument,
 * nothing run yet. Awaiting it is calling it.
 */
typedef struct seed_coroutine {
    weft_fn fn;
    void *arg;
} seed_coroutine;

static inline void *seed_await_coroutine(seed_coroutine coroutine)
{
    return coroutine.fn(coroutine.arg);
}

#endif /* SEED_H */
