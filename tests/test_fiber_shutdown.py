"""Interpreter exit with fibers alive: suspended, running, or on daemon threads.

Suspended fibers are not unwound at shutdown (their code must not meet half-destroyed
modules); what matters is that the process exits with the expected status and reports
nothing on stderr. Fibers can still be used from atexit handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

QUIET_EXIT_CASES = [
    "suspended_in_globals",
    "suspended_in_a_cycle",
    "suspended_holding_suspended",
    "suspended_holding_objects_with_del",
    "daemon_thread_blocked_inside_a_fiber",
    "daemon_thread_switching_fibers_at_exit",
]


@pytest.mark.parametrize("case", QUIET_EXIT_CASES)
def test_interpreter_exits_cleanly_with_fibers_alive(
    run_scenario: Callable[..., Any], case: str
) -> None:
    result = run_scenario("shutdown", case, dev_mode=True)
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("case", "status"), [("sys_exit_inside_a_fiber", 3), ("sys_exit_inside_nested_fibers", 4)]
)
def test_sys_exit_inside_a_fiber_exits_with_its_status(
    run_scenario: Callable[..., Any], case: str, status: int
) -> None:
    result = run_scenario("shutdown", case, returncode=status, dev_mode=True)
    assert result.stderr == ""


def test_an_exception_escaping_a_fiber_to_the_top_is_printed_with_fiber_frames(
    run_scenario: Callable[..., Any],
) -> None:
    result = run_scenario("shutdown", "unhandled_exception_inside_a_fiber", returncode=1)
    assert "in fail_in_fiber" in result.stderr
    assert result.stderr.rstrip().endswith("LookupError: raised in the fiber")


def test_an_atexit_handler_can_close_a_suspended_fiber(
    run_scenario: Callable[..., Any],
) -> None:
    result = run_scenario("shutdown", "atexit_closes_a_suspended_fiber", dev_mode=True)
    assert "unwound by atexit" in result.stdout
    assert result.stderr == ""


def test_an_atexit_handler_can_resume_a_suspended_fiber(
    run_scenario: Callable[..., Any],
) -> None:
    result = run_scenario("shutdown", "atexit_resumes_a_suspended_fiber", dev_mode=True)
    assert "resumed by atexit: yes" in result.stdout
    assert result.stderr == ""
