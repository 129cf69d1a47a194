#!/usr/bin/env python3
"""trace_test.py — the timeline trace's tests, as a user sees it: runs real programs with
WEFT_TRACE (or weft_options.trace_file), reads the JSON they write with Python's json
module and checks what it says; runs tools/weft-timeline and parses its SVG.

  trace_test.py lessons SEEDS_DIR          s0_main2's waits overlap, s0_main1's do not
  trace_test.py svg TOOL SEEDS_DIR         the SVG: well-formed, a lane per task, legend;
                                           garbage, empty and cut-short traces
  trace_test.py errors PROG SEEDS_DIR      unwritable paths fail weft_run with the reason;
                                           a full disk is reported once, the program goes on
  trace_test.py api|virtual|threads|many PROG    trace_prog's loops (see trace_prog.c)
"""
import fcntl
import json
import re
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SCALE = 0.05
TIMEOUT = 60
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


def run(cmd, env_extra=None, expect_rc=0):
    env = dict(os.environ)
    env.pop("WEFT_TRACE", None)
    env.update(env_extra or {})
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if expect_rc is not None and p.returncode != expect_rc:
        print(p.stdout, p.stderr, sep="\n", file=sys.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}, expected {expect_rc}")
    return p


def load(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, dict) and isinstance(data.get("traceEvents"), list), "not a trace object"
    return data["traceEvents"]


def lanes(events):
    """{(pid, tid): name} from the thread_name metadata."""
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in events
            if e["ph"] == "M" and e["name"] == "thread_name"}


def slices(events, cat=None, tid=None, name=None):
    out = [e for e in events if e["ph"] == "X" and (cat is None or e["cat"] == cat)
           and (tid is None or e["tid"] == tid) and (name is None or e["name"] == name)]
    return sorted(out, key=lambda e: e["ts"])


def span_units(events):
    xs = [e for e in events if e["ph"] == "X" and e["cat"] != "trace"]
    start = min(e["ts"] for e in xs)
    end = max(e["ts"] + e["dur"] for e in xs)
    return (end - start) / 1e6 / SCALE


def trace_seed(seeds, name, tmp):
    path = os.path.join(tmp, name + ".json")
    run([os.path.join(seeds, name)], {"WEFT_TRACE": path, "WEFT_TIME_SCALE": str(SCALE)})
    return load(path)


def test_lessons(seeds):
    with tempfile.TemporaryDirectory() as tmp:
        # s0_main2: main (running b()) spawns a(); a() first runs when b() suspends in
        # its I/O; a()'s I/O then overlaps b()'s; about 11 units, not 16.
        ev = trace_seed(seeds, "s0_main2", tmp)
        names = lanes(ev)
        check(names.get((1, 1)) == "Task-1 (main)", f"s0_main2: lane 1 is main: {names}")
        check(names.get((1, 2)) == "Task-2", f"s0_main2: lane 2 is the spawned a(): {names}")
        b_sleep = slices(ev, "wait", 1, "sleep")
        a_sleep = slices(ev, "wait", 2, "sleep")
        if check(len(b_sleep) == 1 and len(a_sleep) == 1, "s0_main2: one sleep wait in each of main and a()"):
            b, a = b_sleep[0], a_sleep[0]
            overlap = (min(a["ts"] + a["dur"], b["ts"] + b["dur"]) - max(a["ts"], b["ts"])) / 1e6 / SCALE
            check(overlap > 2.0, f"s0_main2: a()'s and b()'s I/O waits overlap by {overlap:.2f} units "
                                 "(expected about 4: both wait 5 units, a() starting 1 unit later)")
        b_runs = slices(ev, "run", 1)
        a_runs = slices(ev, "run", 2)
        if check(b_runs and a_runs, "s0_main2: both tasks ran"):
            first_b, first_a = b_runs[0], a_runs[0]
            check(first_b["args"]["then"] == "waits: sleep", f"s0_main2: b()'s compute step ends in its sleep: "
                                                             f"{first_b['args']}")
            check(first_b["dur"] / 1e6 / SCALE > 4.0, "s0_main2: b()'s compute step blocks about 5 units")
            check(first_a["ts"] >= first_b["ts"] + first_b["dur"],
                  "s0_main2: a() first runs after b()'s compute step ended (create_task does not start it)")
            check(first_a["dur"] / 1e6 / SCALE > 0.8, "s0_main2: a()'s compute step blocks about 1 unit")
        total = span_units(ev)
        check(9.5 < total < 14.5, f"s0_main2: total {total:.2f} units, expected about 11 (not 16)")
        spawn_flows = [e for e in ev if e["ph"] == "s" and e["name"] == "spawn"]
        check(any(e["tid"] == 1 for e in spawn_flows), "s0_main2: a spawn flow leaves main's lane")
        finishes = [e for e in ev if e["ph"] == "i" and e["name"] == "finish"]
        check(sorted(e["tid"] for e in finishes) == [1, 2] and all(e["args"]["outcome"] == "ok" for e in finishes),
              f"s0_main2: both tasks finish ok: {finishes}")

        # s0_main1: everything in main, one after the other: its waits never overlap.
        ev = trace_seed(seeds, "s0_main1", tmp)
        waits = slices(ev, "wait")
        check(len(waits) == 2 and all(w["name"] == "sleep" for w in waits), f"s0_main1: two sleeps: {waits}")
        for x, y in zip(waits, waits[1:]):
            check(x["ts"] + x["dur"] <= y["ts"], "s0_main1: its waits do not overlap")
        runs = slices(ev, "run")
        check(len(runs) == 3, f"s0_main1: three steps (a's compute, b's compute, the end): {len(runs)}")
        total = span_units(ev)
        check(15.0 < total < 21.0, f"s0_main1: total {total:.2f} units, expected about 16")


