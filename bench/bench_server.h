/*
 * bench_server.h — what the server workloads (W4 echo, W5 http) share: the peers'
 * arguments (PORT LIFETIME_S), a weft server on 127.0.0.1:PORT with backlog 1024 that
 * runs the workload's handler per connection, and its end after LIFETIME seconds
 * (closed, connections aborted, handlers waited for), over TLS when given a server
 * context. Include after bench_common.h.
 */
#ifndef WEFT_BENCH_SERVER_H
#define WEFT_BENCH_SERVER_H

#include <weft.h>

typedef struct bench_server {
    const char *prog;
    weft_connection_fn handler;
    int port;
    double lifetime;
    weft_tls_context *tls; /* serve TLS with it, or NULL */
} bench_server;

static void *bench_server_main(void *arg)
{
    bench_server *b = arg;
    weft_server *srv = weft_start_server(b->handler, NULL, "127.0.0.1", b->port,
                                         &(weft_server_options){.backlog = 1024, .tls = b->tls});
    if (!srv)
        bench_die(b->prog, "cannot listen on 127.0.0.1:%d: %s", b->port, weft_errmsg());
    if (weft_sleep(b->lifetime) != 0)
        return NULL;
    (void)weft_server_close(srv);
    (void)weft_server_abort_clients(srv);
    if (weft_server_wait_closed(srv) != 0)
        bench_die(b->prog, "%s", weft_errmsg());
    return NULL;
}

/* W5's handler (plain and TLS): each request's headers end with "\r\n\r\n" (no
 * bodies); each is answered with the fixed hello-world response, in order. */
static inline void *bench_http_hello(weft_stream *s, void *arg)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";
    (void)arg;
    for (;;) {
        const char *head;
        ssize_t n = weft_stream_readuntil(s, "\r\n\r\n", 4, &head);
        if (n <= 0)
            return NULL;
        if (weft_stream_write(s, resp, sizeof resp - 1) != 0 || weft_stream_drain(s) != 0)
            return NULL;
    }
}

/* Parses PORT LIFETIME_S and serves; returns main's exit status. */
static inline int bench_serve(int argc, char **argv, const char *prog, weft_connection_fn handler)
{
    if (argc != 3)
        bench_die(prog, "usage: %s PORT LIFETIME_S", prog);
    bench_server b = {prog, handler, atoi(argv[1]), atof(argv[2]), NULL};
    if (weft_run(bench_server_main, &b, NULL) != 0)
        bench_die(prog, "%s", weft_errmsg());
    return 0;
}

#endif
