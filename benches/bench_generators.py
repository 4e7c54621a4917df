"""Stackful generators (``@anywait.generator`` + ``yield_``) against their peers, in one run.

    python benches/bench_generators.py             # full run (15 rounds)
    python benches/bench_generators.py --quick     # a smoke run

Rows:

* walk 5 frames deep, per item -- a recursive walk whose items come from the fifth frame
  down: anywait (plain functions, ``yield_`` at the bottom), native generators with
  ``yield from`` at every level (the floor: what the interpreter does natively), a
  greenlet-based generator (the usual few lines), and a thread feeding a ``queue.Queue``.
* __anext__, item from 3 sync frames deep -- ``async for`` over an
  ``@anywait.async_generator`` whose ``yield_`` is 3 sync frames down, against a native
  async generator yielding the same items (the floor), on one asyncio loop.
* RSS per suspended generator -- a fresh interpreter makes N generators, each suspended
  5 frames deep; resident-set growth / N.

The table runs twice, in two processes: without greenlet imported (its row absent), then
with greenlet imported (anywait's switch path checks for greenlet once it is loaded).
Read the ratio column: the machine is shared, and the ratio is taken round by round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import os
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

BASELINE = "anywait"
DEPTH = 5
NO_GREENLET = "greenlet not installed"


# --- the walks: n items from DEPTH frames down ------------------------------------------


def native_walk(n: int, depth: int = DEPTH) -> Generator[int, None, None]:
    if depth == 1:
        yield from range(n)  # C-level delegation: the cheapest possible bottom frame
    else:
        yield from native_walk(n, depth - 1)


def _stackful_level(n: int, depth: int, emit: Callable[[int], Any]) -> None:
    if depth == 1:
        for i in range(n):
            emit(i)
    else:
        _stackful_level(n, depth - 1, emit)


def anywait_walk(n: int) -> Iterator[int]:
    import anywait

    return anywait.generator(_stackful_level)(n, DEPTH, anywait.yield_)  # type: ignore[no-any-return]


def greenlet_walk(n: int) -> Iterator[int]:
    import greenlet

    consumer = greenlet.getcurrent()
    producer = greenlet.greenlet(lambda: _stackful_level(n, DEPTH, consumer.switch))
    while True:
        item = producer.switch()
        if producer.dead:
            return
        yield item


_DONE = object()


def thread_walk(n: int) -> Iterator[int]:
    items: queue.Queue[Any] = queue.Queue(maxsize=64)
    thread = threading.Thread(
        target=lambda: (_stackful_level(n, DEPTH, items.put), items.put(_DONE))
    )
    thread.start()
    try:
        while (item := items.get()) is not _DONE:
            yield item
    finally:
        thread.join()


async def native_agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def _three_frames(n: int, depth: int = 3) -> None:
    if depth == 1:
        from anywait import yield_

        for i in range(n):
            yield_(i)
    else:
        _three_frames(n, depth - 1)


def anywait_agen(n: int) -> AsyncIterator[int]:
    import anywait

    return anywait.async_generator(_three_frames)(n)  # type: ignore[no-any-return]


def agen_case(agen: Callable[[int], AsyncIterator[int]]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        loop = asyncio.new_event_loop()

        async def consume(n: int) -> None:
            async for _ in agen(n):
                pass

        def run(n: int) -> None:
            loop.run_until_complete(consume(n))

        try:
            yield run
        finally:
            loop.close()

    return factory


def walk_case(walk: Callable[[int], Iterator[int]]) -> h.RunnerFactory:
    @contextlib.contextmanager
    def factory() -> Iterator[h.Runner]:
        def run(n: int) -> None:
            for _ in walk(n):
                pass

        yield run

    return factory


# --- RSS per suspended generator (child process) ----------------------------------------


def _statm_resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def rss_child(impl: str, count: int) -> None:
    """Prints the bytes per suspended generator as JSON and exits without unwinding."""
    import gc
    import json

    makers = {"anywait": anywait_walk, "native": native_walk, "greenlet": greenlet_walk}
    make = makers[impl]
    warm = make(2)
    next(warm)
    del warm
    gens: list[Any] = [None] * count
    gc.collect()
    gc.disable()
    before = _statm_resident()
    for i in range(count):
        g = make(2)
        next(g)
        gens[i] = g
    after = _statm_resident()
    print(json.dumps({"bytes": (after - before) / count}), flush=True)
    os._exit(0)


def rss_case(impl: str, count: int, skip: str | None) -> h.Case:
    def sample() -> float:
        import json

        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", impl, str(count)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(json.loads(out)["bytes"]) / 1024

    return h.Case("RSS per suspended generator", impl, "KiB", None if skip else sample, skip=skip)


def build_cases(args: argparse.Namespace, with_greenlet: bool) -> list[h.Case]:
    ms = args.sample_ms
    bench = f"walk {DEPTH} frames deep, per item"
    greenlet_skip = None if with_greenlet else "run with greenlet imported (second table)"
    cases = [
        h.timed_case(bench, "anywait", walk_case(anywait_walk), sample_ms=ms),
        h.timed_case(
            bench, "native yield from", walk_case(native_walk), sample_ms=ms, note="the floor"
        ),
        h.timed_case(
            bench,
            "greenlet",
            walk_case(greenlet_walk) if with_greenlet else None,
            sample_ms=ms,
            skip=greenlet_skip,
        ),
        h.timed_case(bench, "thread + queue.Queue", walk_case(thread_walk), sample_ms=ms),
    ]
    anext = "__anext__, item from 3 sync frames deep"
    cases += [
        h.timed_case(anext, "anywait", agen_case(anywait_agen), sample_ms=ms),
        h.timed_case(
            anext, "native async generator", agen_case(native_agen), sample_ms=ms, note="the floor"
        ),
    ]
    cases += [
        rss_case("anywait", args.rss_count, None),
        rss_case("native", args.rss_count, None),
        rss_case("greenlet", args.rss_count, greenlet_skip),
    ]
    return [c for c in cases if args.filter in c.bench]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="timing rounds (default 15; --quick: 5)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: few rounds, short samples")
    p.add_argument("--sample-ms", type=float, default=None, help="one sample's length (default 40)")
    p.add_argument("--rss-count", type=int, default=None, help="generators per RSS child (10000)")
    p.add_argument("--filter", default="", help="only benchmarks whose name contains this")
    p.add_argument("--greenlet-imported", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rss-child", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]))
        return 0
    q = args.quick
    args.rounds = args.rounds or (5 if q else 15)
    args.sample_ms = args.sample_ms or (10.0 if q else 40.0)
    args.rss_count = args.rss_count or (2000 if q else 10_000)

    with_greenlet = False
    if args.greenlet_imported:
        if importlib.util.find_spec("greenlet") is None:
            print(NO_GREENLET)
        else:
            importlib.import_module("greenlet")  # imported, as the table says
            with_greenlet = True
    else:
        build = h.anywait_build()
        env = h.environment()
        print(
            f"Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, "
            f"load average {env['loadavg'][0]:.2f}"
        )
        kind = (
            "DEBUG build: the anywait numbers mean nothing"
            if build.get("debug_build")
            else "release build"
        )
        print(
            f"anywait {build.get('version')} ({kind}); rounds: {args.rounds}, "
            f"~{args.sample_ms:g} ms per sample, implementations alternating\n"
        )
    print("greenlet imported:" if with_greenlet else "greenlet not imported:")
    cases = build_cases(args, with_greenlet)
    timed = [c for c in cases if c.unit == "ns"]
    memory = [c for c in cases if c.unit != "ns"]
    samples = h.run_rounds(timed, args.rounds, label="timing") if timed else {}
    if memory:
        samples |= h.run_rounds(memory, 3 if not q else 1, label="rss", gc_off=False)
    rows = h.summarize(cases, samples, baseline=BASELINE)
    h.print_table(rows, baseline=BASELINE)
    if not args.greenlet_imported:
        print(flush=True)
        forwarded = [a for a in sys.argv[1:]]
        subprocess.run([sys.executable, __file__, "--greenlet-imported", *forwarded], check=True)
        print(
            f"\n/ {BASELINE}: this row's time (or size) over anywait's, taken round by round; "
            "above 1 means anywait is faster (smaller)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
