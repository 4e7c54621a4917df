"""bench_scale.py's child: one fresh interpreter blocks N tasks at once, wakes them all,
and prints one JSON line of what that cost (memory from /proc, times from perf_counter).

    python benches/_scale_child.py BACKEND IMPL N WARMUP

IMPL is ``native`` (tasks blocked in ``await event.wait()``), ``anywait`` or
``greenback`` (tasks that take a portal with ``await ensure_portal()``, then call a sync
function that blocks in ``await_(event.wait())``). Each runs in its own process, so no
resident memory is shared between them and only the greenback child has greenlet in it:
anywait bridges every step through greenlet once greenlet is imported, and that is a
different measurement. For the same reason this file imports neither anywait nor
greenback nor Trio at module level, nor any of bench_portal's helpers (which import
anywait); bench_portal's own RSS child, moreover, exits without waking its tasks.

The process exits non-zero, saying what went wrong, if a task fails or if not every task
blocked, woke and finished within ``--timeout``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

#: How long a phase (all blocked, all finished) may take before the child gives up.
PHASE_TIMEOUT_S = 900.0


def proc_status() -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and VmSize of this process, in KiB."""
    wanted = ("VmRSS", "VmHWM", "VmSize")
    out: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in wanted:
                out[key] = int(rest.split()[0])
    return out


def reset_peak() -> bool:
    """Set VmHWM back to the current RSS (Linux 4.0+), so that the peak read later is the
    peak of the measured phases and not of interpreter start-up or the warm-up."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def settled_rss() -> int:
    """VmRSS once every finished task is gone and a collection has run: what the process
    keeps after the tasks (the allocators' free lists and pools included)."""
    gc.collect()
    return proc_status()["VmRSS"]


def map_count() -> int:
    """Memory mappings of this process (vm.max_map_count caps them: 65530 by default)."""
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


@dataclass
class Counts:
    blocked: int = 0
    done: int = 0
    errors: list[BaseException] = field(default_factory=list)


Task = Callable[[Any], Awaitable[None]]


def make_task(impl: str, counts: Counts) -> Task:
    """The task body each of the N tasks runs, given the event they all wait for."""
    if impl == "native":

        async def native(event: Any) -> None:
            counts.blocked += 1
            await event.wait()

        body: Task = native
    else:
        if impl not in ("anywait", "greenback"):
            raise SystemExit(f"unknown implementation {impl!r}")
        lib = importlib.import_module(impl)
        ensure_portal, await_ = lib.ensure_portal, lib.await_

        def sync_wait(event: Any) -> None:
            counts.blocked += 1
            await_(event.wait())

        async def in_portal(event: Any) -> None:
            await ensure_portal()
            sync_wait(event)

        body = in_portal

    async def task(event: Any) -> None:
        try:
            await body(event)
        except BaseException as exc:
            counts.errors.append(exc)
            raise
        counts.done += 1

    return task


@dataclass(frozen=True)
class Loop:
    """What the scenario needs of an event loop."""

    checkpoint: Callable[[], Awaitable[Any]]
    event: Callable[[], Any]


async def until(counts: Counts, key: str, target: int, loop: Loop) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while getattr(counts, key) < target:
        if counts.errors:
            raise RuntimeError(f"a task failed ({counts})") from counts.errors[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {target} {key} tasks: {counts}")
        await loop.checkpoint()


async def scenario(
    impl: str, n: int, warmup: int, loop: Loop, spawn: Callable[[Task, Any], None]
) -> dict[str, Any]:
    counts = Counts()
    task = make_task(impl, counts)

    # A few tasks through the whole path first, so that code objects, type caches and
    # first-use allocations (anywait's stack pool, greenlet's thread state) are not
    # charged to the measured tasks.
    event = loop.event()
    for _ in range(warmup):
        spawn(task, event)
    await until(counts, "blocked", warmup, loop)
    event.set()
    await until(counts, "done", warmup, loop)

    counts.blocked = counts.done = 0
    event = loop.event()
    gc.collect()
    # The collector off while the tasks are made and woken: a collection traversing N
    # tasks would be charged to whichever phase it landed in.
    gc.disable()
    before, maps_before = proc_status(), map_count()
    peak_reset = reset_peak()

    t0 = time.perf_counter()
    for _ in range(n):
        spawn(task, event)
    await until(counts, "blocked", n, loop)
    t1 = time.perf_counter()
    blocked, maps_blocked = proc_status(), map_count()

    t2 = time.perf_counter()
    event.set()
    await until(counts, "done", n, loop)
    t3 = time.perf_counter()
    finished_peak = proc_status()["VmHWM"]

    gc.enable()
    return {
        "n": n,
        "blocked": counts.blocked,
        "done": counts.done,
        "create_block_s": t1 - t0,
        "wake_finish_s": t3 - t2,
        "rss_before_kib": before["VmRSS"],
        "rss_blocked_kib": blocked["VmRSS"],
        "peak_kib": finished_peak,
        "peak_reset": peak_reset,
        "vmsize_before_kib": before["VmSize"],
        "vmsize_blocked_kib": blocked["VmSize"],
        "maps_before": maps_before,
        "maps_blocked": maps_blocked,
    }


def run_asyncio(impl: str, n: int, warmup: int) -> dict[str, Any]:
    loop = Loop(lambda: asyncio.sleep(0), asyncio.Event)

    async def main() -> dict[str, Any]:
        tasks: list[asyncio.Task[None]] = []
        create_task = asyncio.get_running_loop().create_task

        def spawn(task: Task, event: Any) -> None:
            tasks.append(create_task(task(event)))  # type: ignore[arg-type]

        result = await scenario(impl, n, warmup, loop, spawn)
        await asyncio.gather(*tasks)  # every task finished without an exception
        tasks.clear()
        return result | {"rss_finished_kib": settled_rss()}

    return asyncio.run(main())


def run_trio(impl: str, n: int, warmup: int) -> dict[str, Any]:
    import trio

    loop = Loop(trio.lowlevel.checkpoint, trio.Event)

    async def main() -> dict[str, Any]:
        async with trio.open_nursery() as nursery:
            result = await scenario(impl, n, warmup, loop, nursery.start_soon)
        return result | {"rss_finished_kib": settled_rss()}

    result: dict[str, Any] = trio.run(main)
    return result


def main() -> None:
    backend, impl, n, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    run = {"asyncio": run_asyncio, "trio": run_trio}[backend]
    result = run(impl, n, warmup)
    if result["blocked"] != n or result["done"] != n:
        raise SystemExit(f"not every task blocked and finished: {result}")
    result |= {
        "backend": backend,
        "impl": impl,
        "python": sys.version.split()[0],
        "greenlet_imported": "greenlet" in sys.modules,
        "anywait_imported": "anywait" in sys.modules,
        "trio_imported": "trio" in sys.modules,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
