#!/usr/bin/env python3
"""check_guide.py — compiles and runs the complete programs of docs/guide.md and
compares what they print with the output the guide shows for them.

    check_guide.py --guide docs/guide.md --include include --lib build/libweft.a
                   [--cflags "-fsanitize=address,undefined"] [--cc cc] [--jobs N]
                   [--timeout 60] [--only TEXT] [--keep DIR]

The guide's conventions, which this script enforces:

* A ```c block that contains `int main(` is a complete program. It is compiled as the
  guide's introduction says, `cc -std=c11 -g -Wall -Wextra -Werror prog.c -I include
  libweft.a -lpthread` (plus --cflags, e.g. the sanitizer flags the library was built
  with), and run with a timeout (--timeout, 60 s), in parallel (--jobs).
* Its output is the next fenced block, a ```text block, separated from the program by
  blank lines and at most the two markers below. A program without one fails (a ```text
  block that only illustrates, after an excerpt or in the prose, is not checked; no
  program is skipped). The program runs on a pseudo-terminal,
  as in a reader's shell: stdout is line-buffered and stderr goes to the same screen, so
  the lines come in the order a terminal shows them. A program killed by a signal gets
  the line a shell prints for it (strsignal: "Aborted" for SIGABRT).
* A program must exit with status 0, unless an HTML comment `<!-- exit status: N -->`
  right before its output block says otherwise (the prose around it says why).
* Lines must match exactly, with one exception. A program that does not use
  `weft_options.virtual_time` runs on the real clock, and the times it prints (a decimal
  after `t=`, or before `s` / `seconds`) may be later than the guide's by up to
  TIME_TOLERANCE seconds (and earlier by one unit of the last printed digit, for
  rounding): the guide shows 0.2, the run may print 0.2 or 0.3. The text around them
  must still match. If only times are off, the program is run again, up to ATTEMPTS
  runs in all: load on the machine does not repeat, a real slowdown does.
  Programs on virtual time print the same times on every run and get no tolerance.
* Output that cannot be the same on every run is marked in the guide, visibly, by the
  words "(order may vary)" in the one line of prose between the program and its output
  block; then the lines are compared as sorted multisets.

Snippets (```c blocks without `int main(`) are checked too:
* an excerpt introduced by *From `some/file.c`* must appear in that file, chunk by
  chunk (lines such as `/* ... */` or `/* in main: */` separate the chunks); the build
  compiles that file, so the excerpt is compiled code;
* a snippet whose lines all appear, in order, in a header under --include is an excerpt
  of the public header;
* a one-line snippet is a statement quoted in the prose, and is skipped;
* any other snippet must compile (-fsyntax-only) after the usual #includes.

Prints one line per program and snippet, then a summary; on a failure, the reason and
a diff. Exit status 0 when everything passed, 1 otherwise, 2 on bad usage.
The environment variable WEFT_TIME_SCALE (exported by `make test`, read only by the
seed ports' harness) is removed for the runs: the guide's programs run as a reader
would run them.
"""

import argparse
import concurrent.futures
import difflib
import os
import re
import resource
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tty

TIME_TOLERANCE = 0.1  # seconds a real-clock time may exceed the guide's
ATTEMPTS = 3          # runs of a real-clock program whose only differences are times
PRELUDE = "".join(f"#include <{h}>\n" for h in
                  ("errno.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h",
                   "string.h", "weft.h"))
# A decimal that is a time: after "t=", or before " s" / "s" / " seconds".
TIME_RE = re.compile(r"(?<=t=)\d+\.\d+|(?<![\w.])\d+\.\d+(?= ?s\b| seconds\b)")
EXIT_RE = re.compile(r"^<!--\s*exit status:\s*(\d+)\s*-->$")
FROM_RE = re.compile(r"\*From `([^`]+)`[^*]*\*")
ELISION_RE = re.compile(r"^\s*/\*.*(\.\.\.|…|in main:).*\*/\s*$")


class Block:
    def __init__(self, line, lang, lines, before):
        self.line = line        # 1-based line number of the opening fence
        self.lang = lang
        self.lines = lines      # content lines, without newlines
        self.before = before    # the guide's lines between the previous block and this one
        self.text = "\n".join(lines) + "\n"


