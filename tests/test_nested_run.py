"""Nested ``asyncio.run`` / ``loop.run_until_complete`` after ``anywait.install()``
(``anywait._nested_run``).

Differential: each scenario is a coroutine given ``nest(coro)``. Natively that is
``await loop.create_task(coro, context=<the caller's context>)`` in an async helper;
through anywait it is a plain sync function calling ``asyncio.run(coro)`` (or
``run_until_complete``), as library code does. What the scenario logs (with a ticking
background task, so any change of order shows) must be the same. The cases are
nest_asyncio's known failures: three-deep nesting, ``run_until_complete`` on a task
from ``ensure_future``, nested runs inside ``asyncio.wait`` and ``gather``, a nested
``wait_for`` timing out, cancellation.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import anywait
import pytest

LOOPS = ["asyncio", "asyncio-debug", "uvloop"]
HOW = ["run", "run_until_complete"]

Scenario = Callable[..., Coroutine[Any, Any, Any]]


@pytest.fixture(autouse=True)
def _uninstall_after() -> Iterator[None]:
    yield
    anywait.uninstall()


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def _factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return None


def _task_context() -> contextvars.Context | None:
    get_context = getattr(asyncio.current_task(), "get_context", None)  # 3.12+
    return None if get_context is None else get_context()


def _sync_library_call(coro: Coroutine[Any, Any, Any], how: str) -> Any:
    """What library code does: a plain function that runs a coroutine to completion."""
    if how == "run":
        return asyncio.run(coro)
    return asyncio.get_event_loop().run_until_complete(coro)


def _run_twin(twin: str, scenario: Scenario, loop_kind: str, how: str) -> list[Any]:
    log: list[Any] = []

    async def nest(coro: Coroutine[Any, Any, Any]) -> Any:
        if twin == "native":
            context = _task_context()
            loop = asyncio.get_running_loop()
            task = (
                loop.create_task(coro)
                if context is None
                else loop.create_task(coro, context=context)
            )
            return await task
        return _sync_library_call(coro, how)

    async def ticker() -> None:
        for i in range(30):  # ends long before any timeout: a deterministic log
            log.append(("tick", i))
            await asyncio.sleep(0)

    async def main() -> None:
        if twin == "anywait":
            anywait.install()  # inside the loop: this task gets a portal from its next step
        await asyncio.sleep(0)
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        try:
            log.append(("result", await scenario(nest, log)))
        except BaseException as exc:  # compared, not handled
            log.append(("raised", type(exc).__name__, str(exc), _scenario_frames(exc)))
        tick.cancel()

    with asyncio.Runner(loop_factory=_factory(loop_kind), debug=loop_kind == "asyncio-debug") as r:
        r.run(main())
    return log


def _scenario_frames(exc: BaseException) -> list[str]:
    """The traceback's frames in scenario code (anywait's and asyncio's own differ)."""
    names = {"level", "child", "times_out", "fails", "victim", "asker"}
    return [f.name for f in traceback.extract_tb(exc.__traceback__) if f.name in names]


def _differential(scenario: Scenario, loop_kind: str, how: str) -> list[Any]:
    native = _run_twin("native", scenario, loop_kind, how)
    through = _run_twin("anywait", scenario, loop_kind, how)
    assert through == native
    return through


# --- scenarios --------------------------------------------------------------------


async def three_deep(nest: Any, log: list[Any]) -> Any:
    async def level(n: int) -> int:
        log.append(("enter", n, asyncio.current_task() is not None))
        await asyncio.sleep(0)
        if n == 0:
            return 1
        value = 1 + int(await nest(level(n - 1)))
        log.append(("leave", n))
        return value

    return await level(3)


async def siblings_in_gather(nest: Any, log: list[Any]) -> Any:
    async def child(name: str, delay: int) -> str:
        async def work() -> str:
            for _ in range(delay):
                await asyncio.sleep(0)
            log.append(("done", name))
            return name

        return str(await nest(work()))

    return await asyncio.gather(child("a", 3), child("b", 1), child("c", 2))


async def inside_wait(nest: Any, log: list[Any]) -> Any:
    async def child(n: int) -> int:
        async def work() -> int:
            await asyncio.sleep(0)
            log.append(("work", n))
            return n * n

        return int(await nest(work()))

    tasks = [asyncio.ensure_future(child(n)) for n in range(3)]
    done, pending = await asyncio.wait(tasks)
    return sorted(t.result() for t in done), len(pending)


async def wait_for_times_out(nest: Any, log: list[Any]) -> Any:
    async def times_out() -> None:
        # Long enough for the ticker's 30 turns of the loop on a debug build with
        # asyncio's debug mode on a loaded machine (at 0.01 s, 3.15d's timed out first).
        await asyncio.wait_for(asyncio.sleep(10), 0.5)

    return await nest(times_out())


