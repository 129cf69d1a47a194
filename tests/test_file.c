/*
 * test_file.c — files off the loop (weft/file.h) as a user sees them: round trips
 * through open/write/read/close, whole files (large, /proc, empty, over the limit,
 * written in place and replaced atomically), pread/pwrite at offsets, stat/fstat,
 * errors and their messages (the path named), the loop running other tasks while a
 * call blocks in a thread, and cancellation: a call not started never runs, one
 * running completes and reports what it did (a read's bytes, a write's bytes, an
 * open's descriptor), read_all stops, close always runs; buffers on a compact task's
 * stack; and no descriptor leaks.
 *
 * Pool threads run in real time, so these tests do. To cancel a call "while it runs"
 * the test waits until a pool thread is inside the blocking system call, as
 * /proc/self/task/<tid>/syscall shows (a pipe or FIFO keeps it there until the test
 * feeds it), so the check is exact rather than a guess made with a sleep.
 */
#define _DEFAULT_SOURCE /* mincore */
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

TestSuite(file, .timeout = 30);

/* ---- helpers ---------------------------------------------------------------- */

static char dir[64];

/* A fresh directory for the test, and paths in it. */
static void make_dir(void)
{
    strcpy(dir, "/tmp/weft-test-file-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static char *in_dir(const char *name)
{
    static char paths[8][128];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static size_t entries_in_dir(void)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0; /* hidden ones too */
    if (d)
        closedir(d);
    return n;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Whether some thread of this process is blocked in system call nr with first
 * argument fd (fd < 0: any). -1 when /proc cannot tell. */
static int thread_in_syscall(long nr, long fd)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int found = 0, readable = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[300], line[256];
        snprintf(p, sizeof p, "/proc/self/task/%s/syscall", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        if (fgets(line, sizeof line, f)) {
            readable = 1;
            long n;
            unsigned long a0;
            if (sscanf(line, "%ld 0x%lx", &n, &a0) == 2 && n == nr && (fd < 0 || (long)a0 == fd))
                found = 1;
        }
        fclose(f);
    }
    closedir(d);
    return found ? 1 : readable ? 0 : -1;
}

/* From a task: waits, letting the loop run, until a pool thread is inside system
 * call nr on fd; where /proc cannot tell, gives it 0.3 s. */
static void until_thread_in(long nr, long fd)
{
    for (int i = 0; i < 5000; i++) {
        int in = thread_in_syscall(nr, fd);
        if (in == 1)
            return;
        if (in < 0) {
            weft_sleep(0.3);
            return;
        }
        weft_sleep(0.001);
    }
    cr_expect(false, "no pool thread entered system call %ld on fd %ld within 5 s", nr, fd);
}

/* A blocking call that keeps a pool thread busy until the test opens its gate. */
typedef struct gate {
    atomic_int started, open;
} gate;

static void *wait_at_gate(void *arg)
{
    gate *g = arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open))
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    return NULL;
}

static void *occupy(void *arg)
{
    return (void *)(intptr_t)weft_to_thread(wait_at_gate, arg, NULL);
}

static void write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

/* ---- round trips --------------------------------------------------------------- */

static void *round_trip_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("notes.txt");
    int fd = weft_file_open(p, O_WRONLY | O_CREAT | O_EXCL, 0640);
    cr_expect_geq(fd, 0, "%s", weft_errmsg());
    cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC is always added");
    cr_expect_eq(weft_file_write(fd, "hello, ", 7), 7);
    cr_expect_eq(weft_file_write(fd, "world\n", 6), 6);
    cr_expect_eq(weft_file_fsync(fd), 0);
    cr_expect_eq(weft_file_fdatasync(fd), 0);
    cr_expect_eq(weft_file_close(fd), 0);
    cr_expect_eq(fcntl(fd, F_GETFD), -1, "the descriptor is closed");

    fd = weft_file_open(p, O_RDONLY, 0);
    char buf[64] = {0};
    cr_expect_eq(weft_file_read(fd, buf, 5), 5);
    cr_expect_eq(weft_file_read(fd, buf + 5, sizeof buf - 5), 8, "the file position moved by 5");
    cr_expect_str_eq(buf, "hello, world\n");
    cr_expect_eq(weft_file_read(fd, buf, sizeof buf), 0, "end of file");
    cr_expect_eq(weft_file_read(fd, buf, 0), 0);
    cr_expect_eq(weft_file_close(fd), 0);

    struct stat st;
    cr_expect_eq(weft_file_stat(p, &st), 0);
    cr_expect_eq(st.st_size, 13);
    cr_expect_eq(st.st_mode & 0777, 0640);
    return NULL;
}

Test(file, open_write_read_close_round_trip)
{
    make_dir();
    umask(022);
    cr_assert_eq(weft_run(round_trip_main, NULL, NULL), 0);
    remove_dir();
}

