/*
 * process.c — subprocesses (weft/process.h): asyncio's create_subprocess_exec and
 * create_subprocess_shell, their pipes as weft streams, wait, returncode, signals,
 * communicate, and the loop module that leaves no child behind.
 *
 * Starting a child: posix_spawn, which glibc makes with clone(CLONE_VM |
 * CLONE_VFORK): the child runs in this process's memory until it execs, so the
 * cost does not grow with the parent's size, no page is copied, and no other
 * thread's lock is inherited (safe with threads, as fork is not). The thread that
 * calls it waits for the exec, and glibc hands back the exec's error, so a missing
 * program is the creating call's error. That thread is not the loop's: each start
 * runs on a short-lived thread of its own (spawn_job), which posts the outcome
 * back and exits, so the loop runs on while the kernel makes the child (one
 * thread could start only one child at a time: half of what two cores can, and on
 * a loaded machine far less), and no thread outlives the starts (a process pool
 * refuses to be created beside threads). The child's file actions: the three descriptors
 * (dup2 of a pipe's end or the caller's descriptor, an open of /dev/null, or
 * stderr onto stdout), then close_range(3, ~0) (posix_spawn_file_actions_
 * addclosefrom_np), so that no other descriptor reaches it, close-on-exec or not.
 * Every descriptor weft makes here is close-on-exec, so children another thread
 * spawns meanwhile cannot inherit them either. A descriptor the caller gives
 * (WEFT_STDIO_FD) is copied above 2 first: the child's dup2s then cannot overwrite
 * one another's sources (our stdout as its stderr and our stderr as its stdout),
 * and the caller may close its own as soon as the call returns, even cancelled.
 *
 * Waiting: pidfd_open gives a descriptor that becomes readable when the child
 * exits. It is watched from creation to the end (a weft__watcher, io.h's
 * contract), whether or not a task waits, so the child is reaped by
 * waitid(P_PIDFD) in the watcher's callback as soon as it exits: no zombie, no
 * SIGCHLD handler, no polling, and nothing that could reap another part of the
 * program's children (the process pool's zygote is reaped by the pool). Signals go
 * through the pidfd too (pidfd_send_signal), and the pidfd is closed at reaping,
 * so a signal can never reach a process that reuses the pid.
 *
 * A start whose task is cancelled leaves its job to the outcome's arrival on the
 * loop, which kills the child (if one was made) and watches it until reaped; the
 * loop's end (proc_drain) waits for starts still out.
 *
 * Records: a process's record is on its loop's list from creation until it is
 * both reaped and given up (weft_process_free); a freed child still running is
 * killed and stays on the list until its pidfd says it died. Records given back
 * are kept on a free list until the loop ends, with a new generation, so that a
 * stale handle reads a process record and is refused (the handle scheme of
 * net.h). Tasks inside a call that may suspend (wait, communicate) hold the
 * record (busy) until they leave.
 */
#include "proc/process.h"

#include "net/net.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Bytes of the program's name kept for messages and reports. */
#define NAME_LEN 64
/* The chunk communicate reads an output into when the caller drops it. */
#define DISCARD_CHUNK (16 * 1024)

struct weft_process {
    uint16_t gen;                /* 1..65535, in the handle; new when given up */
    bool given_up;               /* weft_process_free was called */
    bool exited;                 /* reaped: returncode is known, the pidfd closed */
    uint32_t busy;               /* tasks inside wait or communicate */
    int returncode;
    pid_t pid;
    weft_loop *loop;
    weft__dlink link;            /* on the loop's list while in use */
    struct weft_process *next_free;
    weft__watcher w;             /* the pidfd (w.fd; -1 once reaped) */
    weft__fifo waiters;          /* tasks in weft_process_wait, through node.next */
    weft_stream *pipes[3];       /* handles of the pipes' streams, or NULL */
    char name[NAME_LEN];         /* argv[0], or "sh -c ..." */
};

/* The loop's children (slots[WEFT__SLOT_PROC]). */
typedef struct proc_loop {
    weft__dlist procs;           /* records in use: live, or freed and not reaped */
    struct weft_process *free;   /* records given back, kept for stale handles */
    size_t starting;             /* starts out on a thread (spawn_job) */
    weft_task *drainer;          /* the loop's end, waiting for them (proc_drain) */
} proc_loop;

static proc_loop *proc_state(weft_loop *L)
{
    return (proc_loop *)L->slots[WEFT__SLOT_PROC];
}

static const char *const stdio_names[3] = {"stdin", "stdout", "stderr"};

/* ------------------------------------------------------------------------ */
/* Handles                                                                  */
/* ------------------------------------------------------------------------ */

static weft_process *user_handle(weft_process *p)
{
    return (weft_process *)((uintptr_t)p | (uintptr_t)p->gen << WEFT__TAG_SHIFT | p->loop->serial);
}

/* The record h names, or NULL with the error in *err and the message set. */
static weft_process *proc_from(const weft_process *h, const char *what, int *err)
{
    uintptr_t v = (uintptr_t)h;
    weft_loop *L = weft__loop;
    if (!h) {
        *err = weft__set_errmsg(-EINVAL, "%s: the process is NULL", what);
        return NULL;
    }
    if (!L) {
        *err = weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a task or callback of the process's loop", what);
        return NULL;
    }
    if ((v & 7) != L->serial || (v >> WEFT__TAG_SHIFT) == 0) {
        *err = weft__set_errmsg(WEFT_ESTATE, "%s: the process belongs to another thread's loop (or is not a weft "
                                             "handle); use it from its own loop's tasks",
                                what);
        return NULL;
    }
    weft_process *p = (weft_process *)(v & WEFT__ADDR_MASK);
    if (p->gen != (v >> WEFT__TAG_SHIFT)) {
        *err = weft__set_errmsg(-ESTALE, "%s: the process handle is stale: it was already given up "
                                         "(weft_process_free), and its record may now belong to another process",
                                what);
        return NULL;
    }
    return p;
}