async def exception_propagates(nest: Any, log: list[Any]) -> Any:
    async def fails() -> None:
        await asyncio.sleep(0)
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError("outer") from exc

    try:
        await nest(fails())
    except ValueError as exc:
        log.append(("caught", repr(exc), repr(exc.__cause__)))
        raise


async def task_from_ensure_future(nest: Any, log: list[Any]) -> Any:
    async def work() -> str:
        await asyncio.sleep(0)
        log.append("work")
        return "done"

    async def awaits_task() -> str:
        return str(await nest(_await(asyncio.ensure_future(work()))))

    return await awaits_task()


async def cancelled_while_nested(nest: Any, log: list[Any]) -> Any:
    async def victim() -> None:
        async def inner() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                log.append("inner finally")

        try:
            await nest(inner())
        finally:
            log.append("outer finally")

    task = asyncio.create_task(victim())
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        log.append(("cancelled", task.cancelled()))


async def current_task_inside_and_outside(nest: Any, log: list[Any]) -> Any:
    outer = asyncio.current_task()

    async def asker() -> tuple[bool, bool]:
        inner = asyncio.current_task()
        return inner is not outer, inner is not None

    inside = await nest(asker())
    return inside, asyncio.current_task() is outer


async def _await(aw: Any) -> Any:
    return await aw


SCENARIOS = [
    three_deep,
    siblings_in_gather,
    inside_wait,
    wait_for_times_out,
    exception_propagates,
    task_from_ensure_future,
    cancelled_while_nested,
    current_task_inside_and_outside,
]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_nested_run_behaves_as_awaiting_a_task(
    scenario: Scenario, loop_kind: str, how: str
) -> None:
    log = _differential(scenario, loop_kind, how)
    assert any(entry[0] == "tick" for entry in log)  # the background task ran alongside


def test_sibling_nested_runs_finish_in_fifo_order() -> None:
    log = _differential(siblings_in_gather, "asyncio", "run")
    assert [e for e in log if e[0] in ("done", "result")] == [
        ("done", "b"),
        ("done", "c"),
        ("done", "a"),
        ("result", ["a", "b", "c"]),
    ]


def test_wait_for_timeout_raises_timeout_error() -> None:
    log = _differential(wait_for_times_out, "asyncio", "run")
    assert log[-1][:2] == ("raised", "TimeoutError")
    assert "times_out" in log[-1][3]


# --- contextvars ------------------------------------------------------------------

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_context_flows_in_and_back_as_after_await(loop_kind: str) -> None:
    async def sets() -> str:
        seen = VAR.get()
        VAR.set("set inside")
        return seen

    def library() -> str:
        return asyncio.run(sets())

    async def main() -> tuple[str, str]:
        anywait.install()
        await asyncio.sleep(0)
        VAR.set("caller's")
        seen = library()
        return seen, VAR.get()

    with asyncio.Runner(loop_factory=_factory(loop_kind)) as r:
        assert r.run(main()) == ("caller's", "set inside")


def test_inside_context_run_the_nested_task_gets_a_copy() -> None:
    """A context the caller entered itself stays entered while it waits: the nested
    task runs in a copy (as stock), which works and does not flow back."""

    async def sets() -> str:
        seen = VAR.get()
        VAR.set("set inside")
        return seen

    async def main() -> tuple[str, str]:
        anywait.install()
        await asyncio.sleep(0)
        ctx = contextvars.copy_context()
        ctx.run(VAR.set, "in ctx")
        seen = ctx.run(asyncio.run, sets())
        return seen, ctx.run(VAR.get)

    assert asyncio.run(main()) == ("in ctx", "in ctx")


def test_tasks_sharing_one_context_each_nest() -> None:
    """ipykernel's case: every message's task runs in one shared Context."""
    shared = contextvars.copy_context()
    log: list[str] = []

    async def job(name: str) -> None:
        async def inner() -> None:
            await asyncio.sleep(0)
            log.append(f"{name} saw {VAR.get()}")
            VAR.set(name)

        asyncio.run(inner())
        log.append(f"{name} after: {VAR.get()}")

    async def main() -> None:
        anywait.install()
        loop = asyncio.get_running_loop()
        one = loop.create_task(job("one"), context=shared)
        await one
        two = loop.create_task(job("two"), context=shared)
        await two

    asyncio.run(main())
    assert log == ["one saw unset", "one after: one", "two saw one", "two after: two"]


# --- arguments, loops, and where a nested call can wait ---------------------------