def parse_blocks(path):
    """Returns the fenced blocks of a Markdown file, and the heading each is under."""
    blocks, headings = [], []
    heading, fence, lang, start, content, before = "", None, "", 0, [], []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if fence is None:
                m = re.match(r"^(`{3,})\s*([^\s`]*)", line)
                if m:
                    fence, lang, start, content = m.group(1), m.group(2), number, []
                    continue
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()
                before.append(line)
            elif line.strip() == fence:
                blocks.append(Block(start, lang, content, before))
                headings.append(heading)
                fence, before = None, []
            else:
                content.append(line)
    if fence is not None:
        raise SystemExit(f"check_guide: {path}:{start}: unclosed code fence")
    return blocks, headings


def slug(heading):
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "guide"


class Item:
    """One thing to check: a program (with its output) or a snippet."""

    def __init__(self, kind, name, block):
        self.kind, self.name, self.block = kind, name, block
        self.expected = None     # list of lines (programs)
        self.exit_status = 0
        self.sorted = False
        self.real_clock = False
        self.problem = None      # a reason the guide itself is malformed here
        self.source = None       # excerpts: the file they come from


def collect(guide):
    blocks, headings = parse_blocks(guide)
    items, per_heading = [], {}
    for i, block in enumerate(blocks):
        if block.lang != "c":
            continue
        base = slug(headings[i])
        per_heading[base] = per_heading.get(base, 0) + 1
        n = per_heading[base]
        name = base if n == 1 else f"{base}-{n}"  # the heading, numbered within it
        if "int main(" in block.text:
            item = Item("program", name, block)
            item.real_clock = "virtual_time" not in block.text
            attach_output(item, blocks[i + 1] if i + 1 < len(blocks) else None)
        else:
            item = Item("snippet", name, block)
            m = FROM_RE.search(" ".join(last_paragraph(block.before)))
            if m:
                item.source = m.group(1)
        items.append(item)
    return items


def last_paragraph(lines):
    """The last run of non-blank lines."""
    paragraph, blank = [], False
    for line in lines:
        if not line.strip():
            blank = True
        elif blank:
            paragraph, blank = [line], False
        else:
            paragraph.append(line)
    return paragraph


def attach_output(item, nxt):
    where = f"line {item.block.line}"
    if nxt is None or nxt.lang != "text":
        item.problem = f"{where}: a complete program must be followed by its output, a ```text block"
        return
    between = [line.strip() for line in nxt.before if line.strip()]
    prose = []
    for line in between:
        m = EXIT_RE.match(line)
        if m:
            item.exit_status = int(m.group(1))
        else:
            prose.append(line)
    if len(prose) > 1:
        item.problem = (f"{where}: only blank lines, an exit-status comment or one line of prose "
                        f"may stand between a program and its output block")
        return
    if prose:
        if "(order may vary)" not in prose[0]:
            item.problem = (f"{where}: the line between the program and its output block must "
                            f"say \"(order may vary)\": {prose[0]!r}")
            return
        item.sorted = True
    item.expected = list(nxt.lines)


# ------------------------------------------------------------------ running

def run_on_pty(argv, timeout, env, cwd):
    """Runs argv with stdout and stderr on one pseudo-terminal. Returns (text, status,
    timed_out); status is the exit status, or -N for signal N."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no \n -> \r\n translation, no echo
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                env=env, cwd=cwd, start_new_session=True)
    finally:
        os.close(slave)
    chunks, deadline, timed_out = [], time.monotonic() + timeout, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    data = b""
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                # Exited; anything it wrote is readable now, or a child holds the terminal.
                ready, _, _ = select.select([master], [], [], 0.2)
                if not ready:
                    break
        status = proc.wait()
    finally:
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace"), status, timed_out


def shell_view(text, status):
    """The lines a shell shows: the output, then the shell's own line for a signal."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if status < 0:
        lines.append(signal.strsignal(-status) or f"killed by signal {-status}")
    return lines


