"""Real debuggers and coverage attached to a program whose tasks wait in ``await_``: pdb
driven through a pseudo-terminal (pexpect), and ``coverage`` started or stopped while
tasks are blocked. Each runs twice, through anywait and natively (the same functions
async, waiting with ``await``), and what the tool shows of the two must agree: the
scenarios (``scenarios/pdb_stepping.py``, ``scenarios/coverage_midrun.py``) give the
twins' functions the same names and the same offsets from their ``def`` lines, and the
comparisons here are made in those terms.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SCENARIOS, child_environment, run_scenario_script

TIMEOUT = 60
MODES = ["await_", "native"]

# -- where each line of a scenario sits, in terms both twins share -------------------------


def _twin_lines(script: Path) -> dict[str, dict[int, tuple[str, int]]]:
    """For each mode, each line of its twin's functions (``if MODE == "await_": ...
    else: ...``) as (function name, offset from its ``def``)."""
    tree = ast.parse(script.read_text())
    twins = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and "MODE" in ast.unparse(node.test)
        and any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in node.body)
    )
    modes: dict[str, dict[int, tuple[str, int]]] = {}
    for mode, body in [("await_", twins.body), ("native", twins.orelse)]:
        places = modes[mode] = {}
        for function in body:
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                assert function.end_lineno is not None
                for line in range(function.lineno, function.end_lineno + 1):
                    places[line] = (function.name, line - function.lineno)
    return modes


def _place(places: dict[int, tuple[str, int]], line: int) -> tuple[str, int] | int:
    return places.get(line, line)


def _marked(script: Path, marker: str) -> set[int]:
    lines = script.read_text().splitlines()
    return {n for n, text in enumerate(lines, 1) if text.endswith(f"# {marker}")}


# -- pdb in a pseudo-terminal --------------------------------------------------------------

PDB_SCRIPT = SCENARIOS / "pdb_stepping.py"
PDB_PROMPT = r"\(Pdb\) "
LOCATION = re.compile(r"^(>|\s) (\S+)\((\d+)\)(\S+)\(\)", re.MULTILINE)
PDB_BACKENDS = [
    "asyncio",
    pytest.param(
        "trio",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("trio") is None, reason="trio is not installed"
        ),
    ),
]


@dataclass(frozen=True)
class Frame:
    """One frame as pdb names it: a scenario line as (function, offset from its def),
    another file's line as (file name, line)."""

    function: str
    place: tuple[str, int] | tuple[str, str, int]


class Pdb:
    """The scenario under pdb in a pseudo-terminal, read as a person reads it."""

    def __init__(self, backend: str, mode: str) -> None:
        pexpect = pytest.importorskip(
            "pexpect", reason="pexpect is not installed (the test extra has it)"
        )
        self.pexpect = pexpect
        self.mode = mode
        self.places = _twin_lines(PDB_SCRIPT)[mode]
        env = child_environment()
        env.pop("PYTHONBREAKPOINT", None)
        env.update(TERM="dumb", PYTHON_COLORS="0", NO_COLOR="1", PYTHONSTARTUP="")
        command = ["-X", "faulthandler", str(PDB_SCRIPT), backend, mode]
        # As in terminal.py: 3.15 warns that forking a process with a second OS thread
        # (pytest's faulthandler watchdog) may deadlock; the child execs at once.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r".*is multi-threaded, use of forkpty\(\)",
                category=DeprecationWarning,
            )
            self.child = pexpect.spawn(
                sys.executable,
                command,
                env=env,
                cwd=str(SCENARIOS),
                encoding="utf-8",
                timeout=TIMEOUT,
                dimensions=(50, 250),
            )
        self.shown = self._expect_prompt()

    def _expect_prompt(self) -> str:
        self.child.expect(PDB_PROMPT)
        return str(self.child.before).replace("\r\n", "\n")

    def command(self, text: str) -> str:
        """Types a command; returns what pdb showed up to its next prompt."""
        self.child.sendline(text)
        return self._expect_prompt()

    def command_to_end(self, text: str) -> tuple[str, int]:
        """Types a command after which the program ends; returns its output, exit code."""
        self.child.sendline(text)
        self.child.expect(self.pexpect.EOF)
        shown = str(self.child.before).replace("\r\n", "\n")
        self.child.close()
        return shown, self.child.exitstatus

    def frames(self, shown: str) -> list[Frame]:
        """The frames pdb named in ``shown``, in order (a stop names one, ``where`` all)."""
        frames = []
        for _, path, line, function in LOCATION.findall(shown):
            if Path(path).name == PDB_SCRIPT.name:
                place: Any = _place(self.places, int(line))
                place = place if isinstance(place, tuple) else ("line", int(line))
            else:
                place = ("file", Path(path).name, int(line))
            frames.append(Frame(function, place))
        return frames

    def stop(self, shown: str) -> Frame:
        """The frame pdb stopped in (the last named in ``shown``)."""
        frames = self.frames(shown)
        assert frames, f"pdb named no frame in:\n{shown}"
        return frames[-1]

    def close(self) -> None:
        self.child.close(force=True)


