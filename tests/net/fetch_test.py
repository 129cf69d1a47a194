#!/usr/bin/env python3
"""fetch_test.py — runs examples/net/fetch against a local HTTP server and checks what a
user of it sees: every status and byte count, concurrent time well under sequential time
with the limit honoured, a per-request timeout that cuts a slow response short, a refused
port reported as such, an HTTP error and bad usage giving a non-zero exit, and https:// from the same server
over TLS, checked against a test CA made at test time.

    fetch_test.py PATH/TO/fetch PATH/TO/http_server [PATH/TO/curl_cancel]

With curl_cancel (tests/net/curl_cancel.c), also checks weft_curl_get cancelled from
outside: by weft_cancel and by a timeout scope around the call.
The server is weft's own HTTP showcase (examples/net/http_server), on 127.0.0.1 with an
ephemeral port: weft fetching from weft, curl's sockets on one loop, the server's
connection tasks on another process's. Bounded: each run of fetch is killed after
RUN_TIMEOUT seconds, and the server is stopped when this script ends, or stops by
itself after SERVER_LIFETIME seconds. A sanitizer report from
fetch (leaks included: LeakSanitizer exits non-zero) fails the test.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

RUN_TIMEOUT = 30
SERVER_LIFETIME = 120
DELAY_MS = 200  # each ordinary response's delay: visible against the loop's overhead

failures = []


def check(condition, what, output=""):
    if condition:
        print(f"ok: {what}")
    else:
        print(f"FAIL: {what}")
        if output:
            print("---- fetch printed:\n" + output + "---- end")
        failures.append(what)
    return condition


def start_server(http_server, tls_args=()):
    """Starts the HTTP server the tests fetch from; returns (process, base URL)."""
    server = subprocess.Popen([http_server, "-q", "-p", "0", "-t", str(SERVER_LIFETIME), *tls_args],
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    m = re.match(r"^listening on 127\.0\.0\.1:(\d+)$", line.strip())
    if not m:
        server.kill()
        sys.exit(f"FAIL: the HTTP server did not say its port (printed {line!r})")
    return server, f"http://127.0.0.1:{m.group(1)}"


def stop_server(server):
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def closed_port():
    """A loopback port nothing listens on: bound for a moment, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_fetch(fetch, args):
    """Runs fetch; returns (exit status, stdout, stderr, seconds it took)."""
    start = time.monotonic()
    try:
        done = subprocess.run([fetch] + args, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        check(False, f"fetch {' '.join(args)} finished within {RUN_TIMEOUT} s", out)
        return None, out, "", RUN_TIMEOUT
    took = time.monotonic() - start
    # A sanitizer's report is a failure whatever else happened.
    check(not re.search(r"(Address|Leak|UndefinedBehavior)Sanitizer|runtime error:", done.stderr),
          f"fetch {' '.join(args[:3])}... ran without a sanitizer report", done.stderr)
    return done.returncode, done.stdout, done.stderr, took


def phases(output):
    """Splits fetch's output into its sequential and concurrent parts."""
    parts = re.split(r"^Fetching \d+ URLs? concurrently.*$", output, flags=re.M)
    return (parts[0], parts[1]) if len(parts) == 2 else (output, "")


def completed(part):
    """{fetch number: (status, bytes)} of the fetches a part reports as completed."""
    return {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^Fetch (\d+) completed at \d\d:\d\d:\d\d, in \d+\.\d\d seconds: "
                                 r"(\d+), (\d+) bytes\.$", part, flags=re.M)}


def failed(part):
    """{fetch number: (seconds, message)} of the fetches a part reports as failed."""
    return {int(m.group(1)): (float(m.group(2)), m.group(3))
            for m in re.finditer(r"^Fetch (\d+) failed at \d\d:\d\d:\d\d, in (\d+\.\d\d) seconds: (.*)$",
                                 part, flags=re.M)}


def process_took(part):
    m = re.search(r"^Process took: +(\d+\.\d\d) seconds\.", part, flags=re.M)
    return float(m.group(1)) if m else None


def starts_before_first_completion(part):
    """How many fetches started before the first one finished."""
    count = 0
    for line in part.splitlines():
        if line.startswith("Starting fetch "):
            count += 1
        elif line.startswith("Fetch "):
            break
    return count


