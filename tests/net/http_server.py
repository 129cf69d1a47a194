#!/usr/bin/env python3
"""http_server.py — the HTTP server the net tests fetch from, until weft's own HTTP
showcase takes its place: it answers on 127.0.0.1 only, on an ephemeral port, and delays
each response so that concurrent requests are visibly faster than sequential ones.

    http_server.py [--lifetime SECONDS]

Prints "PORT <n>" on its first line once it listens. Paths:

    /delay/<ms>/bytes/<n>   200 with <n> bytes of body, sent after <ms> milliseconds
    anything else           404

It stops by itself: when its standard input reaches end of file (the test that started
it ended, however it ended) or after --lifetime seconds (default 120), whichever is first.
"""

import argparse
import http.server
import re
import sys
import threading
import time

PATH_RE = re.compile(r"^/delay/(\d+)/bytes/(\d+)$")


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1, so that a client keeps its connections between requests as curl does.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle holds the body back
    # until the client's delayed ACK (40 ms), which would blur the timings.
    disable_nagle_algorithm = True

    def do_GET(self):
        m = PATH_RE.match(self.path)
        if not m:
            self.send_error(404, "no such path; try /delay/<ms>/bytes/<n>")
            return
        delay_ms, size = int(m.group(1)), int(m.group(2))
        time.sleep(delay_ms / 1000.0)
        body = bytes(ord("a") + i % 26 for i in range(size))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test): nothing to answer

    def log_message(self, format, *args):
        pass  # the test reads the client's output, not ours


class Server(http.server.ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections beyond it, and a dropped SYN
    # is retried only after a second: many fetches at once must all get in at once.
    request_queue_size = 128
    daemon_threads = True  # a sleeping handler does not keep the process alive


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)

    # Bounded: end of stdin, or the lifetime, whichever comes first.
    stdin_closed = threading.Event()

    def watch_stdin():
        sys.stdin.buffer.read()
        stdin_closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stdin_closed.wait(args.lifetime)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
