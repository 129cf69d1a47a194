#!/usr/bin/env python3
"""check_layers.py — the arrows between src/'s layers run only downward.

Each folder of src/ is a layer (docs/architecture.md); a source or header file may
include the internal headers of its own layer and of the layers below it, never of one
above. Run by `make test` (ctest source_layers):

    scripts/check_layers.py SRC_DIR

Exits 1 naming each file:line that includes upward, or a folder this script does not
know (so that a new layer is placed in the order on purpose).
"""
import pathlib
import re
import sys

# Bottom to top; src/run.c is the top.
ORDER = ["util", "ctx", "io", "core", "combine", "sync", "exec", "net", "tls", "fs", "proc", "debug"]
TOP = len(ORDER)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(rel: pathlib.PurePath):
    if len(rel.parts) == 1:
        return TOP if rel.name == "run.c" else None
    return ORDER.index(rel.parts[0]) if rel.parts[0] in ORDER else None


def main() -> int:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    errors, checked = [], 0
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".c", ".h", ".S"):
            continue
        rel = path.relative_to(src)
        own = layer_of(rel)
        if own is None:
            errors.append(f"{path}: not in a known layer ({', '.join(ORDER)} or run.c); add it to ORDER")
            continue
        checked += 1
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = pathlib.PurePath(m.group(1))
            if len(target.parts) == 1:  # same folder ("ctx.h" from ctx/)
                continue
            if target.parts[0] == "weft" or target.name == "weft.h":
                continue  # the public header
            tl = layer_of(target)
            if tl is None:
                errors.append(f"{path}:{lineno}: includes {target}, which is in no known layer")
            elif tl > own:
                errors.append(f"{path}:{lineno}: {rel.parts[0] if len(rel.parts) > 1 else 'run'} includes "
                              f"{target} from the higher layer {target.parts[0]}: arrows run only downward")
    for e in errors:
        print(e)
    print(f"check_layers: {checked} files, {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
