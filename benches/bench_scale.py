"""Scale: N tasks blocked in ``await_`` at once (100,000 by default), all woken and
finished, on asyncio and on Trio; anywait beside greenback, and native tasks as the floor.

    python benches/bench_scale.py                       # N = 100,000, 3 repeats, both loops
    python benches/bench_scale.py --tasks 10000 --repeats 5 --backend trio --json out.json

Issue 15's scale item (figures for the notes, not timed asserts). The three cells of a
loop each run in their own fresh interpreter, ``benches/_scale_child.py``:

* native -- tasks blocked in ``await event.wait()``; neither anywait nor greenlet imported.
* anywait -- each task does ``await anywait.ensure_portal()``, then calls a sync function
  that blocks in ``anywait.await_(event.wait())``; greenlet never imported.
* greenback -- the same with ``await greenback.ensure_portal()`` and ``greenback.await_``.

A child warms the path up with a few tasks, collects garbage and turns the collector off,
reads its resident memory, starts N tasks and waits until every one of them is blocked
(create + block), reads its memory again, sets the one event they all wait for and waits
until every one has finished (wake + finish). Rows, medians over ``--repeats`` children
per cell:

* RSS per blocked task -- VmRSS growth from before the N tasks to all N blocked, / N.
* peak RSS per task -- VmHWM (reset just before the tasks are made) over the same start,
  / N: the high-water mark through blocking, waking and finishing.
* RSS kept after all finished -- VmRSS once every task is gone and a collection has run,
  over the same start, / N (allocator pools that the process keeps, not a leak by itself).
* create + block, wake + finish -- wall time per task of each phase.

The ratio column is this implementation over greenback, paired by repeat (the children of a
repeat run one after another, in an order that alternates between repeats). Memory rows
note the difference to native, also paired by repeat. bench_portal.py's "RSS per task
blocked in await_" row (what ``make plot`` draws against N) measures the blocked state
alone, in children that all import anywait; this one adds the wake and the timings.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_scale_child.py")
IMPLS = ("native", "anywait", "greenback")
BASELINE = "greenback"

B_RSS = "RSS per blocked task"
B_PEAK = "peak RSS per task"
B_KEPT = "RSS kept after all finished"
B_CREATE = "create + block, per task"
B_WAKE = "wake + finish, per task"
MEMORY_ROWS = (B_RSS, B_PEAK, B_KEPT)
NATIVE_NOTES = {
    B_RSS: "await event.wait() in a plain task",
}


def metrics(child: dict[str, Any]) -> dict[str, float]:
    """The table's rows (KiB, or ns per task) from one child's report."""
    n = child["n"]
    before = child["rss_before_kib"]
    return {
        B_RSS: (child["rss_blocked_kib"] - before) / n,
        B_PEAK: (child["peak_kib"] - before) / n,
        B_KEPT: (child["rss_finished_kib"] - before) / n,
        B_CREATE: child["create_block_s"] * 1e9 / n,
        B_WAKE: child["wake_finish_s"] * 1e9 / n,
    }


def run_child(backend: str, impl: str, n: int, warmup: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, CHILD, backend, impl, str(n), str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{backend}/{impl} child failed (exit status {proc.returncode}); reproduce with\n"
            f"  {' '.join(cmd)}\n{proc.stderr}"
        )
    child: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if child["greenlet_imported"] != (impl == "greenback"):
        raise RuntimeError(
            f"{backend}/{impl} child: greenlet imported is {child['greenlet_imported']}"
        )
    return child


def measure(
    backend: str, impls: list[str], args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    """``args.repeats`` children per implementation, one at a time, the order reversed
    every other repeat so that neither end of a repeat favours anyone."""
    children: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
    for r in range(args.repeats):
        for impl in impls if r % 2 == 0 else impls[::-1]:
            child = run_child(backend, impl, args.tasks, args.warmup, args.timeout)
            m = metrics(child)
            print(
                f"  [{backend} repeat {r + 1}/{args.repeats}] {impl}: "
                f"{m[B_RSS]:.2f} KiB/task blocked, create+block {child['create_block_s']:.2f} s, "
                f"wake+finish {child['wake_finish_s']:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            children[impl].append(child)
    return children


def build_rows(
    backend: str, n: int, skipped: dict[str, str], children: dict[str, list[dict[str, Any]]]
) -> list[h.Row]:
    cases: list[h.Case] = []
    samples: dict[tuple[str, str], list[float]] = {}
    for bench in (*MEMORY_ROWS, B_CREATE, B_WAKE):
        unit = "KiB" if bench in MEMORY_ROWS else "ns"
        for impl in IMPLS:
            info: dict[str, Any] = {"backend": backend}
            if impl in children:
                info["children"] = children[impl]
                samples[(bench, impl)] = [metrics(c)[bench] for c in children[impl]]
            note = NATIVE_NOTES.get(bench, "") if impl == "native" else ""
            skip = skipped.get(impl)
            cases.append(h.Case(bench, impl, unit, None, skip=skip, note=note, info=info))
    annotate_over_native(cases, samples)
    for case in cases:
        if case.bench in (B_CREATE, B_WAKE) and case.key in samples:
            secs = h.Spread.of(samples[case.key]).median * n / 1e9
            total = f"{secs:.2f} s for all"
            case.note = f"{case.note}; {total}" if case.note else total
    return h.summarize(cases, samples, baseline=BASELINE)


def annotate_over_native(cases: list[h.Case], samples: dict[tuple[str, str], list[float]]) -> None:
    """Memory rows: the difference to native, repeat by repeat (median, min - max)."""
    for case in cases:
        xs, base = samples.get(case.key), samples.get((case.bench, "native"))
        if case.bench not in MEMORY_ROWS or case.impl == "native" or not xs or not base:
            continue
        d = h.Spread.of([x - b for x, b in zip(xs, base, strict=True)])
        case.info["minus_native"] = vars(d)
        case.note = f"{d.median:+.2f} KiB over native ({d.min:+.2f} - {d.max:+.2f})"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=None, help="N (default 100,000)")
    p.add_argument("--repeats", type=int, default=None, help="children per cell (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: N = 2,000, one repeat")
    p.add_argument("--warmup", type=int, default=10, help="tasks through the path first")
    p.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated (default all)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    p.add_argument("--json", metavar="FILE", help="also write the rows and every child's report")
    args = p.parse_args()
    args.tasks = args.tasks or (2_000 if args.quick else 100_000)
    args.repeats = args.repeats or (1 if args.quick else 3)

    wanted = [i for i in IMPLS if i in args.impls.split(",")]
    skipped = {i: "not selected" for i in IMPLS if i not in wanted}
    if importlib.util.find_spec("greenback") is None:
        skipped["greenback"] = "greenback not installed"
    impls = [i for i in wanted if i not in skipped]
    trio_missing = importlib.util.find_spec("trio") is None

    env = h.environment()
    build = h.anywait_build()
    versions = {name: h.module_version(name) for name in ("greenback", "greenlet", "trio")}
    meta: dict[str, Any] = {"env": env, "anywait": build, "versions": versions, "args": vars(args)}
    kind: dict[Any, str] = {True: "DEBUG build: its numbers mean nothing", False: "release build"}
    print(
        f"Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, "
        f"load average {env['loadavg'][0]:.2f}"
    )
    print(
        f"anywait {build.get('version')} from {build.get('module', build.get('error'))} "
        f"({kind.get(build.get('debug_build'), 'build kind unknown')})"
    )
    print(", ".join(f"{name} {v or '(not installed)'}" for name, v in versions.items()))
    print(
        f"N = {args.tasks:,} tasks blocked at once; {args.repeats} fresh children per cell, "
        f"medians; warm-up {args.warmup} tasks"
    )

    all_rows: list[h.Row] = []
    for backend in ["asyncio", "trio"] if args.backend == "both" else [args.backend]:
        if backend == "trio" and trio_missing:
            print(f"\n=== {backend}: not installed, skipped")
            continue
        print(f"\n=== {backend}\n", flush=True)
        children = measure(backend, impls, args)
        rows = build_rows(backend, args.tasks, skipped, children)
        h.print_table(rows, baseline=BASELINE)
        all_rows += rows

    env["loadavg_after"] = list(os.getloadavg())
    print(f"\nload average after: {env['loadavg_after'][0]:.2f}")
    print(
        f"/ {BASELINE}: this row over greenback's, repeat by repeat; below 1 means smaller "
        "(faster) than greenback."
    )
    if build.get("debug_build"):
        print("WARNING: anywait is a debug build; rebuild it in release mode to read anything.")
    if args.json:
        h.write_json(args.json, meta, all_rows)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
