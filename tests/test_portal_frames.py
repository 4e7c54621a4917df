"""The frames below a portal task's code: while a step runs, the task's coroutine frame
has the loop's frame that stepped it as its ``f_back``, as natively, so
``sys._getframe()`` walks, ``inspect.stack()`` and ``warnings.warn(stacklevel=...)``
reach the loop's frames; while the task waits it is None, as natively (scenario
``portal_frames``: twins compared on each backend, in a child interpreter so that
whether greenlet is loaded is the test's choice)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from portal_harness import available

Runner = Callable[..., subprocess.CompletedProcess[str]]

FRAME_BACKENDS = ["asyncio", "asyncio-pytask", "uvloop", "trio"]


def _twins(run_scenario: Runner, backend: str, mode: str) -> dict[str, Any]:
    reason = available(backend)
    if reason is not None:
        pytest.skip(reason)
    result = run_scenario("portal_frames", backend, mode)
    assert result.stderr == ""
    twins: dict[str, Any] = json.loads(result.stdout)
    return twins


@pytest.mark.parametrize("backend", FRAME_BACKENDS)
def test_a_task_under_await_sees_the_frames_below_it_as_natively(
    run_scenario: Runner, backend: str
) -> None:
    twins = _twins(run_scenario, backend, "plain")
    native = twins["native"]
    # Before and after the waits: leaf, mid, task, then the loop's frames down to the
    # module (uvloop's loop is C: there the frame below the task is the one running the
    # loop); the warning past the task's frames points at the first of them.
    assert native[0]["chain"][:3] == ["leaf", "mid", "task"]
    assert native[0]["chain"][-2:] == ["run_twin", "<module>"]
    assert native[0]["warning"][0] != "sys"
    assert native[1] == {"f_back while waiting": "None"}
    assert twins["anywait"] == native


def test_with_greenlet_loaded_the_task_frame_has_no_f_back(run_scenario: Runner) -> None:
    # Steps may run on greenlet's runner greenlet then, whose frames greenlet keeps
    # itself: the chain ends at the task's coroutine (docs/portals.md says so).
    twins = _twins(run_scenario, "asyncio", "greenlet")
    for seen in (twins["anywait"][0], twins["anywait"][2]):
        assert seen["chain"] == ["leaf", "mid", "task"]
        assert seen["inspect"] == ["leaf", "mid", "task"]
    assert twins["anywait"][1] == twins["native"][1]
