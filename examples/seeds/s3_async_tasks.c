/*
 * s3_async_tasks — seed 003 (Better Python Asyncio Examples for Beginners),
 * async_tasks.py.
 * Teaches: gather runs task_a (1 s) and task_b (2 s) concurrently: both start before
 * either ends, the total is about 2 s, and the results come in argument order.
 * Port of py/s3_async_tasks.py: gather(task_a(), task_b()) is two weft_spawn calls and
 * one weft_gather.
 */
#include "seed.h"

static void *task_a(void *unused)
{
    (void)unused;
    puts("Task A starts");
    int rc = seed_sleep(1); /* 1 sec non-blocking task */
    if (rc != 0)
        return seed_reraise(rc);
    puts("Task A ends");
    return "A1";
}

static void *task_b(void *unused)
{
    (void)unused;
    puts("Task B starts");
    int rc = seed_sleep(2); /* 2 secs non-blocking task */
    if (rc != 0)
        return seed_reraise(rc);
    puts("Task B ends");
    return "B2";
}

static void *run_tasks_async(void *unused)
{
    (void)unused;
    double start = seed_perf_counter();
    weft_task *children[2];
    children[0] = weft_spawn(task_a, NULL);
    if (children[0] == NULL)
        return seed_spawn_failed();
    children[1] = weft_spawn(task_b, NULL);
    if (children[1] == NULL) {
        weft_detach(children[0]);
        return seed_spawn_failed();
    }
    void *result[2];
    int rc = weft_gather(children, 2, result, NULL, 0);
    if (rc != 0)
        return seed_reraise(rc);
    double end = seed_perf_counter();
    printf("Executed in %0.2f seconds\n", end - start); /* 2 secs */
    seed_value printed[2] = {seed_str(result[0]), seed_str(result[1])};
    seed_print_list(printed, 2);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s3_async_tasks", weft_run(run_tasks_async, NULL, NULL));
}
