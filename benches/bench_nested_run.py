"""Nested ``asyncio.run`` from sync code in a running task (``anywait.install()``), beside
nest_asyncio, and what each costs the loop's *other* tasks.

Both patch asyncio process-wide (nest_asyncio for good: it swaps in the pure-Python
Task), so every configuration runs in a child process of its own, serving samples over
a pipe; rounds interleave them (ABBA) as for in-process rows.

Rows:

* nested ``asyncio.run(noop())``, called by a sync function in a task: anywait
  (install) and nest_asyncio (apply); the floor is what an async caller pays for the
  same work natively, ``await loop.create_task(noop())`` (a new task and its wake-up);
* per checkpoint of a checkpoint-heavy workload (100 tasks, each looping on
  ``await asyncio.sleep(0)``, none calling sync code): stock asyncio, after
  ``anywait.install()`` (every task has a portal), after ``nest_asyncio.apply()``;
* the floor of what a portal adds to each step of a task: one fiber switch round trip
  (a portal runs every step on a fiber, since it cannot know beforehand which step will
  call sync code that waits). anywait's row minus stock's is about this.

Usage: python benches/bench_nested_run.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _harness as h

BASELINE = "anywait"
CONFIGS = ("stock", "anywait", "nest_asyncio")
TASKS = 100  # the checkpoint workload's task count


async def noop() -> None:
    pass


def _library_call() -> None:
    """What a library does from sync code: run a coroutine to completion."""
    asyncio.run(noop())


async def _nested_runs(n: int) -> int:
    await asyncio.sleep(0)  # a task that existed before install() gets its portal here
    t0 = time.perf_counter_ns()
    for _ in range(n):
        _library_call()
    return time.perf_counter_ns() - t0


async def _awaited_tasks(n: int) -> int:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await loop.create_task(noop())
    return time.perf_counter_ns() - t0


async def _checkpoints(n: int) -> int:
    """Steps only: the tasks are created, and blocked on an event, before the clock starts."""
    per_task = max(1, n // TASKS)
    start = asyncio.Event()

    async def worker() -> None:
        await start.wait()
        for _ in range(per_task):
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(worker()) for _ in range(TASKS)]
    await asyncio.sleep(0)
    t0 = time.perf_counter_ns()
    start.set()
    await asyncio.gather(*tasks)
    return (time.perf_counter_ns() - t0) * n // (per_task * TASKS)


async def _switches(n: int) -> int:
    from anywait.lowlevel import Fiber, suspend

    def body() -> None:
        while True:
            suspend()

    fiber = Fiber(body)
    fiber.switch()
    switch = fiber.switch
    t0 = time.perf_counter_ns()
    for _ in range(n):
        switch()
    elapsed = time.perf_counter_ns() - t0
    fiber.close()
    return elapsed


MEASURES: dict[str, Callable[[int], Coroutine[Any, Any, int]]] = {
    "nested": _nested_runs,
    "awaited": _awaited_tasks,
    "checkpoints": _checkpoints,
    "switch": _switches,
}


def serve(config: str) -> None:
    """``--serve CONFIG``: patch asyncio as CONFIG does, then answer ``[measure, n]``
    requests (one JSON line each) with ``{"ns": ...}`` until stdin ends."""
    if config == "anywait":
        import anywait

        anywait.install()
    elif config == "nest_asyncio":
        import nest_asyncio

        nest_asyncio.apply()
    for line in sys.stdin:
        measure, n = json.loads(line)
        try:
            reply: dict[str, Any] = {"ns": asyncio.run(MEASURES[measure](n))}
        except Exception:
            reply = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class Child:
    """One configuration's process (started on first use)."""

    def __init__(self, config: str) -> None:
        self.config = config
        self.proc: subprocess.Popen[str] | None = None

    def measure(self, measure: str) -> Callable[[int], int]:
        return lambda n: self._call([measure, n])

    def _call(self, request: list[Any]) -> int:
        if self.proc is None:
            cmd = [sys.executable, __file__, "--serve", self.config]
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.config} child died (exit status {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.config} child, {request}:\n{reply['error']}")
        return int(reply["ns"])

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


class ChildSampler(h._TimedSampler):
    """The harness's sampler (calibration, warm-up), timed by the child itself."""

    def _time(self, n: int) -> int:
        with self.factory() as measure:
            elapsed: Any = measure(n)
            return int(elapsed)


def child_case(
    bench: str, impl: str, child: Child | None, measure: str, ms: float, **kw: Any
) -> h.Case:
    if child is None:
        return h.Case(bench, impl, "ns", None, skip=kw.pop("skip"), **kw)
    info: dict[str, Any] = {}

    @contextlib.contextmanager
    def factory() -> Iterator[Callable[[int], int]]:
        yield child.measure(measure)

    sampler = ChildSampler(factory, int(ms * 1e6), info)  # type: ignore[arg-type]
    return h.Case(bench, impl, "ns", sampler, info=info, **kw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: few rounds, short samples")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--json", metavar="FILE", help="also write results and raw samples to FILE")
    p.add_argument("--serve", metavar="CONFIG", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return
    rounds = args.rounds or (3 if args.quick else 15)
    ms = 5.0 if args.quick else 40.0
    have_nest = h.module_version("nest_asyncio") is not None
    children = {c: Child(c) for c in CONFIGS if c != "nest_asyncio" or have_nest}
    nest = children.get("nest_asyncio")
    skip_nest = None if nest else "nest_asyncio not installed"
    nested = "nested asyncio.run(noop()) from sync code in a task"
    per_checkpoint = f"per checkpoint, {TASKS} tasks on asyncio.sleep(0)"
    cases = [
        child_case(nested, "anywait", children["anywait"], "nested", ms, note="install()"),
        child_case(nested, "nest_asyncio", nest, "nested", ms, note="apply()", skip=skip_nest),
        child_case(
            nested,
            "floor",
            children["stock"],
            "awaited",
            ms,
            note="async caller: await loop.create_task(noop())",
        ),
        child_case(
            per_checkpoint, "anywait", children["anywait"], "checkpoints", ms, note="install()"
        ),
        child_case(per_checkpoint, "stock asyncio", children["stock"], "checkpoints", ms),
        child_case(
            per_checkpoint, "nest_asyncio", nest, "checkpoints", ms, note="apply()", skip=skip_nest
        ),
        child_case(
            "portal step floor: one fiber switch round trip",
            "anywait",
            children["anywait"],
            "switch",
            ms,
            note="lowlevel.Fiber.switch + suspend",
        ),
    ]
    print(
        f"Python {sys.version.split()[0]}; rounds: {rounds} x ~{ms:.0f} ms; "
        "each configuration in a child process"
    )
    try:
        samples = h.run_rounds(cases, rounds, label="timing")
    finally:
        for child in children.values():
            child.close()
    rows = h.summarize(cases, samples, baseline=BASELINE)
    h.print_table(rows, baseline=BASELINE)
    if args.json:
        h.write_json(args.json, {"rounds": rounds}, rows)


if __name__ == "__main__":
    main()
