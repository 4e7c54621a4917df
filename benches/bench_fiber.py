"""anywait.lowlevel fibers against greenlet, in one run: switch cost, fiber lifetime, memory.

    python benches/bench_fiber.py             # full run (15 rounds), what `make bench` runs
    python benches/bench_fiber.py --quick     # a smoke run: few rounds, short samples
    python benches/bench_fiber.py --json out.json --rounds 31

Rows:

* switch round trip -- resume a parked fiber and have it park again
  (anywait: ``f.switch()`` against ``while True: suspend()``;
  greenlet: ``g.switch()`` against ``while True: main.switch()``).
* switch round trip, N frames deep -- the same, with the fiber parked under N Python
  frames of its own (anywait shows a suspended fiber's frames to the garbage collector,
  and hides its generator frames from their own generators' traversal while it is
  suspended: a walk of the chain at each switch, capped at 128 frames; greenlet copies
  the part of the C stack it switches out, which grows with the depth).
* create + run + finish -- ``Fiber(noop).switch()`` / ``greenlet(noop).switch()``, including
  freeing the object.
* RSS per suspended fiber -- a fresh interpreter per sample creates N fibers that each
  recurse 20 Python frames and suspend; resident-set growth / N.
* floors -- an empty loop iteration, a Python call, a method call and a generator step, so the
  numbers above can be read as "so many function calls". Every timed row includes the loop.

Read the ratio column, not the absolute times: the machine is shared, and the ratio is taken
round by round from samples adjacent in time. Numbers from a debug build of anywait are
meaningless (the header says which build was found).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import repeat
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

try:
    import greenlet as _greenlet_mod
except ImportError:
    _greenlet_mod = None  # type: ignore[assignment]

NO_GREENLET = "greenlet not installed"
BASELINE = "anywait"

# The figures the issue sets out to beat, shown beside the rows for context.
TARGETS_NS = {
    "switch round trip": (150, 800),
    "create + run + finish": (500, 6000),
}


def noop() -> None:
    pass


# --- anywait ---------------------------------------------------------------------------------


def _anywait_park_forever() -> None:
    from anywait.lowlevel import suspend

    s = suspend
    while True:
        s()


def _descend_then(depth: int, park: Any) -> None:
    if depth > 0:
        _descend_then(depth - 1, park)
    else:
        park()


@contextlib.contextmanager
def anywait_switch(depth: int | None = None) -> Iterator[h.Runner]:
    """Parked right in its body, or under ``depth`` more frames of its own."""
    from anywait.lowlevel import Fiber

    if depth is None:
        f = Fiber(_anywait_park_forever)
    else:
        f = Fiber(lambda: _descend_then(depth, _anywait_park_forever))
    f.switch()

    def run(n: int, sw: Any = f.switch) -> None:
        for _ in repeat(None, n):
            sw()

    try:
        yield run
    finally:
        f.close()


@contextlib.contextmanager
def anywait_lifetime() -> Iterator[h.Runner]:
    from anywait.lowlevel import Fiber

    def run(n: int, Fiber: Any = Fiber, fn: Any = noop) -> None:
        for _ in repeat(None, n):
            Fiber(fn).switch()

    yield run


# --- greenlet --------------------------------------------------------------------------------


@contextlib.contextmanager
def greenlet_switch(depth: int | None = None) -> Iterator[h.Runner]:
    """As anywait_switch."""
    main = _greenlet_mod.getcurrent()

    def park_forever() -> None:
        s = main.switch
        while True:
            s()

    if depth is None:
        g = _greenlet_mod.greenlet(park_forever)
    else:
        g = _greenlet_mod.greenlet(lambda: _descend_then(depth, park_forever))
    g.switch()

    def run(n: int, sw: Any = g.switch) -> None:
        for _ in repeat(None, n):
            sw()

    try:
        yield run
    finally:
        g.throw(_greenlet_mod.GreenletExit)


@contextlib.contextmanager
def greenlet_lifetime() -> Iterator[h.Runner]:
    def run(n: int, greenlet: Any = _greenlet_mod.greenlet, fn: Any = noop) -> None:
        for _ in repeat(None, n):
            greenlet(fn).switch()

    yield run


# --- floors ----------------------------------------------------------------------------------


class _Small:
    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 1

    def method(self) -> int:
        return self.x


@contextlib.contextmanager
def floor_loop() -> Iterator[h.Runner]:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            pass

    yield run


@contextlib.contextmanager
def floor_call() -> Iterator[h.Runner]:
    def run(n: int, fn: Any = noop) -> None:
        for _ in repeat(None, n):
            fn()

    yield run


@contextlib.contextmanager
def floor_method() -> Iterator[h.Runner]:
    def run(n: int, obj: _Small = _Small()) -> None:  # noqa: B008
        for _ in repeat(None, n):
            obj.method()

    yield run


@contextlib.contextmanager
def floor_generator() -> Iterator[h.Runner]:
    def forever() -> Iterator[None]:
        while True:
            yield

    gen = forever()
    next(gen)

    def run(n: int, step: Any = gen.__next__) -> None:
        for _ in repeat(None, n):
            step()

    try:
        yield run
    finally:
        gen.close()


# --- RSS per suspended fiber (child process) ---------------------------------------------------


def _statm_bytes() -> tuple[int, int]:
    """(resident, mapped) bytes of this process."""
    with open("/proc/self/statm") as f:
        size, resident = f.read().split()[:2]
    page = os.sysconf("SC_PAGESIZE")
    return int(resident) * page, int(size) * page


def rss_child(impl: str, count: int, depth: int) -> None:
    """Runs in a fresh interpreter: prints {"bytes_per_fiber": ...} as JSON and exits at once
    (without unwinding the parked fibers, which would only cost time)."""
    import gc

    if impl == "anywait":
        from anywait.lowlevel import Fiber, suspend

        def make(fn: Any, *args: Any) -> Any:
            return Fiber(fn, *args)

        def alive(f: Any) -> bool:
            return bool(f.started and not f.dead)

    else:
        import functools

        import greenlet

        suspend = greenlet.getcurrent().switch

        def make(fn: Any, *args: Any) -> Any:
            # partial is C code: no extra Python frame beyond anywait's.
            return greenlet.greenlet(functools.partial(fn, *args))

        def alive(f: Any) -> bool:
            return bool(f and not f.dead)

    def descend(d: int) -> None:
        if d > 1:
            descend(d - 1)
        else:
            suspend()

    # Warm-up: one fiber through the whole path and out again, so code objects, type
    # caches and first-use allocations are not charged to the measured fibers. Only one,
    # so that a stack pool (anywait's) is not pre-filled with stacks the N fibers then reuse.
    w = make(descend, depth)
    w.switch()
    w.switch()
    assert w.dead
    del w

    fibers: list[Any] = [None] * count
    gc.collect()
    gc.disable()
    before, vm_before = _statm_bytes()
    for i in range(count):
        f = make(descend, depth)
        f.switch()
        fibers[i] = f
    after, vm_after = _statm_bytes()
    assert all(alive(f) for f in fibers), "a fiber did not stay suspended"
    # Mapped size is kept for the JSON only: it shows reserved stacks, which cost address
    # space but no memory until touched.
    result = {
        "bytes_per_fiber": (after - before) / count,
        "mapped_bytes_per_fiber": (vm_after - vm_before) / count,
        "rss_before": before,
        "rss_after": after,
    }
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


def rss_sampler(impl: str, count: int, depth: int, info: dict[str, Any]) -> Any:
    def sample() -> float:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--rss-child",
            impl,
            str(count),
            str(depth),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"RSS child for {impl} failed ({proc.returncode}):\n{proc.stderr}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        info.setdefault("children", []).append(out)
        return float(out["bytes_per_fiber"]) / 1024

    return sample


# --- main ------------------------------------------------------------------------------------


def build_cases(args: argparse.Namespace) -> tuple[list[h.Case], list[h.Case]]:
    ms = args.sample_ms
    have_greenlet = _greenlet_mod is not None
    skip = None if have_greenlet else NO_GREENLET

    def target_notes(bench: str) -> tuple[str, str]:
        ours, theirs = TARGETS_NS[bench]
        return f"target <= {ours} ns", f"issue: ~{theirs} ns"

    timed: list[h.Case] = []
    for bench, ours, theirs in [
        ("switch round trip", anywait_switch, greenlet_switch),
        ("create + run + finish", anywait_lifetime, greenlet_lifetime),
    ]:
        note_a, note_g = target_notes(bench)
        timed.append(h.timed_case(bench, "anywait", ours, sample_ms=ms, note=note_a))
        timed.append(
            h.timed_case(
                bench,
                "greenlet",
                theirs if have_greenlet else None,
                sample_ms=ms,
                skip=skip,
                note=note_g,
            )
        )
    for depth in args.switch_depths:
        bench = f"switch round trip, {depth} frames deep"
        timed.append(
            h.timed_case(bench, "anywait", lambda d=depth: anywait_switch(d), sample_ms=ms)
        )
        timed.append(
            h.timed_case(
                bench,
                "greenlet",
                (lambda d=depth: greenlet_switch(d)) if have_greenlet else None,
                sample_ms=ms,
                skip=skip,
            )
        )
    timed += [
        h.timed_case("floor: empty loop iteration", "python", floor_loop, sample_ms=ms),
        h.timed_case("floor: noop() call", "python", floor_call, sample_ms=ms),
        h.timed_case("floor: obj.method() call", "python", floor_method, sample_ms=ms),
        h.timed_case("floor: generator step (next)", "python", floor_generator, sample_ms=ms),
    ]

    bench = f"RSS per suspended fiber ({args.rss_depth} frames)"
    memory: list[h.Case] = []
    for impl, ok in [("anywait", True), ("greenlet", have_greenlet)]:
        info: dict[str, Any] = {"fibers": args.rss_fibers, "depth": args.rss_depth}
        sampler = rss_sampler(impl, args.rss_fibers, args.rss_depth, info) if ok else None
        note = f"N = {args.rss_fibers}, fresh process each"
        memory.append(h.Case(bench, impl, "KiB", sampler, None if ok else NO_GREENLET, note, info))
    return timed, memory


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="timing rounds (default 15; --quick: 5)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: few rounds, short samples")
    p.add_argument(
        "--sample-ms",
        type=float,
        default=None,
        help="target length of one sample (default 40; --quick: 10)",
    )
    p.add_argument(
        "--switch-depths",
        type=lambda text: [int(d) for d in text.split(",") if d],
        default=[10, 100],
        help="depths of the 'N frames deep' switch rows, comma-separated (default 10,100)",
    )
    p.add_argument(
        "--rss-fibers",
        type=int,
        default=None,
        help="fibers per RSS child (default 10000; --quick: 2000)",
    )
    p.add_argument(
        "--rss-depth",
        type=int,
        default=20,
        help="Python frames each RSS fiber recurses (default 20)",
    )
    p.add_argument(
        "--rss-rounds",
        type=int,
        default=None,
        help="RSS children per implementation (default 5; --quick: 2)",
    )
    p.add_argument("--filter", default="", help="only benchmarks whose name contains this")
    p.add_argument("--json", metavar="FILE", help="also write results and raw samples to FILE")
    p.add_argument("--rss-child", nargs=3, metavar=("IMPL", "N", "DEPTH"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.rss_child:
        impl, count, depth = args.rss_child
        rss_child(impl, int(count), int(depth))
        return 0

    q = args.quick
    args.rounds = args.rounds or (5 if q else 15)
    args.sample_ms = args.sample_ms or (10.0 if q else 40.0)
    args.rss_fibers = args.rss_fibers or (2000 if q else 10_000)
    args.rss_rounds = args.rss_rounds or (2 if q else 5)

    build = h.anywait_build()
    meta: dict[str, Any] = {
        "env": h.environment(),
        "anywait": build,
        "greenlet": getattr(_greenlet_mod, "__version__", None),
        "args": {k: v for k, v in vars(args).items() if k != "rss_child"},
    }
    env = meta["env"]
    print(
        f"Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, "
        f"load average {env['loadavg'][0]:.2f}"
    )
    kind = {
        True: "DEBUG build: the anywait numbers mean nothing",
        False: "release build",
        None: "build kind unknown",
    }[build.get("debug_build")]
    print(f"anywait {build.get('version')} from {build.get('module', build.get('error'))} ({kind})")
    print(f"greenlet {meta['greenlet'] or '(not installed)'}")
    print(
        f"rounds: {args.rounds} x 1 sample of ~{args.sample_ms:g} ms per timed row, "
        f"implementations alternating; fresh processes per RSS row: {args.rss_rounds}\n"
    )

    timed, memory = build_cases(args)
    timed = [c for c in timed if args.filter in c.bench]
    memory = [c for c in memory if args.filter in c.bench]

    samples = h.run_rounds(timed, args.rounds, label="timing") if timed else {}
    samples |= h.run_rounds(memory, args.rss_rounds, label="rss", gc_off=False) if memory else {}
    cases = timed + memory

    ref = ("floor: noop() call", "python")
    reference = ref if ref in samples else None
    rows = h.summarize(cases, samples, baseline=BASELINE, reference=reference)
    h.print_table(rows, baseline=BASELINE, reference_label="noop()" if reference else None)

    meta["env"]["loadavg_after"] = list(os.getloadavg())
    print(f"\nload average after: {meta['env']['loadavg_after'][0]:.2f}")
    print(
        f"/ {BASELINE}: this row's time (or size) over anywait's, taken round by round; "
        "above 1 means anywait is faster (smaller)."
    )
    if reference:
        print("/ noop(): this row's median over the median of the noop() call.")
    if build.get("debug_build"):
        print(
            "WARNING: anywait is a debug build; rebuild it in release mode to read anything here."
        )
    if args.json:
        h.write_json(args.json, meta, rows)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
