"""Nested ``asyncio.run`` and ``loop.run_until_complete`` without re-entering the loop:
`install` and `uninstall` (re-exported by ``anywait``).

Stock asyncio refuses both when sync code calls them while its thread's loop runs
(a library's ``asyncio.run(fetch())`` called from a Jupyter cell, or from sync code
under a web framework's loop). nest_asyncio makes them work by running the loop again
inside the call (re-entry): tasks then finish last-in-first-out, sibling nested runs
hang, and it needs asyncio's pure-Python Task. After `install`, the call instead runs
the coroutine as a new task on the running loop and waits for it through the calling
task's portal, as ``await`` would: the loop goes on in its normal order, and asyncio
keeps its C Task.

Invariants and decisions (docs/sync-first.md says the same to users):

* The nested task runs in the caller's own contextvars context, not a copy, when the
  caller's portal step started in it (nearly always: the task's context), so what the
  coroutine sets is seen after the call, as after ``await``; otherwise (the caller is
  inside ``Context.run``, which stays entered while it waits) in a copy, as stock.
* ``loop_factory`` is not called when a loop is there to run on (the running loop, or
  the thread's persistent loop); ``debug``, if not None, sets that loop's debug mode
  for the call only. The loop is not shut down after: it is not the call's.
* With no running loop: the thread's persistent loop (`start_loop`) if it has one,
  exactly as `await_` in sync code (so objects bound to that loop keep working);
  else stock behaviour, with a portal under every task of the new loop so that calls
  nested inside it work too.
* A nested call needs a portal to wait in. Tasks created after `install` get one (the
  running loop's task factory, and every loop that ``asyncio.run`` or
  ``run_until_complete`` starts); the task that called `install` gets one from its
  next step. Anything else (a loop callback, an older task) gets a RuntimeError saying
  what to do, never a hang and never a re-entered loop.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.runners
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from anywait import _sync_loop, _tasks, _tree
from anywait._anywait import Portal, _in_portal_step, _shareable_context, await_

T = TypeVar("T")

_get_running_loop = asyncio._get_running_loop

#: The functions `install` replaced, to put back (`uninstall`): (owner, name, original).
_replaced: list[tuple[Any, str, Any]] = []


def install() -> None:
    """Make ``asyncio.run()`` and ``loop.run_until_complete()`` work when sync code
    calls them while its thread's event loop is running: the coroutine runs as a new
    task on that loop, and the call waits for it through the caller's portal, as
    ``await`` would (the loop is never re-entered). Other uses behave as stock asyncio,
    except that ``asyncio.run`` with no running loop uses the thread's persistent loop
    if `start_loop` started one.

    Called from inside a running loop, it also gives the current task a portal (from
    its next step) and every task created on that loop from now on; loops started by
    ``asyncio.run`` and ``run_until_complete`` give one to all their tasks. Patches
    uvloop's loop class too when uvloop is installed. Calling it again does nothing;
    `uninstall` undoes it (the task factories stay).
    """
    if not _replaced:
        _replace(asyncio, "run", _run)
        _replace(asyncio.runners, "run", _run)
        _replace(asyncio.base_events.BaseEventLoop, "run_until_complete", _run_until_complete)
        uvloop = _importable_uvloop()
        if uvloop is not None:
            _replace(uvloop.Loop, "run_until_complete", _run_until_complete)
    loop = _get_running_loop()
    if loop is not None:
        _give_portals(loop)
        try:
            task, backend = _tasks.current_task()
        except RuntimeError:  # a loop callback
            return
        if not _in_portal_step():
            _tasks.install_portal(task, backend)


def uninstall() -> None:
    """Put back the ``asyncio.run`` and ``run_until_complete`` that `install` replaced.
    Portals already given stay; so do the task factories `install` set."""
    while _replaced:
        owner, name, original = _replaced.pop()
        setattr(owner, name, original)


def _importable_uvloop() -> Any:
    """uvloop if it imports here, else None (a distribution's uvloop may lack its
    extension module for this interpreter, as Debian's did for a new CPython)."""
    if "uvloop" not in sys.modules and importlib.util.find_spec("uvloop") is None:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def _replace(owner: Any, name: str, replacement: Callable[..., Any]) -> None:
    _replaced.append((owner, name, owner.__dict__.get(name, getattr(owner, name))))
    setattr(owner, name, replacement)


def _original_run_until_complete(loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """What `install` replaced for this loop's class (asyncio's, or uvloop's own)."""
    for cls in type(loop).__mro__:
        for owner, name, original in _replaced:
            if owner is cls and name == "run_until_complete":
                return original  # type: ignore[no-any-return]
    return asyncio.base_events.BaseEventLoop.run_until_complete


def _give_portals(loop: asyncio.AbstractEventLoop) -> None:
    """A portal under every task the loop creates from now on (its factory wrapped)."""
    factory = loop.get_task_factory()
    if isinstance(factory, _tree.PortalTaskFactory) and factory.everything:
        return
    loop.set_task_factory(_tree.PortalTaskFactory(factory, everything=True))


def _run(
    main: Coroutine[Any, Any, T],
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """``asyncio.run`` after `anywait.install()` (see the module docs)."""
    if loop_factory is not None and sys.version_info < (3, 12):
        raise TypeError("run() got an unexpected keyword argument 'loop_factory'")
    loop = _get_running_loop()
    if loop is not None:
        _require_coroutine(main)
        return _nested(loop, main, debug, "asyncio.run()")
    host = _sync_loop._host()
    if isinstance(host, _sync_loop._Host):  # a persistent Trio run is no asyncio loop
        _require_coroutine(main)
        with _DebugMode(host.loop, debug):
            return host.run(main)
    kwargs: dict[str, Any] = {"debug": debug}
    if loop_factory is not None:
        kwargs["loop_factory"] = loop_factory
    with asyncio.Runner(**kwargs) as runner:
        _give_portals(runner.get_loop())
        return runner.run(main)


def _run_until_complete(self: asyncio.AbstractEventLoop, future: Awaitable[T]) -> T:
    """``loop.run_until_complete`` after `anywait.install()` (see the module docs)."""
    if _get_running_loop() is not self:
        if not self.is_running() and not self.is_closed():
            _give_portals(self)
        result: T = _original_run_until_complete(self)(self, future)
        return result
    what = "loop.run_until_complete()"
    if asyncio.isfuture(future):
        if future.get_loop() is not self:
            raise ValueError(
                "The future belongs to a different loop than the one specified as the loop argument"
            )
        _check_can_wait(None, what)
        waited: T = _wait(self, future, None)
        return waited
    if asyncio.iscoroutine(future):
        ran: T = _nested(self, future, None, what)
        return ran
    if inspect.isawaitable(future):
        return _nested(self, _as_coroutine(future), None, what)
    raise TypeError("An asyncio.Future, a coroutine or an awaitable is required")


def _nested(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    debug: bool | None,
    what: str,
) -> T:
    """Runs ``coro`` as a new task on the running ``loop`` and waits for it here."""
    _check_can_wait(coro, what)
    context = _shareable_context()
    # No shareable context: a copy of the current one, as stock asyncio.
    task = loop.create_task(coro) if context is None else loop.create_task(coro, context=context)
    return _wait(loop, task, debug)


def _wait(loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], debug: bool | None) -> T:
    with _DebugMode(loop, debug):
        result: T = await_(future)
    return result


def _check_can_wait(coro: Coroutine[Any, Any, Any] | None, what: str) -> None:
    """RuntimeError (``coro`` closed, so never "never awaited") unless the caller runs in
    a portal step, which can wait without re-entering the loop."""
    if _in_portal_step():
        return
    if coro is not None:
        coro.close()
    try:
        task, backend = _tasks.current_task()
    except RuntimeError:
        raise RuntimeError(
            f"{what} cannot be called from a running event loop here: this is a callback "
            "of the loop, not a task, so there is nothing to wait in without re-entering "
            "the loop; create a task for it instead (loop.create_task)"
        ) from None
    if isinstance(_tasks.task_coro(task, backend), Portal):
        why = "the current task's portal takes effect at its next step"
    else:
        why = "the current task has no portal (it started before anywait.install())"
        _tasks.install_portal(task, backend)
    raise RuntimeError(
        f"{what} cannot be called from a running event loop here: {why}, so it cannot "
        "wait without re-entering the loop. Let the task reach a checkpoint first (`await "
        "asyncio.sleep(0)`, or `await anywait.ensure_portal()`); from then on such calls "
        "work in it"
    )


class _DebugMode:
    """Sets ``loop``'s debug mode for a call when ``debug`` is not None."""

    __slots__ = ("debug", "loop", "saved")

    def __init__(self, loop: asyncio.AbstractEventLoop, debug: bool | None) -> None:
        self.loop = loop
        self.debug = debug
        self.saved = False

    def __enter__(self) -> None:
        if self.debug is not None:
            self.saved = self.loop.get_debug()
            self.loop.set_debug(self.debug)

    def __exit__(self, *exc: object) -> None:
        if self.debug is not None:
            self.loop.set_debug(self.saved)


def _require_coroutine(main: object) -> None:
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")


async def _as_coroutine(aw: Awaitable[T]) -> T:
    return await aw
