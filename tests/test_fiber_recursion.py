"""Recursion inside fibers: each fiber has its own depth, the limit applies, and overflow
(Python or C recursion) raises RecursionError instead of crashing.

Overflow runs first in child interpreters (``scenarios/recursion_overflow.py``), where a
crash fails one test; the in-process versions after them then check the same in this
interpreter, after everything else the suite has done to it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import pytest
from anywait.lowlevel import Fiber, suspend

WORKS = [
    "python_recursion",
    "python_recursion_with_a_high_limit",
    "nested_list_repr",
    "nested_list_json",
    "repr_chain",
    "getattr_loop",
]
PLACES = [
    "escaping_the_fiber",
    "from_a_deep_caller",
    "in_a_nested_fiber",
    "after_suspending",
    "many_times",
    "on_a_thread",
    "then_keep_working",
]


@pytest.mark.parametrize("work", WORKS)
def test_overflow_in_a_fiber_raises_recursion_error_in_a_child_process(
    run_scenario: Callable[..., object], work: str
) -> None:
    result = run_scenario("recursion_overflow", work, "in_fiber")
    assert f"ok {work} in_fiber" in result.stdout  # type: ignore[attr-defined]


@pytest.mark.parametrize("work", ["python_recursion", "nested_list_repr", "repr_chain"])
@pytest.mark.parametrize("place", PLACES)
def test_overflow_raises_recursion_error_wherever_the_fiber_runs_in_a_child_process(
    run_scenario: Callable[..., object], work: str, place: str
) -> None:
    result = run_scenario("recursion_overflow", work, place)
    assert f"ok {work} {place}" in result.stdout  # type: ignore[attr-defined]


def _deepest_reachable() -> int:
    """How many more Python frames fit on the current stack before RecursionError."""

    def probe(depth: int) -> int:
        try:
            return probe(depth + 1)
        except RecursionError:
            return depth

    return probe(1)


def _descend_then(depth: int, then: Callable[[], object]) -> object:
    if depth:
        return _descend_then(depth - 1, then)
    return then()


def test_a_fiber_starts_at_recursion_depth_zero(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(400)
    from_shallow = Fiber(_deepest_reachable).switch()
    from_deep = _descend_then(300, Fiber(_deepest_reachable).switch)
    assert from_deep == from_shallow
    assert from_shallow >= 390


def test_a_fibers_recursion_does_not_count_against_its_caller(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(400)
    before = _deepest_reachable()

    def suspend_deep() -> None:
        _descend_then(300, suspend)

    fiber = Fiber(suspend_deep)
    fiber.switch()
    assert _deepest_reachable() == before
    fiber.switch()


def test_a_suspended_fiber_keeps_its_depth_while_the_caller_recurses(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(400)

    def measure_around_a_suspend() -> tuple[int, int]:
        def at_depth() -> tuple[int, int]:
            before = _deepest_reachable()
            suspend()
            return before, _deepest_reachable()

        return _descend_then(100, at_depth)  # type: ignore[return-value]

    fiber = Fiber(measure_around_a_suspend)
    fiber.switch()
    before, after = _descend_then(250, fiber.switch)  # type: ignore[misc]
    assert after == before


def test_a_fiber_that_dies_in_deep_recursion_leaves_its_caller_depth_unchanged(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(400)
    before = _deepest_reachable()

    def die_deep() -> None:
        _descend_then(300, lambda: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        Fiber(die_deep).switch()
    assert _deepest_reachable() == before


def test_setrecursionlimit_applies_inside_fibers(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(200)
    low = Fiber(_deepest_reachable).switch()
    recursion_limit(1200)
    high = Fiber(_deepest_reachable).switch()
    assert high - low == 1000


def test_setrecursionlimit_while_a_fiber_is_suspended_applies_when_it_resumes(
    recursion_limit: Callable[[int], None],
) -> None:
    def measure_twice() -> int:
        first = _deepest_reachable()
        suspend()
        return _deepest_reachable() - first

    recursion_limit(200)
    fiber = Fiber(measure_twice)
    fiber.switch()
    recursion_limit(500)
    assert fiber.switch() == 300


def test_setrecursionlimit_inside_a_fiber_applies_to_its_caller(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(300)
    before = _deepest_reachable()
    Fiber(sys.setrecursionlimit, 500).switch()
    assert sys.getrecursionlimit() == 500
    assert _deepest_reachable() == before + 200


def test_a_lower_limit_stops_a_suspended_fiber_that_is_already_deeper(
    recursion_limit: Callable[[int], None],
) -> None:
    recursion_limit(400)

    def suspend_then_call() -> str:
        suspend()
        try:
            _descend_then(1, lambda: None)
        except RecursionError:
            return "RecursionError"
        return "no error"

    fiber = Fiber(lambda: _descend_then(150, suspend_then_call))
    fiber.switch()
    # Less than 50 frames below the fiber's depth: further down, CPython 3.11 aborts
    # ("Cannot recover from stack overflow"), with or without fibers (a thread that is
    # deeper than a newly lowered limit does the same).
    recursion_limit(120)
    assert fiber.switch() == "RecursionError"


def test_unbounded_python_recursion_in_a_fiber_raises_recursion_error() -> None:
    def recurse() -> None:
        recurse()

    with pytest.raises(RecursionError):
        Fiber(recurse).switch()


def test_repr_of_a_deeply_nested_list_in_a_fiber_raises_recursion_error() -> None:
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(RecursionError):
        Fiber(repr, nested).switch()


def test_a_repr_chain_through_c_in_a_fiber_raises_recursion_error() -> None:
    class Link:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __repr__(self) -> str:
            return f"Link({self.inner!r})"

    chain: object = None
    for _ in range(100_000):
        chain = Link(chain)
    with pytest.raises(RecursionError):
        Fiber(repr, chain).switch()


def test_a_fiber_keeps_working_after_recursion_error() -> None:
    def recurse() -> None:
        recurse()

    def overflow_then_suspend() -> str:
        with contextlib.suppress(RecursionError):
            recurse()
        return suspend("recovered") + " and finished"

    fiber = Fiber(overflow_then_suspend)
    assert fiber.switch() == "recovered"
    assert fiber.switch("resumed") == "resumed and finished"
