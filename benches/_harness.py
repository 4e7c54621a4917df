"""Shared machinery for anywait's peer benchmarks: interleaved rounds, paired ratios, one table.

The machine these run on is shared and noisy, so an absolute time on its own means little.
Every benchmark here therefore runs anywait and its peers *in the same process and the same
rounds*, alternating which goes first, and reports

* per implementation: the median of the per-round samples and their p10-p90 spread;
* per peer: the ratio peer / baseline computed round by round (the two samples of a round sit
  next to each other in time, so drift and a neighbour's load hit both), summarised the same way.

A ratio whose p10-p90 straddles 1.0 is not a difference. Rejected designs: timing each
implementation in its own block of rounds (drift between blocks looks like a speed-up), and
reporting min (hides the cost of allocation-heavy operations, which is what several of the
benchmarks measure).

A benchmark file builds a list of :class:`Case` (usually with :func:`timed_case`), hands it to
:func:`run_rounds`, then to :func:`summarize`, :func:`print_table` and :func:`write_json`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# A timed operation: ``run(n)`` performs the operation n times in a tight loop.
Runner = Callable[[int], None]
# Produces a fresh runner per sample (and tears it down after), so that state such as a fiber
# parked in `suspend()` never carries over from one sample, or one implementation, to the next.
RunnerFactory = Callable[[], contextlib.AbstractContextManager[Runner]]


@dataclass
class Case:
    """One (benchmark, implementation) cell of the table.

    ``sample()`` returns one measurement in ``unit``; ``skip`` (when set) says why this
    implementation cannot run here, and the row shows that instead of numbers.
    """

    bench: str
    impl: str
    unit: str
    sample: Callable[[], float] | None
    skip: str | None = None
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.bench, self.impl)


class _TimedSampler:
    """ns per operation over one batch; the batch size is fixed on first use so that one
    sample lasts about ``sample_ns`` (long enough to dwarf timer resolution and the
    per-sample setup, short enough that many rounds fit)."""

    def __init__(self, factory: RunnerFactory, sample_ns: int, info: dict[str, Any]) -> None:
        self.factory = factory
        self.sample_ns = sample_ns
        self.info = info
        self.batch = 0

    def _time(self, n: int) -> int:
        with self.factory() as run:
            t0 = time.perf_counter_ns()
            run(n)
            return time.perf_counter_ns() - t0

    def _calibrate(self) -> None:
        # Also the warm-up: first calls fill caches, stack pools and specialising bytecode.
        n = 64
        while True:
            elapsed = self._time(n)
            if elapsed >= self.sample_ns // 10 or n >= 1 << 26:
                break
            n *= 4
        self.batch = max(1000, min(1 << 26, n * self.sample_ns // max(elapsed, 1)))
        self.info["batch"] = self.batch

    def __call__(self) -> float:
        if not self.batch:
            self._calibrate()
        return self._time(self.batch) / self.batch


def timed_case(
    bench: str,
    impl: str,
    factory: RunnerFactory | None,
    *,
    sample_ms: float,
    skip: str | None = None,
    note: str = "",
) -> Case:
    """A Case measuring ns per operation; ``factory`` None (with ``skip``) for a peer that is
    not installed."""
    info: dict[str, Any] = {}
    sampler = None if factory is None else _TimedSampler(factory, int(sample_ms * 1e6), info)
    return Case(bench, impl, "ns", sampler, skip=skip, note=note, info=info)


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    """The cyclic collector off (after one full collection), restored afterwards: a collection
    landing inside one implementation's sample would be charged to it alone."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_rounds(
    cases: list[Case], rounds: int, *, label: str = "", gc_off: bool = True
) -> dict[tuple[str, str], list[float]]:
    """Take one sample of every runnable case per round, reversing the order every other
    round (ABBA), so neither the first nor the last slot of a round favours anyone."""
    samples: dict[tuple[str, str], list[float]] = {c.key: [] for c in cases}
    runnable = [c for c in cases if c.sample is not None]
    guard = gc_disabled() if gc_off else contextlib.nullcontext()
    with guard:
        for r in range(rounds):
            _progress(f"{label} round {r + 1}/{rounds}")
            order = runnable if r % 2 == 0 else runnable[::-1]
            for case in order:
                assert case.sample is not None
                samples[case.key].append(case.sample())
            if gc_off:
                gc.collect()  # between rounds, outside every sample
    _progress("")
    return samples


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()


# --- statistics -------------------------------------------------------------------------------


@dataclass
class Spread:
    median: float
    p10: float
    p90: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, xs: list[float]) -> Spread:
        if len(xs) >= 2:
            q = statistics.quantiles(xs, n=10, method="inclusive")
            p10, p90 = q[0], q[-1]
        else:
            p10 = p90 = xs[0]
        return cls(statistics.median(xs), p10, p90, min(xs), max(xs), len(xs))


