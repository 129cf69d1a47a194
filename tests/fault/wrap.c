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
 *   WEFT_FAULT_LIST=FILE  write one line per point to FILE: its number, kind and,
 *                         for OpenSSL's, file and line (sweep.py --openssl-by-site)
 *
 * Built with WEFT_FAULT_NET (the network scenario, net_scenario.c), it also wraps
 * the calls of the network layer (src/net), each failing with an error a real
 * socket or resolver gives: socket and accept4 EMFILE, bind and listen
 * EADDRINUSE, connect ECONNREFUSED, setsockopt ENOMEM, send and sendfile EPIPE,
 * sendmsg ECONNRESET, a socket's read ECONNRESET, sendto and recvfrom
 * ECONNREFUSED on a connected UDP socket (ENOBUFS / ENOMEM on another), shutdown
 * ENOTCONN, getaddrinfo EAI_AGAIN and EAI_MEMORY in turn. read is counted only on
 * sockets (the loop's eventfd is read too, and no reset comes from it). A read,
 * recvfrom or accept4 that has nothing to take now is not counted: whether the
 * bytes or the connection are there yet at the first try depends on timing, and
 * counting those tries would move every later point from run to run; the one
 * made once the descriptor is ready is counted (and fails without taking
 * anything, as a reset would). recv and recvmsg are not wrapped: only the
 * process pool calls them. getsockopt is not: its only errors (EBADF, ENOTSOCK,
 * EINVAL) cannot happen on weft's own sockets, and the stream takes a failing
 * SO_TYPE as the answer "not a socket".
 *
 * Built with WEFT_FAULT_FS (the files scenario, fs_scenario.c), it wraps the calls
 * of the files layer (src/fs), which run on pool threads while their task waits, so
 * their order is the scenario's: open EMFILE, read and pread EIO, preadv2 (the
 * page-cache try of a small pread, made on the loop's thread) EAGAIN, so that the
 * pool reads instead, write and pwrite
 * ENOSPC, fsync and fdatasync EIO, stat and fstat ENOMEM, rename EIO, and close EIO
 * after closing (on Linux a failed close has released the descriptor). Only calls on
 * regular files, directories and FIFOs count: the loop's own eventfd reads, writes
 * and closes (from any thread, at any moment) neither count nor fail.
 *
 * Built with WEFT_FAULT_PROC (the subprocesses' scenario, proc_scenario.c), it
 * also wraps the calls of src/proc: pipe2 and pidfd_open EMFILE, posix_spawn
 * EAGAIN (the process limit), waitid EINTR (a signal during the wait: weft must
 * wait again, never take it for an exit), pidfd_send_signal EPERM. A start runs
 * on a thread of its own while the loop's thread waits, so its calls still come
 * in one order.
 *
 * sigaction is counted only when it installs a handler (weft's signal handlers,
 * weft_run's Ctrl-C handling), and fails with EINVAL: weft must then say so and
 * leave the disposition as it was.
 *
 * Built with WEFT_FAULT_TLS as well (the TLS scenario, tls_scenario.c), it also
 * counts OpenSSL's own allocations: fault_tls_install (wrap.h) gives OpenSSL this
 * file's allocator (CRYPTO_set_mem_functions, before OpenSSL's first allocation),
 * so that every CRYPTO_malloc, CRYPTO_zalloc and CRYPTO_realloc inside libssl and
 * libcrypto is an injection point, named with OpenSSL's file and line. OpenSSL
 * keeps process-wide caches it fills on first use, so that build counts nothing
 * until the scenario, its warm-up done, calls fault_arm (wrap.h).
 *
 * Each counted call also goes into a fingerprint of the sequence (the kinds in
 * order, and OpenSSL's file and line), printed with the count: two runs that print
 * the same fingerprint made the same calls in the same order, so the k-th point is
 * the same call in every run (sweep.py --deterministic counts twice and compares).
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
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#if defined(WEFT_FAULT_NET) || defined(WEFT_FAULT_FS)
#include <sys/stat.h>
#endif
#ifdef WEFT_FAULT_FS
#include <fcntl.h>
#include <sys/uio.h>
#endif
#ifdef WEFT_FAULT_NET
#include <netdb.h>
#include <poll.h>
#include <sys/sendfile.h>
#endif
#ifdef WEFT_FAULT_PROC
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/pidfd.h>
#endif
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef WEFT_FAULT_TLS
#include <openssl/crypto.h>
#endif

#include "wrap.h"

enum { K_MALLOC, K_CALLOC, K_REALLOC, K_STRDUP, K_ASPRINTF, K_MMAP, K_EPOLL_CTL, K_EPOLL_CREATE, K_EVENTFD,
       K_THREAD, K_SOCKETPAIR, K_MPROTECT, K_FORK, K_WAITPID, K_SIGACTION,
#ifdef WEFT_FAULT_FS
       K_OPEN, K_FREAD, K_FWRITE, K_PREAD, K_PREADV2, K_PWRITE, K_FSYNC, K_FDATASYNC, K_STAT, K_FSTAT, K_FCLOSE, K_RENAME,
#endif
#ifdef WEFT_FAULT_PROC
       K_PIPE2, K_POSIX_SPAWN, K_PIDFD_OPEN, K_WAITID, K_PIDFD_SEND_SIGNAL,
#endif
#ifdef WEFT_FAULT_NET
       K_SOCKET, K_BIND, K_LISTEN, K_ACCEPT4, K_CONNECT, K_SETSOCKOPT, K_SEND, K_SENDMSG, K_SENDTO, K_READ,
       K_RECVFROM, K_SENDFILE, K_SHUTDOWN, K_GETADDRINFO,
#endif
#ifdef WEFT_FAULT_TLS
       K_OSSL_MALLOC, K_OSSL_REALLOC,
#endif
       KINDS };
static const char *const kind_names[KINDS] = {"malloc", "calloc", "realloc", "strdup", "asprintf", "mmap",
                                              "epoll_ctl", "epoll_create1", "eventfd", "pthread_create",
                                              "socketpair", "mprotect", "fork", "waitpid", "sigaction",
#ifdef WEFT_FAULT_FS
                                              "open", "read", "write", "pread", "preadv2", "pwrite", "fsync",
                                              "fdatasync",
                                              "stat", "fstat", "close", "rename",
#endif
#ifdef WEFT_FAULT_PROC
                                              "pipe2", "posix_spawn", "pidfd_open", "waitid", "pidfd_send_signal",
#endif
#ifdef WEFT_FAULT_NET
                                              "socket", "bind", "listen", "accept4", "connect", "setsockopt",
                                              "send", "sendmsg", "sendto", "read", "recvfrom", "sendfile",
                                              "shutdown", "getaddrinfo",
#endif
#ifdef WEFT_FAULT_TLS
                                              "OpenSSL malloc", "OpenSSL realloc",
#endif
};

/* Shared with the forked processes (see above). */
typedef struct counts {
    atomic_long calls;
    atomic_long calls_of[KINDS];
    atomic_ulong fingerprint; /* of the sequence of calls (see the top) */
} counts;
static counts local_counts; /* until the shared mapping exists, or if it cannot */
static counts *shared = &local_counts;
static long fail_at = -1;
static int fork_depth; /* 0: the program, 1: the zygote, 2: a worker */
static pid_t program_pid;  /* the program's own process (set at the first counted call) */
#ifdef WEFT_FAULT_TLS
static atomic_int armed; /* counting starts at fault_arm */
#else
static atomic_int armed = 1;
#endif
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static FILE *list; /* WEFT_FAULT_LIST */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static void report(void)
{
    if (fork_depth != 0)
        return;
    fprintf(stderr, "fault points: %ld (", atomic_load(&shared->calls));
    for (int k = 0; k < KINDS; k++)
        fprintf(stderr, "%s%s %ld", k ? ", " : "", kind_names[k], atomic_load(&shared->calls_of[k]));
    fprintf(stderr, "), sequence %016lx\n", atomic_load(&shared->fingerprint));
}

static void setup(void)
{
    program_pid = getpid();
    const char *at = getenv("WEFT_FAULT_AT");
    if (at)
        fail_at = atol(at);
    void *m = __real_mmap(NULL, sizeof(counts), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED)
        shared = m; /* zero-filled; kept until exit */
    if (getenv("WEFT_FAULT_REPORT"))
        atexit(report);
    const char *path = getenv("WEFT_FAULT_LIST");
    if (path && !(list = fopen(path, "w")))
        perror(path);
}

/* One step of the fingerprint (FNV-1a over the kind and the place). */
static unsigned long mix(unsigned long h, unsigned long v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        h = (h ^ (v & 0xff)) * 0x100000001b3UL;
    return h;
}

static unsigned long place_of(const char *file, int line)
{
    unsigned long h = 0xcbf29ce484222325UL;
    for (const char *p = file ? file : ""; *p; p++)
        h = mix(h, (unsigned char)*p);
    return mix(h, (unsigned long)line);
}

/* Counts one call of a kind (made at file:line, for OpenSSL's; else NULL); true
 * when it is the one to fail. */
static int injected_at(int kind, const char *file, int line)
{
    pthread_once(&setup_once, setup);
    if (!atomic_load(&armed) || fork_depth > 1 || (fork_depth == 1 && kind != K_FORK))
        return 0;
    long nth = atomic_fetch_add(&shared->calls_of[kind], 1) + 1;
    unsigned long step = mix((unsigned long)kind, file ? place_of(file, line) : 0);
    unsigned long h = atomic_load(&shared->fingerprint);
    while (!atomic_compare_exchange_weak(&shared->fingerprint, &h, mix(h ? h : 0xcbf29ce484222325UL, step)))
        ;
    long call = atomic_fetch_add(&shared->calls, 1) + 1;
    if (list && fork_depth == 0)
        fprintf(list, "%ld %s\t%s:%d\n", call, kind_names[kind], file ? file : "-", line);
    if (call != fail_at)
        return 0;
    /* Named in the run's output, for the sweep's report of a failing point. */
    if (file)
        fprintf(stderr, "fault injected: call %ld, %s #%ld (%s:%d)\n", fail_at, kind_names[kind], nth, file, line);
    else
        fprintf(stderr, "fault injected: call %ld, %s #%ld\n", fail_at, kind_names[kind], nth);
    return 1;
}

static int injected_kind(int kind)
{
    return injected_at(kind, NULL, 0);
}

void fault_arm(void)
{
    atomic_store(&armed, 1);
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

#ifdef WEFT_FAULT_PROC
/* ---- the subprocesses' calls (WEFT_FAULT_PROC) ----------------------------- */

int __real_pipe2(int fds[2], int flags);
int __real_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int __real_pidfd_open(pid_t pid, unsigned int flags);
int __real_waitid(idtype_t type, id_t id, siginfo_t *info, int options);
int __real_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags);

int __wrap_pipe2(int fds[2], int flags);
int __wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int __wrap_pidfd_open(pid_t pid, unsigned int flags);
int __wrap_waitid(idtype_t type, id_t id, siginfo_t *info, int options);
int __wrap_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags);

#undef KIND
#define KIND K_PIPE2
int __wrap_pipe2(int fds[2], int flags)
{
    if (injected()) {
        errno = EMFILE;
        return -1;
    }
    return __real_pipe2(fds, flags);
}

/* posix_spawn returns its error rather than setting errno. */
#undef KIND
#define KIND K_POSIX_SPAWN
int __wrap_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (injected())
        return EAGAIN;
    return __real_posix_spawn(pid, path, fa, attr, argv, envp);
}

#undef KIND
#define KIND K_PIDFD_OPEN
int __wrap_pidfd_open(pid_t pid, unsigned int flags)
{
    if (injected()) {
        errno = EMFILE;
        return -1;
    }
    return __real_pidfd_open(pid, flags);
}

#undef KIND
#define KIND K_WAITID
int __wrap_waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    if (injected()) {
        errno = EINTR;
        return -1;
    }
    return __real_waitid(type, id, info, options);
}

