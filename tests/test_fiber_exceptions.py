"""Exceptions escaping a fiber: same object, fiber dead, tracebacks that read naturally.

An exception escaping ``fn`` carries fn's frames, and gains the caller's frames as it
propagates out of switch()/throw(), so the traceback reads caller -> fn -> ... -> raise.
"""

from __future__ import annotations

import signal
import sys
import traceback
from types import TracebackType

import pytest
from anywait.lowlevel import Fiber, current, suspend


class Boom(Exception):
    pass


def _frame_names(tb: TracebackType | None) -> list[str]:
    return [entry.name for entry in traceback.extract_tb(tb)]


def _this_function() -> str:
    return sys._getframe(1).f_code.co_name


def raise_boom() -> None:
    raise Boom("from the fiber")


def call_raise_boom() -> None:
    raise_boom()


def test_exception_escaping_the_function_propagates_from_switch() -> None:
    error = Boom()

    def fail() -> None:
        raise error

    with pytest.raises(Boom) as caught:
        Fiber(fail).switch()
    assert caught.value is error


def test_exception_escaping_after_suspends_propagates_from_the_last_switch() -> None:
    def fail_on_second_resume() -> None:
        suspend()
        suspend()
        raise Boom

    fiber = Fiber(fail_on_second_resume)
    fiber.switch()
    fiber.switch()
    with pytest.raises(Boom):
        fiber.switch()


def test_base_exception_escaping_the_function_propagates_from_switch() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Fiber(interrupt).switch()


def test_traceback_lists_the_caller_then_the_fiber_frames() -> None:
    try:
        Fiber(call_raise_boom).switch()
    except Boom as exc:
        names = _frame_names(exc.__traceback__)
    assert names == [_this_function(), "call_raise_boom", "raise_boom"]


def test_traceback_lists_the_frames_at_the_raise_after_suspends() -> None:
    def suspend_then_fail() -> None:
        suspend()
        call_raise_boom()

    fiber = Fiber(suspend_then_fail)
    fiber.switch()
    try:
        fiber.switch()
    except Boom as exc:
        names = _frame_names(exc.__traceback__)
    assert names == [_this_function(), "suspend_then_fail", "call_raise_boom", "raise_boom"]


def test_traceback_through_nested_fibers_lists_every_fiber_frame() -> None:
    def outer() -> None:
        Fiber(call_raise_boom).switch()

    try:
        Fiber(outer).switch()
    except Boom as exc:
        names = _frame_names(exc.__traceback__)
    assert names == [_this_function(), "outer", "call_raise_boom", "raise_boom"]


def test_traceback_of_a_thrown_exception_starts_at_the_suspension_point() -> None:
    def wait_here() -> None:
        suspend()

    def wait_below() -> None:
        wait_here()

    fiber = Fiber(wait_below)
    fiber.switch()
    try:
        fiber.throw(Boom)
    except Boom as exc:
        tb_entries = traceback.extract_tb(exc.__traceback__)
    assert [entry.name for entry in tb_entries] == [_this_function(), "wait_below", "wait_here"]
    assert tb_entries[-1].line == "suspend()"


def test_traceback_line_numbers_point_at_the_raising_lines() -> None:
    try:
        Fiber(call_raise_boom).switch()
    except Boom as exc:
        entries = traceback.extract_tb(exc.__traceback__)
    assert [entry.line for entry in entries[1:]] == ["raise_boom()", 'raise Boom("from the fiber")']


def test_traceback_of_an_exception_caught_inside_the_fiber_holds_only_fiber_frames() -> None:
    def catch_inside() -> list[str]:
        try:
            call_raise_boom()
        except Boom as exc:
            return _frame_names(exc.__traceback__)
        return []

    assert Fiber(catch_inside).switch() == ["catch_inside", "call_raise_boom", "raise_boom"]


def test_frames_of_a_finished_fiber_stay_readable_through_the_traceback() -> None:
    def fail_with_locals() -> None:
        marker = "local of the dead fiber"  # noqa: F841
        raise Boom

    try:
        Fiber(fail_with_locals).switch()
    except Boom as exc:
        tb = exc.__traceback__
    assert tb is not None
    assert tb.tb_next is not None
    fiber_frame = tb.tb_next.tb_frame
    assert fiber_frame.f_code.co_name == "fail_with_locals"
    assert fiber_frame.f_locals["marker"] == "local of the dead fiber"
    assert fiber_frame.f_back is None


def test_traceback_of_a_finished_fiber_formats_completely() -> None:
    try:
        Fiber(call_raise_boom).switch()
    except Boom as exc:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert "in call_raise_boom" in text
    assert "in raise_boom" in text
    assert text.rstrip().endswith("Boom: from the fiber")


def test_exception_raised_while_handling_another_in_a_fiber_keeps_its_context() -> None:
    def fail_while_handling() -> None:
        try:
            raise KeyError("first")
        except KeyError:
            suspend()
            raise Boom("second")  # noqa: B904  (the implicit context is what is tested)

    fiber = Fiber(fail_while_handling)
    fiber.switch()
    with pytest.raises(Boom) as caught:
        fiber.switch()
    assert isinstance(caught.value.__context__, KeyError)


def test_an_exception_can_cross_several_fibers_and_be_caught_in_the_middle() -> None:
    def middle() -> str:
        try:
            Fiber(call_raise_boom).switch()
        except Boom as exc:
            return "middle caught " + str(exc)
        return "not raised"

    assert Fiber(middle).switch() == "middle caught from the fiber"


def test_keyboard_interrupt_from_a_signal_inside_a_fiber_propagates_from_switch() -> None:
    def interrupt_myself() -> str:
        signal.raise_signal(signal.SIGINT)  # the default handler raises KeyboardInterrupt
        return "not interrupted"

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not have Python's default handler here")
    fiber = Fiber(interrupt_myself)
    with pytest.raises(KeyboardInterrupt):
        fiber.switch()
    assert fiber.dead


def test_a_signal_handler_runs_inside_the_fiber_that_was_executing() -> None:
    seen: list[object] = []

    def handler(signum: int, frame: object) -> None:
        seen.append(current())

    def raise_signal_here() -> None:
        signal.raise_signal(signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        fiber = Fiber(raise_signal_here)
        fiber.switch()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == [fiber]
