"""fork() with fibers alive: the child can resume, finish, drop and create fibers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _fork_scenario(run_scenario: Callable[..., Any], case: str) -> str:
    result = run_scenario("fork", case, dev_mode=True)
    assert "child status 0" in result.stdout
    assert result.stderr == ""
    return str(result.stdout)


def test_a_forked_child_can_resume_and_finish_the_parents_suspended_fibers(
    run_scenario: Callable[..., Any],
) -> None:
    output = _fork_scenario(run_scenario, "child_resumes_the_parents_fibers")
    assert output.count("unwound in child") == 10


def test_a_forked_child_unwinds_the_parents_fibers_it_drops(
    run_scenario: Callable[..., Any],
) -> None:
    output = _fork_scenario(run_scenario, "child_drops_the_parents_fibers")
    assert output.count("unwound in child") == 3


def test_a_forked_child_can_run_new_fibers(run_scenario: Callable[..., Any]) -> None:
    _fork_scenario(run_scenario, "child_makes_new_fibers")


def test_fork_inside_a_fiber_continues_in_the_fiber_in_both_processes(
    run_scenario: Callable[..., Any],
) -> None:
    _fork_scenario(run_scenario, "fork_inside_a_fiber")


def test_fibers_of_a_thread_missing_in_the_child_are_refused_and_never_run(
    run_scenario: Callable[..., Any],
) -> None:
    output = _fork_scenario(run_scenario, "fibers_of_a_thread_that_is_gone_in_the_child")
    assert "unwound in child" not in output
    assert "reported as leaked: 2" in output
