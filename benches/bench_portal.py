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
* RSS per task blocked in await_ -- a fresh interpreter per sample starts N tasks that
  each call a sync function which blocks in ``await_(event.wait())``; resident-set growth
  / N. native: tasks blocked in ``await event.wait()``.

Two processes. anywait bridges its steps through greenlet whenever the ``greenlet`` module
is imported (see crates/anywait-py/src/greenlet_bridge.rs), and both peers import it. So
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
import asyncio
import contextlib
import functools
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import traceback
import types
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from itertools import repeat
from time import perf_counter_ns
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h
import anywait
from anywait._anywait import Portal

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
B_RSS = "RSS per task blocked in await_"
TIMED = (
    B_CHECKPOINT,
    B_STEP,
    B_NOOP,
    B_AWAIT_CHECKPOINT,
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
    B_NEW_TASK: Target(1000, True, {"greenback": "+31 us"}),
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


async def noop() -> None:
    pass


def f() -> None:
    pass


# --- event loops ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    checkpoint: Callable[[], Awaitable[Any]]  # one trip through the loop
    checkpoint_src: str
    # run(async_fn, *args): a fresh event loop, until async_fn(*args) returns
    run: Callable[..., Any]
    event: Callable[[], Any]
    # new_tasks(child): an InLoopBody starting n tasks running child(), one by one, each
    # waited for
    new_tasks: Callable[[Callable[[], Awaitable[None]]], Any]


def _asyncio_run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return asyncio.run(fn(*args))  # type: ignore[arg-type]


def _asyncio_new_tasks(child: Callable[[], Awaitable[None]]) -> Any:
    async def body(n: int) -> int:
        create_task = asyncio.get_running_loop().create_task
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            await create_task(child())  # type: ignore[arg-type]
        return perf_counter_ns() - t0

    return body


def _trio_new_tasks(child: Callable[[], Awaitable[None]]) -> Any:
    import trio

    async def body(n: int) -> int:
        open_nursery = trio.open_nursery
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            async with open_nursery() as nursery:
                nursery.start_soon(child)
        return perf_counter_ns() - t0

    return body


def make_backend(name: str) -> Backend | None:
    """The backend ``name``, or None if its library is not installed. Trio is imported only
    here, so that a run measuring asyncio alone (and the asyncio table, which comes first)
    sees a process without Trio in it: anywait's task lookup tries Trio first when it is
    imported."""
    if name == "asyncio":
        return Backend(
            "asyncio",
            functools.partial(asyncio.sleep, 0),
            "await asyncio.sleep(0)",
            _asyncio_run,
            asyncio.Event,
            _asyncio_new_tasks,
        )
    assert name == "trio"
    try:
        import trio
    except ImportError:
        return None
    return Backend(
        "trio",
        trio.lowlevel.checkpoint,
        "await trio.lowlevel.checkpoint()",
        trio.run,
        trio.Event,
        _trio_new_tasks,
    )


# --- the implementations' entry points ----------------------------------------------------------


@dataclass(frozen=True)
class Api:
    ensure_portal: Callable[[], Awaitable[None]]
    has_portal: Callable[[], bool]
    await_: Callable[[Any], Any]
    with_portal_run_sync: Callable[..., Awaitable[Any]]


def portal_api(impl: str) -> Api:
    if impl == BASELINE:
        return Api(
            anywait.ensure_portal,
            anywait.has_portal,
            anywait.await_,
            anywait.with_portal_run_sync,
        )
    assert impl == "greenback"
    gb = peer("greenback")
    return Api(gb.ensure_portal, gb.has_portal, gb.await_, gb.with_portal_run_sync)


async def _give_portal(api: Api) -> None:
    await api.ensure_portal()
    if not api.has_portal():
        raise RuntimeError("ensure_portal() left the task without a portal")


# --- what is timed: measure(n) returns the ns that n operations took ----------------------------

Measure = Callable[[int], int]
#: body(n), run inside the loop: set-up, then n operations timed; returns their ns.
InLoopBody = Callable[[int], Awaitable[int]]


def checkpoint_body(backend: Backend, impl: str) -> InLoopBody:
    api = None if impl == "native" else portal_api(impl)

    async def body(n: int, checkpoint: Any = backend.checkpoint) -> int:
        if api is not None:
            await _give_portal(api)
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            await checkpoint()
        return perf_counter_ns() - t0

    return body


def _sync_awaits(n: int, await_: Callable[[Any], Any], make: Callable[[], Any]) -> int:
    """The sync frame: n x ``await_(make())``."""
    t0 = perf_counter_ns()
    for _ in repeat(None, n):
        await_(make())
    return perf_counter_ns() - t0


def await_body(impl: str, make: Callable[[], Awaitable[Any]]) -> InLoopBody:
    if impl == "native":

        async def native(n: int) -> int:
            t0 = perf_counter_ns()
            for _ in repeat(None, n):
                await make()
            return perf_counter_ns() - t0

        return native
    if impl == "awaitlet":
        al = peer("awaitlet")

        async def in_async_def(n: int) -> int:
            elapsed: int = await al.async_def(_sync_awaits, n, al.awaitlet, make)
            return elapsed

        return in_async_def
    api = portal_api(impl)

    async def in_portal(n: int) -> int:
        await _give_portal(api)
        return _sync_awaits(n, api.await_, make)

    return in_portal


async def _call_sync(fn: Callable[[], Any]) -> Any:
    return fn()


def run_sync_body(impl: str) -> InLoopBody:
    if impl == "native":
        run_sync: Callable[..., Awaitable[Any]] = _call_sync
    elif impl == "awaitlet":
        run_sync = peer("awaitlet").async_def
    else:
        run_sync = portal_api(impl).with_portal_run_sync

    async def body(n: int, run_sync: Any = run_sync, fn: Any = f) -> int:
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            await run_sync(fn)
        return perf_counter_ns() - t0

    return body


@types.coroutine
def _bare_yield() -> Generator[None, None, None]:
    """One schedule point on asyncio: the bare yield a task makes to let others run."""
    yield


def new_task_body(backend: Backend, impl: str, *, native_checkpoints: bool = False) -> InLoopBody:
    if impl == "native" and native_checkpoints:
        # One checkpoint: what ensure_portal() is, portal or not.
        if backend.name == "trio":
            import trio

            checkpoint: Callable[[], Awaitable[None]] = trio.lowlevel.checkpoint
        else:
            checkpoint = _bare_yield

        async def child() -> None:
            await checkpoint()

    elif impl == "native":
        child = noop
    else:
        ensure_portal = portal_api(impl).ensure_portal

        async def child() -> None:
            await ensure_portal()

    body: InLoopBody = backend.new_tasks(child)
    return body


def under_run(backend: Backend, impl: str) -> Measure:
    """New plain tasks in a loop that gives every task a portal when it is created
    (anywait.run; greenback's AutoPortalInstrument on Trio), or in a plain loop (native)."""
    body = backend.new_tasks(noop)
    if impl == "native":
        return functools.partial(backend.run, body)
    if impl == BASELINE:
        return functools.partial(anywait.run, body, backend=backend.name)
    assert impl == "greenback"
    import trio

    auto_portal = peer("greenback").AutoPortalInstrument

    def run(n: int) -> Any:
        return trio.run(body, n, instruments=[auto_portal()])

    return run


@types.coroutine
def _yield_forever() -> Generator[None, Any, None]:
    while True:
        yield


async def _parked() -> None:
    await _yield_forever()


def step_measure(backend: Backend, impl: str) -> Measure:
    """One step of a coroutine that only ever yields, driven the way each loop drives a task's
    coroutine, but without the loop: Trio calls ``send(value)``; asyncio's C Task calls
    ``PyIter_Send``, which for a portal (no ``am_send`` slot) is ``next()``. Native:
    ``coro.send(None)``. The difference is what a portal adds to every step of a task."""

    def send_loop(n: int, send: Any) -> int:
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            send(None)
        return perf_counter_ns() - t0

    def next_loop(n: int, it: Any, next: Any = next) -> int:
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            next(it)
        return perf_counter_ns() - t0

    def measure(n: int) -> int:
        coro = _parked()
        target: Any = coro if impl == "native" else Portal(coro)
        target.send(None)
        try:
            if impl == "native" or backend.name == "trio":
                return send_loop(n, target.send)
            return next_loop(n, target)
        finally:
            target.close()

    return measure


def make_measure(backend: Backend, bench: str, impl: str) -> Measure:
    """measure(n) for one cell; ``anywait+greenlet`` runs anywait's code (in a process that has
    imported greenlet)."""
    impl = BASELINE if impl == WITH_GREENLET else impl
    if bench == B_STEP:
        return step_measure(backend, impl)
    if bench == B_NEW_TASK_RUN:
        return under_run(backend, impl)
    bodies: dict[str, Callable[[], InLoopBody]] = {
        B_CHECKPOINT: lambda: checkpoint_body(backend, impl),
        B_NOOP: lambda: await_body(impl, noop),
        B_AWAIT_CHECKPOINT: lambda: await_body(impl, backend.checkpoint),
        B_RUN_SYNC: lambda: run_sync_body(impl),
        B_NEW_TASK: lambda: new_task_body(backend, impl),
        B_NEW_TASK_CHECKPOINT: lambda: new_task_body(backend, impl, native_checkpoints=True),
    }
    return functools.partial(backend.run, bodies[bench]())


class _MeasureSampler(h._TimedSampler):
    """The harness's sampler (batch calibration, warm-up), with the clock read by whatever
    runs the operations: the factory yields a Measure, and the sample is what it reports."""

    def _time(self, n: int) -> int:
        with self.factory() as measure:
            elapsed: Any = measure(n)
            return int(elapsed)


def _yielding(measure: Measure) -> Any:
    @contextlib.contextmanager
    def factory() -> Iterator[Measure]:
        yield measure

    return factory


class GreenletServer:
    """The child process that measures the cells needing greenlet (``--serve``): one JSON
    request per line, ``[backend, bench, impl, n]``, answered with ``{"ns": ...}``."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _call(self, request: list[Any]) -> int:
        if self.proc is None:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve"]
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the greenlet server died (exit status {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"greenlet server, {request[:3]}:\n{reply['error']}")
        return int(reply["ns"])

    def measure(self, backend: str, bench: str, impl: str) -> Measure:
        return lambda n: self._call([backend, bench, impl, n])

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc = None


def serve() -> None:
    """``--serve``: import greenlet, then answer GreenletServer's requests until stdin ends."""
    import greenlet  # noqa: F401  (the reason this process exists)

    measures: dict[tuple[str, str, str], Measure] = {}
    for line in sys.stdin:
        backend_name, bench, impl, n = json.loads(line)
        try:
            key = (backend_name, bench, impl)
            if key not in measures:
                backend = make_backend(backend_name)
                assert backend is not None
                measures[key] = make_measure(backend, bench, impl)
            reply: dict[str, Any] = {"ns": measures[key](n)}
        except Exception:
            reply = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


# --- RSS per blocked task (child process) ----------------------------------------------------


def _statm_bytes() -> tuple[int, int]:
    """(resident, mapped) bytes of this process."""
    with open("/proc/self/statm") as fh:
        size, resident = fh.read().split()[:2]
    page = os.sysconf("SC_PAGESIZE")
    return int(resident) * page, int(size) * page


def rss_child(backend_name: str, impl: str, count: int, depth: int) -> None:
    """Runs in a fresh interpreter: prints {"bytes_per_task": ...} as JSON and exits at once
    (without unwinding the blocked tasks, which would only cost time)."""
    import gc

    if impl == WITH_GREENLET:
        import greenlet  # noqa: F401

        impl = BASELINE
    backend = make_backend(backend_name)
    assert backend is not None
    counts = {"blocked": 0, "done": 0}

    def sync_descend(d: int, await_: Callable[[Any], Any], event: Any) -> None:
        if d > 1:
            sync_descend(d - 1, await_, event)
            return
        counts["blocked"] += 1
        await_(event.wait())

    async def async_descend(d: int, event: Any) -> None:
        if d > 1:
            await async_descend(d - 1, event)
            return
        counts["blocked"] += 1
        await event.wait()

    if impl == "native":

        async def task(event: Any) -> None:
            await async_descend(depth, event)
            counts["done"] += 1

    elif impl == "awaitlet":
        al = peer("awaitlet")

        async def task(event: Any) -> None:
            await al.async_def(sync_descend, depth, al.awaitlet, event)
            counts["done"] += 1

    else:
        api = portal_api(impl)

        async def task(event: Any) -> None:
            await _give_portal(api)
            sync_descend(depth, api.await_, event)
            counts["done"] += 1

    async def until(key: str, n: int) -> None:
        while counts[key] < n:
            await backend.checkpoint()

    async def measure(spawn: Callable[[Any, Any], None]) -> None:
        # Warm-up: one task through the whole path and out again, so code objects, type
        # caches and first-use allocations are not charged to the measured tasks.
        event = backend.event()
        spawn(task, event)
        await until("blocked", 1)
        event.set()
        await until("done", 1)

        event = backend.event()
        gc.collect()
        gc.disable()
        before, vm_before = _statm_bytes()
        for _ in range(count):
            spawn(task, event)
        await until("blocked", 1 + count)
        gc.collect()
        after, vm_after = _statm_bytes()
        # Mapped size is kept for the JSON only: it shows reserved stacks, which cost
        # address space but no memory until touched.
        result = {
            "bytes_per_task": (after - before) / count,
            "mapped_bytes_per_task": (vm_after - vm_before) / count,
            "rss_before": before,
            "rss_after": after,
            "greenlet_imported": "greenlet" in sys.modules,
        }
        print(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)

    async def main() -> None:
        if backend_name == "trio":
            import trio

            async with trio.open_nursery() as nursery:
                await measure(nursery.start_soon)
        else:
            tasks: list[Any] = [None] * (count + 1)
            create_task = asyncio.get_running_loop().create_task
            spawned = iter(range(count + 1))

            def spawn(fn: Any, event: Any) -> None:
                tasks[next(spawned)] = create_task(fn(event))

            await measure(spawn)

    backend.run(main)


def rss_sampler(backend: str, impl: str, count: int, depth: int, info: dict[str, Any]) -> Any:
    def sample() -> float:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--rss-child",
            backend,
            impl,
            str(count),
            str(depth),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"RSS child for {backend}/{impl} failed ({proc.returncode}):\n{proc.stderr}"
            )
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        info.setdefault("children", []).append(out)
        return float(out["bytes_per_task"]) / 1024

    return sample


