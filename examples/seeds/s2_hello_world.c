/*
 * s2_hello_world — seed 002 (Understanding AsyncIO by Code), the "simple but complete"
 * script that switches from synchronous to asynchronous mode.
 * Teaches: a coroutine object made outside the loop is handed to asyncio.run(), which
 * starts the event loop and runs it as the first task: hello, 2 s, world.
 * Port of py/s2_hello_world.py: the coroutine object is a seed_coroutine (function and
 * argument, nothing run yet); asyncio.run is weft_run.
 */
#include "seed.h"

/* first task for event loop */
static void *async_main(void *unused)
{
    (void)unused;
    puts("hello");
    int rc = seed_sleep(2); /* second task for event loop */
    if (rc != 0)
        return seed_reraise(rc);
    puts("world");
    return NULL;
}

int main(void)
{
    seed_init();
    seed_coroutine coro_obj = {async_main, NULL}; /* create coroutine object: nothing runs */
    return seed_exit_status("s2_hello_world", weft_run(coro_obj.fn, coro_obj.arg, NULL));
}
