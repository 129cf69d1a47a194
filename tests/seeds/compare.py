#!/usr/bin/env python3
"""compare.py — checks that one C port of a seed prints what its Python program prints.

    compare.py PORT_BINARY PYTHON_PROGRAM [--scale 0.05] [--python EXE] [--timeout S]
               [--random-durations REGEX] [--attempts N] [--abs-tol S]

Runs both at the same WEFT_TIME_SCALE, at the same time (to save wall time), then
compares their stdout line by line. Lines of the port that start with '#' are ignored.

Lines must be identical except for the times on them:
  * clock times HH:MM:SS may differ by 1 s (the two programs start a few ms apart);
  * epoch timestamps (a float above 1e8, e.g. time.time()) may differ by 1 s;
  * any other decimal number is an elapsed time and may differ by
        max(ABS, 15 % of the Python value),  ABS = 0.45 s x scale (--abs-tol)
    The seeds' smallest lesson is one unscaled second (2 s concurrent vs 3 s
    sequential), so ABS stays below half of it: a port that ran sequentially where
    Python runs concurrently fails, while a few ms of scheduling noise on a busy VM
    passes. (A flat 0.05 s would let a sequential s2/s3/s4 port through at scale 0.05.)
  * each number must be written like Python's: the same count of decimals for a
    formatted value ('0.20'), shortest round-trip digits for a bare float's repr.
Consecutive lines that differ only in their numbers and carry an elapsed time (the
completion lines of concurrent tasks) may come in another order, but only where
Python's own elapsed times for the swapped lines are within the tolerance: tasks of
nearly equal duration finish in an order noise decides, in Python as in C.

Lines matching --random-durations report one job's random duration. A port may draw
other random numbers than Python (the seeds' README allows it), and a single job of a
few ms says nothing about concurrency, so their elapsed times are checked for format
only; in a run of such lines the port must finish its jobs in the order of its own
durations (each at most ABS shorter than one printed before it) — the lesson of
"finish in order of their random durations". The totals stay compared with Python's.

A load spike can push one run's timings out of bounds, so when only times differ
(the text matched) both programs are run again, up to --attempts runs in all: noise
does not repeat, a sequential port's 3 s against Python's 2 s does.

Exit status: 0 when they match, 1 on any mismatch or failure (both outputs and the
first differing line are printed), 2 on bad usage.
"""

import argparse
import os
import re
import subprocess
import sys

CLOCK = r"(?<!\d)\d{2}:\d{2}:\d{2}(?!\d)"
DECIMAL = r"(?<![\w.])-?\d+\.\d+(?:[eE][+-]?\d+)?(?![\w.])"
TOKEN = re.compile(f"(?P<clock>{CLOCK})|(?P<decimal>{DECIMAL})")
EPOCH_THRESHOLD = 1e8
# How the problems that noise alone can cause begin (see Comparer).
TIMING_PROBLEMS = ("clock ", "elapsed time ", "timestamp ", "order: ")


class Line:
    """One output line split into literal text and the time values inside it."""

    def __init__(self, number, text):
        self.number = number
        self.text = text
        self.literals = []
        self.values = []  # (kind, text)
        position = 0
        for match in TOKEN.finditer(text):
            self.literals.append(text[position:match.start()])
            kind = "clock" if match.group("clock") else "decimal"
            self.values.append((kind, match.group(0)))
            position = match.end()
        self.literals.append(text[position:])

    def shape(self):
        """The line with every digit hidden: lines of one shape differ only in numbers."""
        return re.sub(r"\d+", "#", "\x00".join(self.literals)), tuple(k for k, _ in self.values)

    def key(self):
        """The line without its time values: what must match exactly."""
        return tuple(self.literals), tuple(k for k, _ in self.values)

    def first_elapsed(self):
        for kind, text in self.values:
            if kind == "decimal" and abs(float(text)) < EPOCH_THRESHOLD:
                return float(text)
        return None


def clock_seconds(text):
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def fraction_digits(text):
    mantissa = re.split(r"[eE]", text)[0]
    return len(mantissa.split(".")[1])


def is_repr_style(text):
    """A bare float printed by repr()/str() shows many digits; a formatted one a few.
    Timestamps are always bare here, and their shortest repr can be short by chance
    (1795487230.5142), so size decides for them."""
    return (fraction_digits(text) >= 6 or "e" in text.lower()
            or abs(float(text)) >= EPOCH_THRESHOLD)


