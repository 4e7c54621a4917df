"""The differential fuzzer (tests/fuzz): random programs of async and sync frames run
natively and with their sync frames as plain ``def`` + ``await_``, on every backend,
must log the same events; the fuzzer must catch a divergence when there is one; and
each divergence it found in anywait stays here as a regression test.

``python -m tests.fuzz -n 100000`` (``make fuzz N=100000``) is the long run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fuzz import program as p
from fuzz.runner import BACKENDS, check, reduce, run_twin
from portal_harness import require

REPOSITORY = Path(__file__).resolve().parent.parent

#: Programs per backend in this suite; seeded, so every run checks the same ones.
PROGRAMS = 300


def _fuzz(
    env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-X", "faulthandler"]
    if sys.flags.dev_mode:
        command += ["-X", "dev"]
    return subprocess.run(
        [*command, "-m", "tests.fuzz", *args],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_and_anywait_twins_log_the_same_events(
    backend: str, child_env: dict[str, str]
) -> None:
    require(backend)
    child = _fuzz(child_env, "--backend", backend, "--seed", "0", "-n", str(PROGRAMS))
    assert child.returncode == 0, f"{child.stdout}\n--- stderr ---\n{child.stderr}"
    assert "fuzz: no divergence" in child.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_twin_logs_the_same_events_every_run(backend: str) -> None:
    """What the comparison rests on: scheduling is deterministic, so a twin run twice
    logs the same, and a difference between twins is the twins' own."""
    require(backend)
    for seed in range(20):
        program = p.generate(seed)
        for twin in ("native", "anywait"):
            assert run_twin(program, twin, backend) == run_twin(program, twin, backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_injected_divergence_is_caught_and_reduced(backend: str) -> None:
    require(backend)
    for seed in range(50):
        program = p.generate(seed)
        divergence = check(program, backend, drop="finally")
        if divergence is not None:
            break
    else:
        pytest.fail("no program of the first 50 has a finally block")
    assert check(program, backend) is None, "the program diverges without the injection"
    reduced = reduce(divergence, drop="finally").reduced
    assert reduced is not None
    assert p.size(reduced) < p.size(program)
    assert check(reduced, backend, drop="finally") is not None
    # What is left is the smallest program with a finally block: one Try in the root.
    assert [type(s) for s in reduced.root.body] == [p.Try]
    assert f"seed {seed} on {backend}" in divergence.report()


def test_the_long_run_prints_the_seed_and_the_reduced_program(child_env: dict[str, str]) -> None:
    child = _fuzz(
        child_env,
        *("--backend", "asyncio", "--seed", "0", "-n", "20"),
        *("--inject", "finally", "--max-failures", "1"),
    )
    assert child.returncode == 1, child.stderr
    assert "divergence: seed 0 on asyncio" in child.stdout
    assert "reduced to 1" in child.stdout
    assert "--- anywait twin ---\nasync def root():" in child.stdout
    assert "fuzz: 1 divergence(s) or crash(es)" in child.stdout


# --- divergences the fuzzer found -----------------------------------------------------


def _stackful_generator_handler_calls_through_a_portal() -> p.Program:
    """Seed 1400 (also 640), reduced: a stackful async generator's body, handling a
    KeyError, calls ``await_(anywait.with_portal_run(f9))``; natively f9 is entered with
    ``sys.exc_info()`` KeyError, through anywait with None."""
    f9 = p.Frame(9, "async", [])
    handler = p.Try(
        6, [p.Raise(15, "KeyError")], "KeyError", [p.Call(8, f9, "portal")], False, None
    )
    gen = p.Generator(5, stackful=True, body=[handler])
    root = p.Frame(1, "async", [p.Iterate(4, gen, stop=None)])
    return p.Program(1400, root, "ensure", cancel_at=None, cancel_kind="cancel", timeout_ticks=9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_portal_run_in_a_stackful_generator_sees_the_handled_exception(
    backend: str,
) -> None:
    require(backend)
    divergence = check(_stackful_generator_handler_calls_through_a_portal(), backend)
    assert divergence is None, divergence.report() if divergence else ""


@pytest.mark.parametrize("backend", ["asyncio", "asyncio-pytask"])
def test_a_task_cancelled_while_its_coroutine_awaits_another_resumes_its_frames_safely(
    backend: str, child_env: dict[str, str]
) -> None:
    """Seed 901642: a cancellation thrown into a portal task whose coroutine awaits
    another one that calls sync code blocking in ``await_``, resumed later from another
    loop frame. CPython's ``_gen_throw`` keeps the thread's current frame in a local
    across the throw; a worker whose frame chain was continued into its resumer's would
    have that frame restored stale after the later resume, and crashed there (found by
    the long run, tests/test_portal_frames.py has the rest). In a child: a crash fails
    this test only."""
    require(backend)
    child = _fuzz(child_env, "--backend", backend, "--seed", "901642", "-n", "1")
    assert child.returncode == 0, f"{child.stdout}\n--- stderr ---\n{child.stderr}"
    assert "fuzz: no divergence" in child.stdout


@pytest.mark.parametrize("greenlet", ["plain", "greenlet"])
def test_a_portal_step_sees_the_exception_its_pure_python_task_is_handling(
    run_scenario: Any, greenlet: str
) -> None:
    """The pure-Python Task runs a step from inside ``except BaseException`` when the
    future it awaited failed, so natively the coroutine reads that exception from
    ``sys.exc_info()``; so must a step run through a portal (fixed by chaining a
    portal worker's exceptions into its resumer's, and, with greenlet imported, the
    bridge's runner greenlet's into the worker's). In a child process: whether greenlet
    is imported decides how steps run."""
    if greenlet == "greenlet":
        pytest.importorskip("greenlet")
    result = run_scenario("pytask_exc_info", greenlet)
    native, portal = json.loads(result.stdout.splitlines()[-1])
    assert native == "KeyError('from the future')"
    assert portal == native