#undef KIND
#define KIND K_PIDFD_SEND_SIGNAL
int __wrap_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags)
{
    if (injected()) {
        errno = EPERM;
        return -1;
    }
    return __real_pidfd_send_signal(pidfd, sig, info, flags);
}
#endif

/* Installing a handler (weft's signal handlers, weft_run's Ctrl-C handling, its
 * crash reports) fails as the kernel refuses a signal it will not let be caught.
 * A call that only reads the disposition or puts SIG_DFL / SIG_IGN back is neither
 * counted nor failed (nothing real makes it fail), nor is one made in a fork's
 * child before __wrap_fork has returned there (weft's pthread_atfork handler gives
 * the child its signals back): it runs beside the program and would make the
 * numbering differ from run to run. */
int __real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int __wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

#undef KIND
#define KIND K_SIGACTION
int __wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    bool installs = act && ((act->sa_flags & SA_SIGINFO) ||
                            (act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN));
    if (installs && (!program_pid || getpid() == program_pid) && injected()) {
        errno = EINVAL;
        return -1;
    }
    return __real_sigaction(sig, act, old);
}

#ifdef WEFT_FAULT_NET
/* ---- the network layer's calls (WEFT_FAULT_NET) ---------------------------- */

int __real_socket(int domain, int type, int protocol);
int __real_bind(int fd, const struct sockaddr *addr, socklen_t len);
int __real_listen(int fd, int backlog);
int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __real_connect(int fd, const struct sockaddr *addr, socklen_t len);
int __real_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
ssize_t __real_send(int fd, const void *buf, size_t n, int flags);
ssize_t __real_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __real_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len);
ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len);
ssize_t __real_sendfile(int out, int in, off_t *off, size_t n);
int __real_shutdown(int fd, int how);
int __real_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints, struct addrinfo **res);