/* Decodes handle h into p, or returns the error from the enclosing function. */
#define PROC_ARG(p, h, what)                            \
    int p##_err_;                                       \
    weft_process *p = proc_from((h), (what), &p##_err_); \
    if (!p)                                             \
        return p##_err_;

/* Whether a stream handle the process holds is still open (not closed by the user
 * or aborted): checked quietly, without the message weft__net_from would set.
 * Stream records outlive their handles until the loop ends (net.h). */
static bool stream_open(weft_stream *h)
{
    if (!h)
        return false;
    uintptr_t v = (uintptr_t)h;
    const weft__net_obj *o = (const weft__net_obj *)(v & WEFT__ADDR_MASK);
    return o->kind == WEFT__NET_STREAM && o->gen == (v >> WEFT__TAG_SHIFT);
}

/* ------------------------------------------------------------------------ */
/* Reaping                                                                  */
/* ------------------------------------------------------------------------ */

static void waitq_remove(weft__fifo *q, weft_task *t)
{
    weft__node *prev = NULL;
    for (weft__node *n = q->head; n; prev = n, n = n->next) {
        if (n != &t->node)
            continue;
        if (prev)
            prev->next = n->next;
        else
            q->head = n->next;
        if (q->tail == n)
            q->tail = prev;
        q->count--;
        return;
    }
}

/* The child has been reaped: its status is kept, the pidfd goes (the watcher
 * first, as io.h requires) and every waiting task is woken. */
static void set_exited(weft_process *p, int returncode)
{
    p->exited = true;
    p->returncode = returncode;
    weft__watcher_forget(&p->loop->io, &p->w);
    close(p->w.fd);
    p->w.fd = -1;
    weft__node *n;
    while ((n = weft__fifo_pop(&p->waiters)) != NULL)
        weft__wake((weft_task *)n, 0);
}

/* Reaps the child if it has exited (options WNOHANG), or once it has (options 0:
 * blocks the thread; only after SIGKILL). Returns whether it is reaped. */
static bool reap(weft_process *p, int options)
{
    if (p->exited)
        return true;
    siginfo_t si;
    idtype_t type = P_PIDFD;
    id_t id = (id_t)p->w.fd;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (waitid(type, id, &si, WEXITED | options) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EINVAL && type == P_PIDFD) {
            /* A kernel with pidfd_open but not waitid(P_PIDFD) (Linux 5.3): the pid
             * is this process's unreaped child, so it cannot have been reused. */
            type = P_PID;
            id = (id_t)p->pid;
            continue;
        }
        /* ECHILD: something else reaped it (a SIGCHLD handler calling waitpid(-1),
         * or SIGCHLD ignored). asyncio's pidfd watcher reports 255 likewise. */
        weft__report("weft: the exit status of process %d (\"%s\") was taken by something else in this program "
                     "(a SIGCHLD handler that reaps every child, or SIGCHLD set to SIG_IGN); its returncode is "
                     "reported as 255",
                     (int)p->pid, p->name);
        set_exited(p, 255);
        return true;
    }
    if (si.si_pid == 0)
        return false; /* WNOHANG: still running */
    set_exited(p, si.si_code == CLD_EXITED ? si.si_status : -si.si_status);
    return true;
}

/* The record goes back to the free list once nothing holds it: given up, reaped,
 * and no task inside a call on it. */
static void maybe_recycle(weft_process *p)
{
    if (!p->given_up || !p->exited || p->busy > 0)
        return;
    proc_loop *st = proc_state(p->loop);
    weft__dlist_unlink(&st->procs, &p->link);
    p->next_free = st->free;
    st->free = p;
}

static void enter(weft_process *p)
{
    p->busy++;
}

static void leave(weft_process *p)
{
    p->busy--;
    maybe_recycle(p);
}

/* The pidfd is readable: the child has exited. */
static void pidfd_ready(weft__watcher *w, unsigned events)
{
    (void)events;
    weft_process *p = WEFT__CONTAINER_OF(w, weft_process, w);
    if (reap(p, WNOHANG))
        maybe_recycle(p);
}

/* Kills a child that must not outlive its handle, by its pidfd. */
static void kill_child(weft_process *p)
{
    if (!p->exited && !reap(p, WNOHANG))
        (void)pidfd_send_signal(p->w.fd, SIGKILL, NULL, 0);
}

