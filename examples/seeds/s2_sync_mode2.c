/*
 * s2_sync_mode2 — seed 002 (Understanding AsyncIO by Code), "Synchronous Mode 2".
 * Teaches: gather() runs both coroutines concurrently and returns their results in
 * argument order (['hello(2)', 'world(1)'] although world finishes first), in about
 * 2 s, not 3 s.
 * Port of py/s2_sync_mode2.py: gather(go(...), go(...)) is two weft_spawn calls and
 * one weft_gather.
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
    static const struct go_args hello = {2, "hello"}, world = {1, "world"};
    double time1 = seed_wall_time();
    printf("%s\n", seed_hms(seed_now()).text);

    weft_task *children[2];
    children[0] = weft_spawn(go, (void *)&hello);
    if (children[0] == NULL)
        return seed_spawn_failed();
    children[1] = weft_spawn(go, (void *)&world);
    if (children[1] == NULL) {
        weft_detach(children[0]);
        return seed_spawn_failed();
    }
    void *ret[2] = {NULL, NULL};
    int rc = weft_gather(children, 2, ret, NULL, 0);
    if (rc != 0) {
        free(ret[0]);
        free(ret[1]);
        return seed_reraise(rc);
    }
    seed_value printed[2] = {seed_str(ret[0]), seed_str(ret[1])};
    seed_print_list(printed, 2);
    free(ret[0]);
    free(ret[1]);

    double time2 = seed_wall_time();
    printf("%s (%.4f sec)\n", seed_hms(seed_now()).text, time2 - time1);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s2_sync_mode2", weft_run(async_main, NULL, NULL));
}
