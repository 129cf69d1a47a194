/*
 * s4_create_task — seed 004 (Learning Notes, Asyncio), "Tasks".
 * Teaches: create_task schedules FuncA but does not run it; it runs only when the
 * creating coroutine gives control back to the loop (here at `await task`).
 * Port of py/s4_create_task.py: create_task is weft_spawn, `await task` is weft_await.
 */
#include "seed.h"

static void *FuncA(void *unused)
{
    (void)unused;
    puts("FuncA runs");
    return NULL;
}

static void *async_main(void *unused)
{
    (void)unused;
    /* Schedules the task, but does not run it: it waits for the loop to give it control */
    weft_task *task = weft_spawn(FuncA, NULL);
    if (task == NULL)
        return seed_spawn_failed();
    puts("task created, FuncA has not run yet");
    int rc = weft_await(task, NULL);
    if (rc != 0)
        return seed_reraise(rc);
    puts("task done");
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_create_task", weft_run(async_main, NULL, NULL));
}
