"""Fiber operations neither leak references nor memory.

Each operation runs in batches in a child interpreter (a debug build aborts on a negative
reference count, which must not take the suite down); after warm-up batches, the growth
of the measure over each further batch must stay near zero, where a leak of one
reference or block per operation would add at least a whole batch every time.

``refs`` (sys.gettotalrefcount) exists only on debug interpreters; ``blocks``
(sys.getallocatedblocks, live pymalloc blocks) works on every build.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import pytest

BATCH = 200

OPERATIONS = [
    "start_and_finish",
    "suspend_and_resume_then_finish",
    "ping_pong_many_values",
    "close_suspended",
    "drop_suspended",
    "close_refused_then_finished",
    "throw_caught",
    "throw_uncaught",
    "exception_escapes_with_traceback",
    "throw_or_close_before_start",
    "misuse_errors",
    "nested_fibers",
    "exception_state_across_switches",
    "context_variables",
    "frames_handed_out",
    "generator_in_a_fiber",
    "deep_recursion_error",
]


def _growth(run_scenario: Callable[..., Any], operation: str, measure: str) -> list[int]:
    result = run_scenario("refcount_balance", operation, measure, BATCH)
    growth: list[int] = json.loads(result.stdout.splitlines()[-1])
    assert len(growth) >= 5
    return growth


@pytest.mark.skipif(
    not hasattr(sys, "gettotalrefcount"),
    reason="reference totals exist only on debug builds (sys.gettotalrefcount)",
)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_fiber_operations_keep_the_reference_total_balanced(
    run_scenario: Callable[..., Any], operation: str
) -> None:
    growth = _growth(run_scenario, operation, "refs")
    assert statistics.median(growth) <= BATCH // 10, growth


@pytest.mark.parametrize("operation", OPERATIONS)
def test_fiber_operations_keep_the_allocated_blocks_balanced(
    run_scenario: Callable[..., Any], operation: str
) -> None:
    growth = _growth(run_scenario, operation, "blocks")
    assert statistics.median(growth) <= BATCH // 10, growth
