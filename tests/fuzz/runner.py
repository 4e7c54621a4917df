"""Run a program's two twins on one backend, compare their event logs, reduce.

Scheduling is deterministic in both twins: one asyncio (or uvloop) loop runs the same
program the same way every time, and on Trio the scheduler runs in its deterministic
mode (``_ALLOW_DETERMINISTIC_SCHEDULING``, the one Hypothesis turns on) with its
generator seeded from the program's seed, under ``MockClock(autojump_threshold=0)``.

Cancellation at a chosen checkpoint: ``H.cp()`` counts the checkpoints it passes, and
at ``program.cancel_at`` cancels the root: ``task.cancel()`` on asyncio, the root cancel
scope's ``cancel()`` on Trio; or, for ``cancel_kind == "timeout"``, on asyncio it
reschedules the root's ``asyncio.timeout`` to ``loop.time()`` (asyncio has no mock
clock that uvloop honours, and this fires at the next loop iteration whatever the wall
clock says), and on Trio the root runs under ``move_on_after`` with a virtual deadline,
which the ``Sleep`` statements (virtual milliseconds) reach.

Warnings and unraisable exceptions raised while a twin runs are part of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import sys
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import anywait
from portal_harness import current_asyncio_task, family, run

from . import program as p
from .render import render

#: The backends the fuzzer runs on (AnyIO adds nothing the fuzzer could see).
BACKENDS = ("asyncio", "asyncio-pytask", "uvloop", "trio")

Event = tuple[Any, ...]
#: A deliberate divergence (``inject``): the anywait twin drops its first event of this
#: kind, to prove that the comparison and the reduction catch one.
Inject = str | None


_ADDRESS = re.compile(r"0x[0-9a-f]+")


def _is_generated(name: str) -> bool:
    return name == "root" or (name[:1] in "fcgm" and name[1:].isdigit())


class Harness:
    """What a program's source calls as ``H``; one per run of a twin."""

    def __init__(self, fam: p.Family, program: p.Program, drop: Inject = None) -> None:
        self.family = fam
        self.cancel_at = program.cancel_at
        self.cancel_kind = program.cancel_kind
        self.events: list[Event] = []
        self.checkpoints = 0
        self.scopes: dict[int, Any] = {}
        self.root: Any = None  # the asyncio root task, or the Trio root cancel scope
        self.root_timeout: Any = None
        self.drop = drop

    def log(self, *event: Any) -> None:
        if self.drop is not None and event[0] == self.drop:
            self.drop = None
            return
        self.events.append(event)

    @staticmethod
    def exc() -> str | None:
        exc_type = sys.exc_info()[0]
        return None if exc_type is None else exc_type.__name__

    @staticmethod
    def tb(exc: BaseException) -> list[str]:
        """The generated frames of the traceback (not the harness's, loops', anywait's)."""
        names = (frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__))
        generated = [name for name in names if _is_generated(name)]
        if sys.version_info < (3, 12) and _is_cancellation(exc):
            # CPython 3.11 itself: a cancellation thrown into a coroutine that awaits an
            # async generator's asend or an async context manager's athrow loses the
            # traceback entries below that boundary (the 3-argument throw() resets
            # them), where a sync frame's await_ keeps them, as 3.12+ does natively.
            return ["<not compared on 3.11>"]
        return generated

    @staticmethod
    def args(exc: BaseException) -> tuple[Any, ...]:
        if isinstance(exc, BaseExceptionGroup):
            leaves = sorted(type(e).__name__ for e in _leaves(exc))
            return ("group", *leaves)
        # Trio's Cancelled names the task that cancelled: its address differs per run.
        return tuple(
            _ADDRESS.sub("0x?", a)
            if isinstance(a, str)
            else a
            if isinstance(a, int)
            else type(a).__name__
            for a in exc.args
        )

    async def checkpoint(self) -> None:
        if self.family == "trio":
            import trio

            await trio.lowlevel.checkpoint()
        else:
            await asyncio.sleep(0)

    async def cp(self) -> None:
        self.checkpoints += 1
        if self.checkpoints == self.cancel_at:
            self.log("cancel_root", self.checkpoints)
            self._cancel_root()
        await self.checkpoint()

    def _cancel_root(self) -> None:
        if self.family == "trio":
            if self.cancel_kind == "cancel":
                self.root.cancel()
        elif self.cancel_kind == "cancel":
            self.root.cancel()
        else:
            self.root_timeout.reschedule(asyncio.get_running_loop().time())

    async def sleep(self, ticks: int) -> None:
        if self.family == "trio":
            import trio

            await trio.sleep(ticks / 1000)
        else:
            await asyncio.sleep(0)

    def move_on_after(self, ticks: int) -> Any:
        import trio

        return trio.move_on_after(ticks / 1000)

    def cancel_scope(self, scope_id: int) -> None:
        scope = self.scopes.get(scope_id)
        if scope is None:  # a reduced program may have lost the scope around it
            return
        if self.family == "trio":
            scope.cancel()
        else:
            scope.reschedule(asyncio.get_running_loop().time())


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _outcome(h: Harness, exc: BaseException) -> None:
    h.log("outcome", "raised", type(exc).__name__, h.args(exc), h.tb(exc))