/* Aborts the pipes' streams still open (the user may have closed some). */
static void abort_pipes(weft_process *p)
{
    for (int i = 0; i < 3; i++) {
        if (stream_open(p->pipes[i]))
            (void)weft_stream_abort(p->pipes[i]);
        p->pipes[i] = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Starting a child                                                         */
/* ------------------------------------------------------------------------ */

/* How one of the child's three descriptors is made, and what the parent keeps. */
typedef struct stdio_plan {
    int src;                     /* the descriptor dup2'd onto 0/1/2, or -1 */
    bool close_src;              /* src is ours (a pipe's end, a copy): close it after */
    weft_stream *stream;         /* the parent's end of a pipe */
} stdio_plan;

static void plans_undo(stdio_plan plan[3])
{
    for (int i = 0; i < 3; i++) {
        if (plan[i].close_src && plan[i].src >= 0)
            close(plan[i].src);
        plan[i].src = -1;
        plan[i].close_src = false;
        if (plan[i].stream)
            (void)weft_stream_abort(plan[i].stream);
        plan[i].stream = NULL;
    }
}

/* Makes the pipes and checks the caller's descriptors. Returns 0 or an error with
 * the message set (what's made so far is undone by the caller: plans_undo). */
static int plans_make(stdio_plan plan[3], const weft_process_options *o, const char *what)
{
    static const weft_process_options none;
    if (!o)
        o = &none;
    const weft_stdio kinds[3] = {o->in, o->out, o->err};
    const int fds[3] = {o->in_fd, o->out_fd, o->err_fd};
    for (int i = 0; i < 3; i++) {
        plan[i].src = -1;
        plan[i].close_src = false;
        plan[i].stream = NULL;
    }
    for (int i = 0; i < 3; i++) {
        switch (kinds[i]) {
        case WEFT_STDIO_INHERIT:
        case WEFT_STDIO_DEVNULL:
            break;
        case WEFT_STDIO_STDOUT:
            if (i != 2)
                return weft__set_errmsg(-EINVAL, "%s: WEFT_STDIO_STDOUT is for stderr only (opts->%s)", what,
                                        i == 0 ? "in" : "out");
            break;
        case WEFT_STDIO_FD:
            /* The start's own copy: the caller may close its descriptor (a task
             * cancelled during the start) before the start's thread uses it. */
            plan[i].src = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (plan[i].src < 0) {
                int e = fds[i] < 0 || errno == EBADF ? -EBADF : -errno;
                return weft__set_errmsg(e, "%s: the descriptor %d given for the child's %s %s", what, fds[i],
                                        stdio_names[i], e == -EBADF ? "is not open" : weft_strerror(e));
            }
            plan[i].close_src = true;
            break;
        case WEFT_STDIO_PIPE: {
            int pfd[2];
            if (pipe2(pfd, O_CLOEXEC) != 0) {
                int e = -errno;
                return weft__set_errmsg(e, "%s: cannot make a pipe for the child's %s: %s", what, stdio_names[i],
                                        weft_strerror(e));
            }
            int child = i == 0 ? pfd[0] : pfd[1], mine = i == 0 ? pfd[1] : pfd[0];
            plan[i].src = child;
            plan[i].close_src = true;
            plan[i].stream = weft_stream_from_fd(mine, &o->stream);
            if (!plan[i].stream) {
                close(mine);
                return weft__set_errmsg(weft_errcode(), "%s: the child's %s: %s", what, stdio_names[i],
                                        weft_errmsg());
            }
            break;
        }
        default:
            return weft__set_errmsg(-EINVAL, "%s: %d is not a weft_stdio value (opts->%s)", what, (int)kinds[i],
                                    i == 0 ? "in" : i == 1 ? "out" : "err");
        }
    }
    return 0;
}

/* The file actions and attributes of the child. Returns 0 or a positive errno. */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, const stdio_plan plan[3],
                       const weft_process_options *o)
{
    int e = 0;
    if (o && o->cwd)
        e = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
    const weft_stdio kinds[3] = {o ? o->in : WEFT_STDIO_INHERIT, o ? o->out : WEFT_STDIO_INHERIT,
                                 o ? o->err : WEFT_STDIO_INHERIT};
    for (int i = 0; i < 3 && e == 0; i++) {
        if (plan[i].src >= 0)
            e = posix_spawn_file_actions_adddup2(fa, plan[i].src, i);
        else if (kinds[i] == WEFT_STDIO_DEVNULL)
            e = posix_spawn_file_actions_addopen(fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
        else if (kinds[i] == WEFT_STDIO_STDOUT)
            e = posix_spawn_file_actions_adddup2(fa, 1, 2);
    }
    if (e == 0)
        e = posix_spawn_file_actions_addclosefrom_np(fa, 3);
    sigset_t empty, deflt;
    sigemptyset(&empty);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGPIPE);
    sigaddset(&deflt, SIGXFSZ);
    if (e == 0)
        e = posix_spawnattr_setsigmask(attr, &empty);
    if (e == 0)
        e = posix_spawnattr_setsigdefault(attr, &deflt);
    if (e == 0)
        e = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    return e;
}

/* env's PATH, or Python's os.defpath when it has none. */
static const char *env_path(const char *const *env)
{
    for (; *env; env++)
        if (strncmp(*env, "PATH=", 5) == 0)
            return *env + 5;
    return "/bin:/usr/bin";
}

/* Finds file in path as execvp would: 0 with the full name in buf, or a positive
 * errno (ENOENT: none; EACCES: one exists but cannot be executed). */
static int path_search(const char *file, const char *path, char *buf, size_t size)
{
    int found_but = ENOENT;
    for (const char *dir = path;; dir++) {
        const char *end = strchr(dir, ':');
        size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
        int n = dlen ? snprintf(buf, size, "%.*s/%s", (int)dlen, dir, file) : snprintf(buf, size, "%s", file);
        if (n > 0 && (size_t)n < size) {
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
                if (faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) == 0)
                    return 0;
                found_but = EACCES;
            } else if (errno == EACCES) {
                found_but = EACCES;
            }
        }
        if (!end)
            return found_but;
        dir = end;
    }
}

