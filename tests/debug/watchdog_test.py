#!/usr/bin/env python3
"""watchdog_test.py TARGET SOURCE CASE — the blocked-loop watchdog seen from outside.

Runs watchdog_target (TARGET, built from SOURCE) in the modes CASE needs, with WEFT_WATCHDOG set,
reading its stdout and stderr line by line as they come, each line stamped with the
time it arrived, and checks what a user would see:
  - a task blocked in sleep(): the report names the task, sleep() and the line of the
    call (found in SOURCE by its marker comment), arrives while the loop is still
    blocked (before the program says sleep returned, and says it has been blocked for
    less than the sleep), and the sleep is not shortened by the watchdog's signal;
    one "unblocked" line follows, after the sleep;
  - the same with nanosleep(&ts, &left) and usleep(), which a handled signal would cut;
  - a loop idle in weft_sleep for longer than the threshold gets no report;
  - a callback that spins is named, with its line;
  - two blocked steps in a row get a report each;
  - debug mode adds where the task was created;
  - a SIGRTMIN+5 handler of the program's own: a one-line warning, reports without the
    stack, the program's handler untouched;
  - two loops on two threads, both blocked, are each reported with their own task;
  - a bad WEFT_WATCHDOG is refused with a message naming it;
  - a long threshold does not delay the program's exit (the watchdog's thread is
    woken, not slept on, to stop).
"""
import os
import re
import subprocess
import sys
import threading
import time

