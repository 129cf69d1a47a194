/* hello.c — weft's hello world: two tasks sleep at the same time and are gathered. */
#include <stdio.h>
#include <weft.h>

struct greeting {
    double delay;
    char *word;
};

/* A coroutine function: sleeping suspends only this task, never the thread. */
static void *say_after(void *arg)
{
    struct greeting *greeting = arg;
    int err = weft_sleep(greeting->delay);
    if (err)
        return weft_fail(err, "sleep: %s", weft_strerror(err));
    printf("%s\n", greeting->word);
    return greeting->word;
}

static void *amain(void *arg)
{
    (void)arg;
    static struct greeting hello = {0.1, "hello"}, world = {0.2, "world"};
    weft_task *tasks[2] = {weft_spawn(say_after, &hello), weft_spawn(say_after, &world)};
    void *words[2];
    double start = weft_time();
    int err = weft_gather(tasks, 2, words, NULL, 0);
    if (err)
        return weft_fail(err, "gather: %s", weft_errmsg());
    /* Both slept at once: 0.2 s in all, not 0.3. */
    printf("gathered %s, %s in %.1f s\n", (char *)words[0], (char *)words[1], weft_time() - start);
    return NULL;
}

int main(void)
{
    if (weft_run(amain, NULL, NULL) != 0) {
        fprintf(stderr, "hello: %s\n", weft_errmsg());
        return 1;
    }
    return 0;
}
