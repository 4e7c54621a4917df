"""Shared helpers for anywait's test suite.

Scenarios that can crash the interpreter (stack overflows, garbage collection across
threads, shutdown, fork, 100,000 fibers) live in ``tests/scenarios/*.py`` and run in a
child interpreter with faulthandler on, through the ``run_scenario`` fixture, so that a
crash fails one test with the child's output instead of taking the whole run down.

Test files are named for the layer or feature they test, so a failing test names its room:

* ``test_fiber_*``: the fiber engine (``anywait.lowlevel``; crates/anywait-py/src/fiber,
  pystate and crate anywait-fiber): switching, lifetimes, threads, tracing, recursion;
* ``test_portal_*``: ``await_`` and portals (src/portal; ``anywait._portals``, ``_run``,
  ``_tree``): what ``await_`` does against native ``await``, queries, lifetimes;
* ``test_tasks_*``: putting a portal under a running task (src/tasks, ``anywait._tasks``);
* ``test_adapters``: the sync adapters (``anywait._adapters``);
* ``test_sync_loop``: sync-first programs, a persistent loop (``anywait._sync_loop``);
* ``test_sync_trio``: the same on a persistent Trio run (``anywait._sync_trio``);
* ``test_nested_run``: nested ``asyncio.run`` inside a running loop (``anywait._nested_run``);
* ``test_jupyter``: the IPython extension in a real kernel (``anywait._jupyter``);
* ``test_repl``: ``python -m anywait`` in a pseudo-terminal (``anywait._repl``);
* ``test_interop_*``: await_ next to other libraries: AnyIO, Trio's own objects, asyncio's
  eager tasks, greenlet (src/interop);
* ``test_compat_*``: peers' own published test suites run against anywait;
* ``test_docs_*``: the examples and every code block of the docs;
* ``test_support``: importing on an interpreter anywait does not support.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from portal_harness import BACKENDS, require

SCENARIOS = Path(__file__).parent / "scenarios"

#: Not collected here: the ``greenback`` shim that peers' suites run against, staged by
#: tests/test_compat_greenback.py into a scratch folder with its own conftest.
collect_ignore = ["compat"]

#: Debug interpreters (``python3.Xd``) are several times slower and count references.
DEBUG_BUILD = hasattr(sys, "gettotalrefcount")

#: Seconds a scenario may run before it is killed (SIGABRT first, so that faulthandler
#: prints where every thread is stuck).
SCENARIO_TIMEOUT = 600 if DEBUG_BUILD else 240


def _describe_returncode(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def child_environment() -> dict[str, str]:
    """The environment for a child interpreter that must import the same anywait as this
    one, from any working directory."""
    import anywait

    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    package_root = str(Path(anywait.__file__).resolve().parent.parent)
    entries = [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([package_root, *entries])
    return env


def run_scenario_script(
    name: str,
    *args: object,
    returncode: int = 0,
    dev_mode: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = SCENARIO_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``tests/scenarios/<name>.py`` in a child interpreter and check its exit code.

    The child is this interpreter (``sys.executable``) with ``-X faulthandler``, and
    with ``-X dev`` (debug memory allocators, extra runtime checks) if asked. The test
    fails, showing the child's stdout and stderr, unless it exits with ``returncode``.
    """
    script = SCENARIOS / f"{name}.py"
    assert script.is_file(), f"no scenario script {script}"
    command = [sys.executable, "-X", "faulthandler"]
    if dev_mode:
        command += ["-X", "dev"]
    command += [str(script), *map(str, args)]
    child_env = child_environment()
    child_env["PYTHONFAULTHANDLER"] = "1"
    if env:
        child_env.update(env)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
        cwd=SCENARIOS,
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)  # faulthandler dumps every thread's stack
            stdout, stderr = child.communicate()
            pytest.fail(
                f"scenario {name} {list(args)} did not finish in {timeout} s\n"
                f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                pytrace=False,
            )
    result = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    if result.returncode != returncode:
        pytest.fail(
            f"scenario {name} {list(args)}: {_describe_returncode(result.returncode)}, "
            f"expected {_describe_returncode(returncode)}\n"
            f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            pytrace=False,
        )
    return result


@pytest.fixture
def run_scenario() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_scenario(name, *args, returncode=0, dev_mode=False, env=None)``: see
    :func:`run_scenario_script`."""
    return run_scenario_script


@pytest.fixture
def child_env() -> dict[str, str]:
    """See :func:`child_environment`."""
    return child_environment()


@pytest.fixture
def recursion_limit() -> Iterator[Callable[[int], None]]:
    """Call with a limit to set ``sys.setrecursionlimit`` for the rest of the test."""
    original = sys.getrecursionlimit()

    def set_limit(limit: int) -> None:
        sys.setrecursionlimit(limit)

    yield set_limit
    sys.setrecursionlimit(original)


class UnraisableRecorder:
    """Collects what reaches ``sys.unraisablehook`` while installed (see ``unraisables``)."""

    def __init__(self) -> None:
        self.reports: list[tuple[type[BaseException] | None, str]] = []

    def __call__(self, unraisable: object) -> None:
        exc_type = getattr(unraisable, "exc_type", None)
        exc_value = getattr(unraisable, "exc_value", None)
        self.reports.append((exc_type, str(exc_value)))


class _UnraisableHookInstaller:
    """Context manager installing a recorder as ``sys.unraisablehook``.

    Used inside a test body rather than as a fixture because pytest installs its own
    hook around the call phase; installing ours inside the call keeps each restore in
    the right order on every pytest version.
    """

    def __enter__(self) -> UnraisableRecorder:
        self._saved = sys.unraisablehook
        self.recorder = UnraisableRecorder()
        sys.unraisablehook = self.recorder
        return self.recorder

    def __exit__(self, *exc_info: object) -> None:
        sys.unraisablehook = self._saved


@pytest.fixture
def capture_unraisable() -> Callable[[], _UnraisableHookInstaller]:
    """``with capture_unraisable() as recorder:`` records unraisable exceptions."""
    return _UnraisableHookInstaller


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each event loop the portal tests run on (skipped where its library is missing)."""
    require(request.param)
    return str(request.param)
