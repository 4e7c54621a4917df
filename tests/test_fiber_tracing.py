"""Tracing, profiling, monitoring and coverage of code running in fibers.

A trace or profile function (or sys.monitoring tool) set on the thread sees the frames
that execute in fibers, and ``coverage`` counts the lines executed inside fibers. Turning
them on or off while a fiber is suspended runs in child interpreters
(``scenarios/tracing_toggled.py``): debug builds of CPython assert there when the
fiber's frames resume with stale instrumentation.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from anywait.lowlevel import Fiber, suspend

Event = tuple[str, str]


class Recorder:
    """A trace/profile function recording (event, function name) for this file's code."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, frame: FrameType, event: str, arg: object) -> Recorder:
        if frame.f_code.co_filename == __file__:
            name = getattr(arg, "__name__", "?") if event.startswith("c_") else None
            self.events.append((event, name or frame.f_code.co_name))
        return self


@pytest.fixture
def tracer() -> Iterator[Recorder]:
    recorder = Recorder()
    saved = sys.gettrace()
    try:
        yield recorder
    finally:
        sys.settrace(saved)


@pytest.fixture
def profiler() -> Iterator[Recorder]:
    recorder = Recorder()
    saved = sys.getprofile()
    try:
        yield recorder
    finally:
        sys.setprofile(saved)


def traced_helper() -> int:
    return 1


def traced_body() -> int:
    total = traced_helper()
    total += suspend("suspended")
    total += traced_helper()
    return total


def _run_to_end(fiber: Fiber) -> Any:
    fiber.switch()
    return fiber.switch(10)


def test_a_trace_function_set_outside_sees_calls_inside_a_fiber(tracer: Recorder) -> None:
    sys.settrace(tracer)
    _run_to_end(Fiber(traced_body))
    sys.settrace(None)
    calls = [name for event, name in tracer.events if event == "call"]
    assert calls.count("traced_body") == 1
    assert calls.count("traced_helper") == 2


def test_a_trace_function_set_outside_sees_lines_inside_a_fiber(tracer: Recorder) -> None:
    sys.settrace(tracer)
    _run_to_end(Fiber(traced_body))
    sys.settrace(None)
    assert tracer.events.count(("line", "traced_body")) >= 4


def test_a_trace_function_sees_a_fiber_function_return(tracer: Recorder) -> None:
    sys.settrace(tracer)
    _run_to_end(Fiber(traced_body))
    sys.settrace(None)
    assert ("return", "traced_body") in tracer.events


def test_a_trace_function_set_inside_a_fiber_sees_the_rest_of_it(tracer: Recorder) -> None:
    def set_trace_then_call() -> int:
        sys.settrace(tracer)
        result = traced_helper()
        sys.settrace(None)
        return result

    Fiber(set_trace_then_call).switch()
    assert ("call", "traced_helper") in tracer.events


def test_a_profile_function_set_outside_sees_calls_inside_a_fiber(profiler: Recorder) -> None:
    sys.setprofile(profiler)
    _run_to_end(Fiber(traced_body))
    sys.setprofile(None)
    assert ("call", "traced_body") in profiler.events
    assert profiler.events.count(("call", "traced_helper")) == 2


def test_a_profile_function_set_outside_sees_c_calls_inside_a_fiber(
    profiler: Recorder,
) -> None:
    def call_builtins() -> int:
        return len(sorted([3, 1, 2]))

    sys.setprofile(profiler)
    Fiber(call_builtins).switch()
    sys.setprofile(None)
    assert ("c_call", "sorted") in profiler.events
    assert ("c_call", "len") in profiler.events


@pytest.fixture
def monitor_lines() -> Iterator[Callable[[bool], list[int]]]:
    """``monitor_lines(global_events)`` has sys.monitoring report the LINE events of
    ``traced_body`` (as offsets from its first line) into the list it returns, through
    events set for all code or for traced_body's code only."""
    if sys.version_info < (3, 12):
        pytest.skip("sys.monitoring is new in 3.12")
    monitoring = sys.monitoring  # type: ignore[attr-defined]
    tool = next(t for t in range(6) if monitoring.get_tool(t) is None)
    code = traced_body.__code__
    lines: list[int] = []

    def on_line(event_code: object, line: int) -> None:
        if event_code is code:
            lines.append(line - code.co_firstlineno)

    def start(global_events: bool) -> list[int]:
        monitoring.use_tool_id(tool, "anywait-tests")
        monitoring.register_callback(tool, monitoring.events.LINE, on_line)
        if global_events:
            monitoring.set_events(tool, monitoring.events.LINE)
        else:
            monitoring.set_local_events(tool, code, monitoring.events.LINE)
        return lines

    try:
        yield start
    finally:
        if monitoring.get_tool(tool) is not None:
            monitoring.set_events(tool, 0)
            monitoring.set_local_events(tool, code, 0)
            monitoring.register_callback(tool, monitoring.events.LINE, None)
            monitoring.free_tool_id(tool)


@pytest.mark.parametrize("global_events", [True, False], ids=["global", "local"])
def test_sys_monitoring_reports_lines_executed_inside_a_fiber(
    monitor_lines: Callable[[bool], list[int]], global_events: bool
) -> None:
    lines = monitor_lines(global_events)
    _run_to_end(Fiber(traced_body))
    assert sorted(set(lines)) == [1, 2, 3, 4]


# Since 3.12 CPython re-instruments code for tracing, profiling and sys.monitoring in
# the frames on each thread's current frame chain when tools change; a suspended fiber's
# frames are on none, so anywait re-instruments them when the fiber resumes in a later
# monitoring epoch (pystate/monitoring.rs), and the thread's own frames when a fiber that
# changed tools switches back. Without that, a tool turned on while a fiber is suspended
# missed its resumed frames, and one turned off left them running stale instrumentation
# (which debug builds of 3.13+ catch with an assertion).


