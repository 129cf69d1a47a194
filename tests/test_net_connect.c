/*
 * test_net_connect.c — resolving names (src/net/resolve.c) and connecting TCP
 * sockets with happy eyeballs (src/net/connect.c), on loopback only: resolving
 * "localhost" and numeric addresses, a name under .invalid, connection refused,
 * IPv6 then IPv4 with only an IPv4 listener, the stagger against an address whose
 * connect hangs, cancellation and timeouts leaving no descriptor open, a local
 * address, and a real asyncio peer. Real time: I/O is real; bounds are wide.
 *
 * Names with several addresses of our choosing come from this file's own
 * getaddrinfo, which the executable defines before libc's (as test_io.c does
 * with epoll_ctl): "dual.test" is ::1 then 127.0.0.1, "stagger.test" is 127.0.0.2
 * then 127.0.0.1; every other name goes to the real resolver.
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>

/* The library's internal connect (src/net/net.h): weft_open_connection wraps it. */
int weft__connect_tcp(const char *host, int port, const weft_connect_options *o);

TestSuite(net_connect, .timeout = 60);

/* ---- a resolver with names of our own ------------------------------------ */

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static struct addrinfo *tail_of(struct addrinfo *ai)
{
    while (ai && ai->ai_next)
        ai = ai->ai_next;
    return ai;
}

/* Two real answers chained: glibc's freeaddrinfo frees entry by entry. */
static int two_addresses(gai_fn real, const char *a, const char *b, const char *serv, const struct addrinfo *hints,
                         struct addrinfo **res)
{
    struct addrinfo h = hints ? *hints : (struct addrinfo){0};
    h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~AI_ADDRCONFIG;
    struct addrinfo *first = NULL, *second = NULL;
    int eai = real(a, serv, &h, &first);
    if (eai != 0)
        return eai;
    eai = real(b, serv, &h, &second);
    if (eai != 0) {
        freeaddrinfo(first);
        return eai;
    }
    tail_of(first)->ai_next = second;
    *res = first;
    return 0;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    static gai_fn real;
    if (!real)
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && strcmp(node, "dual.test") == 0)
        return two_addresses(real, "::1", "127.0.0.1", service, hints, res);
    if (node && strcmp(node, "stagger.test") == 0)
        return two_addresses(real, "127.0.0.2", "127.0.0.1", service, hints, res);
    return real(node, service, hints, res);
}

/* ---- helpers --------------------------------------------------------------- */

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A TCP listener on ip:port (port 0: any); returns the descriptor, *port set. */
static int listener(int family, const char *ip, int *port, int backlog)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)*port);
        inet_pton(AF_INET, ip, &in->sin_addr);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)*port);
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
        len = sizeof *in6;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -errno;
    }
    cr_assert_eq(listen(fd, backlog), 0);
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    int port = 0;
    int fd = listener(AF_INET, "127.0.0.1", &port, 1);
    close(fd);
    return port;
}

static bool have_ipv6_loopback(void)
{
    FILE *f = fopen("/proc/net/if_inet6", "r");
    if (!f)
        return false;
    char line[256];
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "00000000000000000000000000000001", 32) == 0)
            found = true;
    fclose(f);
    return found;
}

static int peer_port(int fd, char *ip, size_t iplen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    cr_assert_eq(getpeername(fd, (struct sockaddr *)&ss, &len), 0);
    char buf[80];
    weft_format_address((struct sockaddr *)&ss, len, buf, sizeof buf);
    snprintf(ip, iplen, "%s", buf);
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* ---- resolving --------------------------------------------------------------- */

static void *resolve_main(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    cr_assert_eq(weft_getaddrinfo("localhost", 8080, NULL, &res), 0, "%s", weft_errmsg());
    bool v4 = false;
    char buf[80];
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        cr_expect_eq(ai->ai_socktype, SOCK_STREAM, "hints NULL means stream sockets");
        weft_format_address(ai->ai_addr, ai->ai_addrlen, buf, sizeof buf);
        v4 |= strcmp(buf, "127.0.0.1:8080") == 0;
    }
    cr_expect(v4, "localhost resolves to 127.0.0.1:8080");
    freeaddrinfo(res);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
    cr_assert_eq(weft_getaddrinfo("::1", 53, &hints, &res), 0, "%s", weft_errmsg());
    cr_expect_eq(res->ai_family, AF_INET6);
    cr_expect_eq(res->ai_socktype, SOCK_DGRAM);
    cr_expect_null(res->ai_next);
    cr_expect_str_eq(weft_format_address(res->ai_addr, res->ai_addrlen, buf, sizeof buf), "[::1]:53");
    freeaddrinfo(res);

    cr_assert_eq(weft_getaddrinfo("127.0.0.1", 0, NULL, &res), 0);
    cr_expect_str_eq(weft_format_address(res->ai_addr, res->ai_addrlen, buf, sizeof buf), "127.0.0.1:0");
    freeaddrinfo(res);
    return NULL;
}

