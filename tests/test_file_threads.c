/*
 * test_file_threads.c — files from the loops of four threads at once, on the one
 * default pool they share: each loop's tasks pread a shared file in chunks and check
 * every byte, write and read back files of their own (in place and atomically), and
 * cancel readers and writers at every moment of their calls (queued, running, on
 * their way back), checking that each call either never ran or reported exactly what
 * it did, and that close always ran. Labelled `threads`, so the ThreadSanitizer build
 * runs it: the record a pool thread fills and the caller's buffer are handed between
 * threads, and the stop flag is raised from the loop while a thread reads.
 *
 * It uses no test framework (Criterion cannot start under ThreadSanitizer, see
 * test_threads.c). It prints one line per test, then "N passed, M failed", and exits
 * non-zero on any failure. `test_file_threads NAME` runs only the test NAME.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft.h"

static int checks_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: failed: %s\n    ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            checks_failed++;                                                      \
            return;                                                               \
        }                                                                         \
    } while (0)

#define LOOPS 4
#define SHARED_SIZE (4u << 20)
#define CHUNK (64u << 10)

static char dir[64];
static unsigned char *pattern; /* the shared file's bytes */

static unsigned char byte_at(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 12));
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* ---- four loops pread one file and write their own ---------------------------- */

typedef struct loop_job {
    pthread_t thread;
    int index;
    int rc;
    char msg[256];
} loop_job;

/* Reads chunks k, k + 4, ... of the shared file through one descriptor per task. */
static void *chunk_reader(void *arg)
{
    intptr_t k = (intptr_t)arg;
    char path[128];
    snprintf(path, sizeof path, "%s/shared", dir);
    int fd = weft_file_open(path, O_RDONLY, 0);
    if (fd < 0)
        return weft_fail(fd, "%s", weft_errmsg());
    unsigned char *buf = malloc(CHUNK);
    for (size_t off = (size_t)k * CHUNK; off < SHARED_SIZE; off += 4 * CHUNK) {
        ssize_t n = weft_file_pread(fd, buf, CHUNK, (off_t)off);
        if (n != (ssize_t)CHUNK || memcmp(buf, pattern + off, CHUNK) != 0) {
            free(buf);
            (void)weft_file_close(fd);
            return weft_fail(n < 0 ? (int)n : -EIO, "chunk at %zu: %zd %s", off, n, n < 0 ? weft_errmsg() : "");
        }
    }
    free(buf);
    int rc = weft_file_close(fd);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : NULL;
}

static void *own_files(void *arg)
{
    loop_job *job = arg;
    char path[128], text[64];
    snprintf(path, sizeof path, "%s/own-%d", dir, job->index);
    for (int round = 0; round < 20; round++) {
        int len = snprintf(text, sizeof text, "loop %d round %d", job->index, round);
        weft_file_write_options o = {.atomic = round % 2 == 1};
        int rc = weft_file_write_all(path, text, (size_t)len, &o);
        if (rc)
            return weft_fail(rc, "%s", weft_errmsg());
        char *back = NULL;
        ssize_t n = weft_file_read_all(path, &back, 0);
        if (n != len || strcmp(back, text) != 0) {
            free(back);
            return weft_fail(n < 0 ? (int)n : -EIO, "read back %zd bytes", n);
        }
        free(back);
    }
    return NULL;
}

static void *loop_main(void *arg)
{
    loop_job *job = arg;
    weft_task *t[5];
    for (intptr_t k = 0; k < 4; k++)
        t[k] = weft_spawn(chunk_reader, (void *)k);
    t[4] = weft_spawn(own_files, job);
    int errs[5];
    int rc = weft_gather(t, 5, NULL, errs, WEFT_RETURN_EXCEPTIONS);
    for (int i = 0; i < 5; i++)
        if (errs[i])
            return weft_fail(errs[i], "task %d failed: %s", i, weft_strerror(errs[i]));
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : NULL;
}

static void *run_loop(void *arg)
{
    loop_job *job = arg;
    job->rc = weft_run(loop_main, job, NULL);
    if (job->rc)
        snprintf(job->msg, sizeof job->msg, "%s", weft_errmsg());
    return NULL;
}

