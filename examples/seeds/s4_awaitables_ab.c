/*
 * s4_awaitables_ab — seed 004 (Learning Notes, Asyncio), "Awaitables: Basic example".
 * Teaches: A runs do_a and do_b, then suspends in the I/O-bound do_c; while do_c waits
 * the loop gives control to B (do_x, do_y); when do_c's I/O completes, A resumes with
 * do_d. B's work costs no extra time: about 1 s in all.
 * Port of py/s4_awaitables_ab.py: the plain functions stay plain C functions; `await
 * do_c()` is the plain call do_c(NULL), which suspends the task that made it (A);
 * gather(A(), B()) is two weft_spawn calls and one weft_gather.
 */
#include "seed.h"

static void do_a(void)
{
    puts("do_a");
}

static void do_b(void)
{
    puts("do_b");
}

static void *do_c(void *unused)
{
    (void)unused;
    puts("do_c starts fetching the image");
    int rc = seed_sleep(1);
    if (rc != 0)
        return seed_reraise(rc);
    puts("do_c got the image");
    return NULL;
}

static void do_d(void)
{
    puts("do_d");
}

static void do_x(void)
{
    puts("do_x");
}

static void do_y(void)
{
    puts("do_y");
}

static void *A(void *unused)
{
    (void)unused;
    do_a();
    do_b();
    do_c(NULL);
    if (weft_error() != 0)
        return NULL;
    do_d();
    return NULL;
}

static void *B(void *unused)
{
    (void)unused;
    do_x();
    do_y();
    return NULL;
}

static void *async_main(void *unused)
{
    (void)unused;
    double start = seed_perf_counter();
    weft_task *children[2];
    children[0] = weft_spawn(A, NULL);
    if (children[0] == NULL)
        return seed_spawn_failed();
    children[1] = weft_spawn(B, NULL);
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
    return seed_exit_status("s4_awaitables_ab", weft_run(async_main, NULL, NULL));
}