static void *whole_files_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("whole");
    cr_expect_eq(weft_file_write_all(p, "first", 5, NULL), 0, "%s", weft_errmsg());
    char *data = NULL;
    cr_expect_eq(weft_file_read_all(p, &data, 0), 5);
    cr_expect_str_eq(data, "first", "NUL-terminated");
    free(data);
    /* In place: truncated and rewritten, shorter. */
    cr_expect_eq(weft_file_write_all(p, "2nd", 3, &(weft_file_write_options){.sync = true}), 0);
    cr_expect_eq(weft_file_read_all(p, &data, 0), 3);
    cr_expect_str_eq(data, "2nd");
    free(data);
    /* Empty: a buffer holding "" all the same. */
    cr_expect_eq(weft_file_write_all(p, NULL, 0, NULL), 0);
    cr_expect_eq(weft_file_read_all(p, &data, 0), 0);
    cr_expect_not_null(data);
    cr_expect_str_eq(data, "");
    free(data);
    return NULL;
}

Test(file, write_all_then_read_all)
{
    make_dir();
    cr_assert_eq(weft_run(whole_files_main, NULL, NULL), 0);
    remove_dir();
}

#define LARGE (8u << 20)

static void *read_all_large_main(void *arg)
{
    const unsigned char *expected = arg;
    char *data = NULL;
    ssize_t n = weft_file_read_all(in_dir("large"), &data, 0);
    cr_expect_eq(n, (ssize_t)LARGE, "%s", weft_errmsg());
    cr_expect(data && memcmp(data, expected, LARGE) == 0, "every byte as written");
    cr_expect(data && data[LARGE] == '\0');
    free(data);
    return NULL;
}

Test(file, read_all_of_a_large_file)
{
    make_dir();
    unsigned char *pattern = malloc(LARGE);
    for (size_t i = 0; i < LARGE; i++)
        pattern[i] = (unsigned char)(i * 7 + i / 4096);
    write_file(in_dir("large"), pattern, LARGE);
    cr_assert_eq(weft_run(read_all_large_main, pattern, NULL), 0);
    free(pattern);
    remove_dir();
}

static void *read_all_proc_main(void *arg)
{
    (void)arg;
    struct stat st;
    cr_expect_eq(weft_file_stat("/proc/self/status", &st), 0);
    cr_expect_eq(st.st_size, 0, "/proc says its files are empty");
    char *data = NULL;
    ssize_t n = weft_file_read_all("/proc/self/status", &data, 0);
    cr_expect_gt(n, 100, "read until end of file, not stat's size: %zd", n);
    cr_expect(data && strncmp(data, "Name:", 5) == 0);
    cr_expect(data && strstr(data, "\nVmRSS:") != NULL, "the whole file");
    cr_expect(data && strlen(data) == (size_t)n);
    free(data);
    /* Longer than the first buffer (8 KiB), still from a size-0 file. */
    n = weft_file_read_all("/proc/self/maps", &data, 0);
    cr_expect_gt(n, 0);
    cr_expect(data && strlen(data) == (size_t)n);
    free(data);
    return NULL;
}

Test(file, read_all_of_a_proc_file)
{
    cr_assert_eq(weft_run(read_all_proc_main, NULL, NULL), 0);
}

static void *read_all_limit_main(void *arg)
{
    (void)arg;
    char *data = (char *)1;
    ssize_t n = weft_file_read_all("/dev/zero", &data, 100000);
    cr_expect_eq(n, -EFBIG);
    cr_expect_null(data);
    cr_expect(strstr(weft_errmsg(), "\"/dev/zero\" has more than the limit of 100000 bytes") != NULL, "%s",
              weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "larger limit") != NULL, "says how to raise it: %s", weft_errmsg());
    /* A regular file: exactly the limit is fine, one byte more is not. */
    const char *p = in_dir("ten");
    cr_expect_eq(weft_file_write_all(p, "0123456789", 10, NULL), 0);
    cr_expect_eq(weft_file_read_all(p, &data, 10), 10);
    free(data);
    cr_expect_eq(weft_file_read_all(p, &data, 9), -EFBIG);
    cr_expect_null(data);
    /* The default limit (0) reads it. */
    cr_expect_eq(weft_file_read_all(p, &data, 0), 10);
    free(data);
    return NULL;
}

Test(file, read_all_refuses_more_than_its_limit)
{
    make_dir();
    cr_assert_eq(weft_run(read_all_limit_main, NULL, NULL), 0);
    remove_dir();
}

static void *atomic_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("config");
    weft_file_write_options atomic = {.atomic = true, .mode = 0600};
    cr_expect_eq(weft_file_write_all(p, "v1\n", 3, &atomic), 0, "%s", weft_errmsg());
    struct stat st1, st2;
    cr_expect_eq(weft_file_stat(p, &st1), 0);
    cr_expect_eq(st1.st_mode & 0777, 0600);
    cr_expect_eq(weft_file_write_all(p, "version 2\n", 10, &atomic), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_file_stat(p, &st2), 0);
    cr_expect_neq(st1.st_ino, st2.st_ino, "a new file was renamed over the old one");
    char *data = NULL;
    cr_expect_eq(weft_file_read_all(p, &data, 0), 10);
    cr_expect_str_eq(data, "version 2\n");
    free(data);
    cr_expect_eq(entries_in_dir(), 1, "no new file is left beside it");

    /* A rename that fails (the target is a directory that is not empty): the
     * target is as it was and the new file is removed. */
    const char *d = in_dir("a-dir");
    cr_expect_eq(mkdir(d, 0755), 0);
    char inner[160];
    snprintf(inner, sizeof inner, "%s/keep", d);
    write_file(inner, "x", 1);
    int rc = weft_file_write_all(d, "new", 3, &atomic);
    cr_expect(rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST, "%s", weft_errname(rc));
    cr_expect(strstr(weft_errmsg(), d) != NULL && strstr(weft_errmsg(), "is as it was") != NULL, "%s",
              weft_errmsg());
    cr_expect(exists(inner));
    cr_expect_eq(entries_in_dir(), 2, "the new file was removed");
    unlink(inner);

    /* A missing directory. */
    rc = weft_file_write_all("/nonexistent-weft-dir/x", "x", 1, &atomic);
    cr_expect_eq(rc, -ENOENT);
    cr_expect(strstr(weft_errmsg(), "\"/nonexistent-weft-dir/x\"") != NULL, "%s", weft_errmsg());
    return NULL;
}