static void four_loops_read_and_write(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/shared", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(pattern, 1, SHARED_SIZE, f) == SHARED_SIZE, "writing %s", path);
    fclose(f);
    int before = open_fds();
    loop_job jobs[LOOPS];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < LOOPS; i++) {
        jobs[i].index = i;
        CHECK(pthread_create(&jobs[i].thread, NULL, run_loop, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < LOOPS; i++)
        pthread_join(jobs[i].thread, NULL);
    for (int i = 0; i < LOOPS; i++)
        CHECK(jobs[i].rc == 0, "loop %d: %s", i, jobs[i].msg);
    CHECK(open_fds() == before, "%d descriptors before, %d after", before, open_fds());
}

/* ---- cancellations racing the pool's threads ------------------------------------- */

#define RACERS 32
#define NEVER_STARTED (-1000000)

typedef struct racer {
    int index;
    int fd;                 /* a pipe's read end (odd racers) or the shared file */
    int wfd;                /* the pipe's write end */
    ssize_t got;            /* the call's result */
    int closed;             /* weft_file_close's result */
    unsigned char buf[256];
} racer;

static void *race_one(void *arg)
{
    racer *r = arg;
    if (r->index % 4 == 0)
        r->got = weft_file_read(r->fd, r->buf, sizeof r->buf);
    else if (r->index % 4 == 1)
        r->got = weft_file_pread(r->fd, r->buf, sizeof r->buf, 1000 * r->index);
    else if (r->index % 4 == 2)
        r->got = weft_file_write(r->wfd, r->buf, sizeof r->buf);
    else {
        char *data = NULL;
        r->got = weft_file_read_all("/proc/self/stat", &data, 0);
        free(data);
    }
    if (r->index % 4 != 3)
        r->closed = weft_file_close(r->index % 4 == 2 ? r->wfd : r->fd); /* runs even when cancelled */
    return NULL;
}

typedef struct race_loop {
    pthread_t thread;
    int rc;
    int bad;                 /* racers whose outcome broke a rule */
    char what[200];
} race_loop;

static void *race_main(void *arg)
{
    race_loop *rl = arg;
    static _Thread_local racer racers[RACERS];
    weft_task *t[RACERS];
    char path[128];
    snprintf(path, sizeof path, "%s/shared", dir);
    for (int i = 0; i < RACERS; i++) {
        racer *r = &racers[i];
        memset(r, 0, sizeof *r);
        r->index = i;
        r->fd = r->wfd = -1;
        r->got = NEVER_STARTED; /* a task cancelled before its first run never runs */
        if (i % 4 == 0 || i % 4 == 2) {
            int p[2];
            if (pipe(p) != 0)
                return weft_fail(-errno, "pipe");
            r->fd = p[0];
            r->wfd = p[1];
            if (i % 8 == 0 && write(p[1], "ready", 5) != 5) /* half the reads find bytes at once */
                return weft_fail(-EIO, "write");
        } else if (i % 4 == 1) {
            r->fd = open(path, O_RDONLY | O_CLOEXEC);
        }
        t[i] = weft_spawn(race_one, r);
    }
    /* Cancel them at staggered moments: before their call reaches the pool, while it
     * is queued or running, while its completion is on its way back. */
    for (int i = 0; i < RACERS; i++) {
        if (i % 3)
            weft_sleep(0.0002 * (i % 5));
        else
            weft_yield();
        weft_cancel(t[(i * 13) % RACERS], NULL);
    }
    /* Unblock the reads still waiting on their pipes. */
    for (int i = 0; i < RACERS; i += 4)
        if (write(racers[i].wfd, "late!", 5) < 0) {
        }
    weft_gather(t, RACERS, NULL, NULL, WEFT_RETURN_EXCEPTIONS);
    for (int i = 0; i < RACERS; i++) {
        racer *r = &racers[i];
        bool ok;
        if (r->got == NEVER_STARTED) {
            ok = true; /* its descriptors are the test's to close */
            if (r->index % 4 == 1)
                close(r->fd);
            else if (r->index % 4 == 0)
                close(r->fd);
            else if (r->index % 4 == 2)
                close(r->wfd);
        } else if (r->got == -ECANCELED)
            ok = true; /* never ran */
        else if (i % 4 == 0)
            ok = (r->got == 5 || r->got == 10) && (memcmp(r->buf, "ready", 5) == 0 || memcmp(r->buf, "late!", 5) == 0);
        else if (i % 4 == 1)
            ok = r->got == 256 && memcmp(r->buf, pattern + 1000 * i, 256) == 0;
        else if (i % 4 == 2)
            ok = r->got == 256;
        else
            ok = r->got > 0;
        if (r->closed != 0 || !ok) {
            if (!rl->bad)
                snprintf(rl->what, sizeof rl->what, "racer %d: got %zd, close %d", i, r->got, r->closed);
            rl->bad++;
        }
        if (i % 4 == 0)
            close(r->wfd);
        if (i % 4 == 2)
            close(r->fd);
    }
    return NULL;
}

static void *run_race(void *arg)
{
    race_loop *rl = arg;
    rl->rc = weft_run(race_main, rl, NULL);
    return NULL;
}

static void cancellations_race_the_pool(void)
{
    int before = open_fds();
    for (int round = 0; round < 5; round++) {
        race_loop loops[LOOPS];
        memset(loops, 0, sizeof loops);
        for (int i = 0; i < LOOPS; i++)
            CHECK(pthread_create(&loops[i].thread, NULL, run_race, &loops[i]) == 0, "pthread_create");
        for (int i = 0; i < LOOPS; i++)
            pthread_join(loops[i].thread, NULL);
        for (int i = 0; i < LOOPS; i++) {
            CHECK(loops[i].rc == 0, "round %d loop %d: weft_run gave %d", round, i, loops[i].rc);
            CHECK(loops[i].bad == 0, "round %d loop %d: %d racers broke a rule, first %s", round, i, loops[i].bad,
                  loops[i].what);
        }
    }
    CHECK(open_fds() == before, "%d descriptors before, %d after: a close did not run", before, open_fds());
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"four_loops_read_and_write", four_loops_read_and_write},
    {"cancellations_race_the_pool", cancellations_race_the_pool},
};

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a racer may close a pipe's read end before the test writes to it */
    strcpy(dir, "/tmp/weft-test-file-threads-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    pattern = malloc(SHARED_SIZE);
    for (size_t i = 0; i < SHARED_SIZE; i++)
        pattern[i] = byte_at(i);
    char path[320];
    snprintf(path, sizeof path, "%s/shared", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(pattern, 1, SHARED_SIZE, f) != SHARED_SIZE) {
        perror(path);
        return 1;
    }
    fclose(f);

    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        checks_failed = 0;
        tests[i].fn();
        printf("%s file_threads::%s\n", checks_failed ? "FAIL" : "PASS", tests[i].name);
        fflush(stdout);
        if (checks_failed)
            failed++;
        else
            passed++;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(pattern);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