def test_debug_applies_for_the_call_and_loop_factory_is_not_called() -> None:
    called: list[str] = []

    def factory() -> asyncio.AbstractEventLoop:
        called.append("factory")
        return asyncio.new_event_loop()

    async def debug_now() -> bool:
        return asyncio.get_running_loop().get_debug()

    async def main() -> tuple[bool, bool, bool]:
        anywait.install()
        await asyncio.sleep(0)
        kwargs: dict[str, Any] = {} if sys.version_info < (3, 12) else {"loop_factory": factory}
        inside = asyncio.run(debug_now(), debug=True, **kwargs)
        after = asyncio.get_running_loop().get_debug()
        default = asyncio.run(debug_now())
        return inside, after, default

    # debug=False outright: under -X dev (as the suite runs) every new loop starts in debug
    # mode, and a nested call without debug= keeps the running loop's setting.
    assert asyncio.run(main(), debug=False) == (True, False, False)
    assert called == []


def test_asyncio_keeps_its_c_task() -> None:
    c_task = asyncio.tasks._CTask  # type: ignore[attr-defined]

    async def kinds() -> tuple[bool, bool]:
        return type(asyncio.current_task()) is c_task, asyncio.Task is c_task

    async def main() -> tuple[bool, bool]:
        anywait.install()
        await asyncio.sleep(0)
        result: tuple[bool, bool] = asyncio.run(kinds())
        return result

    assert asyncio.run(main()) == (True, True)


def test_with_no_running_loop_run_is_stock_and_nests_inside() -> None:
    anywait.install()

    async def inner() -> int:
        return 1

    def library() -> int:
        return int(asyncio.run(inner())) + 1

    async def main() -> int:  # no install() here: the loop asyncio.run made gives portals
        await asyncio.sleep(0)
        task = asyncio.create_task(_call(library))
        return int(await task) + int(await _call(library))

    assert asyncio.run(main()) == 4
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()


def test_run_until_complete_on_a_new_loop_gives_portals() -> None:
    anywait.install()

    async def inner() -> str:
        return "inner"

    async def main() -> str:
        await asyncio.sleep(0)
        return str(asyncio.get_running_loop().run_until_complete(inner()))

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == "inner"
    finally:
        loop.close()


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def test_with_a_persistent_loop_run_uses_it() -> None:
    anywait.install()

    async def make_queue() -> asyncio.Queue[int]:
        return asyncio.Queue()

    async def put_get(q: asyncio.Queue[int]) -> int:
        await q.put(5)
        return await q.get()

    with anywait.persistent_loop() as loop:
        q = asyncio.run(make_queue())  # a queue bound to the persistent loop
        assert asyncio.run(put_get(q)) == 5
        assert asyncio.get_event_loop() is loop
        assert not loop.is_closed()


def test_from_a_loop_callback_it_raises_and_closes_the_coroutine() -> None:
    outcome: list[str] = []

    async def never() -> None:
        raise AssertionError("must not run")

    def callback() -> None:
        coro = never()
        try:
            asyncio.run(coro)
        except RuntimeError as exc:
            outcome.append(str(exc))
        assert coro.cr_frame is None  # closed: no "never awaited" warning

    async def main() -> None:
        anywait.install()
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert len(outcome) == 1
    assert "callback of the loop, not a task" in outcome[0]
    assert "cannot be called from a running event loop" in outcome[0]


def test_a_task_older_than_install_gets_its_portal_at_its_next_step() -> None:
    async def inner() -> str:
        return "ran"

    async def main() -> list[str]:
        outcome = []
        anywait.install()
        # Same step as install(): this task's portal is not in effect yet.
        with pytest.raises(RuntimeError, match="portal takes effect at its next step"):
            asyncio.run(inner())
        await asyncio.sleep(0)
        outcome.append(asyncio.run(inner()))
        return outcome

    with asyncio.Runner() as r:  # a loop install() did not make: no portals before
        assert r.run(main()) == ["ran"]


def test_another_loop_still_cannot_run_inside_a_running_one() -> None:
    async def main() -> None:
        anywait.install()
        await asyncio.sleep(0)
        other = asyncio.new_event_loop()
        coro = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError, match="another loop is running"):
                other.run_until_complete(coro)
        finally:
            coro.close()
            other.close()

    asyncio.run(main())


def test_bad_input_gets_stock_errors() -> None:
    async def main() -> None:
        anywait.install()
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="a coroutine was expected"):
            asyncio.run(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="coroutine or an awaitable is required"):
            asyncio.get_running_loop().run_until_complete(42)  # type: ignore[arg-type]

    asyncio.run(main())


def test_uninstall_restores_stock_asyncio() -> None:
    stock_run, stock_ruc = asyncio.run, asyncio.BaseEventLoop.run_until_complete
    anywait.install()
    anywait.install()  # a second call changes nothing
    assert asyncio.run is not stock_run
    anywait.uninstall()
    assert asyncio.run is stock_run
    assert asyncio.BaseEventLoop.run_until_complete is stock_ruc

    async def main() -> None:
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            asyncio.run(coro)
        coro.close()

    asyncio.run(main())