Test(file, write_all_atomic_replaces_or_leaves_alone)
{
    make_dir();
    cr_assert_eq(weft_run(atomic_main, NULL, NULL), 0);
    remove_dir();
}

static void *offsets_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("sparse");
    int fd = weft_file_open(p, O_RDWR | O_CREAT, 0644);
    cr_expect_geq(fd, 0);
    cr_expect_eq(weft_file_pwrite(fd, "tail", 4, 1000), 4);
    cr_expect_eq(weft_file_pwrite(fd, "head", 4, 0), 4);
    cr_expect_eq(weft_file_pwrite(fd, "mid", 3, 500), 3);
    struct stat st;
    cr_expect_eq(weft_file_fstat(fd, &st), 0);
    cr_expect_eq(st.st_size, 1004);
    char buf[8] = {0};
    cr_expect_eq(weft_file_pread(fd, buf, 3, 500), 3);
    cr_expect_str_eq(buf, "mid");
    cr_expect_eq(weft_file_pread(fd, buf, 8, 1000), 4, "short at the end");
    cr_expect_eq(memcmp(buf, "tail", 4), 0);
    cr_expect_eq(weft_file_pread(fd, buf, 8, 1004), 0, "at the end");
    cr_expect_eq(weft_file_pread(fd, buf, 8, 5000), 0, "past the end");
    cr_expect_eq(weft_file_pread(fd, buf, 2, 4), 2);
    cr_expect_eq(buf[0], 0, "a hole reads as zeros");
    /* The file position was not used or moved. */
    cr_expect_eq(weft_file_read(fd, buf, 4), 4);
    cr_expect_eq(memcmp(buf, "head", 4), 0);
    cr_expect_eq(weft_file_pread(fd, buf, 1, -1), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "negative") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_file_pwrite(fd, buf, 1, -5), -EINVAL);
    cr_expect_eq(weft_file_close(fd), 0);
    int fds[2];
    cr_expect_eq(pipe(fds), 0);
    cr_expect_eq(weft_file_pread(fds[0], buf, 1, 0), -ESPIPE);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

Test(file, pread_and_pwrite_at_offsets)
{
    make_dir();
    cr_assert_eq(weft_run(offsets_main, NULL, NULL), 0);
    remove_dir();
}

static void *stat_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("s");
    write_file(p, "12345", 5);
    chmod(p, 0604);
    struct stat st, fst;
    cr_expect_eq(weft_file_stat(p, &st), 0);
    cr_expect_eq(st.st_size, 5);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0604);
    int fd = weft_file_open(p, O_RDONLY, 0);
    cr_expect_eq(weft_file_fstat(fd, &fst), 0);
    cr_expect_eq(fst.st_ino, st.st_ino);
    cr_expect_eq(weft_file_close(fd), 0);
    cr_expect_eq(weft_file_stat(dir, &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    return NULL;
}

Test(file, stat_and_fstat)
{
    make_dir();
    cr_assert_eq(weft_run(stat_main, NULL, NULL), 0);
    remove_dir();
}

/* ---- preads served from the page cache --------------------------------------- */


static bool bumped;

static void *bump(void *arg)
{
    (void)arg;
    bumped = true;
    return NULL;
}

static void *cached_main(void *arg)
{
    const char *p = arg;
    int fd = weft_file_open(p, O_RDONLY, 0);
    /* The pool's one thread is kept busy: a pread that needed it would wait. */
    static gate g;
    weft_task *busy = weft_spawn(occupy, &g);
    while (!atomic_load(&g.started))
        weft_sleep(0.001);
    weft_timeout *to = weft_timeout_enter(2.0);
    static char buf[8192];
    for (int i = 0; i < 20; i++) {
        bumped = false;
        weft_detach(weft_spawn(bump, NULL));
        cr_expect_eq(weft_file_pread(fd, buf, sizeof buf, 4096 * i), (ssize_t)sizeof buf, "%s", weft_errmsg());
        cr_expect(bumped, "the pread is still a suspension point");
        cr_expect_eq(buf[0], (char)(4096 * i * 3));
    }
    cr_expect_eq(weft_file_pread(fd, buf, sizeof buf, 1 << 20), 0, "past the end");
    cr_expect_eq(weft_timeout_exit(to, 0), 0, "no pread waited for the busy pool");
    atomic_store(&g.open, 1);
    cr_expect_eq(weft_await(busy, NULL), 0);
    /* A pread of more than 128 KiB goes to a thread all the same. */
    static char big[256 << 10];
    cr_expect_eq(weft_file_pread(fd, big, sizeof big, 0), (ssize_t)sizeof big);
    cr_expect_eq(weft_file_close(fd), 0);
    return NULL;
}

Test(file, a_cached_pread_is_copied_on_the_loop_and_still_yields)
{
    make_dir();
    static char data[512 << 10];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 3);
    write_file(in_dir("cached"), data, sizeof data);
    cr_assert_eq(weft_set_default_pool_size(1), 0);
    cr_assert_eq(weft_run(cached_main, in_dir("cached"), NULL), 0);
    remove_dir();
}