int __wrap_socket(int domain, int type, int protocol);
int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len);
int __wrap_listen(int fd, int backlog);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len);
int __wrap_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __wrap_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len);
ssize_t __wrap_sendfile(int out, int in, off_t *off, size_t n);
int __wrap_shutdown(int fd, int how);
int __wrap_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints, struct addrinfo **res);

/* Something to take on fd now (bytes, end of file, an error, a connection): only
 * then is a read, recvfrom or accept4 counted (see the top). */
static int ready_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* A connected socket: its failures are the peer's (ECONNREFUSED from ICMP). */
static int is_connected(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

#define FAIL_WITH(e)       \
    do {                   \
        if (injected()) {  \
            errno = (e);   \
            return -1;     \
        }                  \
    } while (0)

#undef KIND
#define KIND K_SOCKET
int __wrap_socket(int domain, int type, int protocol)
{
    FAIL_WITH(EMFILE);
    return __real_socket(domain, type, protocol);
}

#undef KIND
#define KIND K_BIND
int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    FAIL_WITH(EADDRINUSE);
    return __real_bind(fd, addr, len);
}

#undef KIND
#define KIND K_LISTEN
int __wrap_listen(int fd, int backlog)
{
    FAIL_WITH(EADDRINUSE);
    return __real_listen(fd, backlog);
}