def test_concurrency(fetch, base):
    """8 responses of 0.2 s each, 4 at a time: all succeed with their sizes; the
    sequential run takes the sum, the concurrent one two waves."""
    sizes = [1000, 1111, 0, 4096, 65536, 1, 300000, 777]
    urls = [f"{base}/delay/{DELAY_MS}/bytes/{n}" for n in sizes]
    rc, out, _, _ = run_fetch(fetch, ["-c", "4", "-t", "5"] + urls)
    check(rc == 0, "8 fetches, limit 4: exit status 0", out)
    seq, conc = phases(out)
    expected = {i + 1: (200, n) for i, n in enumerate(sizes)}
    check(completed(seq) == expected, "sequential run: every fetch 200 with its byte count", out)
    check(completed(conc) == expected, "concurrent run: every fetch 200 with its byte count", out)
    check(starts_before_first_completion(seq) == 1, "sequential run: one fetch at a time", out)
    check(starts_before_first_completion(conc) == 4, "concurrent run: exactly 4 in flight before any ends", out)
    t_seq, t_conc = process_took(seq), process_took(conc)
    if not check(t_seq is not None and t_conc is not None, "both runs print 'Process took'", out):
        return
    print(f"   sequential {t_seq:.2f} s, concurrent {t_conc:.2f} s")
    check(t_seq >= 8 * DELAY_MS / 1000 - 0.01, "sequential time is at least the sum of the delays", out)
    check(t_conc >= 2 * DELAY_MS / 1000 - 0.01, "concurrent time is at least two waves: the limit held", out)
    check(t_conc * 2.5 < t_seq, "concurrent time is well under the sequential time (2.5 times at least)", out)
    check(re.search(r"^Sequential: \d+\.\d\d seconds; concurrent, at most 4 at a time: \d+\.\d\d seconds "
                    r"\(\d+\.\d times as fast\)\.$", out, flags=re.M) is not None,
          "the summary compares the two times", out)
    check("All 16 fetches succeeded." in out, "the summary says every fetch succeeded", out)


def test_count_cycles(fetch, base):
    """-n 6 over 3 URLs fetches each twice, in turn; with no tighter limit all 6 start
    at once."""
    sizes = [10, 20, 30]
    urls = [f"{base}/delay/{DELAY_MS}/bytes/{n}" for n in sizes]
    rc, out, _, _ = run_fetch(fetch, ["-n", "6"] + urls)
    check(rc == 0, "-n 6 over 3 URLs: exit status 0", out)
    seq, conc = phases(out)
    expected = {i + 1: (200, sizes[i % 3]) for i in range(6)}
    check(completed(seq) == expected and completed(conc) == expected,
          "-n 6: six fetches cycling through the URLs, in both runs", out)
    check(starts_before_first_completion(conc) == 6, "-n 6, default limit: all six in flight at once", out)


def test_timeout(fetch, base):
    """A response slower than -t is cut off at the limit and reported as a timeout; the
    other request is unaffected; the run does not wait for the slow response."""
    slow = f"{base}/delay/4000/bytes/10"
    fast = f"{base}/delay/100/bytes/50"
    rc, out, _, took = run_fetch(fetch, ["-t", "0.5", slow, fast])
    check(rc == 1, "a timed-out fetch: exit status 1", out)
    for name, part in zip(("sequential", "concurrent"), phases(out)):
        f = failed(part)
        ok = 1 in f and 0.45 <= f[1][0] < 1.5 and f[1][1] == f"GET {slow}: timed out after 0.5 s"
        check(ok, f"{name} run: the slow fetch fails after 0.5 s, saying it timed out", out)
        check(completed(part).get(2) == (200, 50), f"{name} run: the fast fetch still succeeds", out)
    # Two cut-off requests and the fast ones: well under the 4 s the slow one would take.
    check(took < 3.5, f"the whole run took {took:.2f} s, not the slow response's 4 s", out)
    check("2 of 4 fetches failed." in out, "the summary counts the two timeouts", out)


def test_refused(fetch):
    """A port nothing listens on: a clear 'Connection refused' and exit status 1."""
    url = f"http://127.0.0.1:{closed_port()}/"
    rc, out, _, _ = run_fetch(fetch, [url])
    check(rc == 1, "a refused connection: exit status 1", out)
    f = failed(out)
    check(1 in f and f[1][1].startswith(f"GET {url}: Connection refused"),
          "a refused connection is reported as 'Connection refused', naming the URL", out)


