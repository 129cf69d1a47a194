#!/usr/bin/env python3
"""check_wait_warning.py — the suspension points are declared WEFT_WAIT: a program
that ignores weft_sleep's result does not compile with -Werror, and compiles with
WEFT_NO_WAIT_WARNINGS defined.

    check_wait_warning.py CC INCLUDE_DIR
"""
import os
import subprocess
import sys
import tempfile

PROGRAM = """#include <weft.h>
static void *f(void *arg) { weft_sleep(1); return arg; }
int main(void) { return weft_run(f, 0, 0) == 0 ? 0 : 1; }
"""


def compiles(cc, include, extra):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "ignores.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        cmd = [cc, "-std=c11", "-Wall", "-Werror", "-c", "-o", os.path.join(tmp, "ignores.o"), "-I", include, *extra, src]
        return subprocess.run(cmd, capture_output=True, text=True)


def main():
    cc, include = sys.argv[1], sys.argv[2]
    warned = compiles(cc, include, [])
    if warned.returncode == 0 or "weft_sleep" not in warned.stderr:
        print("an ignored weft_sleep result compiled without a warning:\n" + warned.stderr)
        return 1
    quiet = compiles(cc, include, ["-DWEFT_NO_WAIT_WARNINGS"])
    if quiet.returncode != 0:
        print("WEFT_NO_WAIT_WARNINGS did not silence it:\n" + quiet.stderr)
        return 1
    print("check_wait_warning: an ignored suspension point warns; WEFT_NO_WAIT_WARNINGS silences it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