class Comparer:
    def __init__(self, scale, abs_tol, random_durations=None):
        self.scale = scale
        self.random_durations = re.compile(random_durations) if random_durations else None
        self.abs_tol = abs_tol if abs_tol is not None else 0.45 * scale

    def elapsed_tolerance(self, python_value):
        return max(self.abs_tol, 0.15 * abs(python_value))

    def is_random_duration(self, line):
        return self.random_durations is not None and bool(self.random_durations.search(line.text))

    def value_problem(self, kind, python_text, port_text, random_duration=False):
        """None if the port's value matches Python's, else why not."""
        if kind == "clock":
            gap = abs(clock_seconds(python_text) - clock_seconds(port_text))
            gap = min(gap, 86400 - gap)
            if gap > 1:
                return f"clock {port_text} is {gap} s away from Python's {python_text} (limit 1 s)"
            return None
        python_value, port_value = float(python_text), float(port_text)
        if is_repr_style(python_text):
            if repr(port_value) != port_text:
                return (f"{port_text!r} is not Python's repr of the float "
                        f"(expected {repr(port_value)!r})")
        elif fraction_digits(python_text) != fraction_digits(port_text) or is_repr_style(port_text):
            return f"{port_text!r} is not formatted like Python's {python_text!r}"
        if random_duration:
            return None if port_value >= 0 else f"elapsed time {port_text} is negative"
        if abs(python_value) >= EPOCH_THRESHOLD:
            limit = 1.0
            what = "timestamp"
        else:
            limit = self.elapsed_tolerance(python_value)
            what = "elapsed time"
        if abs(port_value - python_value) > limit:
            return (f"{what} {port_text} differs from Python's {python_text} by "
                    f"{abs(port_value - python_value):.4f} s (limit {limit:.4f} s)")
        return None

    def line_problem(self, python_line, port_line):
        if python_line.key() != port_line.key():
            return "the text differs"
        random_duration = self.is_random_duration(python_line)
        for (kind, python_text), (_, port_text) in zip(python_line.values, port_line.values):
            problem = self.value_problem(kind, python_text, port_text, random_duration)
            if problem:
                return problem
        return None

    def group_problem(self, python_group, port_group):
        """Lines of one shape carrying elapsed times: same lines, order up to noise.
        Returns (python index, port index, problem), both within the group, or None."""
        unmatched = list(range(len(port_group)))
        position_in_port = {}
        for i, python_line in enumerate(python_group):
            found = next((j for j in unmatched if port_group[j].key() == python_line.key()), None)
            if found is None:
                return i, i, "no line of the port matches this one"
            unmatched.remove(found)
            position_in_port[i] = found
        for i, python_line in enumerate(python_group):
            problem = self.line_problem(python_line, port_group[position_in_port[i]])
            if problem:
                return i, position_in_port[i], problem
        if self.is_random_duration(python_group[0]):
            longest = None
            for k, line in enumerate(port_group):
                elapsed = line.first_elapsed()
                if longest is not None and elapsed < longest.first_elapsed() - self.abs_tol:
                    python_index = next(i for i, p in position_in_port.items() if p == k)
                    return python_index, k, (
                        f"order: the port's job of {elapsed} s finishes after its job of "
                        f"{longest.first_elapsed()} s ({longest.text!r}): jobs must finish "
                        f"in the order of their durations")
                if longest is None or elapsed > longest.first_elapsed():
                    longest = line
            return None
        for i in range(len(python_group)):
            for j in range(i + 1, len(python_group)):
                if position_in_port[i] < position_in_port[j]:
                    continue
                first, second = python_group[i].first_elapsed(), python_group[j].first_elapsed()
                limit = self.elapsed_tolerance(max(first, second))
                if abs(first - second) > limit:
                    earlier = port_group[position_in_port[j]].text
                    return i, position_in_port[j], (
                        f"order: the port prints {earlier!r} before {python_group[i].text!r}, "
                        f"but Python's times for them ({second} vs {first}) differ by more "
                        f"than {limit:.4f} s")
        return None

    def compare(self, python_lines, port_lines):
        """Returns None, or (python line index, port line index, problem)."""
        i = j = 0
        while i < len(python_lines) and j < len(port_lines):
            shape = python_lines[i].shape()
            end = i
            if python_lines[i].first_elapsed() is not None:
                while end + 1 < len(python_lines) and python_lines[end + 1].shape() == shape:
                    end += 1
            size = end - i + 1
            if size > 1:
                port_group = port_lines[j:j + size]
                if len(port_group) < size or any(l.shape() != shape for l in port_group):
                    bad = next((k for k, l in enumerate(port_group) if l.shape() != shape),
                               len(port_group))
                    return i + min(bad, size - 1), j + bad, "the text differs"
                problem = self.group_problem(python_lines[i:end + 1], port_group)
                if problem:
                    return i + problem[0], j + problem[1], problem[2]
            else:
                problem = self.line_problem(python_lines[i], port_lines[j])
                if problem:
                    return i, j, problem
            i += size
            j += size
        if i < len(python_lines):
            return i, j, "the port's output ends here"
        if j < len(port_lines):
            return i, j, "the port prints more lines than Python"
        return None