Test(net_connect, resolves_localhost_and_numeric_addresses)
{
    cr_assert_eq(weft_run(resolve_main, NULL, NULL), 0);
}

static void *tracer(void *arg)
{
    trace("%s", (const char *)arg);
    return NULL;
}

static void *resolve_yields_main(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    weft_task *t = weft_spawn(tracer, "other");
    int rc = weft_getaddrinfo("127.0.0.1", 80, NULL, &res);
    trace("resolved:%d", rc);
    freeaddrinfo(res);
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

Test(net_connect, a_numeric_address_still_lets_other_tasks_run_first)
{
    trace_reset();
    cr_assert_eq(weft_run(resolve_yields_main, NULL, NULL), 0);
    cr_expect_str_eq(trace_text, "other resolved:0");
}

static void *invalid_main(void *arg)
{
    (void)arg;
    struct addrinfo *res = (struct addrinfo *)&res; /* must stay untouched */
    int rc = weft_getaddrinfo("weft-no-such-host.invalid", 443, NULL, &res);
    /* Without a network the resolver may not get as far as "no such name". */
    cr_expect(rc == WEFT_ENONAME || rc == WEFT_ENAMETEMP, "got %s: %s", weft_errname(rc), weft_errmsg());
    cr_expect(res == (struct addrinfo *)&res);
    cr_expect(strstr(weft_errmsg(), "\"weft-no-such-host.invalid\" port 443") != NULL, "%s", weft_errmsg());
    const char *text = gai_strerror(rc == WEFT_ENONAME ? EAI_NONAME : EAI_AGAIN);
    cr_expect(strstr(weft_errmsg(), text) != NULL || rc == WEFT_ENONAME, "%s", weft_errmsg());

    /* The connect path gives the resolver's error unchanged. */
    rc = weft__connect_tcp("weft-no-such-host.invalid", 443, NULL);
    cr_expect(rc == WEFT_ENONAME || rc == WEFT_ENAMETEMP, "got %s", weft_errname(rc));
    return NULL;
}

Test(net_connect, a_name_under_invalid_is_not_known)
{
    cr_assert_eq(weft_run(invalid_main, NULL, NULL), 0);
}

static void *bad_args_main(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    cr_expect_eq(weft_getaddrinfo("127.0.0.1", -1, NULL, &res), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "port -1") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_getaddrinfo("127.0.0.1", 65536, NULL, &res), -EINVAL);
    cr_expect_eq(weft_getaddrinfo("127.0.0.1", 80, NULL, NULL), -EINVAL);
    cr_expect_eq(weft__connect_tcp(NULL, 80, NULL), -EINVAL);
    cr_expect_eq(weft__connect_tcp("127.0.0.1", 0, NULL), -EINVAL);
    cr_expect_eq(weft__connect_tcp("127.0.0.1", 80, &(weft_connect_options){.local_port = 5000}), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "local_port 5000 without local_host") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft__connect_tcp("127.0.0.1", 80, &(weft_connect_options){.family = AF_UNIX}), -EINVAL);
    cr_expect_eq(weft__connect_tcp("127.0.0.1", 80, &(weft_connect_options){.happy_eyeballs_delay = NAN}), -EINVAL);
    cr_expect_null(res);
    return NULL;
}

Test(net_connect, bad_arguments_are_refused_with_a_message)
{
    cr_assert_eq(weft_run(bad_args_main, NULL, NULL), 0);
    struct addrinfo *res = NULL;
    cr_expect_eq(weft_getaddrinfo("localhost", 80, NULL, &res), WEFT_ENOTINLOOP);
}

