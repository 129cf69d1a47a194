#!/usr/bin/env python3
"""w10_files.py — w10_files.c's two workloads in asyncio, for comparison: asyncio has no
file API, so each call is asyncio.to_thread around os.pread and Path.read_bytes (what
aiofiles does too, with more layers), beside the same calls made blocking in the tasks.

    python3 bench/w10_files.py [SIZE_MIB [TASKS [SMALL [DIR]]]]   (defaults 64 4 20000 /tmp)

Prints lines in w10_files' format: files <workload> <way> ... us_per_call=..
"""
import asyncio
import os
import pathlib
import statistics
import sys
import time

CHUNK = 64 * 1024
PASSES = 16
ROUNDS = 3
SMALL_SIZE = 4096


async def pread_task(fd, k, tasks, chunks, threaded):
    for _ in range(PASSES):
        for c in range(k, chunks, tasks):
            if threaded:
                data = await asyncio.to_thread(os.pread, fd, CHUNK, c * CHUNK)
            else:
                data = os.pread(fd, CHUNK, c * CHUNK)
            assert len(data) == CHUNK


async def read_all_task(path, k, tasks, calls, threaded):
    for _ in range(k, calls, tasks):
        if threaded:
            data = await asyncio.to_thread(path.read_bytes)
        else:
            data = path.read_bytes()
        assert len(data) == SMALL_SIZE


async def timed(make, tasks):
    t0 = time.perf_counter()
    await asyncio.gather(*(make(k) for k in range(tasks)))
    return time.perf_counter() - t0


async def main():
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    small = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    folder = sys.argv[4] if len(sys.argv) > 4 else "/tmp"
    big = pathlib.Path(folder, f"w10-files-big-py-{os.getpid()}")
    little = pathlib.Path(folder, f"w10-files-small-py-{os.getpid()}")
    block = bytes((i * 31 + 7) & 0xFF for i in range(1 << 20))
    with open(big, "wb") as f:
        for _ in range(size_mib):
            f.write(block)
    little.write_bytes(block[:SMALL_SIZE])
    fd = os.open(big, os.O_RDONLY)
    chunks = (size_mib << 20) // CHUNK
    try:
        await timed(lambda k: read_all_task(little, k, tasks, 64, True), tasks)  # warm-up
        await timed(lambda k: pread_task(fd, k, tasks, chunks, False), tasks)
        us = {}
        for _ in range(ROUNDS):
            for threaded in (True, False):
                way = "to_thread" if threaded else "blocking"
                wall = await timed(lambda k: pread_task(fd, k, tasks, chunks, threaded), tasks)
                us.setdefault(("pread", way), []).append(wall / (chunks * PASSES) * 1e6)
                wall = await timed(lambda k: read_all_task(little, k, tasks, small, threaded), tasks)
                us.setdefault(("read_all", way), []).append(wall / small * 1e6)
        for (work, way), values in us.items():
            m = statistics.median(values)
            print(f"files {work} asyncio-{way} tasks={tasks} calls_per_s={1e6 / m:.0f} us_per_call={m:.2f}")
        for work in ("pread", "read_all"):
            t = statistics.median(us[(work, "to_thread")])
            b = statistics.median(us[(work, "blocking")])
            print(f"files {work} overhead asyncio to_thread/blocking={t / b:.2f}x (+{t - b:.2f} us per call)")
    finally:
        os.close(fd)
        big.unlink()
        little.unlink()


asyncio.run(main())