def lines_of(text, drop_comments):
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    return [Line(n, row) for n, row in enumerate(rows, 1)
            if not (drop_comments and row.startswith("#"))]


def show(title, lines):
    print(f"----- {title} ({len(lines)} lines)")
    for line in lines:
        print(f"{line.number:4} | {line.text}")


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def run_both(commands, env, timeout):
    """Starts both programs at once; returns {name: (status, stdout, stderr)}."""
    runs = {}
    for name, command in commands.items():
        try:
            runs[name] = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
        except OSError as error:
            for started in runs.values():
                started.kill()
            fail(f"cannot run {command[0]}: {error}")
    outputs = {}
    for name, process in runs.items():
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for started in runs.values():
                started.kill()
            fail(f"the {name} run took more than {timeout} s: {' '.join(commands[name])}")
        outputs[name] = (process.returncode, stdout, stderr)
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", help="the C port's executable")
    parser.add_argument("program", help="the Python program it ports")
    parser.add_argument("--scale", type=float, default=0.05, help="WEFT_TIME_SCALE (default 0.05)")
    parser.add_argument("--abs-tol", type=float, default=None,
                        help="absolute tolerance on elapsed times, s (default 0.45 x scale)")
    parser.add_argument("--python", default=sys.executable or "python3",
                        help="interpreter for the Python program (default: this one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for each run")
    parser.add_argument("--seeds-dir", default=None,
                        help="the seeds folder the program was looked for in (for messages)")
    parser.add_argument("--random-durations", metavar="REGEX", default=None,
                        help="lines reporting one job's random duration (format checked only)")
    parser.add_argument("--attempts", type=int, default=3,
                        help="runs allowed when only timings differ (default 3)")
    args = parser.parse_args()

    if not os.path.isfile(args.program):
        where = args.seeds_dir or os.path.dirname(os.path.dirname(os.path.abspath(args.program)))
        fail(f"the Python seed program {args.program} does not exist: the seeds folder was "
             f"looked for at {where}. Configure with -DWEFT_SEEDS_DIR=/path/to/shared/seeds.")
    if not (os.path.isfile(args.port) and os.access(args.port, os.X_OK)):
        fail(f"the port {args.port} has not been built (build the examples, "
             f"WEFT_BUILD_EXAMPLES=ON)")

    env = dict(os.environ, WEFT_TIME_SCALE=repr(args.scale))
    env.pop("PYTHONASYNCIODEBUG", None)
    commands = {"python": [args.python, args.program], "port": [args.port]}
    comparer = Comparer(args.scale, args.abs_tol, args.random_durations)
    for attempt in range(1, args.attempts + 1):
        outputs = run_both(commands, env, args.timeout)
        python_lines = lines_of(outputs["python"][1], drop_comments=False)
        port_lines = lines_of(outputs["port"][1], drop_comments=True)
        difference = comparer.compare(python_lines, port_lines)
        statuses = (outputs["python"][0], outputs["port"][0])
        if difference is None and statuses == (0, 0):
            again = f", attempt {attempt}" if attempt > 1 else ""
            print(f"OK: {os.path.basename(args.port)} matches {os.path.basename(args.program)} "
                  f"({len(python_lines)} lines, WEFT_TIME_SCALE={args.scale}{again})")
            return 0
        timing_only = (statuses == (0, 0) and difference is not None
                       and difference[2].startswith(TIMING_PROBLEMS))
        if not timing_only or attempt == args.attempts:
            break
        print(f"# attempt {attempt}: {difference[2]}; running both again")

    show(f"python: {args.program} (exit {statuses[0]})", python_lines)
    if outputs["python"][2]:
        print("----- python stderr\n" + outputs["python"][2].rstrip())
    show(f"port: {args.port} (exit {statuses[1]})", port_lines)
    if outputs["port"][2]:
        print("----- port stderr\n" + outputs["port"][2].rstrip())
    if difference is not None:
        i, j, problem = difference
        python_at = python_lines[i] if i < len(python_lines) else None
        port_at = port_lines[j] if j < len(port_lines) else None
        python_text = python_at.text if python_at else "(no more lines)"
        port_text = port_at.text if port_at else "(no more lines)"
        where = (f"python line {python_at.number if python_at else 'end'} / "
                 f"port line {port_at.number if port_at else 'end'}")
        print(f"FAIL: first difference at {where}: {problem}")
        print(f"  python: {python_text}")
        print(f"  port:   {port_text}")
    else:
        print(f"FAIL: exit status: python {statuses[0]}, port {statuses[1]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
