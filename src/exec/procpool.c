/*
 * procpool.c — the process pool (weft_procpool_*): CPU-bound calls run in worker
 * processes while the calling task waits, suspended, on the worker's socket.
 *
 * Three kinds of process:
 *   - the parent: the program, running the loop. It never starts a thread for the
 *     pool: tasks wait on the workers' sockets through the loop (weft__fd_wait), so
 *     a later weft_procpool_new, which refuses when threads exist, stays possible.
 *   - the zygote: forked once by weft_procpool_new while the process has a single
 *     thread, never starts one. It forks every worker (the first ones and the
 *     replacements of dead ones), so each worker comes from a single-threaded
 *     process whose memory is the program's at pool creation: the function
 *     pointers callers pass are valid there. It hands each new worker's socket to
 *     the parent with SCM_RIGHTS, reaps the workers (its children) and tells the
 *     parent how a dead one died. The parent reaps the zygote at free.
 *   - the workers: read (fn, input bytes), run fn, write back (rc, output bytes);
 *     exit at end-of-file on their socket (pool freed, or the parent gone).
 * The zygote and the workers keep only descriptors 0-2 and their own socket: a
 * copy of another pool's socket, or of the loop's epoll, would keep that pool's
 * workers from ever seeing end-of-file.
 *
 * Wire format on a worker's stream socket, native byte order (same machine):
 *   call:  u64 fn address, u64 input length, input bytes
 *   reply: i64 rc, u64 length, bytes (the output if rc >= 0, else fn's message)
 *
 * In the parent, each worker is owned by at most one call at a time, and the task
 * of that call does all the reading and writing on the worker's socket (one waiter
 * per descriptor). A call whose task is cancelled after its request reached the
 * worker leaves the exchange in the worker's record, with any unsent input copied:
 * the next call that takes that worker first completes it and drops the late reply
 * (a worker is always drained before reuse), so no internal task is needed.
 * Calls that find no free worker wait in a FIFO queue, and a released worker is
 * handed straight to the oldest of them.
 *
 * Everything another task or weft_procpool_free touches while a caller is
 * suspended lives on the heap: the call record (owned by its task) and the pool.
 */
#include "util/dlist.h"
#include "core/core.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef WEFT__ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* The thread pool's limit, for the same reason: a typo must not fork a million. */
#define MAX_WORKERS 1024
/* The zygote answers in a fork's time; this only bounds a zygote that hangs. */
#define ZYGOTE_REPLY_MS 10000
/* A worker whose socket closed is dead or exiting; past this the zygote kills it. */
#define EXIT_GRACE_MS 2000
/* Workers that die before receiving a call are replaced and the call retried;
 * this many deaths in a row mean new workers cannot live, and the pool is broken. */
#define MAX_RETRIES 3
/* The stack the zygote (and so every worker) runs on: a main thread's, not the
 * task stack weft_procpool_new may have been called from. */
#define WORKER_STACK ((size_t)8 << 20)

enum { HEADER = 16 };

/* ------------------------------------------------------------------------ */
/* Parent-side records                                                       */
/* ------------------------------------------------------------------------ */

/* One call: allocated by weft_procpool_run, owned by its task. */
typedef struct pcall {
    weft__dlink link;            /* the pool's queue, while waiting for a worker */
    struct weft_procpool *pool;
    weft_task *task;
    struct worker *worker;       /* the worker it owns, once it has one */
    int outcome;                 /* set by whoever wakes it: 0, -ESHUTDOWN, WEFT_EBROKENPOOL */
    int shutdown_fd;             /* a freed pool's socket this call's task must close */
    char *broken_why;            /* WEFT_EBROKENPOOL while queued: why (the pool may be
                                  * freed before the task runs again) */
    bool queued;
    bool shutdown;               /* the pool was freed: touch nothing of it */
} pcall;

/* The one request/reply in flight on a worker's socket. */
typedef struct exchange {
    bool active;                 /* a request was started and its reply not fully read */
    bool discard;                /* the reply is dropped (its caller left) */
    bool out_of_memory;          /* the reply did not fit in memory: dropped */
    unsigned char request[HEADER];
    const unsigned char *in;     /* the caller's input, or in_copy once it left */
    unsigned char *in_copy;
    size_t in_len;
    size_t sent;                 /* bytes of request + in written */
    unsigned char reply[HEADER];
    size_t reply_got;
    unsigned char *out;          /* the reply's bytes (NULL while discarding) */
    size_t out_len, out_got;
} exchange;

typedef struct worker {
    int fd;                      /* our end of its socket; -1 once dead and not replaced */
    weft__fd io;                 /* its watcher while a call waits on it (see pump) */
    pid_t pid;
    pcall *owner;
    exchange ex;
} worker;

