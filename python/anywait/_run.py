"""Programs with a portal under every task: `run` (re-exported by ``anywait``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from anywait import _tasks, _tree

T = TypeVar("T")


def run(
    main: Callable[..., Coroutine[Any, Any, T]],
    *args: Any,
    backend: str = "asyncio",
    **run_kwargs: Any,
) -> T:
    """Run ``main(*args)`` on a new event loop with a portal under every task, so that
    `await_` works anywhere in the program without `ensure_portal`.

    ``backend`` is ``"asyncio"`` (keyword arguments go to ``asyncio.Runner``, e.g.
    ``loop_factory=uvloop.new_event_loop``) or ``"trio"`` (keyword arguments go to
    ``trio.run``).
    """
    if backend == "asyncio":
        with asyncio.Runner(**run_kwargs) as runner:
            loop = runner.get_loop()
            loop.set_task_factory(_tree.PortalTaskFactory(loop.get_task_factory(), everything=True))
            return runner.run(main(*args))
    if backend == "trio":
        import trio

        instruments = [*run_kwargs.pop("instruments", ()), AutoPortalInstrument()]
        result: T = trio.run(main, *args, instruments=instruments, **run_kwargs)
        return result
    raise ValueError(f"unknown backend {backend!r}: use 'asyncio' or 'trio'")


class AutoPortalInstrument:
    """A Trio instrument that gives every new task a portal before its first step, so
    that `await_` works in all of them: ``trio.run(main, instruments=[
    anywait.AutoPortalInstrument()])``, which is what ``anywait.run(main,
    backend="trio")`` does. As greenback's instrument of the same name."""

    def task_spawned(self, task: Any) -> None:
        _tasks.install_portal(task, "trio")
