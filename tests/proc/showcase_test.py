#!/usr/bin/env python3
"""showcase_test.py — the subprocess showcases of examples/proc/ with real shells, files
and signals (ctest proc_showcases):

    showcase_test.py PARALLEL TAIL_REACT

* parallel: 20 commands at -P 4, each printing lines to stdout and stderr between short
  sleeps and one line longer than a pipe's atomic write: every line arrives whole and
  with its own command's number, in each command's order; the commands' own start and
  end times show no more than 4 ran at once (and more than one did); the summary counts
  17 successes and names the three failures (exit 3, kill -9 $$, a missing program:
  status 127), and the exit status is 1. Commands from stdin; -t ending a command with
  SIGTERM, and one that ignores SIGTERM with SIGKILL 2 s later; Ctrl-C (SIGINT): the
  running commands' processes are gone and parallel dies of SIGINT; bad usage.
* tail_react: a file the test appends to (a line written in two pieces, a truncation, a
  rotation with a last line written to the old file) and a command printing lines:
  alerts for exactly the matching lines, in order per source; then SIGINT: the command
  is terminated and waited for (its pid is gone), and tail_react dies of SIGINT. -x
  ends when the command has exited, with the lines it wrote to the file just before
  exiting; -t ends after its time, SIGKILL for a command that ignores SIGTERM; a
  missing file, a missing program and bad usage give clear errors and their statuses.

Everything runs in a temporary directory; every wait is bounded.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PARALLEL, TAIL_REACT = sys.argv[1:3]
# weft_run cancels main on SIGINT only when SIGINT is at its default: a test run from a
# background job inherits it ignored, and the children of this script inherit this.
signal.signal(signal.SIGINT, signal.SIG_DFL)
tmp = tempfile.mkdtemp(prefix="weft-proc-showcase-")
failures = []


def check(cond, what, detail=""):
    """Reports one assertion; detail (what was seen) is printed only when it failed."""
    print(("ok   " if cond else "FAIL ") + what + (f"\n     saw: {detail}" if detail and not cond else ""), flush=True)
    if not cond:
        failures.append(what)


def text(data):
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def run(cmd, timeout=60, **kw):
    """Runs cmd to its end; one still running after timeout is killed, returncode None."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        print(f"     (killed after {timeout} s: {cmd[:3]})", flush=True)
        return subprocess.CompletedProcess(cmd, None, text(e.stdout), text(e.stderr))


def clean(err):
    """No sanitizer report (ASan, UBSan, TSan builds)."""
    return "Sanitizer" not in err and "runtime error" not in err


def gone(pid):
    return not os.path.exists(f"/proc/{pid}")


