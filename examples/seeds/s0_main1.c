/*
 * s0_main1 — seed 000 (Understanding Asyncio in Python, Part 2), "A Simple Example", main1.
 * Teaches: awaiting a() and then b() one after the other puts every step on the
 * critical path: 1 s + 5 s of blocking compute and 5 s + 5 s of I/O, about 16 s in all.
 * Port of py/s0_main1.py: `await a()` is the plain call a(NULL), running in the same
 * task; time.sleep (compute that blocks the loop) is seed_block; asyncio.sleep is
 * seed_sleep.
 */
#include "seed.h"

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

static void *main1(void *unused)
{
    (void)unused;
    double t1 = seed_wall_time();
    void *ret = a(NULL);
    if (weft_error() != 0)
        return NULL; /* a() raised: the exception propagates */
    b(ret);
    if (weft_error() != 0)
        return NULL;
    double t2 = seed_wall_time();
    printf("Elapsed time: %s\n", seed_float_repr(t2 - t1).text);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s0_main1", weft_run(main1, NULL, NULL));
}
