"""The long run: ``python -m tests.fuzz -n 100000 [--seed S] [--backend B ...]``.

Run from the repository's root. Programs ``S, S+1, ... S+N-1`` run on each backend
(default: every one importable here), in batches, each batch in a child interpreter
with faulthandler on, so that a crash names its seed instead of ending the run. Every
divergence is printed with its seed, the first differing events and the reduced
program (both twins' source); a crash with its seed, the program and the child's
output. The exit code is 1 if anything diverged or crashed.

``--inject KIND`` makes the anywait twin drop its first event of that kind (``finally``,
``caught``, ...): a run that must fail, to show that the comparison catches a divergence.
``--with-greenlet`` imports greenlet in every child first, so that anywait's steps run
through its greenlet bridge (as in a program that uses SQLAlchemy's asyncio layer).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # for portal_harness

from portal_harness import available, family  # noqa: E402

from . import program as p  # noqa: E402
from .render import render  # noqa: E402
from .runner import BACKENDS, check, reduce  # noqa: E402

#: What the child prints before each program, so that the parent can name a crash's seed.
STARTING = "starting "
DIVERGED = "diverged "
#: Options every child gets (``--with-greenlet``).
CHILD_OPTIONS: list[str] = []


def run_batch(backend: str, first: int, count: int, inject: str | None, limit: int) -> int:
    """In the child: run ``count`` programs from seed ``first``; print each divergence's
    report; return how many diverged (stopping at ``limit``)."""
    diverged = 0
    for seed in range(first, first + count):
        if diverged >= limit:
            break
        print(STARTING + str(seed), flush=True)
        divergence = check(p.generate(seed), backend, inject)
        if divergence is not None:
            diverged += 1
            print(DIVERGED + str(seed))
            print(reduce(divergence, inject).report(), flush=True)
    return diverged


def _child_command(
    backend: str, first: int, count: int, inject: str | None, limit: int
) -> list[str]:
    command = [sys.executable, "-X", "faulthandler"]
    if sys.flags.dev_mode:
        command += ["-X", "dev"]
    command += ["-m", "tests.fuzz", "--child", "--backend", backend]
    command += ["--seed", str(first), "-n", str(count), "--max-failures", str(limit)]
    if inject:
        command += ["--inject", inject]
    return command + CHILD_OPTIONS


def run_in_children(
    backends: list[str], first: int, count: int, batch: int, inject: str | None, limit: int
) -> int:
    """In the parent: every batch in a child interpreter; returns how many failed
    (stopping once ``limit`` have)."""
    failures = 0
    for backend in backends:
        started = time.monotonic()
        for start in range(first, first + count, batch):
            if failures >= limit:
                print(f"fuzz: stopping after {failures} failures (--max-failures)")
                return failures
            size = min(batch, first + count - start)
            child = _run_child(_child_command(backend, start, size, inject, limit - failures), size)
            reports = [line for line in child.stdout.splitlines() if not line.startswith(STARTING)]
            if reports:
                print("\n".join(reports), flush=True)
            if child.returncode not in (0, 1):
                failures += 1
                _report_crash(backend, child)
            elif child.returncode == 1:
                failures += sum(line.startswith(DIVERGED) for line in reports)
        elapsed = time.monotonic() - started
        print(f"{backend}: seeds {first}..{first + count - 1} done in {elapsed:.1f} s", flush=True)
    return failures


def _run_child(command: list[str], programs: int) -> subprocess.CompletedProcess[str]:
    """Run a batch; one that hangs gets SIGABRT (faulthandler prints every thread's
    stack) and counts as a crash of the program it was running."""
    timeout = 60 + 0.2 * programs
    with subprocess.Popen(
        command, cwd=TESTS.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)
            stdout, stderr = child.communicate()
            stderr = f"(batch did not finish in {timeout:.0f} s)\n{stderr}"
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


def _report_crash(backend: str, child: subprocess.CompletedProcess[str]) -> None:
    started = [line for line in child.stdout.splitlines() if line.startswith(STARTING)]
    seed = int(started[-1].removeprefix(STARTING)) if started else None
    print(f"crash: seed {seed} on {backend}, exit code {child.returncode}")
    if seed is not None:
        program = p.generate(seed)
        print("--- anywait twin ---\n" + render(program, "anywait", family(backend)))
    print("--- child stderr ---\n" + child.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="programs per backend")
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="repeatable")
    parser.add_argument("--batch", type=int, default=2000, help="programs per child")
    parser.add_argument("--inject", default=None, help="drop the anywait twin's first event")
    parser.add_argument("--max-failures", type=int, default=5, help="stop after this many")
    parser.add_argument(
        "--with-greenlet", action="store_true", help="import greenlet first, in every child"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.with_greenlet:
        import greenlet  # noqa: F401  (anywait bridges its steps once greenlet is loaded)

        CHILD_OPTIONS.append("--with-greenlet")
    first = random.randrange(10**9) if args.seed is None else args.seed
    if args.child:
        (backend,) = args.backend
        return 1 if run_batch(backend, first, args.n, args.inject, args.max_failures) else 0
    backends = args.backend or [b for b in BACKENDS if available(b) is None]
    print(f"fuzz: {args.n} programs per backend from seed {first} on {', '.join(backends)}")
    print(f"python {sys.version.split()[0]} ({sys.executable}), pid {os.getpid()}", flush=True)
    failures = run_in_children(backends, first, args.n, args.batch, args.inject, args.max_failures)
    print(f"fuzz: {failures} divergence(s) or crash(es)" if failures else "fuzz: no divergence")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
