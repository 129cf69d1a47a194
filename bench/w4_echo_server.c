/*
 * w4_echo_server — workload W4 of ../shared/peers/README.md with weft's streams: a TCP
 * echo server on 127.0.0.1:PORT (backlog 1024, TCP_NODELAY, as weft sets it) running
 * one task per connection that reads up to 64 KiB, writes it back and drains, as
 * asyncio's streams peer does. It ends by itself after LIFETIME seconds.
 *
 * usage: w4_echo_server PORT LIFETIME_S
 */
#include "bench_common.h"

#include <string.h>

#include <weft.h>

static int port;
static double lifetime;

static void *echo(weft_stream *s, void *arg)
{
    (void)arg;
    char buf[65536];
    for (;;) {
        ssize_t n = weft_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            return NULL;
        if (weft_stream_write(s, buf, (size_t)n) != 0 || weft_stream_drain(s) != 0)
            return NULL;
    }
}

static void *serve(void *arg)
{
    (void)arg;
    weft_server *srv = weft_start_server(echo, NULL, "127.0.0.1", port, &(weft_server_options){.backlog = 1024});
    if (!srv)
        bench_die("w4_echo_server", "cannot listen on 127.0.0.1:%d: %s", port, weft_errmsg());
    if (weft_sleep(lifetime) != 0)
        return NULL;
    (void)weft_server_close(srv);
    (void)weft_server_abort_clients(srv);
    if (weft_server_wait_closed(srv) != 0)
        return NULL;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        bench_die("w4_echo_server", "usage: w4_echo_server PORT LIFETIME_S");
    port = atoi(argv[1]);
    lifetime = atof(argv[2]);
    if (weft_run(serve, NULL, NULL) != 0)
        bench_die("w4_echo_server", "%s", weft_errmsg());
    return 0;
}
