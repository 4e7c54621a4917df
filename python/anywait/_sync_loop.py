"""Sync-first programs: a persistent asyncio event loop on its own fiber, so that plain
sync code with no running loop can `await_` (`start_loop`, `stop_loop`,
`persistent_loop`; re-exported by ``anywait``).

The twin of this is one long-lived ``asyncio.Runner``: ``await_(aw)`` in sync code is
``runner.run(aw)``, with the same value, exception, cancellation and timeouts, and the
loop's other tasks running during every call and persisting between calls. What
differs is the cost: the loop is started once, on a fiber (`anywait.lowlevel`), and
each call resumes it where it left off instead of setting ``run_forever`` up and
tearing it down again (``benches/bench_sync_first.py``).

How a call goes (``_Host.run``), all on the caller's thread:

1. the awaitable becomes a task of the loop, in a copy of the caller's context;
2. the caller switches to the loop's fiber, which is either not started yet (it then
   enters ``loop.run_forever()``) or suspended where the previous call left it;
3. the task's done callback (``_Host._done``) asks for a pause, and the fiber suspends
   where ``Runner.run`` would have stopped the loop: at the end of that iteration, so
   the task's other done callbacks, and everything else that was ready, ran first. On
   asyncio's own loops that place is the start of the next iteration's ``select``
   (``_PausingSelector``); the switch then returns to the caller, who reads the
   task's result.

While the fiber is suspended, sync code sees what it sees between two
``Runner.run`` calls: no running loop (``asyncio.get_running_loop()`` raises), the
async-generator hooks that were set before the loop started, and the persistent loop
as the thread's event loop. Two things are different and documented: the loop
``is_running()`` (it is, on its fiber), and so ``loop.run_forever()`` from sync code
raises; ``loop.run_until_complete(aw)`` from sync code is routed to ``await_(aw)``.

Where the fiber cannot pause inside the loop, the loop is stopped at the end of each
call and run again at the next, exactly as ``Runner`` does, on the same fiber: loops
without asyncio's selector (uvloop), and debug mode (``loop.get_debug()``), which times
every callback and would report the one a fiber is suspended in as slow.

Invariants: one ``_Host`` per thread at most, touched only on its thread; its fiber
is never resumed while it runs (``run`` is not re-entered: inside the fiber a loop is
running, so `await_` there is the portal's business, or the no-portal error).
"""

from __future__ import annotations

import asyncio
import asyncio.constants
import atexit
import contextlib
import contextvars
import signal
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Literal, TypeVar, overload

from anywait import _tree
from anywait._anywait import Fiber, _make_portal, _set_sync_first, suspend
from anywait._sync_trio import TrioHost

T = TypeVar("T")

_get_running_loop = asyncio.events._get_running_loop
_set_running_loop = asyncio.events._set_running_loop


