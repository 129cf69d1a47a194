/*
 * test_udp.c — UDP datagram endpoints (src/net/datagram.c) on loopback: echo
 * between unconnected endpoints with the senders' addresses right, a connected
 * endpoint that hears only its peer, -ECONNREFUSED after an ICMP port
 * unreachable, -EISCONN, truncation, a receiver that waits, is cancelled or sees
 * its endpoint closed, stale handles, SO_REUSEPORT, an endpoint left open at the
 * loop's end reported, and a real asyncio UDP peer. Real time: I/O is real.
 */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

TestSuite(udp, .timeout = 60);

static weft_datagram *open_local(const char *host, int port)
{
    weft_datagram *d = weft_datagram_open(&(weft_datagram_options){.local_host = host, .local_port = port});
    cr_assert_not_null(d, "%s", weft_errmsg());
    return d;
}

static socklen_t name_of(weft_datagram *d, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    cr_assert_eq(weft_datagram_sockname(d, (struct sockaddr *)ss, &len), 0);
    return len;
}

static int port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const char *text_of(const void *addr, socklen_t len)
{
    static char buf[4][80];
    static int next;
    char *b = buf[next++ % 4];
    return weft_format_address(addr, len, b, 80);
}

/* ---- echo ---------------------------------------------------------------------- */

static void *echo_main(void *arg)
{
    const char *ip = arg;
    weft_datagram *a = open_local(ip, 0), *b = open_local(ip, 0);
    struct sockaddr_storage an, bn, from;
    socklen_t alen = name_of(a, &an), blen = name_of(b, &bn);
    cr_expect_neq(port_of(&an), 0, "bound to a port the kernel picked");

    cr_expect_eq(weft_datagram_sendto(a, "ping", 4, (struct sockaddr *)&bn, blen), 4);
    char buf[64];
    socklen_t flen = sizeof from;
    ssize_t n = weft_datagram_recvfrom(b, buf, sizeof buf, (struct sockaddr *)&from, &flen);
    cr_assert_eq(n, 4, "%s", weft_errmsg());
    cr_expect_eq(memcmp(buf, "ping", 4), 0);
    cr_expect_str_eq(text_of(&from, flen), text_of(&an, alen), "the sender's address is a's");

    cr_expect_eq(weft_datagram_sendto(b, "pong!", 5, (struct sockaddr *)&from, flen), 5);
    flen = sizeof from;
    cr_expect_eq(weft_datagram_recvfrom(a, buf, sizeof buf, (struct sockaddr *)&from, &flen), 5);
    cr_expect_str_eq(text_of(&from, flen), text_of(&bn, blen));

    /* An empty datagram is one too; addresses are optional. */
    cr_expect_eq(weft_datagram_sendto(a, NULL, 0, (struct sockaddr *)&bn, blen), 0);
    cr_expect_eq(weft_datagram_recvfrom(b, buf, sizeof buf, NULL, NULL), 0);

    /* Not connected: an address is needed. */
    cr_expect_eq(weft_datagram_sendto(a, "x", 1, NULL, 0), -EDESTADDRREQ);
    cr_expect_eq(weft_datagram_peername(a, (struct sockaddr *)&from, &flen), -ENOTCONN);
    cr_expect_eq(weft_datagram_close(a), 0);
    cr_expect_eq(weft_datagram_close(b), 0);
    return NULL;
}

Test(udp, echo_between_unconnected_endpoints_ipv4)
{
    cr_assert_eq(weft_run(echo_main, "127.0.0.1", NULL), 0);
}

Test(udp, echo_between_unconnected_endpoints_ipv6)
{
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&in6, sizeof in6) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok)
        cr_skip_test("no IPv6 loopback here");
    cr_assert_eq(weft_run(echo_main, "::1", NULL), 0);
}

