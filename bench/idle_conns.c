/*
 * idle_conns.c — bytes per idle connection of a weft server (issue 12): a server whose
 * N connections (default 10,000) each have a handler task waiting in weft_stream_read,
 * measured as the growth of the server process's VmRSS from before the clients connect
 * to when every handler is waiting, divided by N. Run for default tasks and for compact
 * tasks (weft_server_options.task.compact = 1), each in a fresh process; given a
 * certificate and key, also over TLS 1.3 (the handler waits in weft_stream_read after
 * its handshake; the client child keeps each OpenSSL connection open), which adds what
 * OpenSSL holds per connection.
 * usage: idle_conns [N [CERT_PEM KEY_PEM]]
 * prints: idle_conns weft|weft-compact|weft-tls|weft-tls-compact conns=N rss_before_kb=..
 *         rss_after_kb=.. bytes_per_conn=..
 *
 * The clients live in a forked child (plain blocking sockets), so the server's RSS holds
 * only the server side; kernel socket buffers are not in RSS. RLIMIT_NOFILE is raised to
 * its hard limit first: N connections need N descriptors on each side.
 */
#define _DEFAULT_SOURCE /* kill, for the client child */
#include "bench_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include <weft.h>

static long conns;
static int tls;                /* measure TLS connections */
static const char *cert_file, *key_file;
static long waiting; /* handlers started and not returned */
static int compact;

static long vm_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The client child: N blocking connects, then it waits to be killed. */
static void clients(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SSL_CTX *ctx = tls ? SSL_CTX_new(TLS_client_method()) : NULL; /* no verification: a measurement */
    if (tls && !ctx)
        _exit(1);
    for (long i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("idle_conns client");
            _exit(1);
        }
        if (tls) {
            SSL *ssl = SSL_new(ctx); /* kept open until the child is killed */
            if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1) {
                fprintf(stderr, "idle_conns client: TLS handshake %ld failed\n", i);
                _exit(1);
            }
        }
    }
    pause();
    _exit(0);
}

static void *handler(weft_stream *s, void *arg) {
    (void)arg;
    char buf[64];
    waiting++;
    ssize_t n;
    do
        n = weft_stream_read(s, buf, sizeof buf);
    while (n > 0);
    waiting--;
    if (weft_stream_close(s) != 0)
        return NULL;
    return NULL;
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    weft_server_options opts = {.backlog = 1024};
    opts.task.compact = compact;
    weft_tls_context *ctx = NULL;
    if (tls) {
        ctx = weft_tls_server_context(&(weft_tls_options){.cert_file = cert_file, .key_file = key_file,
                                                          .min_version = WEFT_TLS_1_3});
        if (!ctx)
            bench_die(prog, "weft_tls_server_context: %s", weft_errmsg());
        opts.tls = ctx;
    }
    weft_server *srv = weft_start_server(handler, NULL, "127.0.0.1", 0, &opts);
    if (!srv)
        bench_die(prog, "weft_start_server: %s", weft_errmsg());
    long before = vm_rss_kb();
    pid_t child = fork();
    if (child == 0)
        clients(weft_server_port(srv));
    if (child < 0)
        bench_die(prog, "fork failed");
    double deadline = bench_now() + 120;
    while (waiting < conns && bench_now() < deadline)
        if (weft_sleep(0.01) != 0)
            break;
    long after = vm_rss_kb();
    long reached = waiting;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    weft_server_close(srv);
    if (weft_server_wait_closed(srv) != 0)
        bench_die(prog, "weft_server_wait_closed: %s", weft_errmsg());
    weft_tls_context_free(ctx);
    if (reached != conns)
        bench_die(prog, "only %ld of %ld connections reached their handler", reached, conns);
    printf("idle_conns %s conns=%ld rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n",
           tls ? (compact ? "weft-tls-compact" : "weft-tls") : (compact ? "weft-compact" : "weft"), conns, before, after, (double)(after - before) * 1024 / (double)conns);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    if (argc == 4) { /* N CERT KEY: the TLS kinds too */
        cert_file = argv[2];
        key_file = argv[3];
        argc = 2;
    } else if (argc > 2) {
        fprintf(stderr, "usage: %s [N [CERT_PEM KEY_PEM]]\n", argv[0]);
        return 2;
    }
    conns = bench_arg_n(argc, argv, 10000, 1000000L);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Each kind in a fresh process, so none inherits another's pools. */
    for (int kind = 0; kind < (cert_file ? 4 : 2); kind++) {
        compact = kind & 1;
        tls = kind >= 2;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int err = weft_run(bench_main, argv[0], NULL);
            if (err != 0)
                bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
            exit(0);
        }
        int status = 1;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    return 0;
}
