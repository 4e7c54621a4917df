"""Portals for one task or one call: `ensure_portal`, `has_portal`, `bestow_portal`,
`with_portal_run` and `with_portal_run_sync` (re-exported by ``anywait``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from anywait import _tasks
from anywait._anywait import (
    Portal,
    _call_in_portal,
    _in_portal_step,
    _install_portal_here,
    _make_portal,
)

P = ParamSpec("P")
T = TypeVar("T")


async def ensure_portal() -> None:
    """Give the current task a portal, so that sync code it calls may use `await_`.

    If the task has no portal yet, this installs one and has the task's next step run
    the rest of its work inside it (only a next step can run in the portal): an
    asyncio C Task (also uvloop's) takes that step at once, without going through the
    event loop; on Trio, and for pure-Python asyncio tasks, this yields to the event
    loop once (a schedule point, never a cancellation point on Trio). With a portal
    already present it returns at once.
    """
    step = _install_portal_here()
    if step is not None:
        if step is not False:
            await step
        return
    task, backend = _tasks.current_task()
    if _tasks.install_portal(task, backend):
        await _tasks.into_portal(task, backend)


def has_portal(task: Any = None) -> bool:
    """Whether ``task`` (default: the current task) has a portal."""
    if task is None:
        task, backend = _tasks.current_task()
    else:
        backend = _tasks.backend_of(task)
    return isinstance(_tasks.task_coro(task, backend), Portal)


def bestow_portal(task: Any) -> None:
    """Give another task a portal, effective from its next step.

    Raises RuntimeError for a finished task, or for the current task (which must use
    ``await ensure_portal()``, since its running step cannot move into a portal).
    """
    backend = _tasks.backend_of(task)
    if _tasks.task_finished(task, backend):
        raise RuntimeError(f"cannot give a portal to {task!r}: it has finished")
    try:
        current, _ = _tasks.current_task()
    except RuntimeError:
        current = None
    if current is task:
        raise RuntimeError("a task cannot bestow a portal on itself; use `await ensure_portal()`")
    _tasks.install_portal(task, backend)


async def with_portal_run(
    async_fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``await async_fn(*args, **kwargs)`` inside a portal of its own, so that sync
    code it calls may use `await_`; the task itself needs no portal. Adds no schedule
    point. Where `await_` already works (the task has a portal), it just awaits."""
    if _in_portal_step():
        return await async_fn(*args, **kwargs)
    result: T = await _make_portal(async_fn(*args, **kwargs))
    return result


async def with_portal_run_sync(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call the sync function ``fn(*args, **kwargs)`` inside a portal, so that it (and
    anything it calls) may use `await_`. Adds no schedule point. Where `await_` already
    works (the task has a portal), it just calls ``fn``."""
    if _in_portal_step():
        return fn(*args, **kwargs)
    result: T = await _call_in_portal(fn, args, kwargs)
    return result