static void *partly_cached_main(void *arg)
{
    const char *p = arg;
    int fd = weft_file_open(p, O_RDONLY, 0);
    static char buf[100 << 10];
    /* Bytes 20 KiB..64 KiB come from the cache, 64 KiB..120 KiB from a thread. */
    cr_expect_eq(weft_file_pread(fd, buf, sizeof buf, 20 << 10), (ssize_t)sizeof buf);
    bool same = true;
    for (size_t i = 0; i < sizeof buf; i++)
        same = same && buf[i] == (char)((i + (20 << 10)) * 5 + (i + (20 << 10)) / 4093);
    cr_expect(same, "every byte, from both parts, in place");
    cr_expect_eq(weft_file_close(fd), 0);
    return NULL;
}

Test(file, a_partly_cached_pread_reads_the_rest_in_a_thread)
{
    make_dir();
    static char data[128 << 10];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 5 + i / 4093);
    const char *p = in_dir("partly");
    /* Written 4 KiB at a time: the page cache then holds it in small folios, of
     * which the second half can be dropped alone. */
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t o = 0; o < sizeof data; o += 4096)
        cr_assert_eq(write(fd, data + o, 4096), 4096);
    close(fd);
    fd = open(p, O_RDONLY);
    fdatasync(fd); /* clean pages can be dropped */
    posix_fadvise(fd, 64 << 10, 64 << 10, POSIX_FADV_DONTNEED);
    void *map = mmap(NULL, sizeof data, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char resident[32];
    cr_assert_eq(mincore(map, sizeof data, resident), 0);
    munmap(map, sizeof data);
    close(fd);
    if (!resident[0] || resident[31]) {
        remove_dir();
        cr_skip_test("the page cache here did not drop the second half (tmpfs?)");
    }
    cr_assert_eq(weft_run(partly_cached_main, (void *)p, NULL), 0);
    remove_dir();
}

/* ---- errors and their messages ---------------------------------------------- */

static void *errors_main(void *arg)
{
    (void)arg;
    const char *missing = in_dir("no-such-file");
    char expect[256];

    cr_expect_eq(weft_file_open(missing, O_RDONLY, 0), -ENOENT);
    snprintf(expect, sizeof expect, "weft_file_open: cannot open \"%s\": No such file or directory", missing);
    cr_expect_str_eq(weft_errmsg(), expect);
    char *data = (char *)1;
    cr_expect_eq(weft_file_read_all(missing, &data, 0), -ENOENT);
    cr_expect_null(data);
    cr_expect(strstr(weft_errmsg(), missing) != NULL, "%s", weft_errmsg());
    struct stat st;
    cr_expect_eq(weft_file_stat(missing, &st), -ENOENT);
    cr_expect(strstr(weft_errmsg(), missing) != NULL, "%s", weft_errmsg());

    /* A directory. */
    cr_expect_eq(weft_file_open(dir, O_WRONLY, 0), -EISDIR);
    cr_expect(strstr(weft_errmsg(), dir) != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_file_read_all(dir, &data, 0), -EISDIR);
    snprintf(expect, sizeof expect, "weft_file_read_all: cannot read \"%s\": Is a directory", dir);
    cr_expect_str_eq(weft_errmsg(), expect);
    int dfd = weft_file_open(dir, O_RDONLY, 0);
    char buf[16];
    cr_expect_eq(weft_file_read(dfd, buf, sizeof buf), -EISDIR);
    snprintf(expect, sizeof expect, "weft_file_read: fd %d (%s): Is a directory", dfd, dir);
    cr_expect_str_eq(weft_errmsg(), expect, "the descriptor and its path");
    cr_expect_eq(weft_file_write_all(dir, "x", 1, NULL), -EISDIR);
    cr_expect(strstr(weft_errmsg(), dir) != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_file_close(dfd), 0);

    /* Bad descriptors. */
    cr_expect_eq(weft_file_read(-1, buf, 1), -EBADF);
    cr_expect_str_eq(weft_errmsg(), "weft_file_read: fd -1 is not a descriptor (did weft_file_open fail? "
                                    "weft_errmsg() said why)");
    cr_expect_eq(weft_file_write(-3, buf, 1), -EBADF);
    cr_expect_eq(weft_file_fsync(-1), -EBADF);
    cr_expect_eq(weft_file_fstat(-1, &st), -EBADF);
    cr_expect_eq(weft_file_close(-1), -EBADF);
    cr_expect_eq(weft_file_pread(dfd, buf, 1, 0), -EBADF, "closed above");
    snprintf(expect, sizeof expect, "weft_file_pread: fd %d: Bad file descriptor", dfd);
    cr_expect_str_eq(weft_errmsg(), expect);
    cr_expect_eq(weft_file_close(dfd), -EBADF);

    /* NULL arguments. */
    cr_expect_eq(weft_file_read(0, NULL, 1), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "NULL") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_file_write(1, NULL, 4), -EINVAL);
    cr_expect_eq(weft_file_open(NULL, O_RDONLY, 0), -EINVAL);
    cr_expect_eq(weft_file_stat(missing, NULL), -EINVAL);
    cr_expect_eq(weft_file_read_all(NULL, &data, 0), -EINVAL);
    cr_expect_eq(weft_file_read_all(missing, NULL, 0), -EINVAL);
    cr_expect_eq(weft_file_write_all(missing, NULL, 1, NULL), -EINVAL);
    cr_expect(!exists(missing));

    /* A write that fails says how much it wrote. */
    int full = weft_file_open("/dev/full", O_WRONLY, 0);
    cr_expect_eq(weft_file_write(full, "abc", 3), -ENOSPC);
    snprintf(expect, sizeof expect, "weft_file_write: fd %d (/dev/full): No space left on device (0 of 3 bytes "
                                    "were written before)", full);
    cr_expect_str_eq(weft_errmsg(), expect);
    cr_expect_eq(weft_file_close(full), 0);
    cr_expect_eq(weft_file_write_all("/dev/full", "abc", 3, NULL), -ENOSPC);
    cr_expect_str_eq(weft_errmsg(), "weft_file_write_all: cannot write \"/dev/full\": No space left on device "
                                    "(0 of 3 bytes written)");
    return NULL;
}