/* Out of descriptors with a connection waiting: it stays in the kernel's queue. */
#undef KIND
#define KIND K_ACCEPT4
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (ready_now(fd))
        FAIL_WITH(EMFILE);
    return __real_accept4(fd, addr, len, flags);
}

#undef KIND
#define KIND K_CONNECT
int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    FAIL_WITH(ECONNREFUSED);
    return __real_connect(fd, addr, len);
}

#undef KIND
#define KIND K_SETSOCKOPT
int __wrap_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    FAIL_WITH(ENOMEM);
    return __real_setsockopt(fd, level, name, val, len);
}

#undef KIND
#define KIND K_SEND
ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags)
{
    FAIL_WITH(EPIPE);
    return __real_send(fd, buf, n, flags);
}

#undef KIND
#define KIND K_SENDMSG
ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    FAIL_WITH(ECONNRESET);
    return __real_sendmsg(fd, msg, flags);
}

#undef KIND
#define KIND K_SENDTO
ssize_t __wrap_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len)
{
    if (injected()) {
        errno = is_connected(fd) ? ECONNREFUSED : ENOBUFS;
        return -1;
    }
    return __real_sendto(fd, buf, n, flags, addr, len);
}

/* A reset: the bytes waiting are lost with the connection (they stay unread). */
#undef KIND
#define KIND K_READ
ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && ready_now(fd))
        FAIL_WITH(ECONNRESET);
    return __real_read(fd, buf, n);
}

#undef KIND
#define KIND K_RECVFROM
ssize_t __wrap_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len)
{
    if (ready_now(fd) && injected()) {
        errno = is_connected(fd) ? ECONNREFUSED : ENOMEM;
        return -1;
    }
    return __real_recvfrom(fd, buf, n, flags, addr, len);
}

#undef KIND
#define KIND K_SENDFILE
ssize_t __wrap_sendfile(int out, int in, off_t *off, size_t n)
{
    FAIL_WITH(EPIPE);
    return __real_sendfile(out, in, off, n);
}

#undef KIND
#define KIND K_SHUTDOWN
int __wrap_shutdown(int fd, int how)
{
    FAIL_WITH(ENOTCONN);
    return __real_shutdown(fd, how);
}

/* The resolver cannot answer now, or is out of memory: the two in turn, so the
 * sweep sees both (the odd-numbered lookups get EAI_AGAIN). */
