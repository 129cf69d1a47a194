/*
 * s1_tasks10 — seed 001 (Understanding concurrency with asyncio), first example.
 * Teaches: 10 jobs of random length (random.random() seconds each). Run one after the
 * other (a blocking sleep) the total is the SUM of their times; run as tasks gathered
 * together, every task starts before any finishes, they finish in order of their
 * random durations, and the total is about the MAX of them.
 * Port of py/s1_tasks10.py: the sequential half runs before any loop exists, as in
 * Python; seed.h's random draws the same numbers as Python's random.seed(1).
 */
#include "seed.h"

enum { TASK_COUNT = 10 };

static void run_task(int task_id)
{
    struct timespec start = seed_now();
    printf("Starting task%d at %s\n", task_id, seed_hms(start).text);
    /* simulate i/o operation using sleep */
    seed_block(seed_random());
    struct timespec finish = seed_now();
    double timer = seed_seconds_between(start, finish);
    printf("Task%d completed at %s, in %.2f seconds.\n", task_id, seed_hms(finish).text, timer);
}

static void *coro(void *task_id_arg)
{
    int task_id = (int)(intptr_t)task_id_arg;
    struct timespec start = seed_now();
    printf("Starting task%d at %s\n", task_id, seed_hms(start).text);
    /* simulate i/o operation using sleep */
    int rc = seed_sleep(seed_random());
    if (rc != 0)
        return seed_reraise(rc);
    struct timespec finish = seed_now();
    double timer = seed_seconds_between(start, finish);
    printf("Task%d completed at %s, in %.2f seconds.\n", task_id, seed_hms(finish).text, timer);
    return NULL;
}

static void run_all_tasks(void)
{
    puts("Running tasks sequentially... ");
    double start = seed_wall_time();
    for (int i = 1; i <= TASK_COUNT; i++)
        run_task(i);
    printf("Process took: % .2f seconds. \n\n", seed_wall_time() - start);
}

static void *async_main(void *unused)
{
    (void)unused;
    puts("Running tasks concurrently... ");
    double start = seed_wall_time();
    weft_task *tasks[TASK_COUNT];
    for (int i = 0; i < TASK_COUNT; i++) {
        tasks[i] = weft_spawn(coro, (void *)(intptr_t)(i + 1));
        if (tasks[i] == NULL) {
            while (i-- > 0)
                weft_detach(tasks[i]);
            return seed_spawn_failed();
        }
    }
    int rc = weft_gather(tasks, TASK_COUNT, NULL, NULL, 0);
    if (rc != 0)
        return seed_reraise(rc);
    printf("Process took: % .2f seconds.\n", seed_wall_time() - start);
    return NULL;
}

int main(void)
{
    seed_init();
    run_all_tasks();
    return seed_exit_status("s1_tasks10", weft_run(async_main, NULL, NULL));
}