static void *connected_main(void *arg)
{
    (void)arg;
    weft_datagram *b = open_local("127.0.0.1", 0), *other = open_local("127.0.0.1", 0);
    struct sockaddr_storage bn, cn, from, peer;
    socklen_t blen = name_of(b, &bn);
    weft_datagram *c = weft_datagram_open(&(weft_datagram_options){.remote_host = "127.0.0.1",
                                                                     .remote_port = port_of(&bn)});
    cr_assert_not_null(c, "%s", weft_errmsg());
    socklen_t clen = name_of(c, &cn);
    socklen_t plen = sizeof peer;
    cr_expect_eq(weft_datagram_peername(c, (struct sockaddr *)&peer, &plen), 0);
    cr_expect_str_eq(text_of(&peer, plen), text_of(&bn, blen));

    cr_expect_eq(weft_datagram_sendto(c, "hello", 5, NULL, 0), 5);
    /* Its peer's own address is accepted too; any other is not. */
    cr_expect_eq(weft_datagram_sendto(c, "again", 5, (struct sockaddr *)&bn, blen), 5);
    struct sockaddr_storage on;
    socklen_t olen = name_of(other, &on);
    cr_expect_eq(weft_datagram_sendto(c, "x", 1, (struct sockaddr *)&on, olen), -EISCONN);
    cr_expect(strstr(weft_errmsg(), text_of(&bn, blen)) != NULL, "%s", weft_errmsg());

    char buf[64];
    socklen_t flen = sizeof from;
    cr_expect_eq(weft_datagram_recvfrom(b, buf, sizeof buf, (struct sockaddr *)&from, &flen), 5);
    cr_expect_str_eq(text_of(&from, flen), text_of(&cn, clen));
    cr_expect_eq(weft_datagram_recvfrom(b, buf, sizeof buf, NULL, NULL), 5);

    /* c hears only b: other's datagram is filtered by the kernel. */
    cr_expect_eq(weft_datagram_sendto(other, "stranger", 8, (struct sockaddr *)&cn, clen), 8);
    cr_expect_eq(weft_datagram_sendto(b, "reply", 5, (struct sockaddr *)&cn, clen), 5);
    flen = sizeof from;
    ssize_t n = weft_datagram_recvfrom(c, buf, sizeof buf, (struct sockaddr *)&from, &flen);
    cr_expect_eq(n, 5);
    cr_expect_eq(memcmp(buf, "reply", 5), 0);
    cr_expect_str_eq(text_of(&from, flen), text_of(&bn, blen));
    weft_timeout *to = weft_timeout_enter(0.2);
    n = weft_datagram_recvfrom(c, buf, sizeof buf, NULL, NULL);
    cr_expect_eq(weft_timeout_exit(to, (int)n), -ETIMEDOUT, "nothing else for c");

    cr_expect_eq(weft_datagram_close(c), 0);
    cr_expect_eq(weft_datagram_close(b), 0);
    cr_expect_eq(weft_datagram_close(other), 0);
    return NULL;
}

Test(udp, a_connected_endpoint_sends_without_an_address_and_hears_only_its_peer)
{
    cr_assert_eq(weft_run(connected_main, NULL, NULL), 0);
}

/* ---- errors ------------------------------------------------------------------ */

static void *refused_main(void *arg)
{
    (void)arg;
    weft_datagram *gone = open_local("127.0.0.1", 0);
    struct sockaddr_storage gn;
    name_of(gone, &gn);
    int port = port_of(&gn);
    cr_expect_eq(weft_datagram_close(gone), 0);

    weft_datagram *c = weft_datagram_open(&(weft_datagram_options){.remote_host = "127.0.0.1", .remote_port = port});
    cr_assert_not_null(c, "%s", weft_errmsg());
    cr_expect_eq(weft_datagram_sendto(c, "anyone?", 7, NULL, 0), 7);
    char buf[16];
    weft_timeout *to = weft_timeout_enter(2.0);
    ssize_t n = weft_datagram_recvfrom(c, buf, sizeof buf, NULL, NULL);
    n = weft_timeout_exit(to, (int)n);
    cr_expect_eq(n, -ECONNREFUSED, "got %s", weft_errname((int)n));
    char want[80];
    snprintf(want, sizeof want, "127.0.0.1:%d refused a datagram", port);
    cr_expect(strstr(weft_errmsg(), want) != NULL, "%s", weft_errmsg());
    /* The endpoint stays usable. */
    cr_expect_eq(weft_datagram_sendto(c, "x", 1, NULL, 0), 1);
    cr_expect_eq(weft_datagram_close(c), 0);
    return NULL;
}