struct weft_procpool {
    int ctl;                     /* SOCK_SEQPACKET to the zygote */
    pid_t zygote;
    size_t count;
    worker *workers;
    weft__dlist queue;           /* calls waiting for a worker, oldest first */
    bool broken;
    char *broken_why;
};

/* ------------------------------------------------------------------------ */
/* Messages between the parent and the zygote                               */
/* ------------------------------------------------------------------------ */

enum { ZYGOTE_SPAWN = 1, ZYGOTE_REPLACE = 2 };

typedef struct zygote_request {
    int32_t op;
    int32_t dead_pid;            /* REPLACE: the worker that died */
} zygote_request;

typedef struct zygote_reply {
    int32_t pid;                 /* the new worker, or 0 */
    int32_t err;                 /* why there is none (negative errno) */
    int32_t dead_known;          /* REPLACE: the zygote reaped the dead worker */
    int32_t dead_status;         /* ... and this is its wait status */
} zygote_reply;

/* ------------------------------------------------------------------------ */
/* Small blocking I/O helpers, for the zygote, the workers and creation     */
/* ------------------------------------------------------------------------ */

/* Reads exactly len bytes: 1, 0 at end-of-file before any byte, -1 otherwise. */
static int read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            return got == 0 ? 0 : -1;
        else if (errno != EINTR)
            return -1;
    }
    return 1;
}

static int send_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno != EINTR)
            return -1;
    }
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Closes every descriptor from 3 up except `keep`. */
static void close_other_fds(int keep)
{
    if (keep > 3)
        close_range(3, (unsigned)keep - 1, 0);
    if (close_range((unsigned)keep + 1, ~0u, 0) == 0)
        return;
    /* Kernels before 5.9: walk the table. */
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

/* ------------------------------------------------------------------------ */
/* The worker process                                                       */
/* ------------------------------------------------------------------------ */

static void worker_reply(int fd, int64_t rc, const void *bytes, size_t len)
{
    unsigned char header[HEADER];
    uint64_t ulen = len;
    memcpy(header, &rc, 8);
    memcpy(header + 8, &ulen, 8);
    /* The parent shut the socket (pool freed, call abandoned at free): done. */
    if (send_full(fd, header, HEADER) != 0 || (len && send_full(fd, bytes, len) != 0))
        _exit(0);
}

static WEFT__NORETURN void worker_main(int fd)
{
    for (;;) {
        unsigned char header[HEADER];
        int r = read_full(fd, header, HEADER);
        if (r == 0)
            _exit(0); /* end-of-file: the pool was freed or the parent is gone */
        if (r < 0)
            _exit(1);
        uint64_t fn_bits, in_len;
        memcpy(&fn_bits, header, 8);
        memcpy(&in_len, header + 8, 8);
        unsigned char *in = in_len <= SIZE_MAX - 1 ? malloc((size_t)in_len + 1) : NULL;
        if (!in) {
            /* Consume the input anyway so the stream stays in step. */
            unsigned char sink[4096];
            for (uint64_t left = in_len; left > 0;) {
                size_t chunk = left < sizeof sink ? (size_t)left : sizeof sink;
                if (read_full(fd, sink, chunk) != 1)
                    _exit(1);
                left -= chunk;
            }
            char msg[160];
            int n = snprintf(msg, sizeof msg,
                             "worker process %d has no memory for the %llu bytes of input",
                             (int)getpid(), (unsigned long long)in_len);
            worker_reply(fd, -ENOMEM, msg, (size_t)n);
            continue;
        }
        if (in_len && read_full(fd, in, (size_t)in_len) != 1)
            _exit(1);
        char *stale = NULL;
        weft__thread_error_take(&stale); /* a message left by an earlier call */
        free(stale);

        weft_proc_fn fn = (weft_proc_fn)(uintptr_t)fn_bits;
        void *out = NULL;
        size_t out_len = 0;
        int rc = fn(in, (size_t)in_len, &out, &out_len);
        free(in);
        fflush(NULL); /* what fn printed shows now, not when the worker exits */
        if (rc < 0) {
            char *msg = NULL;
            weft__thread_error_take(&msg);
            free(out);
            worker_reply(fd, rc, msg, msg ? strlen(msg) : 0);
            free(msg);
        } else {
            worker_reply(fd, 0, out, out ? out_len : 0);
            free(out);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The zygote process                                                       */
/* ------------------------------------------------------------------------ */

typedef struct dead_worker {
    pid_t pid;
    int status;
} dead_worker;

typedef struct zygote {
    int ctl;
    pid_t self;
    sigset_t original_mask;      /* the workers get these back */
    struct sigaction original_chld;
    sigset_t wait_mask;          /* original_mask without SIGCHLD: ppoll's */
    dead_worker *dead;           /* reaped, not yet asked about */
    size_t ndead, dead_cap;
} zygote;

static void on_sigchld(int sig)
{
    (void)sig; /* only interrupts ppoll, so the zygote reaps */
}

static void remember_dead(zygote *z, pid_t pid, int status)
{
    if (z->ndead == z->dead_cap) {
        size_t cap = z->dead_cap ? z->dead_cap * 2 : 8;
        dead_worker *grown = realloc(z->dead, cap * sizeof *grown);
        if (!grown)
            return; /* the parent will hear "status unknown" */
        z->dead = grown;
        z->dead_cap = cap;
    }
    z->dead[z->ndead++] = (dead_worker){pid, status};
}

static void reap_dead(zygote *z)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        remember_dead(z, pid, status);
}

/* How `pid` ended, reaping it if needed: 1 with *status, or 0 if unknown. A worker
 * whose socket closed is exiting; one that outlives the grace period (its function
 * closed the socket) is killed, so it is gone either way. */
static int dead_status(zygote *z, pid_t pid, int *status)
{
    reap_dead(z);
    for (size_t i = 0; i < z->ndead; i++) {
        if (z->dead[i].pid == pid) {
            *status = z->dead[i].status;
            z->dead[i] = z->dead[--z->ndead];
            return 1;
        }
    }
    for (int waited = 0; waited < EXIT_GRACE_MS; waited++) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return 0; /* not our child */
        sleep_ms(1);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR)
            return 0;
    }
    return 1;
}

/* Forks a worker: its pid and, in *fd, the parent's end of its socket; or -errno. */
static pid_t fork_worker(zygote *z, int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        return -err;
    }
    if (pid == 0) {
        close(sv[0]);
        close(z->ctl);
        sigaction(SIGCHLD, &z->original_chld, NULL);
        sigprocmask(SIG_SETMASK, &z->original_mask, NULL);
        /* The zygote gone means the pool is gone: stop at once, even mid-call. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != z->self)
            _exit(0);
        worker_main(sv[1]);
    }
    close(sv[1]);
    *fd = sv[0];
    return pid;
}

static void zygote_answer(zygote *z, const zygote_reply *reply, int fd)
{
    struct iovec iov = {(void *)reply, sizeof *reply};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    while (sendmsg(z->ctl, &msg, MSG_NOSIGNAL) < 0) {
        if (errno != EINTR)
            return; /* the parent is gone: the next recv sees end-of-file */
    }
}

