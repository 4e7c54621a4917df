"""Run one async scenario on each event loop anywait supports.

A *backend* names an event loop and a task flavour: asyncio with its C ``Task``,
asyncio with the pure-Python ``Task``, uvloop, Trio, and AnyIO on top of asyncio and of
Trio. Backends whose library is not installed are skipped with that reason (Debian's
debug interpreters cannot load uvloop's compiled module, for example).

Scenarios that must say something backend-specific (which exception a cancellation
is, how to start a child task, how to time out) use the small helpers below, which
pick AnyIO's own API on the AnyIO backends: ``family``, ``cancelled_exc_class``,
``move_on_after``, ``task_group``, ``checkpoint``.

``both(backend, scenario)`` is the differential runner: ``scenario(wait)`` runs once
with ``wait`` awaiting natively and once with ``wait`` calling sync code that uses
``anywait.await_``, and the two results are returned for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Literal

import anywait
import pytest

BACKENDS = ["asyncio", "asyncio-pytask", "uvloop", "trio", "anyio-asyncio", "anyio-trio"]
#: The backends whose loop is asyncio's (or uvloop's) and whose tasks are asyncio Tasks.
ASYNCIO_BACKENDS = ["asyncio", "asyncio-pytask", "uvloop", "anyio-asyncio"]
#: The backends whose loop is Trio's.
TRIO_BACKENDS = ["trio", "anyio-trio"]
#: The backends where AnyIO's API drives the scenario.
ANYIO_BACKENDS = ["anyio-asyncio", "anyio-trio"]

_MODULES = {
    "uvloop": ("uvloop",),
    "trio": ("trio",),
    "anyio-asyncio": ("anyio",),
    "anyio-trio": ("anyio", "trio"),
}


def _version(distribution: str) -> tuple[int, ...]:
    """The leading numeric parts of an installed distribution's version, () if unknown."""
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ()
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def available(backend: str) -> str | None:
    """None if the backend can run here, else why not."""
    for module in _MODULES.get(backend, ()):
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
            __import__(module)
        except ImportError as exc:
            return f"{module} cannot be imported here: {exc}"
    if backend == "anyio-trio" and _version("anyio") < (4,) and _version("trio") >= (0, 22):
        return (
            "AnyIO 3's Trio backend subclasses trio.MultiError, deprecated since Trio "
            "0.22: it raises TrioDeprecationWarning (an error under this suite's "
            "filterwarnings) instead of its exception groups"
        )
    return None


def require(backend: str) -> None:
    reason = available(backend)
    if reason is not None:
        pytest.skip(reason)


def family(backend: str) -> Literal["asyncio", "trio"]:
    """The event loop underneath: ``"trio"`` for Trio and AnyIO-on-Trio, else asyncio."""
    return "trio" if backend in TRIO_BACKENDS else "asyncio"


def is_anyio(backend: str) -> bool:
    return backend in ANYIO_BACKENDS


def _pytask_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
    return asyncio.tasks._PyTask(coro, loop=loop, **kwargs)


def seed_trio_scheduler(seed: int = 0) -> None:
    """Trio runs each batch of ready tasks in a random order (reversed half the time);
    seeding its generator makes two runs that behave alike schedule alike, so that a
    native and a portal run can be compared step by step."""
    import trio

    generator = getattr(trio._core._run, "_r", None)
    if generator is not None:
        generator.seed(seed)


