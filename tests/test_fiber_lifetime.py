"""What happens to fibers that become garbage.

A suspended fiber that becomes garbage is unwound with FiberExit on its own thread, in
its own context, so its ``finally`` blocks and ``with`` exits run. One that refuses to
die (catches FiberExit and suspends again) is leaked and reported through
``sys.unraisablehook``. Threads are covered in test_threads.py, shutdown in
test_shutdown.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from anywait.lowlevel import Fiber, FiberExit, current, suspend

#: The ``capture_unraisable`` fixture (conftest.py).
CaptureUnraisable = Callable[[], Any]


def _suspended(fn: Callable[..., object], *args: object) -> Fiber:
    fiber = Fiber(fn, *args)
    fiber.switch()
    return fiber


def _wait_then_log(log: list[str]) -> None:
    try:
        suspend()
    finally:
        log.append("finally")


def test_dropping_the_last_reference_to_a_suspended_fiber_runs_its_finally() -> None:
    log: list[str] = []
    fiber = _suspended(_wait_then_log, log)
    assert log == []
    del fiber
    assert log == ["finally"]


def test_a_garbage_fiber_is_unwound_with_fiber_exit() -> None:
    arrived: list[type[BaseException]] = []

    def record_what_arrives() -> None:
        try:
            suspend()
        except BaseException as exc:
            arrived.append(type(exc))
            raise

    fiber = _suspended(record_what_arrives)
    del fiber
    assert arrived == [FiberExit]


def test_a_garbage_fiber_runs_with_exits() -> None:
    exits: list[object] = []

    class Recorder:
        def __enter__(self) -> None:
            pass

        def __exit__(self, exc_type: object, *rest: object) -> None:
            exits.append(exc_type)

    def wait_in_with() -> None:
        with Recorder():
            suspend()

    fiber = _suspended(wait_in_with)
    del fiber
    assert exits == [FiberExit]


def test_a_garbage_fiber_is_unwound_on_its_own_thread() -> None:
    threads: list[int] = []

    def wait() -> None:
        try:
            suspend()
        finally:
            threads.append(threading.get_ident())

    fiber = _suspended(wait)
    del fiber
    assert threads == [threading.get_ident()]


def test_a_garbage_fiber_is_unwound_in_its_own_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    def set_and_wait() -> None:
        var.set("the fiber's value")
        try:
            suspend()
        finally:
            seen.append(var.get())

    fiber = _suspended(set_and_wait)
    var.set("the resumer's value")
    del fiber
    assert seen == ["the fiber's value"]


def test_a_garbage_fiber_in_a_collected_cycle_is_unwound_by_the_collector() -> None:
    log: list[str] = []
    holder: dict[str, object] = {"fiber": _suspended(_wait_then_log, log)}
    holder["self"] = holder  # the cycle does not pass through the fiber's frames
    del holder
    assert log == []
    gc.collect()
    assert log == ["finally"]


def test_a_garbage_fiber_that_returns_on_fiber_exit_is_not_reported(
    capture_unraisable: CaptureUnraisable,
) -> None:
    def return_on_exit() -> str:
        try:
            suspend()
        except FiberExit:
            return "returned"
        return "resumed"

    with capture_unraisable() as recorder:
        fiber = _suspended(return_on_exit)
        del fiber
        gc.collect()
    assert recorder.reports == []


def test_a_garbage_fiber_that_refuses_to_die_is_reported_as_runtime_error(
    capture_unraisable: CaptureUnraisable,
) -> None:
    def refuse_to_die() -> None:
        while True:
            with contextlib.suppress(FiberExit):
                suspend()

    with capture_unraisable() as recorder:
        fiber = _suspended(refuse_to_die)
        del fiber
        gc.collect()
    assert [exc_type for exc_type, _ in recorder.reports] == [RuntimeError]


def test_a_garbage_fiber_that_refuses_to_die_never_runs_again(
    capture_unraisable: CaptureUnraisable,
) -> None:
    log: list[str] = []

    def refuse_once() -> None:
        try:
            suspend()
        except FiberExit:
            log.append("caught FiberExit")
            suspend()
            log.append("resumed after refusing")
        finally:
            log.append("finally")

    with capture_unraisable():
        fiber = _suspended(refuse_once)
        del fiber
        gc.collect()
        Fiber(lambda: None).switch()  # more fiber activity must not revive it
        gc.collect()
    assert log == ["caught FiberExit"]


def test_an_exception_escaping_a_garbage_fiber_is_reported(
    capture_unraisable: CaptureUnraisable,
) -> None:
    class CleanupFailed(Exception):
        pass

    def fail_in_cleanup() -> None:
        try:
            suspend()
        finally:
            raise CleanupFailed("during unwinding")

    with capture_unraisable() as recorder:
        fiber = _suspended(fail_in_cleanup)
        del fiber
        gc.collect()
    assert recorder.reports == [(CleanupFailed, "during unwinding")]


def test_a_garbage_fiber_that_never_started_does_not_run() -> None:
    calls: list[str] = []
    fiber = Fiber(calls.append, "ran")
    del fiber
    gc.collect()
    assert calls == []


def test_an_unstarted_fiber_in_a_cycle_through_its_arguments_is_collected() -> None:
    calls: list[str] = []
    holder: list[object] = []
    fiber = Fiber(calls.append, holder)
    holder.append(fiber)
    alive = weakref.ref(fiber)
    del fiber, holder
    gc.collect()
    assert alive() is None
    assert calls == []


def test_a_finished_fiber_is_freed_when_dropped() -> None:
    fiber = Fiber(lambda: None)
    fiber.switch()
    alive = weakref.ref(fiber)
    del fiber
    assert alive() is None


def test_a_suspended_fiber_is_freed_once_unwound() -> None:
    fiber = _suspended(suspend)
    alive = weakref.ref(fiber)
    del fiber
    gc.collect()
    assert alive() is None


def test_a_fiber_dropped_inside_another_fiber_is_unwound_there() -> None:
    log: list[str] = []
    victim = _suspended(_wait_then_log, log)
    holder = [victim]
    del victim

    def drop_it() -> list[str]:
        holder.clear()
        return list(log)

    assert Fiber(drop_it).switch() == ["finally"]


def test_current_while_a_garbage_fiber_unwinds_is_not_the_fiber_that_dropped_it() -> None:
    seen: list[object] = []

    def wait() -> None:
        try:
            suspend()
        finally:
            seen.append(current())

    holder = [_suspended(wait)]

    def drop_it() -> Fiber | None:
        holder.clear()
        return current()

    dropper = Fiber(drop_it)
    assert dropper.switch() is dropper
    assert len(seen) == 1
    assert seen[0] is not dropper


def test_a_suspended_fiber_holding_another_unwinds_both() -> None:
    log: list[str] = []

    def wait_named(name: str) -> None:
        try:
            suspend()
        finally:
            log.append(name)

    def hold_inner() -> None:
        inner = _suspended(wait_named, "inner")  # noqa: F841
        wait_named("outer")

    outer = _suspended(hold_inner)
    del outer
    assert sorted(log) == ["inner", "outer"]


def test_a_garbage_fiber_may_switch_other_fibers_while_unwinding() -> None:
    log: list[str] = []

    def wait_then_use_another() -> None:
        try:
            suspend()
        finally:
            helper = Fiber(lambda: suspend("helper suspended") + " and finished")
            log.append(helper.switch())
            log.append(helper.switch("helper resumed"))

    fiber = _suspended(wait_then_use_another)
    del fiber
    assert log == ["helper suspended", "helper resumed and finished"]


def test_a_fiber_in_a_cycle_through_its_own_frames_can_still_be_closed() -> None:
    # Reference cycles through a suspended fiber's frames are invisible to the
    # collector (documented); whatever gc.collect() does, close() must work and the
    # fiber must be unwound exactly once.
    log: list[str] = []

    def keep_myself() -> None:
        me = current()  # noqa: F841  (the frame references the fiber)
        _wait_then_log(log)

    fiber = _suspended(keep_myself)
    gc.collect()
    fiber.close()
    gc.collect()
    assert log == ["finally"]


def test_a_fiber_whose_last_reference_dies_while_it_runs_is_unwound_after_suspending() -> None:
    log: list[str] = []
    holder = [Fiber(lambda: (holder.clear(), _wait_then_log(log)))]
    holder[0].switch()  # the switch call holds the fiber until the fiber suspends
    assert holder == []
    assert log == ["finally"]


GC_REENTRANCY_CASES = [
    "collections_during_switches_run_finalizers_that_switch",
    "collections_during_switches_unwind_garbage_fibers",
    "collections_inside_nested_fibers",
    "collections_while_fibers_are_suspended_in_generators_with_frames",
]


@pytest.mark.parametrize("case", GC_REENTRANCY_CASES)
def test_garbage_collection_at_any_point_of_fiber_work_is_safe_in_a_child_process(
    run_scenario: Callable[..., Any], case: str
) -> None:
    result = run_scenario("gc_reentrancy", case, dev_mode=True)
    assert f"ok {case}" in result.stdout
    assert result.stderr == ""
