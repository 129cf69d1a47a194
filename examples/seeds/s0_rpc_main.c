/*
 * s0_rpc_main — seed 000 (Understanding Asyncio in Python, Part 2), "A More Complex
 * Example", main.
 * Teaches: the sequential version with an RPC at the end: a(), b(), then c(), whose
 * rpc() is the first (and only) call and so returns at once: about 16 s.
 * Port of py/s0_rpc_main.py (which completes the seed's partial snippet). rpc()'s
 * second branch — wait until the prefetch has had 20 s, measured in program seconds
 * (time gap / scale) — is ported though this program never reaches it. Of the Python
 * file's two mains and two b's, this port keeps the ones main() uses.
 */
#include "seed.h"

#include <stdbool.h>

static void *a(void *unused)
{
    (void)unused;
    puts("a() starts heavy compute");
    seed_block(1);
    puts("a() ends heavy compute");
    puts("a() starts heavy I/O");
    int rc = seed_sleep(5);
    if (rc != 0)
        return seed_reraise(rc);
    puts("a() ends heavy I/O");
    return (void *)(intptr_t)seed_randrange(10);
}

/* When rpc() was first called; the first call triggers the prefetch. */
static bool rpc_called;
static double rpc_first_call_time;

static void *rpc(void *unused)
{
    (void)unused;
    if (!rpc_called) {
        rpc_called = true;
        rpc_first_call_time = seed_wall_time();
        printf("first time calling rpc at %s\n", seed_float_repr(rpc_first_call_time).text);
        return (void *)(intptr_t)seed_randrange(10);
    }
    /* Later calls: if the prefetch (10 s) has not had time to fill the cache, wait
     * for it; the wait is computed in program seconds so any scale behaves alike. */
    double time_gap = seed_wall_time() - rpc_first_call_time;
    printf("time gap %s\n", seed_float_repr(time_gap).text);
    double scale = seed_time_scale();
    double program_gap = scale > 0.0 ? time_gap / scale : 0.0;
    if (program_gap < 10) {
        int rc = seed_sleep(20 - program_gap);
        if (rc != 0)
            return seed_reraise(rc);
    }
    return (void *)(intptr_t)seed_randrange(10);
}

static void *b(void *x)
{
    puts("b() starts heavy compute");
    seed_block(5);
    puts("b() ends heavy compute");
    puts("b() starts heavy I/O");
    int rc = seed_sleep(5);
    if (rc != 0)
        return seed_reraise(rc);
    puts("b() ends heavy I/O");
    return (void *)(10 * (intptr_t)x);
}

static void *c(void *unused)
{
    (void)unused;
    puts("c() starts RPC call");
    void *ret = rpc(NULL);
    if (weft_error() != 0)
        return NULL;
    puts("c() ends RPC call");
    return ret;
}

static void *rpc_main(void *unused)
{
    (void)unused;
    double t1 = seed_wall_time();
    void *ret = a(NULL);
    if (weft_error() != 0)
        return NULL;
    b(ret);
    if (weft_error() != 0)
        return NULL;
    c(NULL);
    if (weft_error() != 0)
        return NULL;
    double t2 = seed_wall_time();
    printf("Elapsed time: %s\n", seed_float_repr(t2 - t1).text);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s0_rpc_main", weft_run(rpc_main, NULL, NULL));
}