def run(backend: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` as the root task of a fresh event loop of ``backend`` (Trio's
    scheduler seeded, see ``seed_trio_scheduler``)."""
    if family(backend) == "trio":
        seed_trio_scheduler()
    if is_anyio(backend):
        import anyio

        return anyio.run(main, backend=backend.removeprefix("anyio-"))
    if backend == "trio":
        import trio

        return trio.run(main)
    loop_factory = None
    if backend == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        if backend == "asyncio-pytask":
            runner.get_loop().set_task_factory(_pytask_factory)
        return runner.run(main())


async def sleep(backend: str, seconds: float) -> None:
    if is_anyio(backend):
        import anyio

        await anyio.sleep(seconds)
    elif backend == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def checkpoint(backend: str) -> None:
    """One checkpoint in Trio's sense, a schedule point and a cancellation point: what
    ``ensure_portal`` is, every time (greenback's contract). On asyncio a bare yield."""
    if is_anyio(backend):
        import anyio.lowlevel

        await anyio.lowlevel.checkpoint()
    elif backend == "trio":
        import trio

        await trio.lowlevel.checkpoint()
    else:
        await asyncio.sleep(0)


def cancelled_exc_class(backend: str) -> type[BaseException]:
    """What a cancelled task sees: ``asyncio.CancelledError`` or ``trio.Cancelled``."""
    if is_anyio(backend):
        import anyio

        return anyio.get_cancelled_exc_class()
    if backend == "trio":
        import trio

        return trio.Cancelled
    return asyncio.CancelledError


def make_event(backend: str) -> Any:
    """An event (``set()``, ``await wait()``) of the backend's own kind."""
    if is_anyio(backend):
        import anyio

        return anyio.Event()
    if backend == "trio":
        import trio

        return trio.Event()
    return asyncio.Event()


def has_cancel_scopes(backend: str) -> bool:
    """Whether the backend has cancel scopes (Trio, AnyIO) rather than ``task.cancel()``."""
    return backend == "trio" or is_anyio(backend)


def cancelled_caught(scope: Any) -> bool:
    """``scope.cancelled_caught``; AnyIO 3's cancel scopes lack it, and then tell only
    whether they were cancelled (``cancel_called``)."""
    if hasattr(scope, "cancelled_caught"):
        return bool(scope.cancelled_caught)
    return bool(scope.cancel_called)


def move_on_after(backend: str, seconds: float) -> Any:
    """A cancel scope with a timeout, as a sync context manager (Trio's or AnyIO's):
    ``with move_on_after(backend, 0.01) as scope: ...; scope.cancelled_caught``."""
    if is_anyio(backend):
        import anyio

        return anyio.move_on_after(seconds)
    if backend == "trio":
        import trio

        return trio.move_on_after(seconds)
    raise ValueError(f"{backend} has no cancel scopes: use task.cancel()")


class _AsyncioNursery:
    """``start_soon`` on asyncio: tasks awaited at the end of the block. (Not a
    TaskGroup: on 3.14, asyncio.TaskGroup cannot find a pure-Python parent task.)"""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Future[Any]] = []

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        self.tasks.append(asyncio.ensure_future(fn(*args)))


@contextlib.asynccontextmanager
async def task_group(backend: str) -> AsyncIterator[Any]:
    """A nursery with ``start_soon(fn, *args)``: Trio's, AnyIO's, or on asyncio one whose
    block ends when its tasks have finished (cancelling them if the block fails)."""
    if is_anyio(backend):
        import anyio

        async with anyio.create_task_group() as group:
            yield group
    elif backend == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            yield nursery
    else:
        nursery = _AsyncioNursery()
        try:
            yield nursery
        except BaseException:
            for task in nursery.tasks:
                task.cancel()
            await asyncio.gather(*nursery.tasks, return_exceptions=True)
            raise
        await asyncio.gather(*nursery.tasks)


def current_asyncio_task() -> Any:
    """asyncio.current_task(), also for pure-Python Tasks on 3.14 (whose C
    current_task() does not see them)."""
    task = asyncio.current_task()
    if task is None and hasattr(asyncio.tasks, "_py_current_task"):
        task = asyncio.tasks._py_current_task()
    return task


def current_task(backend: str) -> Any:
    """The running task: a Trio task or an asyncio Task."""
    if family(backend) == "trio":
        import trio

        return trio.lowlevel.current_task()
    return current_asyncio_task()


def current_task_coro(backend: str) -> Any:
    """What the event loop drives for the current task (the portal, once installed)."""
    if family(backend) == "trio":
        import trio

        return trio.lowlevel.current_task().coro
    return current_asyncio_task().get_coro()


# --- the differential runner ----------------------------------------------------------


def _sync_await(aw: Awaitable[Any]) -> Any:
    """A plain sync frame between the scenario and await_."""
    return anywait.await_(aw)


class Wait:
    """What a scenario awaits through: ``await wait(aw)`` is ``await aw`` (native) or
    a sync call of ``anywait.await_(aw)`` (portal). A child task a scenario starts
    calls ``await wait.enter_task()`` first: ``ensure_portal()`` for the portal run,
    and for the native one the checkpoint ``ensure_portal()`` is, so that both runs
    schedule alike."""

    def __init__(self, backend: str, portal: bool) -> None:
        self.backend = backend
        self.portal = portal

    async def __call__(self, aw: Awaitable[Any]) -> Any:
        if self.portal:
            return _sync_await(aw)
        return await aw

    async def enter_task(self) -> None:
        if self.portal:
            await anywait.ensure_portal()
        else:
            await checkpoint(self.backend)


def both(backend: str, scenario: Callable[[Wait], Awaitable[Any]]) -> tuple[Any, Any]:
    """Run ``scenario(wait)`` twice on ``backend``: with ``wait`` awaiting natively, and
    with ``wait`` calling sync code that uses await_ (after ensure_portal)."""

    async def native() -> Any:
        wait = Wait(backend, portal=False)
        await wait.enter_task()
        return await scenario(wait)

    async def through_portal() -> Any:
        wait = Wait(backend, portal=True)
        await wait.enter_task()
        return await scenario(wait)

    return run(backend, native), run(backend, through_portal)