def test_http_error(fetch, base):
    """A 404 is a response, but the fetch failed: exit status 1, the status printed."""
    url = f"{base}/no/such/page"
    rc, out, _, _ = run_fetch(fetch, [url])
    check(rc == 1, "an HTTP 404: exit status 1", out)
    f = failed(out)
    check(1 in f and re.match(rf"GET {re.escape(url)}: HTTP status 404, \d+ bytes\.$", f[1][1]) is not None,
          "an HTTP 404 is reported with its status", out)


def test_usage(fetch):
    """Bad usage: exit status 2 and a message on stderr, nothing fetched."""
    for args, what in (([], "no URL"), (["-c", "0", "http://127.0.0.1:1/"], "a limit of 0"),
                       (["-t", "soon", "http://127.0.0.1:1/"], "a timeout that is not a number")):
        rc, out, err, _ = run_fetch(fetch, args)
        check(rc == 2 and err.strip() != "" and out == "", f"usage: {what} gives exit status 2 and says why",
              out + err)


def test_https(fetch, http_server):
    """The HTTP showcase served over TLS (weft_server_options.tls) with a test CA made
    now by tests/tls/make_certs.sh: fetch checks the server against that CA (-k) and
    gets every response; without it (the system's CAs) each fetch is refused."""
    with tempfile.TemporaryDirectory(prefix="weft-https-") as certs:
        subprocess.run(["bash", os.path.join(HERE, "..", "tls", "make_certs.sh"), certs], check=True)
        server, base = start_server(http_server, ["-C", os.path.join(certs, "server.pem"),
                                                  "-K", os.path.join(certs, "server.key")])
        try:
            port = base.rsplit(":", 1)[1]
            urls = [f"https://localhost:{port}/bytes/{n}" for n in (10, 1000, 100000)]
            rc, out, _, _ = run_fetch(fetch, ["-k", os.path.join(certs, "ca.pem")] + urls)
            seq, conc = phases(out)
            want = {1: (200, 10), 2: (200, 1000), 3: (200, 100000)}
            check(rc == 0 and completed(seq) == want and completed(conc) == want,
                  "https:// from the TLS showcase server, verified against the test CA", out)
            rc, out, _, _ = run_fetch(fetch, [urls[0]])
            f = failed(phases(out)[0])
            check(rc == 1 and 1 in f and "certificate" in f[1][1].lower(),
                  "https:// with the system's CAs: the test CA's certificate is refused", out)
        finally:
            stop_server(server)


def test_cancel_from_outside(curl_cancel, base):
    """curl_cancel cancels weft_curl_get with weft_cancel and with a timeout scope around
    the call: each ends at once, the handle still works, weft_curl_free finds nothing left."""
    slow = f"{base}/delay/4000/bytes/10"
    fast = f"{base}/delay/10/bytes/10"
    rc, out, _, took = run_fetch(curl_cancel, [slow, fast])
    expected = [r"ok: cancelled by weft_cancel: ECANCELED after 0\.[23] s",
                r"ok: cut by a timeout scope around the call: ETIMEDOUT after 0\.[34] s",
                r"ok: the next request on the same handle: 200 after 0\.\d s",
                r"ok: weft_curl_free: no transfer left: 0 after 0\.0 s"]
    lines = out.splitlines()
    check(rc == 0 and len(lines) == len(expected) and
          all(re.fullmatch(e, line) for e, line in zip(expected, lines)),
          "weft_curl_get cancelled from outside ends at once and leaves nothing behind", out)
    check(took < 3.5, f"curl_cancel took {took:.2f} s, not the slow response's 4 s", out)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: fetch_test.py PATH/TO/fetch PATH/TO/http_server [PATH/TO/curl_cancel]")
    fetch = sys.argv[1]
    server, base = start_server(sys.argv[2])
    try:
        test_concurrency(fetch, base)
        test_count_cycles(fetch, base)
        test_timeout(fetch, base)
        test_refused(fetch)
        test_http_error(fetch, base)
        test_usage(fetch)
        test_https(fetch, sys.argv[2])
        if len(sys.argv) == 4:
            test_cancel_from_outside(sys.argv[3], base)
    finally:
        stop_server(server)
    if failures:
        print(f"fetch_test: {len(failures)} check(s) failed")
        return 1
    print("fetch_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
