/*
 * fs_scenario.c — the files layer (src/fs) for the fault sweep: every file call,
 * run once per injection point with that allocation or system call failing (wrap.c
 * built with WEFT_FAULT_FS). Each call's result is looked at and every descriptor is
 * closed on every path; the scenario then checks, itself, that no descriptor is left
 * open and that no atomic write left its new file behind, and exits 1 if so. One
 * task makes the calls one after another on a pool of one thread, so the system
 * calls come in the same order on every run although a pool thread makes them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft.h"

static char dir[64];
static char path_a[128], path_b[128], path_c[128];
static char data[100000];

static void whole_files(void)
{
    if (weft_file_write_all(path_a, data, sizeof data, NULL) == 0) {
        char *back = NULL;
        ssize_t n = weft_file_read_all(path_a, &back, 0);
        if (n >= 0 && ((size_t)n != sizeof data || memcmp(back, data, sizeof data) != 0)) {
            fprintf(stderr, "fs_scenario: read_all gave %zd bytes, not what was written\n", n);
            exit(1);
        }
        free(back);
    }
    weft_file_write_options atomic = {.atomic = true, .mode = 0600};
    (void)weft_file_write_all(path_b, data, 5000, &atomic);
    (void)weft_file_write_all(path_b, data, 7000, &atomic); /* over the first */
    char *back = NULL;
    if (weft_file_read_all(path_b, &back, 100) >= 0) /* over the limit */
        exit(1);
    if (weft_file_read_all("/proc/self/stat", &back, 0) >= 0) /* stat's size 0 */
        free(back);
    (void)weft_file_write_all(path_c, "sync", 4, &(weft_file_write_options){.sync = true});
}

static void descriptors(void)
{
    int fd = weft_file_open(path_c, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        return;
    char buf[64];
    struct stat st;
    (void)weft_file_write(fd, "hello, world", 12);
    (void)weft_file_pwrite(fd, "HELLO", 5, 0);
    (void)weft_file_pread(fd, buf, sizeof buf, 0); /* from the page cache */
    (void)weft_file_pread(fd, buf, sizeof buf, 100000); /* at the end */
    static char big[200000];
    int whole = weft_file_open(path_a, O_RDONLY, 0);
    if (whole >= 0) {
        (void)weft_file_pread(whole, big, sizeof big, 0); /* too big for the cache path: a thread */
        (void)weft_file_close(whole);
    }
    (void)weft_file_read(fd, buf, sizeof buf);
    (void)weft_file_fsync(fd);
    (void)weft_file_fdatasync(fd);
    (void)weft_file_fstat(fd, &st);
    (void)weft_file_stat(path_c, &st);
    (void)weft_file_close(fd); /* closed whatever it says */
    (void)weft_file_open(path_c, O_RDONLY | O_DIRECTORY, 0); /* -ENOTDIR, opens nothing */
}

static void *cancelled(void *arg)
{
    int fd = *(int *)arg;
    weft_cancel(weft_current(), NULL);
    (void)weft_file_write_all(path_a, "never", 5, NULL); /* never runs */
    (void)weft_file_close(fd);                           /* runs all the same */
    return NULL;
}

static void *fs_main(void *arg)
{
    (void)arg;
    whole_files();
    descriptors();
    static int fd;
    fd = weft_file_open(path_a, O_RDONLY, 0);
    if (fd >= 0) {
        weft_task *t = weft_spawn(cancelled, &fd);
        if (t)
            (void)weft_await(t, NULL);
        else
            (void)weft_file_close(fd);
    }
    return NULL;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    strcpy(dir, "/tmp/weft-fault-fs-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(path_a, sizeof path_a, "%s/a", dir);
    snprintf(path_b, sizeof path_b, "%s/b", dir);
    snprintf(path_c, sizeof path_c, "%s/c", dir);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 13);
    /* One pool thread: how many threads a pool starts depends on whether its last
     * worker is back asleep when the next call comes, which would shift the points. */
    weft_set_default_pool_size(1);
    int before = count_fds();
    int rc = weft_run(fs_main, NULL, NULL);
    (void)rc; /* any outcome weft reports is fine */
    int after = count_fds();
    int status = 0;
    if (after != before) {
        fprintf(stderr, "fs_scenario: %d descriptors open before, %d after\n", before, after);
        status = 1;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strstr(e->d_name, ".weft-")) {
            fprintf(stderr, "fs_scenario: an atomic write left %s behind\n", e->d_name);
            status = 1;
        }
        if (e->d_name[0] != '.' || strstr(e->d_name, ".weft-")) {
            char p[400];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
    return status;
}
