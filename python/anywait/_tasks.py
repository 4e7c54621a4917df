"""Tasks: find the running task, and put a portal under it (asyncio C and pure-Python
Tasks, Trio tasks).

The event loop drives a task by calling ``send``/``throw`` on the task's coroutine. To
give a task a portal we replace that coroutine with a :class:`Portal` wrapping it:

* Trio: ``task.coro`` is a plain attribute. The run loop binds ``task.coro.send`` each
  time it reschedules the task, so the portal takes over from the next step (for a task
  that is already scheduled, the bound method is rebound too).
* asyncio, pure-Python ``Task``: ``task._coro`` is read on every step.
* asyncio, C ``Task`` (also what uvloop uses): the coroutine lives in a private struct
  field; ``_swap_c_task_coro`` locates it at run time and replaces it (see
  ``crates/anywait-py/src/tasks/c_task.rs``).
"""

from __future__ import annotations

import asyncio
import collections.abc
import sys
import types
from collections.abc import Awaitable, Generator
from typing import Any, Literal

from anywait._anywait import Portal, _make_portal, _swap_c_task_coro

Backend = Literal["asyncio", "trio"]

collections.abc.Coroutine.register(Portal)

#: The pure-Python Task class, which keeps its coroutine in a plain attribute.
_PY_TASK: Any = getattr(asyncio.tasks, "_PyTask", type(None))

NOT_IN_TASK = (
    "this must be called from a task of a running event loop (asyncio, uvloop or Trio); "
    "there is none on this thread"
)


def current_task() -> tuple[Any, Backend]:
    """The task running on this thread and its event-loop family."""
    trio = sys.modules.get("trio")
    if trio is not None:
        in_trio_task = getattr(trio.lowlevel, "in_trio_task", None)  # Trio >= 0.23
        if in_trio_task is None or in_trio_task():
            try:
                return trio.lowlevel.current_task(), "trio"
            except RuntimeError:  # raising costs ~10 us: avoided where Trio can say
                pass
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is None:
        # 3.14's C current_task() does not see pure-Python Tasks, which record
        # themselves only in the Python-side table.
        py_current_task = getattr(asyncio.tasks, "_py_current_task", None)
        if py_current_task is not None:
            try:
                task = py_current_task()
            except RuntimeError:
                task = None
    if task is None:
        raise RuntimeError(NOT_IN_TASK)
    return task, "asyncio"


#: The C Task class (uvloop's tasks too), when the C accelerator is in use.
_C_TASK: Any = getattr(asyncio.tasks, "_CTask", None)


def backend_of(task: Any) -> Backend:
    if isinstance(task, (asyncio.Task, _PY_TASK)):
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None and isinstance(task, trio.lowlevel.Task):
        return "trio"
    raise TypeError(f"expected an asyncio or Trio task, got {type(task).__name__}")


def task_coro(task: Any, backend: Backend) -> Any:
    return task.coro if backend == "trio" else task.get_coro()


def task_finished(task: Any, backend: Backend) -> bool:
    if backend == "asyncio":
        return bool(task.done())
    coro = task.coro
    return getattr(coro, "cr_frame", None) is None


def install_portal(task: Any, backend: Backend) -> bool:
    """Give ``task`` a portal unless it has one; True if one was installed."""
    coro = task_coro(task, backend)
    if isinstance(coro, Portal):
        return False
    portal = _make_portal(coro)
    if backend == "trio":
        task.coro = portal
        # A task that is already scheduled has its next step bound: Trio's reschedule()
        # stores `task.coro.send` (or `.throw`) in `_next_send_fn`. Rebind it to the
        # portal, or that step would run without it.
        next_send_fn: Any = getattr(task, "_next_send_fn", None)
        if getattr(next_send_fn, "__self__", None) is coro:
            task._next_send_fn = getattr(portal, next_send_fn.__name__)
    elif isinstance(task, _PY_TASK):
        task._coro = portal
    else:
        _swap_c_task_coro(task, coro, portal)
    return True


def remove_portal(task: Any, backend: Backend, portal: Portal) -> None:
    """Take the portal that `install_portal` put under the running ``task`` out again.

    The caller must end the running step with a yield right after this, with no
    `await_` in between (the loop's next answer goes to the bare coroutine), and keep
    ``portal`` alive until that step has ended: a C Task's step code uses the coroutine
    it started the step with, without a reference of its own.
    """
    coro = portal.coro
    if backend == "trio":
        task.coro = coro
    elif isinstance(task, _PY_TASK):
        task._coro = coro
    else:
        _swap_c_task_coro(task, portal, coro)


@types.coroutine
def yield_to_asyncio() -> Generator[None, None, None]:
    """What ``asyncio.sleep(0)`` does, without its two coroutine layers: a bare yield
    makes the task reschedule itself, and delivers a pending ``cancel()``."""
    yield


def checkpoint(backend: Backend) -> Awaitable[None]:
    """A checkpoint in Trio's sense (a schedule point and a cancellation point) for the
    running task; on asyncio a bare yield, which is both there too."""
    if backend == "trio":
        import trio

        point: Awaitable[None] = trio.lowlevel.checkpoint()
        return point
    return yield_to_asyncio()


def schedule_point(backend: Backend) -> Awaitable[None]:
    """A schedule point that is never a cancellation point (Trio); on asyncio a bare
    yield."""
    if backend == "trio":
        import trio

        point: Awaitable[None] = trio.lowlevel.cancel_shielded_checkpoint()
        return point
    return yield_to_asyncio()