def kill_leftovers(pids):
    """A program that failed to end its commands leaves them behind: end them here."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            if b"sleep" in cmdline or b"sh" in cmdline:
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


class Background:
    """A program running with its stdout and stderr in files, read while it runs."""

    def __init__(self, name, cmd):
        self.out_path = os.path.join(tmp, name + ".out")
        self.err_path = os.path.join(tmp, name + ".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def out(self):
        with open(self.out_path) as f:
            return f.read()

    def err(self):
        with open(self.err_path) as f:
            return f.read()

    def wait_for(self, what, pattern, timeout=15):
        """Waits until stdout + stderr match pattern; returns the match, or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.out() + self.err(), re.M)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        m = re.search(pattern, self.out() + self.err(), re.M)
        check(m is not None, f"{what}", f"looked for {pattern!r} in {self.out()[-300:]!r} {self.err()[-300:]!r}")
        return m

    def finish(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


# ---- parallel: 20 commands, at most 4 at a time --------------------------------------

LONG = "0" * 5000  # longer than PIPE_BUF: a pipe need not take it in one write
FAILING = {5: "exit 3", 9: "kill -9 $$", 13: "no-such-program-weft-test --flag"}
commands = []
for i in range(1, 21):
    times = os.path.join(tmp, f"t.{i}")
    commands.append(
        f'echo "start $(date +%s%N)" >> {times}; '
        f'for k in 1 2 3; do echo "job{i} out $k"; echo "job{i} err $k" >&2; sleep 0.05; done; '
        f"echo \"job{i} long $(printf '%05000d' 0)\"; "
        f'echo "end $(date +%s%N)" >> {times}; ' + FAILING.get(i, "true"))
start = time.time()
r = run([PARALLEL, "-P", "4"] + commands)
took = time.time() - start
check(r.returncode == 1, f"parallel exits 1 when a command failed (got {r.returncode})")
check(clean(r.stderr), "parallel ran without a sanitizer report", r.stderr[-400:])

out_lines = r.stdout.splitlines()
check(r.stdout.endswith("\n"), "parallel's stdout ends with a whole line")
bad = [l[:80] for l in out_lines if not re.fullmatch(r"\[(\d+)\] job\1 (out [123]|long " + LONG + ")", l)]
check(not bad and len(out_lines) == 80,
      f"every stdout line is whole and carries its own command's number ({len(out_lines)} lines; bad: {bad[:3]})")
per_job = {i: [l.split(" ", 2)[2] for l in out_lines if l.startswith(f"[{i}] ")] for i in range(1, 21)}
check(all(per_job[i] == ["out 1", "out 2", "out 3", "long " + LONG] for i in range(1, 21)),
      "each command's stdout lines come in its own order")

err_lines = r.stderr.splitlines()
cmd_err = [l for l in err_lines if l.startswith("[")]
bad = [l for l in cmd_err if not re.fullmatch(r"\[(\d+)\] job\1 err [123]", l) and not l.startswith("[13] ")]
check(not bad and len([l for l in cmd_err if " err " in l]) == 60,
      f"every stderr line is whole and carries its own command's number (bad: {bad[:3]})")
check(any(re.fullmatch(r"\[13\] .*no-such-program-weft-test.*not found", l) for l in cmd_err),
      "the shell's 'not found' for the missing program comes prefixed [13] on stderr")
check(all([l.split(" ", 2)[2] for l in cmd_err if l.startswith(f"[{i}] job")] == ["err 1", "err 2", "err 3"]
          for i in range(1, 21)), "each command's stderr lines come in its own order")

summary = [l for l in err_lines if not l.startswith("[")]
check("parallel: 20 commands: 17 succeeded, 3 failed:" in summary, "the summary counts 17 and 3", summary[:1])
check(any(l.startswith("  [5] exit status 3: ") for l in summary), "the summary names [5]'s exit status 3")
check(any(l.startswith("  [9] killed by signal 9 (Killed): echo ") for l in summary),
      "the summary names [9]'s signal 9")
check(any(l.startswith("  [13] exit status 127 (command not found): echo ") for l in summary),
      "the summary names [13]'s missing program (status 127)")
check(len(summary) == 4, "the summary lists the three failures and nothing else", summary)

# The commands' own clocks: intervals that overlap can only be commands running at once.
events = []
for i in range(1, 21):
    with open(os.path.join(tmp, f"t.{i}")) as f:
        stamps = dict(line.split() for line in f)
    events += [(int(stamps["start"]), 1), (int(stamps["end"]), -1)]
running = most = 0
for _, step in sorted(events, key=lambda e: (e[0], e[1])):
    running += step
    most = max(most, running)
check(2 <= most <= 4, f"at most 4 commands ran at once, and more than one did (most at once: {most})")
check(took < 30, f"parallel took {took:.1f} s")

# Commands from stdin; empty lines and comments skipped.
r = run([PARALLEL], input="echo one\n\n# a comment\necho two >&2\n")
check(r.returncode == 0 and r.stdout == "[1] one\n" and "[2] two\n" in r.stderr
      and "parallel: 2 commands, all succeeded" in r.stderr, "commands from stdin", f"{r.stdout!r} {r.stderr!r}")

# -t: SIGTERM, and SIGKILL 2 s later for a command that ignores SIGTERM.
start = time.time()
r = run([PARALLEL, "-t", "0.5", "echo pid $$; exec sleep 30",
         "trap '' TERM; echo pid $$; while :; do sleep 0.1; done", "echo quick"])
took = time.time() - start
check(r.returncode == 1 and "[3] quick" in r.stdout, f"-t: exit status 1, the quick command ran ({r.returncode})")
check("  [1] timed out after 0.5 s: ended by SIGTERM: echo pid $$; exec sleep 30" in r.stderr,
      "-t: the summary says [1] timed out and SIGTERM ended it", f"{r.stderr!r}")
check("  [2] timed out after 0.5 s: ended by SIGKILL: " in r.stderr, "-t: [2] ignored SIGTERM and SIGKILL ended it")
check(2.3 < took < 15, f"-t: SIGKILL came 2 s after SIGTERM ({took:.1f} s in all)")
pids = re.findall(r"^\[\d\] pid (\d+)$", r.stdout, re.M)
check(len(pids) == 2 and all(gone(p) for p in pids), f"-t: both commands' processes are gone ({pids})")
kill_leftovers(pids)
check(clean(r.stderr), "-t: no sanitizer report")

# Ctrl-C: the running commands are killed and parallel dies of SIGINT.
bg = Background("parallel_sigint", [PARALLEL, "-P", "2", "echo pid $$; exec sleep 30",
                                    "echo pid $$; exec sleep 30", "echo never"])
bg.wait_for("parallel: two commands running", r"^\[\d\] pid \d+\n\[\d\] pid \d+$")
pids = re.findall(r"pid (\d+)", bg.out())
bg.proc.send_signal(signal.SIGINT)
rc = bg.finish()
check(rc == -signal.SIGINT, f"Ctrl-C: parallel dies of SIGINT (returncode {rc})")
check(len(pids) == 2 and all(gone(p) for p in pids), f"Ctrl-C: the running commands' processes are gone ({pids})")
kill_leftovers(pids)
check("[1] stopped (Ctrl-C)" in bg.err() and "[3] not started (Ctrl-C): echo never" in bg.err()
      and "[3] never" not in bg.out(), "Ctrl-C: the summary says which stopped and which never started", f"{bg.err()!r}")

for args, what in ((["-P", "0", "true"], "-P 0"), (["-t", "soon", "true"], "-t soon"), (["-Q"], "an unknown option")):
    r = run([PARALLEL] + args)
    check(r.returncode == 2 and "usage: parallel" in r.stderr, f"bad usage ({what}): status 2 and the usage")

# ---- tail_react: a growing file and a command, then Ctrl-C ------------------------------

log = os.path.join(tmp, "app.log")
with open(log, "w") as f:
    f.write("ERROR from before the start: not reported\n")
# The command takes its time to exit on SIGTERM (the trap runs once the sleep ends),
# with a status of its own: tail_react must wait for it, not kill it.
child = ("trap 'exit 7' TERM; i=0; while [ $i -lt 5 ]; do i=$((i + 1)); "
         "echo \"cmd line $i\"; echo \"cmd ERROR $i\"; sleep 0.1; done; while :; do sleep 0.5; done")
bg = Background("tail", [TAIL_REACT, "-i", "0.05", "-t", "60", "ERROR|FATAL", log, "sh", "-c", child])
m = bg.wait_for("tail_react: started", r"following .*app\.log from byte \d+, and sh \(pid (\d+)\)")
child_pid = m.group(1) if m else "0"


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


append(log, "file ERROR 1\nfile fine\n")
bg.wait_for("tail_react: an appended line", r"^ALERT file .*: file ERROR 1$")
append(log, "file ERR")  # a line in two pieces: one alert, once it is whole
time.sleep(0.3)
append(log, "OR 2\n")
bg.wait_for("tail_react: a line written in two pieces", r"^ALERT file .*: file ERROR 2$")
with open(log, "w") as f:  # truncated, and shorter than what was read
    f.write("file ERROR 3\n")
bg.wait_for("tail_react: a truncated file", r"^ALERT file .*: file ERROR 3$")
os.rename(log, log + ".1")  # rotated: a last line in the old file, then a new file
append(log + ".1", "file ERROR 4\n")
append(log, "file FATAL 5\n")
bg.wait_for("tail_react: a rotated file", r"^ALERT file .*: file FATAL 5$")
bg.wait_for("tail_react: the command's lines", r"^ALERT command sh: cmd ERROR 5$")
bg.proc.send_signal(signal.SIGINT)
rc = bg.finish()
out, err = bg.out(), bg.err()
check(rc == -signal.SIGINT, "Ctrl-C: tail_react dies of SIGINT", f"returncode {rc}; {err!r}")
alerts = re.findall(r"^ALERT (file|command) (\S+): (.*)$", out, re.M)
check([a[2] for a in alerts if a[0] == "file"] == ["file ERROR 1", "file ERROR 2", "file ERROR 3", "file ERROR 4",
                                                   "file FATAL 5"],
      "the file's alerts: exactly its matching lines, in order", [a for a in alerts if a[0] == "file"])
check([a[2] for a in alerts if a[0] == "command"] == [f"cmd ERROR {i}" for i in range(1, 6)],
      "the command's alerts: exactly its matching lines, in order", [a for a in alerts if a[0] == "command"])
check(len(alerts) == len(out.splitlines()) and all(a[1] in ("sh", log) for a in alerts),
      "every line of stdout is an alert naming its source")
check("was truncated" in err and "was replaced" in err, "the truncation and the rotation are noted", f"{err!r}")
check(f"stopped sh (pid {child_pid}): it exited with status 7" in err,
      "Ctrl-C: the command was sent SIGTERM and waited for: its trap's exit status 7", f"{err!r}")
check(gone(child_pid), f"Ctrl-C: the command's process (pid {child_pid}) is gone")
kill_leftovers([child_pid])
check(clean(err), "tail_react ran without a sanitizer report")

# -x: both sources end; what the command wrote to the file just before it exited counts.
with open(log, "w") as f:
    f.write("start\n")
r = run([TAIL_REACT, "-i", "0.05", "-x", "ERROR", log, "sh", "-c",
         f'sleep 0.3; echo "file ERROR from the command" >> {log}; echo "cmd ERROR"; echo "cmd fine"; exit 3'],
        timeout=30)
check(r.returncode == 0 and r.stdout.splitlines() == ["ALERT command sh: cmd ERROR",
                                                      f"ALERT file {log}: file ERROR from the command"]
      and "sh exited with status 3" in r.stderr,
      "-x: ends once the command exited and the file was read", f"{r.returncode} {r.stdout!r} {r.stderr!r}")

# -t: the time is up; a command that ignores SIGTERM gets SIGKILL 2 s later.
start = time.time()
r = run([TAIL_REACT, "-t", "0.5", "ERROR", log, "sleep", "30"], timeout=30)
pid = re.search(r"sleep \(pid (\d+)\)", r.stderr)
check(r.returncode == 0 and "stopped sleep" in r.stderr and "Terminated" in r.stderr and time.time() - start < 10
      and pid and gone(pid.group(1)), "-t: ends after its time, the command terminated", f"{r.returncode} {r.stderr!r}")
kill_leftovers([pid.group(1)] if pid else [])
start = time.time()
r = run([TAIL_REACT, "-t", "0.5", "ERROR", log, "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"], timeout=30)
took = time.time() - start
pid = re.search(r"sh \(pid (\d+)\)", r.stderr)
check(r.returncode == 0 and re.search(r"stopped sh \(pid \d+\): Killed", r.stderr) and 2.3 < took < 15
      and pid and gone(pid.group(1)), "-t: a command that ignores SIGTERM is killed 2 s later", f"{took:.1f} s; {r.stderr!r}")
kill_leftovers([pid.group(1)] if pid else [])
check(clean(r.stderr), "-t: no sanitizer report")

r = run([TAIL_REACT, "ERROR", os.path.join(tmp, "missing.log"), "true"])
check(r.returncode == 1 and "cannot open" in r.stderr and "missing.log" in r.stderr,
      f"a missing file: status 1, named ({r.stderr.strip()})")
r = run([TAIL_REACT, "ERROR", log, "no-such-program-weft-test"])
check(r.returncode == 1 and 'cannot run "no-such-program-weft-test"' in r.stderr,
      f"a missing program: status 1, named ({r.stderr.strip()})")
for args, what in ((["ERROR"], "no FILE"), (["-x", "ERROR", log], "-x without a command"),
                   (["-i", "0", "ERROR", log], "-i 0"), (["(", log], "a bad pattern")):
    r = run([TAIL_REACT] + args)
    check(r.returncode == 2 and (r.stderr.startswith("tail_react: ") or "usage: tail_react" in r.stderr),
          f"bad usage ({what}): status 2 and a message ({r.returncode} {r.stderr.splitlines()[:1]})")

shutil.rmtree(tmp, ignore_errors=True)
print(f"showcase_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
