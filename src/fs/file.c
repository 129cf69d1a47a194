/*
 * file.c — files off the loop (weft/file.h): every call is one round trip to the
 * default thread pool through weft__to_thread_held (exec.h), which keeps the
 * calling task waiting while the call runs, cancelled or not, so the thread never
 * writes into memory its caller has taken back, and what a call did is reported.
 *
 * A call's way: the task fills a record (the operation, its arguments, room for
 * its result), the thread runs the system calls and writes the outcome into the
 * record (a result or -errno, and which system call failed), and the task, back on
 * the loop, copies results out and writes the message (naming the path, or the
 * descriptor and the path /proc says it has). So a pool thread never formats a
 * message or touches an error state, and nothing a thread touches is freed early.
 *
 * What a thread touches must stay where it is while the task waits: the record
 * (the loop's small allocator, heap memory), the path (copied into the record, as
 * it may be a compact task's local), and the caller's buffer. A compact task's
 * stack is copied away whenever it waits, so a buffer there (or a struct stat)
 * goes through memory of weft's own: a bounce buffer copied in before a write and
 * out after a read, the record's struct stat copied to the caller's.
 *
 * A small pread is first tried from the page cache on the loop's thread, with
 * RWF_NOWAIT (pread_cached): a cached read is then a memory copy and a yield rather
 * than two cross-thread wake-ups, and only what is not cached goes to the pool.
 *
 * Whole-file calls do all their system calls in one trip: weft_file_read_all opens,
 * reads until read(2) returns 0 (stat's size is only the first guess, for files
 * that grow and /proc files that say 0), and closes; it looks at the record's stop
 * flag between reads, which the pool raises when the task is cancelled, and gives
 * up then. weft_file_write_all writes in place (O_TRUNC) or, atomically, to a new
 * file beside the target that it fsyncs and renames over it, then fsyncs the
 * directory.
 */
#include "exec/exec.h"

#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* weft_file_read_all reads at most this much per read(2): its cancellation is
 * looked at between reads. */
#define READ_ALL_CHUNK ((size_t)1 << 20)
/* Its first buffer when stat gives no size (a pipe, /proc): grown by doubling. */
#define READ_ALL_FIRST 8192
/* A pread this small is first tried from the page cache on the loop's thread
 * (pread_cached): copying 128 KiB from memory takes about as long as the round trip
 * to a pool thread it saves (~10 us); a larger copy is better made on another CPU. */
#define CACHED_READ_MAX ((size_t)128 << 10)
/* Names tried for an atomic write's new file before giving up (each O_EXCL). */
#define TEMP_TRIES 64

enum file_op {
    OP_OPEN,
    OP_READ,
    OP_PREAD,
    OP_WRITE,
    OP_PWRITE,
    OP_FSYNC,
    OP_FDATASYNC,
    OP_STAT,
    OP_FSTAT,
    OP_CLOSE,
    OP_READ_ALL,
    OP_WRITE_ALL,
};

typedef struct file_call {
    uint8_t op;
    bool atomic, sync;       /* write_all's options */
    int fd;
    int flags;               /* open's */
    mode_t mode;
    char *buf;               /* what the thread reads into or writes from: the caller's, or the bounce */
    size_t n;
    off_t off;
    size_t limit;            /* read_all's */
    /* The outcome, written by the thread: */
    ssize_t res;             /* the result, or -errno */
    size_t done;             /* bytes written (write, pwrite, write_all), also before a failure */
    const char *failed;      /* the system call that failed: "open", "write", "rename", ... */
    char *data;              /* read_all's buffer, malloc'd */
    struct stat st;          /* stat's and fstat's */
    atomic_int stop;         /* raised by the pool when the task is cancelled while this runs */
    size_t size;             /* of the record, for the small allocator */
    char path[];             /* the caller's path, copied ("" for calls on a descriptor) */
} file_call;

/* ------------------------------------------------------------------------ */
/* On a pool thread                                                         */
/* ------------------------------------------------------------------------ */

