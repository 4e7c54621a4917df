"""A program (``program.Program``) as Python source, for one twin and one loop family.

The source defines ``root()`` and one function per frame (``f<id>``), child-task
wrapper (``c<id>``), async generator (``g<id>``) and context manager (``m<id>``). It
runs with these globals (see ``runner.Harness``): ``H`` (log and helpers), ``V`` (a
context variable), ``anywait``, ``await_``, ``asyncio``, ``contextlib``, and ``trio``
on the Trio family. The native twin uses neither ``anywait`` nor ``await_``.
"""

from __future__ import annotations

from .program import (
    Call,
    CancelScope,
    Checkpoint,
    Context,
    ContextManager,
    Family,
    Frame,
    Generator,
    GetVar,
    Iterate,
    Mode,
    Program,
    Raise,
    Scope,
    SetVar,
    Sleep,
    Spawn,
    Stmt,
    Try,
    Twin,
    Yield,
)

INDENT = "    "


def render(program: Program, twin: Twin, family: Family) -> str:
    """The twin's source: the root first, then each function as the tree reaches it."""
    return _Renderer(twin, family).program(program)


class _Renderer:
    def __init__(self, twin: Twin, family: Family) -> None:
        self.twin = twin
        self.family = family
        self.functions: list[list[str]] = []

    @property
    def anywait(self) -> bool:
        return self.twin == "anywait"

    def mode(self, frame_mode: Mode) -> Mode:
        return frame_mode if self.anywait else "async"

    def program(self, program: Program) -> str:
        root = program.root
        lines = ["async def root():"]
        if program.root_entry == "ensure":
            lines.append(INDENT + self.ensure_portal())
            lines.append(INDENT + f"return {self.call_frame(root, 'async', 'direct')}")
        else:
            lines.append(INDENT + f"return {self.call_frame(root, 'async', 'portal')}")
        self.functions.append(lines)
        self.frame(root)
        return "\n\n\n".join("\n".join(f) for f in self.functions) + "\n"

    def ensure_portal(self) -> str:
        return "await anywait.ensure_portal()" if self.anywait else "await H.checkpoint()"

    def aw(self, expr: str, mode: Mode) -> str:
        """``expr`` awaited from a frame of ``mode`` (already mapped for the twin)."""
        return f"await {expr}" if mode == "async" else f"await_({expr})"

    def call_frame(self, frame: Frame, caller: Mode, via: str) -> str:
        callee = self.mode(frame.mode)
        name = f"f{frame.id}"
        if not self.anywait:
            return f"await {name}()"
        if via in ("portal", "tree"):
            runner = "with_portal_run_sync" if callee == "sync" else "with_portal_run"
            if via == "tree" and callee == "async":
                runner = "with_portal_run_tree"
            return self.aw(f"anywait.{runner}({name})", caller)
        if callee == "sync":
            return f"{name}()"
        return self.aw(f"{name}()", caller)

    def frame(self, frame: Frame) -> None:
        mode = self.mode(frame.mode)
        lines = [f"{'async def' if mode == 'async' else 'def'} f{frame.id}():"]
        lines.append(INDENT + f'H.log("enter", {frame.id}, H.exc(), V.get())')
        lines += self.body(frame.body, mode, 1)
        lines.append(INDENT + f'H.log("leave", {frame.id})')
        lines.append(INDENT + f"return ({frame.id}, V.get())")
        self.functions.append(lines)

    def body(self, body: list[Stmt], mode: Mode, depth: int) -> list[str]:
        """The statements' lines; none for no statements (callers that need a block
        to be non-empty put a ``pass`` or a log line there)."""
        lines: list[str] = []
        for stmt in body:
            lines += self.stmt(stmt, mode, depth)
        return lines

    def stmt(self, s: Stmt, mode: Mode, depth: int) -> list[str]:
        pad = INDENT * depth
        if isinstance(s, Checkpoint):
            return [pad + f'H.log("cp", {s.id})', pad + self.aw("H.cp()", mode)]
        if isinstance(s, Sleep):
            return [pad + f'H.log("sleep", {s.id})', pad + self.aw(f"H.sleep({s.ticks})", mode)]
        if isinstance(s, Call):
            self.frame(s.frame)
            return [pad + f'H.log("ret", {s.id}, {self.call_frame(s.frame, mode, s.via)})']
        if isinstance(s, Raise):
            return [pad + f"raise {s.exc}({s.id})"]
        if isinstance(s, SetVar):
            return [pad + f'V.set("v{s.id}")']
        if isinstance(s, GetVar):
            return [pad + f'H.log("var", {s.id}, V.get())']
        if isinstance(s, Yield):
            if mode == "sync":
                return [pad + f'H.log("sent", {s.id}, anywait.yield_({s.id}))']
            return [pad + f'H.log("sent", {s.id}, (yield {s.id}))']
        if isinstance(s, CancelScope):
            return [pad + f'H.log("cancel", {s.id})', pad + f"H.cancel_scope({s.scope})"]
        if isinstance(s, Try):
            return self.try_(s, mode, depth)
        if isinstance(s, Spawn):
            return self.spawn(s, mode, depth)
        if isinstance(s, Iterate):
            return self.iterate(s, mode, depth)
        if isinstance(s, Context):
            return self.context(s, mode, depth)
        assert isinstance(s, Scope)
        return self.scope(s, mode, depth)

    def try_(self, s: Try, mode: Mode, depth: int) -> list[str]:
        pad = INDENT * depth
        inner = pad + INDENT
        lines = [pad + "try:", *(self.body(s.body, mode, depth + 1) or [inner + "pass"])]
        if s.handler is not None:
            e = f"e{s.id}"
            lines.append(pad + f"except {s.handler} as {e}:")
            lines.append(
                inner + f'H.log("caught", {s.id}, type({e}).__name__, H.args({e}), H.tb({e}))'
            )
            lines += self.body(s.handler_body, mode, depth + 1)
            lines.append(inner + f'H.log("exc_info", {s.id}, H.exc())')
            if s.reraise:
                lines.append(inner + "raise")
        if s.final_body is not None:
            lines.append(pad + "finally:")
            lines.append(inner + f'H.log("finally", {s.id}, H.exc())')
            lines += self.body(s.final_body, mode, depth + 1)
        return lines

    def async_with(self, cm: str, target: str, mode: Mode) -> str:
        if mode == "async":
            return f"async with {cm} as {target}:"
        return f"with anywait.async_context({cm}) as {target}:"

    def spawn(self, s: Spawn, mode: Mode, depth: int) -> list[str]:
        pad = INDENT * depth
        results = f"R{s.id}"
        lines = [pad + f"{results} = [None] * {len(s.children)}"]
        body_pad = pad
        if self.anywait and s.portal == "children":
            lines.append(pad + "with anywait.portals_for_children():")
            body_pad += INDENT
        elif self.anywait and s.portal == "tree":
            lines.append(pad + self.async_with("anywait.portals_for_tree()", "_", mode))
            body_pad += INDENT
        for child in s.children:
            self.child(child, s.portal)
        calls = [(f"c{child.id}", f"{results}, {i}") for i, child in enumerate(s.children)]
        if self.family == "trio":
            nursery = f"n{s.id}"
            lines.append(body_pad + self.async_with("trio.open_nursery()", nursery, mode))
            lines += [body_pad + INDENT + f"{nursery}.start_soon({c}, {a})" for c, a in calls]
            if not calls:
                lines.append(body_pad + INDENT + "pass")
        elif s.asyncio_kind == "gather":
            tasks = ", ".join(f"{c}({a})" for c, a in calls)
            lines.append(body_pad + self.aw(f"asyncio.gather({tasks})", mode))
        else:
            group = f"tg{s.id}"
            lines.append(body_pad + self.async_with("asyncio.TaskGroup()", group, mode))
            lines += [body_pad + INDENT + f"{group}.create_task({c}({a}))" for c, a in calls]
            if not calls:
                lines.append(body_pad + INDENT + "pass")
        lines.append(pad + f'H.log("children", {s.id}, {results})')
        return lines

    def child(self, frame: Frame, portal: str) -> None:
        lines = [f"async def c{frame.id}(R, i):"]
        if portal == "ensure":
            lines.append(INDENT + self.ensure_portal())
        call = self.call_frame(frame, "async", "portal" if portal == "wrap" else "direct")
        lines += [
            INDENT + "try:",
            INDENT * 2 + f'R[i] = ("ok", {call})',
            INDENT + "except Exception as e:",
            INDENT * 2 + 'R[i] = ("err", type(e).__name__, H.args(e), H.tb(e))',
        ]
        self.functions.append(lines)
        self.frame(frame)

    def iterate(self, s: Iterate, mode: Mode, depth: int) -> list[str]:
        pad = INDENT * depth
        inner = pad + INDENT
        it, x = f"it{s.id}", f"x{s.id}"
        self.generator(s.gen)
        if mode == "async":
            lines = [pad + f"{it} = g{s.gen.id}()", pad + "try:", inner + f"async for {x} in {it}:"]
            close = f"await {it}.aclose()"
        else:
            lines = [
                pad + f"{it} = anywait.async_iter(g{s.gen.id}())",
                pad + "try:",
                inner + f"for {x} in {it}:",
            ]
            close = f"{it}.close()"
        lines.append(inner + INDENT + f'H.log("item", {s.id}, {x})')
        if s.stop is not None:
            lines.append(inner + INDENT + f"if {x} == {s.stop}:")
            lines.append(inner + INDENT * 2 + "break")
        lines += [pad + "finally:", inner + close, pad + f'H.log("iterated", {s.id})']
        return lines

    def generator(self, gen: Generator) -> None:
        mode: Mode = "sync" if self.anywait and gen.stackful else "async"
        lines = []
        if mode == "sync":
            lines.append("@anywait.async_generator")
        lines.append(f"{'async def' if mode == 'async' else 'def'} g{gen.id}():")
        lines.append(INDENT + f'H.log("gen", {gen.id}, H.exc(), V.get())')
        lines += self.body(gen.body, mode, 1)
        lines.append(INDENT + f'H.log("gen_end", {gen.id})')
        if mode == "async":
            # An async generator needs a yield to be one, even if reduction took them all.
            lines += [INDENT + "if False:", INDENT * 2 + "yield"]
        self.functions.append(lines)

    def context(self, s: Context, mode: Mode, depth: int) -> list[str]:
        pad = INDENT * depth
        self.context_manager(s.cm)
        v = f"v{s.id}"
        return [
            pad + self.async_with(f"m{s.cm.id}()", v, mode),
            pad + INDENT + f'H.log("cm_value", {s.id}, {v})',
            *self.body(s.body, mode, depth + 1),
            pad + f'H.log("cm_done", {s.id})',
        ]

    def context_manager(self, cm: ContextManager) -> None:
        lines = [
            "@contextlib.asynccontextmanager",
            f"async def m{cm.id}():",
            INDENT + f'H.log("cm_enter", {cm.id}, H.exc())',
        ]
        if cm.enter_checkpoint:
            lines.append(INDENT + "await H.cp()")
        lines += [
            INDENT + "try:",
            INDENT * 2 + f"yield {cm.id}",
            INDENT + "except Exception as e:",
            INDENT * 2 + f'H.log("cm_exc", {cm.id}, type(e).__name__, H.tb(e))',
        ]
        if not cm.suppress:
            lines.append(INDENT * 2 + "raise")
        lines += [
            INDENT + "except BaseException as e:",
            INDENT * 2 + f'H.log("cm_exc", {cm.id}, type(e).__name__, H.tb(e))',
            INDENT * 2 + "raise",
            INDENT + "finally:",
            INDENT * 2 + f'H.log("cm_exit", {cm.id}, H.exc())',
        ]
        if cm.exit_checkpoint:
            lines.append(INDENT * 2 + "await H.cp()")
        self.functions.append(lines)

    def scope(self, s: Scope, mode: Mode, depth: int) -> list[str]:
        pad = INDENT * depth
        sc = f"s{s.id}"
        register = INDENT + f"H.scopes[{s.id}] = {sc}"
        if self.family == "trio":
            cm = "trio.CancelScope()" if s.deadline is None else f"H.move_on_after({s.deadline})"
            return [
                pad + f"with {cm} as {sc}:",
                pad + register,
                *self.body(s.body, mode, depth + 1),
                pad + f'H.log("scope", {s.id}, {sc}.cancelled_caught)',
            ]
        return [
            pad + "try:",
            pad + INDENT + self.async_with("asyncio.timeout(None)", sc, mode),
            pad + INDENT + register,
            *self.body(s.body, mode, depth + 2),
            pad + "except TimeoutError:",
            pad + INDENT + f'H.log("timeout", {s.id})',
            pad + f'H.log("scope", {s.id}, {sc}.expired())',
        ]
