/*
 * echo_client — the seeds' first lesson over a socket: connect to an echo server,
 * send each line of standard input (or the arguments after the port, one per line),
 * print what comes back. Many clients at once are many tasks: -c N runs N of them
 * concurrently, each sending the same lines, and prints how long they all took.
 *
 * usage: echo_client [-c CLIENTS] HOST PORT [LINE...]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

static const char *host;
static int port;
static char **lines;
static int nlines;
static int clients = 1;

/* One client: connect, send every line, check each echo. Returns the lines echoed. */
static void *client(void *arg)
{
    intptr_t id = (intptr_t)arg;
    weft_stream *s = weft_open_connection(host, port, NULL);
    if (!s)
        return weft_fail(weft_errcode(), "client %ld: %s", (long)id, weft_errmsg());
    intptr_t echoed = 0;
    for (int i = 0; i < nlines; i++) {
        size_t len = strlen(lines[i]);
        struct iovec iov[2] = {{lines[i], len}, {"\n", 1}};
        if (weft_stream_writev(s, iov, 2) != 0 || weft_stream_drain(s) != 0)
            break;
        const char *back;
        ssize_t n = weft_stream_readline(s, &back);
        if (n <= 0) {
            (void)weft_stream_abort(s);
            return weft_fail(n < 0 ? (int)n : WEFT_EINCOMPLETE, "client %ld: %s", (long)id,
                             n < 0 ? weft_errmsg() : "the server closed the connection");
        }
        if ((size_t)n != len + 1 || memcmp(back, lines[i], len) != 0) {
            (void)weft_stream_abort(s);
            return weft_fail(-EPROTO, "client %ld: the echo of line %d differs", (long)id, i + 1);
        }
        if (clients == 1)
            printf("%.*s", (int)n, back);
        echoed++;
    }
    int rc = weft_stream_close(s);
    if (rc != 0)
        return weft_fail(rc, "client %ld: %s", (long)id, weft_errmsg());
    return (void *)echoed;
}

static void *main_task(void *arg)
{
    (void)arg;
    double start = weft_time();
    weft_task **tasks = calloc((size_t)clients, sizeof *tasks);
    void **results = calloc((size_t)clients, sizeof *results);
    if (!tasks || !results)
        return weft_fail(-ENOMEM, "echo_client: out of memory");
    for (int i = 0; i < clients; i++)
        tasks[i] = weft_spawn(client, (void *)(intptr_t)(i + 1));
    int rc = weft_gather(tasks, (size_t)clients, results, NULL, 0);
    if (rc == 0 && clients > 1)
        printf("%d clients echoed %d lines each in %.3f s\n", clients, nlines, weft_time() - start);
    free(tasks);
    free(results);
    return rc == 0 ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt == 'c' && atoi(optarg) > 0) {
            clients = atoi(optarg);
        } else {
            fprintf(stderr, "usage: echo_client [-c CLIENTS] HOST PORT [LINE...]\n");
            return 2;
        }
    }
    if (argc - optind < 2) {
        fprintf(stderr, "usage: echo_client [-c CLIENTS] HOST PORT [LINE...]\n");
        return 2;
    }
    host = argv[optind];
    port = atoi(argv[optind + 1]);
    lines = argv + optind + 2;
    nlines = argc - optind - 2;
    static char *from_stdin[1024];
    if (nlines == 0) {
        /* Lines from standard input instead. */
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (nlines < 1024 && (n = getline(&line, &cap, stdin)) > 0) {
            if (line[n - 1] == '\n')
                line[n - 1] = '\0';
            from_stdin[nlines++] = strdup(line);
        }
        free(line);
        lines = from_stdin;
    }
    int rc = weft_run(main_task, NULL, NULL);
    for (int i = 0; lines == from_stdin && i < nlines; i++)
        free(from_stdin[i]);
    if (rc != 0) {
        fprintf(stderr, "echo_client: %s\n", weft_errmsg());
        return 1;
    }
    return 0;
}
