"""The exception being handled (sys.exc_info()) belongs to each stack, not to the thread.

A fiber starts with nothing being handled; a fiber suspended inside an ``except`` block
keeps its exception and the resumer keeps its own, across any number of switches.
"""

from __future__ import annotations

import sys

import pytest
from anywait.lowlevel import Fiber, suspend


class OuterError(Exception):
    pass


class FiberError(Exception):
    pass


def test_a_fiber_starts_with_no_exception_being_handled() -> None:
    fiber = Fiber(sys.exc_info)
    try:
        raise OuterError
    except OuterError:
        seen_in_fiber = fiber.switch()
    assert seen_in_fiber == (None, None, None)


def test_an_exception_raised_in_a_new_fiber_has_no_context_from_the_resumer() -> None:
    def fail() -> None:
        raise FiberError

    try:
        raise OuterError
    except OuterError:
        with pytest.raises(FiberError) as caught:
            Fiber(fail).switch()
    assert caught.value.__context__ is None


def test_the_resumer_sees_its_own_exception_while_the_fiber_handles_another() -> None:
    def handle_and_suspend() -> None:
        try:
            raise FiberError
        except FiberError:
            suspend()

    fiber = Fiber(handle_and_suspend)
    try:
        raise OuterError
    except OuterError:
        fiber.switch()
        seen_outside = sys.exc_info()[0]
    assert seen_outside is OuterError


def test_the_resumer_sees_no_exception_after_a_fiber_suspends_in_an_except_block() -> None:
    def handle_and_suspend() -> None:
        try:
            raise FiberError
        except FiberError:
            suspend()

    fiber = Fiber(handle_and_suspend)
    fiber.switch()
    assert sys.exc_info() == (None, None, None)


def test_a_fiber_resumed_in_an_except_block_still_sees_its_own_exception() -> None:
    def handle_across_switches() -> list[object]:
        seen = []
        try:
            raise FiberError
        except FiberError:
            for _ in range(3):
                suspend()
                seen.append(sys.exc_info()[0])
        return seen

    fiber = Fiber(handle_across_switches)
    fiber.switch()
    try:
        raise OuterError
    except OuterError:
        fiber.switch()
    fiber.switch()
    assert fiber.switch() == [FiberError, FiberError, FiberError]


def test_a_fiber_resumed_outside_any_except_block_sees_no_exception() -> None:
    def look_after_resume() -> object:
        suspend()
        return sys.exc_info()

    fiber = Fiber(look_after_resume)
    fiber.switch()
    try:
        raise OuterError
    except OuterError:
        assert fiber.switch() == (None, None, None)


def test_bare_raise_in_a_fiber_reraises_the_fibers_exception_after_switches() -> None:
    def reraise_later() -> None:
        try:
            raise FiberError
        except FiberError:
            suspend()
            raise

    fiber = Fiber(reraise_later)
    fiber.switch()
    try:
        raise OuterError
    except OuterError:
        with pytest.raises(FiberError):
            fiber.switch()


def test_bare_raise_in_the_resumer_reraises_its_own_exception_after_switches() -> None:
    def handle_and_suspend() -> None:
        try:
            raise FiberError
        except FiberError:
            suspend()
            suspend()

    def reraise_after_switching() -> None:
        try:
            raise OuterError
        except OuterError:
            fiber.switch()
            fiber.switch()
            raise

    fiber = Fiber(handle_and_suspend)
    with pytest.raises(OuterError):
        reraise_after_switching()
    fiber.close()


def test_nested_fibers_each_see_their_own_exception() -> None:
    class InnerError(Exception):
        pass

    def inner() -> object:
        try:
            raise InnerError
        except InnerError:
            suspend(sys.exc_info()[0])
            return sys.exc_info()[0]

    def outer() -> list[object]:
        try:
            raise FiberError
        except FiberError:
            child = Fiber(inner)
            seen = [child.switch(), sys.exc_info()[0]]
            seen += [child.switch(), sys.exc_info()[0]]
            return seen

    assert Fiber(outer).switch() == [InnerError, FiberError, InnerError, FiberError]


def test_the_resumers_exception_state_is_restored_when_the_fiber_raises() -> None:
    def fail() -> None:
        try:
            raise FiberError("handled inside")
        except FiberError:
            raise KeyError("escapes") from None

    try:
        raise OuterError
    except OuterError:
        with pytest.raises(KeyError):
            Fiber(fail).switch()
        seen_outside = sys.exc_info()[0]
    assert seen_outside is OuterError
