/*
 * s2_sync_mode1 — seed 002 (Understanding AsyncIO by Code), "Synchronous Mode 1".
 * Teaches: two tasks made with create_task (2 s and 1 s) run concurrently while main
 * awaits them one after the other: about 2 s in all, not 3 s.
 * Port of py/s2_sync_mode1.py: create_task is weft_spawn, `await task` is weft_await.
 * go()'s return values are not printed, as in the seed.
 */
#include "seed.h"

struct go_args {
    int delay;
    const char *what;
};

/* Returns f'{what}({delay})', allocated; the awaiter frees it. */
static void *go(void *args_arg)
{
    const struct go_args *args = args_arg;
    int rc = seed_sleep(args->delay);
    if (rc != 0)
        return seed_reraise(rc);
    size_t size = strlen(args->what) + 24;
    char *text = malloc(size);
    if (text == NULL)
        return weft_fail(-ENOMEM, "go(): no memory for the result");
    snprintf(text, size, "%s(%d)", args->what, args->delay);
    return text;
}

static void *async_main(void *unused)
{
    (void)unused;
    /* first task for event loop */
    static const struct go_args hello = {2, "hello"}, world = {1, "world"};
    double time1 = seed_wall_time();
    printf("Start: %s\n", seed_hms(seed_now()).text);

    weft_task *task1 = weft_spawn(go, (void *)&hello);
    if (task1 == NULL)
        return seed_spawn_failed();
    weft_task *task2 = weft_spawn(go, (void *)&world);
    if (task2 == NULL) {
        weft_detach(task1);
        return seed_spawn_failed();
    }
    void *result = NULL;
    int rc = weft_await(task1, &result);
    if (rc != 0) {
        weft_detach(task2);
        return seed_reraise(rc);
    }
    free(result);
    rc = weft_await(task2, &result);
    if (rc != 0)
        return seed_reraise(rc);
    free(result);

    double time2 = seed_wall_time();
    printf("End: %s (%.4f sec)\n", seed_hms(seed_now()).text, time2 - time1);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s2_sync_mode1", weft_run(async_main, NULL, NULL));
}
