"""Sync-first calls: ``await_(aw)`` from sync code with no running loop, on a persistent
loop (``anywait.start_loop``), beside the ways sync code reaches asyncio without it.

Rows, each ``aw`` being ``noop()`` and ``asyncio.sleep(0)``:

* anywait: ``await_(aw)`` on the persistent loop;
* ``Runner.run``: one long-lived ``asyncio.Runner``, ``runner.run(aw)`` per call (the twin);
* ``run_until_complete``: the same loop driven by ``loop.run_until_complete(aw)``;
* ``asyncio.run``: a new loop per call;
* AnyIO's blocking portal (a loop in a thread), ``portal.call``, when AnyIO is installed;
* asgiref's ``async_to_sync`` (Django's way), when asgiref is installed;
* floor: what running ``aw`` as a task of a loop costs at least, with the loop already
  iterating: ``create_task`` and the two iterations (its step, its done callback) that
  any design pays, driven by asyncio's private ``_run_once``.

Usage: python benches/bench_sync_first.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _harness as h
import anywait

BASELINE = "anywait"


async def noop() -> None:
    pass


AWAITABLES: dict[str, Callable[[], Any]] = {
    "noop()": noop,
    "asyncio.sleep(0)": lambda: asyncio.sleep(0),
}


def ours(make: Callable[[], Any]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        with anywait.persistent_loop():
            await_ = anywait.await_

            def run(n: int) -> None:
                for _ in range(n):
                    await_(make())

            yield run

    return factory


def runner_run(make: Callable[[], Any]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        with asyncio.Runner() as runner:

            def run(n: int) -> None:
                for _ in range(n):
                    runner.run(make())

            yield run

    return factory


def run_until_complete(make: Callable[[], Any]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        loop = asyncio.new_event_loop()
        try:

            def run(n: int) -> None:
                for _ in range(n):
                    loop.run_until_complete(make())

            yield run
        finally:
            loop.close()

    return factory


def asyncio_run(make: Callable[[], Any]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        def run(n: int) -> None:
            for _ in range(n):
                asyncio.run(make())

        yield run

    return factory


def anyio_portal(make: Callable[[], Any]) -> h.RunnerFactory | None:
    try:
        from anyio.from_thread import start_blocking_portal
    except ImportError:
        return None

    async def call() -> None:
        await make()

    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        with start_blocking_portal() as portal:

            def run(n: int) -> None:
                for _ in range(n):
                    portal.call(call)

            yield run

    return factory


def asgiref_call(make: Callable[[], Any]) -> h.RunnerFactory | None:
    try:
        from asgiref.sync import async_to_sync
    except ImportError:
        return None

    async def call() -> None:
        await make()

    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        sync_call = async_to_sync(call)

        def run(n: int) -> None:
            for _ in range(n):
                sync_call()

        yield run

    return factory


def floor(make: Callable[[], Any]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        loop = asyncio.new_event_loop()
        try:

            def run(n: int) -> None:
                run_once = loop._run_once  # type: ignore[attr-defined]
                for _ in range(n):
                    task = loop.create_task(make())
                    task.add_done_callback(_ignore)
                    while not task.done():
                        run_once()
                    run_once()  # the done callback's iteration

            yield run
        finally:
            loop.close()

    return factory


def _ignore(_: Any) -> None:
    pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: few rounds, short samples")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--json", metavar="FILE", help="also write results and raw samples to FILE")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    ms = 5.0 if args.quick else 40.0
    cases: list[h.Case] = []
    for label, make in AWAITABLES.items():
        bench = f"await_({label}) from sync code"
        cases.append(
            h.timed_case(bench, "anywait", ours(make), sample_ms=ms, note="persistent loop")
        )
        cases.append(
            h.timed_case(
                bench,
                "Runner.run",
                runner_run(make),
                sample_ms=ms,
                note="one Runner, run() per call",
            )
        )
        cases.append(
            h.timed_case(bench, "run_until_complete", run_until_complete(make), sample_ms=ms)
        )
        cases.append(
            h.timed_case(
                bench, "asyncio.run", asyncio_run(make), sample_ms=ms, note="a new loop per call"
            )
        )
        portal = anyio_portal(make)
        cases.append(
            h.timed_case(
                bench,
                "anyio portal",
                portal,
                sample_ms=ms,
                note="loop in a thread, portal.call",
                skip=None if portal else "anyio not installed",
            )
        )
        to_sync = asgiref_call(make)
        cases.append(
            h.timed_case(
                bench,
                "asgiref",
                to_sync,
                sample_ms=ms,
                note="async_to_sync: a loop in a worker thread",
                skip=None if to_sync else "asgiref not installed",
            )
        )
        cases.append(
            h.timed_case(
                bench,
                "floor",
                floor(make),
                sample_ms=ms,
                note="create_task + its two loop iterations, no run_forever",
            )
        )
    print(f"Python {sys.version.split()[0]}; rounds: {rounds} x ~{ms:.0f} ms")
    samples = h.run_rounds(cases, rounds, label="timing")
    rows = h.summarize(cases, samples, baseline=BASELINE)
    h.print_table(rows, baseline=BASELINE)
    if args.json:
        h.write_json(args.json, {"rounds": rounds}, rows)


if __name__ == "__main__":
    main()