def run_twin(program: p.Program, twin: p.Twin, backend: str, drop: Inject = None) -> list[Event]:
    """The event log of one twin of ``program`` run on ``backend``."""
    fam = family(backend)
    h = Harness(fam, program, drop if twin == "anywait" else None)
    source = render(program, twin, fam)
    namespace: dict[str, Any] = {
        "H": h,
        "V": contextvars.ContextVar("V", default="unset"),
        "anywait": anywait,
        "await_": anywait.await_,
        "asyncio": asyncio,
        "contextlib": contextlib,
    }
    if fam == "trio":
        import trio

        namespace["trio"] = trio
    exec(compile(source, f"<fuzz {program.seed} {twin}>", "exec"), namespace)
    root: Callable[[], Awaitable[Any]] = namespace["root"]
    unraisable: list[Event] = []

    def hook(report: Any) -> None:
        unraisable.append(("unraisable", type(report.exc_value).__name__, str(report.exc_value)))

    saved_hook = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if fam == "trio":
                _run_trio(h, program, root)
            else:
                _run_asyncio(h, program, root, backend)
    finally:
        sys.unraisablehook = saved_hook
    h.events += unraisable
    h.events += [("warning", w.category.__name__, str(w.message)) for w in caught]
    return h.events


def _run_asyncio(
    h: Harness, program: p.Program, root: Callable[[], Awaitable[Any]], backend: str
) -> None:
    async def top() -> None:
        h.root = current_asyncio_task()
        try:
            if program.cancel_kind == "timeout":
                async with asyncio.timeout(None) as timeout:
                    h.root_timeout = timeout
                    value = await root()
            else:
                value = await root()
            h.log("outcome", "value", value)
        except asyncio.CancelledError:
            h.log("outcome", "cancelled")
        except Exception as exc:
            _outcome(h, exc)

    run(backend, top)  # the suite's own loop set-up for each asyncio backend


