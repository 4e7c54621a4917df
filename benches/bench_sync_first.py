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

On Trio (when installed), ``await_(trio.sleep(0))`` on ``start_loop(backend="trio")``
beside ``trio.from_thread.run`` into one long-lived ``trio.run`` on a thread (the twin),
``trio.run`` per call, and a floor: inside one run, a new system task per call and
waiting for it (what a call is, with neither the fiber switches nor a thread).

Usage: python benches/bench_sync_first.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
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


def trio_ours() -> h.RunnerFactory:
    import trio

    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        with anywait.persistent_loop(backend="trio"):
            await_ = anywait.await_
            sleep = trio.sleep

            def run(n: int) -> None:
                for _ in range(n):
                    await_(sleep(0))

            yield run

    return factory


def trio_from_thread() -> h.RunnerFactory:
    import threading

    import trio

    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def host() -> None:
            box["token"], box["stop"] = trio.lowlevel.current_trio_token(), trio.Event()
            ready.set()
            await box["stop"].wait()

        thread = threading.Thread(target=trio.run, args=(host,))
        thread.start()
        ready.wait()
        token = box["token"]
        try:

            def run(n: int) -> None:
                for _ in range(n):
                    trio.from_thread.run(trio.sleep, 0, trio_token=token)

            yield run
        finally:
            trio.from_thread.run_sync(box["stop"].set, trio_token=token)
            thread.join()

    return factory


def trio_run_per_call() -> h.RunnerFactory:
    import trio

    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        def run(n: int) -> None:
            for _ in range(n):
                trio.run(trio.sleep, 0)

        yield run

    return factory


def trio_floor() -> h.RunnerFactory:
    """The runner is a persistent Trio run of anywait's used only to enter one async
    function per sample: the n calls inside it are timed together, each a system task
    spawned and waited for, all in one run."""
    import trio

    async def call(done: Any) -> None:
        await trio.sleep(0)
        done.set()

    async def calls(n: int) -> None:
        for _ in range(n):
            done = trio.Event()
            trio.lowlevel.spawn_system_task(call, done)
            await done.wait()

    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        with anywait.persistent_loop(backend="trio"):

            def run(n: int) -> None:
                anywait.await_(calls(n))

            yield run

    return factory


def trio_cases(ms: float) -> list[h.Case]:
    bench = "await_(trio.sleep(0)) from sync code"
    if importlib.util.find_spec("trio") is None:
        return [h.timed_case(bench, "anywait", None, sample_ms=ms, skip="trio not installed")]
    return [
        h.timed_case(bench, "anywait", trio_ours(), sample_ms=ms, note="persistent trio.run"),
        h.timed_case(
            bench,
            "from_thread.run",
            trio_from_thread(),
            sample_ms=ms,
            note="trio.run in a thread, from_thread.run per call",
        ),
        h.timed_case(
            bench, "trio.run", trio_run_per_call(), sample_ms=ms, note="a new run per call"
        ),
        h.timed_case(
            bench,
            "floor",
            trio_floor(),
            sample_ms=ms,
            note="inside one run: spawn a system task, wait for it",
        ),
    ]


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
    cases += trio_cases(ms)
    print(f"Python {sys.version.split()[0]}; rounds: {rounds} x ~{ms:.0f} ms")
    samples = h.run_rounds(cases, rounds, label="timing")
    rows = h.summarize(cases, samples, baseline=BASELINE)
    h.print_table(rows, baseline=BASELINE)
    if args.json:
        h.write_json(args.json, {"rounds": rounds}, rows)


if __name__ == "__main__":
    main()