def compare(item, actual):
    """Returns (ok, only_times): whether the lines match, and whether everything but
    some real-clock times (out of tolerance) matched."""
    expected = item.expected
    if item.sorted:
        expected, actual = sorted(expected), sorted(actual)
    if len(expected) != len(actual):
        return False, False
    times_off = text_off = False
    for want, got in zip(expected, actual):
        if want == got:
            continue
        if not item.real_clock or TIME_RE.split(want) != TIME_RE.split(got):
            text_off = True
        elif not times_match(TIME_RE.findall(want), TIME_RE.findall(got)):
            times_off = True
    return not (times_off or text_off), times_off and not text_off


def times_match(wanted, got):
    """Each time printed may be up to TIME_TOLERANCE s later than the guide's, or one
    unit of its last digit earlier, and must be written with as many decimals."""
    for w, g in zip(wanted, got):
        decimals = len(w.split(".")[1])
        unit = 10.0 ** -decimals
        if len(g.split(".")[1]) != decimals:
            return False
        if not float(w) - unit - 1e-9 <= float(g) <= float(w) + TIME_TOLERANCE + 1e-9:
            return False
    return True


def check_program(item, args, workdir):
    if item.problem:
        return False, item.problem
    src = os.path.join(workdir, item.name + ".c")
    exe = os.path.join(workdir, item.name)
    with open(src, "w", encoding="utf-8") as f:
        f.write(item.block.text)
    cmd = ([args.cc, "-std=c11", "-g", "-Wall", "-Wextra", "-Werror"] + args.cflags_list +
           [src, "-I", args.include, args.lib, "-lpthread", "-o", exe])
    try:
        cc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return False, f"compiling took more than {args.timeout} s"
    if cc.returncode != 0:
        return False, f"does not compile:\n  $ {shlex.join(cmd)}\n{cc.stdout}{cc.stderr}"
    env = {k: v for k, v in os.environ.items() if k != "WEFT_TIME_SCALE"}
    for attempt in range(1, ATTEMPTS + 1):
        started = time.monotonic()
        text, status, timed_out = run_on_pty([exe], args.timeout, env, workdir)
        elapsed = time.monotonic() - started
        if timed_out:
            return False, f"still running after {args.timeout} s; killed. It printed:\n{text}"
        actual = shell_view(text, status)
        ok, only_times = compare(item, actual)
        # A signal's shell line is part of the output; an exit status is checked here.
        status_ok = status < 0 or status == item.exit_status
        if ok and status_ok:
            mode = ["real clock" if item.real_clock else "virtual time"]
            if item.sorted:
                mode.append("compared sorted")
            if status != 0:
                mode.append(f"exit status {status}" if status > 0 else f"killed by signal {-status}")
            if attempt > 1:
                mode.append(f"run {attempt}: the earlier runs' times were out of tolerance")
            return True, f"{elapsed:.1f} s ({', '.join(mode)})"
        if not (status_ok and only_times):
            break
    why = []
    if not status_ok:
        why.append(f"exit status {status}; the guide expects {item.exit_status}" +
                   ("" if item.exit_status else
                    " (an intended status is marked <!-- exit status: N --> before the output block)"))
    if not ok:
        want, got = (sorted(item.expected), sorted(actual)) if item.sorted else (item.expected, actual)
        diff = "\n".join(difflib.unified_diff(want, got, "guide", "run", lineterm="", n=2))
        why.append(("output differs" + (" (compared sorted)" if item.sorted else "") +
                    (f", in all {attempt} runs" if attempt > 1 else "") + ":\n" + diff))
    return False, "\n".join(why)


def check_snippet(item, args, workdir):
    lines = item.block.lines
    if item.source:
        path = os.path.join(args.root, item.source)
        try:
            with open(path, encoding="utf-8") as f:
                file_lines = [line.rstrip() for line in f.read().split("\n")]
        except OSError as e:
            return False, f"cannot read {item.source}, which it says it comes from: {e.strerror}"
        chunks, chunk = [], []
        for line in lines:
            if ELISION_RE.match(line):
                chunks.append(chunk)
                chunk = []
            else:
                chunk.append(line.rstrip())
        chunks.append(chunk)
        for chunk in chunks:
            while chunk and not chunk[0]:
                chunk.pop(0)
            while chunk and not chunk[-1]:
                chunk.pop()
            if chunk and not contains(file_lines, chunk):
                missing = [line for line in chunk if line not in file_lines]
                return False, (f"not an excerpt of {item.source}: " +
                               ("these lines are not in it:\n" + "\n".join(missing) if missing else
                                "its lines are there, but not together in this order:\n" +
                                "\n".join(chunk)))
        return True, f"excerpt of {item.source}"
    header = header_excerpt(lines, args.include)
    if header:
        return True, f"excerpt of {header}"
    if len([line for line in lines if line.strip()]) == 1:
        return None, "skipped: a single statement quoted in the text"
    src = os.path.join(workdir, item.name.replace(" ", "_").replace("(", "").replace(")", "") + ".c")
    with open(src, "w", encoding="utf-8") as f:
        f.write(PRELUDE + item.block.text)
    cmd = ([args.cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
            "-fsyntax-only"] + args.cflags_list + ["-I", args.include, src])
    cc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if cc.returncode != 0:
        return False, f"does not compile:\n  $ {shlex.join(cmd)}\n{cc.stdout}{cc.stderr}"
    return True, "compiles"