class _Host:
    """A persistent loop and the fiber it runs on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.current_thread()
        self.fiber: Fiber | None = None
        self.target: asyncio.Task[Any] | None = None  # the task a sync caller waits for
        self.outer_hooks: Any = sys.get_asyncgen_hooks()
        self.interrupts = 0
        self.sigint_installed = False
        self.closing = False
        self.factory = _tree.PortalTaskFactory(loop.get_task_factory(), everything=True)
        loop.set_task_factory(self.factory)
        self.pause_pending = False
        self.selector: _PausingSelector | None = None
        if isinstance(loop, asyncio.BaseEventLoop) and hasattr(loop, "_selector"):
            self.selector = _PausingSelector(loop._selector, self)
            loop._selector = self.selector

    # -- a call from sync code ----------------------------------------------------------

    def run(self, aw: Awaitable[T]) -> T:
        if self.target is not None:
            _close(aw)
            raise RuntimeError(
                "await_() re-entered the persistent loop while it was already waiting for "
                f"{self.target!r} on this thread"
            )
        task = self._create_task(_as_coroutine(aw))
        self.target = task
        self.interrupts = 0
        task.add_done_callback(self._done)
        try:
            while not task.done():
                self._resume()
                if not task.done() and (self.fiber is None or self.fiber.dead or self.stopped):
                    raise RuntimeError("Event loop stopped before Future completed.")
        finally:
            self.target = None
        if self.interrupts and task.cancelled():
            uncancel = getattr(task, "uncancel", None)
            if uncancel is None or uncancel() == 0:
                raise KeyboardInterrupt()
        return task.result()

    def _create_task(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        loop = self.loop
        context = contextvars.copy_context()
        if loop.get_task_factory() is self.factory and self.factory.previous is None:
            # What create_task would do through our factory, without the two calls.
            if loop.is_closed():
                coro.close()
                raise RuntimeError("Event loop is closed")
            return asyncio.Task(_make_portal(coro), loop=loop, context=context)
        return loop.create_task(coro, context=context)

    stopped = False  # set by _main when run_forever returned without a pause

    def _resume(self) -> None:
        fiber = self.fiber
        if fiber is None or fiber.dead:
            fiber = self.fiber = Fiber(self._main)
        self.stopped = False
        fiber.switch()

    # -- on the loop's fiber ------------------------------------------------------------

    def _main(self) -> None:
        while True:
            self.outer_hooks = sys.get_asyncgen_hooks()
            self.loop.run_forever()
            self.pause_pending = False
            if self.closing:
                return
            # Stopped: by debug mode's end of a call, or by code calling loop.stop().
            self.stopped = True
            suspend()
            if self.closing:
                return

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task is not self.target:
            return  # an earlier call's task, finishing late (cancelled at shutdown, say)
        if self.selector is not None and not self.loop.get_debug():
            self.pause_pending = True  # the selector pauses at the next iteration's start
        else:
            self.loop.stop()

    def _pause(self) -> None:
        loop_hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(*self.outer_hooks)
        _set_running_loop(None)
        try:
            suspend()
        finally:
            _set_running_loop(self.loop)
            sys.set_asyncgen_hooks(*loop_hooks)

    # -- Ctrl-C -------------------------------------------------------------------------

    def on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        # As Runner's handler: the first Ctrl-C cancels what the sync caller awaits, and
        # its await_ raises KeyboardInterrupt once that task has finished; anything else
        # is the default behaviour.
        task = self.target
        if task is not None and not task.done() and self.interrupts == 0:
            self.interrupts += 1
            task.cancel()
            self.loop.call_soon_threadsafe(_nothing)
            return
        raise KeyboardInterrupt()

    def routed_run_until_complete(self, future: Awaitable[T]) -> T:
        if self.thread is threading.current_thread() and _get_running_loop() is None:
            return self.run(future)
        # The class's method, looked up now: `anywait.install()` may have replaced it.
        result: T = type(self.loop).run_until_complete(self.loop, future)
        return result


class _PausingSelector:
    """An asyncio loop's selector, through which the loop's fiber pauses where one
    ``Runner.run`` would have returned.

    ``run_forever`` stops at the end of the iteration in which ``stop()`` was called,
    and an iteration begins with ``select``: so a pause asked for during an iteration
    (``_Host._done``) happens at the next call to ``select``. Once resumed, the select
    does not block (``timeout`` 0): the caller has scheduled a new task, and the
    timeout was computed before the pause, from timers that may be due now."""

    __slots__ = ("host", "selector")

    def __init__(self, selector: Any, host: _Host) -> None:
        self.selector = selector
        self.host = host

    def select(self, timeout: float | None = None) -> Any:
        host = self.host
        if host.pause_pending:
            host.pause_pending = False
            host._pause()
            timeout = 0
        return self.selector.select(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.selector, name)


def _nothing() -> None:
    pass


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _as_coroutine(aw: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if isinstance(aw, types.CoroutineType):
        return aw
    return _await(aw)


def _close(aw: object) -> None:
    if isinstance(aw, types.CoroutineType):
        aw.close()


_local = threading.local()
#: Thread -> its host, for the error of an await_ on a thread that has none.
_hosts: dict[threading.Thread, _Host | TrioHost] = {}


def _host() -> _Host | TrioHost | None:
    host: _Host | TrioHost | None = getattr(_local, "host", None)
    return host


def _in_trio_run() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    in_trio_run = getattr(trio.lowlevel, "in_trio_run", None)  # Trio 0.23+
    if in_trio_run is not None:
        return bool(in_trio_run())
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _await_sync_first(aw: Awaitable[Any]) -> Any:
    """`await_` where no portal step runs (called by the compiled core)."""
    host = _host()
    if host is not None:
        if _get_running_loop() is not None or _in_trio_run():
            return NotImplemented  # a loop callback, or another loop: the no-portal error
        return host.run(aw)
    if _get_running_loop() is not None:
        return NotImplemented
    others = [t.name for t in _hosts]
    if others:
        _close(aw)
        raise RuntimeError(
            "await_() in sync code runs on the persistent loop of its own thread, and this "
            f"thread has none (the one started by anywait.start_loop() belongs to thread "
            f"{others[0]!r}): call anywait.start_loop() on this thread too, or make the "
            "call on that thread"
        )
    return NotImplemented


_set_sync_first(_await_sync_first)


@overload
def start_loop(
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    backend: Literal["asyncio"] = "asyncio",
) -> asyncio.AbstractEventLoop: ...
@overload
def start_loop(*, backend: Literal["trio"]) -> Any: ...  # trio.lowlevel.TrioToken
@overload
def start_loop(
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    backend: str = "asyncio",
) -> Any: ...
def start_loop(
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    backend: str = "asyncio",
) -> Any:
    """Start a persistent asyncio event loop on this thread, and return it.

    From then on `await_` in plain sync code on this thread (outside any task) runs
    its awaitable as a task of that loop and returns what ``asyncio.Runner.run``
    would; the loop's other tasks run during every such call and persist between
    calls. Every task of the loop gets a portal, so sync code they call may `await_`
    too. The loop becomes the thread's event loop. ``loop_factory`` makes the loop
    (e.g. ``uvloop.new_event_loop``; default ``asyncio.new_event_loop``), and
    ``debug`` sets its debug mode, as for ``asyncio.Runner``. On the main thread,
    Ctrl-C during an `await_` cancels what it awaits and raises KeyboardInterrupt there.

    ``backend="trio"`` starts a persistent Trio run instead (no ``loop_factory`` or
    ``debug``), and returns its ``trio.lowlevel.TrioToken``: `await_` runs each
    awaitable as a new system task of the run, and what the run holds (system tasks,
    channels, sockets) persists between calls.

    Stop it with `stop_loop` (interpreter exit does that for the main thread).
    RuntimeError if an event loop is running on this thread, or a persistent loop is
    started already.
    """
    if _get_running_loop() is not None:
        raise RuntimeError(
            "start_loop() cannot be called while an event loop is running on this thread: "
            "code running in a task can use await_() directly (it needs a portal: `await "
            "anywait.ensure_portal()`)"
        )
    if _host() is not None:
        raise RuntimeError(
            "this thread has a persistent loop already: use it, or call "
            "anywait.stop_loop() before starting another"
        )
    if backend == "trio":
        if loop_factory is not None or debug is not None:
            raise TypeError("loop_factory and debug are asyncio's: not for backend='trio'")
        if _in_trio_run():
            raise RuntimeError("start_loop() cannot be called inside a Trio run")
        trio_host = TrioHost()
        _local.host = trio_host
        _hosts[trio_host.thread] = trio_host
        return trio_host.token
    if backend != "asyncio":
        raise ValueError(f"unknown backend {backend!r}: use 'asyncio' or 'trio'")
    loop = asyncio.new_event_loop() if loop_factory is None else loop_factory()
    if debug is not None:
        loop.set_debug(debug)
    host = _Host(loop)  # with a portal under every task of the loop
    with contextlib.suppress(AttributeError, TypeError):  # a loop class with __slots__
        loop.run_until_complete = host.routed_run_until_complete  # type: ignore[method-assign,assignment]
    asyncio.set_event_loop(loop)
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, host.on_sigint)
        host.sigint_installed = True
    _local.host = host
    _hosts[host.thread] = host
    return loop


def stop_loop() -> None:
    """Shut this thread's persistent loop down as ``asyncio.Runner.close()`` does:
    cancel the tasks still running and wait for them to finish, then
    ``shutdown_asyncgens()``, ``shutdown_default_executor()``, and close the loop.
    RuntimeError if the thread has none, or when called from inside the loop."""
    host = _host()
    if host is None:
        raise RuntimeError("this thread has no persistent loop to stop (see anywait.start_loop)")
    if _get_running_loop() is not None or _in_trio_run():
        raise RuntimeError(
            "stop_loop() must be called from sync code, not from a task or callback of a "
            "running loop"
        )
    if isinstance(host, TrioHost):
        try:
            host.stop()
        finally:
            _local.host = None
            _hosts.pop(host.thread, None)
        return
    loop = host.loop
    try:
        _cancel_all_tasks(host)
        host.run(loop.shutdown_asyncgens())
        timeout = getattr(asyncio.constants, "THREAD_JOIN_TIMEOUT", None)  # 3.12+
        if timeout is None:
            host.run(loop.shutdown_default_executor())
        else:
            host.run(loop.shutdown_default_executor(timeout))  # type: ignore[call-arg,unused-ignore]
    finally:
        host.closing = True
        fiber = host.fiber
        if fiber is not None and fiber.started and not fiber.dead:
            loop.stop()
            fiber.switch()  # the loop finishes its iteration and run_forever returns
        if host.sigint_installed and signal.getsignal(signal.SIGINT) == host.on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        asyncio.set_event_loop(None)  # as Runner.close() does
        loop.close()
        _local.host = None
        _hosts.pop(host.thread, None)


def _cancel_all_tasks(host: _Host) -> None:
    loop = host.loop
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    host.run(asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during anywait.stop_loop() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


@overload
def persistent_loop(
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    backend: Literal["asyncio"] = "asyncio",
) -> contextlib.AbstractContextManager[asyncio.AbstractEventLoop]: ...
@overload
def persistent_loop(*, backend: Literal["trio"]) -> contextlib.AbstractContextManager[Any]: ...
@overload
def persistent_loop(
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    backend: str = "asyncio",
) -> contextlib.AbstractContextManager[Any]: ...
@contextlib.contextmanager
def persistent_loop(
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    backend: str = "asyncio",
) -> Iterator[Any]:
    """`start_loop` for a ``with`` block: the loop is stopped (`stop_loop`) when the
    block ends."""
    loop = start_loop(loop_factory=loop_factory, debug=debug, backend=backend)
    try:
        yield loop
    finally:
        stop_loop()


def _stop_at_exit() -> None:
    if _host() is not None:
        stop_loop()


atexit.register(_stop_at_exit)