def svg_lanes(root):
    ns = "{http://www.w3.org/2000/svg}"
    lane_groups = [g for g in root.iter(ns + "g") if g.get("class") == "lane"]
    labels = [g.find(ns + "title").text for g in lane_groups]
    legend = [g for g in root.iter(ns + "g") if g.get("class") == "legend"]
    texts = ["".join(t.itertext()) for t in root.iter(ns + "text")]
    return labels, legend, texts


def test_svg(tool, seeds):
    with tempfile.TemporaryDirectory() as tmp:
        ev = trace_seed(seeds, "s3_async_tasks_blocked", tmp)
        trace = os.path.join(tmp, "s3_async_tasks_blocked.json")
        out = os.path.join(tmp, "out.svg")
        run([sys.executable, tool, trace, "-o", out, "--title", "blocked", "--time-scale", str(SCALE),
             "--name", "Task-2=task_a"])
        root = ET.parse(out).getroot()
        check(root.tag == "{http://www.w3.org/2000/svg}svg", f"svg: the root is an svg element: {root.tag}")
        labels, legend, texts = svg_lanes(root)
        tasks = {n for (pid, tid), n in lanes(ev).items() if tid != 0}
        check(len(labels) == len(tasks) == 3, f"svg: one lane per task: lanes {labels}, tasks {tasks}")
        check("task_a" in labels and "Task-3" in labels, f"svg: lanes labelled, --name applied: {labels}")
        check(len(legend) == 1, "svg: a legend")
        check(any("waits: sleep" in t for t in texts), "svg: the legend names the sleep wait")
        check(any("blocks the loop" in t for t in texts), "svg: task_a's blocking step is marked")
        check(any(t.startswith("total 3.") for t in texts), f"svg: total about 3 s: {[t for t in texts if 'total' in t]}")

        # A trace cut short (the program died): drawn up to its last whole event, with a warning.
        with open(trace, encoding="utf-8") as f:
            whole = f.read()
        cut = os.path.join(tmp, "cut.json")
        with open(cut, "w", encoding="utf-8") as f:
            f.write(whole[: len(whole) * 2 // 3])
        p = run([sys.executable, tool, cut, "-o", out])
        check("no end" in p.stderr, f"svg: a cut trace is drawn with a warning: {p.stderr!r}")
        _, _, texts = svg_lanes(ET.parse(out).getroot())
        check(any("cut short" in t for t in texts), "svg: the picture of a cut trace says it was cut short")

        # A label for a lane that is not there is said, not ignored.
        p = run([sys.executable, tool, trace, "-o", out, "--name", "Task-99=nobody"])
        check("no lane is called Task-99" in p.stderr, f"svg: --name for a missing lane is said: {p.stderr!r}")

        # Garbage, an empty file, JSON that is not a trace: exit 1, saying why.
        cases = {"garbage.json": ("this is not json\n", "not a trace: not JSON"),
                 "empty.json": ("", "is empty"),
                 "object.json": ('{"hello": 1}', "without a \"traceEvents\" array"),
                 "number.json": ("42", "not a trace")}
        for name, (content, said) in cases.items():
            path = os.path.join(tmp, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
            p = run([sys.executable, tool, path, "-o", os.path.join(tmp, name + ".svg")], expect_rc=1)
            check(said in p.stderr and p.stderr.startswith("weft-timeline: "),
                  f"svg: {name} refused with '{said}': {p.stderr!r}")
            check(not os.path.exists(os.path.join(tmp, name + ".svg")), f"svg: no SVG written for {name}")

        # A trace with no events: an SVG that says so.
        path = os.path.join(tmp, "none.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"traceEvents":[]}')
        run([sys.executable, tool, path, "-o", out])
        _, _, texts = svg_lanes(ET.parse(out).getroot())
        check(any("empty" in t for t in texts), "svg: an empty trace is drawn as empty")


def test_errors(prog, seeds):
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "no-such-dir", "t.json")
        # From the environment: said with the reason, and the program runs untraced.
        p = run([os.path.join(seeds, "s0_main2")], {"WEFT_TRACE": bad, "WEFT_TIME_SCALE": "0.01"})
        check(f"weft: WEFT_TRACE={bad}: cannot open {bad} for writing: No such file or directory; tracing is off"
              in p.stderr, f"errors: a bad WEFT_TRACE path is said with the reason: {p.stderr!r}")
        check("b() starts" in p.stdout, "errors: main ran, untraced")
        p = run([prog, "badopt", tmp])
        check(f"weft_options.trace_file \"{tmp}\": cannot open {tmp} for writing: Is a directory" in p.stderr,
              f"errors: a directory as weft_options.trace_file is refused: {p.stderr!r}")
        # A file another process is writing (it holds the lock): refused, and left as it is.
        busy = os.path.join(tmp, "busy.json")
        with open(busy, "w", encoding="utf-8") as holder:
            holder.write("another process's trace")
            holder.flush()
            fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
            p = run([os.path.join(seeds, "s0_main2")], {"WEFT_TRACE": busy, "WEFT_TIME_SCALE": "0.01"})
        check(f"WEFT_TRACE={busy}: another process is writing its trace to {busy}" in p.stderr
              and "tracing is off" in p.stderr, f"errors: a file another process writes is refused: {p.stderr!r}")
        with open(busy, encoding="utf-8") as f:
            check(f.read() == "another process's trace", "errors: the other process's file was left as it was")

        # %p: one file per process, named by its id.
        run([os.path.join(seeds, "s0_main2")], {"WEFT_TRACE": os.path.join(tmp, "t.%p.json"), "WEFT_TIME_SCALE": "0.01"})
        made = [n for n in os.listdir(tmp) if re.fullmatch(r"t\.\d+\.json", n)]
        check(len(made) == 1 and load(os.path.join(tmp, made[0])), f"errors: %p names the file by the pid: {made}")

        # A full disk: said once on stderr, tracing stops, the program ends normally.
        if os.path.exists("/dev/full"):
            p = run([os.path.join(seeds, "s0_main2")], {"WEFT_TRACE": "/dev/full", "WEFT_TIME_SCALE": "0.01"})
            said = [l for l in p.stderr.splitlines() if "writing the trace failed" in l]
            check(len(said) == 1 and "No space left on device" in said[0],
                  f"errors: a full disk is reported once: {p.stderr!r}")
            check("Elapsed time" in p.stdout, "errors: the program went on after the trace failed")


def test_api(prog):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "api.json")
        run([prog, "api", path])
        ev = load(path)
        names = set(lanes(ev).values())
        check("worker" in names, f"api: a spawned name is a lane's name: {names}")
        check('renamed "quoted"\n\tline' in names, f"api: a renamed task's lane has its new name, escaped: {names}")
        outcomes = sorted(e["args"]["outcome"] for e in ev if e["ph"] == "i" and e["name"] == "finish")
        check(outcomes == sorted(["ok", "ok", "ok", "ok", "WEFT_EIO" if "WEFT_EIO" in outcomes else "EIO",
                                  "cancelled before it ran"]),
              f"api: each task's end and outcome: {outcomes}")
        check(any(e["name"] == "sleep" for e in slices(ev, "wait")), "api: the sleeps are waits named sleep")
        fd_waits = [e for e in slices(ev, "wait") if e["name"] == "descriptor"]
        check(len(fd_waits) == 1 and fd_waits[0]["args"].get("ended") == "ready",
              f"api: a descriptor wait that saw its descriptor ready ended 'ready': {fd_waits}")


def test_virtual(prog):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "virtual.json")
        run([prog, "virtual", path])
        ev = load(path)
        sleeps = slices(ev, "wait", name="sleep")
        check(len(sleeps) == 1 and abs(sleeps[0]["dur"] - 10e6) < 1e3,
              f"virtual: the 10 s virtual sleep lasts 10 s on the timeline: {sleeps}")
        procs = [e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"]
        check(len(procs) == 1 and re.fullmatch(r"weft loop 1 \(thread \d+\) \(virtual time\)", procs[0]),
              f"virtual: the loop says its thread and that its time is virtual: {procs}")
        svg = os.path.join(tmp, "virtual.svg")
        run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                          "weft-timeline"), path, "-o", svg])
        _, _, texts = svg_lanes(ET.parse(svg).getroot())
        check(any("virtual time" in t for t in texts), "virtual: the picture says its time is virtual")


