/*
 * curl_cancel.c — checks the cancellation contract of examples/net/curl_weft.c from
 * outside the call: weft_curl_get cancelled by weft_cancel, then by a timeout scope
 * around it, returns at once (-ECANCELED, then -ETIMEDOUT from the scope), leaves no
 * transfer behind (weft_curl_free succeeds), and the handle still fetches afterwards.
 * The loop then runs on for a while, so that a curl callback left pointing at a freed
 * transfer would fire (AddressSanitizer reports it in the sanitizer build).
 *
 *   usage: curl_cancel SLOW_URL FAST_URL     (SLOW_URL answers after 2 s or more)
 *
 * Prints one line per step; fetch_test.py checks them. Exit status 0 when every step
 * went as it should.
 */
#define _POSIX_C_SOURCE 200809L
#include "curl_weft.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <weft.h>

struct get {
    weft_curl *cw;
    const char *url;
    long status;
};

static void *getter(void *arg)
{
    struct get *get = arg;
    get->status = weft_curl_get(get->cw, get->url, 0, NULL);
    return NULL;
}

static int failures;

static void step(bool ok, const char *what, long status, double took)
{
    if (status < 0)
        printf("%s: %s: %s after %.1f s\n", ok ? "ok" : "FAILED", what, weft_errname((int)status), took);
    else
        printf("%s: %s: %ld after %.1f s\n", ok ? "ok" : "FAILED", what, status, took);
    if (!ok)
        failures++;
}

static void *check_main(void *arg)
{
    char **urls = arg;
    weft_curl *cw = weft_curl_new();
    if (!cw)
        return NULL;

    /* 1. weft_cancel on the task waiting in weft_curl_get. */
    struct get get = {cw, urls[0], 0};
    weft_task *task = weft_spawn(getter, &get);
    double start = weft_time();
    if (!task || weft_sleep(0.2) != 0)
        return weft_fail(-EIO, "spawn or sleep failed: %s", weft_errmsg());
    weft_cancel(task, "enough");
    int err = weft_await(task, NULL);
    double took = weft_time() - start;
    step(err == -ECANCELED && get.status == -ECANCELED && took < 1.0, "cancelled by weft_cancel", get.status,
         took);

    /* 2. A timeout scope around the call. */
    start = weft_time();
    weft_timeout *scope = weft_timeout_enter(0.3);
    if (!scope)
        return NULL;
    long status = weft_curl_get(cw, urls[0], 0, NULL);
    status = weft_timeout_exit(scope, (int)status);
    took = weft_time() - start;
    step(status == -ETIMEDOUT && took < 1.0, "cut by a timeout scope around the call", status, took);

    /* 3. The handle still works, and 4. nothing was left in it. */
    start = weft_time();
    status = weft_curl_get(cw, urls[1], 5.0, NULL);
    step(status == 200, "the next request on the same handle", status, weft_time() - start);
    int freed = weft_curl_free(cw);
    step(freed == 0, "weft_curl_free: no transfer left", freed, 0);

    /* Time for any stray callback to fire while the loop still runs. */
    if (weft_sleep(0.5) != 0)
        return NULL;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: curl_cancel SLOW_URL FAST_URL\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    int rc = weft_run(check_main, argv + 1, NULL);
    if (rc != 0)
        fprintf(stderr, "curl_cancel: %s\n", weft_errmsg());
    curl_global_cleanup();
    return rc != 0 || failures ? 1 : 0;
}
