/*
 * http_server — an HTTP/1.1 keep-alive server on weft's streams, parsing requests
 * with a real parser (Node's http-parser, Debian's libhttp-parser-dev): one task per
 * connection reads what comes, feeds the parser, and answers each complete request
 * in order (pipelined requests included). It is the local server the fetch showcase
 * and the tests talk to, so it has a few routes worth fetching:
 *
 *   GET /                  "Hello, World!"
 *   GET /bytes/N           N bytes of text ('a'..'z' repeating)
 *   GET /delay/MS          "waited MS ms" after sleeping MS milliseconds
 *   GET /delay/MS/bytes/N  N bytes after sleeping MS milliseconds
 *   anything else          404
 *
 * usage: http_server [-p PORT] [-t SECONDS] [-q] [-C CERT -K KEY]
 *   -p  port on 127.0.0.1 (0, the default, picks a free one; it is printed)
 *   -C, -K  serve https: TLS with this certificate chain and key (PEM; weft/tls.h)
 *   -t  stop by itself after SECONDS (default: run until SIGINT/SIGTERM)
 *   -q  do not log requests
 * It prints "listening on 127.0.0.1:PORT" first, so a script can read the port.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

#define URL_MAX 2048
#define BYTES_MAX (64 * 1024 * 1024)

static bool quiet;
static unsigned long requests_served;

/* One connection's parsing state: the URL of the request being parsed, and a
 * queue of complete requests to answer in order. */
typedef struct request {
    char url[URL_MAX];
    size_t url_len;
    bool url_too_long;
    bool keep_alive;
    bool complete;
    int method;
} request;

typedef struct connection {
    weft_stream *s;
    http_parser parser;
    request cur;
    request *done;               /* complete requests not yet answered */
    size_t ndone, cap;
    bool failed;
} connection;

static int on_message_begin(http_parser *p)
{
    connection *c = p->data;
    memset(&c->cur, 0, sizeof c->cur);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    connection *c = p->data;
    if (c->cur.url_len + len >= URL_MAX) {
        c->cur.url_too_long = true;
        return 0;
    }
    memcpy(c->cur.url + c->cur.url_len, at, len);
    c->cur.url_len += len;
    c->cur.url[c->cur.url_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    connection *c = p->data;
    if (c->ndone == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        request *d = realloc(c->done, cap * sizeof *d);
        if (!d) {
            c->failed = true;
            return 1;
        }
        c->done = d;
        c->cap = cap;
    }
    c->cur.keep_alive = http_should_keep_alive(p) != 0;
    c->cur.method = (int)p->method;
    c->done[c->ndone++] = c->cur;
    /* Answer before parsing on: the parser is paused until this batch is sent. */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

/* Writes the status line and headers for a body of len bytes. */
static int respond_head(weft_stream *s, int status, const char *reason, size_t len, bool keep_alive)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n", status,
                     reason, len, keep_alive ? "" : "Connection: close\r\n");
    return weft_stream_write(s, head, (size_t)n);
}

static int respond_text(weft_stream *s, int status, const char *reason, const char *body, bool keep_alive)
{
    size_t len = strlen(body);
    struct iovec iov[2];
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n", status,
                     reason, len, keep_alive ? "" : "Connection: close\r\n");
    iov[0] = (struct iovec){head, (size_t)n};
    iov[1] = (struct iovec){(void *)body, len};
    return weft_stream_writev(s, iov, 2);
}

#define NO_BYTES ((unsigned long)-1)

/* "/delay/MS", "/bytes/N" and "/delay/MS/bytes/N": true with *ms and *n set (*n is
 * NO_BYTES for a plain delay), false for any other path. */
static bool parse_route(const char *url, unsigned long *ms, unsigned long *n)
{
    char *end;
    *ms = 0;
    *n = NO_BYTES;
    if (strncmp(url, "/delay/", 7) == 0) {
        *ms = strtoul(url + 7, &end, 10);
        if (end == url + 7)
            return false;
        url = end;
        if (*url == '\0')
            return true;
    }
    if (strncmp(url, "/bytes/", 7) != 0)
        return false;
    *n = strtoul(url + 7, &end, 10);
    return end != url + 7 && *end == '\0' && *n <= BYTES_MAX;
}

/* n bytes of 'a'..'z', in pieces, draining as it goes. */
static int respond_bytes(weft_stream *s, unsigned long n, bool keep_alive)
{
    static char chunk[16384];
    if (!chunk[0])
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = (char)('a' + i % 26);
    int rc = respond_head(s, 200, "OK", n, keep_alive);
    for (unsigned long sent = 0; rc == 0 && sent < n;) {
        size_t piece = n - sent < sizeof chunk ? n - sent : sizeof chunk;
        rc = weft_stream_write(s, chunk, piece);
        if (rc == 0)
            rc = weft_stream_drain(s);
        sent += piece;
    }
    return rc;
}