/* The message of a failed exec. Returns the negated error. */
static int spawn_error(int e, const char *what, const char *name, const weft_process_options *o, bool searched)
{
    if (o && o->cwd && (e == ENOENT || e == ENOTDIR || e == EACCES)) {
        /* The child's chdir or the exec: the directory tells which. */
        struct stat st;
        int ce = 0;
        if (stat(o->cwd, &st) != 0)
            ce = errno;
        else if (!S_ISDIR(st.st_mode))
            ce = ENOTDIR;
        else if (access(o->cwd, X_OK) != 0)
            ce = errno;
        if (ce) {
            return weft__set_errmsg(-ce, "%s: cannot run \"%s\": cannot change to its working directory \"%s\": %s",
                                    what, name, o->cwd, strerror(ce));
        }
    }
    if (e == ENOENT)
        return weft__set_errmsg(-e, "%s: cannot run \"%s\": %s (%s)", what, name, strerror(e),
                                searched ? "not found in PATH" : "no such file");
    return weft__set_errmsg(-e, "%s: cannot run \"%s\": %s", what, name, strerror(e));
}

static weft_process *record_new(weft_loop *L)
{
    proc_loop *st = proc_state(L);
    weft_process *p = st->free;
    if (p) {
        st->free = p->next_free;
    } else {
        p = calloc(1, sizeof *p);
        if (!p)
            return NULL;
        p->gen = 1;
    }
    uint16_t gen = p->gen;
    memset(p, 0, sizeof *p);
    p->gen = gen;
    p->loop = L;
    p->w.fd = -1;
    return p;
}

static void record_drop(weft_loop *L, weft_process *p)
{
    proc_loop *st = proc_state(L);
    p->next_free = st->free;
    st->free = p;
}

/* Kills and reaps a child whose record could not be completed. */
static void abandon_child(pid_t pid, int pidfd)
{
    if (pidfd >= 0) {
        (void)pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0 && errno == EINTR) {
        }
        close(pidfd);
        return;
    }
    /* Not reaped yet, so the pid is still this child's. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/*
 * A start, run by a short-lived thread of its own so that the loop does not wait
 * while the kernel makes the child and the child execs (the vfork window: tens of
 * microseconds on an idle machine, far more on a loaded one, and the loop would
 * stand still for all of it); the thread posts the outcome back and exits. What
 * the thread reads is the job's own copy: the task that asked may be cancelled
 * meanwhile, and then the outcome's arrival on the loop kills the child and reaps
 * it. From a callback, or without a thread, the loop's thread runs the job itself.
 */
typedef struct spawn_job {
    weft_process *p;             /* the record to fill (the loop's: the thread never touches it) */
    weft_loop *loop;             /* the handle to post the outcome to */
    weft_task *task;             /* the task waiting for it; NULL once it left */
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ready, attr_ready;
    bool search;                 /* argv[0] is searched in the PATH of envp */
    int close_fds[3];            /* the child's ends of the pipes, and copies: closed once it has them */
    int nclose;
    char **argv, **envp;         /* copies: pointers and strings in one block each */
    int err;                     /* posix_spawn's error (positive), or 0 */
    int pidfd_err;               /* pidfd_open's (positive): the child was then killed and reaped */
    pid_t pid;
    int pidfd;
} spawn_job;

/* A NULL-ended array of strings copied into one allocation; NULL on ENOMEM. */
static char **strv_copy(const char *const *v)
{
    size_t n = 0, bytes = 0;
    for (; v[n]; n++)
        bytes += strlen(v[n]) + 1;
    char **out = malloc((n + 1) * sizeof *out + bytes);
    if (!out)
        return NULL;
    char *s = (char *)(out + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;
        memcpy(s, v[i], len);
        out[i] = s;
        s += len;
    }
    out[n] = NULL;
    return out;
}

static void job_free(spawn_job *j)
{
    for (int i = 0; i < j->nclose; i++)
        close(j->close_fds[i]);
    if (j->fa_ready)
        posix_spawn_file_actions_destroy(&j->fa);
    if (j->attr_ready)
        posix_spawnattr_destroy(&j->attr);
    free(j->argv);
    free(j->envp);
    free(j);
}

/* The job for argv with the plan's descriptors (whose child ends it takes over).
 * NULL with the message set. */
