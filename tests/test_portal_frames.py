"""The frames below a portal task's code, against its native twin (scenario
``portal_frames``, in a child interpreter so that whether greenlet is loaded is the
test's choice): the chain ``sys._getframe()`` walks, ``inspect.stack()``,
``warnings.warn(stacklevel=...)`` past the task's frames, and the task's coroutine
frame's ``f_back`` while it waits.

Natively the task's coroutine frame has the loop's frame that stepped it as its
``f_back`` while it runs. Under a portal the chain ends at the task's coroutine: it runs
on the portal's worker fiber, and continuing that fiber's chain into the loop's frame
for each resume (as stackful generators do into their consumer's) is not safe for a
worker. C code on the fiber's stack may keep the thread's current frame in a local
across a call that suspends the fiber, and restore it after a later resume from
another frame. CPython's ``_gen_throw`` does so when a task is cancelled while its
coroutine awaits another one: the fuzzer's seed 901642 (asyncio-pytask) crashed on that
stale frame when the chain was continued. What is not yet as native is a strict xfail.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from portal_harness import require

Runner = Callable[..., subprocess.CompletedProcess[str]]

FRAME_BACKENDS = ["asyncio", "asyncio-pytask", "uvloop", "trio"]


def _twins(run_scenario: Runner, backend: str, mode: str) -> dict[str, Any]:
    require(backend)
    result = run_scenario("portal_frames", backend, mode)
    assert result.stderr == ""
    twins: dict[str, Any] = json.loads(result.stdout)
    return twins


@pytest.mark.xfail(
    strict=True,
    reason="under a portal the task's coroutine frame has no f_back while its step runs: "
    "the chain ends at the task (see the module docstring)",
)
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


@pytest.mark.parametrize("mode", ["plain", "greenlet"])
def test_a_task_under_await_sees_its_own_frames_up_to_its_coroutine(
    run_scenario: Runner, mode: str
) -> None:
    # What is: the sync frames and the task's coroutine, as natively, and nothing below
    # it; while the task waits, f_back is None as natively.
    twins = _twins(run_scenario, "asyncio", mode)
    for seen in (twins["anywait"][0], twins["anywait"][2]):
        assert seen["chain"] == ["leaf", "mid", "task"]
        assert seen["inspect"] == ["leaf", "mid", "task"]
        assert twins["native"][0]["chain"][:3] == seen["chain"]
    assert twins["anywait"][1] == twins["native"][1] == {"f_back while waiting": "None"}
