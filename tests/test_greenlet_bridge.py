"""await_ inside greenlets started by sync code in portal steps (SQLAlchemy's pattern);
see crates/anywait-py/src/greenlet_bridge.rs. Runs in child interpreters: a mistake in
keeping greenlet's per-thread state in step with the fibers is a crash."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest


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