static spawn_job *job_make(weft_process *p, const char *const argv[], bool search, stdio_plan plan[3],
                           const weft_process_options *o, const char *what)
{
    spawn_job *j = calloc(1, sizeof *j);
    if (!j) {
        weft__set_errmsg(-ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    j->p = p;
    j->search = search;
    j->pidfd = -1;
    j->argv = strv_copy(argv);
    /* The environment is read here, on the loop's thread, as the caller sees it. */
    static const char *const no_env[] = {NULL}; /* after clearenv(), environ is NULL */
    j->envp = strv_copy(o && o->env ? o->env : environ ? (const char *const *)environ : no_env);
    int e = j->argv && j->envp ? 0 : ENOMEM;
    if (e == 0 && (e = posix_spawn_file_actions_init(&j->fa)) == 0)
        j->fa_ready = true;
    if (e == 0 && (e = posix_spawnattr_init(&j->attr)) == 0)
        j->attr_ready = true;
    if (e == 0)
        e = spawn_setup(&j->fa, &j->attr, plan, o);
    if (e != 0) {
        job_free(j);
        weft__set_errmsg(-e, "%s: cannot prepare the child: %s", what, strerror(e));
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        if (plan[i].close_src) {
            j->close_fds[j->nclose++] = plan[i].src;
            plan[i].close_src = false;
        }
    }
    return j;
}

/* Starts the child (on any thread): posix_spawn, then its pidfd. */
static void job_run(spawn_job *j)
{
    const char *path = j->argv[0];
    char full[4096];
    int e = 0;
    if (j->search && !strchr(path, '/')) {
        /* The child's own PATH, as Python's subprocess searches it. */
        e = path_search(path, env_path((const char *const *)j->envp), full, sizeof full);
        path = full;
    }
    if (e == 0)
        e = posix_spawn(&j->pid, path, &j->fa, &j->attr, j->argv, j->envp);
    for (int i = 0; i < j->nclose; i++)
        close(j->close_fds[i]);
    j->nclose = 0;
    j->err = e;
    if (e != 0)
        return;
    j->pidfd = pidfd_open(j->pid, 0);
    if (j->pidfd < 0) {
        j->pidfd_err = errno;
        abandon_child(j->pid, -1);
    }
}

static void spawn_done(void *arg);

static void *spawn_thread(void *arg)
{
    spawn_job *j = arg;
    job_run(j);
    int rc;
    while ((rc = weft_call_soon_threadsafe(j->loop, spawn_done, j)) == -ENOMEM)
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    if (rc != 0) {
        /* The loop waits for its starts before it ends (proc_drain), so this is
         * not expected; nobody will take the child: it goes. */
        if (j->pidfd >= 0)
            abandon_child(j->pid, j->pidfd);
        job_free(j);
    }
    return NULL;
}

/* A thread for the job, with every signal blocked (process signals stay the
 * program's threads'); detached: it exits once it has posted the outcome. */
static int start_thread(spawn_job *j)
{
    pthread_attr_t a;
    int rc = pthread_attr_init(&a);
    if (rc != 0)
        return rc;
    sigset_t all;
    sigfillset(&all);
    pthread_t t;
    if ((rc = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED)) == 0 &&
        (rc = pthread_attr_setsigmask_np(&a, &all)) == 0)
        rc = pthread_create(&t, &a, spawn_thread, j);
    pthread_attr_destroy(&a);
    return rc;
}

static void spawn_unwait(weft_task *self, int reason)
{
    (void)reason;
    spawn_job *j = self->wait_obj;
    j->task = NULL;         /* the outcome's arrival cleans up */
    self->wait_obj = NULL;  /* tells spawn the job is no longer its own: it may be gone */
}

static void spawn_describe(const weft_task *self, char *buf, size_t size)
{
    const spawn_job *j = self->wait_obj;
    snprintf(buf, size, "%s, being started on a thread", j->p->name);
}

static const weft__wait_kind spawn_wait = {"process to start", spawn_unwait, spawn_describe};

/* A start whose task left: the child, if any, is killed and reaped in the
 * background, as a freed one is. */
static void orphan_done(weft_loop *L, spawn_job *j)
{
    weft_process *p = j->p;
    if (j->err == 0 && j->pidfd >= 0) {
        weft__watcher_init(&p->w, j->pidfd, pidfd_ready);
        if (weft__watcher_want(&L->io, &p->w, WEFT__POLL_IN) == 0) {
            p->pid = j->pid;
            p->given_up = true;
            p->gen = (uint16_t)(p->gen % 65535u + 1u);
            weft__dlist_push_back(&proc_state(L)->procs, &p->link);
            kill_child(p);
            j->pidfd = -1; /* the record's now */
            job_free(j);
            return;
        }
        weft__watcher_forget(&L->io, &p->w);
        abandon_child(j->pid, j->pidfd);
    }
    record_drop(L, p);
    job_free(j);
}

/* On the loop: a start's outcome is back. */
static void spawn_done(void *arg)
{
    spawn_job *j = arg;
    weft_loop *L = weft__loop;
    proc_loop *st = proc_state(L);
    st->starting--;
    L->external_refs--;
    if (j->task)
        weft__wake(j->task, 0); /* it finishes the start */
    else
        orphan_done(L, j);
    if (st->starting == 0 && st->drainer) {
        weft_task *t = st->drainer;
        st->drainer = NULL;
        weft__wake(t, 0);
    }
}

/* The message of a start that failed, from the job's outcome. Returns the code. */
static int job_error(spawn_job *j, const char *what, const char *name, const weft_process_options *o)
{
    if (j->err)
        return spawn_error(j->err, what, name, o, j->search && !strchr(j->argv[0], '/'));
    int rc = -j->pidfd_err;
    if (rc == -ENOSYS)
        return weft__set_errmsg(rc, "%s: \"%s\" was started but cannot be waited for: this kernel has no "
                                    "pidfd_open (Linux 5.3 or later is needed); it was killed",
                                what, name);
    return weft__set_errmsg(rc, "%s: \"%s\" was started but cannot be waited for (pidfd_open: %s); it was killed",
                            what, name, weft_strerror(rc));
}

static weft_process *spawn(const char *what, const char *const argv[], bool search, const char *name,
                           const weft_process_options *o)
{
    weft_loop *L = weft__loop;
    if (!L) {
        weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a running loop", what);
        return NULL;
    }
    weft_task *self = weft__current();
    if (self && self->cancelling) {
        weft__cancelled_errmsg(self);
        return NULL;
    }
    weft_process *p = record_new(L);
    if (!p) {
        weft__set_errmsg(-ENOMEM, "%s: out of memory for the process", what);
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    stdio_plan plan[3];
    spawn_job *j = NULL;
    if (plans_make(plan, o, what) != 0 || !(j = job_make(p, argv, search, plan, o, what))) {
        int rc = weft_errcode();
        char *msg = strdup(weft_errmsg());
        plans_undo(plan);
        record_drop(L, p);
        weft__set_errmsg(rc, "%s", msg ? msg : "");
        free(msg);
        return NULL;
    }
    j->loop = weft_loop_current();
    proc_loop *st = proc_state(L);
    if (self && start_thread(j) == 0) {
        st->starting++;
        L->external_refs++;
        j->task = self;
        (void)weft__wait(&spawn_wait, j);
        if (self->wait_obj == NULL) {
            /* Cancelled: the job and the record are its outcome's to clean up. */
            plans_undo(plan);
            weft__cancelled_errmsg(self);
            return NULL;
        }
    } else {
        job_run(j);
    }
    int rc = 0;
    if (j->err || j->pidfd < 0) {
        rc = job_error(j, what, name, o);
    } else {
        weft__watcher_init(&p->w, j->pidfd, pidfd_ready);
        rc = weft__watcher_want(&L->io, &p->w, WEFT__POLL_IN);
        if (rc != 0) {
            weft__watcher_forget(&L->io, &p->w);
            abandon_child(j->pid, j->pidfd);
            weft__set_errmsg(rc, "%s: \"%s\" was started but cannot be watched (the poller: %s); it was killed",
                             what, name, weft_strerror(rc));
        }
    }
    if (rc != 0) {
        char *msg = strdup(weft_errmsg());
        plans_undo(plan);
        record_drop(L, p);
        job_free(j);
        weft__set_errmsg(rc, "%s", msg ? msg : "");
        free(msg);
        return NULL;
    }
    p->pid = j->pid;
    for (int i = 0; i < 3; i++)
        p->pipes[i] = plan[i].stream;
    weft__dlist_push_back(&st->procs, &p->link);
    job_free(j);
    return user_handle(p);
}

weft_process *weft_create_subprocess_exec(const char *const argv[], const weft_process_options *opts)
{
    static const char what[] = "weft_create_subprocess_exec";
    if (!argv || !argv[0] || !argv[0][0]) {
        weft__set_errmsg(-EINVAL, "%s: %s", what,
                         !argv ? "argv is NULL" : !argv[0] ? "argv is empty (argv[0], the program, is NULL)"
                                                           : "argv[0], the program, is \"\"");
        return NULL;
    }
    return spawn(what, argv, true, argv[0], opts);
}

weft_process *weft_create_subprocess_shell(const char *cmd, const weft_process_options *opts)
{
    static const char what[] = "weft_create_subprocess_shell";
    if (!cmd) {
        weft__set_errmsg(-EINVAL, "%s: the command is NULL", what);
        return NULL;
    }
    char name[NAME_LEN];
    snprintf(name, sizeof name, "sh -c %s", cmd);
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    return spawn(what, argv, false, name, opts);
}

/* ------------------------------------------------------------------------ */
/* Looking at it                                                            */
/* ------------------------------------------------------------------------ */

int weft_process_pid(weft_process *h)
{
    PROC_ARG(p, h, "weft_process_pid");
    return (int)p->pid;
}

static weft_stream *pipe_of(weft_process *h, int i, const char *what)
{
    int err;
    weft_process *p = proc_from(h, what, &err);
    if (!p)
        return NULL;
    static const char *const field[3] = {"in", "out", "err"};
    if (!p->pipes[i]) {
        weft__set_errmsg(WEFT_ESTATE, "%s: the child's %s is not a pipe (ask for one with opts->%s = "
                                      "WEFT_STDIO_PIPE)",
                         what, stdio_names[i], field[i]);
        return NULL;
    }
    if (!stream_open(p->pipes[i])) {
        weft__set_errmsg(WEFT_ECLOSED, "%s: the child's %s stream was closed", what, stdio_names[i]);
        return NULL;
    }
    return p->pipes[i];
}

weft_stream *weft_process_stdin(weft_process *h)
{
    return pipe_of(h, 0, "weft_process_stdin");
}

weft_stream *weft_process_stdout(weft_process *h)
{
    return pipe_of(h, 1, "weft_process_stdout");
}

weft_stream *weft_process_stderr(weft_process *h)
{
    return pipe_of(h, 2, "weft_process_stderr");
}

int weft_process_returncode(weft_process *h, int *returncode)
{
    PROC_ARG(p, h, "weft_process_returncode");
    if (!reap(p, WNOHANG))
        return 0;
    if (returncode)
        *returncode = p->returncode;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

static void wait_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_process *p = self->wait_obj;
    waitq_remove(&p->waiters, self);
}

static void exit_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_process *p = self->wait_obj;
    snprintf(buf, size, "pid %ld (%s)", (long)p->pid, p->name);
}

static const weft__wait_kind exit_wait = {"process to exit", wait_unwait, exit_describe};

/* Suspends self until p's child is reaped (by the watcher: a child that has
 * exited but was not reaped yet costs one suspension, not a system call more).
 * Returns 0 with the status in
 * *returncode (may be NULL), or -ECANCELED (message set). */
static int wait_exit(weft_process *p, weft_task *self, int *returncode)
{
    int rc = 0;
    if (!p->exited) {
        enter(p); /* another task may free the handle meanwhile */
        weft__fifo_push(&p->waiters, &self->node);
        rc = weft__wait(&exit_wait, p);
        if (rc == -ECANCELED)
            rc = weft__cancelled_errmsg(self);
        WEFT__ASSERT(rc != 0 || p->exited);
        if (rc == 0 && returncode)
            *returncode = p->returncode;
        leave(p);
    } else if (returncode) {
        *returncode = p->returncode;
    }
    return rc;
}

int weft_process_wait(weft_process *h, int *returncode)
{
    PROC_ARG(p, h, "weft_process_wait");
    weft_task *self = weft__current();
    if (!self && !reap(p, WNOHANG))
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_process_wait must be called from a task while the child "
                                                 "runs (a callback cannot wait)");
    return wait_exit(p, self, returncode);
}