def _run_trio(h: Harness, program: p.Program, root: Callable[[], Awaitable[Any]]) -> None:
    import trio
    import trio.testing
    from trio._core import _run

    async def top() -> None:
        if program.cancel_kind == "timeout" and program.cancel_at is not None:
            scope = trio.move_on_after(program.timeout_ticks / 1000)
        else:
            scope = trio.CancelScope()
        with scope:
            h.root = scope
            try:
                h.log("outcome", "value", await root())
            except Exception as exc:
                _outcome(h, exc)
        if scope.cancelled_caught:
            h.log("outcome", "cancelled")

    saved = _run._ALLOW_DETERMINISTIC_SCHEDULING
    _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    _run._r.seed(program.seed)
    try:
        trio.run(top, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        _run._ALLOW_DETERMINISTIC_SCHEDULING = saved  # type: ignore[misc]


@dataclass
class Divergence:
    """Two twins whose logs differ: where, and the reduced program that still does."""

    backend: str
    program: p.Program
    native: list[Event]
    anywait: list[Event]
    reduced: p.Program | None = None

    def first_difference(self) -> int:
        for i, (a, b) in enumerate(zip(self.native, self.anywait, strict=False)):
            if a != b:
                return i
        return min(len(self.native), len(self.anywait))

    def report(self) -> str:
        shown = self.reduced or self.program
        native, portal = run_twin(shown, "native", self.backend), self.anywait
        if self.reduced is not None:
            portal = run_twin(shown, "anywait", self.backend, self.drop_for_report)
        at = Divergence(self.backend, shown, native, portal).first_difference()
        fam = family(self.backend)
        lines = [
            f"divergence: seed {self.program.seed} on {self.backend} "
            f"(size {p.size(self.program)}, reduced to {p.size(shown)})",
            f"program parameters: root_entry={shown.root_entry} cancel_at={shown.cancel_at} "
            f"cancel_kind={shown.cancel_kind} timeout_ticks={shown.timeout_ticks}",
            f"first difference at event {at}:",
            f"  native:  {native[at : at + 3]}",
            f"  anywait: {portal[at : at + 3]}",
            "--- native twin ---",
            render(shown, "native", fam),
            "--- anywait twin ---",
            render(shown, "anywait", fam),
        ]
        return "\n".join(lines)

    drop_for_report: Inject = None


def check(program: p.Program, backend: str, drop: Inject = None) -> Divergence | None:
    """None if both twins log the same, else the divergence (not yet reduced)."""
    native = run_twin(program, "native", backend)
    portal = run_twin(program, "anywait", backend, drop)
    if native == portal:
        return None
    return Divergence(backend, program, native, portal, drop_for_report=drop)


def reduce(divergence: Divergence, drop: Inject = None) -> Divergence:
    """Make the program smaller while it still diverges: delete statements (whole
    subtrees), drop the root cancellation, turn sync frames async; until nothing helps."""
    best = divergence.program

    def still_diverges(candidate: p.Program) -> bool:
        try:
            return check(candidate, divergence.backend, drop) is not None
        except Exception:
            return False

    progress = True
    while progress:
        progress = False
        for candidate in _smaller(best):
            if still_diverges(candidate):
                best = candidate
                progress = True
                break
    divergence.reduced = best
    return divergence


def _smaller(program: p.Program) -> Iterator[p.Program]:
    """Programs one step simpler than ``program``, the biggest cuts first."""
    if program.cancel_at is not None:
        yield replace(program, cancel_at=None)
    paths = list(_paths(program.root.body, ()))
    paths.sort(key=lambda path: len(path))
    for path in paths:
        yield _edit(program, path, None)
    for path in paths:
        if not isinstance(_at(program, path), p.Iterate):  # its yields need a generator
            yield _edit(program, path, "unwrap")
    yield from _asyncified(program)
    yield from _simplified(program)


Path = tuple[int, ...]


def _paths(body: list[p.Stmt], prefix: Path) -> Iterator[Path]:
    """Every statement's path: indices into bodies, child_bodies() in order."""
    for i, stmt in enumerate(body):
        yield (*prefix, i)
        for j, child in enumerate(p.child_bodies(stmt)):
            yield from _paths(child, (*prefix, i, j))


def _at(program: p.Program, path: Path) -> p.Stmt:
    body = program.root.body
    for k in range(0, len(path) - 1, 2):
        body = p.child_bodies(body[path[k]])[path[k + 1]]
    return body[path[-1]]


def _edit(program: p.Program, path: Path, how: str | None) -> p.Program:
    """A deep copy of ``program`` with the statement at ``path`` deleted, or (``how ==
    "unwrap"``) replaced by its first nested body."""
    import copy

    clone = copy.deepcopy(program)
    body = clone.root.body
    for k in range(0, len(path) - 1, 2):
        body = p.child_bodies(body[path[k]])[path[k + 1]]
    i = path[-1]
    if how is None:
        del body[i]
    else:
        children = p.child_bodies(body[i])
        body[i : i + 1] = children[0] if children else []
    return clone


def _asyncified(program: p.Program) -> Iterator[p.Program]:
    import copy

    count = sum(1 for f in _frames(program.root) if f.mode == "sync")
    for k in range(count):
        clone = copy.deepcopy(program)
        sync_frames = [f for f in _frames(clone.root) if f.mode == "sync"]
        sync_frames[k].mode = "async"
        yield clone


def _simplified(program: p.Program) -> Iterator[p.Program]:
    """Nested portals as direct calls, stackful generators as native ones, the root
    entered through ``with_portal_run*``: one at a time."""
    import copy

    if program.root_entry != "portal_run":
        yield replace(program, root_entry="portal_run")
    paths = list(_paths(program.root.body, ()))
    for path in paths:
        stmt = _at(program, path)
        if (isinstance(stmt, p.Call) and stmt.via != "direct") or (
            isinstance(stmt, p.Iterate) and stmt.gen.stackful
        ):
            clone = copy.deepcopy(program)
            target = _at(clone, path)
            if isinstance(target, p.Call):
                target.via = "direct"
            elif isinstance(target, p.Iterate):
                target.gen.stackful = False
            yield clone


def _frames(frame: p.Frame) -> Iterator[p.Frame]:
    yield frame
    stack = list(frame.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, p.Call):
            yield stmt.frame
        elif isinstance(stmt, p.Spawn):
            yield from stmt.children
        for child in p.child_bodies(stmt):
            stack.extend(child)
