/*
 * test_process_threads.c — subprocesses from the loops of several threads at once:
 * four threads each run a loop that starts children in two tasks at a time (cat
 * fed through communicate, and shells that exit with a status of their own), so
 * spawns, pidfd watchers and reaping of different loops interleave. Every child's
 * output and status must be its own, and when the threads are done no child is
 * left (zombie or not) and no descriptor is. Labelled `threads` so the
 * ThreadSanitizer build runs it; no test framework (Criterion cannot start under
 * ThreadSanitizer).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define THREADS 4
#define ROUNDS 40

static atomic_int ok, failures;

static void fail(int me, const char *what)
{
    fprintf(stderr, "loop %d: %s: %s\n", me, what, weft_errmsg());
    atomic_fetch_add(&failures, 1);
}

static void *cat_rounds(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int round = 0; round < ROUNDS; round++) {
        weft_process *p = weft_create_subprocess_exec(
            (const char *[]){"cat", NULL}, &(weft_process_options){.in = WEFT_STDIO_PIPE, .out = WEFT_STDIO_PIPE});
        if (!p) {
            fail(me, "cat");
            continue;
        }
        char text[64], *out = NULL;
        size_t len = (size_t)snprintf(text, sizeof text, "loop %d round %d\n", me, round), out_len = 0;
        int rc = -1;
        if (weft_process_communicate(p, text, len, &out, &out_len, NULL, NULL) != 0)
            fail(me, "communicate");
        else if (out_len != len || memcmp(out, text, len) != 0 || weft_process_returncode(p, &rc) != 1 || rc != 0)
            fail(me, "cat's output");
        else
            atomic_fetch_add(&ok, 1);
        free(out);
        weft_process_free(p);
    }
    return NULL;
}

static void *exit_rounds(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int round = 0; round < ROUNDS; round++) {
        char cmd[32];
        int want = (me * ROUNDS + round) % 200;
        snprintf(cmd, sizeof cmd, "exit %d", want);
        weft_process *p = weft_create_subprocess_shell(cmd, NULL);
        int rc = -1;
        if (!p) {
            fail(me, "sh");
            continue;
        }
        if (weft_process_wait(p, &rc) != 0 || rc != want)
            fail(me, "sh's status");
        else
            atomic_fetch_add(&ok, 1);
        weft_process_free(p);
    }
    return NULL;
}

static void *loop_main(void *arg)
{
    weft_task *t[2] = {weft_spawn(cat_rounds, arg), weft_spawn(exit_rounds, arg)};
    if (weft_gather(t, 2, NULL, NULL, 0) != 0)
        fail((int)(intptr_t)arg, "gather");
    return NULL;
}

static void *thread_main(void *arg)
{
    if (weft_run(loop_main, arg, NULL) != 0)
        fail((int)(intptr_t)arg, "weft_run");
    return NULL;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int count_children(void)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = e->d_name[0] >= '0' && e->d_name[0] <= '9' ? open(path, O_RDONLY) : -1;
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[len > 0 ? len : 0] = '\0';
        char *paren = strrchr(buf, ')');
        char state;
        int ppid;
        if (paren && sscanf(paren + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid())
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    int fds = count_fds();
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) != 0)
            return 2;
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    int children = count_children(), fds_after = count_fds();
    printf("test_process_threads: %d children as expected, %d failures, %d children left, %d descriptors left\n",
           atomic_load(&ok), atomic_load(&failures), children, fds_after - fds);
    return atomic_load(&ok) == THREADS * ROUNDS * 2 && atomic_load(&failures) == 0 && children == 0 &&
                   fds_after == fds
               ? 0
               : 1;
}