/* ------------------------------------------------------------------------ */
/* Signals                                                                  */
/* ------------------------------------------------------------------------ */

static int send_signal(weft_process *h, int sig, const char *what)
{
    PROC_ARG(p, h, what);
    if (sig < 0 || sig >= NSIG)
        return weft__set_errmsg(-EINVAL, "%s: %d is not a signal number", what, sig);
    if (reap(p, WNOHANG))
        return weft__set_errmsg(-ESRCH, "%s: process %d (\"%s\") has exited (returncode %d); no signal was sent",
                                what, (int)p->pid, p->name, p->returncode);
    if (pidfd_send_signal(p->w.fd, sig, NULL, 0) != 0) {
        int e = -errno;
        return weft__set_errmsg(e, "%s: cannot signal process %d (\"%s\"): %s", what, (int)p->pid, p->name,
                                weft_strerror(e));
    }
    return 0;
}

int weft_process_send_signal(weft_process *h, int sig)
{
    return send_signal(h, sig, "weft_process_send_signal");
}

int weft_process_terminate(weft_process *h)
{
    return send_signal(h, SIGTERM, "weft_process_terminate");
}

int weft_process_kill(weft_process *h)
{
    return send_signal(h, SIGKILL, "weft_process_kill");
}

/* ------------------------------------------------------------------------ */
/* communicate                                                              */
/* ------------------------------------------------------------------------ */

