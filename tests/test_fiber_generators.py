"""Generators and coroutines alive across fiber switches, and suspend() inside their bodies.

A generator or coroutine whose body calls suspend() is suspended *with* the fiber: its
frame stays on the fiber's stack, mid-execution, until the fiber is resumed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator, Iterator
from typing import Any

import pytest
from anywait.lowlevel import Fiber, suspend


def test_suspend_inside_a_generator_body_suspends_the_fiber() -> None:
    def tens() -> Iterator[int]:
        for step in range(3):
            yield suspend(step) * 10

    fiber = Fiber(lambda: list(tens()))
    assert fiber.switch() == 0
    assert fiber.switch(1) == 1
    assert fiber.switch(2) == 2
    assert fiber.switch(3) == [10, 20, 30]


def test_a_generator_suspended_with_its_fiber_reports_itself_running() -> None:
    def body() -> Iterator[None]:
        suspend()
        yield

    generator = body()
    fiber = Fiber(next, generator)
    fiber.switch()
    assert generator.gi_running


def test_a_generator_suspended_with_its_fiber_cannot_be_advanced_elsewhere() -> None:
    def body() -> Iterator[str]:
        suspend()
        yield "from the fiber"
        yield "later"

    generator = body()
    fiber = Fiber(next, generator)
    fiber.switch()
    with pytest.raises(ValueError, match="already executing"):
        next(generator)
    assert fiber.switch() == "from the fiber"
    assert next(generator) == "later"


def test_suspend_inside_a_yield_from_chain_suspends_the_whole_chain() -> None:
    def innermost() -> Generator[int, None, str]:
        yield suspend("innermost") + 1
        return "inner return"

    def middle() -> Generator[int, None, str]:
        result = yield from innermost()
        yield 100
        return result

    def drive() -> list[object]:
        chain = middle()
        values: list[object] = list(chain)
        return values

    fiber = Fiber(drive)
    assert fiber.switch() == "innermost"
    assert fiber.switch(1) == [2, 100]


def test_a_generator_keeps_its_position_across_fiber_switches() -> None:
    shared = iter(range(6))

    def take_two_at_a_time() -> list[int]:
        taken = [next(shared), next(shared)]
        suspend()
        taken += [next(shared), next(shared)]
        return taken

    fiber = Fiber(take_two_at_a_time)
    fiber.switch()
    taken_outside = [next(shared)]
    taken_inside = fiber.switch()
    taken_outside.append(next(shared))
    assert (taken_inside, taken_outside) == ([0, 1, 3, 4], [2, 5])


def test_a_generator_started_in_a_fiber_continues_after_the_fiber_finished() -> None:
    def count() -> Iterator[int]:
        yield from range(5)

    def start_counting() -> Iterator[int]:
        counter = count()
        next(counter)
        suspend()
        next(counter)
        return counter

    fiber = Fiber(start_counting)
    fiber.switch()
    counter = fiber.switch()
    assert fiber.dead
    assert list(counter) == [2, 3, 4]


def test_generators_in_several_suspended_fibers_stay_independent() -> None:
    def squares(offset: int) -> list[int]:
        def gen() -> Iterator[int]:
            for n in range(4):
                suspend()
                yield (n + offset) ** 2

        return list(gen())

    fibers = [Fiber(squares, offset) for offset in range(10)]
    results: dict[int, list[int]] = {}
    for _round in range(5):
        for offset, fiber in enumerate(fibers):
            if not fiber.dead:
                value = fiber.switch()
                if fiber.dead:
                    results[offset] = value
    assert results == {o: [(n + o) ** 2 for n in range(4)] for o in range(10)}


def test_closing_a_fiber_suspended_in_a_generator_runs_the_generators_finally() -> None:
    log: list[str] = []

    def body() -> Iterator[None]:
        try:
            suspend()
            yield
        finally:
            log.append("generator finally")

    fiber = Fiber(lambda: list(body()))
    fiber.switch()
    fiber.close()
    assert log == ["generator finally"]


class _Trap:
    """An awaitable that yields its name to whoever drives the coroutine."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __await__(self) -> Generator[str, Any, Any]:
        return (yield self.name)


def _run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive ``coro`` with send(); forward each value it yields out of the fiber."""
    value = None
    while True:
        try:
            trap = coro.send(value)
        except StopIteration as stop:
            return stop.value
        value = suspend(trap)


def test_suspend_inside_a_coroutine_driven_by_send_suspends_the_fiber() -> None:
    async def ask() -> str:
        return "got " + suspend("question")

    def drive() -> str:
        coro = ask()
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the coroutine did not finish")

    fiber = Fiber(drive)
    assert fiber.switch() == "question"
    assert fiber.switch("answer") == "got answer"


def test_a_coroutine_suspended_with_its_fiber_reports_itself_running() -> None:
    async def body() -> None:
        suspend()

    coro = body()
    fiber = Fiber(coro.send, None)
    fiber.switch()
    assert coro.cr_running
    with pytest.raises(StopIteration):
        fiber.switch()


def test_a_coroutine_driven_in_a_fiber_forwards_its_awaits_through_suspend() -> None:
    async def add_two_answers() -> int:
        first = await _Trap("first")
        second = await _Trap("second")
        return first + second

    fiber = Fiber(_run_coroutine, add_two_answers())
    assert fiber.switch() == "first"
    assert fiber.switch(1) == "second"
    assert fiber.switch(2) == 3


def test_sync_code_called_from_a_coroutine_can_await_through_the_fiber() -> None:
    # The pattern anywait's portal builds on: a coroutine calls plain sync code, which
    # drives another coroutine whose awaits leave through suspend().
    def legacy_sync_helper() -> int:
        return _run_coroutine(nested()) * 10

    async def nested() -> int:
        return await _Trap("nested await")

    async def outer() -> int:
        before = await _Trap("outer await")
        return before + legacy_sync_helper()

    fiber = Fiber(_run_coroutine, outer())
    assert fiber.switch() == "outer await"
    assert fiber.switch(1) == "nested await"
    assert fiber.switch(2) == 21


def test_suspend_inside_an_async_generator_suspends_the_fiber() -> None:
    async def numbers() -> Any:
        yield suspend("first?")
        yield suspend("second?")

    async def collect() -> list[int]:
        return [n async for n in numbers()]

    fiber = Fiber(_run_coroutine, collect())
    assert fiber.switch() == "first?"
    assert fiber.switch(1) == "second?"
    assert fiber.switch(2) == [1, 2]


def test_awaitables_created_outside_can_be_awaited_inside_a_fiber() -> None:
    async def wait_for(aw: Awaitable[str]) -> str:
        return await aw

    pending = wait_for(_Trap("trap from outside"))
    fiber = Fiber(_run_coroutine, pending)
    assert fiber.switch() == "trap from outside"
    assert fiber.switch("answered") == "answered"