TARGET, SOURCE, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def marker_line(name):
    with open(SOURCE, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if "MARK: " + name + " " in line or line.rstrip().endswith("MARK: " + name + " */"):
                return number
    raise SystemExit("watchdog_test: no 'MARK: %s' comment in %s" % (name, SOURCE))


class Run:
    """One run of the target: its lines as (arrival time, stream, text)."""

    def __init__(self, mode, env, timeout=30):
        full_env = dict(os.environ)
        for key in ("WEFT_DEBUG", "WEFT_WATCHDOG", "WEFT_TRACE", "WEFT_SLOW_STEP"):
            full_env.pop(key, None)
        full_env.update(env)
        self.mode = mode
        self.lines = []
        lock = threading.Lock()
        start = time.monotonic()
        proc = subprocess.Popen([TARGET, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)

        def pump(stream, name):
            for raw in iter(stream.readline, b""):
                with lock:
                    self.lines.append((time.monotonic(), name, raw.decode("utf-8", "replace").rstrip("\n")))

        readers = [threading.Thread(target=pump, args=(proc.stdout, "out")),
                   threading.Thread(target=pump, args=(proc.stderr, "err"))]
        for r in readers:
            r.start()
        try:
            self.rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.rc = proc.wait()
            failures.append("%s: did not end within %d s" % (mode, timeout))
        for r in readers:
            r.join()
        self.elapsed = time.monotonic() - start
        self.lines.sort(key=lambda item: item[0])

    def text(self, stream):
        return "\n".join(line for _, name, line in self.lines if name == stream)

    def first(self, stream, pattern):
        """(time, match) of the first line of stream matching pattern, or (None, None)."""
        for when, name, line in self.lines:
            if name == stream:
                m = re.search(pattern, line)
                if m:
                    return when, m
        return None, None

    def dump(self):
        return "\n".join("  [%s] %s" % (name, line) for _, name, line in self.lines)


def check(run, condition, what):
    if not condition:
        failures.append("%s: %s; its output:\n%s" % (run.mode, what, run.dump()))
    return condition


def blocked_reports(run):
    return [line for _, name, line in run.lines if name == "err" and line.startswith("weft: loop blocked for")]


def check_blocked_sleep(mode, call, line, sleep_pattern, seconds):
    """A task blocked in a sleeping call: reported while blocked, the sleep kept whole."""
    run = Run(mode, {"WEFT_WATCHDOG": "0.3"})
    check(run, run.rc == 0, "exit status %d, expected 0" % run.rc)
    pattern = r"weft: loop blocked for ([0-9.]+) s in task .*: %s\(\) called from \w+ at watchdog_target\.c:%d$" % (
        call, line)
    reported_at, m = run.first("err", pattern)
    if not check(run, m is not None, "no report naming %s() at watchdog_target.c:%d" % (call, line)):
        return run
    check(run, float(m.group(1)) < seconds - 0.2,
          "the report says the loop was blocked %s s: not while the %s s sleep still held it" % (m.group(1), seconds))
    returned_at, s = run.first("out", sleep_pattern)
    if check(run, s is not None, "the program did not say its sleep returned"):
        check(run, reported_at < returned_at, "the report came after the sleep had returned")
        check(run, float(s.group(1)) >= seconds - 0.05,
              "the sleep lasted %s s of %s s: the watchdog's signal shortened it" % (s.group(1), seconds))
    check(run, len(blocked_reports(run)) == 1, "%d reports for one blocked step" % len(blocked_reports(run)))
    unblocked_at, u = run.first("err", r"weft: loop unblocked after ([0-9.]+) s \(")
    if check(run, u is not None, "no 'loop unblocked' line"):
        check(run, float(u.group(1)) >= seconds - 0.05, "unblocked after %s s, the sleep was %s s" % (
            u.group(1), seconds))
        check(run, unblocked_at > reported_at, "'unblocked' came before the report")
    check(run, "the loop's thread is stuck here" in run.text("err"), "the report has no stack")
    check(run, re.search(r"#\d+\s+\w+ at watchdog_target\.c:%d" % line, run.text("err")) is not None,
          "the stack does not show watchdog_target.c:%d" % line)
    return run


def case_sleep():
    # The case: a task named "blocker" calls sleep(2).
    run = check_blocked_sleep("sleep", "sleep", marker_line("sleep"), r"sleep returned after ([0-9.]+) s, 0 s left", 2.0)
    check(run, re.search(r"in task blocker \(Task-\d+\): sleep\(\)", run.text("err")) is not None,
          "the report does not name the task blocker")
    check(run, "weft: loop unblocked after" in run.text("err") and "(blocker)" in run.text("err"),
          "the unblocked line does not name blocker")


def case_sleeps():
    # Sleeps a handled signal would cut short: a separate remaining-time argument, none.
    check_blocked_sleep("nanosleep", "nanosleep", marker_line("nanosleep"),
                        r"nanosleep returned 0 \(ok\) after ([0-9.]+) s", 1.5)
    check_blocked_sleep("usleep", "usleep", marker_line("usleep"), r"usleep returned 0 after ([0-9.]+) s", 1.5)


def case_idle():
    # An idle loop (a task waiting in weft_sleep, the loop in its poller) is not blocked.
    run = Run("idle", {"WEFT_WATCHDOG": "0.2"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    check(run, "idle wait ended: 0" in run.text("out"), "the idle wait did not end normally")
    check(run, run.text("err") == "", "stderr is not empty for an idle loop")


def case_callback():
    # A callback that spins.
    run = Run("callback", {"WEFT_WATCHDOG": "0.3"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    reported_at, m = run.first("err", r"weft: loop blocked for [0-9.]+ s in the callback on_tick: .*watchdog_target\.c:%d"
                               % marker_line("spin"))
    if check(run, m is not None, "no report naming the callback on_tick at its spinning line"):
        returned_at, _ = run.first("out", r"callback returned")
        check(run, returned_at is not None and reported_at < returned_at, "the report came after the callback returned")
    check(run, re.search(r"weft: loop unblocked after [0-9.]+ s \(the callback on_tick\)", run.text("err")) is not None,
          "no unblocked line for the callback")


def case_twice():
    # Two blocked steps, one after the other: one report and one unblocked line each.
    run = Run("twice", {"WEFT_WATCHDOG": "0.3"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    reports = blocked_reports(run)
    check(run, len(reports) == 2 and "task first" in reports[0] and "task second" in reports[1],
          "expected a report for first then one for second")
    check(run, len(re.findall(r"weft: loop unblocked after", run.text("err"))) == 2, "expected two unblocked lines")


def case_debug():
    # Debug mode: where the blocked task was created.
    run = Run("sleep", {"WEFT_WATCHDOG": "0.3", "WEFT_DEBUG": "1"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    check(run, "blocker was created at main_task at watchdog_target.c:%d" % marker_line("spawn") in run.text("err"),
          "debug mode's report does not say where blocker was created")


def case_foreign():
    # The program's own SIGRTMIN+5 handler: refused loudly, reports go on without a stack.
    run = Run("foreign", {"WEFT_WATCHDOG": "0.3"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    err = run.text("err")
    check(run, len(re.findall(r"SIGRTMIN\+5.*has a handler that is not weft's", err)) == 1,
          "no one warning about SIGRTMIN+5's handler")
    check(run, re.search(r"weft: loop blocked for at least [0-9.]+ s in task", err) is not None,
          "no report without the stack")
    check(run, "sleep returned after 2.0" in run.text("out") or "sleep returned after 1.9" in run.text("out"),
          "the sleep was disturbed")


def case_settings():
    # A bad value in the environment is said and ignored: the program runs, unwatched.
    run = Run("idle", {"WEFT_WATCHDOG": "soon"})
    check(run, run.rc == 0, "exit status %d for WEFT_WATCHDOG=soon, expected 0" % run.rc)
    check(run, "weft: WEFT_WATCHDOG=soon ignored: it is not a number of seconds" in run.text("err"),
          "no message naming WEFT_WATCHDOG")
    run = Run("idle", {"WEFT_WATCHDOG": "-1"})
    check(run, run.rc == 0 and "WEFT_WATCHDOG=-1 ignored: it is negative" in run.text("err"),
          "WEFT_WATCHDOG=-1 was not said and ignored")


def case_exit():
    # A threshold far longer than the program: it still ends at once (idle wait 1 s).
    run = Run("idle", {"WEFT_WATCHDOG": "600"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    check(run, run.elapsed < 10, "the program took %.1f s to end with WEFT_WATCHDOG=600" % run.elapsed)



def case_threads():
    # Two loops on two threads, each blocked: each watchdog reads its own loop's thread.
    run = Run("threads", {"WEFT_WATCHDOG": "0.3"})
    check(run, run.rc == 0, "exit status %d" % run.rc)
    reports = blocked_reports(run)
    line = marker_line("threads")
    for name in ("blocker-a", "blocker-b"):
        mine = [r for r in reports if "in task %s (" % name in r]
        check(run, len(mine) == 1 and mine[0].endswith("sleep() called from named_sleeper at watchdog_target.c:%d"
                                                        % line),
              "expected one report for %s naming sleep() at watchdog_target.c:%d" % (name, line))
        # Two loops watched: each report says whose loop it is.
        check(run, len(mine) == 1 and re.search(r"in task %s \(Task-\d+\) of the loop on thread \d+:" % name, mine[0]),
              "the report for %s does not say which loop's thread it is" % name)
        check(run, "%s slept" % name in run.text("out"), "%s did not finish its sleep" % name)
    check(run, len(reports) == 2, "%d reports for two blocked loops" % len(reports))


CASES = {name[len("case_"):]: fn for name, fn in list(globals().items()) if name.startswith("case_")}
if CASE not in CASES:
    raise SystemExit("watchdog_test: no case %s (cases: %s)" % (CASE, ", ".join(sorted(CASES))))
CASES[CASE]()

if failures:
    for f in failures:
        print("FAIL " + f)
    sys.exit(1)
print("watchdog %s: all checks passed" % CASE)