/* The thread's part of a failure: -errno, and which call gave it. */
static void failed(file_call *fc, const char *call)
{
    fc->res = -errno;
    fc->failed = call;
}

static int open_retrying(const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* Writes all n bytes of buf to fd (at off + what was written, when positioned),
 * again after a short write. fc->done counts what was written. Returns 0, or -1
 * with fc's failure set. */
static int write_fully(file_call *fc, int fd, const char *buf, size_t n, bool positioned, off_t off)
{
    fc->done = 0;
    for (;;) {
        size_t left = n - fc->done;
        ssize_t w = positioned ? pwrite(fd, buf + fc->done, left, off + (off_t)fc->done)
                               : write(fd, buf + fc->done, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            failed(fc, positioned ? "pwrite" : "write");
            return -1;
        }
        fc->done += (size_t)w;
        if (fc->done == n)
            return 0;
        if (w == 0) { /* the kernel takes nothing and says nothing: do not spin */
            errno = EIO;
            failed(fc, positioned ? "pwrite" : "write");
            return -1;
        }
    }
}

static void read_all_run(file_call *fc)
{
    int fd = open_retrying(fc->path, O_RDONLY, 0);
    if (fd < 0) {
        failed(fc, "open");
        return;
    }
    size_t limit = fc->limit; /* at most SSIZE_MAX, so limit + 1 does not wrap */
    size_t cap = READ_ALL_FIRST;  /* bytes the buffer holds, the NUL included */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uintmax_t)st.st_size > limit) {
            fc->res = -EFBIG;
            fc->done = (size_t)st.st_size;
            fc->failed = "stat";
            close(fd);
            return;
        }
        cap = (size_t)st.st_size + 1;
    }
    if (cap > limit + 1)
        cap = limit + 1;
    char *buf = malloc(cap);
    if (!buf) {
        fc->res = -ENOMEM;
        fc->failed = "malloc";
        fc->done = cap;
        close(fd);
        return;
    }
    size_t len = 0;
    for (;;) {
        if (atomic_load_explicit(&fc->stop, memory_order_relaxed)) {
            fc->res = -ECANCELED;
            break;
        }
        /* When the buffer is full (the size stat gave, or the limit), a small read
         * says whether there is more before the buffer grows. */
        char probe[512];
        bool full = len + 1 == cap;
        size_t want = full ? sizeof probe : cap - 1 - len;
        if (want > READ_ALL_CHUNK)
            want = READ_ALL_CHUNK;
        ssize_t r = read(fd, full ? probe : buf + len, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            failed(fc, "read");
            break;
        }
        if (r == 0) {
            fc->res = (ssize_t)len;
            break;
        }
        if (!full) {
            len += (size_t)r;
            continue;
        }
        if ((size_t)r > limit - len) {
            fc->res = -EFBIG;
            fc->done = len + (size_t)r;
            fc->failed = "read";
            break;
        }
        size_t bigger = cap <= (limit + 1) / 2 ? cap * 2 : limit + 1;
        char *grown = realloc(buf, bigger);
        if (!grown) {
            fc->res = -ENOMEM;
            fc->failed = "malloc";
            fc->done = bigger;
            break;
        }
        buf = grown;
        cap = bigger;
        memcpy(buf + len, probe, (size_t)r);
        len += (size_t)r;
    }
    close(fd); /* read-only: its result says nothing about the data */
    if (fc->res < 0) {
        free(buf);
        return;
    }
    buf[len] = '\0';
    if (cap - len > 65536) { /* much grown past the end: give the rest back */
        char *fitted = realloc(buf, len + 1);
        if (fitted)
            buf = fitted;
    }
    fc->data = buf;
}