Test(file, errors_name_the_path)
{
    make_dir();
    cr_assert_eq(weft_run(errors_main, NULL, NULL), 0);
    remove_dir();
}

static void *short_write_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("limited");
    static char data[10000];
    memset(data, 'z', sizeof data);
    int fd = weft_file_open(p, O_WRONLY | O_CREAT, 0644);
    /* The first write(2) stops short at the size limit, the next fails. */
    cr_expect_eq(weft_file_write(fd, data, sizeof data), -EFBIG);
    char expect[256];
    snprintf(expect, sizeof expect, "weft_file_write: fd %d (%s): File too large (4096 of 10000 bytes were written "
                                    "before)", fd, p);
    cr_expect_str_eq(weft_errmsg(), expect);
    cr_expect_eq(weft_file_pwrite(fd, data, sizeof data, 1000), -EFBIG);
    cr_expect(strstr(weft_errmsg(), "(3096 of 10000 bytes were written before)") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_file_close(fd), 0);
    cr_expect_eq(weft_file_write_all(p, data, sizeof data, NULL), -EFBIG);
    snprintf(expect, sizeof expect, "weft_file_write_all: cannot write \"%s\": File too large (4096 of 10000 bytes "
                                    "written)", p);
    cr_expect_str_eq(weft_errmsg(), expect);
    return NULL;
}

Test(file, a_write_stopped_short_is_written_again_and_its_failure_counts_the_bytes)
{
    make_dir();
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &(struct rlimit){4096, 4096}), 0);
    cr_assert_eq(weft_run(short_write_main, NULL, NULL), 0);
    remove_dir();
}

Test(file, outside_a_task)
{
    char buf[4];
    cr_expect_eq(weft_file_read(0, buf, 1), WEFT_ENOTINLOOP);
    cr_expect(strstr(weft_errmsg(), "weft_file_read must be called from a task") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_file_open("/dev/null", O_RDONLY, 0), WEFT_ENOTINLOOP);
    char *data = (char *)1;
    cr_expect_eq(weft_file_read_all("/dev/null", &data, 0), WEFT_ENOTINLOOP);
    cr_expect_null(data);
    /* close still closes: it never leaves a descriptor open. */
    int fd = open("/dev/null", O_RDONLY);
    cr_expect_eq(weft_file_close(fd), WEFT_ENOTINLOOP);
    cr_expect(strstr(weft_errmsg(), "was closed") != NULL, "%s", weft_errmsg());
    cr_expect_eq(fcntl(fd, F_GETFD), -1);
}

/* ---- off the loop --------------------------------------------------------------- */

static atomic_int ticks;

static void *ticker(void *arg)
{
    (void)arg;
    for (;;) {
        if (weft_sleep(0.001) != 0)
            return NULL;
        atomic_fetch_add(&ticks, 1);
    }
}

static void *fifo_reader(void *arg)
{
    const char *fifo = arg;
    int fd = weft_file_open(fifo, O_RDONLY, 0); /* blocks, in a thread, until a writer opens */
    if (fd < 0)
        return weft_fail(fd, "%s", weft_errmsg());
    static char got[32];
    ssize_t n = weft_file_read(fd, got, sizeof got - 1); /* blocks until the writer writes */
    int rc = weft_file_close(fd);
    if (n < 0 || rc < 0)
        return weft_fail(n < 0 ? (int)n : rc, "%s", weft_errmsg());
    return got;
}

