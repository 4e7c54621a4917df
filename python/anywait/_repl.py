"""``python -m anywait``: the interactive prompt on a persistent loop.

Like ``python -m asyncio``, a line may ``await`` at top level; unlike it, there is no
second thread: the prompt, the code typed at it and the loop all run on the main
thread, so any sync function called at the prompt may `await_` too (sync-first, on the
loop `start_loop` made), and the objects typed lines make are the loop's, between lines
as within them. While the prompt waits for a key, the interpreter's input hook (GNU
readline's, or the 3.13+ REPL's) runs the loop until standard input is readable, so
background tasks keep running at the prompt.

Ctrl-C: during a line that waits, what it awaits is cancelled and the line ends with
KeyboardInterrupt (the persistent loop's rule); at the prompt, the partial input is
dropped and a new prompt shown, as in the stock REPL. The 3.13+ REPL asks for its input
hook in Python and lets KeyboardInterrupt through it. GNU readline calls the C hook; the
signal lands there while the loop runs, and cannot be raised into the line editor from
it, so the hook takes itself out and hands the interrupt on as a SIGALRM a few
milliseconds later, which arrives while the editor waits in select() and raises
KeyboardInterrupt there, as a Ctrl-C would have (the alarm's handler puts the hook back).
"""

from __future__ import annotations

import ast
import asyncio
import code
import contextlib
import inspect
import os
import signal
import sys
import types
from typing import Any

from anywait import _sync_loop
from anywait._anywait import _set_input_hook, await_

#: Seconds after an interrupt in the input hook at which SIGALRM hands it on.
_HAND_ON_AFTER = 0.005


class _Prompt:
    """State of the prompt's interrupt hand-on (main thread only)."""

    alarm_armed = False
    saved_alarm_handler: Any = None


_prompt = _Prompt()


def _console_base() -> type[code.InteractiveConsole]:
    if _use_pyrepl():
        from _pyrepl.console import InteractiveColoredConsole  # type: ignore[import-not-found]

        return InteractiveColoredConsole  # type: ignore[no-any-return]
    return code.InteractiveConsole


def _use_pyrepl() -> bool:
    if os.getenv("PYTHON_BASIC_REPL") or sys.version_info < (3, 13):
        return False
    try:
        from _pyrepl.main import CAN_USE_PYREPL  # type: ignore[import-not-found]
    except ImportError:
        return False
    return bool(CAN_USE_PYREPL)


def _make_console(namespace: dict[str, Any]) -> code.InteractiveConsole:
    class Console(_console_base()):  # type: ignore[misc]
        """A console whose lines may ``await`` (run on the persistent loop)."""

        def __init__(self, namespace: dict[str, Any]) -> None:
            super().__init__(namespace, filename="<stdin>")
            self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

        def runcode(self, code_obj: types.CodeType) -> None:
            try:
                result = types.FunctionType(code_obj, self.locals)()
                if inspect.iscoroutine(result):
                    await_(result)
            except SystemExit:
                raise
            except BaseException:
                self.showtraceback()

    return Console(namespace)


def _input_hook() -> None:
    """Runs the loop until standard input is readable (called by the line editor)."""
    if _prompt.alarm_armed or _sync_loop._host() is None:
        return
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return
    try:
        await_(_readable(fd))
    except KeyboardInterrupt:
        _hand_on_interrupt()


def _hook_into_pyrepl() -> None:
    """The 3.13+ REPL asks its console for an input hook before each wait for a key,
    and lets KeyboardInterrupt through it: ours is plain Python there, and returns at
    once when the console has input buffered already (it reads ahead)."""
    from _pyrepl.unix_console import UnixConsole  # type: ignore[import-not-found]

    def input_hook(console: Any) -> Any:
        def hook() -> None:
            if console.wait(0):  # keys already read, or readable
                return
            fd = sys.stdin.fileno()
            if _sync_loop._host() is not None:
                await_(_readable(fd))

        return hook

    UnixConsole.input_hook = property(input_hook)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _hand_on_interrupt() -> None:
    # The hook is taken out until the alarm: readline calls it right after its select
    # returns, before it looks at EINTR, and running Python there would run the alarm's
    # handler inside the hook, where its KeyboardInterrupt cannot reach the editor.
    _set_input_hook(None)
    _prompt.saved_alarm_handler = signal.signal(signal.SIGALRM, _on_alarm)
    _prompt.alarm_armed = True
    signal.setitimer(signal.ITIMER_REAL, _HAND_ON_AFTER)


def _on_alarm(signum: int, frame: types.FrameType | None) -> None:
    signal.signal(signal.SIGALRM, _prompt.saved_alarm_handler)
    _prompt.alarm_armed = False
    _set_input_hook(_input_hook)
    raise KeyboardInterrupt


def banner() -> str:
    return (
        f"anywait REPL {sys.version} on {sys.platform}\n"
        'Use "await" directly, and anywait.await_() in sync code, on one persistent loop.\n'
        'Type "help", "copyright", "credits" or "license" for more information.\n'
    )


def main() -> Any:
    """Runs the prompt until end of input or ``exit()``; returns the exit status (what
    ``sys.exit`` takes)."""
    import anywait

    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__doc__": None,
        "__builtins__": __builtins__,
        "asyncio": asyncio,
        "anywait": anywait,
    }
    console = _make_console(namespace)
    _sync_loop.start_loop()
    status: Any = 0
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    interactive_hook = getattr(sys, "__interactivehook__", None)
    if interactive_hook is not None:
        interactive_hook()
    pyrepl = _use_pyrepl()
    if pyrepl:
        _hook_into_pyrepl()
    else:
        _set_input_hook(_input_hook)
    try:
        console.write(banner())
        if startup := os.getenv("PYTHONSTARTUP"):
            with open(startup) as fh:
                exec(compile(fh.read(), startup, "exec"), namespace)
        if pyrepl:
            from _pyrepl.simple_interact import (  # type: ignore[import-not-found]
                run_multiline_interactive_console,
            )

            run_multiline_interactive_console(console)
        else:
            console.interact(banner="", exitmsg="")
    except SystemExit as exc:
        status = exc.code
    finally:
        _set_input_hook(None)
        _sync_loop.stop_loop()
    return status
