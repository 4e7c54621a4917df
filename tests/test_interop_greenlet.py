"""await_ next to greenlet, in child interpreters (a mistake in keeping greenlet's
per-thread state in step with the fibers is a crash; see
crates/anywait-py/src/interop/greenlet.rs): greenlets started by sync code in one or many
portal tasks, and SQLAlchemy's greenlet_spawn pattern. The cases of
tests/scenarios/portal_greenlet.py run natively and through await_ and their logs must
match."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from portal_harness import available

Runner = Callable[..., subprocess.CompletedProcess[str]]


def missing(*modules: str) -> str | None:
    for module in modules:
        try:
            __import__(module)
        except ImportError as exc:  # debug interpreters cannot load release-ABI builds
            return f"{module} cannot be imported here: {exc}"
    return None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_await__inside_greenlets_of_many_tasks_at_once(
    run_scenario: Callable[..., Any], backend: str
) -> None:
    reason = missing("greenlet", *(["trio"] if backend == "trio" else []))
    if reason is not None:
        pytest.skip(reason)
    result = run_scenario("greenlet_bridge", backend)
    assert result.stdout.strip().endswith(f"ok {backend}")
    assert result.stderr == ""


def test_greenlet_imported_while_portal_tasks_run(run_scenario: Callable[..., Any]) -> None:
    reason = missing("greenlet")
    if reason is not None:
        pytest.skip(reason)
    result = run_scenario("greenlet_late_import")
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""


def test_eager_tasks_nested_in_a_portal_step_with_greenlet_loaded(
    run_scenario: Callable[..., Any],
) -> None:
    if sys.version_info < (3, 12):
        pytest.skip("asyncio.eager_task_factory is new in Python 3.12")
    reason = missing("greenlet")
    if reason is not None:
        pytest.skip(reason)
    result = run_scenario("greenlet_eager")
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""


@pytest.fixture
def greenlet_scenario(run_scenario: Runner) -> Callable[..., list[str]]:
    reason = _greenlet_unavailable()
    if reason is not None:
        pytest.skip(reason)

    def run_case(case: str, backend: str = "asyncio") -> list[str]:
        result = run_scenario("portal_greenlet", case, backend)
        assert result.stdout.splitlines()[-1] == f"ok {case}"
        return result.stdout.splitlines()

    return run_case


def _greenlet_unavailable() -> str | None:
    try:
        import greenlet  # noqa: F401
    except ImportError as exc:
        return f"greenlet cannot be imported here: {exc}"
    return None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    "case",
    [
        "await__inside_a_greenlet",
        "await__in_the_parent_while_a_greenlet_is_suspended",
        "sqlalchemy_greenlet_spawn_in_one_portal_task",
        "await__in_a_greenlet_runs_in_the_greenlets_context",
    ],
)
def test_greenlet_in_one_portal_task(
    greenlet_scenario: Callable[..., list[str]], case: str, backend: str
) -> None:
    if backend == "trio" and available("trio") is not None:
        pytest.skip(str(available("trio")))
    greenlet_scenario(case, backend)


@pytest.mark.parametrize(
    "case",
    [
        "other_tasks_see_their_own_current_greenlet",
        "two_tasks_each_suspend_inside_a_greenlet",
        "a_plain_task_uses_greenlets_while_a_portal_task_is_suspended_in_one",
    ],
)
def test_greenlet_await__inside_greenlets_of_concurrent_tasks(
    greenlet_scenario: Callable[..., list[str]], case: str
) -> None:
    greenlet_scenario(case)


def test_greenlet_sqlalchemy_pattern_with_concurrent_portal_tasks(
    greenlet_scenario: Callable[..., list[str]],
) -> None:
    greenlet_scenario("sqlalchemy_greenlet_spawn_with_concurrent_portal_tasks")
