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

        instruments = [*run_kwargs.pop("instruments", ()), _PortalInstrument()]
        result: T = trio.run(main, *args, instruments=instruments, **run_kwargs)
        return result
    raise ValueError(f"unknown backend {backend!r}: use 'asyncio' or 'trio'")


class _PortalInstrument:
    """Trio instrument giving every new task a portal before its first step."""

    def task_spawned(self, task: Any) -> None:
        _tasks.install_portal(task, "trio")
