"""await_ next to asyncio's eager tasks (3.12+): a task whose first step runs inside
another task's step. Each scenario runs natively and through sync code + await_, and
the observable logs must match."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import anywait
import pytest
from portal_harness import (
    Wait,
    available,
)

Runner = Callable[..., subprocess.CompletedProcess[str]]


# --- asyncio eager tasks (3.12+) -------------------------------------------------------

needs_eager_tasks = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.eager_task_factory is new in Python 3.12"
)

EAGER_BACKENDS = ["asyncio", "asyncio-pytask", "uvloop"]


def eager_loop_factory(backend: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop whose task factory starts tasks eagerly (C or pure-Python Tasks)."""

    def make() -> asyncio.AbstractEventLoop:
        if backend == "uvloop":
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        if backend == "asyncio-pytask":
            loop.set_task_factory(asyncio.create_eager_task_factory(asyncio.tasks._PyTask))
        else:
            loop.set_task_factory(asyncio.eager_task_factory)
        return loop

    return make


def eager_unsupported(backend: str) -> str | None:
    """Why the backend's loop does not start tasks eagerly here, if it does not."""
    if sys.version_info < (3, 12):
        return None
    started: list[bool] = []

    async def child() -> None:
        started.append(True)

    async def probe() -> bool:
        task = asyncio.get_running_loop().create_task(child())
        eager = bool(started)
        await task
        return eager

    loop = eager_loop_factory(backend)()
    coro = probe()
    try:
        if not loop.run_until_complete(coro):
            return f"{type(loop).__module__} does not start tasks eagerly with an eager factory"
    except TypeError as exc:  # uvloop 0.23 on 3.13.0
        coro.close()
        return (
            f"{type(loop).__module__} calls the task factory with eager_start=, which this "
            f"Python's asyncio.eager_task_factory does not take ({exc})"
        )
    finally:
        loop.close()
    return None


@pytest.fixture(params=EAGER_BACKENDS)
def eager_backend(request: pytest.FixtureRequest) -> str:
    reason = available(request.param) or eager_unsupported(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


def run_eager(backend: str, main: Callable[[], Any]) -> Any:
    with asyncio.Runner(loop_factory=eager_loop_factory(backend)) as runner:
        return runner.run(main())


@needs_eager_tasks
def test_eager_task_gets_a_portal_during_its_eager_first_step(eager_backend: str) -> None:
    async def value(x: str) -> str:
        await asyncio.sleep(0.001)
        return x

    def scenario(wait: Wait) -> Callable[[], Any]:
        async def main() -> list[str]:
            log: list[str] = []

            async def child() -> str:
                log.append("child's eager first step")
                await wait.enter_task()  # ensure_portal() while running eagerly
                log.append("child's second step")
                log.append(await wait(value("awaited")))
                return "child done"

            task = asyncio.create_task(child())
            log.append(f"created, done={task.done()}")
            log.append(await task)
            return log

        return main

    native = run_eager(eager_backend, scenario(Wait(eager_backend, portal=False)))
    portal = run_eager(eager_backend, scenario(Wait(eager_backend, portal=True)))
    assert native == portal
    # ensure_portal() is a checkpoint: the eager step ends there, and the creator
    # resumes before the child's second step (which is its first in the portal).
    assert native == [
        "child's eager first step",
        "created, done=False",
        "child's second step",
        "awaited",
        "child done",
    ]


@needs_eager_tasks
def test_anywait_run_with_eager_tasks(eager_backend: str) -> None:
    """anywait.run wraps the loop's eager task factory: every task has a portal from
    its eager first step, which runs inside the creating task's step."""

    async def immediate(x: int) -> int:
        return x

    async def later(x: int) -> int:
        await asyncio.sleep(0.001)
        return x

    def scenario(portal: bool) -> Callable[[], Any]:
        def legacy(aw: Any) -> Any:
            return anywait.await_(aw)

        async def wait(aw: Any) -> Any:
            return legacy(aw) if portal else await aw

        async def main() -> tuple[list[Any], set[bool]]:
            log: list[Any] = []
            portals: set[bool] = set()

            async def quick(x: int) -> int:
                portals.add(anywait.has_portal())
                log.append(f"quick {x} starts")
                result: int = await wait(immediate(x))
                log.append(f"quick {x} ends")
                return result

            async def slow(x: int) -> int:
                portals.add(anywait.has_portal())
                log.append(f"slow {x} starts")
                result: int = await wait(later(x))
                log.append(f"slow {x} resumes")
                return result

            quick_task = asyncio.create_task(quick(1))
            log.append(f"quick created, done={quick_task.done()}")
            slow_task = asyncio.create_task(slow(2))
            log.append(f"slow created, done={slow_task.done()}")
            log += [await quick_task, await slow_task]
            gathered = asyncio.gather(slow(3))  # wraps slow(3) in a task: it starts at once
            log.append(f"gathered, done={gathered.done()}")
            log += await gathered
            return log, portals

        return main

    native, native_portals = run_eager(eager_backend, scenario(portal=False))
    portal, portals = anywait.run(
        scenario(portal=True), loop_factory=eager_loop_factory(eager_backend)
    )
    assert native == portal
    assert native[:5] == [
        "quick 1 starts",
        "quick 1 ends",
        "quick created, done=True",
        "slow 2 starts",
        "slow created, done=False",
    ]
    assert (native_portals, portals) == ({False}, {True})
