/*
 * s4_to_thread — seed 004 (Learning Notes, Asyncio), "By using to_thread".
 * Teaches: a blocking function run with to_thread runs on another thread, so the
 * loop stays free: other() ticks every 0.5 s while A blocks for 2 s, all three ticks
 * come before A's result, and the run takes about 2 s, not 3 s.
 * Port of py/s4_to_thread.py: asyncio.to_thread(A, x, y) is weft_to_thread(A, &args),
 * its two arguments in one struct; create_task around it is a task that makes the
 * call; time.sleep in A is seed_block, which blocks only the pool's thread.
 */
#include "seed.h"

#include <stdint.h>

typedef struct a_args {
    int x, y;
} a_args;

/* A blocking function: it knows nothing of weft and runs on a pool thread. */
static void *A(void *arg)
{
    a_args *args = arg;
    seed_block(2); /* blocking work */
    return (void *)(intptr_t)(args->x + args->y);
}

/* The coroutine asyncio.to_thread(A, x, y) makes, run as a task. */
static void *to_thread_A(void *arg)
{
    void *result = NULL;
    int rc = weft_to_thread(A, arg, &result);
    if (rc != 0)
        return seed_reraise(rc);
    return result;
}

static void *B(void *unused)
{
    (void)unused;
    /* Static, not on B's stack: the thread reads it, and if B were cancelled
     * while A still ran, B's stack would be given back under the thread. */
    static a_args args = {2, 3};
    weft_task *task1 = weft_spawn(to_thread_A, &args);
    if (task1 == NULL)
        return seed_spawn_failed();
    void *result = NULL;
    int rc = weft_await(task1, &result);
    if (rc != 0)
        return seed_reraise(rc);
    printf("A(%d, %d) returned %d\n", args.x, args.y, (int)(intptr_t)result);
    return NULL;
}

static void *other(void *unused)
{
    (void)unused;
    for (int i = 1; i < 4; i++) {
        int rc = seed_sleep(0.5);
        if (rc != 0)
            return seed_reraise(rc);
        printf("tick %d\n", i);
    }
    return NULL;
}

static void *async_main(void *unused)
{
    (void)unused;
    double start = seed_perf_counter();
    weft_task *children[2];
    children[0] = weft_spawn(B, NULL);
    if (children[0] == NULL)
        return seed_spawn_failed();
    children[1] = weft_spawn(other, NULL);
    if (children[1] == NULL) {
        weft_detach(children[0]);
        return seed_spawn_failed();
    }
    int rc = weft_gather(children, 2, NULL, NULL, 0);
    if (rc != 0)
        return seed_reraise(rc);
    printf("Elapsed time: %.2f\n", seed_perf_counter() - start);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_to_thread", weft_run(async_main, NULL, NULL));
}