def contains(haystack, needle):
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def header_excerpt(lines, include):
    """The header (relative to include/) holding these lines in order, or None."""
    want = [" ".join(line.split()) for line in lines if line.strip()]
    for dirpath, _, files in os.walk(include):
        for name in sorted(files):
            if not name.endswith(".h"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                have = [" ".join(line.split()) for line in f if line.strip()]
            if contains(have, want):
                return os.path.relpath(path, os.path.dirname(include.rstrip("/")))
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guide", required=True, help="docs/guide.md")
    parser.add_argument("--include", required=True, help="the directory holding weft.h")
    parser.add_argument("--lib", required=True, help="libweft.a")
    parser.add_argument("--cflags", default="", help="extra compiler and linker flags")
    parser.add_argument("--cc", default=os.environ.get("CC", "cc"), help="the C compiler")
    parser.add_argument("--root", help="where the guide's file paths start (default: the guide's ../)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=60, help="seconds per compile and per run")
    parser.add_argument("--only", help="check only the items whose name contains this")
    parser.add_argument("--keep", help="build in this directory and keep it")
    args = parser.parse_args()
    args.include = os.path.abspath(args.include)
    args.lib = os.path.abspath(args.lib)
    args.root = os.path.abspath(args.root or os.path.join(os.path.dirname(os.path.abspath(args.guide)), ".."))
    args.cflags_list = shlex.split(args.cflags)
    for path, what in ((args.guide, "guide"), (args.lib, "library"), (args.include, "include directory")):
        if not os.path.exists(path):
            print(f"check_guide: no {what} at {path}", file=sys.stderr)
            return 2
    if shutil.which(args.cc) is None:
        print(f"check_guide: no C compiler {args.cc!r}", file=sys.stderr)
        return 2
    # No core files from the programs that abort (a shell would then say "(core dumped)").
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))

    items = collect(args.guide)
    if args.only:
        items = [item for item in items if args.only in item.name]
    if not any(item.kind == "program" for item in items) and not args.only:
        print(f"check_guide: no complete program (a ```c block with `int main(`) in {args.guide}")
        return 1

    workdir = args.keep or tempfile.mkdtemp(prefix="weft-guide.")
    os.makedirs(workdir, exist_ok=True)
    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = [pool.submit(check_program if item.kind == "program" else check_snippet,
                                   item, args, workdir) for item in items]
            results = [f.result() for f in futures]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    counts = {"program": [0, 0], "snippet": [0, 0, 0]}
    for item, (ok, detail) in zip(items, results):
        where = f"guide.md:{item.block.line}"
        if ok is None:
            status = "skipped"
            counts["snippet"][2] += 1
        else:
            status = "ok" if ok else "FAILED"
            counts[item.kind][0 if ok else 1] += 1
        first, _, rest = detail.partition("\n")
        print(f"{status:7} {where:14} {item.kind:7} {item.name}: {first}")
        if rest:
            print("    " + rest.replace("\n", "\n    "))
    p, s = counts["program"], counts["snippet"]
    print(f"check_guide: programs: {p[0]} ok, {p[1]} failed; snippets: {s[0]} ok, {s[1]} failed, "
          f"{s[2]} skipped; {time.monotonic() - started:.1f} s")
    return 1 if p[1] or s[1] else 0


if __name__ == "__main__":
    sys.exit(main())