static void *fifo_main(void *arg)
{
    const char *fifo = arg;
    weft_task *tick = weft_spawn(ticker, NULL);
    weft_task *reader = weft_spawn(fifo_reader, (void *)fifo);
    until_thread_in(SYS_openat, -1);
    int before = atomic_load(&ticks);
    weft_sleep(0.05);
    cr_expect_gt(atomic_load(&ticks), before + 5, "the loop ran on while open blocked in a thread");
    /* The writer is a task of the same loop: had the reader blocked the loop, it
     * could never run. */
    int fd = weft_file_open(fifo, O_WRONLY, 0);
    cr_expect_geq(fd, 0, "%s", weft_errmsg());
    until_thread_in(SYS_read, -1);
    before = atomic_load(&ticks);
    weft_sleep(0.05);
    cr_expect_gt(atomic_load(&ticks), before + 5, "the loop ran on while read blocked in a thread");
    cr_expect_eq(weft_file_write(fd, "through the fifo", 16), 16);
    void *got = NULL;
    cr_expect_eq(weft_await(reader, &got), 0, "%s", weft_errmsg());
    cr_expect_str_eq(got ? (char *)got : "", "through the fifo");
    cr_expect_eq(weft_file_close(fd), 0);
    weft_cancel(tick, NULL);
    weft_await(tick, NULL);
    return NULL;
}

