/*
 * sigint_child.c — a program run by test_signal.c as a child process, to see
 * weft_run's Ctrl-C handling from outside: the test sends it SIGINT with kill(2)
 * and looks at what it printed and how it ended. argv[1] picks what main does:
 *
 *   plain     prints "ready", sleeps; cancelled, it prints the cancellation's
 *             message, "cleaned up", and weft_run's result, then calls
 *             weft_exit_interrupted() when that is WEFT_EINTERRUPTED
 *   blocking  as plain, but its cleanup blocks the loop's thread in sleep(3) for
 *             10 s: only a second SIGINT, killing at once, ends it sooner
 *   uncancel  survives the cancellation (weft_uncancel) and returns normally
 *   leftover  main returns at once leaving a task that, cancelled, blocks in
 *             sleep(3): a first SIGINT once main has finished kills at once
 *   takeover  a task waits for SIGINT itself (weft_signal_wait), then gives it
 *             back (weft_remove_signal_handler): the next SIGINT cancels main
 *   no_sigint weft_options.no_sigint: SIGINT keeps its default action
 *
 * "ready" is followed by SIGINT's disposition as main sees it ("weft", "default",
 * "ignored"), and after weft_run returns the program prints "after: " and the
 * disposition again. Output is unbuffered so the test sees each line at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

static const char *disposition(void)
{
    struct sigaction sa;
    if (sigaction(SIGINT, NULL, &sa) != 0)
        return "unknown";
    if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL)
        return "default";
    if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN)
        return "ignored";
    return "weft";
}

static const char *mode;

static void *blocking_leftover(void *arg)
{
    (void)arg;
    if (weft_sleep(60) == -ECANCELED) {
        printf("leftover blocking\n");
        sleep(10); /* blocks the loop's thread: weft_run cannot finish */
        printf("leftover done\n");
    }
    return NULL;
}

static void *waiter(void *arg)
{
    (void)arg;
    int n = weft_signal_wait(SIGINT);
    printf("got SIGINT %d\n", n);
    printf("removed %d\n", weft_remove_signal_handler(SIGINT));
    return NULL;
}

static void *amain(void *arg)
{
    (void)arg;
    if (strcmp(mode, "leftover") == 0) {
        weft_detach(weft_spawn(blocking_leftover, NULL));
        if (weft_yield() != 0)
            return NULL;
        printf("ready %s\n", disposition());
        return NULL;
    }
    if (strcmp(mode, "takeover") == 0) {
        weft_task *t = weft_spawn(waiter, NULL);
        if (weft_yield() != 0)
            return NULL;
        printf("ready %s\n", disposition());
        if (weft_await(t, NULL) != 0)
            return NULL;
        printf("ready again %s\n", disposition());
    } else {
        printf("ready %s\n", disposition());
    }
    int rc = weft_sleep(30);
    printf("cancelled: %s: %s\n", weft_errname(rc), rc ? weft_errmsg() : "");
    if (strcmp(mode, "blocking") == 0) {
        printf("cleaning up\n");
        sleep(10);
    }
    if (strcmp(mode, "uncancel") == 0) {
        printf("uncancel %d\n", weft_uncancel());
        return "survived";
    }
    printf("cleaned up\n");
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    mode = argc > 1 ? argv[1] : "plain";
    weft_options opts = {.no_sigint = strcmp(mode, "no_sigint") == 0};
    void *result = NULL;
    int rc = weft_run_opts(amain, NULL, &result, &opts);
    printf("weft_run: %s: %s\n", weft_errname(rc), rc ? weft_errmsg() : (result ? (char *)result : ""));
    printf("after: %s\n", disposition());
    if (rc == WEFT_EINTERRUPTED)
        weft_exit_interrupted();
    return rc == 0 ? 0 : 1;
}
