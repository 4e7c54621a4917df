"""Every runnable example in examples/ works and prints what its docs say."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> list[str]:
    path = EXAMPLES / name
    if not path.exists():  # the chroot runs copy tests/ only; the host run covers it
        import pytest

        pytest.skip("examples/ is not next to this copy of the tests")
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()


def test_demo_runs_sync_code_concurrently_and_cancels_it() -> None:
    report, overlap, timeout = run_example("demo.py")
    assert report.startswith("2 items, 8.40 with tax, 10 tasks in ")
    assert overlap == "fetches in flight at once: 10"
    assert timeout == "timeout reached the sync code: slow job cleaned up"


def test_fiber_walk_prints_every_leaf_with_its_depth() -> None:
    assert run_example("fiber_walk.py") == [
        "leaf 1 at depth 1",
        "leaf 2 at depth 2",
        "leaf 3 at depth 3",
        "leaf 4 at depth 4",
        "leaf 5 at depth 2",
        "leaf 6 at depth 5",
    ]


def python_blocks(path: pathlib.Path, fence: str = "```python") -> list[str]:
    blocks, current, inside = [], [], False
    for line in path.read_text().splitlines():
        if line.strip() == fence:
            inside, current = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def documented_files() -> list[pathlib.Path]:
    root = EXAMPLES.parent
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.exists()]


def test_every_python_block_in_the_docs_runs() -> None:
    files = documented_files()
    if not files:
        import pytest

        pytest.skip("the docs are not next to this copy of the tests")
    ran = 0
    for path in files:
        for i, block in enumerate(python_blocks(path)):
            code = compile(block, f"{path.name}[block {i}]", "exec")
            exec(code, {"__name__": f"doc_example_{i}"})
            ran += 1
    assert ran > 0


def test_every_ipython_block_in_the_docs_runs_in_a_kernel() -> None:
    """Notebook examples (fenced ``ipython``, cells separated by ``# %%`` lines) run cell
    by cell in a real Jupyter kernel, each block in a fresh one."""
    import pytest

    pytest.importorskip(
        "ipykernel",
        reason="ipykernel is not installed: host venvs have it (test extra), chroots do not",
    )
    pytest.importorskip("jupyter_client", reason="jupyter_client is not installed")
    from jupyter_harness import Kernel

    blocks = [
        (path.name, i, block)
        for path in documented_files()
        for i, block in enumerate(python_blocks(path, "```ipython"))
    ]
    if not blocks:
        pytest.skip("the docs are not next to this copy of the tests")
    for name, i, block in blocks:
        kernel = Kernel()
        try:
            for cell in block.split("\n# %%\n"):
                outcome = kernel.run(cell)
                assert outcome.status == "ok", (f"{name}[ipython block {i}]", cell, outcome)
        finally:
            kernel.close()


def test_every_pycon_block_in_the_docs_replays_at_the_prompt() -> None:
    """``pycon`` transcripts are typed into ``python -m anywait`` in a pseudo-terminal
    (the basic REPL, which does not indent continuation lines on its own), and what
    they show must appear, in order."""
    import io
    import os

    import pytest
    from terminal import spawn_repl

    pexpect = pytest.importorskip("pexpect", reason="pexpect is not installed")
    blocks = [
        (path.name, i, block)
        for path in documented_files()
        for i, block in enumerate(python_blocks(path, "```pycon"))
    ]
    if not blocks:
        pytest.skip("the docs are not next to this copy of the tests")
    env = dict(os.environ, TERM="xterm", PYTHON_BASIC_REPL="1", PYTHONSTARTUP="")
    for name, i, block in blocks:
        lines = block.splitlines()
        typed = _typed_at_the_prompt(lines)
        shown = [line for line in lines if not line.startswith((">>> ", "..."))]
        child = spawn_repl(pexpect, env, timeout=30)
        child.logfile_read = screen = io.StringIO()
        try:
            child.expect(">>> ")
            for line in typed:
                child.sendline(line)
                child.expect(r"(>>>|\.\.\.) ")
            child.sendeof()
            child.expect(pexpect.EOF)
            output = screen.getvalue().replace("\r\n", "\n")
        finally:
            child.close(force=True)
        at = 0
        for expected in shown:
            found = output.find(expected, at)
            assert found >= 0, (f"{name}[pycon block {i}]", expected, output)
            at = found + len(expected)


def _typed_at_the_prompt(lines: list[str]) -> list[str]:
    """The lines a transcript types, with the empty line that ends an indented block
    where the transcript leaves it out (as ruff's formatting of pycon blocks does)."""
    typed: list[str] = []
    open_block = False
    for line in lines:
        if line.startswith(("... ", "...")) and not line.startswith(">>> "):
            typed.append(line[4:])
            open_block = line[4:] != ""
            continue
        if open_block:
            typed.append("")
            open_block = False
        if line.startswith(">>> "):
            typed.append(line[4:])
    if open_block:
        typed.append("")
    return typed
