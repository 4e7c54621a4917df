"""contextvars: a fiber runs in a copy of the context current when it was created.

Like an asyncio task: what the fiber sets stays inside it (across its own suspends),
and what the outside sets after the fiber was created does not reach it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator

import pytest
from anywait.lowlevel import Fiber, suspend

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")


@pytest.fixture(autouse=True)
def _isolated_context() -> Iterator[None]:
    # Tests set `var` on the thread's own stack; put it back so later tests start clean.
    token = var.set("default")
    yield
    var.reset(token)


def test_a_fiber_sees_values_set_before_it_was_created() -> None:
    var.set("set before creation")
    fiber = Fiber(var.get)
    assert fiber.switch() == "set before creation"


def test_values_set_outside_after_creation_are_invisible_to_a_new_fiber() -> None:
    var.set("at creation")
    fiber = Fiber(var.get)
    var.set("after creation")
    assert fiber.switch() == "at creation"


def test_values_set_outside_while_the_fiber_is_suspended_are_invisible_to_it() -> None:
    def read_twice() -> tuple[str, str]:
        first = var.get()
        suspend()
        return first, var.get()

    var.set("at creation")
    fiber = Fiber(read_twice)
    fiber.switch()
    var.set("while suspended")
    assert fiber.switch() == ("at creation", "at creation")


def test_values_set_inside_a_fiber_are_invisible_outside() -> None:
    fiber = Fiber(var.set, "inside")
    fiber.switch()
    assert var.get() == "default"


def test_values_set_inside_a_suspended_fiber_are_invisible_outside() -> None:
    def set_and_wait() -> None:
        var.set("inside")
        suspend()

    fiber = Fiber(set_and_wait)
    fiber.switch()
    assert var.get() == "default"
    fiber.switch()


def test_values_set_inside_a_fiber_persist_across_its_suspends() -> None:
    def set_then_read() -> str:
        var.set("set by the fiber")
        suspend()
        suspend()
        return var.get()

    fiber = Fiber(set_then_read)
    fiber.switch()
    var.set("outside, between switches")
    fiber.switch()
    assert fiber.switch() == "set by the fiber"


def test_a_token_from_before_a_suspend_resets_the_value_after_it() -> None:
    def set_suspend_reset() -> str:
        token = var.set("temporary")
        suspend()
        var.reset(token)
        return var.get()

    var.set("original")
    fiber = Fiber(set_suspend_reset)
    fiber.switch()
    assert fiber.switch() == "original"


def test_fibers_created_from_the_same_context_get_separate_copies() -> None:
    def set_and_report(value: str) -> str:
        var.set(value)
        suspend()
        return var.get()

    first, second = Fiber(set_and_report, "first"), Fiber(set_and_report, "second")
    first.switch()
    second.switch()
    assert (first.switch(), second.switch()) == ("first", "second")


def test_a_fiber_created_inside_context_run_copies_that_context() -> None:
    other = contextvars.Context()
    other.run(var.set, "in the other context")
    fiber = other.run(Fiber, var.get)
    assert fiber.switch() == "in the other context"


def test_switching_inside_context_run_does_not_change_the_fibers_context() -> None:
    var.set("at creation")
    fiber = Fiber(lambda: (var.get(), suspend(), var.get()))
    other = contextvars.Context()
    other.run(var.set, "in the other context")
    other.run(fiber.switch)
    assert other.run(fiber.switch) == ("at creation", None, "at creation")


def test_the_resumers_context_is_restored_after_the_fiber_suspends() -> None:
    def change_and_suspend() -> None:
        var.set("inside")
        suspend()

    other = contextvars.Context()
    other.run(var.set, "in the other context")
    fiber = Fiber(change_and_suspend)
    assert other.run(lambda: (fiber.switch(), var.get())[1]) == "in the other context"
    fiber.switch()


def test_a_nested_fiber_copies_its_creators_context() -> None:
    def outer() -> tuple[str, str]:
        var.set("set by outer")
        inner = Fiber(var.get)
        var.set("changed by outer after creating inner")
        return inner.switch(), var.get()

    assert Fiber(outer).switch() == ("set by outer", "changed by outer after creating inner")


def test_values_set_in_a_nested_fiber_are_invisible_to_its_creator() -> None:
    def outer() -> str:
        var.set("outer")
        Fiber(var.set, "inner").switch()
        return var.get()

    assert Fiber(outer).switch() == "outer"


def test_copy_context_inside_a_fiber_sees_the_fibers_values() -> None:
    def snapshot() -> contextvars.Context:
        var.set("inside")
        return contextvars.copy_context()

    copied = Fiber(snapshot).switch()
    assert copied[var] == "inside"
    assert var.get() == "default"