Test(udp, a_closed_port_gives_econnrefused_on_a_connected_endpoint)
{
    cr_assert_eq(weft_run(refused_main, NULL, NULL), 0);
}

static void *truncation_main(void *arg)
{
    (void)arg;
    weft_datagram *a = open_local("127.0.0.1", 0), *b = open_local("127.0.0.1", 0);
    struct sockaddr_storage an, bn, from;
    socklen_t alen = name_of(a, &an), blen = name_of(b, &bn);
    char big[100];
    for (int i = 0; i < 100; i++)
        big[i] = (char)('a' + i % 26);
    cr_expect_eq(weft_datagram_sendto(a, big, sizeof big, (struct sockaddr *)&bn, blen), 100);
    cr_expect_eq(weft_datagram_sendto(a, "next", 4, (struct sockaddr *)&bn, blen), 4);
    char buf[10];
    socklen_t flen = sizeof from;
    ssize_t n = weft_datagram_recvfrom(b, buf, sizeof buf, (struct sockaddr *)&from, &flen);
    cr_expect_eq(n, -EMSGSIZE);
    cr_expect(strstr(weft_errmsg(), "100 bytes did not fit in 10") != NULL, "%s", weft_errmsg());
    cr_expect_eq(memcmp(buf, big, 10), 0, "the first bytes are there");
    cr_expect_str_eq(text_of(&from, flen), text_of(&an, alen));
    /* The truncated datagram is gone; the next one is whole. */
    cr_expect_eq(weft_datagram_recvfrom(b, buf, sizeof buf, NULL, NULL), 4);
    cr_expect_eq(memcmp(buf, "next", 4), 0);
    weft_datagram_close(a);
    weft_datagram_close(b);
    return NULL;
}

Test(udp, a_datagram_longer_than_the_buffer_is_reported)
{
    cr_assert_eq(weft_run(truncation_main, NULL, NULL), 0);
}

