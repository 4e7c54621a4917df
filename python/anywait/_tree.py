"""Portals for a whole tree of tasks: the current task's children, their children, and
so on, without each of them calling `ensure_portal`.

How a new task is recognised as part of a tree differs by event loop:

* Trio has a task tree. An instrument (one per run, shared by every open scope and
  removed when the last one closes) gives a portal to each task spawned into a nursery
  that a tree task opened *inside* the scope; nurseries that enclose the scope are left
  alone, even though the same task owns them. The new task is a tree task in turn.
* asyncio has no task tree, but every task starts in a copy of its creator's context.
  A context variable marks the scope, and the loop's task factory (wrapped once per
  loop, left in place afterwards: it then costs one context lookup per task) gives a
  portal to every task created where the variable is set, or with an explicit
  ``context=`` in which it is set. Children inherit the mark, so it is recursive.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any, ParamSpec, TypeVar

from anywait import _tasks
from anywait._anywait import Portal, _in_portal_step, _make_portal

P = ParamSpec("P")
T = TypeVar("T")

_IN_TREE: contextvars.ContextVar[bool] = contextvars.ContextVar("anywait_in_tree", default=False)


def portals_for_children() -> AbstractContextManager[None]:
    """While open, every task that the current task spawns (Trio: into nurseries opened
    inside this block) gets a portal, and so do their descendants. The current task
    itself does not, which is why this is a plain ``with`` (use `portals_for_tree` or
    `with_portal_run_tree` to include it)."""
    return _children_scope(*_tasks.current_task())


@asynccontextmanager
async def portals_for_tree() -> AsyncIterator[None]:
    """Like `portals_for_children`, and the current task can use `await_` inside the
    block too. If it could not already, it gets a portal for the block: entering is
    then a schedule point (never a cancellation point on Trio), and so is leaving,
    which takes that portal away again (afterwards `await_` raises, as before)."""
    task, backend = _tasks.current_task()
    with _children_scope(task, backend):
        portal = None
        if not _in_portal_step() and _tasks.install_portal(task, backend):
            portal = _tasks.task_coro(task, backend)
            await _tasks.schedule_point(backend)
        try:
            yield
        finally:
            if portal is not None:
                # `portal` stays referenced until this step has ended (see
                # remove_portal); the yield right after ends it, so the loop's next
                # answer goes to the bare coroutine.
                _tasks.remove_portal(task, backend, portal)
                await _tasks.schedule_point(backend)


@contextmanager
def _children_scope(task: Any, backend: _tasks.Backend) -> Iterator[None]:
    if backend == "trio":
        with _trio_scope(task):
            yield
        return
    _ensure_tree_factory(asyncio.get_running_loop())
    token = _IN_TREE.set(True)
    try:
        yield
    finally:
        _IN_TREE.reset(token)


async def with_portal_run_tree(
    async_fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``await async_fn(*args, **kwargs)`` inside a portal of its own, with a portal
    for every task spawned under it (see `portals_for_children`), recursively. Adds no
    schedule point. ``trio.run(with_portal_run_tree, main)`` gives `await_` to the
    whole program but Trio's system tasks; so does ``anywait.run(main)``."""
    with portals_for_children():
        if _in_portal_step():
            return await async_fn(*args, **kwargs)
        result: T = await _make_portal(async_fn(*args, **kwargs))
        return result


# --- asyncio -------------------------------------------------------------------------


class PortalTaskFactory:
    """An asyncio task factory that wraps a new task's coroutine in a portal: always
    (``everything``, as `anywait.run` installs it) or inside a tree scope. Any factory
    that was installed before keeps making the task."""

    __slots__ = ("everything", "previous")

    def __init__(self, previous: Any, *, everything: bool) -> None:
        self.previous = previous
        self.everything = everything

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        if not isinstance(coro, Portal) and (self.everything or _context_in_tree(kwargs)):
            coro = _make_portal(coro)
        if self.previous is not None:
            task: asyncio.Task[Any] = self.previous(loop, coro, **kwargs)
            return task
        return asyncio.Task(coro, loop=loop, **kwargs)


def _context_in_tree(kwargs: dict[str, Any]) -> bool:
    context = kwargs.get("context")
    if context is None:
        return _IN_TREE.get()
    return bool(context.get(_IN_TREE, False))


def _ensure_tree_factory(loop: asyncio.AbstractEventLoop) -> None:
    if not isinstance(loop.get_task_factory(), PortalTaskFactory):
        loop.set_task_factory(PortalTaskFactory(loop.get_task_factory(), everything=False))


# --- Trio ----------------------------------------------------------------------------


class _TreeInstrument:
    """Gives a portal to every task spawned into a nursery of a tree task, from the
    nursery depth at which that task entered its scope (see the module docs)."""

    def __init__(self) -> None:
        #: tree task -> index in its ``child_nurseries`` from which children count
        self.tasks: dict[Any, int] = {}
        #: open scopes in this run; the instrument is removed when it drops to zero
        self.scopes = 0

    def task_spawned(self, task: Any) -> None:
        nursery = task.parent_nursery
        if nursery is None:
            return
        depth = self.tasks.get(nursery.parent_task)
        if depth is None:
            return
        if nursery.parent_task.child_nurseries.index(nursery) >= depth:
            _tasks.install_portal(task, "trio")
            self.tasks[task] = 0

    def task_exited(self, task: Any) -> None:
        self.tasks.pop(task, None)


_TRIO_INSTRUMENT: Any = None  # a trio.lowlevel.RunVar, made on first use


@contextmanager
def _trio_scope(task: Any) -> Iterator[None]:
    import trio

    global _TRIO_INSTRUMENT
    if _TRIO_INSTRUMENT is None:
        _TRIO_INSTRUMENT = trio.lowlevel.RunVar("anywait_tree_instrument", default=None)
    instrument: _TreeInstrument | None = _TRIO_INSTRUMENT.get()
    if instrument is None:
        instrument = _TreeInstrument()
        trio.lowlevel.add_instrument(instrument)  # type: ignore[arg-type]
        _TRIO_INSTRUMENT.set(instrument)
    elif task in instrument.tasks:
        # Already a tree task (an enclosing scope, or spawned by one): every nursery
        # it opens counts already.
        yield
        return
    instrument.tasks[task] = len(task.child_nurseries)
    instrument.scopes += 1
    try:
        yield
    finally:
        del instrument.tasks[task]
        instrument.scopes -= 1
        if instrument.scopes == 0:
            _TRIO_INSTRUMENT.set(None)
            trio.lowlevel.remove_instrument(instrument)  # type: ignore[arg-type]
