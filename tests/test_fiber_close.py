"""Fiber.close(): unwinding a suspended fiber with FiberExit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from anywait.lowlevel import Fiber, FiberExit, current, suspend


def test_fiber_exit_is_a_base_exception_but_not_an_exception() -> None:
    assert issubclass(FiberExit, BaseException)
    assert not issubclass(FiberExit, Exception)


def test_close_runs_finally_blocks_of_a_suspended_fiber() -> None:
    log: list[str] = []

    def wait_with_cleanup() -> None:
        try:
            suspend()
        finally:
            log.append("finally")

    fiber = Fiber(wait_with_cleanup)
    fiber.switch()
    fiber.close()
    assert log == ["finally"]


def test_close_runs_context_manager_exits_with_fiber_exit() -> None:
    seen: list[object] = []

    @contextmanager
    def record_exit() -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            seen.append(type(exc))
            raise

    def wait_in_with() -> None:
        with record_exit():
            suspend()

    fiber = Fiber(wait_in_with)
    fiber.switch()
    fiber.close()
    assert seen == [FiberExit]


def test_close_raises_fiber_exit_at_the_suspension_point() -> None:
    def report_what_arrives() -> None:
        try:
            suspend()
        except BaseException as exc:
            arrived.append(exc)
            raise

    arrived: list[BaseException] = []
    fiber = Fiber(report_what_arrives)
    fiber.switch()
    fiber.close()
    assert [type(exc) for exc in arrived] == [FiberExit]


def test_fiber_exit_is_not_caught_by_except_exception() -> None:
    log: list[str] = []

    def catch_exceptions() -> None:
        try:
            suspend()
        except Exception:
            log.append("caught by except Exception")

    fiber = Fiber(catch_exceptions)
    fiber.switch()
    fiber.close()
    assert log == []


def test_close_returns_none_and_leaves_the_fiber_dead() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    assert fiber.close() is None
    assert fiber.dead


def test_close_is_quiet_when_the_fiber_returns_after_catching_fiber_exit() -> None:
    def return_on_exit() -> str:
        try:
            suspend()
        except FiberExit:
            return "returned"
        return "resumed"

    fiber = Fiber(return_on_exit)
    fiber.switch()
    assert fiber.close() is None
    assert fiber.dead


def test_close_raises_runtime_error_when_the_fiber_suspends_again() -> None:
    def refuse_to_die() -> str:
        try:
            suspend()
        except FiberExit:
            suspend("refused")
        return "finished later"

    fiber = Fiber(refuse_to_die)
    fiber.switch()
    with pytest.raises(RuntimeError, match="ignored FiberExit"):
        fiber.close()
    assert not fiber.dead
    assert fiber.switch() == "finished later"


def test_close_propagates_another_exception_raised_while_unwinding() -> None:
    class CleanupFailed(Exception):
        pass

    def fail_in_cleanup() -> None:
        try:
            suspend()
        finally:
            raise CleanupFailed

    fiber = Fiber(fail_in_cleanup)
    fiber.switch()
    with pytest.raises(CleanupFailed) as caught:
        fiber.close()
    assert isinstance(caught.value.__context__, FiberExit)
    assert fiber.dead


def test_close_before_the_first_switch_does_not_run_the_function() -> None:
    calls: list[str] = []
    fiber = Fiber(calls.append, "ran")
    fiber.close()
    assert calls == []


def test_fiber_is_dead_after_close_before_its_first_switch() -> None:
    fiber = Fiber(lambda: None)
    fiber.close()
    assert fiber.dead
    with pytest.raises(RuntimeError):
        fiber.switch()


def test_close_of_a_finished_fiber_does_nothing() -> None:
    log: list[str] = []

    def finish() -> None:
        try:
            pass
        finally:
            log.append("finally")

    fiber = Fiber(finish)
    fiber.switch()
    assert fiber.close() is None
    assert log == ["finally"]
    assert fiber.dead


def test_close_of_the_running_fiber_raises_runtime_error() -> None:
    def close_self() -> str:
        me = current()
        assert me is not None
        with pytest.raises(RuntimeError):
            me.close()
        return "still alive"

    fiber = Fiber(close_self)
    assert fiber.switch() == "still alive"


def test_close_of_a_fiber_waiting_on_a_nested_fiber_raises_runtime_error() -> None:
    def outer() -> str:
        me = current()
        assert me is not None

        def close_resumer() -> str:
            with pytest.raises(RuntimeError):
                me.close()
            return "inner done"

        return Fiber(close_resumer).switch()

    fiber = Fiber(outer)
    assert fiber.switch() == "inner done"
    assert fiber.dead


def test_close_unwinds_a_fiber_suspended_deep_in_its_call_stack() -> None:
    unwound: list[int] = []

    def deep(depth: int) -> None:
        try:
            if depth:
                deep(depth - 1)
            else:
                suspend()
        finally:
            unwound.append(depth)

    fiber = Fiber(deep, 100)
    fiber.switch()
    fiber.close()
    assert unwound == list(range(101))


def test_a_fiber_can_close_another_suspended_fiber() -> None:
    log: list[str] = []

    def victim() -> None:
        try:
            suspend()
        finally:
            log.append("victim unwound")

    def closer(target: Fiber) -> str:
        target.close()
        log.append("closer continues")
        return "closer done"

    target = Fiber(victim)
    target.switch()
    assert Fiber(closer, target).switch() == "closer done"
    assert log == ["victim unwound", "closer continues"]
