"""anywait portals against greenback and awaitlet, on asyncio and on Trio, in one run.

    python benches/bench_portal.py             # full run (15 rounds), what `make bench` runs
    python benches/bench_portal.py --quick     # a smoke run: few rounds, short samples
    python benches/bench_portal.py --json out.json --rounds 31 --backend trio

One table per event loop. "checkpoint" is ``await asyncio.sleep(0)`` on asyncio and
``await trio.lowlevel.checkpoint()`` on Trio: one trip through the event loop. Rows:

* checkpoint in a portal task -- a task that has a portal awaits checkpoints itself
  (natively); native: the same loop in a plain task. What a portal costs code that never
  calls ``await_``.
* one step, no loop (not in the issue) -- the same per-step cost without the loop's noise
  around it: a coroutine that only yields, stepped the way the loop would step it (Trio:
  ``send``; asyncio's C Task: ``PyIter_Send``, i.e. ``next()`` for a portal), by hand,
  bare and inside a ``Portal``. All caches stay warm here, unlike in a real loop.
* await_(noop()) -- sync code in a portal task awaits ``async def noop(): pass`` (nothing
  reaches the loop). awaitlet: ``awaitlet(noop())`` inside one ``async_def`` call; native:
  ``await noop()``.
* await_(checkpoint) -- sync code in a portal task awaits a checkpoint; native: ``await``
  it in a plain task.
* with_portal_run_sync(f) -- a portal made for one call of a trivial sync ``f``, awaited.
  awaitlet: ``await async_def(f)``; native: awaiting an ``async def`` that calls ``f``.
* new task + ensure_portal() -- a new task that only does ``await ensure_portal()``,
  waited for (asyncio: ``await create_task(...)``; Trio: one nursery per task); native: a
  new task that returns at once.
* new task + ensure_portal(), vs a checkpoint (not in the issue) -- the same anywait and
  greenback rows, against a native task that takes one checkpoint (a bare yield on
  asyncio, ``trio.lowlevel.checkpoint()`` on Trio). ``ensure_portal()`` is a checkpoint
  (greenback's contract), so this is what a portal costs beyond the checkpoint any
  task pays for calling it.
* new task under run() (not in the issue) -- the same new tasks, but in a loop that gives
  every task a portal as it is created, so no task waits a checkpoint for it: anywait.run();
  greenback's AutoPortalInstrument on Trio. The loop's own main task has a portal too.
* greenlet round trip (floor of a bridged step) -- in the greenlet process only:
  ``child.switch()`` into a greenlet that switches straight back. Each step of a portal
  task makes exactly these two switches when greenlet is imported (into its worker's
  greenlet, and out through the loop's), so no bridge that keeps greenlet's current
  greenlet right can make ``anywait+greenlet``'s over-native figures smaller than this.
  Measured from Python, so it includes two calls' overhead the bridge does not pay.
* RSS per task blocked in await_ -- a fresh interpreter per sample starts N tasks that
  each call a sync function which blocks in ``await_(event.wait())``; resident-set growth
  / N. native: tasks blocked in ``await event.wait()``.

Two processes. anywait bridges its steps through greenlet whenever the ``greenlet`` module
is imported (see crates/anywait-py/src/interop/greenlet.rs), and both peers import it. So
``native`` and ``anywait`` run in this process, which never imports greenlet, while
``greenback``, ``awaitlet`` and ``anywait+greenlet`` (anywait in a program that has
imported greenlet, e.g. for SQLAlchemy's asyncio layer) run in a child process that has,
and answers sample requests over a pipe. Samples still alternate in time exactly as the
harness orders them (one process waits while the other measures).

Timing happens inside the event loop: each sample starts a fresh loop, does its set-up
there (such as giving the task a portal), then times a batch of operations, so loop
start-up is never part of a per-operation time. Every timed row includes its Python loop
(and, on asyncio, calling ``asyncio.sleep`` through a ``functools.partial``). Rows whose
target is "over native" get, in their note, the difference to the native row taken round
by round, and each table ends with anywait's verdict on each of the issue's targets (on
the median; the issue's figures come from another machine, so read them against the peers'
rows measured here).

Read the ratio column, not the absolute times: the machine is shared, and the ratio is taken
round by round from samples adjacent in time. Numbers from a debug build of anywait are
meaningless (the header says which build was found).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h
from _portal_measures import Backend, make_backend, make_measure
from _portal_processes import (
    GreenletServer,
    MeasureSampler,
    rss_child,
    rss_sampler,
    serve,
    yielding,
)
from _portal_rows import (
    AWAITLET_NOTES,
    B_CHECKPOINT,
    B_GREENLET_ROUND_TRIP,
    B_NEW_TASK_RUN,
    B_RSS,
    B_STEP,
    BASELINE,
    GREENLET_TARGETS,
    IMPLS,
    LOCAL,
    NATIVE_NOTES,
    NOT_APPLICABLE,
    OVER_NATIVE,
    REQUIRES,
    RUN_NOTES,
    TARGETS,
    TIMED,
    WITH_GREENLET,
    installed,
)

# --- main ------------------------------------------------------------------------------------


def _note(bench: str, impl: str) -> str:
    if impl == "native":
        return NATIVE_NOTES.get(bench, "")
    if impl == WITH_GREENLET:
        if bench == B_GREENLET_ROUND_TRIP:
            return "child.switch() and back, from Python"
        target = GREENLET_TARGETS.get(bench)
        return f"greenlet imported; {target.text()}" if target else "greenlet imported"
    if impl == "awaitlet" and bench in AWAITLET_NOTES:
        return AWAITLET_NOTES[bench]
    if bench == B_NEW_TASK_RUN:
        return RUN_NOTES.get(impl, "")
    if bench == B_STEP:
        return "next(portal)" if impl == BASELINE else ""
    target = TARGETS.get(bench)
    if target is None:
        return ""
    if impl == BASELINE:
        return target.text()
    quoted = target.issue.get(impl)
    return f"issue: ~{quoted}" if quoted else ""


def build_cases(
    backend: Backend, args: argparse.Namespace, server: GreenletServer
) -> tuple[list[h.Case], list[h.Case]]:
    timed: list[h.Case] = []
    for bench in TIMED:
        for impl in IMPLS:
            note = _note(bench, impl)
            if bench == B_STEP and impl == BASELINE and backend.name == "trio":
                note = "portal.send(None)"
            skip = NOT_APPLICABLE.get((impl, bench))
            if bench == B_NEW_TASK_RUN and impl == "greenback" and backend.name != "trio":
                skip = "n/a: greenback has no per-task portals on asyncio"
            if not installed(impl):
                skip = f"{REQUIRES[impl]} not installed"
            info: dict[str, Any] = {"backend": backend.name, "process": "main"}
            sampler = None
            if skip is None:
                if impl in LOCAL:
                    measure = make_measure(backend, bench, impl)
                else:
                    measure = server.measure(backend.name, bench, impl)
                    info["process"] = "greenlet server"
                sampler = MeasureSampler(yielding(measure), int(args.sample_ms * 1e6), info)
            note = "" if skip else note
            timed.append(h.Case(bench, impl, "ns", sampler, skip=skip, note=note, info=info))

    bench = f"{B_RSS} (N = {args.rss_tasks})"
    memory: list[h.Case] = []
    for impl in IMPLS:
        ok = installed(impl)
        info = {"backend": backend.name, "tasks": args.rss_tasks, "depth": args.rss_depth}
        sampler = rss_sampler(backend.name, impl, args.rss_tasks, args.rss_depth, info)
        note = _note(B_RSS, impl) if impl in ("native", WITH_GREENLET, "awaitlet") else ""
        skip = None if ok else f"{REQUIRES[impl]} not installed"
        memory.append(h.Case(bench, impl, "KiB", sampler if ok else None, skip, note, info))
    return timed, memory


def _signed(x: float, unit: str) -> str:
    return ("-" if x < 0 else "+") + h._fmt(abs(x), unit)


def paired_delta(
    samples: dict[tuple[str, str], list[float]], bench: str, impl: str
) -> h.Spread | None:
    """This row minus its native row, round by round."""
    xs = samples.get((bench, impl), [])
    base = samples.get((bench, "native"), [])
    if impl == "native" or not xs or len(xs) != len(base):
        return None
    return h.Spread.of([x - b for x, b in zip(xs, base, strict=True)])


def annotate_deltas(cases: list[h.Case], samples: dict[tuple[str, str], list[float]]) -> None:
    """Prefix the notes of over-native rows with the per-round difference to native."""
    for case in cases:
        if not case.bench.startswith(OVER_NATIVE):
            continue
        d = paired_delta(samples, case.bench, case.impl)
        if d is None:
            continue
        case.info["minus_native"] = vars(d)
        u = case.unit
        text = f"{_signed(d.median, u)} over native ({_signed(d.p10, u)} - {_signed(d.p90, u)})"
        case.note = f"{text}; {case.note}" if case.note else text


def check_targets(
    samples: dict[tuple[str, str], list[float]], backend: Backend
) -> list[dict[str, Any]]:
    """anywait (and anywait+greenlet) against each target: the median (of per-round
    differences to native, for an over-native target) must be within it."""
    verdicts = []
    for impl, targets in ((BASELINE, TARGETS), (WITH_GREENLET, GREENLET_TARGETS)):
        for bench, target in targets.items():
            if target.over_native:
                s = paired_delta(samples, bench, impl)
            else:
                xs = samples.get((bench, impl), [])
                s = h.Spread.of(xs) if xs else None
            if s is None:
                continue
            verdicts.append(
                {
                    "backend": backend.name,
                    "impl": impl,
                    "bench": bench,
                    "target_ns": target.ns,
                    "over_native": target.over_native,
                    "median": s.median,
                    "p10": s.p10,
                    "p90": s.p90,
                    "target_text": target.text(),
                    "met": s.median <= target.ns,
                }
            )
    return verdicts


def print_targets(
    verdicts: list[dict[str, Any]], samples: dict[tuple[str, str], list[float]]
) -> None:
    if not verdicts:
        return
    print("\nagainst the issue's targets (median, p10 - p90):")
    width = max(len(v["bench"]) for v in verdicts)
    iwidth = max(len(v["impl"]) for v in verdicts)
    for v in verdicts:
        fmt = _signed if v["over_native"] else h._fmt
        over = " over native" if v["over_native"] else ""
        print(
            f"  {v['impl'].ljust(iwidth)}  {v['bench'].ljust(width)}  {fmt(v['median'], 'ns')}"
            f"{over} ({fmt(v['p10'], 'ns')} - {fmt(v['p90'], 'ns')}); {v['target_text']}: "
            + ("met" if v["met"] else "MISSED")
        )
    floor = samples.get((B_GREENLET_ROUND_TRIP, WITH_GREENLET))
    if floor:
        f = h.Spread.of(floor)
        print(
            f"  floor of every {WITH_GREENLET} step: {B_GREENLET_ROUND_TRIP.split(' (')[0]} "
            f"{h._fmt(f.median, 'ns')} ({h._fmt(f.p10, 'ns')} - {h._fmt(f.p90, 'ns')})"
        )


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
        "--rss-tasks",
        type=int,
        default=None,
        help="blocked tasks per RSS child (default 10000; --quick: 2000)",
    )
    p.add_argument(
        "--rss-depth",
        type=int,
        default=1,
        help="sync frames between each RSS task and its await_ (default 1)",
    )
    p.add_argument(
        "--rss-rounds",
        type=int,
        default=None,
        help="RSS children per implementation and loop (default 5; --quick: 2)",
    )
    p.add_argument(
        "--backend",
        choices=["asyncio", "trio", "both"],
        default="both",
        help="which event loops to measure (default both)",
    )
    p.add_argument("--filter", default="", help="only benchmarks whose name contains this")
    p.add_argument("--json", metavar="FILE", help="also write results and raw samples to FILE")
    p.add_argument(
        "--rss-child",
        nargs=4,
        metavar=("BACKEND", "IMPL", "N", "DEPTH"),
        help=argparse.SUPPRESS,
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.rss_child:
        backend_name, impl, count, depth = args.rss_child
        rss_child(backend_name, impl, int(count), int(depth))
        return 0
    if args.serve:
        serve()
        return 0

    q = args.quick
    args.rounds = args.rounds or (5 if q else 15)
    args.sample_ms = args.sample_ms or (10.0 if q else 40.0)
    args.rss_tasks = args.rss_tasks or (2000 if q else 10_000)
    args.rss_rounds = args.rss_rounds or (2 if q else 5)

    build = h.anywait_build()
    versions = {
        name: h.module_version(name) for name in ("greenback", "awaitlet", "greenlet", "trio")
    }
    meta: dict[str, Any] = {
        "env": h.environment(),
        "anywait": build,
        "versions": versions,
        "args": {k: v for k, v in vars(args).items() if k not in ("rss_child", "serve")},
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
    print(", ".join(f"{name} {v or '(not installed)'}" for name, v in versions.items()))
    print(
        f"rounds: {args.rounds} x 1 sample of ~{args.sample_ms:g} ms per timed row, "
        f"implementations alternating; fresh processes per RSS row: {args.rss_rounds}"
    )
    print(
        f"processes: {', '.join(LOCAL)} here (greenlet not imported); "
        f"{', '.join(i for i in IMPLS if i not in LOCAL)} in a child that imported greenlet"
    )

    all_rows: list[h.Row] = []
    referenced = False
    verdicts: list[dict[str, Any]] = []
    server = GreenletServer()
    try:
        for name in ["asyncio", "trio"] if args.backend == "both" else [args.backend]:
            backend = make_backend(name)
            if backend is None:
                print(f"\n=== {name}: not installed, skipped")
                continue
            trio_note = ""
            if name == "asyncio":
                trio_note = "; Trio " + ("imported" if "trio" in sys.modules else "not imported")
            print(f"\n=== {name} (checkpoint: {backend.checkpoint_src}{trio_note})\n")
            timed, memory = build_cases(backend, args, server)
            timed = [c for c in timed if args.filter in c.bench]
            memory = [c for c in memory if args.filter in c.bench]

            samples = h.run_rounds(timed, args.rounds, label=f"{name} timing") if timed else {}
            if memory:
                samples |= h.run_rounds(memory, args.rss_rounds, label=f"{name} rss", gc_off=False)
            if "greenlet" in sys.modules:
                raise RuntimeError("greenlet was imported into the main process")
            cases = timed + memory
            annotate_deltas(cases, samples)

            ref = (B_CHECKPOINT, "native")
            reference = ref if ref in samples else None
            referenced = referenced or reference is not None
            rows = h.summarize(cases, samples, baseline=BASELINE, reference=reference)
            label = "checkpoint" if reference else None
            h.print_table(rows, baseline=BASELINE, reference_label=label)
            found = check_targets(samples, backend)
            print_targets(found, samples)
            verdicts += found
            all_rows += rows
    finally:
        server.close()

    meta["env"]["loadavg_after"] = list(os.getloadavg())
    meta["targets"] = verdicts
    print(f"\nload average after: {meta['env']['loadavg_after'][0]:.2f}")
    print(
        f"/ {BASELINE}: this row's time (or size) over anywait's, taken round by round; "
        "above 1 means anywait is faster (smaller)."
    )
    if referenced:
        print("/ checkpoint: this row's median over the median of the native checkpoint row.")
    print(
        "over native: this row minus the native row of the same benchmark, round by round "
        "(median, p10 - p90)."
    )
    print(
        f"{WITH_GREENLET}: anywait in a process that has imported greenlet (as greenback, "
        "awaitlet or SQLAlchemy's asyncio layer do), where its steps are bridged through greenlet."
    )
    if build.get("debug_build"):
        print(
            "WARNING: anywait is a debug build; rebuild it in release mode to read anything here."
        )
    if args.json:
        h.write_json(args.json, meta, all_rows)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
