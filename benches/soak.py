"""Soak: many portal task lifecycles in one process, with what the process holds
sampled as they go (issue 15's soak item; figures for the notes, not timed asserts).

A lifecycle is a new task in a plain event loop (``asyncio.run``, ``trio.run``) that
takes a portal with ``await anywait.ensure_portal()``, then calls sync code that
``await_``s one checkpoint, then finishes; ``--alive`` (100) are alive at once, as a
server handling requests would have them. After a warm-up the process's resident memory,
open file descriptors and threads are read every ``--every`` lifecycles; a leak shows as
a column that keeps growing. As a reference, up to ``--reference`` native lifecycles (a
plain task awaiting the checkpoint) follow in the same loop. Then ``--threads`` threads
each run their own loop (``asyncio.run``) with ``--per-thread`` portal tasks blocked in
``await_`` at once, all woken and finished.

Usage: python benches/soak.py [--lifecycles N] [--every K] [--alive A] [--backend asyncio|trio|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
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


async def lifecycle(checkpoint: Callable[[], Any]) -> None:
    """One portal task's life: ensure_portal(), then sync code awaiting a checkpoint."""
    await anywait.ensure_portal()
    sync_part(checkpoint)


async def native_lifecycle(checkpoint: Callable[[], Any]) -> None:
    """The reference: a plain task awaiting the checkpoint itself."""
    await checkpoint()


Lifecycle = Callable[[Callable[[], Any]], Coroutine[Any, Any, None]]
#: batch(count, lifecycle): ``count`` lifecycles, ``--alive`` at a time.
Batch = Callable[[int, Lifecycle], Awaitable[None]]


def report(
    label: str, done: int, started: float, first: tuple[float, int, int], interval: float
) -> None:
    """One line: lifecycles so far, us per lifecycle overall and over the last ``--every``
    (a rate that keeps falling is a leak of time), holdings and their growth since warm-up."""
    rss, fds, threads = holdings()
    per = (time.perf_counter() - started) / max(done, 1) * 1e6
    print(
        f"{label:8} {done:>9,} lifecycles  {per:6.2f} us each ({interval:6.2f} last)  "
        f"RSS {rss:7.1f} MiB ({rss - first[0]:+6.1f})  fds {fds} ({fds - first[1]:+d})  "
        f"threads {threads} ({threads - first[2]:+d})",
        flush=True,
    )


async def asyncio_soak(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()

    def checkpoint() -> Any:
        return asyncio.sleep(0)

    async def batch(count: int, life: Lifecycle) -> None:
        for start in range(0, count, args.alive):
            alive = min(args.alive, count - start)
            tasks = [loop.create_task(life(checkpoint)) for _ in range(alive)]
            await asyncio.gather(*tasks)  # raises if a lifecycle failed

    await soak("asyncio", batch, args)


async def trio_soak(args: argparse.Namespace) -> None:
    import trio

    async def batch(count: int, life: Lifecycle) -> None:
        for start in range(0, count, args.alive):
            async with trio.open_nursery() as nursery:
                for _ in range(min(args.alive, count - start)):
                    nursery.start_soon(life, trio.lowlevel.checkpoint)

    await soak("trio", batch, args)


async def soak(label: str, batch: Batch, args: argparse.Namespace) -> None:
    """``--warmup`` lifecycles, then ``--lifecycles`` in batches of ``--every``, reported
    after each, then a summary: holdings at start, after warm-up, half-way and at the end;
    then the same number of native lifecycles as a reference, up to ``--reference``."""
    n, every = args.lifecycles, args.every
    start = holdings()
    await batch(args.warmup, lifecycle)
    first = holdings()
    started, done = time.perf_counter(), 0
    half = first
    while done < n:
        t0 = time.perf_counter()
        await batch(every, lifecycle)
        interval = (time.perf_counter() - t0) / every * 1e6
        done += every
        report(label, done, started, first, interval)
        if done <= n // 2:
            half = holdings()
    end = holdings()
    per = (time.perf_counter() - started) / max(done, 1) * 1e6
    print(
        f"{label:8} summary: {done:,} lifecycles after {args.warmup:,} of warm-up, {per:.2f} us "
        f"each; RSS MiB start {start[0]:.1f}, after warm-up {first[0]:.1f}, half-way "
        f"{half[0]:.1f}, end {end[0]:.1f} (second half {end[0] - half[0]:+.1f}); fds "
        f"{start[1]} / {first[1]} / {half[1]} / {end[1]}; threads {start[2]} / {first[2]} / "
        f"{half[2]} / {end[2]}",
        flush=True,
    )
    count = min(n, args.reference)
    if count:
        await batch(min(count, args.warmup), native_lifecycle)
        t0 = time.perf_counter()
        await batch(count, native_lifecycle)
        native = (time.perf_counter() - t0) / count * 1e6
        print(
            f"{label:8} reference: {count:,} native lifecycles (a plain task awaiting the "
            f"checkpoint), {native:.2f} us each; a portal lifecycle is {per / native:.2f}x "
            f"that (+{per - native:.2f} us)",
            flush=True,
        )


def threads_at_once(threads: int, per_thread: int) -> None:
    """Each thread its own loop, ``per_thread`` portal tasks blocked in await_ at once."""
    results: list[int] = []
    lock = threading.Lock()

    async def main() -> None:
        gate = asyncio.Event()
        entered = woke = 0

        async def blocked() -> None:
            nonlocal entered, woke
            await anywait.ensure_portal()
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

    def run_loop() -> None:
        asyncio.run(main())

    workers = [threading.Thread(target=run_loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    after = _settled_holdings(before[2])
    finished = sum(results)
    verdict = "all woke and finished" if finished == threads * per_thread else "NOT ALL FINISHED"
    print(
        f"{threads} threads x {per_thread} blocked portal tasks: {verdict} "
        f"({finished:,} of {threads * per_thread:,}) in {elapsed:.2f} s; RSS "
        f"{before[0]:.1f} -> {after[0]:.1f} MiB, fds {before[1]} -> {after[1]}, "
        f"threads {before[2]} -> {after[2]}",
        flush=True,
    )
    if finished != threads * per_thread:
        raise SystemExit(1)


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
    p.add_argument("--alive", type=int, default=100, help="lifecycles alive at once")
    p.add_argument("--reference", type=int, default=100_000, help="native lifecycles, at most")
    p.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--per-thread", type=int, default=1000)
    args = p.parse_args()
    print(f"Python {sys.version.split()[0]}; anywait {anywait.__file__}", flush=True)
    if args.backend in ("asyncio", "both"):
        asyncio.run(asyncio_soak(args))
    if args.backend in ("trio", "both"):
        import trio

        trio.run(trio_soak, args)
    threads_at_once(args.threads, args.per_thread)


if __name__ == "__main__":
    main()
