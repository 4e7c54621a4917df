"""bench_portal.py's rows: the implementations, the benchmarks, the issues' targets and
the notes each cell of the table carries. No measuring here."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

BASELINE = "anywait"
WITH_GREENLET = "anywait+greenlet"
IMPLS = ("native", BASELINE, WITH_GREENLET, "greenback", "awaitlet")
#: Implementations measured in this process; the others need greenlet imported.
LOCAL = ("native", BASELINE)
REQUIRES = {WITH_GREENLET: "greenlet", "greenback": "greenback", "awaitlet": "awaitlet"}

B_CHECKPOINT = "checkpoint in a portal task"
B_STEP = "one step, no loop"
B_NOOP = "await_(noop())"
B_AWAIT_CHECKPOINT = "await_(checkpoint)"
B_RUN_SYNC = "with_portal_run_sync(f)"
B_NEW_TASK = "new task + ensure_portal()"
B_NEW_TASK_RUN = "new task under run()"
B_NEW_TASK_CHECKPOINT = "new task + ensure_portal(), vs a checkpoint"
B_GREENLET_ROUND_TRIP = "greenlet round trip (floor of a bridged step)"
B_RSS = "RSS per task blocked in await_"
TIMED = (
    B_CHECKPOINT,
    B_STEP,
    B_NOOP,
    B_AWAIT_CHECKPOINT,
    B_GREENLET_ROUND_TRIP,
    B_RUN_SYNC,
    B_NEW_TASK,
    B_NEW_TASK_CHECKPOINT,
    B_NEW_TASK_RUN,
)


@dataclass(frozen=True)
class Target:
    """What the issue asks of anywait (ns, over the native row or absolute), and the peers'
    figures it quotes."""

    ns: float
    over_native: bool
    issue: dict[str, str]

    def text(self) -> str:
        size = f"{self.ns / 1000:g} us" if self.ns >= 1000 else f"{self.ns:g} ns"
        if self.over_native:
            return f"target <= +{size} over native"
        return f"target <= {size}"


TARGETS = {
    B_CHECKPOINT: Target(200, True, {"greenback": "+2.7 us"}),
    B_NOOP: Target(400, False, {"greenback": "6.2 us", "awaitlet": "1.3 us"}),
    B_AWAIT_CHECKPOINT: Target(500, True, {}),
    B_RUN_SYNC: Target(1000, False, {"greenback": "10.3 us"}),
    # Issue 1 asked this of a new task's ensure_portal() over a task that returns at
    # once; since issue 10 ensure_portal() is a checkpoint every time (greenback's
    # contract), so the target is held against a new task that takes one checkpoint.
    B_NEW_TASK_CHECKPOINT: Target(1000, True, {"greenback": "+31 us"}),
}
#: Issue 10's targets for anywait in a process that has imported greenlet (where the
#: targets above do not apply to these rows).
GREENLET_TARGETS = {
    B_CHECKPOINT: Target(400, True, {"greenback": "+1.5-1.8 us"}),
    B_AWAIT_CHECKPOINT: Target(500, True, {"greenback": "+4.8-6.1 us"}),
}
#: Rows whose notes show the per-round difference to their native row.
OVER_NATIVE = (
    B_CHECKPOINT,
    B_STEP,
    B_AWAIT_CHECKPOINT,
    B_NEW_TASK,
    B_NEW_TASK_CHECKPOINT,
    B_NEW_TASK_RUN,
    B_RSS,
)

NATIVE_NOTES = {
    B_CHECKPOINT: "plain task",
    B_STEP: "coro.send(None)",
    B_NOOP: "await noop()",
    B_AWAIT_CHECKPOINT: "await checkpoint in a plain task",
    B_RUN_SYNC: "await an async def calling f",
    B_NEW_TASK: "new task that returns at once",
    B_NEW_TASK_CHECKPOINT: "new task that takes one checkpoint (as ensure_portal() does)",
    B_NEW_TASK_RUN: "the same in a plain loop",
    B_RSS: "tasks blocked in await event.wait()",
}
AWAITLET_NOTES = {
    B_NOOP: "awaitlet() inside one async_def()",
    B_AWAIT_CHECKPOINT: "awaitlet() inside one async_def()",
    B_RUN_SYNC: "await async_def(f)",
    B_RSS: "await async_def(g), g blocked in awaitlet()",
}
NOT_APPLICABLE = {
    ("awaitlet", B_CHECKPOINT): "n/a: no portal; awaitlet leaves a task's own awaits alone",
    ("awaitlet", B_STEP): "n/a: no portal",
    ("awaitlet", B_NEW_TASK): "n/a: nothing per task; its per-use cost is the async_def row",
    ("awaitlet", B_NEW_TASK_RUN): "n/a: nothing per task",
    ("awaitlet", B_NEW_TASK_CHECKPOINT): "n/a: nothing per task",
    ("greenback", B_STEP): "n/a: its shim coroutine is private API",
    **{
        (impl, B_GREENLET_ROUND_TRIP): "n/a: a cost of greenlet itself, measured once"
        for impl in IMPLS
        if impl != WITH_GREENLET
    },
}
#: Extra (not in the issue): what a task pays when its portal comes with it, from the loop.
RUN_NOTES = {
    BASELINE: "anywait.run(): a portal per task from the task factory / instrument",
    "greenback": "trio.run(instruments=[greenback.AutoPortalInstrument()])",
}


def installed(impl: str) -> bool:
    need = REQUIRES.get(impl)
    return need is None or importlib.util.find_spec(need) is not None


def peer(name: str) -> Any:
    """greenback or awaitlet, imported on first use (never in the main process)."""
    return importlib.import_module(name)