@dataclass
class Row:
    case: Case
    samples: list[float]
    spread: Spread | None
    ratio: Spread | None = None  # this / baseline, paired by round
    per_ref: float | None = None  # median / the reference case's median


def summarize(
    cases: list[Case],
    samples: dict[tuple[str, str], list[float]],
    *,
    baseline: str,
    reference: tuple[str, str] | None = None,
) -> list[Row]:
    """Rows in case order. Each non-baseline implementation of a benchmark gets the per-round
    ratio to the baseline implementation of the same benchmark; ``reference`` (a (bench, impl)
    key, e.g. a plain Python call) gives every time row a 'how many of those' figure."""
    by_key = {c.key: samples.get(c.key, []) for c in cases}
    ref_spread = Spread.of(by_key[reference]) if reference and by_key.get(reference) else None
    rows = []
    for case in cases:
        xs = by_key[case.key]
        row = Row(case, xs, Spread.of(xs) if xs else None)
        base = by_key.get((case.bench, baseline), [])
        if case.impl != baseline and xs and base:
            row.ratio = Spread.of([x / b for x, b in zip(xs, base, strict=True) if b > 0])
        if ref_spread and row.spread and case.unit == "ns" and ref_spread.median > 0:
            row.per_ref = row.spread.median / ref_spread.median
        rows.append(row)
    return rows


# --- output -----------------------------------------------------------------------------------


def _fmt(x: float, unit: str) -> str:
    if unit == "ns":
        if x >= 10_000:
            return f"{x / 1000:.2f} us"
        return f"{x:.1f} ns" if x < 1000 else f"{x:.0f} ns"
    return f"{x:.2f} {unit}"


def _fmt_range(lo: float, hi: float, unit: str) -> str:
    return f"{_fmt(lo, unit)} - {_fmt(hi, unit)}"


def print_table(
    rows: list[Row], *, baseline: str, reference_label: str | None = None, file: Any = None
) -> None:
    """One row per (benchmark, implementation). The ratio column reads 'this implementation
    takes N times what the baseline takes' (> 1: the baseline is faster / smaller)."""
    out = file or sys.stdout
    head = ["benchmark", "impl", "median", "p10 - p90", f"/ {baseline} (p10 - p90)"]
    if reference_label:
        head.append(f"/ {reference_label}")
    head.append("note")
    table: list[list[str]] = [head]
    last_bench = None
    for row in rows:
        c = row.case
        bench = c.bench if c.bench != last_bench else ""
        last_bench = c.bench
        if row.spread is None:
            cells = [bench, c.impl, "n/a", "", ""]
            if reference_label:
                cells.append("")
            cells.append(c.skip or "no samples")
            table.append(cells)
            continue
        s = row.spread
        ratio = ""
        if row.ratio:
            r = row.ratio
            ratio = f"{r.median:.2f}x ({r.p10:.2f} - {r.p90:.2f})"
        cells = [bench, c.impl, _fmt(s.median, c.unit), _fmt_range(s.p10, s.p90, c.unit), ratio]
        if reference_label:
            cells.append(f"{row.per_ref:.1f}" if row.per_ref is not None else "")
        cells.append(c.note)
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, cells in enumerate(table):
        line = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
        print(line, file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)


def environment() -> dict[str, Any]:
    """What a reader needs to judge the numbers: interpreter, machine, and how busy it was."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def module_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def anywait_build() -> dict[str, Any]:
    """Where the compiled core came from, and whether it looks like a debug build.

    The check is a heuristic: Rust debug builds keep integer-overflow checks, whose panic
    messages end up in the binary; the release profile drops them. Numbers from a debug
    build say nothing about anywait's speed.
    """
    try:
        import anywait._anywait as core
    except ImportError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    path = core.__file__ or ""
    try:
        with open(path, "rb") as f:
            data = f.read()
        debug: bool | None = b"attempt to add with overflow" in data
    except OSError:
        debug = None
    return {
        "module": path,
        "debug_build": debug,
        "version": module_version("anywait"),
    }


def write_json(path: str, meta: dict[str, Any], rows: list[Row]) -> None:
    """Everything the table shows plus the raw per-round samples, for later plotting."""

    def spread(s: Spread | None) -> dict[str, Any] | None:
        return None if s is None else vars(s)

    doc = {
        "meta": meta,
        "results": [
            {
                "bench": r.case.bench,
                "impl": r.case.impl,
                "unit": r.case.unit,
                "skip": r.case.skip,
                "note": r.case.note,
                "info": r.case.info,
                "samples": r.samples,
                "summary": spread(r.spread),
                "ratio_to_baseline": spread(r.ratio),
                "per_reference": r.per_ref,
            }
            for r in rows
        ],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
