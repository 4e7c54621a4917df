"""``await_`` inside stackful generators (and plain fibers) nested in a portal step.

Sync code in a portal task consumes a ``@anywait.generator`` whose body calls
``await_``; the traps are relayed through the generator's fiber back to the task's
step. The native twin is an async generator consumed with ``async for``: values,
interleaving with another task, exceptions, cancellation and context must match, on
every backend.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import Any

import anywait
import pytest
from anywait import await_, yield_
from anywait.lowlevel import Fiber
from portal_harness import (
    cancelled_exc_class,
    checkpoint,
    current_asyncio_task,
    has_cancel_scopes,
    move_on_after,
    run,
    sleep,
    task_group,
)

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def twins(backend: str, log: list[str]) -> tuple[Any, Any]:
    """(native async generator function, stackful generator function) with one body."""

    async def native(n: int) -> AsyncIterator[str]:
        for i in range(n):
            log.append(f"gen {i}")
            await sleep(backend, 0)
            yield f"{i}:{VAR.get()}"

    def deep(i: int) -> None:
        log.append(f"gen {i}")
        await_(sleep(backend, 0))
        yield_(f"{i}:{VAR.get()}")

    @anywait.generator
    def stackful(n: int) -> None:
        for i in range(n):
            deep(i)

    return native, stackful


def scenario_pair(backend: str, body: Any) -> tuple[Any, Any]:
    """Run ``body(log, consume)`` natively and through the portal; ``consume(n)``
    returns the list of items, consuming natively (async for) or from sync code."""

    async def main(portal: bool) -> Any:
        log: list[str] = []
        native, stackful = twins(backend, log)

        async def consume(n: int) -> list[str]:
            if portal:
                return [item for item in stackful(n)]
            return [item async for item in native(n)]

        if portal:
            await anywait.ensure_portal()
        else:
            await checkpoint(backend)
        return await body(log, consume)

    return run(backend, lambda: main(False)), run(backend, lambda: main(True))


def test_values_and_interleaving_with_another_task(backend: str) -> None:
    async def body(log: list[str], consume: Any) -> Any:
        VAR.set("task")
        async with task_group(backend) as tg:

            async def other() -> None:
                for i in range(3):
                    log.append(f"other {i}")
                    await checkpoint(backend)

            tg.start_soon(other)
            items = await consume(3)
        return items, sorted(log)

    native, portal = scenario_pair(backend, body)
    assert native == portal
    assert native[0] == ["0:task", "1:task", "2:task"]


def test_an_exception_from_the_awaited_code_propagates(backend: str) -> None:
    async def failing() -> None:
        await sleep(backend, 0)
        raise KeyError("from awaited")

    @anywait.generator
    def gen() -> None:
        yield_(1)
        await_(failing())

    async def main() -> list[Any]:
        await anywait.ensure_portal()
        seen: list[Any] = []
        try:
            for item in gen():
                seen.append(item)
        except KeyError as exc:
            seen.append(repr(exc))
        return seen

    assert run(backend, main) == [1, "KeyError('from awaited')"]


def test_cancellation_reaches_the_await__in_the_generator(backend: str) -> None:
    log: list[str] = []

    @anywait.generator
    def gen() -> None:
        try:
            await_(sleep(backend, 10))
        except cancelled_exc_class(backend):
            log.append("cancelled inside")
            raise
        finally:
            log.append("finally")
        yield_("never")

    async def main() -> None:
        await anywait.ensure_portal()
        if has_cancel_scopes(backend):
            with move_on_after(backend, 0.01):
                next(gen())
            log.append("after scope")
        else:
            import asyncio

            task = current_asyncio_task()
            assert task is not None
            asyncio.get_running_loop().call_later(0.01, task.cancel)
            try:
                next(gen())
            except asyncio.CancelledError:
                log.append("cancelled outside")
                task.uncancel()

    run(backend, main)
    assert log[:2] == ["cancelled inside", "finally"]
    assert len(log) == 3


def test_a_generator_waiting_in_await__is_busy_to_other_tasks(backend: str) -> None:
    @anywait.generator
    def gen() -> None:
        yield_(1)
        await_(sleep(backend, 0.05))
        yield_(2)

    async def main() -> list[Any]:
        await anywait.ensure_portal()
        g = gen()
        seen: list[Any] = [next(g)]
        async with task_group(backend) as tg:

            async def intruder() -> None:
                await anywait.ensure_portal()
                await sleep(backend, 0.01)
                try:
                    next(g)
                except ValueError as exc:
                    seen.append((str(exc), g.gi_running))

            tg.start_soon(intruder)
            await checkpoint(backend)
            seen.append(next(g))  # waits 0.05 s in the generator's await_
        return seen

    # The intruder runs while the consumer waits in the generator's await_.
    assert run(backend, main) == [1, ("generator already executing", True), 2]


def test_generators_nest_and_each_relays(backend: str) -> None:
    @anywait.generator
    def inner(n: int) -> None:
        for i in range(n):
            await_(sleep(backend, 0))
            yield_(i)

    @anywait.generator
    def outer() -> None:
        for i in inner(3):
            await_(checkpoint(backend))
            yield_(i * 10)

    async def main() -> list[int]:
        await anywait.ensure_portal()
        return list(outer())

    assert run(backend, main) == [0, 10, 20]


def test_a_plain_fiber_in_a_portal_step_can_await_(backend: str) -> None:
    async def value() -> str:
        await sleep(backend, 0)
        return "from the loop"

    async def main() -> Any:
        await anywait.ensure_portal()
        fiber = Fiber(lambda: await_(value()))
        return fiber.switch()

    assert run(backend, main) == "from the loop"


def test_await__in_a_generator_consumed_outside_a_portal_says_so() -> None:
    @anywait.generator
    def gen() -> None:
        await_(sleep("asyncio", 0))
        yield_(1)

    with pytest.raises(RuntimeError, match="needs a portal"):
        next(gen())
