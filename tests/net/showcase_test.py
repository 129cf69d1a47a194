#!/usr/bin/env python3
"""showcase_test.py — the network showcases of examples/net/ against real peers on
loopback (ctest net_showcases):

    showcase_test.py HTTP_SERVER ECHO_SERVER ECHO_CLIENT

* http_server with curl (a page, a 1 MB body, keep-alive: curl fetches several URLs over
  one connection, a 404), with raw pipelined requests answered in order, with a request
  the parser rejects (400), and with wrk for two seconds (no socket error, no non-2xx);
* echo_server with nc, with Python asyncio's streams (open_connection) and with
  echo_client; echo_client against Python asyncio's start_server, and against a port
  nobody listens on (a clear error, exit status 1).

Every server listens on 127.0.0.1 with an ephemeral port and stops by itself (-t / a
lifetime); every peer runs under a timeout.
"""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time

HTTP_SERVER, ECHO_SERVER, ECHO_CLIENT = sys.argv[1:4]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def start(cmd):
    """Starts a server that prints 'listening on 127.0.0.1:PORT' first; returns (proc, port)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on 127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not start: {line!r} {proc.stderr.read()}")
    return proc, int(line.rsplit(":", 1)[1])


def run(cmd, timeout=30, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def need(tool):
    path = shutil.which(tool)
    if not path:
        raise SystemExit(f"{tool} is not installed (make test installs it: scripts/deps.sh test)")
    return path


# ---- the HTTP server ------------------------------------------------------------------

http, port = start([HTTP_SERVER, "-p", "0", "-t", "60", "-q"])
base = f"http://127.0.0.1:{port}"
curl = need("curl")

r = run([curl, "-s", "-i", base + "/"])
check(r.returncode == 0 and "HTTP/1.1 200 OK" in r.stdout and r.stdout.endswith("Hello, World!"),
      "curl GET / gives 200 and the page")

r = run([curl, "-s", base + "/bytes/1000000"])
check(r.returncode == 0 and len(r.stdout) == 1000000 and r.stdout[:26] == "abcdefghijklmnopqrstuvwxyz",
      "curl GET /bytes/1000000 gives a megabyte")

r = run([curl, "-s", "-v", base + "/", base + "/delay/10", base + "/bytes/5"])
check(r.returncode == 0 and r.stderr.count("Re-using existing connection") + r.stderr.count("Reusing existing") == 2,
      "curl fetches three URLs over one keep-alive connection")

r = run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", base + "/nowhere"])
check(r.stdout == "404", "an unknown path gives 404")

with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /delay/5 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    deadline = time.time() + 10
    while got.count(b"HTTP/1.1 200") < 3 or not got.endswith(b"waited 5 ms\n"):
        chunk = s.recv(65536)
        if not chunk or time.time() > deadline:
            break
        got += chunk
    bodies = [part.split(b"\r\n\r\n", 1)[1][:20] for part in got.split(b"HTTP/1.1 200 OK")[1:]]
    check(bodies == [b"abc", b"Hello, World!", b"waited 5 ms\n"],
          f"three pipelined requests answered in order ({bodies})")

with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
    got = s.recv(4096)
    check(got.startswith(b"HTTP/1.1 400 Bad Request"), f"a malformed request gives 400 ({got[:40]!r})")

wrk = need("wrk")
r = run([wrk, "-t1", "-c50", "-d2s", base + "/"], timeout=30)
rps = [l for l in r.stdout.splitlines() if l.startswith("Requests/sec")]
check(r.returncode == 0 and rps and "Socket errors" not in r.stdout and "Non-2xx" not in r.stdout,
      f"wrk -c50 for 2 s: no errors ({rps[0] if rps else r.stdout + r.stderr})")

def stopped_cleanly(proc, name):
    """Stops a server and checks it printed no sanitizer report (ASan, UBSan, TSan builds)."""
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    check("Sanitizer" not in err and "runtime error" not in err, f"{name} ran without a sanitizer report ({err[-400:]!r})")


stopped_cleanly(http, "http_server")

# ---- the echo server and client ---------------------------------------------------------

echo, port = start([ECHO_SERVER, "0", "60"])
nc = need("nc")
r = run([nc, "-N", "127.0.0.1", str(port)], input="one\ntwo\nthree\n", timeout=10)
check(r.stdout == "one\ntwo\nthree\n", f"nc's lines come back ({r.stdout!r})")


async def asyncio_client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"line {i} {'y' * (i * 37 % 500)}\n".encode() for i in range(200)]
    for line in lines:
        writer.write(line)
    await writer.drain()
    back = [await reader.readline() for _ in lines]
    writer.close()
    await writer.wait_closed()
    return back == lines


check(asyncio.run(asyncio.wait_for(asyncio_client(port), 20)), "an asyncio client's 200 lines come back")

r = run([ECHO_CLIENT, "127.0.0.1", str(port), "hello", "weft"])
check(r.returncode == 0 and r.stdout == "hello\nweft\n", f"echo_client against echo_server ({r.stdout!r} {r.stderr!r})")

# A name, not a number: resolved on the thread pool (the TSan build watches that).
r = run([ECHO_CLIENT, "-c", "20", "localhost", str(port), "by", "name"])
check(r.returncode == 0 and "20 clients echoed 2 lines each" in r.stdout, f"echo_client by name, localhost ({r.stdout.strip()} {r.stderr.strip()})")

r = run([ECHO_CLIENT, "-c", "200", "127.0.0.1", str(port), "a", "b", "c"])
check(r.returncode == 0 and "200 clients echoed 3 lines each" in r.stdout, f"200 concurrent echo_clients ({r.stdout.strip()} {r.stderr.strip()})")
stopped_cleanly(echo, "echo_server")


async def asyncio_server_and_weft_client():
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(ECHO_CLIENT, "-c", "20", "127.0.0.1", str(port), "x", "y",
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    server.close()
    await server.wait_closed()
    return proc.returncode, out.decode(), err.decode()


code, out, err = asyncio.run(asyncio_server_and_weft_client())
check(code == 0 and "20 clients echoed 2 lines each" in out, f"weft's echo_client against asyncio's start_server ({out.strip()} {err.strip()})")

# A port nobody listens on: a clear error.
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
r = run([ECHO_CLIENT, "127.0.0.1", str(free_port), "x"])
check(r.returncode == 1 and "refused" in r.stderr.lower(), f"a refused connection is said ({r.stderr.strip()})")

print(f"showcase_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
