"""Fiber.throw(): raising an exception where the fiber is suspended."""

from __future__ import annotations

import pytest
from anywait.lowlevel import Fiber, suspend


class Thrown(Exception):
    pass


def _catch_at_suspension_point() -> object:
    try:
        suspend("waiting")
    except Thrown as exc:
        return exc
    return "nothing was thrown"


def test_throw_raises_the_exception_instance_at_the_suspension_point() -> None:
    fiber = Fiber(_catch_at_suspension_point)
    fiber.switch()
    thrown = Thrown("instance")
    assert fiber.throw(thrown) is thrown


def test_throw_instantiates_an_exception_class() -> None:
    fiber = Fiber(_catch_at_suspension_point)
    fiber.switch()
    assert type(fiber.throw(Thrown)) is Thrown


def test_throw_returns_the_value_the_fiber_suspends_with_next() -> None:
    def recover_and_wait() -> None:
        try:
            suspend()
        except Thrown:
            suspend("suspended again after recovering")

    fiber = Fiber(recover_and_wait)
    fiber.switch()
    assert fiber.throw(Thrown) == "suspended again after recovering"
    assert not fiber.dead


def test_an_exception_thrown_in_and_not_caught_propagates_from_throw() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    thrown = Thrown("not caught")
    with pytest.raises(Thrown) as caught:
        fiber.throw(thrown)
    assert caught.value is thrown


def test_fiber_is_dead_after_a_thrown_exception_escapes() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    with pytest.raises(Thrown):
        fiber.throw(Thrown)
    assert fiber.dead


def test_a_thrown_exception_runs_finally_blocks_in_the_fiber() -> None:
    log: list[str] = []

    def wait_with_cleanup() -> None:
        try:
            suspend()
        finally:
            log.append("finally")

    fiber = Fiber(wait_with_cleanup)
    fiber.switch()
    with pytest.raises(Thrown):
        fiber.throw(Thrown)
    assert log == ["finally"]


def test_throw_before_the_first_switch_propagates_without_running_the_function() -> None:
    calls: list[str] = []
    fiber = Fiber(calls.append, "ran")
    with pytest.raises(Thrown):
        fiber.throw(Thrown)
    assert calls == []


def test_fiber_is_dead_after_a_throw_before_its_first_switch() -> None:
    fiber = Fiber(lambda: None)
    with pytest.raises(Thrown):
        fiber.throw(Thrown)
    assert fiber.dead
    with pytest.raises(RuntimeError):
        fiber.switch()


def test_throw_into_a_finished_fiber_raises_runtime_error() -> None:
    fiber = Fiber(lambda: None)
    fiber.switch()
    with pytest.raises(RuntimeError):
        fiber.throw(Thrown)


def test_throw_can_raise_a_base_exception_in_the_fiber() -> None:
    def catch_everything() -> object:
        try:
            suspend()
        except BaseException as exc:
            return type(exc)
        return None

    fiber = Fiber(catch_everything)
    fiber.switch()
    assert fiber.throw(KeyboardInterrupt) is KeyboardInterrupt


def test_throw_reaches_a_suspend_deep_in_the_fibers_call_stack() -> None:
    def deep(depth: int) -> None:
        if depth:
            deep(depth - 1)
        else:
            suspend()

    def guarded() -> str:
        try:
            deep(50)
        except Thrown:
            return "caught at the top"
        return "not thrown"

    fiber = Fiber(guarded)
    fiber.switch()
    assert fiber.throw(Thrown) == "caught at the top"
