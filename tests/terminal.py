"""A pseudo-terminal running ``python -m anywait``, as a person at a terminal sees it."""

from __future__ import annotations

import signal
import sys
import warnings
from typing import Any


def _default_ctrl_c() -> None:
    """In the child before it execs: Ctrl-C's default disposition. A test run started as
    a background job of a shell inherits SIGINT ignored, which the REPL would inherit
    too, and a person at a terminal never has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn_repl(pexpect: Any, env: dict[str, str], **options: Any) -> Any:
    """``pexpect.spawn`` of ``python -m anywait`` with ``env``.

    pexpect forks (``os.forkpty``). Under pytest the process has a second OS thread, the
    watchdog ``faulthandler_timeout`` starts, and 3.15 counts OS threads when it decides to
    warn that forking a multi-threaded process may deadlock the child (3.12-3.14 count only
    Python threads). The warning does not apply: the watchdog holds no lock the child needs
    and the child execs at once. It is ignored here, for this fork only, so that
    ``filterwarnings = error`` keeps catching every other warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*is multi-threaded, use of forkpty\(\)",
            category=DeprecationWarning,
        )
        return pexpect.spawn(
            sys.executable,
            ["-m", "anywait"],
            env=env,
            encoding="utf-8",
            preexec_fn=_default_ctrl_c,
            **options,
        )
