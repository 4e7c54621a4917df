"""Fibers inside fibers: who suspend() returns to, the active chain, forbidden resumes."""

from __future__ import annotations

import pytest
from anywait.lowlevel import Fiber, current, suspend


def test_a_fiber_can_run_another_fiber_to_completion() -> None:
    def outer() -> str:
        return "outer got " + Fiber(lambda: "inner result").switch()

    assert Fiber(outer).switch() == "outer got inner result"


def test_suspend_in_a_nested_fiber_returns_to_the_fiber_that_resumed_it() -> None:
    def outer() -> tuple[str, str]:
        inner = Fiber(lambda: suspend("from inner") + " finished")
        first = inner.switch()
        return first, inner.switch("inner")

    assert Fiber(outer).switch() == ("from inner", "inner finished")


def test_suspend_returns_to_the_most_recent_resumer_not_to_the_creator() -> None:
    def outer() -> str:
        inner = Fiber(lambda: suspend("inner suspended") + suspend("inner again"))
        assert inner.switch() == "inner suspended"
        suspend(inner)  # hand the suspended inner fiber to the thread's own stack
        return "outer finished"

    outer_fiber = Fiber(outer)
    inner = outer_fiber.switch()
    assert inner.switch("a") == "inner again"  # came back here, not to outer
    assert outer_fiber.switch() == "outer finished"
    assert inner.switch("b") == "ab"


def test_a_finished_fiber_returns_to_its_most_recent_resumer() -> None:
    log: list[str] = []

    def outer() -> None:
        inner = Fiber(lambda: suspend("inner suspended") or "inner returned")
        inner.switch()
        suspend(inner)
        log.append("outer resumed")

    outer_fiber = Fiber(outer)
    inner = outer_fiber.switch()
    assert inner.switch() == "inner returned"
    assert log == []
    outer_fiber.switch()
    assert log == ["outer resumed"]


def test_current_is_the_innermost_running_fiber() -> None:
    def outer() -> tuple[bool, bool, bool]:
        me = current()
        inner = Fiber(current)
        inner_saw = inner.switch()
        return me is outer_fiber, inner_saw is inner, current() is outer_fiber

    outer_fiber = Fiber(outer)
    assert outer_fiber.switch() == (True, True, True)


def test_a_fiber_is_running_while_a_fiber_it_resumed_executes() -> None:
    def outer() -> tuple[bool, bool]:
        me = current()
        assert me is not None
        return Fiber(lambda: (me.running, me.dead)).switch()

    assert Fiber(outer).switch() == (True, False)


def test_a_fiber_that_resumed_another_is_not_running_once_both_are_suspended() -> None:
    def outer() -> None:
        Fiber(suspend).switch()
        suspend()

    outer_fiber = Fiber(outer)
    outer_fiber.switch()
    assert not outer_fiber.running


def test_a_fiber_switching_to_itself_raises_runtime_error() -> None:
    def switch_to_self() -> str:
        me = current()
        assert me is not None
        with pytest.raises(RuntimeError):
            me.switch()
        return "still running"

    assert Fiber(switch_to_self).switch() == "still running"


def test_a_fiber_switching_to_its_resumer_raises_runtime_error() -> None:
    def outer() -> object:
        me = current()
        assert me is not None

        def inner() -> type[BaseException] | None:
            try:
                me.switch("should not arrive")
            except RuntimeError as exc:
                return type(exc)
            return None

        return Fiber(inner).switch()

    assert Fiber(outer).switch() is RuntimeError


def test_a_fiber_throwing_into_its_resumer_raises_runtime_error() -> None:
    def outer() -> object:
        me = current()
        assert me is not None

        def inner() -> type[BaseException] | None:
            try:
                me.throw(ValueError("should not arrive"))
            except RuntimeError as exc:
                return type(exc)
            return None

        return Fiber(inner).switch()

    assert Fiber(outer).switch() is RuntimeError


def test_a_refused_switch_to_an_ancestor_leaves_the_chain_working() -> None:
    def outer() -> str:
        me = current()
        assert me is not None

        def inner() -> str:
            with pytest.raises(RuntimeError):
                me.switch()
            return suspend("inner suspended") + " and finished"

        inner_fiber = Fiber(inner)
        assert inner_fiber.switch() == "inner suspended"
        assert current() is me
        return inner_fiber.switch("inner resumed")

    outer_fiber = Fiber(outer)
    assert outer_fiber.switch() == "inner resumed and finished"
    assert outer_fiber.dead
    assert current() is None


def test_each_of_a_hundred_nested_fibers_returns_to_the_fiber_that_started_it() -> None:
    def level(depth: int) -> list[int]:
        if depth == 100:
            return [depth]
        return [depth, *Fiber(level, depth + 1).switch()]

    assert Fiber(level, 1).switch() == list(range(1, 101))


def test_suspends_in_a_hundred_nested_fibers_each_return_one_level_up() -> None:
    received: dict[int, object] = {}

    def level(depth: int) -> None:
        if depth < 100:
            child = Fiber(level, depth + 1)
            received[depth] = child.switch()  # the child's suspend() lands here
            child.switch()
            assert child.dead
        if depth > 1:
            suspend(depth)

    Fiber(level, 1).switch()
    assert received == {depth: depth + 1 for depth in range(1, 100)}


def test_a_nested_fiber_outlives_the_fiber_that_created_it() -> None:
    def outer() -> Fiber:
        inner = Fiber(lambda: suspend("suspended") + " then finished")
        inner.switch()
        return inner

    inner = Fiber(outer).switch()
    assert inner.switch("resumed by main") == "resumed by main then finished"
