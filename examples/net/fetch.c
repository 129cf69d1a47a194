/*
 * fetch — the seeds' first lesson made real: fetch URLs one after another, then all at
 * once (at most LIMIT in flight), each with its own time limit, and compare the two
 * total times as seed 001 compares its sequential and concurrent runs. The sequential
 * total is the SUM of the requests' times, the concurrent one about the MAX per wave.
 *
 *   usage: fetch [-n COUNT] [-c LIMIT] [-t TIMEOUT] [-k CAFILE] URL...
 *
 * The requests are libcurl's, on one multi handle that weft's descriptor watchers and
 * timers drive (curl_weft.c); each fetch is a task that calls weft_curl_get in straight
 * line, a weft semaphore bounds how many are in flight, and a weft timeout scope bounds
 * each one. Exit status: 0 when every fetch got a status below 400, 1 if any failed
 * (refused, timed out, name not known, HTTP error), 2 for bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#include "curl_weft.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

enum { DEFAULT_LIMIT = 10 };
#define DEFAULT_TIMEOUT 10.0

/* One request: its inputs, and what it observed. */
struct job {
    int number; /* 1-based, as the seeds number their tasks */
    const char *url;
    double timeout;
    weft_curl *cw;
    weft_sem *limit; /* NULL: no bound (the sequential run) */
    long status;     /* HTTP status, or a negative error */
    size_t bytes;
};

struct run {
    char **urls;
    int url_count;
    int count;
    long limit;
    double timeout;
    const char *ca_file; /* -k: the CAs https:// URLs are checked against, or NULL */
    int failures; /* over both runs */
};

/* The wall clock as %H:%M:%S, as the seeds print it. */
struct hms {
    char text[16];
};

static struct hms now_hms(void)
{
    struct hms out = {"??:??:??"};
    struct timespec now;
    struct tm local;
    if (clock_gettime(CLOCK_REALTIME, &now) == 0 && localtime_r(&now.tv_sec, &local))
        strftime(out.text, sizeof out.text, "%H:%M:%S", &local);
    return out;
}

/* A task per request. The time printed is the request's own, from the moment it holds
 * a permit, so that queueing behind the limit does not count as slowness. */
static void *fetch_one(void *arg)
{
    struct job *job = arg;
    if (job->limit) {
        int err = weft_sem_acquire(job->limit);
        if (err)
            return weft_fail(err, "%s", weft_errmsg());
    }
    double start = weft_time();
    printf("Starting fetch %d at %s: %s\n", job->number, now_hms().text, job->url);
    struct weft_curl_body body = {0};
    job->status = weft_curl_get(job->cw, job->url, job->timeout, &body);
    job->bytes = body.size;
    weft_curl_body_free(&body);
    if (job->limit)
        weft_sem_release(job->limit);
    double took = weft_time() - start;
    if (job->status < 0) {
        /* weft_curl_get has recorded the error: the task ends with it, for the caller. */
        printf("Fetch %d failed at %s, in %.2f seconds: %s\n", job->number, now_hms().text, took,
               weft_errmsg());
        return NULL;
    }
    if (job->status >= 400)
        printf("Fetch %d failed at %s, in %.2f seconds: GET %s: HTTP status %ld, %zu bytes.\n", job->number,
               now_hms().text, took, job->url, job->status, job->bytes);
    else
        printf("Fetch %d completed at %s, in %.2f seconds: %ld, %zu bytes.\n", job->number, now_hms().text,
               took, job->status, job->bytes);
    return NULL;
}

static bool job_failed(const struct job *job, int task_err)
{
    return task_err != 0 || job->status < 0 || job->status >= 400;
}

static void set_up_jobs(struct run *run, struct job *jobs, weft_curl *cw, weft_sem *limit)
{
    for (int i = 0; i < run->count; i++)
        jobs[i] = (struct job){.number = i + 1,
                               .url = run->urls[i % run->url_count],
                               .timeout = run->timeout,
                               .cw = cw,
                               .limit = limit};
}

/* One after another: each task is awaited before the next is spawned. */
static int run_sequentially(struct run *run, struct job *jobs, weft_curl *cw, double *took)
{
    printf("Fetching %d URL%s one after another...\n", run->count, run->count == 1 ? "" : "s");
    set_up_jobs(run, jobs, cw, NULL);
    double start = weft_time();
    for (int i = 0; i < run->count; i++) {
        weft_task *task = weft_spawn(fetch_one, &jobs[i]);
        if (!task)
            return weft_errcode();
        int err = weft_await(task, NULL);
        if (err == -ECANCELED)
            return err;
        if (job_failed(&jobs[i], err))
            run->failures++;
    }
    *took = weft_time() - start;
    printf("Process took: % .2f seconds. \n\n", *took);
    return 0;
}

