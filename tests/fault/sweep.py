#!/usr/bin/env python3
"""sweep.py — the fault sweep: runs the fault scenario to count its injection
points (every allocation and failing system call libweft makes on the way), then
once per point with that one failing (WEFT_FAULT_AT=k, see wrap.c). Each run must
exit 0 within its time limit and without a sanitizer report: an error from weft is
fine, a crash, hang or leak is not; nor is a line of stderr that --forbid matches
(weft's own report of a misuse the scenario must not make, say a handle it lost).
With --deterministic the count is taken twice, and the two runs must have made the
same calls in the same order (wrap.c's fingerprint of the sequence): otherwise the
k-th point would be a different call from run to run, and the sweep would prove
less than it says. (scenario.c's threads and processes make its count vary by a
few calls; the network and TLS scenarios' must not.)

With --openssl-by-site (the TLS scenario, whose points are ~99 % OpenSSL's own
allocations, a few call sites each repeated hundreds of times) every point of
weft's own is run, and OpenSSL's allocations once per call site in each step
between two of weft's own points: a step is a piece of one OpenSSL call as weft
drives it (a handshake's flight, a record read), and the same site failing again
later in the step fails the same call the same way as far as weft can see. Without
the option every point runs: that is the full sweep, for a run by hand.
Prints one line per failing point and a summary.

    sweep.py [--jobs N] [--forbid REGEX] [--deterministic] [--openssl-by-site] SCENARIO [ARG...]
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

TIME_LIMIT = 20  # seconds per run; a hang is a failure


def run(command, k, extra_env, forbid=None):
    env = dict(os.environ, **extra_env)
    if k is not None:
        env["WEFT_FAULT_AT"] = str(k)
    try:
        p = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        return k, "hang", ""
    bad = p.returncode != 0 or re.search(r"(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                                          r"ThreadSanitizer|runtime error)", p.stderr)
    if bad:
        return k, "status %d" % p.returncode, p.stderr
    if forbid and re.search(forbid, p.stderr):
        return k, "a report --forbid matches", p.stderr
    return k, None, p.stderr


def by_site(path, points):
    """The points --openssl-by-site runs: all of weft's own, and the first of each
    OpenSSL call site in each step (the stretch after one of weft's own points)."""
    entries = []
    with open(path) as f:
        for line in f:
            number, rest = line.split(" ", 1)
            kind, site = rest.rstrip("\n").split("\t")
            entries.append((int(number), kind, site))
    entries.sort()
    if [e[0] for e in entries] != list(range(1, points + 1)):
        print("fault sweep: the list of points (WEFT_FAULT_LIST) does not number 1..%d" % points)
        return None
    chosen, seen, step = [], set(), 0
    for number, kind, site in entries:
        if not kind.startswith("OpenSSL"):
            step += 1
            chosen.append(number)
        elif (step, site) not in seen:
            seen.add((step, site))
            chosen.append(number)
    return chosen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--forbid", help="a regular expression no line of stderr may match")
    ap.add_argument("--deterministic", action="store_true",
                    help="count twice: both runs must make the same calls in the same order")
    ap.add_argument("--openssl-by-site", action="store_true",
                    help="run OpenSSL's allocations once per call site in each step between weft's points")
    ap.add_argument("scenario")
    ap.add_argument("args", nargs="*", help="the scenario's arguments")
    args = ap.parse_args()
    command = [args.scenario] + args.args
    counts = []
    listing = tempfile.NamedTemporaryFile(prefix="weft-fault-list-")
    for _ in range(2 if args.deterministic else 1):
        extra = {"WEFT_FAULT_REPORT": "1"}
        if args.openssl_by_site:
            extra["WEFT_FAULT_LIST"] = listing.name
        k, problem, err = run(command, None, extra, args.forbid)
        m = re.search(r"^fault points: (\d+).*$", err, re.M)
        if problem or not m:
            print("fault sweep: the scenario fails without any fault injected (%s):\n%s" % (problem, err))
            return 1
        counts.append(m)
    if counts[0].group(0) != counts[-1].group(0):
        print("fault sweep: two runs without a fault made different calls; the numbering is not "
              "deterministic:\n  %s\n  %s" % (counts[0].group(0), counts[-1].group(0)))
        return 1
    points = int(counts[0].group(1))
    print(counts[0].group(0))
    chosen = range(1, points + 1)
    if args.openssl_by_site:
        chosen = by_site(listing.name, points)
        if chosen is None:
            return 1
    failures = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for k, problem, err in pool.map(lambda k: run(command, k, {}, args.forbid), chosen):
            if problem:
                failures.append(k)
                tail = "\n".join(err.strip().splitlines()[-12:])
                print("fault point %d: %s\n%s\n" % (k, problem, tail))
    if len(chosen) == points:
        print("fault sweep: %d injection points (allocations and system calls), %d clean, %d failed"
              % (points, points - len(failures), len(failures)))
    else:
        print("fault sweep: %d injection points (allocations and system calls), %d run (OpenSSL's allocations "
              "once per call site and step), %d clean, %d failed"
              % (points, len(chosen), len(chosen) - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
