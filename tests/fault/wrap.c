/*
 * wrap.c — fault injection for the fault sweep (tests/fault/sweep.py): every
 * allocation and every failing system call that libweft makes is routed here by
 * the linker (-Wl,--wrap=NAME, see tests/fault/CMakeLists.txt), counted, and the
 * k-th one (WEFT_FAULT_AT=k) fails as the real call would when out of memory or
 * out of resources. Nothing in the library is compiled differently: the objects
 * under test are the ones every program links.
 *
 *   WEFT_FAULT_AT=k       fail the k-th call (1-based); unset: fail none
 *   WEFT_FAULT_REPORT=1   print "fault points: N" at exit (the sweep's range)
 *
 * The process pool forks: its helper process (the zygote) and, from the zygote,
 * the workers. The count lives in a shared mapping so that the numbering is one
 * across processes, and only calls whose order is fixed are counted: every call of
 * the program's own process, and the zygote's forks of workers, which it makes
 * only while the program waits for its answer. Everything else the zygote and the
 * workers do runs beside the program (reaping, exiting), so counting it would make
 * the k-th call a different one from run to run; they neither count nor fail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { K_MALLOC, K_CALLOC, K_REALLOC, K_STRDUP, K_ASPRINTF, K_MMAP, K_EPOLL_CTL, K_EPOLL_CREATE, K_EVENTFD,
       K_THREAD, K_SOCKETPAIR, K_MPROTECT, K_FORK, K_WAITPID, KINDS };
static const char *const kind_names[KINDS] = {"malloc", "calloc", "realloc", "strdup", "asprintf", "mmap",
                                              "epoll_ctl", "epoll_create1", "eventfd", "pthread_create",
                                              "socketpair", "mprotect", "fork", "waitpid"};

/* Shared with the forked processes (see above). */
typedef struct counts {
    atomic_long calls;
    atomic_long calls_of[KINDS];
} counts;
static counts local_counts; /* until the shared mapping exists, or if it cannot */
static counts *shared = &local_counts;
static long fail_at = -1;
static int fork_depth; /* 0: the program, 1: the zygote, 2: a worker */
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static void report(void)
{
    if (fork_depth != 0)
        return;
    fprintf(stderr, "fault points: %ld (", atomic_load(&shared->calls));
    for (int k = 0; k < KINDS; k++)
        fprintf(stderr, "%s%s %ld", k ? ", " : "", kind_names[k], atomic_load(&shared->calls_of[k]));
    fprintf(stderr, ")\n");
}

static void setup(void)
{
    const char *at = getenv("WEFT_FAULT_AT");
    if (at)
        fail_at = atol(at);
    void *m = __real_mmap(NULL, sizeof(counts), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED)
        shared = m; /* zero-filled; kept until exit */
    if (getenv("WEFT_FAULT_REPORT"))
        atexit(report);
}

/* Counts one call of a kind; true when it is the one to fail. */
static int injected_kind(int kind)
{
    pthread_once(&setup_once, setup);
    if (fork_depth > 1 || (fork_depth == 1 && kind != K_FORK))
        return 0;
    atomic_fetch_add(&shared->calls_of[kind], 1);
    return atomic_fetch_add(&shared->calls, 1) + 1 == fail_at;
}

#define injected() injected_kind(KIND)

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_epoll_create1(int flags);
int __real_eventfd(unsigned int initval, int flags);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __real_socketpair(int domain, int type, int protocol, int sv[2]);
int __real_mprotect(void *addr, size_t len, int prot);
int __wrap_mprotect(void *addr, size_t len, int prot);
pid_t __real_fork(void);
pid_t __wrap_fork(void);
pid_t __real_waitpid(pid_t pid, int *status, int options);
pid_t __wrap_waitpid(pid_t pid, int *status, int options);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_asprintf(char **out, const char *fmt, ...);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_create1(int flags);
int __wrap_eventfd(unsigned int initval, int flags);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_socketpair(int domain, int type, int protocol, int sv[2]);

#undef KIND
#define KIND K_MALLOC
void *__wrap_malloc(size_t n)
{
    if (injected()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

#undef KIND
#define KIND K_CALLOC
void *__wrap_calloc(size_t n, size_t size)
{
    if (injected()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

#undef KIND
#define KIND K_REALLOC
void *__wrap_realloc(void *p, size_t n)
{
    if (injected()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

#undef KIND
#define KIND K_STRDUP
char *__wrap_strdup(const char *s)
{
    if (injected()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

#undef KIND
#define KIND K_ASPRINTF
int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    if (injected()) {
        errno = ENOMEM;
        return -1;
    }
    return __real_vasprintf(out, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = __wrap_vasprintf(out, fmt, ap);
    va_end(ap);
    return rc;
}

#undef KIND
#define KIND K_MMAP
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (injected()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

#undef KIND
#define KIND K_EPOLL_CTL
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (injected()) {
        errno = ENOMEM;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}

#undef KIND
#define KIND K_EPOLL_CREATE
int __wrap_epoll_create1(int flags)
{
    if (injected()) {
        errno = EMFILE;
        return -1;
    }
    return __real_epoll_create1(flags);
}

#undef KIND
#define KIND K_EVENTFD
int __wrap_eventfd(unsigned int initval, int flags)
{
    if (injected()) {
        errno = EMFILE;
        return -1;
    }
    return __real_eventfd(initval, flags);
}

#undef KIND
#define KIND K_THREAD
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (injected())
        return EAGAIN;
    return __real_pthread_create(t, attr, fn, arg);
}

#undef KIND
#define KIND K_SOCKETPAIR
int __wrap_socketpair(int domain, int type, int protocol, int sv[2])
{
    if (injected()) {
        errno = EMFILE;
        return -1;
    }
    return __real_socketpair(domain, type, protocol, sv);
}

#undef KIND
#define KIND K_MPROTECT
int __wrap_mprotect(void *addr, size_t len, int prot)
{
    if (injected()) {
        errno = ENOMEM;
        return -1;
    }
    return __real_mprotect(addr, len, prot);
}

#undef KIND
#define KIND K_FORK
pid_t __wrap_fork(void)
{
    if (injected()) {
        errno = EAGAIN;
        return -1;
    }
    pid_t pid = __real_fork();
    if (pid == 0)
        fork_depth++;
    return pid;
}

/* A signal arriving during the wait: weft must wait again, not give up (or leave
 * a zombie). */
#undef KIND
#define KIND K_WAITPID
pid_t __wrap_waitpid(pid_t pid, int *status, int options)
{
    if (injected()) {
        errno = EINTR;
        return -1;
    }
    return __real_waitpid(pid, status, options);
}
