"""Random programs, and their two renderings as Python source.

A program is a tree of *frames* (functions). Each frame is ``async`` or *sync-capable*.
The **native** twin renders every frame as ``async def`` and every call and awaitable
with ``await``. The **anywait** twin renders the sync-capable frames as plain ``def``:
there they call sync frames directly, await with ``anywait.await_(...)``, iterate async
generators with ``anywait.async_iter``, and enter async context managers (nurseries,
task groups, ``asyncio.timeout``) with ``anywait.async_context``. Where the anywait twin
needs a portal (the root, child tasks) it uses ``ensure_portal`` (a checkpoint: the
native twin has one in the same place), ``portals_for_children`` or
``with_portal_run*`` (no schedule point: the native twin just calls); calls marked
``via="portal"`` go through ``with_portal_run*`` inside a task that has a portal
already (nested portals), ``via="tree"`` through ``with_portal_run_tree`` (for an async
callee; ``with_portal_run_sync`` for a sync one).

Everything observable goes through ``H.log(...)`` (see ``runner.Harness``): frames
entered and left with ``sys.exc_info()`` and the context variable seen there,
checkpoints, returned values, exceptions caught (type, args, the generated frames of
their traceback), ``sys.exc_info()`` read in a handler after a suspension, ``finally``
blocks, child results, async generator items, context manager enter/exit, cancel scopes.

The node types are plain dataclasses with an ``id`` unique in the program, so that a
reduced program still names the same events as the original.

Left out on purpose, because CPython itself makes a sync frame differ from an async
one there (not anywait's doing): anything that depends on when an object is freed
(``__del__``, weakref callbacks: a sync frame in a reference cycle keeps its caller's
frame alive, a coroutine frame does not), so async generators are closed explicitly
(``aclose()`` / ``close()`` in a ``finally``), never left to the garbage collector; and
deep recursion (a sync frame and a coroutine frame count differently against the
recursion limit on 3.11).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

Family: TypeAlias = Literal["asyncio", "trio"]
Twin: TypeAlias = Literal["native", "anywait"]
Mode: TypeAlias = Literal["async", "sync"]

#: Exception types a program raises; handlers catch these, their bases, or everything.
RAISED = ("ValueError", "KeyError", "RuntimeError")
HANDLERS = ("ValueError", "KeyError", "LookupError", "Exception", "BaseException")


@dataclass
class Frame:
    id: int
    mode: Mode
    body: list[Stmt]


@dataclass
class Checkpoint:
    id: int


@dataclass
class Sleep:
    """``sleep(ticks ms)``: virtual time under Trio's MockClock, ``sleep(0)`` on asyncio."""

    id: int
    ticks: int


@dataclass
class Call:
    id: int
    frame: Frame
    via: Literal["direct", "portal", "tree"] = "direct"


@dataclass
class Raise:
    id: int
    exc: str


@dataclass
class Try:
    """``try: body / except handler: handler_body [raise] / finally: final_body``; no
    ``except`` clause if ``handler`` is None, no ``finally`` if ``final_body`` is None.
    An ``except BaseException`` always re-raises (cancellation must go on)."""

    id: int
    body: list[Stmt]
    handler: str | None
    handler_body: list[Stmt]
    reraise: bool
    final_body: list[Stmt] | None


@dataclass
class SetVar:
    id: int


@dataclass
class GetVar:
    id: int


@dataclass
class Spawn:
    """Child tasks, one per frame: gather or a TaskGroup on asyncio, a nursery on Trio.
    ``portal`` is how the anywait twin's children get theirs: ``ensure_portal()`` first
    thing, ``portals_for_children()`` or ``portals_for_tree()`` around the spawn, or
    ``with_portal_run*`` around the child's frame. A child never lets an ``Exception``
    out: it stores it as its result, so nurseries never make exception groups of them."""

    id: int
    children: list[Frame]
    portal: Literal["ensure", "children", "tree", "wrap"]
    asyncio_kind: Literal["gather", "taskgroup"]


@dataclass
class Yield:
    id: int


