/*
 * s3_async_tasks_create — seed 003 (Better Python Asyncio Examples for Beginners),
 * async_tasks_create.py.
 * Teaches: create_task schedules but does not start: the "created" and "other work"
 * lines all print before either task starts; the total is about 2 s.
 * Port of py/s3_async_tasks_create.py: create_task is weft_spawn (the task waits in the
 * ready queue until main suspends), `await t` is weft_await.
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

static void *run_tasks_async_create(void *unused)
{
    (void)unused;
    double start = seed_perf_counter();

    weft_task *t_a = weft_spawn(task_a, NULL);
    if (t_a == NULL)
        return seed_spawn_failed();
    puts("Task A created...");
    weft_task *t_b = weft_spawn(task_b, NULL);
    if (t_b == NULL) {
        weft_detach(t_a);
        return seed_spawn_failed();
    }
    puts("Task B created...");

    puts("Do other work here...");

    void *result_a = NULL, *result_b = NULL;
    int rc = weft_await(t_a, &result_a);
    if (rc != 0) {
        weft_detach(t_b);
        return seed_reraise(rc);
    }
    rc = weft_await(t_b, &result_b);
    if (rc != 0)
        return seed_reraise(rc);
    double end = seed_perf_counter();

    printf("Executed in %0.2f seconds\n", end - start); /* 2 secs */
    seed_value printed[2] = {seed_str(result_a), seed_str(result_b)};
    seed_print_list(printed, 2);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s3_async_tasks_create", weft_run(run_tasks_async_create, NULL, NULL));
}
