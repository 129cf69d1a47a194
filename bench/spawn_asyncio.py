"""W9 with Python asyncio, the peer of bench/w9_spawn.c in bench/spawn_compare.sh:
CONC coroutines each start /bin/true with create_subprocess_exec (stdin, stdout and
stderr on DEVNULL) and await its wait(), until N have run; every exit status must
be 0. The clock runs from before the first start until the last child is reaped.

usage: spawn_asyncio.py [N [CONC [PARENT_MB]]]   (defaults 2000 8 0)
prints: procs asyncio n=N conc=CONC parent_mb=MB wall_s=.. procs_per_s=.. peak_rss_kb=..
"""
import asyncio
import resource
import sys
import time
from asyncio.subprocess import DEVNULL


async def starter(state, n):
    while state["started"] < n:
        state["started"] += 1
        p = await asyncio.create_subprocess_exec("/bin/true", stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        if await p.wait() != 0:
            state["failed"] += 1


async def main(n, conc):
    state = {"started": 0, "failed": 0}
    t0 = time.monotonic()
    await asyncio.gather(*(starter(state, n) for _ in range(conc)))
    wall = time.monotonic() - t0
    if state["failed"]:
        sys.exit(f"spawn_asyncio: {state['failed']} children exited with a status other than 0")
    return wall


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    n, conc, parent_mb = (args + [2000, 8, 0][len(args):])[:3]
    ballast = bytearray(b"\x01" * (parent_mb << 20)) if parent_mb else None
    wall = asyncio.run(main(n, conc))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"procs asyncio n={n} conc={conc} parent_mb={parent_mb} wall_s={wall:.6g} "
          f"procs_per_s={n / wall:.1f} peak_rss_kb={rss}")