#undef KIND
#define KIND K_GETADDRINFO
int __wrap_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints, struct addrinfo **res)
{
    if (injected())
        return atomic_load(&shared->calls_of[K_GETADDRINFO]) % 2 ? EAI_AGAIN : EAI_MEMORY;
    return __real_getaddrinfo(host, port, hints, res);
}
#endif

#ifdef WEFT_FAULT_FS
/* ---- the files layer's calls (WEFT_FAULT_FS) ------------------------------------ */

int __real_open(const char *path, int flags, ...);
ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __real_preadv2(int fd, const struct iovec *iov, int count, off_t off, int flags);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
int __real_stat(const char *path, struct stat *st);
int __real_fstat(int fd, struct stat *st);
int __real_close(int fd);
int __real_rename(const char *from, const char *to);

int __wrap_open(const char *path, int flags, ...);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_preadv2(int fd, const struct iovec *iov, int count, off_t off, int flags);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
int __wrap_fsync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_stat(const char *path, struct stat *st);
int __wrap_fstat(int fd, struct stat *st);
int __wrap_close(int fd);
int __wrap_rename(const char *from, const char *to);

/* A file, directory or FIFO: the files layer's, not the loop's eventfd. */
static int is_file(int fd)
{
    struct stat st;
    return __real_fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode));
}

#define FAIL_FILE_WITH(e)                 \
    do {                                  \
        if (is_file(fd) && injected()) {  \
            errno = (e);                  \
            return -1;                    \
        }                                 \
    } while (0)

#undef KIND
#define KIND K_OPEN
int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, unsigned);
        va_end(ap);
    }
    if (injected()) {
        errno = EMFILE;
        return -1;
    }
    return __real_open(path, flags, mode);
}

#undef KIND
#define KIND K_FREAD
ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    FAIL_FILE_WITH(EIO);
    return __real_read(fd, buf, n);
}

#undef KIND
#define KIND K_FWRITE
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    FAIL_FILE_WITH(ENOSPC);
    return __real_write(fd, buf, n);
}

#undef KIND
#define KIND K_PREAD
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
    FAIL_FILE_WITH(EIO);
    return __real_pread(fd, buf, n, off);
}

#undef KIND
#define KIND K_PREADV2
ssize_t __wrap_preadv2(int fd, const struct iovec *iov, int count, off_t off, int flags)
{
    FAIL_FILE_WITH(EAGAIN);
    return __real_preadv2(fd, iov, count, off, flags);
}

#undef KIND
#define KIND K_PWRITE
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    FAIL_FILE_WITH(ENOSPC);
    return __real_pwrite(fd, buf, n, off);
}

#undef KIND
#define KIND K_FSYNC
int __wrap_fsync(int fd)
{
    FAIL_FILE_WITH(EIO);
    return __real_fsync(fd);
}

#undef KIND
#define KIND K_FDATASYNC
int __wrap_fdatasync(int fd)
{
    FAIL_FILE_WITH(EIO);
    return __real_fdatasync(fd);
}

#undef KIND
#define KIND K_STAT
int __wrap_stat(const char *path, struct stat *st)
{
    if (injected()) {
        errno = ENOMEM;
        return -1;
    }
    return __real_stat(path, st);
}

#undef KIND
#define KIND K_FSTAT
int __wrap_fstat(int fd, struct stat *st)
{
    FAIL_FILE_WITH(ENOMEM);
    return __real_fstat(fd, st);
}

/* As NFS reports a lost write: the descriptor is released all the same. */
#undef KIND
#define KIND K_FCLOSE
int __wrap_close(int fd)
{
    if (is_file(fd) && injected()) {
        __real_close(fd);
        errno = EIO;
        return -1;
    }
    return __real_close(fd);
}

#undef KIND
#define KIND K_RENAME
int __wrap_rename(const char *from, const char *to)
{
    if (injected()) {
        errno = EIO;
        return -1;
    }
    return __real_rename(from, to);
}
#endif

#ifdef WEFT_FAULT_TLS
/* ---- OpenSSL's allocations (WEFT_FAULT_TLS) ---------------------------------- */

/* As OpenSSL's own: no memory for nothing, without a call to fail. */
static void *ossl_malloc(size_t n, const char *file, int line)
{
    if (n == 0)
        return NULL;
    if (injected_at(K_OSSL_MALLOC, file, line)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return ossl_malloc(n, file, line);
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (injected_at(K_OSSL_REALLOC, file, line)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

int fault_tls_install(void)
{
    return CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) ? 0 : -1;
}
#endif
