/*
 * procpool_quit.c — Ctrl-\ beside a process pool. A terminal sends SIGQUIT to its
 * whole foreground group: the program (here with the SIGQUIT task dump on) prints its
 * dump and goes on, and the pool's workers, which get the signal too, must not die
 * mid-call. The program sends SIGQUIT to itself, the pool's zygote and its workers
 * (found through /proc/PID/task/TID/children) while a call runs, and prints "call
 * survived" when the call still returns its result.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

static weft_procpool *pool;

static int slow_double(const void *in, size_t in_len, void **out, size_t *out_len)
{
    (void)in_len;
    usleep(300 * 1000);
    int *v = malloc(sizeof *v);
    if (!v)
        return -12;
    *v = 2 * *(const int *)in;
    *out = v;
    *out_len = sizeof *v;
    return 0;
}

/* Sends SIGQUIT to every child of pid, and to their children. */
static void quit_descendants(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char children[384];
        snprintf(children, sizeof children, "/proc/%d/task/%s/children", (int)pid, e->d_name);
        FILE *f = fopen(children, "r");
        int child;
        while (f && fscanf(f, "%d", &child) == 1) {
            quit_descendants(child);
            kill(child, SIGQUIT);
        }
        if (f)
            fclose(f);
    }
    closedir(d);
}

static void *quitter(void *arg)
{
    (void)arg;
    if (weft_sleep(0.1) != 0)
        return NULL;
    quit_descendants(getpid());
    raise(SIGQUIT);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *q = weft_spawn(quitter, NULL);
    int in = 21, *out = NULL;
    size_t out_len = 0;
    int rc = weft_procpool_run(pool, slow_double, &in, sizeof in, (void **)&out, &out_len);
    if (q && weft_await(q, NULL) != 0)
        printf("the quitter failed: %s\n", weft_errmsg());
    if (rc == 0 && out && *out == 42)
        printf("call survived\n");
    else
        printf("call failed: %s\n", weft_errmsg());
    free(out);
    return NULL;
}

int main(void)
{
    pool = weft_procpool_new(1);
    if (!pool) {
        fprintf(stderr, "procpool_quit: %s\n", weft_errmsg());
        return 1;
    }
    int rc = weft_run_opts(main_task, NULL, NULL, &(weft_options){.dump_signal = 1});
    weft_procpool_free(pool);
    return rc == 0 ? 0 : 1;
}
