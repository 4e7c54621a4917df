"""The IPython extension: ``%load_ext anywait`` (``load_ipython_extension`` and
``unload_ipython_extension``, re-exported by ``anywait``).

In a Jupyter kernel (ipykernel), an asyncio loop is running and every shell message is
handled by a task of its own; a sync cell runs inside that task's step. Loading the
extension calls `anywait.install()` there, so the tasks of later messages (and the one
running the loading cell, from its next step) have portals: in a cell, ``await_``
works, library code's ``asyncio.run()`` runs on the kernel's loop, and objects made by
earlier cells (bound to that loop) keep working, while the kernel goes on serving
comm and control messages.

Ctrl-C (a kernel interrupt) is SIGINT in the kernel's main thread. While a cell waits in
``await_`` the thread is in the loop, where ipykernel's KeyboardInterrupt would end the
kernel. So while a cell runs, the extension handles SIGINT itself: if the cell's own code
is running, KeyboardInterrupt is raised there, as stock; if the cell is waiting, what it
waits for is cancelled (its ``finally`` blocks run) and the ``await_`` raises
KeyboardInterrupt instead of the CancelledError, so the cell stops as an interrupted sync
cell does and the kernel lives. (A top-level ``await`` in an async cell is ipykernel's,
which cancels it, as without the extension.)

In plain IPython (no running loop) loading it starts a persistent loop
(`anywait.start_loop`) and runs top-level ``await`` cells on that loop too, so the
objects of both kinds of cell share one loop.

Invariants: the SIGINT handler is ours only between a cell's ``pre_run_cell`` and
``post_run_cell`` events, on the main thread, and the one it replaced is put back
then; only a cancellation that the handler made for the running cell's task is turned
into KeyboardInterrupt, and that task's cancel request is withdrawn (``uncancel``).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import types
from typing import Any

from anywait import _nested_run, _sync_loop
from anywait._anywait import _in_portal_step, _set_cancelled_hook, await_


class _Cell:
    """The cell running now on the main thread (the one Ctrl-C is for)."""

    task: asyncio.Task[Any] | None = None
    interrupts = 0
    saved_handler: Any = None
    handler_installed = False


_cell = _Cell()
#: What `load_ipython_extension` did, for `unload_ipython_extension` to undo.
_loaded: dict[int, dict[str, Any]] = {}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext anywait``: see the module docs."""
    if id(ipython) in _loaded:
        return
    done: dict[str, Any] = {"installed": not _nested_run._replaced}
    _nested_run.install()
    if asyncio._get_running_loop() is None:
        # Plain IPython: no loop runs between cells. One persistent loop for both
        # await_ in sync cells and top-level await.
        if _sync_loop._host() is None:
            _sync_loop.start_loop()
            done["started_loop"] = True
        done["loop_runner"] = ipython.loop_runner
        ipython.loop_runner = _run_on_persistent_loop
    ipython.events.register("pre_run_cell", _pre_run_cell)
    ipython.events.register("post_run_cell", _post_run_cell)
    _loaded[id(ipython)] = done


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext anywait``: undoes what loading did (portals already given stay)."""
    done = _loaded.pop(id(ipython), None)
    if done is None:
        return
    ipython.events.unregister("pre_run_cell", _pre_run_cell)
    ipython.events.unregister("post_run_cell", _post_run_cell)
    if "loop_runner" in done:
        ipython.loop_runner = done["loop_runner"]
    if done.get("started_loop") and _sync_loop._host() is not None:
        _sync_loop.stop_loop()
    if done["installed"]:
        _nested_run.uninstall()


def _run_on_persistent_loop(coro: Any) -> Any:
    """IPython's loop runner for top-level ``await`` cells, in plain IPython."""
    return await_(coro)


def _pre_run_cell(info: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only (a kernel subshell's cell)
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    _cell.task = task
    _cell.interrupts = 0
    if task is not None and not _cell.handler_installed:
        _cell.saved_handler = signal.signal(signal.SIGINT, _on_sigint)
        _cell.handler_installed = True


def _post_run_cell(result: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    task, _cell.task = _cell.task, None
    if _cell.handler_installed:
        _cell.handler_installed = False
        if signal.getsignal(signal.SIGINT) is _on_sigint:
            signal.signal(signal.SIGINT, _cell.saved_handler)
        _cell.saved_handler = None
    if task is not None and _cell.interrupts:
        _withdraw_cancel(task, _cell.interrupts)  # interrupts after the last await_
    _cell.interrupts = 0


def _on_sigint(signum: int, frame: types.FrameType | None) -> None:
    task = _cell.task
    if task is None or task.done():
        raise KeyboardInterrupt
    try:
        running = asyncio.current_task()
    except RuntimeError:
        running = None
    if running is task and _in_portal_step():
        raise KeyboardInterrupt  # the cell's own code is running: stop it there
    # The cell waits (or its task is between steps): cancel what it waits for, from a
    # callback of the loop, not from wherever the loop was when the signal came. The
    # threadsafe call also wakes the loop's select, which the signal alone does not
    # (Python retries an interrupted select with its old timeout).
    task.get_loop().call_soon_threadsafe(_interrupt, task)


def _interrupt(task: asyncio.Task[Any]) -> None:
    if task is _cell.task and not task.done():
        _cell.interrupts += 1
        task.cancel("KeyboardInterrupt (kernel interrupt, anywait)")


def _on_cancelled(exc: BaseException) -> BaseException | None:
    """The cancelled hook of `await_` (see the module docs)."""
    task = _cell.task
    if task is None or not _cell.interrupts:
        return None
    try:
        running = asyncio.current_task()
    except RuntimeError:
        return None
    if running is not task:
        return None
    _withdraw_cancel(task, _cell.interrupts)
    _cell.interrupts = 0
    interrupt = KeyboardInterrupt()
    interrupt.__context__ = exc
    interrupt.__suppress_context__ = True
    return interrupt.with_traceback(exc.__traceback__)


def _withdraw_cancel(task: asyncio.Task[Any], count: int) -> None:
    """Withdraws the ``count`` cancel requests the SIGINT handler made (no others)."""
    for _ in range(min(count, task.cancelling())):
        task.uncancel()


_set_cancelled_hook(asyncio.CancelledError, _on_cancelled)