static WEFT__NORETURN void zygote_main(zygote *z)
{
    for (;;) {
        reap_dead(z);
        struct pollfd p = {.fd = z->ctl, .events = POLLIN};
        if (ppoll(&p, 1, NULL, &z->wait_mask) < 0) {
            if (errno == EINTR)
                continue; /* SIGCHLD: reap */
            break;
        }
        zygote_request req;
        ssize_t n = recv(z->ctl, &req, sizeof req, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n != (ssize_t)sizeof req)
            break; /* end-of-file: the pool was freed (or the parent died) */
        zygote_reply reply = {0};
        if (req.op == ZYGOTE_REPLACE) {
            int status = 0;
            reply.dead_known = dead_status(z, req.dead_pid, &status);
            reply.dead_status = status;
        }
        int fd = -1;
        pid_t pid = fork_worker(z, &fd);
        if (pid < 0)
            reply.err = pid;
        else
            reply.pid = pid;
        zygote_answer(z, &reply, fd);
        if (fd >= 0)
            close(fd);
    }
    /* The workers finish their current calls, see end-of-file and exit. */
    for (;;) {
        if (waitpid(-1, NULL, 0) < 0 && errno != EINTR)
            break;
    }
    _exit(0);
}

static WEFT__NORETURN void zygote_entry(void *arg)
{
#ifdef WEFT__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    zygote_main(arg);
}

/* Runs in the child of weft_procpool_new's fork; never returns. */
static WEFT__NORETURN void zygote_start(int ctl, pid_t parent)
{
    /* A copy of the program's loop is in this memory: weft calls made by worker
     * functions must not mistake it for theirs. */
    weft__loop = NULL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    close_other_fds(ctl);

    /* On this stack, which stays mapped: the zygote never returns to it. */
    zygote z;
    memset(&z, 0, sizeof z);
    z.ctl = ctl;
    z.self = getpid();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &z.original_mask);
    z.wait_mask = z.original_mask;
    sigdelset(&z.wait_mask, SIGCHLD);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_NOCLDSTOP; /* no SA_RESTART: ppoll must return */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, &z.original_chld);
    /* A terminal's Ctrl-\ goes to the whole foreground group: the parent's (the SIGQUIT
     * task dump, or its death) is what it is for, not the pool's workers, which would
     * die mid-call and break the pool. Workers inherit it from the zygote. */
    signal(SIGQUIT, SIG_IGN);

    /* Move to a fresh stack of a main thread's size: the fork may have happened on
     * a small task stack, and worker functions get the zygote's stack. */
    size_t page = weft__page_size();
    char *mem = mmap(NULL, WORKER_STACK + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED)
        zygote_main(&z);
    mprotect(mem, page, PROT_NONE); /* a guard page: overflow is a crash, not damage */
    weft__ctx here, there;
    weft__ctx_make(&there, mem + page, WORKER_STACK, zygote_entry, &z);
