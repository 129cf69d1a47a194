/*
 * s4_gather_return_exceptions — seed 004 (Learning Notes, Asyncio), gather with
 * return_exceptions=True.
 * Teaches: the exception does not propagate; gather waits for every child (about 2 s)
 * and the exception object sits in the result list in argument order:
 * ['coro1 result', ValueError('coro2 failed')].
 * Port of py/s4_gather_return_exceptions.py: return_exceptions=True is the flag
 * WEFT_RETURN_EXCEPTIONS; each slot then holds a result or an error code and message
 * (weft_gather_msgs keeps the messages), and -EINVAL prints as ValueError.
 */
#include "seed.h"

#include <stdlib.h>

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
    int errs[2];
    char *msgs[2]; /* each slot's message, as asyncio keeps each exception object */
    int rc = weft_gather_msgs(children, 2, result, errs, msgs, WEFT_RETURN_EXCEPTIONS);
    if (rc != 0)
        return seed_reraise(rc);
    printf("Elapsed time: %.2f\n", seed_perf_counter() - start);
    seed_value printed[2];
    for (int i = 0; i < 2; i++)
        printed[i] = errs[i] != 0 ? seed_exception(errs[i], msgs[i] != NULL ? msgs[i] : "")
                                  : seed_str(result[i]);
    seed_print_list(printed, 2);
    for (int i = 0; i < 2; i++)
        free(msgs[i]);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_gather_return_exceptions", weft_run(async_main, NULL, NULL));
}