def _at_the_breakpoint(pdb: Pdb) -> list[Frame]:
    """The stops up to the line after ``breakpoint()`` (3.13+ stop at the call itself)."""
    stops = [pdb.stop(pdb.shown)]
    if "-> breakpoint()" in pdb.shown:
        stops.append(pdb.stop(pdb.command("next")))
    return stops


@dataclass
class Session:
    stops: list[Frame]
    ticks: tuple[int, int]
    x: str
    where: list[Frame]
    output: str
    exit_code: int


def _step_over_the_wait(backend: str, mode: str) -> Session:
    pdb = Pdb(backend, mode)
    try:
        stops = _at_the_breakpoint(pdb)
        assert "-> x = " in pdb.shown or "-> x = " in pdb.command("where")
        ticks_before = int(pdb.command("p len(other_ticks)").split()[-1])
        stops.append(pdb.stop(pdb.command("next")))
        ticks_after = int(pdb.command("p len(other_ticks)").split()[-1])
        x = pdb.command("p x").split()[-1]
        where = pdb.frames(pdb.command("where"))
        output, exit_code = pdb.command_to_end("continue")
    finally:
        pdb.close()
    return Session(stops, (ticks_before, ticks_after), x, where, output, exit_code)


@pytest.mark.parametrize("backend", PDB_BACKENDS)
def test_pdb_stops_at_a_breakpoint_under_await_and_steps_over_the_wait(backend: str) -> None:
    session = _step_over_the_wait(backend, "await_")
    native = _step_over_the_wait(backend, "native")
    assert session.stops == native.stops
    assert session.stops[-2:] == [Frame("step", ("step", 2)), Frame("step", ("step", 3))]
    before, after = session.ticks
    assert after > before, "the other task did not run while the sync code waited"
    assert session.x == "41"
    assert session.output.split() == ["continue", "42", "bystander", "woken", "result", "41"]
    assert session.exit_code == 0


@pytest.mark.parametrize("backend", PDB_BACKENDS)
def test_pdb_where_under_await_shows_the_sync_frames_and_the_task_above_the_loop(
    backend: str,
) -> None:
    # Natively ``where`` goes on below the task's coroutine into the loop's frames.
    session = _step_over_the_wait(backend, "await_")
    native = _step_over_the_wait(backend, "native")
    functions = [frame.function for frame in session.where]
    assert functions[-4:] == ["main", "task", "caller", "step"]
    assert session.where == native.where[-len(session.where) :]


# Under a portal the task's outermost frame (its coroutine's) has no f_back while it runs
# on the portal's fiber; natively it is the loop's frame that stepped it (see
# tests/test_portal_frames.py for why the chain is not continued there).
_TASK_FRAME_HAS_NO_CALLER = pytest.mark.xfail(
    strict=True,
    reason="under a portal the task's coroutine frame has no f_back: pdb shows no loop "
    "frames below it, and takes it for its bottom frame",
)
# 3.14's bdb no longer stops at a StopIteration below a coroutine bottom frame, so there
# the missing caller shows only in `where`.
_BOTTOM_FRAME_STOPS_AT_STOPITERATION = pytest.mark.xfail(
    sys.version_info < (3, 14),
    strict=True,
    reason="under a portal the task's coroutine frame has no f_back: pdb takes it for "
    "its bottom frame, and before 3.14 bdb stops at every StopIteration below one",
)


@_TASK_FRAME_HAS_NO_CALLER
@pytest.mark.parametrize("backend", PDB_BACKENDS)
def test_pdb_where_under_await_shows_what_native_where_shows(backend: str) -> None:
    session = _step_over_the_wait(backend, "await_")
    native = _step_over_the_wait(backend, "native")
    assert session.where == native.where


def _continue_to_a_breakpoint(
    backend: str, mode: str, function: str, offset: int, skip_internal: bool
) -> tuple[list[Frame], int]:
    """Sets a breakpoint on ``function``'s line ``offset`` and continues; returns the
    stops up to it (or to the end) and how many "Internal StopIteration" stops were
    skipped on the way (only with ``skip_internal``)."""
    pdb = Pdb(backend, mode)
    try:
        _at_the_breakpoint(pdb)
        (line,) = (n for n, place in pdb.places.items() if place == (function, offset))
        assert "Breakpoint 1" in pdb.command(f"break {PDB_SCRIPT.name}:{line}")
        stops: list[Frame] = []
        internal = 0
        while True:
            pdb.child.sendline("continue")
            if pdb.child.expect([PDB_PROMPT, pdb.pexpect.EOF]) == 1:
                break
            shown = str(pdb.child.before)
            if skip_internal and "Internal StopIteration" in shown:
                internal += 1
                continue
            stops.append(pdb.stop(shown))
            if stops[-1] == Frame(function, (function, offset)):
                break
    finally:
        pdb.close()
    return stops, internal


