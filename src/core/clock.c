/*
 * clock.c — the loop's clock (real, or virtual for tests) and the thread's current
 * loop: the lowest things of the core, read by everything above.
 */
#include "core/core.h"

#include <time.h>

WEFT__TLS weft_loop *weft__loop;

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* For debuggers that cannot read thread-local variables (tools/weft-gdb.py):
 * this thread's loop itself, not its public handle. */
weft_loop *weft__debug_loop(void);
weft_loop *weft__debug_loop(void)
{
    return weft__loop;
}

int64_t weft__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft__seconds_to_ns(double s)
{
    if (!(s > 0))
        return 0;
    /* A century is "never" for a loop; it keeps the sum below INT64_MAX. */
    if (s > 3.15e9)
        s = 3.15e9;
    return (int64_t)(s * 1e9 + 0.5); /* no libm: callers need not link -lm */
}

int64_t weft__seconds_to_ns_signed(double s)
{
    return s < 0 ? -weft__seconds_to_ns(-s) : weft__seconds_to_ns(s);
}

double weft_time(void)
{
    weft_loop *L = weft__loop;
    int64_t ns = L ? weft__now(L) : weft__mono_ns();
    return (double)ns / 1e9;
}


