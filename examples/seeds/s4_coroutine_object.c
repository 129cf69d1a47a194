/*
 * s4_coroutine_object — seed 004 (Learning Notes, Asyncio), coroutine object.
 * Teaches: calling an async function only makes a coroutine object and runs none of
 * its body; the body runs when the coroutine is awaited.
 * Port of py/s4_coroutine_object.py: `x = A()` is a seed_coroutine holding A and its
 * argument; `await x` calls it, in the same task.
 */
#include "seed.h"

static void *A(void *unused)
{
    (void)unused;
    puts("A runs");
    return NULL; /* Python's None */
}

static void *async_main(void *unused)
{
    (void)unused;
    /* this gives us a coroutine object; to execute the function we need to await it */
    seed_coroutine x = {A, NULL};
    puts("coroutine object created, A has not run yet");
    void *result = seed_await_coroutine(x);
    if (weft_error() != 0)
        return NULL;
    printf("result: %s\n", result == NULL ? "None" : "(a value)");
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_coroutine_object", weft_run(async_main, NULL, NULL));
}