/* What communicate's pipe tasks share with it; on the heap: the caller may be a
 * compact task, whose stack moves while it waits. */
typedef struct comm {
    weft_stream *pipe[3];
    bool keep[3];                /* stdout / stderr: the caller takes the bytes */
    char *buf[3];
    size_t n[3];
} comm;

static bool peer_gone(int rc)
{
    return rc == -EPIPE || rc == -ECONNRESET;
}

/* Sends the input communicate wrote and closes stdin. A child that leaves early
 * (EPIPE) is not an error; a cancelled task's stream is aborted (its unsent bytes
 * dropped). */
static void *feed_stdin(void *arg)
{
    comm *c = arg;
    weft_stream *s = c->pipe[0];
    int rc = weft_stream_drain(s);
    if (rc != 0) {
        if (stream_open(s)) /* not when weft_process_free aborted it */
            (void)weft_stream_abort(s);
        if (rc == -ECANCELED || peer_gone(rc))
            return NULL;
        return weft_fail(rc, "writing the child's stdin: %s", weft_errmsg());
    }
    rc = weft_stream_close(s);
    if (rc != 0 && rc != -ECANCELED && !peer_gone(rc))
        return weft_fail(rc, "closing the child's stdin: %s", weft_errmsg());
    return NULL;
}

/* Reads stdout (i = 1) or stderr (2) to end of file, keeping or dropping it. */
static void *read_output(comm *c, int i)
{
    weft_stream *s = c->pipe[i];
    ssize_t n;
    if (c->keep[i]) {
        char *buf = NULL;
        n = weft_stream_read_to_eof(s, &buf);
        if (n >= 0) {
            c->buf[i] = buf;
            c->n[i] = (size_t)n;
        }
    } else {
        char *chunk = malloc(DISCARD_CHUNK);
        if (!chunk)
            return weft_fail(-ENOMEM, "reading the child's %s: out of memory", stdio_names[i]);
        while ((n = weft_stream_read(s, chunk, DISCARD_CHUNK)) > 0) {
        }
        free(chunk);
    }
    if (n < 0 && n != -ECANCELED)
        return weft_fail((int)n, "reading the child's %s: %s", stdio_names[i], weft_errmsg());
    return NULL;
}

static void *read_stdout(void *arg)
{
    return read_output(arg, 1);
}

static void *read_stderr(void *arg)
{
    return read_output(arg, 2);
}

/* Runs the pipe tasks in a group and waits for them all. Returns 0 or an error
 * with the message set. */
static int pump(comm *c)
{
    static const weft_fn fns[3] = {feed_stdin, read_stdout, read_stderr};
    weft_group *g = weft_group_new();
    if (!g)
        return weft__set_errmsg(weft_errcode(), "weft_process_communicate: %s", weft_errmsg());
    int body = 0;
    for (int i = 0; i < 3 && body == 0; i++) {
        if (c->pipe[i] && !weft_group_spawn(g, fns[i], c))
            body = weft_errcode();
    }
    int rc = weft_group_wait(g, body);
    if (rc == WEFT_EGROUP) {
        /* The first failure, as the pipe task said it; the others were cancelled. */
        const weft_error_group *eg = weft_errgroup();
        if (eg && eg->count > 0)
            rc = weft__set_errmsg(eg->items[0].code, "weft_process_communicate: %s", eg->items[0].msg);
    }
    weft_group_free(g);
    return rc;
}

