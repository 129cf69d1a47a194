/*
 * s4_process_pool — seed 004 (Learning Notes, Asyncio), "Using ProcessPoolExecutor".
 * Teaches: run_in_executor with a process pool runs a blocking function in another
 * process, and its result comes back to the awaiting coroutine: A(2, 3) returned 5.
 * Port of py/s4_process_pool.py: ProcessPoolExecutor() is weft_procpool_new(0) (one
 * worker per CPU, forked when the pool is created, so the worker knows A), the
 * `with` block's end is weft_procpool_free, and loop.run_in_executor(exect, A, x, y)
 * is weft_procpool_run. Arguments and results cross between processes as bytes, as
 * Python pickles them: here the two ints in, one int out.
 */
#include "seed.h"

#include <stdlib.h>
#include <string.h>

typedef struct a_args {
    int x, y;
} a_args;

/* def A(x, y): time.sleep(1); return x + y  — runs in a worker process. */
static int A(const void *in, size_t in_len, void **out, size_t *out_len)
{
    a_args args;
    if (in_len != sizeof args)
        return -EINVAL;
    memcpy(&args, in, sizeof args);
    seed_block(1); /* blocking work: it blocks the worker, not the loop */
    int *sum = malloc(sizeof *sum);
    if (sum == NULL)
        return -ENOMEM;
    *sum = args.x + args.y;
    *out = sum;
    *out_len = sizeof *sum;
    return 0;
}

static void *async_main(void *unused)
{
    (void)unused;
    a_args args = {2, 3};
    weft_procpool *exect = weft_procpool_new(0);
    if (exect == NULL) /* weft_errmsg() says why; most often fork failed */
        return seed_reraise(-EAGAIN);
    void *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(exect, A, &args, sizeof args, &out, &out_len);
    weft_procpool_free(exect);
    if (rc != 0)
        return seed_reraise(rc);
    int result = 0;
    if (out_len == sizeof result)
        memcpy(&result, out, sizeof result);
    free(out);
    printf("A(%d, %d) returned %d\n", args.x, args.y, result);
    return NULL;
}

int main(void)
{
    seed_init();
    return seed_exit_status("s4_process_pool", weft_run(async_main, NULL, NULL));
}