#ifdef WEFT__ASAN
    __sanitizer_start_switch_fiber(NULL, mem + page, WORKER_STACK);
#endif
    weft__ctx_switch(&here, &there);
    _exit(1); /* never comes back */
}

/* ------------------------------------------------------------------------ */
/* Parent: talking to the zygote                                            */
/* ------------------------------------------------------------------------ */

/*
 * One request to the zygote and its reply, blocking (a fork's time; only ever on
 * creation and after a worker died). On success the new worker's socket is made
 * non-blocking for the loop. Returns 0, or a negative errno with *why set.
 */
static int zygote_call(weft_procpool *pool, int op, pid_t dead_pid, zygote_reply *reply, int *fd,
                       const char **why)
{
    *fd = -1;
    zygote_request req = {op, dead_pid};
    if (send(pool->ctl, &req, sizeof req, MSG_NOSIGNAL) != (ssize_t)sizeof req) {
        *why = "the pool's helper process is gone";
        return -EPIPE;
    }
    struct pollfd p = {.fd = pool->ctl, .events = POLLIN};
    int64_t deadline = weft__mono_ns() + (int64_t)ZYGOTE_REPLY_MS * 1000000;
    for (;;) {
        int64_t left = (deadline - weft__mono_ns()) / 1000000;
        if (left <= 0) {
            *why = "the pool's helper process did not answer";
            return -ETIMEDOUT;
        }
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            break;
        if (r < 0 && errno != EINTR) {
            *why = "waiting for the pool's helper process failed";
            return -errno;
        }
    }
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {reply, sizeof *reply};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    while ((n = recvmsg(pool->ctl, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof *reply) {
        *why = "the pool's helper process is gone";
        return -EPIPE;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(fd, CMSG_DATA(c), sizeof *fd);
    if (reply->pid <= 0 || *fd < 0) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        *why = "the pool's helper process could not start a worker";
        return reply->err ? reply->err : -EAGAIN;
    }
    int flags = fcntl(*fd, F_GETFL);
    if (flags < 0 || fcntl(*fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int err = -errno;
        close(*fd);
        *fd = -1;
        *why = "making the worker's socket non-blocking failed";
        return err;
    }
    return 0;
}

/* "it was killed by signal 9 (Killed)", "it exited with status 1", ... */
static void describe_end(char *buf, size_t size, int known, int status)
{
    if (!known)
        snprintf(buf, size, "how it ended is unknown");
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "it was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, size, "it exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, size, "it ended with wait status %#x", (unsigned)status);
}

/* ------------------------------------------------------------------------ */
/* Parent: the queue of calls waiting for a worker                          */
/* ------------------------------------------------------------------------ */

static void enqueue(weft_procpool *pool, pcall *c)
{
    weft__dlist_push_back(&pool->queue, &c->link);
    c->queued = true;
}

static void dequeue(weft_procpool *pool, pcall *c)
{
    weft__dlist_unlink(&pool->queue, &c->link);
    c->queued = false;
}

/* The oldest call waiting for a worker, or NULL. */
static pcall *queue_first(weft_procpool *pool)
{
    return pool->queue.head ? WEFT__CONTAINER_OF(pool->queue.head, pcall, link) : NULL;
}

/* A queued caller is cancelled: it leaves the queue, its call never sent. */
static void queue_unwait(weft_task *self, int reason)
{
    (void)reason;
    pcall *c = self->wait_obj;
    if (c->queued)
        dequeue(c->pool, c);
}

/* weft_dump: the call waits in the pool's queue for a free worker process. */
static void queue_describe(const weft_task *self, char *buf, size_t size)
{
    const pcall *c = self->wait_obj;
    if (c->shutdown || !c->queued) {
        snprintf(buf, size, "handed a worker, not resumed yet");
        return;
    }
    size_t place = 1, n = 0;
    for (const weft__dlink *l = c->pool->queue.head; l; l = l->next, n++)
        if (l == &c->link)
            place = n + 1;
    snprintf(buf, size, "pool %p: waiting for one of its %zu workers, %zu of %zu in its queue",
             (const void *)c->pool, c->pool->count, place, n);
}

static const weft__wait_kind queue_wait = {"process pool call", queue_unwait, queue_describe};

/* A worker is free again: to the oldest waiting call, or idle. */
static void release(weft_procpool *pool, worker *w)
{
    w->owner = NULL;
    pcall *next = queue_first(pool);
    if (!next || w->fd < 0)
        return;
    dequeue(pool, next);
    w->owner = next;
    next->worker = w;
    next->outcome = 0;
    weft__wake(next->task, 0);
}

/* An idle worker, preferring one with no late reply to drain; NULL if none. */
static worker *pick_free(weft_procpool *pool)
{
    worker *draining = NULL;
    for (size_t i = 0; i < pool->count; i++) {
        worker *w = &pool->workers[i];
        if (w->owner || w->fd < 0)
            continue;
        if (!w->ex.active)
            return w;
        if (!draining)
            draining = w;
    }
    return draining;
}

static int broken_error_why(const char *why)
{
    return weft__set_errmsg(WEFT_EBROKENPOOL,
                            "weft_procpool_run: the process pool is broken: %s. It refuses new "
                            "calls: free it and create a new one",
                            why ? why : "a worker could not be replaced");
}

static int broken_error(weft_procpool *pool)
{
    return broken_error_why(pool->broken_why);
}

/* The pool can no longer replace workers: calls waiting for one fail. */
static void break_pool(weft_procpool *pool, const char *why)
{
    pool->broken = true;
    if (!pool->broken_why)
        pool->broken_why = strdup(why);
    for (pcall *c; (c = queue_first(pool));) {
        dequeue(pool, c);
        c->outcome = WEFT_EBROKENPOOL;
        c->broken_why = pool->broken_why ? strdup(pool->broken_why) : NULL;
        weft__wake(c->task, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Parent: exchanges on a worker's socket                                   */
/* ------------------------------------------------------------------------ */

static void exchange_reset(exchange *ex)
{
    free(ex->in_copy);
    free(ex->out);
    memset(ex, 0, sizeof *ex);
}

enum { PUMP_DONE = 0, PUMP_DEAD = 1, PUMP_SHUTDOWN = 2 };

/* Reads and drops up to `left` bytes. Not inlined, so that its buffer is not on
 * the stack while the caller is suspended (a compact task's frames are copied at
 * each suspension). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static ssize_t recv_dropped(int fd, size_t left)
{
    unsigned char sink[4096];
    return recv(fd, sink, left < sizeof sink ? left : sizeof sink, MSG_DONTWAIT);
}

/*
 * Moves the worker's exchange forward until its reply is complete. Returns
 * PUMP_DONE, PUMP_DEAD (the worker's socket closed or failed: it died),
 * PUMP_SHUTDOWN (the pool was freed while waiting: neither the pool nor the
 * worker may be touched), or a negative code from the wait (-ECANCELED, ...),
 * leaving the exchange where it stands.
 */
static int pump_wait(pcall *c, worker *w);

/*
 * The pool may serve loops one after another (it is made before them), so the
 * worker's socket is watched only while a call waits on it: registered by the
 * first wait of a pump, forgotten when the pump ends.
 */
static int pump(pcall *c, worker *w)
{
    weft__fd_init(&w->io, w->fd);
    int rc = pump_wait(c, w);
    if (rc != PUMP_SHUTDOWN)
        weft__fd_forget(weft__loop, &w->io); /* under shutdown, the pool is gone */
    return rc;
}

static int pump_wait(pcall *c, worker *w)
{
    exchange *ex = &w->ex;
    for (;;) {
        uint32_t want;
        ssize_t n;
        size_t total = HEADER + ex->in_len;
        if (ex->sent < total) {
            struct iovec iov[2];
            int k = 0;
            if (ex->sent < HEADER)
                iov[k++] = (struct iovec){ex->request + ex->sent, HEADER - ex->sent};
            size_t in_done = ex->sent > HEADER ? ex->sent - HEADER : 0;
            if (ex->in_len > in_done)
                iov[k++] = (struct iovec){(void *)(ex->in + in_done), ex->in_len - in_done};
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)k};
            n = sendmsg(w->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                ex->sent += (size_t)n;
                continue;
            }
            want = WEFT__POLL_OUT;
        } else if (ex->reply_got < HEADER) {
            n = recv(w->fd, ex->reply + ex->reply_got, HEADER - ex->reply_got, MSG_DONTWAIT);
            if (n > 0) {
                ex->reply_got += (size_t)n;
                if (ex->reply_got == HEADER) {
                    uint64_t len;
                    memcpy(&len, ex->reply + 8, 8);
                    ex->out_len = (size_t)len;
                    if (!ex->discard && len > 0) {
                        ex->out = len < SIZE_MAX ? malloc((size_t)len + 1) : NULL;
                        if (!ex->out) {
                            ex->out_of_memory = true;
                            ex->discard = true;
                        }
                    }
                    if (ex->out_len == 0)
                        return PUMP_DONE;
                }
                continue;
            }
            if (n == 0)
                return PUMP_DEAD;
            want = WEFT__POLL_IN;
        } else if (ex->out_got < ex->out_len) {
            size_t left = ex->out_len - ex->out_got;
            if (ex->out)
                n = recv(w->fd, ex->out + ex->out_got, left, MSG_DONTWAIT);
            else
                n = recv_dropped(w->fd, left);
            if (n > 0) {
                ex->out_got += (size_t)n;
                if (ex->out_got == ex->out_len)
                    return PUMP_DONE;
                continue;
            }
            if (n == 0)
                return PUMP_DEAD;
            want = WEFT__POLL_IN;
        } else {
            return PUMP_DONE;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return PUMP_DEAD; /* EPIPE, ECONNRESET: the other end is gone */
        int rc = weft__fd_wait(weft__loop, &w->io, want);
        if (c->shutdown)
            return PUMP_SHUTDOWN;
        if (rc < 0)
            return rc;
    }
}

/*
 * The caller leaves while its request is in flight: the exchange stays with the
 * worker, to be completed and its reply dropped by the next call that takes it.
 * The caller's input will be gone, so what is unsent is copied. Returns false when
 * there is no memory for that copy (the worker must then be given up).
 */
static bool exchange_abandon(exchange *ex)
{
    size_t in_done = ex->sent > HEADER ? ex->sent - HEADER : 0;
    if (ex->sent < HEADER + ex->in_len && !ex->in_copy) {
        size_t rest = ex->in_len - in_done;
        unsigned char *copy = malloc(rest ? rest : 1);
        if (!copy)
            return false;
        memcpy(copy, ex->in + in_done, rest);
        ex->in_copy = copy;
        ex->in = copy;
        ex->in_len = rest;
        ex->sent -= in_done;
    } else if (ex->sent >= HEADER + ex->in_len) {
        ex->in = NULL; /* fully sent: the caller's buffer is no longer needed */
    }
    free(ex->out);
    ex->out = NULL;
    ex->discard = true;
    return true;
}

/*
 * The worker in slot w died (its socket closed or failed) `when` ("during the
 * call", ...): ask the zygote how it ended and for a replacement in the same slot.
 * Writes into `ended` how it died. Returns 0 (w is a fresh worker) or a negative
 * code: the pool is then broken, and says why.
 */
static int replace(weft_procpool *pool, worker *w, const char *when, char *ended, size_t ended_size)
{
    pid_t dead = w->pid;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    w->pid = 0;
    exchange_reset(&w->ex);
    zygote_reply reply = {0};
    const char *why = NULL;
    int fd;
    int rc = zygote_call(pool, ZYGOTE_REPLACE, dead, &reply, &fd, &why);
    describe_end(ended, ended_size, reply.dead_known, reply.dead_status);
    if (rc != 0) {
        char text[384];
        snprintf(text, sizeof text, "worker process %d died %s and could not be replaced: %s (%s); %s",
                 (int)dead, when, why, weft_strerror(rc), ended);
        break_pool(pool, text);
        return rc;
    }
    w->fd = fd;
    w->pid = reply.pid;
    return 0;
}

/* Gives up a worker whose exchange cannot be kept: kill it and replace it. */
static void discard_worker(weft_procpool *pool, worker *w)
{
    char ended[128];
    kill(w->pid, SIGKILL);
    replace(pool, w, "when the pool stopped it", ended, sizeof ended);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

/* Other threads make fork unsafe (see weft.h). /proc unavailable: cannot tell. */
static size_t thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 1;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void pool_destroy(weft_procpool *pool)
{
    for (size_t i = 0; i < pool->count; i++) {
        if (pool->workers[i].fd >= 0)
            close(pool->workers[i].fd);
        exchange_reset(&pool->workers[i].ex);
    }
    if (pool->ctl >= 0)
        close(pool->ctl);
    if (pool->zygote > 0) {
        while (waitpid(pool->zygote, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    free(pool->workers);
    free(pool->broken_why);
    free(pool);
}

weft_procpool *weft_procpool_new(size_t workers)
{
    size_t n = workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (size_t)cpus : 1;
        if (n > MAX_WORKERS)
            n = MAX_WORKERS;
    }
    if (n > MAX_WORKERS) {
        weft__set_errmsg(-EINVAL, "weft_procpool_new: %zu workers asked, at most %d are allowed", n,
                         MAX_WORKERS);
        return NULL;
    }
    /* weft's own watchdog threads are held still around a fork: not counted. */
    size_t quiet = atomic_load(&weft__fork_quiet_threads);
    size_t threads = thread_count();
    if (threads > 1 + quiet) {
        weft__set_errmsg(-EDEADLK,
                         "weft_procpool_new: the process has %zu threads%s; forking it could copy a "
                         "lock another thread holds (malloc's, stdio's) and deadlock the workers. "
                         "Create process pools at the start of the program, before any thread "
                         "(weft_to_thread, weft_pool_run and libraries start some)",
                         threads - quiet, quiet ? " besides weft's watchdog (which is held still)" : "");
        return NULL;
    }
    weft_procpool *pool = calloc(1, sizeof *pool);
    worker *ws = calloc(n, sizeof *ws);
    if (!pool || !ws) {
        free(pool);
        free(ws);
        weft__set_errmsg(-ENOMEM, "weft_procpool_new: out of memory for a pool of %zu workers", n);
        return NULL;
    }
    pool->workers = ws;
    pool->ctl = -1;
    for (size_t i = 0; i < n; i++)
        ws[i].fd = -1;

    int ctl[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0) {
        int err = -errno;
        pool_destroy(pool);
        weft__set_errmsg(err, "weft_procpool_new: cannot create a socket for the pool's helper "
                              "process: %s", weft_strerror(err));
        return NULL;
    }
    pool->ctl = ctl[0];
    /* Buffered output would otherwise be written again by each child that flushes. */
    fflush(NULL);
    pid_t parent = getpid();
    pid_t z = fork();
    if (z < 0) {
        int err = -errno;
        close(ctl[1]);
        pool_destroy(pool);
        weft__set_errmsg(err, "weft_procpool_new: cannot fork the pool's helper process: %s",
                         weft_strerror(err));
        return NULL;
    }
    if (z == 0)
        zygote_start(ctl[1], parent);
    close(ctl[1]);
    pool->zygote = z;

    for (size_t i = 0; i < n; i++) {
        zygote_reply reply;
        const char *why = NULL;
        int rc = zygote_call(pool, ZYGOTE_SPAWN, 0, &reply, &ws[i].fd, &why);
        if (rc != 0) {
            pool_destroy(pool);
            weft__set_errmsg(rc, "weft_procpool_new: starting worker %zu of %zu failed: %s (%s)", i + 1, n,
                             why, weft_strerror(rc));
            return NULL;
        }
        ws[i].pid = reply.pid;
        pool->count = i + 1;
    }
    return pool;
}

/* Waits for a worker: 0 with c->worker set, or an error (the call never ran). */
static int acquire(weft_procpool *pool, pcall *c, weft_task *self)
{
    if (weft__dlist_empty(&pool->queue)) {
        worker *w = pick_free(pool);
        if (w) {
            w->owner = c;
            c->worker = w;
            return 0;
        }
    }
    enqueue(pool, c);
    int rc = weft__wait(&queue_wait, c);
    if (c->shutdown)
        return weft__set_errmsg(-ESHUTDOWN, "weft_procpool_run: the pool was freed while the call "
                                            "waited for a worker");
    if (c->worker && rc == -ECANCELED) {
        /* Handed a worker, then cancelled before running: pass it on. */
        worker *w = c->worker;
        c->worker = NULL;
        release(pool, w);
    }
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    if (rc < 0)
        return rc;
    if (c->outcome == WEFT_EBROKENPOOL)
        return broken_error_why(c->broken_why); /* freed with c */
    return 0;
}

/* Builds the caller's result from a completed exchange and clears it. */
static int take_reply(worker *w, void **out, size_t *out_len)
{
    exchange *ex = &w->ex;
    int64_t rc;
    memcpy(&rc, ex->reply, 8);
    int code = rc < INT32_MIN ? INT32_MIN : rc > 0 ? 0 : (int)rc;
    if (ex->out_of_memory) {
        code = weft__set_errmsg(-ENOMEM, "weft_procpool_run: no memory for the %zu bytes the worker "
                                         "sent back", ex->out_len);
    } else if (code < 0) {
        if (ex->out && ex->out_len) {
            ex->out[ex->out_len] = '\0';
            weft__set_errmsg(code, "%s", (char *)ex->out);
        } else {
            weft__set_errmsg(code, "the function run in worker process %d failed with %s (%s)",
                             (int)w->pid, weft_errname(code), weft_strerror(code));
        }
    } else if (ex->out_len) {
        *out = ex->out;
        *out_len = ex->out_len;
        ex->out = NULL;
    }
    exchange_reset(ex);
    return code;
}

/* The call's wait on a worker's socket ended in an error: cancellation, or the
 * poller refusing the descriptor. */
static int wait_error(weft_task *self, int rc, pid_t pid)
{
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    return weft__set_errmsg(rc, "weft_procpool_run: waiting for worker process %d failed: %s", (int)pid,
                            weft_strerror(rc));
}

/* The call gives its worker back (to the next waiting call, or idle). */
static void give_back(weft_procpool *pool, pcall *c)
{
    worker *w = c->worker;
    c->worker = NULL;
    release(pool, w);
}

/* Runs the call on the worker it owns (draining a late reply first). */
static int run_on_worker(weft_procpool *pool, pcall *c, weft_task *self, weft_proc_fn fn,
                         const void *in, size_t in_len, void **out, size_t *out_len)
{
    int deaths = 0; /* workers that died before our request reached them */
    for (;;) {
        worker *w = c->worker;
        pid_t pid = w->pid;
        char ended[128];
        int rc;
        if (w->ex.active) {
            rc = pump(c, w);
            if (rc == PUMP_SHUTDOWN)
                break;
            if (rc < 0) {
                give_back(pool, c); /* the late reply is still to be drained */
                return wait_error(self, rc, pid);
            }
            if (rc == PUMP_DEAD) {
                /* It died on an abandoned call; ours was not sent. */
                if (replace(pool, w, "during a call whose caller had left", ended, sizeof ended) != 0) {
                    give_back(pool, c);
                    return broken_error(pool);
                }
                continue;
            }
            exchange_reset(&w->ex);
        }
        exchange *ex = &w->ex;
        uint64_t fn_bits = (uint64_t)(uintptr_t)fn, len = in_len;
        memcpy(ex->request, &fn_bits, 8);
        memcpy(ex->request + 8, &len, 8);
        ex->in = in;
        ex->in_len = in_len;
        ex->active = true;
        rc = pump(c, w);
        if (rc == PUMP_SHUTDOWN)
            break;
        if (rc == PUMP_DONE) {
            rc = take_reply(w, out, out_len);
            give_back(pool, c);
            return rc;
        }
        if (rc == PUMP_DEAD) {
            bool reached = ex->sent > 0;
            if (replace(pool, w, reached ? "during the call" : "before the call", ended, sizeof ended) != 0) {
                give_back(pool, c);
                return broken_error(pool);
            }
            if (reached) {
                give_back(pool, c);
                return weft__set_errmsg(WEFT_EBROKENPOOL,
                                        "weft_procpool_run: worker process %d died during the call: %s; "
                                        "the pool replaced it with process %d and stays usable",
                                        (int)pid, ended, (int)w->pid);
            }
            /* It had died idle: the call never ran; run it on the new one. */
            if (++deaths > MAX_RETRIES) {
                break_pool(pool, "new worker processes keep dying before they receive a call");
                give_back(pool, c);
                return broken_error(pool);
            }
            continue;
        }
        /* Cancelled (or the wait failed) with the call in flight. */
        if (ex->sent == 0)
            exchange_reset(ex); /* nothing reached the worker: it never runs */
        else if (!exchange_abandon(ex))
            discard_worker(pool, w);
        give_back(pool, c);
        return wait_error(self, rc, pid);
    }
    return weft__set_errmsg(-ESHUTDOWN, "weft_procpool_run: the pool was freed during the call");
}

int weft_procpool_run(weft_procpool *pool, weft_proc_fn fn, const void *in, size_t in_len, void **out,
                      size_t *out_len)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_procpool_run must be called from a task of a "
                                                 "running weft loop (start one with weft_run)");
    const char *missing = !pool ? "the pool" : !fn ? "fn" : !out ? "out" : !out_len ? "out_len" : NULL;
    if (!missing && !in && in_len)
        missing = "in (with in_len > 0)";
    if (missing)
        return weft__set_errmsg(-EINVAL, "weft_procpool_run: %s is NULL", missing);
    if (pool->broken)
        return broken_error(pool);
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    pcall *c = calloc(1, sizeof *c);
    if (!c)
        return weft__set_errmsg(-ENOMEM, "weft_procpool_run: out of memory for the call");
    c->pool = pool;
    c->task = self;
    c->shutdown_fd = -1;
    int rc = acquire(pool, c, self);
    if (rc == 0)
        rc = run_on_worker(pool, c, self, fn, in, in_len, out, out_len);
    if (c->shutdown_fd >= 0)
        close(c->shutdown_fd);
    free(c->broken_why);
    free(c);
    return rc;
}

void weft_procpool_free(weft_procpool *pool)
{
    if (!pool)
        return;
    weft_loop *L = weft__loop;
    /* Calls waiting for a worker: woken with -ESHUTDOWN, their calls never sent. */
    for (pcall *c; (c = queue_first(pool));) {
        dequeue(pool, c);
        c->shutdown = true;
        c->outcome = -ESHUTDOWN;
        weft__wake(c->task, 0);
    }
    for (size_t i = 0; i < pool->count; i++) {
        worker *w = &pool->workers[i];
        pcall *c = w->owner;
        if (!c)
            continue;
        /* Its task may be suspended on the socket: the descriptor stays open
         * until that task has left the wait and closes it; shutting it down now
         * lets the worker see end-of-file after its current call. */
        c->shutdown = true;
        if (w->fd >= 0) {
            shutdown(w->fd, SHUT_RDWR);
            c->shutdown_fd = w->fd;
            w->fd = -1;
        }
        if (L)
            weft__fd_forget(L, &w->io); /* wakes its task (c->shutdown says why) */
    }
    pool_destroy(pool);
}
