/*
 * w10_files.c — what a file call off the loop costs (weft/file.h), beside the same
 * calls made blocking on the loop's thread (the floor: no thread hop, but the loop
 * stops for each one).
 *
 *   pread:    a file of SIZE_MIB MiB read in 64 KiB chunks with weft_file_pread from
 *             TASKS tasks (task k reads chunks k, k + TASKS, ...), PASSES times over.
 *   read_all: SMALL calls of weft_file_read_all on a 4 KiB file from TASKS tasks.
 *
 * Each workload runs three ways: "weft" (weft_file_*: a pread of cached data copied
 * on the loop's thread with RWF_NOWAIT, anything else a round trip to the pool),
 * "to_thread" (the same system calls inside weft_to_thread, always the pool), and
 * "blocking" (the system calls straight from the tasks, on the loop's thread). The
 * file is written first, so it is in the page cache: what is measured is the system
 * call and the thread hop, not the disk. Each line gives the
 * rate and the time per call, the median of ROUNDS runs made in turn; the last lines
 * the overhead per call, weft against blocking, as a ratio and in microseconds. The
 * clock runs from the first call to the last result; pool threads are started and the
 * file read once by a warm-up round first.
 *
 * usage: w10_files [SIZE_MIB [TASKS [SMALL [DIR]]]]   (defaults 64 4 20000 /tmp)
 * prints: files <workload> <way> ... wall_s=.. mb_per_s=.. calls_per_s=.. us_per_call=..
 */
#include "bench_common.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft.h>

#define CHUNK (64 * 1024)
#define PASSES 16
#define ROUNDS 3 /* each way runs this many times, interleaved; the median is kept */
#define SMALL_SIZE 4096

enum way { WEFT, TO_THREAD, BLOCKING };
static const char *const way_names[] = {"weft", "to_thread", "blocking"};

static const char *prog = "w10_files";
static char big_path[512], small_path[512];
static size_t size_bytes;
static long tasks, small_calls;
static int big_fd;
static enum way way;

/* ---- the calls, three ways ------------------------------------------------------ */

typedef struct pread_job {
    int fd;
    void *buf;
    size_t n;
    off_t off;
    ssize_t got;
} pread_job;

static void *pread_blocking(void *arg)
{
    pread_job *j = arg;
    j->got = pread(j->fd, j->buf, j->n, j->off);
    return NULL;
}

static ssize_t do_pread(int fd, void *buf, size_t n, off_t off)
{
    if (way == WEFT)
        return weft_file_pread(fd, buf, n, off);
    pread_job j = {fd, buf, n, off, 0};
    if (way == BLOCKING) {
        pread_blocking(&j);
        return j.got;
    }
    int rc = weft_to_thread(pread_blocking, &j, NULL);
    return rc ? rc : j.got;
}

typedef struct read_all_job {
    const char *path;
    char *data;
    ssize_t got;
} read_all_job;

/* open, fstat, read until end of file, close: what weft_file_read_all does. */
static void *read_all_blocking(void *arg)
{
    read_all_job *j = arg;
    j->data = NULL;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        j->got = -errno;
        return NULL;
    }
    struct stat st;
    size_t cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 8192;
    char *buf = malloc(cap);
    size_t len = 0;
    for (;;) {
        if (len + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger)
                break;
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    j->data = buf;
    j->got = (ssize_t)len;
    return NULL;
}

static ssize_t do_read_all(const char *path, char **out)
{
    if (way == WEFT)
        return weft_file_read_all(path, out, 0);
    read_all_job j = {path, NULL, 0};
    if (way == BLOCKING) {
        read_all_blocking(&j);
    } else {
        int rc = weft_to_thread(read_all_blocking, &j, NULL);
        if (rc)
            return rc;
    }
    *out = j.data;
    return j.got;
}

/* ---- the workloads -------------------------------------------------------------- */

static void *pread_task(void *arg)
{
    long k = (long)(intptr_t)arg;
    char *buf = malloc(CHUNK);
    size_t chunks = size_bytes / CHUNK;
    uint64_t sum = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        for (size_t c = (size_t)k; c < chunks; c += (size_t)tasks) {
            ssize_t n = do_pread(big_fd, buf, CHUNK, (off_t)(c * CHUNK));
            if (n != CHUNK) {
                free(buf);
                return weft_fail(n < 0 ? (int)n : -EIO, "pread of chunk %zu gave %zd: %s", c, n, weft_errmsg());
            }
            sum += (unsigned char)buf[c % CHUNK];
        }
    }
    free(buf);
    return (void *)(uintptr_t)sum;
}

static void *read_all_task(void *arg)
{
    long k = (long)(intptr_t)arg;
    for (long i = k; i < small_calls; i += tasks) {
        char *data = NULL;
        ssize_t n = do_read_all(small_path, &data);
        if (n != SMALL_SIZE) {
            free(data);
            return weft_fail(n < 0 ? (int)n : -EIO, "read_all gave %zd: %s", n, weft_errmsg());
        }
        free(data);
    }
    return NULL;
}