Test(file, the_loop_runs_while_a_call_blocks_in_a_thread)
{
    make_dir();
    const char *fifo = in_dir("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(weft_run(fifo_main, (void *)fifo, NULL), 0);
    remove_dir();
}

/* ---- cancellation: a call that has not started never runs ---------------------- */

static void *create_file(void *arg)
{
    int fd = weft_file_open(arg, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        weft_file_close(fd);
    return fd < 0 ? weft_fail(fd, "%s", weft_errmsg()) : NULL;
}

static void *write_file_task(void *arg)
{
    int rc = weft_file_write_all(arg, "x", 1, NULL);
    return rc ? weft_fail(rc, "%s", weft_errmsg()) : NULL;
}

static void *not_started_main(void *arg)
{
    (void)arg;
    static gate g;
    /* The pool's one thread is busy: the file calls wait in its queue. */
    weft_task *busy = weft_spawn(occupy, &g);
    while (!atomic_load(&g.started))
        weft_sleep(0.001);
    const char *a = in_dir("queued-open"), *b = in_dir("queued-write-all"), *c = in_dir("pending-open");
    weft_task *opener = weft_spawn(create_file, (void *)a);
    weft_task *writer = weft_spawn(write_file_task, (void *)b);
    weft_sleep(0.02); /* both handed to the pool, queued behind the busy thread */
    weft_cancel(opener, NULL);
    weft_cancel(writer, NULL);
    cr_expect_eq(weft_await(opener, NULL), -ECANCELED);
    cr_expect_eq(weft_await(writer, NULL), -ECANCELED);
    /* One cancelled before its call even reached the pool (the same iteration). */
    weft_task *early = weft_spawn(create_file, (void *)c);
    weft_yield();
    weft_cancel(early, NULL);
    cr_expect_eq(weft_await(early, NULL), -ECANCELED);
    atomic_store(&g.open, 1);
    cr_expect_eq(weft_await(busy, NULL), 0);
    /* The pool is free now: had the calls been left in it, they would run. */
    weft_sleep(0.05);
    return NULL;
}

Test(file, a_call_not_started_when_cancelled_never_runs)
{
    make_dir();
    cr_assert_eq(weft_set_default_pool_size(1), 0);
    cr_assert_eq(weft_run(not_started_main, NULL, NULL), 0);
    cr_expect(!exists(in_dir("queued-open")), "the open never ran");
    cr_expect(!exists(in_dir("queued-write-all")), "the write_all never ran");
    cr_expect(!exists(in_dir("pending-open")), "the open never ran");
    remove_dir();
}

static void *already_cancelled(void *arg)
{
    weft_cancel(weft_current(), NULL);
    int rc = weft_file_write_all(arg, "x", 1, NULL);
    cr_expect_eq(rc, -ECANCELED);
    int fd = weft_file_open(arg, O_WRONLY | O_CREAT, 0600);
    cr_expect_eq(fd, -ECANCELED);
    return NULL;
}

Test(file, a_cancelled_task_starts_no_call)
{
    make_dir();
    weft_run(already_cancelled, in_dir("never"), NULL);
    cr_expect(!exists(in_dir("never")));
    remove_dir();
}

/* ---- cancellation: a call that is running completes and reports --------------- */

static struct {
    ssize_t n;
    int next;       /* what the next suspension point returned */
    char buf[64];
    int fd;
    int close_rc;
} seen;

static void *read_then_sleep(void *arg)
{
    int fd = (int)(intptr_t)arg;
    seen.n = weft_file_read(fd, seen.buf, sizeof seen.buf);
    seen.next = weft_sleep(0);
    return NULL;
}

static void *cancel_read_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_expect_eq(pipe(fds), 0);
    weft_task *t = weft_spawn(read_then_sleep, (void *)(intptr_t)fds[0]);
    until_thread_in(SYS_read, fds[0]);
    cr_expect(weft_cancel(t, NULL));
    weft_sleep(0.02);
    cr_expect(!weft_task_done(t), "the task waits for its read");
    cr_expect_eq(write(fds[1], "abc", 3), 3);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED, "it ends cancelled");
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

Test(file, a_running_read_when_cancelled_returns_its_bytes)
{
    cr_assert_eq(weft_run(cancel_read_main, NULL, NULL), 0);
    cr_expect_eq(seen.n, 3, "the bytes read are returned, not lost");
    cr_expect_eq(memcmp(seen.buf, "abc", 3), 0);
    cr_expect_eq(seen.next, -ECANCELED, "the cancellation comes at the next suspension point");
}

#define BIG_WRITE (1u << 20)

static void *write_then_sleep(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *data = malloc(BIG_WRITE);
    for (size_t i = 0; i < BIG_WRITE; i++)
        data[i] = (char)(i % 251);
    seen.n = weft_file_write(fd, data, BIG_WRITE);
    seen.next = weft_sleep(0);
    free(data);
    return NULL;
}

static void *cancel_write_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_expect_eq(pipe(fds), 0);
    weft_task *t = weft_spawn(write_then_sleep, (void *)(intptr_t)fds[1]);
    until_thread_in(SYS_write, fds[1]); /* the pipe is full: the write waits for a reader */
    cr_expect(weft_cancel(t, NULL));
    /* Read everything, here on the loop's thread (blocking it is fine in a test). */
    char *got = malloc(BIG_WRITE);
    size_t have = 0;
    while (have < BIG_WRITE) {
        ssize_t r = read(fds[0], got + have, BIG_WRITE - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    cr_expect_eq(have, BIG_WRITE);
    bool same = true;
    for (size_t i = 0; i < have; i++)
        same = same && got[i] == (char)(i % 251);
    cr_expect(same, "every byte arrived, in order");
    free(got);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

Test(file, a_running_write_when_cancelled_writes_everything)
{
    cr_assert_eq(weft_run(cancel_write_main, NULL, NULL), 0);
    cr_expect_eq(seen.n, (ssize_t)BIG_WRITE, "the write is reported whole");
    cr_expect_eq(seen.next, -ECANCELED);
}

static void *open_then_close(void *arg)
{
    seen.fd = weft_file_open(arg, O_RDONLY, 0);
    seen.next = weft_sleep(0);
    /* Cancelled: close still runs. */
    seen.close_rc = weft_file_close(seen.fd);
    return NULL;
}

static void *cancel_open_main(void *arg)
{
    const char *fifo = arg;
    weft_task *t = weft_spawn(open_then_close, (void *)fifo);
    until_thread_in(SYS_openat, -1); /* a FIFO's open waits for a writer */
    cr_expect(weft_cancel(t, NULL));
    weft_sleep(0.02);
    cr_expect(!weft_task_done(t));
    int w = open(fifo, O_WRONLY | O_NONBLOCK); /* the reader is there: this does not wait */
    cr_expect_geq(w, 0);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    close(w);
    return NULL;
}

Test(file, a_running_open_when_cancelled_returns_its_descriptor_and_close_still_runs)
{
    make_dir();
    const char *fifo = in_dir("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    int before = open_fds();
    cr_assert_eq(weft_run(cancel_open_main, (void *)fifo, NULL), 0);
    cr_expect_geq(seen.fd, 0, "the descriptor opened is returned");
    cr_expect_eq(seen.next, -ECANCELED);
    cr_expect_eq(seen.close_rc, 0, "close runs in a cancelled task");
    cr_expect_eq(fcntl(seen.fd, F_GETFD), -1, "and the descriptor is closed");
    cr_expect_eq(open_fds(), before, "no descriptor left open");
    remove_dir();
}

static void *read_all_task(void *arg)
{
    char *data = (char *)1;
    seen.n = weft_file_read_all(arg, &data, 0);
    seen.fd = data == NULL;
    return NULL;
}

static void *cancel_read_all_main(void *arg)
{
    const char *fifo = arg;
    weft_task *t = weft_spawn(read_all_task, (void *)fifo);
    until_thread_in(SYS_openat, -1);
    int w = open(fifo, O_WRONLY | O_NONBLOCK);
    cr_expect_geq(w, 0);
    until_thread_in(SYS_read, -1);
    cr_expect(weft_cancel(t, NULL));
    /* A chunk comes, but the writer stays: a read_all that went on reading would
     * wait for the end of the file for ever. */
    cr_expect_eq(write(w, "partial", 7), 7);
    for (int i = 0; i < 5000 && !weft_task_done(t); i++)
        weft_sleep(0.001);
    cr_expect(weft_task_done(t), "read_all stopped after its read");
    close(w); /* lets a read_all that did not stop finish, so the test ends */
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    return NULL;
}

Test(file, a_running_read_all_when_cancelled_stops)
{
    make_dir();
    const char *fifo = in_dir("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    seen.n = 0;
    cr_assert_eq(weft_run(cancel_read_all_main, (void *)fifo, NULL), 0);
    cr_expect_eq(seen.n, -ECANCELED);
    cr_expect(seen.fd, "nothing is handed out");
    remove_dir();
}

static void *close_cancelled(void *arg)
{
    int fd = (int)(intptr_t)arg;
    weft_detach(weft_spawn(bump, NULL)); /* runs once this task suspends */
    weft_cancel(weft_current(), NULL);
    cr_expect_eq(weft_file_close(fd), 0, "%s", weft_errmsg());
    cr_expect(bumped, "the close ran on a pool thread, the task suspended meanwhile");
    cr_expect_eq(fcntl(fd, F_GETFD), -1);
    cr_expect_eq(weft_sleep(0), -ECANCELED, "still cancelled");
    return NULL;
}

Test(file, close_runs_in_a_task_already_cancelled)
{
    int fd = open("/dev/null", O_RDONLY);
    weft_run(close_cancelled, (void *)(intptr_t)fd, NULL);
    cr_expect_eq(fcntl(fd, F_GETFD), -1);
}

typedef struct slow_writer {
    int fd;
    double after;
} slow_writer;

static void *write_later(void *arg)
{
    slow_writer *w = arg;
    nanosleep(&(struct timespec){.tv_nsec = (long)(w->after * 1e9)}, NULL);
    if (write(w->fd, "late", 4) != 4)
        abort();
    return NULL;
}

static void *timeout_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_expect_eq(pipe(fds), 0);
    slow_writer w = {fds[1], 0.2};
    pthread_t th;
    pthread_create(&th, NULL, write_later, &w);
    weft_timeout *to = weft_timeout_enter(0.05);
    char buf[8];
    ssize_t n = weft_file_read(fds[0], buf, sizeof buf);
    cr_expect(weft_timeout_expired(to), "the deadline passed while the read ran");
    int rc = weft_timeout_exit(to, (int)n);
    cr_expect_eq(n, 4, "the read's bytes are returned");
    cr_expect_eq(rc, 4, "the scope lets the result through: the work was done");
    cr_expect_eq(weft_sleep(0), 0, "and the scope's cancellation is spent");
    pthread_join(th, NULL);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

Test(file, a_timeout_during_a_running_read_returns_the_bytes)
{
    cr_assert_eq(weft_run(timeout_main, NULL, NULL), 0);
}

/* ---- buffers on a compact task's stack ------------------------------------------- */

static const weft_spawn_options compact = {.compact = 1};

static void *compact_io(void *arg)
{
    intptr_t k = (intptr_t)arg;
    char path[128]; /* on the shared stack, as everything below */
    snprintf(path, sizeof path, "%s/compact-%d", dir, (int)k);
    char out[4096];
    memset(out, 'a' + (int)k, sizeof out);
    if (weft_file_write_all(path, out, sizeof out, NULL) != 0)
        return weft_fail(weft_errcode(), "%s", weft_errmsg());
    int fd = weft_file_open(path, O_RDWR, 0);
    char in[4096];
    memset(in, 0, sizeof in);
    ssize_t n = weft_file_pread(fd, in, sizeof in, 0);
    struct stat st;
    int rc = weft_file_fstat(fd, &st);
    ssize_t w = weft_file_write(fd, out, 100);
    weft_file_close(fd);
    if (n != (ssize_t)sizeof in || memcmp(in, out, sizeof in) != 0)
        return weft_fail(-EIO, "task %d read back something else", (int)k);
    if (rc != 0 || st.st_size != (off_t)sizeof out)
        return weft_fail(-EIO, "task %d: fstat gave size %lld", (int)k, (long long)st.st_size);
    if (w != 100)
        return weft_fail(-EIO, "task %d: write gave %zd", (int)k, w);
    return NULL;
}

static void *compact_main(void *arg)
{
    (void)arg;
    enum { N = 6 };
    weft_task *t[N];
    for (intptr_t k = 0; k < N; k++)
        t[k] = weft_spawn_opts(compact_io, (void *)k, &compact);
    int errs[N];
    int rc = weft_gather(t, N, NULL, errs, WEFT_RETURN_EXCEPTIONS);
    for (int k = 0; k < N; k++)
        cr_expect_eq(errs[k], 0, "task %d: %s", k, weft_strerror(errs[k]));
    (void)rc;
    return NULL;
}

Test(file, buffers_on_a_compact_tasks_stack)
{
    make_dir();
    cr_assert_eq(weft_run(compact_main, NULL, NULL), 0);
    remove_dir();
}

/* ---- descriptors ----------------------------------------------------------------- */

static void *churn_main(void *arg)
{
    (void)arg;
    const char *p = in_dir("churn");
    char *data;
    for (int i = 0; i < 50; i++) {
        cr_expect_eq(weft_file_write_all(p, "data", 4, &(weft_file_write_options){.atomic = i % 2}), 0);
        cr_expect_eq(weft_file_read_all(p, &data, 0), 4);
        free(data);
        cr_expect_eq(weft_file_read_all(p, &data, 2), -EFBIG);
        cr_expect_eq(weft_file_read_all(dir, &data, 0), -EISDIR);
        cr_expect_eq(weft_file_write_all(dir, "x", 1, &(weft_file_write_options){.atomic = i % 2}), -EISDIR);
        cr_expect_eq(weft_file_write_all("/dev/full", "x", 1, NULL), -ENOSPC);
        int fd = weft_file_open(p, O_RDONLY, 0);
        cr_expect_eq(weft_file_close(fd), 0);
    }
    return NULL;
}

Test(file, no_descriptor_leaks)
{
    make_dir();
    int before = open_fds();
    cr_assert_eq(weft_run(churn_main, NULL, NULL), 0);
    cr_expect_eq(open_fds(), before);
    cr_expect_eq(entries_in_dir(), 1, "no temporary file left");
    remove_dir();
}