/* Lookups cancelled while queued behind a one-thread pool's busy thread, and one
 * cancelled while it runs: nothing leaks (LeakSanitizer in the sanitizer build). */
static void *lookup_task(void *arg)
{
    struct addrinfo *res = NULL;
    int rc = weft_getaddrinfo("localhost", 80, NULL, &res);
    if (rc == 0)
        freeaddrinfo(res);
    *(int *)arg = rc;
    return NULL;
}

static void *cancel_lookups_main(void *arg)
{
    (void)arg;
    static int rcs[20];
    weft_task *t[20];
    for (int i = 0; i < 20; i++) {
        rcs[i] = 1;
        t[i] = weft_spawn(lookup_task, &rcs[i]);
    }
    cr_expect_eq(weft_yield(), 0); /* every lookup is handed to the pool */
    cr_expect_eq(weft_yield(), 0);
    for (int i = 1; i < 20; i++)
        weft_cancel(t[i], NULL);
    for (int i = 0; i < 20; i++) {
        int rc = weft_await(t[i], NULL);
        cr_expect(rc == 0 || (i > 0 && rc == -ECANCELED), "task %d: %s", i, weft_errname(rc));
    }
    cr_expect_eq(rcs[0], 0, "the first lookup was not cancelled: %s", weft_errname(rcs[0]));
    for (int i = 1; i < 20; i++)
        cr_expect(rcs[i] == -ECANCELED || rcs[i] == 0, "lookup %d: %s", i, weft_errname(rcs[i]));
    /* The loop ends with the cancelled ones maybe still queued: freed then. */
    return NULL;
}

Test(net_connect, cancelled_lookups_leave_nothing_behind)
{
    cr_assert_eq(weft_set_default_pool_size(1), 0);
    cr_assert_eq(weft_run(cancel_lookups_main, NULL, NULL), 0);
}

/* ---- connecting ---------------------------------------------------------------- */

static void *refused_main(void *arg)
{
    (void)arg;
    int port = closed_port();
    int rc = weft__connect_tcp("127.0.0.1", port, NULL);
    cr_expect_eq(rc, -ECONNREFUSED, "got %s", weft_errname(rc));
    char want[160];
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d: Connection refused", port);
    cr_expect_str_eq(weft_errmsg(), want);
    return NULL;
}

Test(net_connect, a_closed_port_is_refused_and_the_message_names_the_address)
{
    cr_assert_eq(weft_run(refused_main, NULL, NULL), 0);
}

static void *connects_main(void *arg)
{
    (void)arg;
    int port = 0;
    int lfd = listener(AF_INET, "127.0.0.1", &port, 8);
    int fds_before = open_fds();
    int fd = weft__connect_tcp("127.0.0.1", port, NULL);
    cr_assert_geq(fd, 0, "%s", weft_errmsg());
    cr_expect_eq(open_fds(), fds_before + 1, "only the connected socket is left open");
    char ip[80];
    cr_expect_eq(peer_port(fd, ip, sizeof ip), port);
    int flags = fcntl(fd, F_GETFL);
    cr_expect(flags & O_NONBLOCK, "non-blocking");
    cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC, "close-on-exec");
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
    cr_expect(nodelay, "TCP_NODELAY by default");
    int afd = accept(lfd, NULL, NULL);
    cr_expect_geq(afd, 0);
    cr_expect_eq(write(fd, "hi", 2), 2);
    char buf[4] = "";
    cr_expect_eq(read(afd, buf, sizeof buf), 2);
    cr_expect_str_eq(buf, "hi");
    close(afd);
    close(fd);

    fd = weft__connect_tcp("127.0.0.1", port, &(weft_connect_options){.nagle = 1});
    cr_assert_geq(fd, 0, "%s", weft_errmsg());
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
    cr_expect(!nodelay, "nagle keeps Nagle's algorithm");
    close(fd);
    close(lfd);
    return NULL;
}

Test(net_connect, connects_to_a_listener_with_a_nonblocking_nodelay_socket)
{
    cr_assert_eq(weft_run(connects_main, NULL, NULL), 0);
}