def _toggled(run_scenario: Callable[..., Any], case: str) -> list[Any]:
    result = run_scenario("tracing_toggled", case)
    events: list[Any] = json.loads(result.stdout.splitlines()[-1])
    return events


def test_a_trace_function_set_while_a_fiber_is_suspended_sees_its_later_calls(
    run_scenario: Callable[..., Any],
) -> None:
    # As anywhere in CPython, frames entered before settrace() get no line events.
    events = _toggled(run_scenario, "trace_set_while_suspended")
    assert ["call", "helper"] in events
    assert ["line", "helper"] in events


def test_a_trace_function_removed_while_a_fiber_is_suspended_sees_nothing_more(
    run_scenario: Callable[..., Any],
) -> None:
    assert _toggled(run_scenario, "trace_removed_while_suspended") == []


def test_a_profile_function_set_while_a_fiber_is_suspended_sees_its_frame_return(
    run_scenario: Callable[..., Any],
) -> None:
    # A frame executing when setprofile() is called reports its return (CPython does so
    # for frames on a thread's stack and in generators alike).
    events = _toggled(run_scenario, "profile_set_while_suspended")
    assert ["call", "helper"] in events
    assert ["return", "body"] in events


def test_a_profile_function_removed_while_a_fiber_is_suspended_sees_nothing_more(
    run_scenario: Callable[..., Any],
) -> None:
    assert _toggled(run_scenario, "profile_removed_while_suspended") == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in 3.12")
def test_sys_monitoring_enabled_while_a_fiber_is_suspended_sees_its_resumed_frame(
    run_scenario: Callable[..., Any],
) -> None:
    # CPython instruments the code of every frame executing on a thread when events are
    # enabled, and of a generator's frame when it resumes; a fiber's frame must be too.
    lines = _toggled(run_scenario, "monitoring_enabled_while_suspended")
    assert sorted(set(lines)) == [3, 4]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in 3.12")
def test_sys_monitoring_disabled_while_a_fiber_is_suspended_reports_nothing_more(
    run_scenario: Callable[..., Any],
) -> None:
    assert _toggled(run_scenario, "monitoring_disabled_while_suspended") == []


def test_a_profile_function_set_inside_a_fiber_sees_the_resumers_frame_return(
    run_scenario: Callable[..., Any],
) -> None:
    # The resumer's frames (the thread's own stack) were off every frame chain while
    # the fiber ran; natively a caller of the code that calls setprofile() reports its
    # return.
    events = _toggled(run_scenario, "profile_set_inside_a_fiber")
    assert ["call", "helper"] in events
    assert ["return", "resumer"] in events


def test_a_profile_function_removed_inside_a_fiber_leaves_the_resumer_untraced(
    run_scenario: Callable[..., Any],
) -> None:
    assert _toggled(run_scenario, "profile_removed_inside_a_fiber") == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in 3.12")
def test_sys_monitoring_enabled_inside_a_fiber_sees_the_resumers_later_lines(
    run_scenario: Callable[..., Any],
) -> None:
    lines = _toggled(run_scenario, "monitoring_enabled_inside_a_fiber")
    assert sorted(set(lines)) == [3, 4]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in 3.12")
def test_sys_monitoring_disabled_inside_a_fiber_reports_nothing_more_of_the_resumer(
    run_scenario: Callable[..., Any],
) -> None:
    assert _toggled(run_scenario, "monitoring_disabled_inside_a_fiber") == []


def _coverage_cores() -> list[Any]:
    return [
        pytest.param([], {}, id="default-core"),
        pytest.param(["--timid"], {}, id="python-tracer"),
        pytest.param(
            [],
            {"COVERAGE_CORE": "sysmon"},
            id="sys.monitoring-core",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 12), reason="coverage's sysmon core needs 3.12"
            ),
        ),
    ]


def _run(command: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode != 0:
        pytest.fail(
            f"{command} exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}",
            pytrace=False,
        )


@pytest.mark.skipif(
    importlib.util.find_spec("coverage") is None, reason="coverage is not installed"
)
@pytest.mark.parametrize(("run_options", "env"), _coverage_cores())
def test_coverage_measures_lines_executed_inside_fibers(
    run_options: list[str], env: dict[str, str], tmp_path: Path, child_env: dict[str, str]
) -> None:
    import coverage

    if env.get("COVERAGE_CORE") == "sysmon" and coverage.version_info < (7, 4):
        pytest.skip("coverage older than 7.4 has no sys.monitoring core")
    base_env = {k: v for k, v in child_env.items() if not k.startswith("COVERAGE_")}
    script = Path(__file__).parent / "scenarios" / "covered_fibers.py"
    data = tmp_path / "coverage.data"
    report = tmp_path / "coverage.json"
    coverage_command = [sys.executable, "-X", "faulthandler", "-m", "coverage"]
    run = [*coverage_command, "run", f"--data-file={data}", *run_options, str(script)]
    _run(run, {**base_env, **env}, tmp_path)
    _run([*coverage_command, "json", f"--data-file={data}", "-o", str(report)], base_env, tmp_path)
    files = json.loads(report.read_text())["files"]
    (measured,) = (found for name, found in files.items() if Path(name).name == script.name)
    source = script.read_text().splitlines()
    expected = {n for n, line in enumerate(source, 1) if line.endswith("# covered in a fiber")}
    assert len(expected) == 13
    missing = expected - set(measured["executed_lines"])
    assert not missing, f"lines run in fibers but not reported as executed: {sorted(missing)}"