@pytest.mark.xfail(
    sys.version_info >= (3, 14),
    strict=True,
    reason="3.14's breakpoint() runs pdb on its sys.monitoring backend, which learns of a "
    "resumed coroutine frame from CPython's PY_RESUME event; a sync frame resumed by a "
    "fiber switch gets none (anywait gives only sys.settrace tracers their 'call')",
)
@pytest.mark.parametrize("backend", PDB_BACKENDS)
def test_pdb_stops_at_a_breakpoint_in_sync_code_that_was_waiting_when_pdb_started(
    backend: str,
) -> None:
    # The bystander has waited since before breakpoint(); once released it runs the
    # line after its wait (offset 3 of ``waiting``). Natively its coroutine frame gets a
    # 'call' event when it resumes, and bdb's answer (it has breakpoints) traces it; the
    # sync frame is given that event when its fiber resumes (pystate/tracing.rs).
    native, _ = _continue_to_a_breakpoint(backend, "native", "waiting", 3, skip_internal=True)
    assert native[-1:] == [Frame("waiting", ("waiting", 3))]
    stops, _ = _continue_to_a_breakpoint(backend, "await_", "waiting", 3, skip_internal=True)
    assert stops == native


@_BOTTOM_FRAME_STOPS_AT_STOPITERATION
@pytest.mark.parametrize("backend", PDB_BACKENDS)
def test_pdb_continue_with_a_breakpoint_set_stops_only_at_the_breakpoint(backend: str) -> None:
    # pdb's bottom frame is the task's coroutine under a portal, and bdb stops at every
    # StopIteration another coroutine raises below a generator or coroutine bottom frame.
    native, _ = _continue_to_a_breakpoint(backend, "native", "step", 4, skip_internal=False)
    assert native == [Frame("step", ("step", 4))]
    stops, _ = _continue_to_a_breakpoint(backend, "await_", "step", 4, skip_internal=False)
    assert stops == native


# -- coverage started or stopped while tasks wait ------------------------------------------

COVERAGE_SCRIPT = SCENARIOS / "coverage_midrun.py"


def _cores(**xfails: pytest.MarkDecorator) -> list[Any]:
    """coverage's cores (sysmon from 3.12), each with the xfail given for it if any."""
    sysmon_skip = pytest.mark.skipif(
        sys.version_info < (3, 12), reason="coverage's sysmon core needs 3.12"
    )
    return [
        pytest.param(core, marks=[*skip, *([xfails[core]] if core in xfails else [])])
        for core, skip in [("ctrace", []), ("pytrace", []), ("sysmon", [sysmon_skip])]
    ]


@dataclass
class Measured:
    lines: set[int]
    places: set[tuple[str, int] | int]