/* Only 127.0.0.1 listens; the name gives ::1 first: ::1 is refused, IPv4 wins. */
static void *dual_main(void *arg)
{
    const char *host = arg;
    int port = 0;
    int lfd = listener(AF_INET, "127.0.0.1", &port, 8);
    int fds_before = open_fds();
    for (int sequential = 0; sequential < 2; sequential++) {
        int fd = weft__connect_tcp(host, port, &(weft_connect_options){.happy_eyeballs_delay = sequential ? -1 : 0});
        cr_assert_geq(fd, 0, "%s", weft_errmsg());
        char ip[80];
        peer_port(fd, ip, sizeof ip);
        char want[80];
        snprintf(want, sizeof want, "127.0.0.1:%d", port);
        cr_expect_str_eq(ip, want);
        close(fd);
        int afd = accept(lfd, NULL, NULL);
        close(afd);
    }
    cr_expect_eq(open_fds(), fds_before, "the refused IPv6 socket is closed");
    close(lfd);

    /* Nobody listens: both refused, both in the message, in the order tried. */
    int port2 = closed_port();
    int rc = weft__connect_tcp(host, port2, NULL);
    cr_expect_eq(rc, -ECONNREFUSED);
    char want[200];
    snprintf(want, sizeof want, "connect to %s:%d: [::1]:%d: Connection refused; 127.0.0.1:%d: Connection refused",
             host, port2, port2, port2);
    cr_expect_str_eq(weft_errmsg(), want);
    return NULL;
}

Test(net_connect, ipv6_refused_then_ipv4_connects)
{
    if (!have_ipv6_loopback())
        cr_skip_test("no IPv6 on the loopback interface (/proc/net/if_inet6 has no ::1)");
    cr_assert_eq(weft_run(dual_main, "dual.test", NULL), 0);
}

Test(net_connect, localhost_with_both_families_connects_to_an_ipv4_only_listener)
{
    if (!have_ipv6_loopback())
        cr_skip_test("no IPv6 on the loopback interface (/proc/net/if_inet6 has no ::1)");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    bool v6 = false, v4 = false;
    if (getaddrinfo("localhost", "80", &hints, &res) == 0) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            v6 |= ai->ai_family == AF_INET6;
            v4 |= ai->ai_family == AF_INET;
        }
        freeaddrinfo(res);
    }
    if (!v6 || !v4)
        cr_skip_test("\"localhost\" does not resolve to both ::1 and 127.0.0.1 here (/etc/hosts); "
                     "ipv6_refused_then_ipv4_connects covers the same race with a name of its own");
    cr_assert_eq(weft_run(dual_main, "localhost", NULL), 0);
}

/* A listener on 127.0.0.2:port with backlog 0 and its queue full (one connection
 * made and never accepted): a further connect's SYNs are dropped and it hangs.
 * 127.0.0.1:port listens normally. */
typedef struct stagger_setup {
    int hang_fd, filler_fd, good_fd, port;
} stagger_setup;

static void stagger_open(stagger_setup *s)
{
    for (int tries = 0; tries < 20; tries++) {
        s->port = 0;
        s->hang_fd = listener(AF_INET, "127.0.0.2", &s->port, 0);
        cr_assert_geq(s->hang_fd, 0, "bind 127.0.0.2: %s", strerror(-s->hang_fd));
        s->good_fd = listener(AF_INET, "127.0.0.1", &s->port, 8);
        if (s->good_fd >= 0)
            break;
        close(s->hang_fd);
    }
    cr_assert_geq(s->good_fd, 0);
    s->filler_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
    cr_assert_eq(connect(s->filler_fd, (struct sockaddr *)&in, sizeof in), 0);
}

static void stagger_close(stagger_setup *s)
{
    close(s->filler_fd);
    close(s->hang_fd);
    close(s->good_fd);
}

static void *stagger_main(void *arg)
{
    stagger_setup *s = arg;
    double start = now_real();
    int fd = weft__connect_tcp("stagger.test", s->port, &(weft_connect_options){.happy_eyeballs_delay = 0.3});
    double took = now_real() - start;
    cr_assert_geq(fd, 0, "%s", weft_errmsg());
    char ip[80], want[80];
    peer_port(fd, ip, sizeof ip);
    snprintf(want, sizeof want, "127.0.0.1:%d", s->port);
    cr_expect_str_eq(ip, want, "the second address won");
    cr_expect(took >= 0.28 && took < 2.0, "the second attempt started after the delay: took %.3f s", took);
    close(fd);
    int afd = accept(s->good_fd, NULL, NULL);
    close(afd);

    /* A shorter delay: sooner. */
    start = now_real();
    fd = weft__connect_tcp("stagger.test", s->port, &(weft_connect_options){.happy_eyeballs_delay = 0.05});
    took = now_real() - start;
    cr_assert_geq(fd, 0, "%s", weft_errmsg());
    cr_expect(took >= 0.045 && took < 0.28, "took %.3f s", took);
    close(fd);
    return NULL;
}