static void *bad_args_main(void *arg)
{
    (void)arg;
    cr_expect_null(weft_datagram_open(NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "no local address, no remote address and no family") != NULL, "%s",
              weft_errmsg());
    cr_expect_null(weft_datagram_open(&(weft_datagram_options){.remote_host = "127.0.0.1"}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_datagram_open(&(weft_datagram_options){.local_port = 70000}));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_null(weft_datagram_open(&(weft_datagram_options){.remote_host = "weft-none.invalid", .remote_port = 9}));
    cr_expect(weft_errcode() == WEFT_ENONAME || weft_errcode() == WEFT_ENAMETEMP, "%s", weft_errname(weft_errcode()));

    /* A family alone: unbound until the first send. */
    weft_datagram *d = weft_datagram_open(&(weft_datagram_options){.family = AF_INET});
    cr_assert_not_null(d, "%s", weft_errmsg());
    weft_datagram *b = open_local("127.0.0.1", 0);
    struct sockaddr_storage bn;
    socklen_t blen = name_of(b, &bn);
    cr_expect_eq(weft_datagram_sendto(d, "hi", 2, (struct sockaddr *)&bn, blen), 2);
    char buf[4];
    cr_expect_eq(weft_datagram_recvfrom(b, buf, sizeof buf, NULL, NULL), 2);
    cr_expect_eq(weft_datagram_recvfrom(b, NULL, 4, NULL, NULL), -EINVAL);

    /* Stale handles. */
    cr_expect_eq(weft_datagram_close(d), 0);
    cr_expect_eq(weft_datagram_close(d), -ESTALE);
    cr_expect(strstr(weft_errmsg(), "stale") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_datagram_sendto(d, "x", 1, (struct sockaddr *)&bn, blen), -ESTALE);
    /* A new endpoint may reuse the record: the old handle stays stale. */
    weft_datagram *e = open_local("127.0.0.1", 0);
    cr_expect_eq(weft_datagram_fd(d), -ESTALE);
    cr_expect_geq(weft_datagram_fd(e), 0);
    weft_datagram_close(e);
    weft_datagram_close(b);
    return NULL;
}

Test(udp, bad_arguments_and_stale_handles_are_refused)
{
    cr_assert_eq(weft_run(bad_args_main, NULL, NULL), 0);
    cr_expect_null(weft_datagram_open(&(weft_datagram_options){.family = AF_INET}));
    cr_expect_eq(weft_errcode(), WEFT_ENOTINLOOP);
}

/* ---- waiting ------------------------------------------------------------------- */

typedef struct waiter {
    weft_datagram *d;
    ssize_t rc;
    char buf[16];
} waiter;

static void *receive(void *arg)
{
    waiter *w = arg;
    w->rc = weft_datagram_recvfrom(w->d, w->buf, sizeof w->buf, NULL, NULL);
    trace("got:%zd", w->rc);
    return NULL;
}

static void *waiting_main(void *arg)
{
    (void)arg;
    weft_datagram *a = open_local("127.0.0.1", 0), *b = open_local("127.0.0.1", 0);
    struct sockaddr_storage bn;
    socklen_t blen = name_of(b, &bn);

    /* A receiver waits; a datagram wakes it. */
    waiter w = {.d = b};
    weft_task *t = weft_spawn(receive, &w);
    cr_expect_eq(weft_sleep(0.05), 0);
    trace("send");
    cr_expect_eq(weft_datagram_sendto(a, "late", 4, (struct sockaddr *)&bn, blen), 4);
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(w.rc, 4);

    /* A second receiver while one waits: -EBUSY. */
    t = weft_spawn(receive, &w);
    cr_expect_eq(weft_sleep(0.01), 0);
    char buf[4];
    cr_expect_eq(weft_datagram_recvfrom(b, buf, sizeof buf, NULL, NULL), -EBUSY);
    cr_expect(strstr(weft_errmsg(), "already waiting to receive") != NULL, "%s", weft_errmsg());

    /* Cancelled: nothing taken; the next receive gets the datagram. */
    weft_cancel(t, NULL);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect_eq(w.rc, -ECANCELED);
    cr_expect_eq(weft_datagram_sendto(a, "kept", 4, (struct sockaddr *)&bn, blen), 4);
    cr_expect_eq(weft_datagram_recvfrom(b, w.buf, sizeof w.buf, NULL, NULL), 4);
    cr_expect_eq(memcmp(w.buf, "kept", 4), 0);

    /* Closed while a task waits: it wakes with WEFT_ECLOSED. */
    t = weft_spawn(receive, &w);
    cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect_eq(weft_datagram_close(b), 0);
    cr_expect_eq(weft_await(t, NULL), 0);
    cr_expect_eq(w.rc, WEFT_ECLOSED);
    weft_datagram_close(a);
    return NULL;
}

Test(udp, a_receiver_waits_is_cancelled_or_sees_its_endpoint_closed)
{
    trace_reset();
    cr_assert_eq(weft_run(waiting_main, NULL, NULL), 0);
    cr_expect(strncmp(trace_text, "send got:4", 10) == 0, "%s", trace_text);
}

static void *reuse_main(void *arg)
{
    (void)arg;
    weft_datagram *a = weft_datagram_open(&(weft_datagram_options){.local_host = "127.0.0.1", .reuse_port = 1});
    cr_assert_not_null(a, "%s", weft_errmsg());
    struct sockaddr_storage an;
    name_of(a, &an);
    int port = port_of(&an);
    weft_datagram *b = weft_datagram_open(
        &(weft_datagram_options){.local_host = "127.0.0.1", .local_port = port, .reuse_port = 1});
    cr_expect_not_null(b, "SO_REUSEPORT shares the port: %s", weft_errmsg());
    weft_datagram *c = weft_datagram_open(&(weft_datagram_options){.local_host = "127.0.0.1", .local_port = port});
    cr_expect_null(c);
    cr_expect_eq(weft_errcode(), -EADDRINUSE);
    char want[80];
    snprintf(want, sizeof want, "bind to 127.0.0.1:%d: Address already in use", port);
    cr_expect(strstr(weft_errmsg(), want) != NULL, "%s", weft_errmsg());
    weft_datagram_close(a);
    if (b)
        weft_datagram_close(b);
    return NULL;
}

Test(udp, reuse_port_lets_two_endpoints_share_a_port)
{
    cr_assert_eq(weft_run(reuse_main, NULL, NULL), 0);
}

/* ---- left open ---------------------------------------------------------------- */

static void *leaves_one_open(void *arg)
{
    (void)arg;
    weft_datagram *d = weft_datagram_open(&(weft_datagram_options){.local_host = "127.0.0.1"});
    return d ? NULL : weft_fail(weft_errcode(), "%s", weft_errmsg());
}

static int left_open_body(void)
{
    return weft_run(leaves_one_open, NULL, NULL) == 0 ? 0 : 2;
}

Test(udp, an_endpoint_left_open_is_closed_and_reported_when_the_loop_ends)
{
    child_outcome out;
    run_forked(left_open_body, &out);
    cr_expect(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "status %d: %s", out.status, out.stderr_text);
    cr_expect(strstr(out.stderr_text, "weft: a datagram endpoint on 127.0.0.1:") != NULL, "%s",
              out.stderr_text);
    cr_expect(strstr(out.stderr_text, "weft_datagram_close") != NULL, "%s", out.stderr_text);
}

/* ---- a real asyncio peer ---------------------------------------------------------- */

static const char udp_echo[] =
    "import asyncio, sys\n"
    "class Echo(asyncio.DatagramProtocol):\n"
    "    def connection_made(self, t): self.t = t\n"
    "    def datagram_received(self, data, addr):\n"
    "        self.t.sendto(b'echo ' + data, addr)\n"
    "        if data == b'bye': done.set()\n"
    "async def main():\n"
    "    global done\n"
    "    done = asyncio.Event()\n"
    "    t, p = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=('127.0.0.1', 0))\n"
    "    print(t.get_extra_info('sockname')[1], flush=True)\n"
    "    try:\n"
    "        await asyncio.wait_for(done.wait(), 20)\n"
    "    except asyncio.TimeoutError:\n"
    "        sys.exit(1)\n"
    "    t.close()\n"
    "asyncio.run(main())\n";

static void *asyncio_peer_main(void *arg)
{
    int port = *(int *)arg;
    weft_datagram *c = weft_datagram_open(&(weft_datagram_options){.remote_host = "localhost", .remote_port = port});
    cr_assert_not_null(c, "%s", weft_errmsg());
    const char *words[] = {"one", "two", "bye"};
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(weft_datagram_sendto(c, words[i], strlen(words[i]), NULL, 0), (ssize_t)strlen(words[i]));
        char buf[32] = "";
        weft_timeout *to = weft_timeout_enter(5.0);
        ssize_t n = weft_datagram_recvfrom(c, buf, sizeof buf - 1, NULL, NULL);
        n = weft_timeout_exit(to, (int)n);
        cr_assert_gt(n, 0, "%s", weft_errmsg());
        char want[32];
        snprintf(want, sizeof want, "echo %s", words[i]);
        cr_expect_str_eq(buf, want);
    }
    cr_expect_eq(weft_datagram_close(c), 0);
    return NULL;
}

Test(udp, talks_to_an_asyncio_datagram_endpoint)
{
    char path[] = "/tmp/weft-udp-XXXXXX";
    int sfd = mkstemp(path);
    cr_assert_geq(sfd, 0);
    cr_assert_eq(write(sfd, udp_echo, sizeof udp_echo - 1), (ssize_t)(sizeof udp_echo - 1));
    close(sfd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "exec python3 %s", path);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int port = 0;
    cr_assert_eq(fscanf(p, "%d", &port), 1, "the asyncio endpoint printed its port");
    int rc = weft_run(asyncio_peer_main, &port, NULL);
    int status = pclose(p);
    unlink(path);
    cr_assert_eq(rc, 0);
    cr_expect_eq(status, 0, "the asyncio endpoint got 'bye' and ended cleanly");
}
