"""A real Jupyter kernel for tests: ipykernel started and driven through
``jupyter_client`` as a notebook front end does (execute, read iopub until idle,
interrupt). Used by tests/test_jupyter.py and by the docs test (``ipython`` blocks)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from jupyter_client import manager

TIMEOUT = 60


@dataclass
class Outcome:
    status: str
    stdout: str = ""
    errors: list[tuple[str, str]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)


class Kernel:
    """A running kernel and its client."""

    def __init__(self) -> None:
        self.km, self.kc = manager.start_new_kernel(kernel_name="python3", startup_timeout=TIMEOUT)
        self.outcomes: dict[str, Outcome] = {}

    def start(self, code: str) -> str:
        return str(self.kc.execute(textwrap.dedent(code)))

    def wait_for_output(self, msg_id: str, text: str) -> None:
        """Reads iopub until the cell ``msg_id`` has printed ``text``."""
        while text not in self._outcome(msg_id).stdout:
            if self._read(msg_id):
                raise AssertionError(f"the cell ended without printing {text!r}")

    def finish(self, msg_id: str) -> Outcome:
        """Reads iopub until the cell is idle, then its execute reply."""
        while not self._read(msg_id):
            pass
        out = self.outcomes.pop(msg_id)
        while True:
            reply = self.kc.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                out.status = reply["content"]["status"]
                return out

    def _outcome(self, msg_id: str) -> Outcome:
        return self.outcomes.setdefault(msg_id, Outcome(status="?"))

    def _read(self, msg_id: str) -> bool:
        """Reads one iopub message; True once the cell ``msg_id`` is idle."""
        msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
        parent = msg["parent_header"].get("msg_id")
        if parent != msg_id:
            return False
        out = self._outcome(msg_id)
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.stdout += content["text"]
        elif kind == "error":
            out.errors.append((content["ename"], content["evalue"]))
        elif kind == "execute_result":
            out.results.append(content["data"]["text/plain"])
        return kind == "status" and content["execution_state"] == "idle"

    def run(self, code: str) -> Outcome:
        return self.finish(self.start(code))

    def ok(self, code: str) -> str:
        outcome = self.run(code)
        assert outcome.status == "ok", outcome
        return outcome.stdout

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
