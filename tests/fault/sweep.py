#!/usr/bin/env python3
"""sweep.py — the fault sweep: runs the fault scenario once to count its injection
points (every allocation and failing system call libweft makes on the way), then
once per point with that one failing (WEFT_FAULT_AT=k, see wrap.c). Each run must
exit 0 within its time limit and without a sanitizer report: an error from weft is
fine, a crash, hang or leak is not; nor is a line of stderr that --forbid matches
(weft's own report of a misuse the scenario must not make, say a handle it lost).
Prints one line per failing point and a summary.

    sweep.py SCENARIO [--jobs N] [--forbid REGEX]
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys

TIME_LIMIT = 20  # seconds per run; a hang is a failure


def run(scenario, k, extra_env, forbid=None):
    env = dict(os.environ, **extra_env)
    if k is not None:
        env["WEFT_FAULT_AT"] = str(k)
    try:
        p = subprocess.run([scenario], env=env, capture_output=True, text=True, timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        return k, "hang", ""
    bad = p.returncode != 0 or re.search(r"(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                                          r"ThreadSanitizer|runtime error)", p.stderr)
    if bad:
        return k, "status %d" % p.returncode, p.stderr
    if forbid and re.search(forbid, p.stderr):
        return k, "a report --forbid matches", p.stderr
    return k, None, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--forbid", help="a regular expression no line of stderr may match")
    args = ap.parse_args()
    k, problem, err = run(args.scenario, None, {"WEFT_FAULT_REPORT": "1"}, args.forbid)
    m = re.search(r"fault points: (\d+)", err)
    if problem or not m:
        print("fault sweep: the scenario fails without any fault injected:\n" + err)
        return 1
    points = int(m.group(1))
    print(err.strip().splitlines()[-1])
    failures = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for k, problem, err in pool.map(lambda k: run(args.scenario, k, {}, args.forbid),
                                        range(1, points + 1)):
            if problem:
                failures.append(k)
                tail = "\n".join(err.strip().splitlines()[-12:])
                print("fault point %d: %s\n%s\n" % (k, problem, tail))
    print("fault sweep: %d injection points (allocations and system calls), %d clean, %d failed"
          % (points, points - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
