"""``python -m anywait`` as a person uses it: in a pseudo-terminal (pexpect), typing
lines and Ctrl-C, reading what the terminal shows. On 3.13+ both the new REPL (pyrepl)
and the basic one (``PYTHON_BASIC_REPL``, GNU readline) are tried."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from terminal import spawn_repl

pexpect = pytest.importorskip("pexpect", reason="pexpect is not installed (the test extra has it)")

TIMEOUT = 30
PROMPT = re.compile(r">>> ")

EDITORS = ["readline"] if sys.version_info < (3, 13) else ["pyrepl", "readline"]


@pytest.fixture(params=EDITORS)
def repl(request: pytest.FixtureRequest) -> Iterator[Any]:
    env = dict(os.environ, TERM="xterm", PYTHON_COLORS="0", NO_COLOR="1", PYTHONSTARTUP="")
    if request.param == "readline":
        env["PYTHON_BASIC_REPL"] = "1"
    child = spawn_repl(pexpect, env, timeout=TIMEOUT, dimensions=(40, 200))
    try:
        child.expect("anywait REPL")
        child.expect(PROMPT)
        yield child
    finally:
        child.close(force=True)


def line(child: Any, text: str) -> str:
    """Types ``text`` (one line) and Enter; returns what was shown up to the next prompt."""
    child.sendline(text)
    child.expect(PROMPT)
    return str(child.before)


def define(child: Any, source: str) -> None:
    """Defines what ``source`` (several lines) defines, typed as one line: both editors
    indent continuation lines on their own, which typed-out blocks would fight."""
    line(child, f"exec({source!r})")


SLOW = """
async def slow():
    try:
        await asyncio.sleep(60)
    finally:
        print('cleaned up')
"""

FOREVER = """
async def forever():
    try:
        await asyncio.sleep(60)
    finally:
        print('shut down')
"""

TICKER = """
ticks = []
async def tick():
    while True:
        ticks.append(1)
        await asyncio.sleep(0.01)
task = asyncio.get_event_loop().create_task(tick())
"""


def test_top_level_await_and_sync_await_(repl: Any) -> None:
    assert "'top'" in line(repl, "await asyncio.sleep(0, 'top')")
    define(repl, "def helper():\n    return anywait.await_(asyncio.sleep(0, 'from sync'))")
    assert "'from sync'" in line(repl, "helper()")
    define(repl, "async def running():\n    return asyncio.get_running_loop()")
    assert "same True" in line(repl, "print('same', asyncio.get_event_loop() is await running())")


def test_background_tasks_run_while_the_prompt_waits(repl: Any) -> None:
    define(repl, TICKER)
    line(repl, "before = len(ticks)")
    time.sleep(0.5)  # nothing typed: the prompt waits, the loop runs
    shown = line(repl, "print('ran', len(ticks) - before > 10)")
    assert "ran True" in shown


def test_ctrl_c_at_the_prompt_gives_a_new_prompt(repl: Any) -> None:
    define(repl, TICKER)
    repl.send("half a line")
    time.sleep(0.3)  # the prompt is waiting in the input hook, the loop running
    repl.sendintr()
    repl.expect("KeyboardInterrupt")
    repl.expect(PROMPT)
    assert "7" in line(repl, "3 + 4")  # the half line was dropped
    line(repl, "before = len(ticks)")
    time.sleep(0.3)
    assert "alive True" in line(repl, "print('alive', len(ticks) > before, not task.done())")


def test_ctrl_c_during_a_line_interrupts_that_line_only(repl: Any) -> None:
    define(repl, SLOW)
    repl.sendline("await slow()")
    time.sleep(0.5)
    repl.sendintr()
    repl.expect("cleaned up")
    repl.expect("KeyboardInterrupt")
    repl.expect(PROMPT)
    define(repl, "def sync():\n    return anywait.await_(asyncio.sleep(60))")
    repl.sendline("sync()")
    time.sleep(0.5)
    repl.sendintr()
    repl.expect("KeyboardInterrupt")
    repl.expect(PROMPT)
    assert "'still usable'" in line(repl, "await asyncio.sleep(0, 'still usable')")


def test_exit_stops_the_loop_and_sets_the_status(repl: Any) -> None:
    define(repl, FOREVER)
    line(repl, "task = asyncio.get_event_loop().create_task(forever())")
    repl.sendline("raise SystemExit(3)")
    repl.expect("shut down")  # stop_loop cancelled and finished the task
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 3


def test_end_of_input_exits_cleanly(repl: Any) -> None:
    repl.sendeof()
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0
