"""Fibers and threads: fibers on many threads at once, a fiber belongs to its thread,
and fibers whose object or thread dies elsewhere.

What happens to a suspended fiber whose object is dropped on a thread other than its own
(observed with the engine at the time of writing, checked by the scenarios):

* while its thread lives, it is queued for that thread and unwound there (FiberExit,
  finally blocks) at the thread's next fiber operation (starting or resuming any
  fiber); never on the dropping thread;
* if its thread exits before another fiber operation, it is never unwound: its code
  never runs again, nothing crashes, and the next fiber operation on any thread reports
  it (``sys.unraisablehook``) as leaked;
* a fiber whose thread has died is cleaned without running any of its code, and
  reported as leaked.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anywait.lowlevel import Fiber, current, suspend


def _on_another_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a new thread; return its result or raise its exception here."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # re-raised on the calling thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Make the GIL change hands often, also while fibers are executing."""
    original = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(original)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_fibers_run_on_several_threads_at_once() -> None:
    start = threading.Barrier(4)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def ping_pong(name: int) -> None:
        try:
            start.wait()
            fibers = [Fiber(lambda: [suspend(i) for i in range(100)]) for _ in range(10)]
            for fiber in fibers:
                fiber.switch()
            for step in range(100):
                returned = [fiber.switch(name * 1000 + step) for fiber in fibers]
            # the last switch finished every fiber: each returns all it received
            assert all(fiber.dead for fiber in fibers)
            assert all(r == returned[0] for r in returned)
            results[name] = returned[0]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ping_pong, args=(name,)) for name in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == {name: [name * 1000 + step for step in range(100)] for name in range(4)}


@pytest.mark.usefixtures("frequent_thread_switches")
def test_each_thread_sees_only_its_own_current_fiber() -> None:
    start = threading.Barrier(4)
    mismatches: list[int] = []

    def check_current(name: int) -> None:
        def body() -> None:
            for _ in range(200):
                if current() is not fiber:
                    mismatches.append(name)
                suspend()

        fiber = Fiber(body)
        start.wait()
        while not fiber.dead:
            fiber.switch()
            if current() is not None:
                mismatches.append(name)

    threads = [threading.Thread(target=check_current, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_a_thread_started_inside_a_fiber_has_no_current_fiber() -> None:
    def body() -> tuple[object, object]:
        seen_on_thread = _on_another_thread(current)
        return seen_on_thread, current()

    fiber = Fiber(body)
    assert fiber.switch() == (None, fiber)


def test_a_thread_can_run_fibers_while_another_thread_is_inside_one() -> None:
    def body() -> str:
        return _on_another_thread(lambda: Fiber(lambda: suspend("x") or "y").switch())

    assert Fiber(body).switch() == "x"


def test_switching_a_suspended_fiber_from_another_thread_raises_runtime_error() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    with pytest.raises(RuntimeError):
        _on_another_thread(fiber.switch)
    fiber.switch()


def test_starting_a_fiber_on_another_thread_than_its_creator_raises_runtime_error() -> None:
    calls: list[str] = []
    fiber = Fiber(calls.append, "ran")
    with pytest.raises(RuntimeError):
        _on_another_thread(fiber.switch)
    assert calls == []


def test_throwing_into_a_fiber_from_another_thread_raises_runtime_error() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    with pytest.raises(RuntimeError):
        _on_another_thread(lambda: fiber.throw(ValueError))
    fiber.switch()


def test_closing_a_suspended_fiber_from_another_thread_raises_runtime_error() -> None:
    log: list[str] = []

    def wait() -> None:
        try:
            suspend()
        finally:
            log.append("finally")

    fiber = Fiber(wait)
    fiber.switch()
    with pytest.raises(RuntimeError):
        _on_another_thread(fiber.close)
    assert log == []
    fiber.close()
    assert log == ["finally"]


def test_a_fiber_refused_on_another_thread_still_works_on_its_own() -> None:
    fiber = Fiber(lambda: suspend("suspended") + " and finished")
    fiber.switch()
    with pytest.raises(RuntimeError):
        _on_another_thread(lambda: fiber.switch("from elsewhere"))
    assert not fiber.dead
    assert fiber.switch("resumed at home") == "resumed at home and finished"


def test_a_fiber_made_on_another_thread_runs_there() -> None:
    def make_and_run() -> tuple[int, int]:
        fiber = Fiber(threading.get_ident)
        return fiber.switch(), threading.get_ident()

    ran_on, made_on = _on_another_thread(make_and_run)
    assert ran_on == made_on != threading.get_ident()


SCENARIOS = [
    "dropped_on_another_thread_while_owner_lives",
    "dropped_on_another_thread_then_owner_exits",
    "many_dropped_on_another_thread_then_owner_starts_a_fiber",
    "suspended_in_locals_when_its_thread_returns",
    "dropped_after_its_thread_died",
    "generators_dropped_after_their_thread_died",
    "closed_after_its_thread_died",
    "held_by_thread_local_when_its_thread_exits",
    "threads_churning_fibers",
]


@pytest.mark.parametrize("case", SCENARIOS)
def test_fiber_lifetimes_across_threads_in_a_child_process(
    run_scenario: Callable[..., Any], case: str
) -> None:
    result = run_scenario("threads_lifetime", case, dev_mode=True)
    assert f"ok {case}" in result.stdout


@pytest.mark.parametrize(
    ("case", "what", "count"),
    [
        ("dropped_after_its_thread_died", "fiber", 10),
        ("generators_dropped_after_their_thread_died", "generator", 6),
    ],
)
def test_a_suspended_fiber_collected_after_its_thread_ended_is_reported_as_leaked(
    run_scenario: Callable[..., Any], case: str, what: str, count: int
) -> None:
    result = run_scenario("threads_lifetime", case)
    message = (
        f"a suspended anywait {what} was garbage-collected after its thread ended "
        "(or in a forked child, which has no copy of that thread); its stack is leaked "
        "and its finally blocks never run"
    )
    assert result.stderr.count(message) == count, result.stderr