Test(net_connect, the_next_address_starts_after_the_delay_and_wins)
{
    stagger_setup s;
    stagger_open(&s);
    cr_assert_eq(weft_run(stagger_main, &s, NULL), 0);
    stagger_close(&s);
}

typedef struct cancel_case {
    stagger_setup *s;
    int rc;
} cancel_case;

static void *hanging_connect(void *arg)
{
    cancel_case *cc = arg;
    cc->rc = weft__connect_tcp("stagger.test", cc->s->port, &(weft_connect_options){.happy_eyeballs_delay = -1});
    return NULL;
}

static void *cancel_main(void *arg)
{
    stagger_setup *s = arg;
    struct addrinfo *res = NULL;
    /* Start the pool first: its threads hold no descriptors, but be exact. */
    cr_assert_eq(weft_getaddrinfo("localhost", 80, NULL, &res), 0);
    freeaddrinfo(res);
    int before = open_fds();

    /* Sequential: the first address hangs, so a cancel finds it connecting. */
    cancel_case cc = {s, 1};
    weft_task *t = weft_spawn(hanging_connect, &cc);
    cr_expect_eq(weft_sleep(0.2), 0);
    cr_expect_eq(open_fds(), before + 1, "the attempt's socket is open while it hangs");
    weft_cancel(t, NULL);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(cc.rc, -ECANCELED);
    cr_expect_eq(open_fds(), before, "cancelling closed the socket");

    /* A timeout scope around it: -ETIMEDOUT, nothing left open. */
    double start = now_real();
    weft_timeout *to = weft_timeout_enter(0.2);
    int rc = weft__connect_tcp("stagger.test", s->port, &(weft_connect_options){.happy_eyeballs_delay = -1});
    rc = weft_timeout_exit(to, rc);
    cr_expect_eq(rc, -ETIMEDOUT, "got %s", weft_errname(rc));
    cr_expect(now_real() - start < 1.5);
    cr_expect_eq(open_fds(), before, "the timeout closed the socket");

    /* With happy eyeballs: cancelled while both attempts are out? The second wins
     * at 0.3 s, so a 0.1 s timeout finds only the first; 0.35 s finds the winner. */
    to = weft_timeout_enter(0.1);
    rc = weft__connect_tcp("stagger.test", s->port, &(weft_connect_options){.happy_eyeballs_delay = 0.3});
    cr_expect_eq(weft_timeout_exit(to, rc), -ETIMEDOUT);
    cr_expect_eq(open_fds(), before);
    return NULL;
}

Test(net_connect, cancellation_and_timeouts_close_every_socket)
{
    stagger_setup s;
    stagger_open(&s);
    cr_assert_eq(weft_run(cancel_main, &s, NULL), 0);
    stagger_close(&s);
}

static void *local_main(void *arg)
{
    (void)arg;
    int port = 0;
    int lfd = listener(AF_INET, "127.0.0.1", &port, 8);
    int local_port = closed_port();
    int fd = weft__connect_tcp("127.0.0.1", port,
                               &(weft_connect_options){.local_host = "127.0.0.3", .local_port = local_port});
    cr_assert_geq(fd, 0, "%s", weft_errmsg());
    struct sockaddr_in in;
    socklen_t len = sizeof in;
    int afd = accept(lfd, (struct sockaddr *)&in, &len);
    cr_assert_geq(afd, 0);
    char buf[80];
    char want[80];
    snprintf(want, sizeof want, "127.0.0.3:%d", local_port);
    cr_expect_str_eq(weft_format_address((struct sockaddr *)&in, len, buf, sizeof buf), want,
                     "the server sees the local address asked for");
    close(afd);

    /* The same local address and port again, while the first is connected. */
    int rc = weft__connect_tcp("127.0.0.1", port,
                               &(weft_connect_options){.local_host = "127.0.0.3", .local_port = local_port});
    cr_expect_eq(rc, -EADDRINUSE, "got %s: %s", weft_errname(rc), weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "bind to 127.0.0.3:") != NULL, "%s", weft_errmsg());
    close(fd);

    /* A local address of the other family only. */
    rc = weft__connect_tcp("127.0.0.1", port, &(weft_connect_options){.local_host = "::1"});
    cr_expect_eq(rc, -EADDRNOTAVAIL, "got %s: %s", weft_errname(rc), weft_errmsg());
    cr_expect(strstr(weft_errmsg(), "no local address of this family") != NULL, "%s", weft_errmsg());
    close(lfd);
    return NULL;
}

