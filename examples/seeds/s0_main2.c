/*
 * s0_main2 — seed 000 (Understanding Asyncio in Python, Part 2), "A Simple Example", main2.
 * Teaches: create_task(a()) schedules a() but does not run it; a() first runs when
 * b2() suspends in its I/O, so a()'s compute and I/O overlap b2()'s I/O: about 11 s
 * instead of 16 s.
 * Port of py/s0_main2.py: create_task is weft_spawn, `await task` is weft_await;
 * `await b2(task)` is the plain call b2(task).
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

static void *b2(void *task_arg)
{
    weft_task *task = task_arg;
    puts("b() starts heavy compute");
    seed_block(5);
    puts("b() ends heavy compute");
    puts("b() starts heavy I/O");
    int rc = seed_sleep(5);
    if (rc != 0) {
        weft_detach(task); /* as in Python, the task runs on until asyncio.run ends it */
        return seed_reraise(rc);
    }
    puts("b() ends heavy I/O");
    void *ret = NULL;
    rc = weft_await(task, &ret); /* Key difference is here. */
    if (rc != 0)
        return seed_reraise(rc);
    return (void *)(10 * (intptr_t)ret);
}

static void *main2(void *unused)
{
    (void)unused;
    double t1 = seed_wall_time();
    weft_task *awaitable = weft_spawn(a, NULL);
    if (awaitable == NULL)
        return seed_spawn_failed();
    b2(awaitable);
    if (weft_error() != 0)
        return NULL;
    double t2 = seed_wall_time();
    printf("Elapsed time: %s\n", seed_float_repr(t2 - t1).text);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s0_main2", weft_run(main2, NULL, NULL));
}