def _measure(core: str, mode: str, action: str, tmp_path: Path) -> Measured:
    """Runs coverage_midrun.py under COVERAGE_CORE=core; what coverage measured of it."""
    coverage = pytest.importorskip("coverage", reason="coverage is not installed")
    if coverage.version_info < (7, 4):
        pytest.skip(
            "coverage older than 7.4 (Debian bookworm's is 6.5) cannot be told its core "
            "with COVERAGE_CORE, and has no sys.monitoring core"
        )
    env = {k: v for k, v in child_environment().items() if not k.startswith("COVERAGE_")}
    env.update(COVERAGE_CORE=core, PYTHONFAULTHANDLER="1")
    data_file = tmp_path / f"coverage-{mode}-{action}.data"
    command = [sys.executable, "-X", "faulthandler", str(COVERAGE_SCRIPT), mode, action]
    done = subprocess.run(
        [*command, str(data_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(
            f"{command} exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}",
            pytrace=False,
        )
    report = json.loads(done.stdout.splitlines()[-1])
    tracer = {"ctrace": "CTracer", "pytrace": "PyTracer", "sysmon": "SysMonitor"}[core]
    assert report["core"] == tracer, f"coverage ran its {report['core']}, not {core}"
    assert report["results"] == [36, 37, 40]
    lines = set(report["lines"])
    assert lines <= set(report["statements"]), (
        f"lines that are no statements of {COVERAGE_SCRIPT.name} measured as its own: "
        f"{sorted(lines - set(report['statements']))}"
    )
    places = _twin_lines(COVERAGE_SCRIPT)[mode]
    waits = _marked(COVERAGE_SCRIPT, "the wait")
    return Measured(lines, {_place(places, line) for line in lines - waits})


def _show(places: set[tuple[str, int] | int]) -> list[str]:
    return sorted(map(str, places))


@pytest.mark.parametrize("core", _cores())
def test_coverage_started_while_tasks_wait_in_await_measures_what_they_run_once_released(
    core: str, tmp_path: Path
) -> None:
    measured = _measure(core, "await_", "start", tmp_path)
    expected = _marked(COVERAGE_SCRIPT, "covered after start")
    assert len(expected) == 7
    missing = expected - measured.lines
    assert not missing, f"lines run after coverage started, not measured: {sorted(missing)}"


@pytest.mark.parametrize("core", _cores())
def test_coverage_started_while_tasks_wait_in_await_measures_their_resumed_frames_as_native(
    core: str, tmp_path: Path
) -> None:
    measured = _measure(core, "await_", "start", tmp_path)
    native = _measure(core, "native", "start", tmp_path)
    assert _show(measured.places) == _show(native.places)


# coverage's tracers keep a stack of the frames they are in, pushed and popped on 'call'
# and 'return' events, and record a line in the file on top of it; a coroutine's suspend
# and resume are such events, a fiber's switches are not.
_SHADOW_STACK_C = pytest.mark.xfail(
    strict=True,
    reason="coverage's C tracer records lines of asyncio's base_events.py as lines of the "
    "file whose traced sync frames wait in await_",
)
_SHADOW_STACK_LOST_LINE = pytest.mark.xfail(
    strict=True,
    reason="coverage's tracers miss the line after await_ in the innermost sync frame "
    "(and the C tracer records lines of asyncio's base_events.py as this file's)",
)


@pytest.mark.parametrize("core", _cores(ctrace=_SHADOW_STACK_C))
def test_coverage_stopped_while_tasks_wait_in_await_measures_no_more_than_natively(
    core: str, tmp_path: Path
) -> None:
    measured = _measure(core, "await_", "stop", tmp_path)
    native = _measure(core, "native", "stop", tmp_path)
    before = _marked(COVERAGE_SCRIPT, "covered before stop")
    assert before <= measured.lines
    after = _marked(COVERAGE_SCRIPT, "covered after start")
    assert not after & measured.lines, "lines run after coverage stopped were measured"
    assert _show(measured.places) == _show(native.places)


@pytest.mark.parametrize(
    "core", _cores(ctrace=_SHADOW_STACK_LOST_LINE, pytrace=_SHADOW_STACK_LOST_LINE)
)
def test_coverage_running_while_tasks_wait_in_await_measures_what_native_measures(
    core: str, tmp_path: Path
) -> None:
    measured = _measure(core, "await_", "throughout", tmp_path)
    native = _measure(core, "native", "throughout", tmp_path)
    assert _show(measured.places) == _show(native.places)


# -- the events a sys.settrace tracer gets from frames resumed by a switch -----------------


def _traced_twins(case: str) -> dict[str, Any]:
    if case == "portal-trio":
        pytest.importorskip("trio", reason="trio is not installed")
    done = run_scenario_script("tracing_resumed", case, timeout=TIMEOUT)
    assert done.stderr == ""
    twins: dict[str, Any] = json.loads(done.stdout)
    return twins


@pytest.mark.parametrize("case", ["portal-asyncio", "portal-trio", "tracer_raises"])
def test_a_tracer_started_while_a_task_waits_gets_its_resumed_frames_events_as_native(
    case: str,
) -> None:
    # Natively each coroutine frame gets a 'call' event as the task resumes (outermost
    # first) and the tracer's answer traces the rest of it; so do the sync frames
    # blocked in await_. A tracer that raises on one of them raises into the task.
    twins = _traced_twins(case)
    native = twins["native"]
    if case == "tracer_raises":
        assert native["outcome"] == ["LookupError('from the tracer')"]
        assert native["events"] == [["call", "task", 4], ["call", "mid", 1]]
    else:
        assert native["outcome"] == [2]
        assert native["events"][:3] == [
            ["call", "task", 4],
            ["call", "mid", 1],
            ["call", "leaf", 1],
        ]
        assert ["line", "leaf", 2] in native["events"]
    assert twins["anywait"] == native


def test_a_tracer_started_while_a_stackful_generator_is_suspended_traces_it_once_resumed() -> None:
    twins = _traced_twins("generator")
    native, stackful = twins["native"], twins["anywait"]
    assert native["outcome"] == stackful["outcome"] == [11]
    # The native generator's frame gets a 'return' event as it yields again; the sync
    # frames under yield_ get none (docs/portals.md, "Debuggers, tracers and frames").
    assert native["events"][-1] == ["yield", "gen", 3]
    assert stackful["events"] == native["events"][:-1]
    assert stackful["events"][:2] == [["call", "gen", 2], ["call", "inner", 1]]
