"""What bench_portal.py times: the event loops, each implementation's entry points, and
``make_measure(backend, bench, impl)``, a ``measure(n)`` that returns the ns n operations
took, timed inside a fresh event loop after its set-up."""

from __future__ import annotations

import asyncio
import functools
import types
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from itertools import repeat
from time import perf_counter_ns
from typing import Any

import anywait
from _portal_rows import (
    B_AWAIT_CHECKPOINT,
    B_CHECKPOINT,
    B_GREENLET_ROUND_TRIP,
    B_NEW_TASK,
    B_NEW_TASK_CHECKPOINT,
    B_NEW_TASK_RUN,
    B_NOOP,
    B_RUN_SYNC,
    B_STEP,
    BASELINE,
    WITH_GREENLET,
    peer,
)
from anywait._anywait import Portal


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


async def give_portal(api: Api) -> None:
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
            await give_portal(api)
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
        await give_portal(api)
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


def greenlet_round_trip() -> Measure:
    """Two greenlet switches, as each bridged step makes: into a greenlet and back."""
    import greenlet

    def bounce() -> None:
        parent = greenlet.getcurrent().parent
        while True:
            parent.switch()

    def measure(n: int) -> int:
        child = greenlet.greenlet(bounce)
        switch = child.switch
        switch()
        t0 = perf_counter_ns()
        for _ in repeat(None, n):
            switch()
        elapsed = perf_counter_ns() - t0
        child.throw(greenlet.GreenletExit)
        return elapsed

    return measure


def make_measure(backend: Backend, bench: str, impl: str) -> Measure:
    """measure(n) for one cell; ``anywait+greenlet`` runs anywait's code (in a process that has
    imported greenlet)."""
    impl = BASELINE if impl == WITH_GREENLET else impl
    if bench == B_STEP:
        return step_measure(backend, impl)
    if bench == B_GREENLET_ROUND_TRIP:
        return greenlet_round_trip()
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
