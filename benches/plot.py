"""Plots for docs/performance.md from bench_portal.py's ``--json`` output.

    python benches/plot.py --portal portal.json --rss rss-1000.json rss-10000.json ... \\
        --out docs/performance

``make plot`` runs the benchmarks and then this (see tools/ci.sh). Two pictures:

* ``portal-ops.png``: per-operation time of native code, anywait (with and without
  greenlet imported), greenback and awaitlet, on asyncio and Trio: medians, with the
  p10-p90 spread as error bars, on a log scale (the rows span three decades).
* ``portal-memory.png``: resident memory per task blocked in ``await_`` against the
  number of such tasks, one ``--rss`` file per task count.

Each picture's footer names the machine, Python and date of the run it shows. matplotlib
comes with the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

#: Rows of the operations plot, in order (bench_portal.py's names), with shorter labels.
OPERATIONS = {
    "await_(noop())": "await_(noop())",
    "with_portal_run_sync(f)": "with_portal_run_sync(f)",
    "checkpoint in a portal task": "checkpoint in a portal task",
    "await_(checkpoint)": "await_(checkpoint)",
    "new task + ensure_portal(), vs a checkpoint": (
        "new task + ensure_portal()\n(native: one checkpoint)"
    ),
    "new task under run()": "new task under run()",
}
IMPLS = ("native", "anywait", "anywait+greenlet", "greenback", "awaitlet")
COLOURS = {
    "native": "#7f7f7f",
    "anywait": "#1f77b4",
    "anywait+greenlet": "#8ecae6",
    "greenback": "#d62728",
    "awaitlet": "#ff9f1c",
}
BACKENDS = ("asyncio", "trio")


def load(path: str) -> dict[str, Any]:
    with open(path) as fh:
        data: dict[str, Any] = json.load(fh)
    if data["meta"]["anywait"].get("debug_build"):
        sys.exit(f"{path}: measured with a debug build of anywait; its numbers mean nothing")
    return data


def footer(meta: dict[str, Any]) -> str:
    env = meta["env"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    return (
        f"{env['implementation']} {env['python']} on {env['platform']}, {env['cpus']} CPUs; "
        f"{env['time'][:10]}; {versions}"
    )


def cells(data: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(backend, bench, impl) -> summary (median, p10, p90) of every measured cell."""
    out = {}
    for row in data["results"]:
        if row.get("skip") or not row.get("summary"):
            continue
        out[(row["info"]["backend"], row["bench"], row["impl"])] = row["summary"]
    return out


def plot_operations(data: dict[str, Any], path: str) -> None:
    got = cells(data)
    fig, axes = plt.subplots(1, len(BACKENDS), figsize=(13, 6.5), sharey=True)
    width = 0.8 / len(IMPLS)
    for ax, backend in zip(axes, BACKENDS, strict=True):
        for k, impl in enumerate(IMPLS):
            ys, xs, lo, hi = [], [], [], []
            for i, bench in enumerate(OPERATIONS):
                s = got.get((backend, bench, impl))
                if s is None:
                    continue
                ys.append(i - 0.4 + width * (k + 0.5))
                xs.append(s["median"] / 1000)
                lo.append((s["median"] - s["p10"]) / 1000)
                hi.append((s["p90"] - s["median"]) / 1000)
            ax.barh(ys, xs, height=width, color=COLOURS[impl], label=impl)
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt="none", ecolor="black", lw=0.7, capsize=2)
        ax.set_xscale("log")
        ax.set_xlabel("time per operation, µs (log scale; bars: median, whiskers: p10-p90)")
        ax.set_title(backend)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_yticks(range(len(OPERATIONS)), list(OPERATIONS.values()))
    axes[0].invert_yaxis()  # once: the axes share it; the first row on top
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(IMPLS), bbox_to_anchor=(0.5, 0.95))
    fig.suptitle("Per-operation cost: anywait, greenback and awaitlet against native code")
    fig.text(0.5, 0.005, footer(data["meta"]), ha="center", fontsize="x-small")
    fig.tight_layout(rect=(0, 0.03, 1, 0.91))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_memory(runs: list[dict[str, Any]], path: str) -> None:
    # (backend, impl) -> [(tasks, median KiB, p10, p90)]
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for data in runs:
        for row in data["results"]:
            if not row["bench"].startswith("RSS") or row.get("skip") or not row.get("summary"):
                continue
            s, info = row["summary"], row["info"]
            point = (int(info["tasks"]), s["median"], s["p10"], s["p90"])
            series.setdefault((info["backend"], row["impl"]), []).append(point)
    fig, axes = plt.subplots(1, len(BACKENDS), figsize=(12, 5), sharey=True)
    for ax, backend in zip(axes, BACKENDS, strict=True):
        for impl in IMPLS:
            points = sorted(series.get((backend, impl), []))
            if not points:
                continue
            n, med, p10, p90 = zip(*points, strict=True)
            ax.plot(n, med, marker="o", color=COLOURS[impl], label=impl)
            ax.fill_between(n, p10, p90, color=COLOURS[impl], alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("tasks blocked at once (log scale)")
        ax.set_title(backend)
        ax.grid(which="both", alpha=0.3)
    axes[0].set_ylim(bottom=0)  # after both: the axes share it
    axes[0].set_ylabel("resident memory per blocked task, KiB")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(IMPLS), bbox_to_anchor=(0.5, 0.94))
    fig.suptitle("Memory per task blocked in await_ (native: blocked in await)")
    fig.text(0.5, 0.005, footer(runs[0]["meta"]), ha="center", fontsize="x-small")
    fig.tight_layout(rect=(0, 0.03, 1, 0.9))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--portal", required=True, help="bench_portal.py --json output (a full run)")
    p.add_argument(
        "--rss", nargs="+", required=True, help="bench_portal.py --json outputs of RSS runs"
    )
    p.add_argument("--out", required=True, help="directory for the PNGs")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    plot_operations(load(args.portal), os.path.join(args.out, "portal-ops.png"))
    plot_memory([load(f) for f in args.rss], os.path.join(args.out, "portal-memory.png"))
    print(f"wrote {args.out}/portal-ops.png and {args.out}/portal-memory.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
