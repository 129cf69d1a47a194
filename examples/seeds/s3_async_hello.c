/*
 * s3_async_hello — seed 003 (Better Python Asyncio Examples for Beginners),
 * async_hello.py.
 * Teaches: asyncio.run creates the event loop and runs main: Hello, 1 s, World.
 * Port of py/s3_async_hello.py: asyncio.run is weft_run.
 */
#include "seed.h"

static void *async_main(void *unused)
{
    (void)unused;
    puts("Hello ...");
    int rc = seed_sleep(1);
    if (rc != 0)
        return seed_reraise(rc);
    puts("... World!");
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s3_async_hello", weft_run(async_main, NULL, NULL));
}