Test(net_connect, binds_the_local_address_asked_for)
{
    cr_assert_eq(weft_run(local_main, NULL, NULL), 0);
}

/* ---- a real asyncio peer ------------------------------------------------------ */

static const char echo_server[] =
    "import asyncio, sys\n"
    "async def handle(r, w):\n"
    "    line = await r.readline()\n"
    "    w.write(b'echo ' + line)\n"
    "    await w.drain()\n"
    "    w.close()\n"
    "    done.set()\n"
    "async def main():\n"
    "    global done\n"
    "    done = asyncio.Event()\n"
    "    srv = await asyncio.start_server(handle, '127.0.0.1', 0)\n"
    "    print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "    try:\n"
    "        await asyncio.wait_for(done.wait(), 20)\n"
    "    except asyncio.TimeoutError:\n"
    "        sys.exit(1)\n"
    "asyncio.run(main())\n";

static void *asyncio_main(void *arg)
{
    int port = *(int *)arg;
    int fd = weft__connect_tcp("localhost", port, NULL);
    cr_assert_geq(fd, 0, "%s", weft_errmsg());
    cr_expect_eq(write(fd, "hello\n", 6), 6);
    char buf[64];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        cr_assert_eq(errno, EAGAIN);
        cr_assert_gt(weft_fd_wait(fd, WEFT_READABLE), 0);
    }
    buf[got] = '\0';
    cr_expect_str_eq(buf, "echo hello\n");
    weft_fd_close(fd);
    return NULL;
}

Test(net_connect, talks_to_an_asyncio_server)
{
    char path[] = "/tmp/weft-echo-XXXXXX";
    int sfd = mkstemp(path);
    cr_assert_geq(sfd, 0);
    cr_assert_eq(write(sfd, echo_server, sizeof echo_server - 1), (ssize_t)(sizeof echo_server - 1));
    close(sfd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "exec python3 %s", path);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int port = 0;
    cr_assert_eq(fscanf(p, "%d", &port), 1, "the asyncio server printed its port");
    int rc = weft_run(asyncio_main, &port, NULL);
    int status = pclose(p);
    unlink(path);
    cr_assert_eq(rc, 0);
    cr_expect_eq(status, 0, "the asyncio server saw the line and ended cleanly");
}

/* A lookup cancelled while a thread runs it, whose answer may come back to the loop
 * before the cancelled task runs again: whichever comes first, the other must not
 * touch a freed lookup (AddressSanitizer in the sanitizer build). The loop's thread
 * is held after each cancel so that the answer is often back first. */
static void *cancel_racing_main(void *arg)
{
    (void)arg;
    int cancelled = 0;
    for (int i = 0; i < 60; i++) {
        int rc = 1;
        weft_task *t = weft_spawn(lookup_task, &rc);
        cr_expect_eq(weft_yield(), 0); /* handed to the pool */
        cr_expect_eq(weft_yield(), 0);
        struct timespec ts = {0, 200000L * (i % 5)}; /* on the thread: 0 to 0.8 ms */
        nanosleep(&ts, NULL);
        weft_cancel(t, NULL);
        nanosleep(&ts, NULL); /* the answer may come back meanwhile */
        cr_expect_eq(weft_await(t, NULL), rc == -ECANCELED ? -ECANCELED : 0);
        cr_expect(rc == 0 || rc == -ECANCELED, "lookup %d: %s", i, weft_errname(rc));
        cancelled += rc == -ECANCELED;
    }
    cr_log_info("%d of 60 lookups were cancelled", cancelled);
    return NULL;
}

Test(net_connect, a_lookup_cancelled_as_its_answer_comes_back)
{
    cr_assert_eq(weft_run(cancel_racing_main, NULL, NULL), 0);
}