# --- main ------------------------------------------------------------------------------------


def _note(bench: str, impl: str) -> str:
    if impl == "native":
        return NATIVE_NOTES[bench]
    if impl == WITH_GREENLET:
        return "greenlet imported"
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
                sampler = _MeasureSampler(_yielding(measure), int(args.sample_ms * 1e6), info)
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
    for impl in (BASELINE, WITH_GREENLET):
        for bench, target in TARGETS.items():
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
                    "met": s.median <= target.ns,
                }
            )
    return verdicts


def print_targets(verdicts: list[dict[str, Any]]) -> None:
    if not verdicts:
        return
    print("\nagainst the issue's targets (median, p10 - p90):")
    width = max(len(v["bench"]) for v in verdicts)
    iwidth = max(len(v["impl"]) for v in verdicts)
    for v in verdicts:
        fmt = _signed if v["over_native"] else h._fmt
        over = " over native" if v["over_native"] else ""
        target = TARGETS[v["bench"]]
        print(
            f"  {v['impl'].ljust(iwidth)}  {v['bench'].ljust(width)}  {fmt(v['median'], 'ns')}"
            f"{over} ({fmt(v['p10'], 'ns')} - {fmt(v['p90'], 'ns')}); {target.text()}: "
            + ("met" if v["met"] else "MISSED")
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
            print_targets(found)
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