static void run_tasks(weft_fn fn)
{
    weft_task **t = malloc((size_t)tasks * sizeof *t);
    for (long k = 0; k < tasks; k++)
        if (!(t[k] = weft_spawn(fn, (void *)(intptr_t)k)))
            bench_die(prog, "weft_spawn: %s", weft_errmsg());
    for (long k = 0; k < tasks; k++)
        if (weft_await(t[k], NULL) != 0)
            bench_die(prog, "%s: %s", way_names[way], weft_errmsg());
    free(t);
}

typedef struct figures {
    double us[2][3][ROUNDS]; /* [0 = pread, 1 = read_all][way][round] */
} figures;

static double median(double *v)
{
    for (int i = 1; i < ROUNDS; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[ROUNDS / 2];
}

static void *bench_main(void *arg)
{
    figures *f = arg;
    /* Warm-up: start the pool's threads and read every page of the file. */
    way = WEFT;
    long saved = small_calls;
    small_calls = 64;
    run_tasks(read_all_task);
    small_calls = saved;
    run_tasks(pread_task);
    double pread_calls = (double)(size_bytes / CHUNK) * PASSES;
    for (int r = 0; r < ROUNDS; r++) {
        for (int w = WEFT; w <= BLOCKING; w++) {
            way = (enum way)w;
            double t0 = bench_now();
            run_tasks(pread_task);
            f->us[0][w][r] = (bench_now() - t0) / pread_calls * 1e6;
            t0 = bench_now();
            run_tasks(read_all_task);
            f->us[1][w][r] = (bench_now() - t0) / (double)small_calls * 1e6;
        }
    }
    for (int w = WEFT; w <= BLOCKING; w++) {
        double us = median(f->us[0][w]);
        printf("files pread %s size_mib=%zu chunk_kib=%d passes=%d tasks=%ld wall_s=%.3f mb_per_s=%.0f "
               "calls_per_s=%.0f us_per_call=%.2f\n",
               way_names[w], size_bytes >> 20, CHUNK / 1024, PASSES, tasks, us * pread_calls / 1e6,
               (double)CHUNK / us, 1e6 / us, us);
    }
    for (int w = WEFT; w <= BLOCKING; w++) {
        double us = median(f->us[1][w]);
        printf("files read_all %s file_kib=%d calls=%ld tasks=%ld wall_s=%.3f calls_per_s=%.0f us_per_call=%.2f\n",
               way_names[w], SMALL_SIZE / 1024, small_calls, tasks, us * (double)small_calls / 1e6, 1e6 / us, us);
    }
    return NULL;
}

static void make_file(const char *path, size_t bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        bench_die(prog, "cannot create %s: %s", path, strerror(errno));
    char *block = malloc(1 << 20);
    for (size_t i = 0; i < (1 << 20); i++)
        block[i] = (char)(i * 31 + 7);
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < (1 << 20) ? bytes - done : (1 << 20);
        if (write(fd, block, n) != (ssize_t)n)
            bench_die(prog, "cannot write %s: %s", path, strerror(errno));
        done += n;
    }
    free(block);
    close(fd);
}

int main(int argc, char **argv)
{
    bench_stdout_setup();
    long size_mib = argc > 1 ? atol(argv[1]) : 64;
    tasks = argc > 2 ? atol(argv[2]) : 4;
    small_calls = argc > 3 ? atol(argv[3]) : 20000;
    const char *dir = argc > 4 ? argv[4] : "/tmp";
    if (size_mib < 1 || tasks < 1 || small_calls < 1)
        bench_die(prog, "usage: w10_files [SIZE_MIB [TASKS [SMALL [DIR]]]]");
    size_bytes = (size_t)size_mib << 20;
    snprintf(big_path, sizeof big_path, "%s/w10-files-big-%d", dir, (int)getpid());
    snprintf(small_path, sizeof small_path, "%s/w10-files-small-%d", dir, (int)getpid());
    make_file(big_path, size_bytes);
    make_file(small_path, SMALL_SIZE);
    big_fd = open(big_path, O_RDONLY | O_CLOEXEC);
    if (big_fd < 0)
        bench_die(prog, "cannot open %s: %s", big_path, strerror(errno));

    figures f;
    int rc = weft_run(bench_main, &f, NULL);
    close(big_fd);
    unlink(big_path);
    unlink(small_path);
    if (rc != 0)
        bench_die(prog, "weft_run: %s", weft_errmsg());
    for (int k = 0; k < 2; k++) {
        /* The medians (median() sorted each round's figures in place). */
        double w = f.us[k][WEFT][ROUNDS / 2], t = f.us[k][TO_THREAD][ROUNDS / 2], b = f.us[k][BLOCKING][ROUNDS / 2];
        printf("files %s overhead weft/blocking=%.2fx (+%.2f us per call) to_thread/blocking=%.2fx (+%.2f us)\n",
               k ? "read_all" : "pread", w / b, w - b, t / b, t - b);
    }
    printf("files peak_rss_kb=%ld\n", bench_peak_rss_kb());
    return 0;
}