@dataclass
class Generator:
    """An async generator; ``stackful`` makes the anywait twin's an
    ``@anywait.async_generator`` with a sync body that calls ``anywait.yield_``."""

    id: int
    stackful: bool
    body: list[Stmt]


@dataclass
class Iterate:
    """``async for`` over a generator, closed explicitly; ``break`` at item ``stop``."""

    id: int
    gen: Generator
    stop: int | None


@dataclass
class ContextManager:
    """An ``@asynccontextmanager``; it logs the exception it sees, and swallows an
    ``Exception`` if ``suppress``."""

    id: int
    enter_checkpoint: bool
    exit_checkpoint: bool
    suppress: bool


@dataclass
class Context:
    id: int
    cm: ContextManager
    body: list[Stmt]


@dataclass
class Scope:
    """A cancel scope (Trio; with a deadline in mock-clock ticks if ``deadline``) or an
    ``asyncio.timeout(None)``; a ``CancelScope`` in its body cancels it."""

    id: int
    body: list[Stmt]
    deadline: int | None


@dataclass
class CancelScope:
    id: int
    scope: int


Stmt: TypeAlias = (
    Checkpoint
    | Sleep
    | Call
    | Raise
    | Try
    | SetVar
    | GetVar
    | Spawn
    | Iterate
    | Context
    | Scope
    | CancelScope
    | Yield
)


@dataclass
class Program:
    seed: int
    root: Frame
    root_entry: Literal["portal_run", "ensure"]
    #: The checkpoint (counted by ``H.cp``, from 1) at which the root is cancelled.
    cancel_at: int | None
    #: ``cancel``: task.cancel() (asyncio) or the root cancel scope's cancel() (Trio);
    #: ``timeout``: the root's ``asyncio.timeout`` rescheduled to now at ``cancel_at``,
    #: or on Trio a ``move_on_after(timeout_ticks)`` under the mock clock.
    cancel_kind: Literal["cancel", "timeout"]
    timeout_ticks: int


@dataclass
class _Budget:
    rng: random.Random
    frames: int
    next_id: int = 0
    scopes: list[int] = field(default_factory=list)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


MAX_DEPTH = 4


def generate(seed: int, max_frames: int = 10) -> Program:
    """A random program, the same for the same seed (on any backend)."""
    rng = random.Random(seed)
    budget = _Budget(rng, max_frames)
    root = _frame(budget, depth=0)
    cancel_at = rng.randint(1, 6) if rng.random() < 0.5 else None
    return Program(
        seed=seed,
        root=root,
        root_entry=rng.choice(("portal_run", "ensure")),
        cancel_at=cancel_at,
        cancel_kind=rng.choice(("cancel", "timeout")),
        timeout_ticks=rng.randint(1, 12),
    )


def _frame(b: _Budget, depth: int) -> Frame:
    b.frames -= 1
    mode: Mode = "sync" if b.rng.random() < 0.6 else "async"
    return Frame(b.new_id(), mode, _body(b, depth, in_generator=False))


def _body(b: _Budget, depth: int, in_generator: bool) -> list[Stmt]:
    count = b.rng.randint(1, max(1, 4 - depth))
    return [_stmt(b, depth, in_generator) for _ in range(count)]


