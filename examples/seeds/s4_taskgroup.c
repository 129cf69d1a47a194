/*
 * s4_taskgroup — seed 004 (Learning Notes, Asyncio), TaskGroup.
 * Teaches: tasks created in an `async with asyncio.TaskGroup()` block run
 * concurrently and are awaited automatically when the block ends: about 2 s, not
 * 3 s; both results are still available after the block.
 * Port of py/s4_taskgroup.py: the `async with` block is weft_group_new ...
 * weft_group_wait; tg.create_task is weft_group_spawn; t.result() after the block
 * is weft_task_result, readable until weft_group_free releases the children.
 */
#include "seed.h"

static void *coro1(void *unused)
{
    (void)unused;
    puts("coro1 starts");
    int rc = seed_sleep(2);
    if (rc != 0)
        return seed_reraise(rc);
    puts("coro1 ends");
    return "coro1 result";
}

static void *coro2(void *unused)
{
    (void)unused;
    puts("coro2 starts");
    int rc = seed_sleep(1);
    if (rc != 0)
        return seed_reraise(rc);
    puts("coro2 ends");
    return "coro2 result";
}

static void *async_main(void *unused)
{
    (void)unused;
    double start = seed_perf_counter();
    weft_group *tg = weft_group_new(); /* async with asyncio.TaskGroup() as tg: */
    if (tg == NULL)
        return seed_reraise(-ENOMEM);
    weft_task *t1 = weft_group_spawn(tg, coro1, NULL);
    weft_task *t2 = t1 != NULL ? weft_group_spawn(tg, coro2, NULL) : NULL;
    /* A failed spawn is the body's error: leaving the group cancels what started. */
    int body_rc = t2 != NULL ? 0 : -ENOMEM;
    int rc = weft_group_wait(tg, body_rc); /* the end of the `async with` block */
    if (rc != 0) {
        weft_group_free(tg);
        return seed_reraise(rc);
    }
    printf("Elapsed time: %.2f\n", seed_perf_counter() - start);
    void *r1 = NULL, *r2 = NULL;
    weft_task_result(t1, &r1);
    weft_task_result(t2, &r2);
    seed_value printed[2] = {seed_str(r1), seed_str(r2)};
    seed_print_list(printed, 2);
    weft_group_free(tg);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_taskgroup", weft_run(async_main, NULL, NULL));
}
