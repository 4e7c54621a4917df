"""A portal that becomes garbage while its coroutine is suspended (in ``await_`` or at a
native ``await``) closes the coroutine as CPython closes a suspended coroutine. Runs in
child interpreters (``tests/scenarios/portal_finalize.py``): a mistake here crashes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

Runner = Callable[..., subprocess.CompletedProcess[str]]


def logs(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)


@pytest.mark.parametrize(
    "case", ["blocked_in_finally", "awaits_while_closing", "suspended_at_native_await"]
)
def test_collected_portal_closes_its_coroutine_as_cpython_would(
    run_scenario: Runner, case: str
) -> None:
    result = run_scenario("portal_finalize", case)
    seen = logs(result)
    assert seen["portal"] == seen["native"]
    assert "finally" in seen["native"] or "cleanup" in seen["native"]
    assert result.stderr == ""


@pytest.mark.parametrize("case", ["in_a_cycle", "fiber_in_a_cycle"])
def test_collected_in_a_reference_cycle(run_scenario: Runner, case: str) -> None:
    """A cycle through a task blocked in ``await_`` (or a suspended ``lowlevel.Fiber``)
    is collected, and its ``finally`` blocks run, as for its native twin."""
    result = run_scenario("portal_finalize", case)
    seen = logs(result)
    assert seen["portal"] == seen["native"]
    assert seen["native"] == "['finally, holder has 1']"
    assert result.stderr == ""


@pytest.mark.parametrize(
    "case", ["stack_values", "deep_chain", "collect_in_step", "held_from_outside", "fiber_stack"]
)
def test_collections_while_blocked_leave_frames_as_they_were(
    run_scenario: Runner, case: str
) -> None:
    """Collections while tasks are blocked in ``await_`` (or fibers suspended) free
    nothing their frames still hold, and keep what an outside reference holds."""
    result = run_scenario("gc_blocked", case, dev_mode=True)
    seen = logs(result)
    assert seen["anywait"] == seen["native"]
    assert result.stderr == ""


def test_portal_collected_on_another_thread_is_leaked_and_reported(
    run_scenario: Runner,
) -> None:
    result: Any = run_scenario("portal_finalize", "other_thread")
    assert "garbage-collected on another thread; its stack is leaked" in result.stdout
