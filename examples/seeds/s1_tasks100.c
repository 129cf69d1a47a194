/*
 * s1_tasks100 — seed 001 (Understanding concurrency with asyncio), second example.
 * Teaches: the same with 100 jobs whose durations are random.random() * 10/100 s: the
 * sequential total is the SUM (about 5 s), the concurrent total about the MAX (about
 * 0.1 s); the speed-up grows with the number of tasks.
 * Port of py/s1_tasks100.py: the sequential half runs before any loop exists, as in
 * Python; seed.h's random draws the same numbers as Python's random.seed(1).
 */
#include "seed.h"

enum { HOW_MANY = 100 };

struct coro_args {
    int task_id;
    double factor;
};

static void run_task(int task_id, double factor)
{
    struct timespec start = seed_now();
    printf("Starting task%d at %s\n", task_id, seed_hms(start).text);
    /* simulate i/o operation using sleep */
    seed_block(seed_random() * factor);
    struct timespec finish = seed_now();
    double timer = seed_seconds_between(start, finish);
    printf("Task%d completed at %s, in %.3f seconds.\n", task_id, seed_hms(finish).text, timer);
}

static void *coro(void *args_arg)
{
    const struct coro_args *args = args_arg;
    struct timespec start = seed_now();
    printf("Starting task%d at %s\n", args->task_id, seed_hms(start).text);
    /* simulate i/o operation using sleep */
    int rc = seed_sleep(seed_random() * args->factor);
    if (rc != 0)
        return seed_reraise(rc);
    struct timespec finish = seed_now();
    double timer = seed_seconds_between(start, finish);
    printf("Task%d completed at %s, in %.3f seconds.\n", args->task_id, seed_hms(finish).text,
           timer);
    return NULL;
}

static void run_all_tasks(int how_many)
{
    puts("Running tasks sequentially... ");
    double start = seed_wall_time();
    for (int i = 1; i <= how_many; i++)
        run_task(i, 10.0 / how_many);
    printf("Process took: % .2f seconds. \n\n", seed_wall_time() - start);
}

static void *async_main(void *how_many_arg)
{
    int how_many = (int)(intptr_t)how_many_arg;
    /* Static, not on this stack: on an error path the tasks may outlive this frame. */
    static struct coro_args args[HOW_MANY];
    static weft_task *tasks[HOW_MANY];
    if (how_many > HOW_MANY)
        return weft_fail(-EINVAL, "at most %d tasks, not %d", HOW_MANY, how_many);
    puts("Running tasks concurrently... ");
    double start = seed_wall_time();
    for (int i = 0; i < how_many; i++) {
        args[i] = (struct coro_args){.task_id = i + 1, .factor = 10.0 / how_many};
        tasks[i] = weft_spawn(coro, &args[i]);
        if (tasks[i] == NULL) {
            while (i-- > 0)
                weft_detach(tasks[i]);
            return seed_spawn_failed();
        }
    }
    int rc = weft_gather(tasks, (size_t)how_many, NULL, NULL, 0);
    if (rc != 0)
        return seed_reraise(rc);
    printf("Process took: % .2f seconds.\n", seed_wall_time() - start);
    return NULL;
}

int main(void)
{
    seed_init();
    run_all_tasks(HOW_MANY);
    return seed_exit_status("s1_tasks100", weft_run(async_main, (void *)(intptr_t)HOW_MANY, NULL));
}