int weft_process_communicate(weft_process *h, const void *input, size_t len, char **out, size_t *out_len, char **err,
                             size_t *err_len)
{
    static const char what[] = "weft_process_communicate";
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (err)
        *err = NULL;
    if (err_len)
        *err_len = 0;
    PROC_ARG(p, h, what);
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task", what);
    if (!input && len > 0)
        return weft__set_errmsg(-EINVAL, "%s: input is NULL with len %zu", what, len);
    comm *c = calloc(1, sizeof *c);
    if (!c)
        return weft__set_errmsg(-ENOMEM, "%s: out of memory", what);
    for (int i = 0; i < 3; i++)
        c->pipe[i] = stream_open(p->pipes[i]) ? p->pipes[i] : NULL;
    if (len > 0 && !c->pipe[0]) {
        free(c);
        return weft__set_errmsg(-EINVAL, "%s: input given, but the child's stdin %s", what,
                                p->pipes[0] ? "was closed" : "is not a pipe (opts->in = WEFT_STDIO_PIPE)");
    }
    /* The input goes into stdin's stream now, by the caller: a write never
     * suspends, and what the pipe does not take is copied into the stream's
     * buffer. So no other task reads the caller's memory, which may be on a
     * compact task's stack (moved away while it waits). */
    if (len > 0) {
        int rc = weft_stream_write(c->pipe[0], input, len);
        if (rc != 0) {
            (void)weft_stream_abort(c->pipe[0]);
            c->pipe[0] = NULL;
            if (!peer_gone(rc)) { /* a child that left early is not an error */
                free(c);
                return weft__set_errmsg(rc, "%s: writing the child's stdin: %s", what, weft_errmsg());
            }
        }
    }
    c->keep[1] = out || out_len;
    c->keep[2] = err || err_len;
    enter(p);
    int rc = pump(c);
    if (rc == 0)
        rc = wait_exit(p, self, NULL);
    leave(p);
    if (rc == 0) {
        if (out)
            *out = c->buf[1];
        else
            free(c->buf[1]);
        if (out_len)
            *out_len = c->n[1];
        if (err)
            *err = c->buf[2];
        else
            free(c->buf[2]);
        if (err_len)
            *err_len = c->n[2];
    } else {
        free(c->buf[1]);
        free(c->buf[2]);
    }
    free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Giving it up                                                             */
/* ------------------------------------------------------------------------ */

int weft_process_free(weft_process *h)
{
    if (!h)
        return 0;
    PROC_ARG(p, h, "weft_process_free");
    p->given_up = true;
    p->gen = (uint16_t)(p->gen % 65535u + 1u);
    abort_pipes(p);
    kill_child(p); /* reaped by the watcher when it dies */
    maybe_recycle(p);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The loop module                                                          */
/* ------------------------------------------------------------------------ */

static int proc_init(weft_loop *L, const weft_options *opts)
{
    (void)opts;
    proc_loop *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    L->slots[WEFT__SLOT_PROC] = st;
    return 0;
}

static void drainer_unwait(weft_task *self, int reason)
{
    (void)reason;
    proc_loop *st = self->wait_obj;
    if (st->drainer == self)
        st->drainer = NULL;
}

static void drainer_describe(const weft_task *self, char *buf, size_t size)
{
    const proc_loop *st = self->wait_obj;
    snprintf(buf, size, "%zu starts still out on their threads", st->starting);
}

static const weft__wait_kind drainer_wait = {"process pipes to drain", drainer_unwait, drainer_describe};

/* The loop's end waits here for starts still out on their threads. */
static void *wait_for_starts(void *arg)
{
    proc_loop *st = arg;
    while (st->starting > 0) {
        st->drainer = weft__current();
        (void)weft__wait(&drainer_wait, st);
    }
    return NULL;
}

/* After main and every task: the starts whose task was cancelled may still be on
 * their threads; their outcomes come back through the loop, which runs until they
 * have (each child then killed and watched until reaped). */
static void proc_drain(weft_loop *L)
{
    proc_loop *st = proc_state(L);
    while (st && st->starting > 0) {
        weft_task *t = weft__spawn(wait_for_starts, st, NULL);
        if (t) {
            weft__loop_run(L, t);
            weft__task_free(L, t);
            continue;
        }
        /* No memory for a task: take the outcomes by hand. */
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
        weft__run_threadsafe_calls(L);
    }
}

/* After main and every task: no task waits. Children whose handles were never
 * freed are reported; every child still running is killed and reaped here, the
 * thread waiting for it to die (SIGKILL cannot be caught). */
static void proc_term(weft_loop *L)
{
    proc_loop *st = proc_state(L);
    if (!st)
        return;
    weft__dlink *n;
    while ((n = weft__dlist_pop_front(&st->procs)) != NULL) {
        weft_process *p = WEFT__CONTAINER_OF(n, weft_process, link);
        if (!p->given_up) {
            bool running = !reap(p, WNOHANG);
            bool pipes = stream_open(p->pipes[0]) || stream_open(p->pipes[1]) || stream_open(p->pipes[2]);
            static const char *const does[2][2] = {{"frees it", "closes its pipes"},
                                                   {"kills it (SIGKILL) and reaps it",
                                                    "kills it (SIGKILL), reaps it and closes its pipes"}};
            weft__report("weft: a process (pid %d, \"%s\") was never freed; weft %s as its loop ends (free it "
                         "with weft_process_free)",
                         (int)p->pid, p->name, does[running][pipes]);
            abort_pipes(p);
        }
        if (!p->exited) {
            kill_child(p);
            reap(p, 0);
        }
        free(p);
    }
    while (st->free) {
        weft_process *p = st->free;
        st->free = p->next_free;
        free(p);
    }
    free(st);
    L->slots[WEFT__SLOT_PROC] = NULL;
}

const weft__module weft__module_proc = {"subprocesses", proc_init, proc_drain, proc_term};