/* Answers one request; returns 0, or an error that ends the connection. */
static int answer(weft_stream *s, const request *r)
{
    char body[128];
    unsigned long n = 0, delay_ms = 0;
    int rc;
    if (r->url_too_long) {
        rc = respond_text(s, 414, "URI Too Long", "the URL is too long\n", false);
    } else if (r->method != HTTP_GET && r->method != HTTP_HEAD) {
        rc = respond_text(s, 405, "Method Not Allowed", "only GET\n", r->keep_alive);
    } else if (strcmp(r->url, "/") == 0) {
        rc = respond_text(s, 200, "OK", "Hello, World!", r->keep_alive);
    } else if (parse_route(r->url, &delay_ms, &n)) {
        if (delay_ms > 0) {
            rc = weft_sleep((double)delay_ms / 1000.0);
            if (rc != 0)
                return rc;
        }
        if (n == NO_BYTES) {
            snprintf(body, sizeof body, "waited %lu ms\n", delay_ms);
            rc = respond_text(s, 200, "OK", body, r->keep_alive);
        } else {
            rc = respond_bytes(s, n, r->keep_alive);
        }
    } else {
        rc = respond_text(s, 404, "Not Found", "no such page\n", r->keep_alive);
    }
    if (rc == 0 && !quiet)
        printf("GET %s\n", r->url);
    requests_served++;
    return rc;
}

static void *serve_connection(weft_stream *s, void *arg)
{
    (void)arg;
    connection c = {.s = s};
    http_parser_init(&c.parser, HTTP_REQUEST);
    c.parser.data = &c;
    char buf[16384];
    for (;;) {
        ssize_t n = weft_stream_read(s, buf, sizeof buf);
        if (n < 0)
            break; /* reset, closed by the server: nothing to answer */
        size_t used = http_parser_execute(&c.parser, &settings, buf, (size_t)n);
        bool bad = c.parser.http_errno != HPE_OK || (n > 0 && used != (size_t)n);
        for (size_t i = 0; i < c.ndone; i++) {
            if (answer(s, &c.done[i]) != 0 || !c.done[i].keep_alive) {
                bad = true;
                break;
            }
        }
        c.ndone = 0;
        if (c.failed || n == 0)
            break;
        if (bad) {
            if (c.parser.http_errno != HPE_OK)
                (void)respond_text(s, 400, "Bad Request", http_errno_description(HTTP_PARSER_ERRNO(&c.parser)),
                                   false);
            break;
        }
        if (weft_stream_drain(s) != 0)
            break;
    }
    free(c.done);
    return NULL; /* the server closes the stream, sending what is buffered */
}

static int port;
static double lifetime = -1;

static void *serve(void *srv)
{
    /* Until cancelled; then the server closes and aborts its connections. */
    int rc = weft_server_serve_forever(srv);
    return rc == -ECANCELED ? NULL : weft_fail(rc, "http_server: %s", weft_errmsg());
}

static const char *cert_file, *key_file;

static void *main_task(void *arg)
{
    (void)arg;
    weft_tls_context *tls = NULL;
    if (cert_file) {
        tls = weft_tls_server_context(&(weft_tls_options){.cert_file = cert_file, .key_file = key_file,
                                                          .alpn = (const char *[]){"http/1.1", NULL}});
        if (!tls)
            return weft_fail(weft_errcode(), "http_server: %s", weft_errmsg());
    }
    weft_server *srv = weft_start_server(serve_connection, NULL, "127.0.0.1", port,
                                         &(weft_server_options){.backlog = 1024, .tls = tls});
    weft_tls_context_free(tls); /* the server keeps it while it needs it */
    if (!srv)
        return weft_fail(weft_errcode(), "http_server: %s", weft_errmsg());
    printf("listening on 127.0.0.1:%d\n", weft_server_port(srv));
    weft_task *server = weft_spawn(serve, srv);
    if (!server)
        return weft_fail(weft_errcode(), "http_server: %s", weft_errmsg());
    if (lifetime >= 0) {
        /* Stop by itself: the sleep ends, the server task is cancelled. */
        if (weft_sleep(lifetime) != 0)
            return NULL;
        (void)weft_cancel(server, "time is up");
    }
    int rc = weft_await(server, NULL);
    if (rc != 0 && rc != -ECANCELED)
        return weft_fail(rc, "%s", weft_errmsg());
    if (!quiet)
        printf("served %lu requests\n", requests_served);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: http_server [-p PORT] [-t SECONDS] [-q] [-C CERT -K KEY]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:t:qC:K:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 't':
            lifetime = atof(optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'C':
            cert_file = optarg;
            break;
        case 'K':
            key_file = optarg;
            break;
        default:
            usage();
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = weft_run(main_task, NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "%s\n", weft_errmsg());
        return 1;
    }
    return 0;
}
