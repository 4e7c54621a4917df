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
    _set_no_portal_hint,
)

P = ParamSpec("P")
T = TypeVar("T")


async def ensure_portal() -> None:
    """Make sure the current task can use `await_` from here on, and checkpoint.

    This is a checkpoint every time, as in greenback: a schedule point and a
    cancellation point (Trio's ``checkpoint()``; on asyncio a bare yield, which also
    delivers a pending ``Task.cancel()``). If `await_` does not work here yet, the task
    gets a portal first, and that yield is what moves the task into it: the step that
    called ``ensure_portal()`` cannot move, only the task's next step can. Inside a
    portal of its own (`with_portal_run`, ...), code gets the checkpoint and no portal:
    that portal stays scoped to its call.
    """
    step = _install_portal_here()
    if step is None:
        task, backend = _tasks.current_task()
        if not _in_portal_step():
            _tasks.install_portal(task, backend)
        step = _tasks.checkpoint(backend)
    if step is True:
        await _tasks.yield_to_asyncio()
    else:
        await step


def has_portal(task: Any = None) -> bool:
    """Whether ``task`` (default: the current task) can use `await_`.

    For the current task that means "`await_` works here": True inside
    `with_portal_run` and its kin, and in functions made by `decorate_as_sync`, even
    where the task itself has no portal; False for a portal the task gave itself with
    `bestow_portal` until its next checkpoint. Outside any task (a loop callback,
    module level, another thread) it is False, not an error. For another task: whether
    it has a portal (from its next step on, if it was just bestowed).
    """
    if task is None or task is _current_task_or_none():
        return _in_portal_step()
    backend = _tasks.backend_of(task)
    return isinstance(_tasks.task_coro(task, backend), Portal)


def bestow_portal(task: Any) -> None:
    """Give ``task`` a portal, effective from its next step.

    On the current task that is after its next checkpoint: until then `has_portal`
    is False and `await_` raises, saying to yield to the event loop first (``await
    ensure_portal()`` does both at once). A task that has a portal keeps it. Raises
    RuntimeError for a finished task, TypeError for anything that is not a task.
    """
    backend = _tasks.backend_of(task)
    if _tasks.task_finished(task, backend):
        raise RuntimeError(f"cannot give a portal to {task!r}: it has finished")
    _tasks.install_portal(task, backend)


def _current_task_or_none() -> Any:
    try:
        return _tasks.current_task()[0]
    except RuntimeError:
        return None


_PENDING_PORTAL = (
    "await_() needs a portal, and this task's portal is not in effect yet: a portal that "
    "bestow_portal() gave the running task takes effect at the task's next checkpoint, "
    "so you must yield to the event loop first (e.g. `await asyncio.sleep(0)` or `await "
    "trio.lowlevel.checkpoint()`), or use `await anywait.ensure_portal()`, which does both"
)


def _no_portal_message() -> str | None:
    """What `await_` says where no portal step runs, when the default will not do: in a
    task whose own portal is not in effect yet."""
    try:
        task, backend = _tasks.current_task()
    except RuntimeError:
        return None
    if isinstance(_tasks.task_coro(task, backend), Portal):
        return _PENDING_PORTAL
    return None


_set_no_portal_hint(_no_portal_message)


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