def _stmt(b: _Budget, depth: int, in_generator: bool) -> Stmt:
    rng = b.rng
    can_nest = depth < MAX_DEPTH and b.frames > 0
    kinds = ["checkpoint", "checkpoint", "checkpoint", "sleep", "setvar", "getvar", "try", "try"]
    if depth > 0:
        kinds.append("raise")
    if can_nest:
        kinds += ["call", "call", "call"]
    if in_generator:
        kinds += ["yield", "yield", "yield"]
    elif can_nest:
        # Not in a generator's body: Trio forbids yielding inside a nursery or a
        # cancel scope, and an async generator's yield cannot cross them anyway.
        kinds += ["spawn", "iterate", "context", "scope"]
    kind = rng.choice(kinds)
    sid = b.new_id()
    if kind == "checkpoint":
        return Checkpoint(sid)
    if kind == "sleep":
        return Sleep(sid, rng.randint(1, 3))
    if kind == "raise":
        return Raise(sid, rng.choice(RAISED))
    if kind == "setvar":
        return SetVar(sid)
    if kind == "getvar":
        return GetVar(sid)
    if kind == "yield":
        return Yield(sid)
    if kind == "call":
        roll = rng.random()
        via: Literal["direct", "portal", "tree"] = (
            "tree" if roll < 0.1 else "portal" if roll < 0.3 else "direct"
        )
        return Call(sid, _frame(b, depth + 1), via)
    if kind == "try":
        return _try(b, sid, depth, in_generator)
    if kind == "spawn":
        children = [_frame(b, depth + 1) for _ in range(rng.randint(1, 3))]
        return Spawn(
            sid,
            children,
            rng.choice(("ensure", "children", "tree", "wrap")),
            rng.choice(("gather", "taskgroup")),
        )
    if kind == "iterate":
        b.frames -= 1
        gen = Generator(b.new_id(), rng.random() < 0.5, _body(b, depth + 1, in_generator=True))
        yields = [s.id for s in _walk(gen.body) if isinstance(s, Yield)]
        stop = rng.choice(yields) if yields and rng.random() < 0.4 else None
        return Iterate(sid, gen, stop)
    if kind == "context":
        cm = ContextManager(b.new_id(), rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.3)
        return Context(sid, cm, _body(b, depth + 1, in_generator=False))
    assert kind == "scope"
    body = _body(b, depth + 1, in_generator=False)
    body.insert(rng.randint(0, len(body)), CancelScope(b.new_id(), sid))
    deadline = rng.randint(1, 6) if rng.random() < 0.3 else None
    return Scope(sid, body, deadline)


def _try(b: _Budget, sid: int, depth: int, in_generator: bool) -> Try:
    rng = b.rng
    handler = rng.choice((*HANDLERS, None)) if rng.random() < 0.9 else None
    # No yield inside a handler or a finally: a generator closed there would yield
    # while handling GeneratorExit, a RuntimeError by design, not a behaviour to compare.
    handler_body: list[Stmt] = [Checkpoint(b.new_id())] if rng.random() < 0.7 else []
    if rng.random() < 0.3:
        handler_body.append(_stmt(b, depth + 1, in_generator=False))
    final_body: list[Stmt] | None = None
    if handler is None or rng.random() < 0.6:
        final_body = [Checkpoint(b.new_id())] if rng.random() < 0.4 else []
    body = _body(b, depth + 1, in_generator)
    if rng.random() < 0.6:  # mostly something to catch, mostly of the handled type
        if handler in ("ValueError", "KeyError") and rng.random() < 0.7:
            raised = handler
        else:
            raised = rng.choice(RAISED)
        body.insert(rng.randint(0, len(body)), Raise(b.new_id(), raised))
    return Try(
        sid,
        body,
        handler,
        handler_body,
        handler == "BaseException" or rng.random() < 0.3,
        final_body,
    )


def _walk(body: list[Stmt]) -> list[Stmt]:
    """Every statement of a body, nested bodies included (not called frames)."""
    out: list[Stmt] = []
    for stmt in body:
        out.append(stmt)
        for child in child_bodies(stmt):
            out.extend(_walk(child))
    return out


def child_bodies(stmt: Stmt) -> list[list[Stmt]]:
    """The statement lists directly inside ``stmt``, its called frames' bodies included."""
    if isinstance(stmt, Try):
        bodies = [stmt.body, stmt.handler_body]
        return bodies if stmt.final_body is None else [*bodies, stmt.final_body]
    if isinstance(stmt, Call):
        return [stmt.frame.body]
    if isinstance(stmt, Spawn):
        return [child.body for child in stmt.children]
    if isinstance(stmt, Iterate):
        return [stmt.gen.body]
    if isinstance(stmt, Context | Scope):
        return [stmt.body]
    return []


def size(program: Program) -> int:
    """How many statements the program has (what reduction makes smaller)."""

    def count(body: list[Stmt]) -> int:
        return sum(1 + sum(count(child) for child in child_bodies(s)) for s in body)

    return count(program.root.body)
