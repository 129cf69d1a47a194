/*
 * s4_gather_raise — seed 004 (Learning Notes, Asyncio), gather with the default
 * return_exceptions=False.
 * Teaches: when one child raises, gather raises that exception to the awaiter at once
 * (after about 1 s, not 2 s), and the other child keeps running in the background and
 * finishes later.
 * Port of py/s4_gather_raise.py: `raise ValueError('coro2 failed')` is
 * weft_fail(-EINVAL, ...); weft_gather returns -EINVAL at the first failure while coro1
 * runs on; `except ValueError` is the test for -EINVAL.
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
    puts("coro2 raises ValueError");
    return weft_fail(-EINVAL, "coro2 failed");
}

static void *async_main(void *unused)
{
    (void)unused;
    double start = seed_perf_counter();
    weft_task *children[2];
    children[0] = weft_spawn(coro1, NULL);
    if (children[0] == NULL)
        return seed_spawn_failed();
    children[1] = weft_spawn(coro2, NULL);
    if (children[1] == NULL) {
        weft_detach(children[0]);
        return seed_spawn_failed();
    }
    void *result[2];
    int rc = weft_gather(children, 2, result, NULL, 0);
    if (rc == 0) {
        seed_value printed[2] = {seed_str(result[0]), seed_str(result[1])};
        seed_print_list(printed, 2);
    } else if (rc == -EINVAL) {
        printf("gather raised ValueError: %s\n", weft_errmsg());
        printf("Elapsed time: %.2f\n", seed_perf_counter() - start);
    } else {
        return seed_reraise(rc);
    }
    rc = seed_sleep(2); /* coro1 keeps running in the background meanwhile */
    if (rc != 0)
        return seed_reraise(rc);
    puts("main ends");
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_gather_raise", weft_run(async_main, NULL, NULL));
}
