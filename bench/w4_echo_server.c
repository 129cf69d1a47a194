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

#include "bench_server.h"

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

int main(int argc, char **argv)
{
    return bench_serve(argc, argv, "w4_echo_server", echo);
}