/* All at once, gathered; the semaphore lets LIMIT of them hold a request at a time. */
static int run_concurrently(struct run *run, struct job *jobs, weft_curl *cw, double *took)
{
    printf("Fetching %d URL%s concurrently, at most %ld at a time...\n", run->count, run->count == 1 ? "" : "s",
           run->limit);
    weft_sem *limit = weft_sem_new(run->limit);
    weft_task **tasks = calloc((size_t)run->count, sizeof *tasks);
    int *errs = calloc((size_t)run->count, sizeof *errs);
    if (!limit || !tasks || !errs) {
        weft_sem_free(limit);
        free(tasks);
        free(errs);
        return -ENOMEM;
    }
    set_up_jobs(run, jobs, cw, limit);
    double start = weft_time();
    int spawned = 0, err = 0;
    while (spawned < run->count && (tasks[spawned] = weft_spawn(fetch_one, &jobs[spawned])) != NULL)
        spawned++;
    if (spawned < run->count) {
        /* Out of memory part-way: stop the others rather than leave them running. */
        err = weft_errcode();
        for (int i = 0; i < spawned; i++)
            weft_cancel(tasks[i], "fetch: giving up");
    }
    /* Every outcome, not the first failure: each task has printed its own line. */
    int gathered = weft_gather(tasks, (size_t)spawned, NULL, errs, WEFT_RETURN_EXCEPTIONS);
    if (!err)
        err = gathered;
    if (!err) {
        for (int i = 0; i < run->count; i++)
            if (job_failed(&jobs[i], errs[i]))
                run->failures++;
        *took = weft_time() - start;
        printf("Process took: % .2f seconds.\n", *took);
    }
    weft_sem_free(limit);
    free(tasks);
    free(errs);
    return err;
}

static void *fetch_main(void *arg)
{
    struct run *run = arg;
    weft_curl *cw = weft_curl_new();
    if (!cw)
        return NULL; /* weft_curl_new has said why */
    if (run->ca_file && weft_curl_set_ca_file(cw, run->ca_file) != 0) {
        weft_curl_free(cw);
        return NULL; /* it has said why */
    }
    struct job *jobs = calloc((size_t)run->count, sizeof *jobs);
    if (!jobs) {
        weft_curl_free(cw);
        return weft_fail(-ENOMEM, "fetch: no memory for %d jobs", run->count);
    }
    double sequential = 0, concurrent = 0;
    int err = run_sequentially(run, jobs, cw, &sequential);
    if (!err)
        err = run_concurrently(run, jobs, cw, &concurrent);
    /* Every transfer has ended by now (their tasks were awaited or gathered). */
    weft_curl_free(cw);
    free(jobs);
    if (err)
        return weft_fail(err, "fetch: %s", weft_strerror(err));
    printf("\nSequential: %.2f seconds; concurrent, at most %ld at a time: %.2f seconds", sequential,
           run->limit, concurrent);
    if (concurrent >= 0.01) /* a ratio of two rounding errors would say nothing */
        printf(" (%.1f times as fast)", sequential / concurrent);
    printf(".\n");
    if (run->failures)
        printf("%d of %d fetches failed.\n", run->failures, 2 * run->count);
    else
        printf("All %d fetches succeeded.\n", 2 * run->count);
    return NULL;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: fetch [-n COUNT] [-c LIMIT] [-t TIMEOUT] [-k CAFILE] URL...\n"
            "  Fetches the URLs one after another, then concurrently, and compares the times.\n"
            "  -n COUNT    requests in all, cycling through the URLs (default: one per URL)\n"
            "  -c LIMIT    at most LIMIT requests in flight at once (default %d)\n"
            "  -t TIMEOUT  seconds allowed for each request, 0 for none (default %g)\n"
            "  -k CAFILE   for https:// URLs, trust the CAs of this PEM file (default: the system's)\n",
            DEFAULT_LIMIT, DEFAULT_TIMEOUT);
}

/* A whole positive number, or -1. */
static long parse_count(const char *text)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || value < 1 || value > 1000000)
        return -1;
    return value;
}

int main(int argc, char **argv)
{
    struct run run = {.limit = DEFAULT_LIMIT, .timeout = DEFAULT_TIMEOUT};
    long count = 0;
    int option;
    while ((option = getopt(argc, argv, "n:c:t:k:h")) != -1) {
        char *end;
        switch (option) {
        case 'n':
            if ((count = parse_count(optarg)) < 0) {
                fprintf(stderr, "fetch: -n wants a number of requests from 1 up, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'c':
            if ((run.limit = parse_count(optarg)) < 0) {
                fprintf(stderr, "fetch: -c wants a limit from 1 up, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            errno = 0;
            run.timeout = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || errno == ERANGE || !isfinite(run.timeout) || run.timeout < 0) {
                fprintf(stderr, "fetch: -t wants seconds (0 or more, such as 2.5), not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'k':
            run.ca_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    run.urls = argv + optind;
    run.url_count = argc - optind;
    run.count = count ? (int)count : run.url_count;
    /* Line by line even through a pipe: the order of the lines is the lesson. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* curl's global state is made before any thread or loop exists, as curl asks. */
    CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (init != CURLE_OK) {
        fprintf(stderr, "fetch: curl_global_init: %s\n", curl_easy_strerror(init));
        return 1;
    }
    int rc = weft_run(fetch_main, &run, NULL);
    if (rc != 0)
        fprintf(stderr, "fetch: %s\n", weft_errmsg());
    curl_global_cleanup();
    return rc != 0 || run.failures ? 1 : 0;
}
