/*
 * echo_server — the smallest useful weft server: every connection gets its own task,
 * which reads lines and writes each back until the client closes. Try it with
 * `nc 127.0.0.1 PORT`, or with echo_client.
 *
 * usage: echo_server [PORT] [SECONDS]
 *   PORT     on 127.0.0.1; 0 (the default) picks a free one, printed first
 *   SECONDS  stop by itself after this long (default: run until killed)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

static void *echo_lines(weft_stream *s, void *arg)
{
    (void)arg;
    for (;;) {
        const char *line;
        ssize_t n = weft_stream_readline(s, &line);
        if (n <= 0)
            return NULL; /* 0: the client closed; < 0: it reset, or the server stops */
        if (weft_stream_write(s, line, (size_t)n) != 0 || weft_stream_drain(s) != 0)
            return NULL;
    }
}

static void *serve(void *srv)
{
    int rc = weft_server_serve_forever(srv); /* until cancelled */
    return rc == -ECANCELED ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

static void *main_task(void *arg)
{
    char **argv = arg;
    int port = argv[1] ? atoi(argv[1]) : 0;
    double seconds = argv[1] && argv[2] ? atof(argv[2]) : -1;
    weft_server *srv = weft_start_server(echo_lines, NULL, "127.0.0.1", port, NULL);
    if (!srv)
        return weft_fail(weft_errcode(), "echo_server: %s", weft_errmsg());
    printf("listening on 127.0.0.1:%d\n", weft_server_port(srv));
    fflush(stdout);
    weft_task *server = weft_spawn(serve, srv);
    if (!server)
        return weft_fail(weft_errcode(), "echo_server: %s", weft_errmsg());
    if (seconds >= 0) {
        if (weft_sleep(seconds) != 0)
            return NULL;
        (void)weft_cancel(server, "time is up");
    }
    int rc = weft_await(server, NULL);
    return rc == 0 || rc == -ECANCELED ? NULL : weft_fail(rc, "%s", weft_errmsg());
}

int main(int argc, char **argv)
{
    (void)argc;
    if (weft_run(main_task, argv, NULL) != 0) {
        fprintf(stderr, "%s\n", weft_errmsg());
        return 1;
    }
    return 0;
}
