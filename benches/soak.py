"""Soak: many portal task lifecycles in one process, with what the process holds
sampled as they go (issue 15's soak item; figures for the notes, not timed asserts).

A lifecycle is a task created with a portal, whose sync code ``await_``s one checkpoint,
then finishes. After a warm-up the process's resident memory, open file descriptors and
threads are read every ``--every`` lifecycles; a leak shows as a column that keeps
growing. Then ``--threads`` threads each run their own loop with ``--per-thread`` portal
tasks blocked in ``await_`` at once, all woken and finished.

Usage: python benches/soak.py [--lifecycles N] [--every K] [--backend asyncio|trio|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anywait


def holdings() -> tuple[float, int, int]:
    """(RSS in MiB, open fds, OS threads) of this process, from /proc."""
    rss_kib = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return rss_kib / 1024, len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))


def sync_part(checkpoint: Callable[[], Any]) -> None:
    anywait.await_(checkpoint())


def report(label: str, done: int, started: float, first: tuple[float, int, int]) -> None:
    rss, fds, threads = holdings()
    per = (time.perf_counter() - started) / max(done, 1) * 1e6
    print(
        f"{label:8} {done:>9,} lifecycles  {per:6.2f} us each  RSS {rss:7.1f} MiB "
        f"({rss - first[0]:+6.1f})  fds {fds} ({fds - first[1]:+d})  "
        f"threads {threads} ({threads - first[2]:+d})",
        flush=True,
    )


async def asyncio_soak(n: int, every: int, warmup: int) -> None:
    loop = asyncio.get_running_loop()

    async def lifecycle() -> None:
        sync_part(lambda: asyncio.sleep(0))

    async def batch(count: int) -> None:
        # A bounded number alive at once, as a server handling requests would.
        pending = [loop.create_task(lifecycle()) for _ in range(min(count, 100))]
        made = len(pending)
        while pending:
            await asyncio.wait(pending)
            pending = [loop.create_task(lifecycle()) for _ in range(min(count - made, 100))]
            made += len(pending)

    await soak("asyncio", batch, n, every, warmup)


async def trio_soak(n: int, every: int, warmup: int) -> None:
    import trio

    async def lifecycle() -> None:
        sync_part(lambda: trio.sleep(0))

    async def batch(count: int) -> None:
        for start in range(0, count, 100):
            async with trio.open_nursery() as nursery:
                for _ in range(min(100, count - start)):
                    nursery.start_soon(lifecycle)

    await soak("trio", batch, n, every, warmup)


async def soak(
    label: str, batch: Callable[[int], Awaitable[None]], n: int, every: int, warmup: int
) -> None:
    """``warmup`` lifecycles, then ``n`` in batches of ``every``, reported after each."""
    await batch(warmup)
    first = holdings()
    started, done = time.perf_counter(), 0
    while done < n:
        await batch(every)
        done += every
        report(label, done, started, first)


def threads_at_once(threads: int, per_thread: int) -> None:
    """Each thread its own loop, ``per_thread`` portal tasks blocked in await_ at once."""
    results: list[int] = []
    lock = threading.Lock()

    async def main() -> None:
        gate = asyncio.Event()
        entered = woke = 0

        async def blocked() -> None:
            nonlocal entered, woke
            entered += 1  # then blocks in await_ within this same step
            sync_part(gate.wait)
            woke += 1

        tasks = [asyncio.get_running_loop().create_task(blocked()) for _ in range(per_thread)]
        while entered < per_thread:  # every task has taken its first step: all blocked
            await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)
        with lock:
            results.append(woke)

    before = holdings()
    started = time.perf_counter()
    workers = [threading.Thread(target=anywait.run, args=(main,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    after = _settled_holdings(before[2])
    print(
        f"{threads} threads x {per_thread} blocked portal tasks: all woke and finished "
        f"({sum(results):,} of {threads * per_thread:,}) in {elapsed:.2f} s; "
        f"fds {before[1]} -> {after[1]}, threads {before[2]} -> {after[2]}",
        flush=True,
    )


def _settled_holdings(threads_before: int) -> tuple[float, int, int]:
    """holdings() once the joined threads' OS threads are gone (join returns when the
    Python thread is done; the kernel may take a moment more), or after a second."""
    deadline = time.monotonic() + 1
    while (now := holdings())[2] > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    return now


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lifecycles", type=int, default=1_000_000)
    p.add_argument("--every", type=int, default=100_000)
    p.add_argument("--warmup", type=int, default=20_000)
    p.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--per-thread", type=int, default=1000)
    args = p.parse_args()
    print(f"Python {sys.version.split()[0]}; anywait {anywait.__file__}", flush=True)
    if args.backend in ("asyncio", "both"):
        anywait.run(asyncio_soak, args.lifecycles, args.every, args.warmup)
    if args.backend in ("trio", "both"):
        anywait.run(trio_soak, args.lifecycles, args.every, args.warmup, backend="trio")
    threads_at_once(args.threads, args.per_thread)


if __name__ == "__main__":
    main()
