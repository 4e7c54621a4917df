"""Run one async scenario on each event loop anywait supports.

A *backend* names an event loop and a task flavour: asyncio with its C ``Task``,
asyncio with the pure-Python ``Task``, uvloop, and Trio. Backends whose library is not
installed are skipped with that reason (Debian's debug interpreters cannot load
uvloop's compiled module, for example).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

BACKENDS = ["asyncio", "asyncio-pytask", "uvloop", "trio"]


def available(backend: str) -> str | None:
    """None if the backend can run here, else why not."""
    module = {"uvloop": "uvloop", "trio": "trio"}.get(backend)
    if module is None:
        return None
    try:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
        __import__(module)
    except ImportError as exc:
        return f"{module} cannot be imported here: {exc}"
    return None


def _pytask_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
    return asyncio.tasks._PyTask(coro, loop=loop, **kwargs)


def run(backend: str, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` as the root task of a fresh event loop of ``backend``."""
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
    if backend == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


def require(backend: str) -> None:
    reason = available(backend)
    if reason is not None:
        pytest.skip(reason)


def current_asyncio_task() -> Any:
    """asyncio.current_task(), also for pure-Python Tasks on 3.14 (whose C
    current_task() does not see them)."""
    task = asyncio.current_task()
    if task is None and hasattr(asyncio.tasks, "_py_current_task"):
        task = asyncio.tasks._py_current_task()
    return task
