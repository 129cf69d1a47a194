/*
 * fuzz_stream.c — a libFuzzer target for the stream's separator reads
 * (weft_stream_readuntil, weft_stream_readline, readexactly), checked against a model
 * of asyncio's StreamReader: the input chooses a separator, a limit and how the bytes
 * are cut into writes; a writer task sends them through a pipe while the reader takes
 * lines, and every result must be what asyncio would give — the same line, the limit
 * error where the separator starts past the limit (with the count to skip), the
 * incomplete-read error with the bytes left at the end — and nothing is lost or
 * duplicated across the whole input.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined by tests/fuzz/CMakeLists.txt;
 * `make test` runs it for a bounded time (ctest fuzz_stream).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft.h>

typedef struct scenario {
    const char *sep;
    size_t seplen;
    size_t limit;
    bool use_readline;
    const uint8_t *data;
    size_t len;
    const uint8_t *cuts; /* write sizes, cycled */
    size_t ncuts;
    int wfd;
} scenario;

#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_stream: %s failed at line %d (errmsg: %s)\n", #cond, __LINE__, \
                    weft_errmsg());                                                         \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static void *writer(void *arg)
{
    scenario *sc = arg;
    weft_stream *w = weft_stream_from_fd(sc->wfd, NULL);
    REQUIRE(w);
    size_t off = 0, k = 0;
    while (off < sc->len) {
        size_t piece = sc->ncuts ? (size_t)sc->cuts[k++ % sc->ncuts] % 64 + 1 : sc->len;
        if (piece > sc->len - off)
            piece = sc->len - off;
        REQUIRE(weft_stream_write(w, sc->data + off, piece) == 0);
        REQUIRE(weft_stream_drain(w) == 0);
        off += piece;
        if (k % 3 == 0)
            REQUIRE(weft_yield() == 0); /* let the reader see partial data */
    }
    REQUIRE(weft_stream_close(w) == 0);
    return NULL;
}

/* How far a search of n bytes for a separator of seplen looked (asyncio's offset). */
static size_t searched(size_t n, size_t seplen)
{
    return n + 1 > seplen ? n + 1 - seplen : 0;
}

/* The first occurrence of sep in [p, p + n), or -1. */
static long find(const uint8_t *p, size_t n, const char *sep, size_t seplen)
{
    const void *at = seplen <= n ? memmem(p, n, sep, seplen) : NULL;
    return at ? (long)((const uint8_t *)at - p) : -1;
}

static void *reader_main(void *arg)
{
    scenario *sc = arg;
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    sc->wfd = fds[1];
    weft_stream *r = weft_stream_from_fd(fds[0], &(weft_stream_options){.limit = sc->limit});
    REQUIRE(r);
    weft_task *w = weft_spawn(writer, sc);
    REQUIRE(w);
    size_t pos = 0; /* how much of the input the model has consumed */
    for (;;) {
        const char *p = NULL;
        ssize_t n = sc->use_readline ? weft_stream_readline(r, &p) : weft_stream_readuntil(r, sc->sep, sc->seplen, &p);
        const uint8_t *rest = sc->data + pos;
        size_t left = sc->len - pos;
        long i = find(rest, left, sc->sep, sc->seplen);
        if (n > 0) {
            /* A line: the model's, separator included, or readline's last bytes. */
            if (i >= 0) {
                REQUIRE((size_t)i <= sc->limit);
                REQUIRE((size_t)n == (size_t)i + sc->seplen);
            } else {
                REQUIRE(sc->use_readline && (size_t)n == left && searched(left, sc->seplen) <= sc->limit);
            }
            REQUIRE(memcmp(p, rest, (size_t)n) == 0);
            pos += (size_t)n;
        } else if (n == WEFT_ELIMIT) {
            size_t skip = weft_stream_partial(r);
            /* asyncio's consumed: where the separator starts past the limit, or how far
             * the search went when it was not in the buffer yet (never past it). */
            REQUIRE(skip > sc->limit);
            if (i >= 0)
                REQUIRE((size_t)i > sc->limit && skip <= (size_t)i);
            else
                REQUIRE(skip <= searched(left, sc->seplen));
            static uint8_t sink[1 << 16];
            REQUIRE(skip <= sizeof sink);
            REQUIRE(weft_stream_readexactly(r, sink, skip) == (ssize_t)skip);
            REQUIRE(memcmp(sink, rest, skip) == 0);
            pos += skip;
        } else if (n == WEFT_EINCOMPLETE) {
            /* readuntil at end of file: what is left, without the separator. */
            REQUIRE(!sc->use_readline && i < 0);
            REQUIRE(weft_stream_partial(r) == left && searched(left, sc->seplen) <= sc->limit);
            REQUIRE(memcmp(p, rest, left) == 0);
            pos += left;
            break;
        } else {
            REQUIRE(n == 0 && sc->use_readline && left == 0);
            break;
        }
    }
    REQUIRE(pos == sc->len);
    REQUIRE(weft_stream_at_eof(r));
    REQUIRE(weft_await(w, NULL) == 0);
    REQUIRE(weft_stream_close(r) == 0);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 4)
        return 0;
    static char sep[4];
    scenario sc = {0};
    sc.use_readline = in[0] & 1;
    sc.seplen = sc.use_readline ? 1 : (size_t)(in[0] >> 1) % 4 + 1;
    if (sc.use_readline) {
        sep[0] = '\n';
    } else {
        /* Separators from a small alphabet, so that they occur. */
        for (size_t k = 0; k < sc.seplen; k++)
            sep[k] = "ab\r\n"[(in[1] >> (2 * k)) & 3];
    }
    sc.sep = sep;
    sc.limit = (size_t)in[2] % 48 + 1;
    size_t ncuts = (size_t)in[3] % 8;
    in += 4;
    size -= 4;
    if (ncuts > size)
        ncuts = size;
    sc.cuts = in;
    sc.ncuts = ncuts;
    /* The data: mapped onto the same small alphabet plus a few others. */
    static uint8_t data[4096];
    sc.len = size - ncuts < sizeof data ? size - ncuts : sizeof data;
    for (size_t k = 0; k < sc.len; k++)
        data[k] = (uint8_t)"ab\r\nxyz."[in[ncuts + k] & 7];
    sc.data = data;
    if (weft_run(reader_main, &sc, NULL) != 0) {
        fprintf(stderr, "fuzz_stream: weft_run: %s\n", weft_errmsg());
        abort();
    }
    return 0;
}