/* A name no one else uses beside the target: .<name>.weft-<16 hex digits>. */
static void temp_name(char *out, size_t size, const char *path, unsigned attempt)
{
    static atomic_uint_fast64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48) ^
                 atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull ^ attempt;
    x ^= x >> 33; /* splitmix64's finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) + 1 : 0;
    snprintf(out, size, "%.*s.%s.weft-%016llx", dir_len, path, slash ? slash + 1 : path, (unsigned long long)x);
}

/* fsync of the directory holding path: makes a rename in it durable. */
static int sync_directory(file_call *fc)
{
    const char *slash = strrchr(fc->path, '/');
    char dir[PATH_MAX];
    if (!slash)
        strcpy(dir, ".");
    else if (slash == fc->path)
        strcpy(dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - fc->path), fc->path);
    int fd = open_retrying(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        failed(fc, "open the directory of");
        return -1;
    }
    int rc = fsync(fd);
    if (rc != 0 && errno != EINVAL) /* EINVAL: a file system that cannot sync directories */
        failed(fc, "fsync the directory of");
    close(fd);
    return rc != 0 && errno != EINVAL ? -1 : 0;
}

static void write_all_run(file_call *fc)
{
    mode_t mode = fc->mode ? fc->mode : 0666;
    if (!fc->atomic) {
        int fd = open_retrying(fc->path, O_WRONLY | O_CREAT | O_TRUNC, mode);
        if (fd < 0) {
            failed(fc, "open");
            return;
        }
        if (write_fully(fc, fd, fc->buf, fc->n, false, 0) != 0) {
            close(fd);
            return;
        }
        if (fc->sync && fsync(fd) != 0) {
            failed(fc, "fsync");
            close(fd);
            return;
        }
        if (close(fd) != 0) {
            failed(fc, "close");
            return;
        }
        fc->res = 0;
        return;
    }
    size_t tmp_size = strlen(fc->path) + 32;
    char *tmp = malloc(tmp_size);
    if (!tmp) {
        fc->res = -ENOMEM;
        fc->failed = "malloc";
        return;
    }
    int fd = -1;
    for (unsigned attempt = 0; attempt < TEMP_TRIES && fd < 0; attempt++) {
        temp_name(tmp, tmp_size, fc->path, attempt);
        fd = open_retrying(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        failed(fc, "create a new file beside");
        free(tmp);
        return;
    }
    int ok = write_fully(fc, fd, fc->buf, fc->n, false, 0) == 0;
    if (ok && fsync(fd) != 0) {
        failed(fc, "fsync");
        ok = 0;
    }
    if (close(fd) != 0 && ok) {
        failed(fc, "close");
        ok = 0;
    }
    if (ok && rename(tmp, fc->path) != 0) {
        failed(fc, "rename a new file over");
        ok = 0;
    }
    if (!ok)
        unlink(tmp); /* the target is as it was */
    free(tmp);
    if (ok && sync_directory(fc) == 0)
        fc->res = 0;
}

static void *file_run(void *arg)
{
    file_call *fc = arg;
    ssize_t r;
    switch ((enum file_op)fc->op) {
    case OP_OPEN:
        r = open_retrying(fc->path, fc->flags, fc->mode);
        break;
    case OP_READ:
        do
            r = read(fc->fd, fc->buf, fc->n);
        while (r < 0 && errno == EINTR);
        break;
    case OP_PREAD:
        do
            r = pread(fc->fd, fc->buf, fc->n, fc->off);
        while (r < 0 && errno == EINTR);
        break;
    case OP_WRITE:
    case OP_PWRITE:
        fc->res = write_fully(fc, fc->fd, fc->buf, fc->n, fc->op == OP_PWRITE, fc->off) == 0 ? (ssize_t)fc->n : fc->res;
        return NULL;
    case OP_FSYNC:
        r = fsync(fc->fd);
        break;
    case OP_FDATASYNC:
        r = fdatasync(fc->fd);
        break;
    case OP_STAT:
        r = stat(fc->path, &fc->st);
        break;
    case OP_FSTAT:
        r = fstat(fc->fd, &fc->st);
        break;
    case OP_CLOSE:
        r = close(fc->fd); /* never again after EINTR: Linux has released the descriptor */
        break;
    case OP_READ_ALL:
        read_all_run(fc);
        return NULL;
    case OP_WRITE_ALL:
        write_all_run(fc);
        return NULL;
    default:
        r = -1;
        errno = ENOSYS;
        break;
    }
    fc->res = r;
    if (r < 0)
        failed(fc, "");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* On the loop                                                              */
/* ------------------------------------------------------------------------ */

static int not_in_task(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                             "(start one with weft_run)", what);
}

static int bad_fd(const char *what, int fd)
{
    return weft__set_errmsg(-EBADF, "%s: fd %d is not a descriptor (did weft_file_open fail? weft_errmsg() "
                                    "said why)", what, fd);
}

/* "fd 7 (/tmp/notes.txt)", or "fd 7" when /proc cannot say (a closed descriptor). */
static const char *fd_name(int fd, char *out, size_t size)
{
    char link[40], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0) {
        target[n] = '\0';
        snprintf(out, size, "fd %d (%s)", fd, target);
    } else {
        snprintf(out, size, "fd %d", fd);
    }
    return out;
}