def test_exit(prog):
    # exit() from a task: the loop never ends, and its trace is still written, whole.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "exit.json")
        run([prog, "exit", path])
        ev = load(path)
        names = set(lanes(ev).values())
        check("before-exit" in names, f"exit: the task that ran before exit() has its lane: {names}")
        check(any(e["name"] == "sleep" for e in slices(ev, "wait")), "exit: main's sleep before exit() is there")


def test_threads(prog):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "threads.json")
        run([prog, "threads", path, "4"])
        ev = load(path)
        procs = sorted(e["pid"] for e in ev if e["ph"] == "M" and e["name"] == "process_name")
        check(procs == [1, 2, 3, 4, 5], f"threads: five loops, each its own process in the file: {procs}")
        for pid in procs:
            fin = [e for e in ev if e["ph"] == "i" and e["pid"] == pid and e["name"] == "finish"]
            check(len(fin) == 5 and all(e["args"]["outcome"] == "ok" for e in fin),
                  f"threads: loop {pid}'s five tasks finish ok: {len(fin)}")


def test_many(prog):
    n = 20000
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "many.json")
        run([prog, "many", path, str(n)])
        ev = load(path)
        fin = [e for e in ev if e["ph"] == "i" and e["name"] == "finish"]
        check(len(fin) == n + 1, f"many: every task's end is in the trace: {len(fin)} of {n + 1}")
        writes = slices(ev, "trace")
        check(len(writes) >= 2, f"many: the buffer was written out while the loop ran ({len(writes)} times)")
        runs = slices(ev, "run")
        check(len(runs) == 3 * n + 2, f"many: every step is there: {len(runs)} of {3 * n + 2}")


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "lessons" and len(argv) == 3:
        test_lessons(argv[2])
    elif mode == "svg" and len(argv) == 4:
        test_svg(argv[2], argv[3])
    elif mode == "errors" and len(argv) == 4:
        test_errors(argv[2], argv[3])
    elif mode in ("api", "virtual", "threads", "many", "exit") and len(argv) == 3:
        globals()["test_" + mode](argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print(f"trace_test {mode}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
