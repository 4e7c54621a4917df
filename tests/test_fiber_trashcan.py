"""Deallocating very deep structures in fibers, including a fiber that suspends in the
middle of a deallocation (a ``__del__`` that calls suspend()) while other stacks
deallocate their own deep structures. CPython defers deep deallocations through
per-thread "trashcan" state, which must follow each stack. Run in child interpreters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

CASES = [
    "dropped_inside_a_fiber",
    "built_in_a_fiber_dropped_outside",
    "dropped_while_the_fiber_is_suspended_mid_dealloc",
    "two_fibers_suspended_mid_dealloc",
    "collected_cycles_of_deep_structures_in_a_fiber",
]


@pytest.mark.parametrize("case", CASES)
def test_deep_structures_are_freed_completely_around_fiber_switches(
    run_scenario: Callable[..., Any], case: str
) -> None:
    result = run_scenario("trashcan", case, dev_mode=True)
    assert f"ok {case}" in result.stdout
    assert result.stderr == ""