/* True when [p, p + n) lies (even in part) on the stack compact tasks share: that
 * memory is copied away while the task waits, so a thread must not use it. */
static bool on_moving_stack(weft_loop *L, weft_task *self, const void *p, size_t n)
{
    if (!(WEFT__FLAGS(self) & WEFT__COMPACT) || !L->shared_stack || !p || n == 0)
        return false;
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)L->shared_stack->lo, hi = lo + L->shared_stack->size;
    return a < hi && a + n > lo;
}

/* A record for op with room for path (NULL: none). NULL with -ENOMEM set. */
static file_call *call_new(weft_loop *L, enum file_op op, const char *path, const char *what)
{
    size_t len = path ? strlen(path) : 0;
    size_t size = sizeof(file_call) + len + 1;
    file_call *fc = weft__small_alloc(&L->small, size);
    if (!fc) {
        weft__set_errmsg(-ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    memset(fc, 0, sizeof *fc);
    fc->op = (uint8_t)op;
    fc->fd = -1;
    fc->size = size;
    atomic_init(&fc->stop, 0);
    memcpy(fc->path, path ? path : "", len + 1);
    return fc;
}

static void call_free(weft_loop *L, file_call *fc)
{
    weft__small_free(&L->small, fc, fc->size);
}

/*
 * Runs fc on the pool and waits for it (see weft__to_thread_held). Returns 0 when
 * it ran (its outcome in fc->res), or the error that kept it from running, with its
 * message (-ECANCELED, -ENOMEM, -EAGAIN).
 */
static int call_run(file_call *fc, bool always, const char *what)
{
    return weft__to_thread_held(file_run, fc, &fc->stop, always, what);
}

/* The checks every call on a descriptor with a buffer makes. */
static int check_buffer_call(const char *what, int fd, const void *buf, size_t n)
{
    if (!weft__current())
        return not_in_task(what);
    if (fd < 0)
        return bad_fd(what, fd);
    if (!buf && n > 0)
        return weft__set_errmsg(-EINVAL, "%s: the buffer is NULL (for %zu bytes)", what, n);
    if (n > SSIZE_MAX)
        return weft__set_errmsg(-EINVAL, "%s: %zu bytes is more than a call can report (SSIZE_MAX)", what, n);
    return 0;
}

/*
 * A pread of at most CACHED_READ_MAX bytes first tries the page cache from the
 * loop's thread: preadv2 with RWF_NOWAIT copies what is cached and returns at once,
 * or fails with EAGAIN where it would wait for the disk or a lock (io_uring tries
 * the same before it hands a read to its workers). Returns the bytes copied, or -1
 * (EAGAIN, a file system or kernel without RWF_NOWAIT, any error: the pool decides).
 */
static ssize_t pread_cached(int fd, void *buf, size_t n, off_t off)
{
#ifdef RWF_NOWAIT
    struct iovec iov = {buf, n};
    return preadv2(fd, &iov, 1, off, RWF_NOWAIT);
#else
    (void)fd, (void)buf, (void)n, (void)off;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

static ssize_t buffer_call(enum file_op op, int fd, void *buf, size_t n, off_t off, const char *what)
{
    int rc = check_buffer_call(what, fd, buf, n);
    if (rc)
        return rc;
    if ((op == OP_PREAD || op == OP_PWRITE) && off < 0)
        return weft__set_errmsg(-EINVAL, "%s: the offset %lld is negative", what, (long long)off);
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (self->cancelling)
        return weft__cancelled_errmsg(self); /* before any allocation or copy: it never runs */
    bool reading = op == OP_READ || op == OP_PREAD;
    size_t cached = 0; /* bytes a pread took from the page cache here */
    if (op == OP_PREAD && n > 0 && n <= CACHED_READ_MAX) {
        /* Again after a short read: a second answer of 0 says the first stopped at
         * the end of the file, which then needs no thread to confirm. */
        ssize_t r;
        while ((r = pread_cached(fd, (char *)buf + cached, n - cached, off + (off_t)cached)) > 0 &&
               (cached += (size_t)r) < n) {
        }
        if (cached == n || r == 0) {
            /* All of it, or the end of the file. Still a suspension point, as the
             * round trip would be, so that a task reading a cached file in a loop
             * lets the others run. A cancellation that comes now is kept for the
             * task's next suspension point, as after a call that ran in a thread. */
            int yielded = weft_yield();
            (void)yielded;
            return (ssize_t)cached;
        }
        /* Otherwise the first `cached` bytes were in the cache: the rest comes from
         * the pool. */
    }
    char *part = (char *)buf + cached;
    size_t left = n - cached;
    char *bounce = NULL;
    if (on_moving_stack(L, self, part, left)) {
        bounce = malloc(left);
        if (!bounce) {
            if (cached)
                return (ssize_t)cached;
            return weft__set_errmsg(-ENOMEM, "%s: out of memory for a copy of the %zu-byte buffer (it is on a "
                                             "compact task's stack)", what, n);
        }
        if (!reading)
            memcpy(bounce, part, left);
    }
    file_call *fc = call_new(L, op, NULL, what);
    if (!fc) {
        free(bounce);
        return cached ? (ssize_t)cached : -ENOMEM;
    }
    fc->fd = fd;
    fc->buf = bounce ? bounce : part;
    fc->n = left;
    fc->off = off + (off_t)cached;
    rc = call_run(fc, false, what);
    ssize_t res = rc ? rc : fc->res;
    if (rc == 0 && res < 0 && !cached) {
        char name[PATH_MAX + 32];
        fd_name(fd, name, sizeof name);
        if (reading)
            weft__set_errmsg((int)res, "%s: %s: %s", what, name, weft_strerror((int)res));
        else
            weft__set_errmsg((int)res, "%s: %s: %s (%zu of %zu bytes were written before)", what, name,
                             weft_strerror((int)res), fc->done, n);
    }
    if (bounce && reading && res > 0)
        memcpy(part, bounce, (size_t)res);
    free(bounce);
    call_free(L, fc);
    if (cached) /* the bytes already read stand, whatever became of the rest (as a short read) */
        return (ssize_t)cached + (res > 0 ? res : 0);
    return res;
}

ssize_t weft_file_read(int fd, void *buf, size_t n)
{
    return buffer_call(OP_READ, fd, buf, n, 0, "weft_file_read");
}

ssize_t weft_file_pread(int fd, void *buf, size_t n, off_t offset)
{
    return buffer_call(OP_PREAD, fd, buf, n, offset, "weft_file_pread");
}

ssize_t weft_file_write(int fd, const void *buf, size_t n)
{
    return buffer_call(OP_WRITE, fd, (void *)buf, n, 0, "weft_file_write");
}

ssize_t weft_file_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    return buffer_call(OP_PWRITE, fd, (void *)buf, n, offset, "weft_file_pwrite");
}

/* fsync, fdatasync, fstat: a descriptor and nothing of the caller's but *st. */
static int fd_call(enum file_op op, int fd, struct stat *st, const char *what)
{
    if (!weft__current())
        return not_in_task(what);
    if (fd < 0)
        return bad_fd(what, fd);
    if (op == OP_FSTAT && !st)
        return weft__set_errmsg(-EINVAL, "%s: st is NULL", what);
    weft_loop *L = weft__loop;
    file_call *fc = call_new(L, op, NULL, what);
    if (!fc)
        return -ENOMEM;
    fc->fd = fd;
    int rc = call_run(fc, false, what);
    if (rc == 0 && fc->res < 0) {
        char name[PATH_MAX + 32];
        rc = weft__set_errmsg((int)fc->res, "%s: %s: %s", what, fd_name(fd, name, sizeof name),
                              weft_strerror((int)fc->res));
    }
    if (rc == 0 && st)
        *st = fc->st;
    call_free(L, fc);
    return rc;
}

int weft_file_fsync(int fd)
{
    return fd_call(OP_FSYNC, fd, NULL, "weft_file_fsync");
}

int weft_file_fdatasync(int fd)
{
    return fd_call(OP_FDATASYNC, fd, NULL, "weft_file_fdatasync");
}

int weft_file_fstat(int fd, struct stat *st)
{
    return fd_call(OP_FSTAT, fd, st, "weft_file_fstat");
}

int weft_file_close(int fd)
{
    const char *what = "weft_file_close";
    if (fd < 0)
        return bad_fd(what, fd);
    if (!weft__current()) {
        close(fd); /* never leave it open, whoever calls */
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop (start one "
                                                 "with weft_run); fd %d was closed on the calling thread", what, fd);
    }
    weft_loop *L = weft__loop;
    file_call *fc = call_new(L, OP_CLOSE, NULL, what);
    if (fc)
        fc->fd = fd;
    int rc = fc ? call_run(fc, true, what) : -ENOMEM;
    ssize_t res;
    if (rc == 0) {
        res = fc->res;
    } else {
        /* No pool thread or no memory: the close must still happen, so here. */
        res = close(fd) == 0 ? 0 : -errno;
    }
    if (fc)
        call_free(L, fc);
    if (res < 0)
        return weft__set_errmsg((int)res, "%s: fd %d: %s", what, fd, weft_strerror((int)res));
    return 0;
}

/* open and stat: a path. */
static int path_call(enum file_op op, const char *path, int flags, mode_t mode, struct stat *st, const char *what)
{
    if (!weft__current())
        return not_in_task(what);
    if (!path)
        return weft__set_errmsg(-EINVAL, "%s: the path is NULL", what);
    if (op == OP_STAT && !st)
        return weft__set_errmsg(-EINVAL, "%s: st is NULL (for \"%s\")", what, path);
    weft_loop *L = weft__loop;
    file_call *fc = call_new(L, op, path, what);
    if (!fc)
        return -ENOMEM;
    fc->flags = flags;
    fc->mode = mode;
    int rc = call_run(fc, false, what);
    if (rc == 0 && fc->res < 0)
        rc = weft__set_errmsg((int)fc->res, "%s: cannot %s \"%s\": %s", what, op == OP_OPEN ? "open" : "stat",
                              path, weft_strerror((int)fc->res));
    else if (rc == 0 && op == OP_OPEN)
        rc = (int)fc->res;
    if (rc >= 0 && st)
        *st = fc->st;
    call_free(L, fc);
    return rc;
}

int weft_file_open(const char *path, int flags, mode_t mode)
{
    return path_call(OP_OPEN, path, flags, mode, NULL, "weft_file_open");
}

int weft_file_stat(const char *path, struct stat *st)
{
    return path_call(OP_STAT, path, 0, 0, st, "weft_file_stat");
}

ssize_t weft_file_read_all(const char *path, char **out, size_t limit)
{
    const char *what = "weft_file_read_all";
    if (out)
        *out = NULL;
    if (!weft__current())
        return not_in_task(what);
    if (!path || !out)
        return weft__set_errmsg(-EINVAL, "%s: %s is NULL", what, path ? "out" : "the path");
    weft_loop *L = weft__loop;
    file_call *fc = call_new(L, OP_READ_ALL, path, what);
    if (!fc)
        return -ENOMEM;
    size_t asked = limit;
    fc->limit = limit == 0 ? WEFT_FILE_READ_ALL_LIMIT : limit > SSIZE_MAX ? SSIZE_MAX : limit;
    ssize_t rc = call_run(fc, false, what);
    if (rc == 0) {
        rc = fc->res;
        if (rc >= 0) {
            *out = fc->data;
        } else if (rc == -ECANCELED) {
            rc = weft__cancelled_errmsg(weft__current()); /* stopped between reads */
        } else if (rc == -EFBIG) {
            weft__set_errmsg(-EFBIG, "%s: \"%s\" has more than the limit of %zu bytes%s; pass a larger limit "
                                     "(SIZE_MAX: none)", what, path, fc->limit,
                             asked == 0 ? " (0 asks for WEFT_FILE_READ_ALL_LIMIT)" : "");
        } else if (rc == -ENOMEM && fc->failed && strcmp(fc->failed, "malloc") == 0) {
            weft__set_errmsg(-ENOMEM, "%s: out of memory for %zu bytes of \"%s\"", what, fc->done, path);
        } else {
            weft__set_errmsg((int)rc, "%s: cannot %s \"%s\": %s", what, fc->failed, path, weft_strerror((int)rc));
        }
    }
    call_free(L, fc);
    return rc;
}

int weft_file_write_all(const char *path, const void *data, size_t n, const weft_file_write_options *opts)
{
    const char *what = "weft_file_write_all";
    if (!weft__current())
        return not_in_task(what);
    if (!path)
        return weft__set_errmsg(-EINVAL, "%s: the path is NULL", what);
    if (!data && n > 0)
        return weft__set_errmsg(-EINVAL, "%s: the data is NULL (for %zu bytes to \"%s\")", what, n, path);
    if (n > SSIZE_MAX)
        return weft__set_errmsg(-EINVAL, "%s: %zu bytes is more than a call can report (SSIZE_MAX)", what, n);
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    char *bounce = NULL;
    if (on_moving_stack(L, self, data, n)) {
        bounce = malloc(n);
        if (!bounce)
            return weft__set_errmsg(-ENOMEM, "%s: out of memory for a copy of the %zu bytes (they are on a "
                                             "compact task's stack)", what, n);
        memcpy(bounce, data, n);
    }
    file_call *fc = call_new(L, OP_WRITE_ALL, path, what);
    if (!fc) {
        free(bounce);
        return -ENOMEM;
    }
    fc->buf = bounce ? bounce : (char *)data;
    fc->n = n;
    if (opts) {
        fc->mode = opts->mode;
        fc->atomic = opts->atomic;
        fc->sync = opts->sync || opts->atomic;
    }
    int rc = call_run(fc, false, what);
    if (rc == 0 && fc->res < 0) {
        rc = (int)fc->res;
        if (fc->atomic)
            weft__set_errmsg(rc, "%s: cannot %s \"%s\": %s (%zu of %zu bytes written; \"%s\" %s)", what,
                             fc->failed, path, weft_strerror(rc), fc->done, n, path,
                             strstr(fc->failed, "directory") ? "was replaced, but the rename may not survive a crash"
                                                              : "is as it was");
        else
            weft__set_errmsg(rc, "%s: cannot %s \"%s\": %s (%zu of %zu bytes written)", what, fc->failed, path,
                             weft_strerror(rc), fc->done, n);
    }
    free(bounce);
    call_free(L, fc);
    return rc;
}
