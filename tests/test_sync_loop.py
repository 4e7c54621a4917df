"""Sync-first programs: ``anywait.start_loop`` and ``await_`` from sync code with no
running loop (``anywait._sync_loop``).

Differential: each scenario is a sync function given ``run(aw)``, which is either
``asyncio.Runner.run(aw, context=copy_context())`` on one long-lived Runner (the
native twin) or ``anywait.await_`` on a persistent loop; what the scenario returns
must be the same. Ctrl-C and interpreter exit run in child interpreters.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anywait
import pytest

Run = Callable[[Awaitable[Any]], Any]

LOOPS = ["asyncio", "asyncio-debug", "uvloop"]


def _factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return None


@pytest.fixture(params=["native", "anywait"])
def twin(request: pytest.FixtureRequest) -> Iterator[str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@contextlib.contextmanager
def twin_runner(twin: str, loop_kind: str) -> Iterator[tuple[Run, asyncio.AbstractEventLoop]]:
    """``run`` and its loop: one long-lived Runner (native) or a persistent loop."""
    debug = loop_kind == "asyncio-debug"
    factory = _factory(loop_kind)
    if twin == "native":
        with asyncio.Runner(loop_factory=factory, debug=debug) as r:
            loop = r.get_loop()
            if factory is not None:
                asyncio.set_event_loop(loop)  # as start_loop does for any loop

            def run(aw: Awaitable[Any]) -> Any:
                coro = aw if asyncio.iscoroutine(aw) else _await(aw)
                return r.run(coro, context=contextvars.copy_context())

            yield run, loop
        asyncio.set_event_loop(None)
    else:
        loop = anywait.start_loop(loop_factory=factory, debug=debug)
        try:
            yield anywait.await_, loop
        finally:
            anywait.stop_loop()


@pytest.fixture
def runner(twin: str, loop_kind: str) -> Iterator[tuple[Run, asyncio.AbstractEventLoop]]:
    with twin_runner(twin, loop_kind) as r:
        yield r


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


def outcome(run: Run, aw: Awaitable[Any]) -> tuple[str, Any]:
    try:
        return "value", run(aw)
    except BaseException as exc:
        names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        frames = [n for n in names if n.startswith("co_")]
        return "raised", (type(exc).__name__, str(exc), frames)


async def co_value() -> int:
    await asyncio.sleep(0)
    return 42


async def co_raise() -> None:
    await asyncio.sleep(0)
    await co_inner()


async def co_inner() -> None:
    raise ValueError("boom")


async def co_self_cancel() -> None:
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(0)


def test_values_exceptions_tracebacks(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    got = [
        outcome(run, co_value()),
        outcome(run, co_raise()),
        outcome(run, co_self_cancel()),
        outcome(run, asyncio.wait_for(asyncio.sleep(1), 0.01)),
        outcome(run, asyncio.sleep(0, "result")),
    ]
    assert got == [
        ("value", 42),
        ("raised", ("ValueError", "boom", ["co_raise", "co_inner"])),
        ("raised", ("CancelledError", "", ["co_self_cancel"])),
        ("raised", ("TimeoutError", "", [])),
        ("value", "result"),
    ]


def test_timeout_context_manager(runner: tuple[Run, Any]) -> None:
    run, _ = runner

    async def slow() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(1)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    assert run(slow()) == "timed out"


def test_background_tasks_run_during_calls_and_persist(runner: tuple[Run, Any]) -> None:
    run, loop = runner
    progress: list[int] = []

    async def background() -> None:
        for n in range(10):
            progress.append(n)
            await asyncio.sleep(0)

    task = loop.create_task(background())
    run(asyncio.sleep(0))
    during_first = len(progress)
    run(asyncio.sleep(0))
    assert 0 < during_first < len(progress) < 10
    assert not task.done()
    run(task)
    assert progress == list(range(10))


def test_interleaving_matches_runner(loop_kind: str) -> None:
    def scenario(run: Run, loop: asyncio.AbstractEventLoop) -> list[str]:
        log: list[str] = []

        async def ticker() -> None:
            for n in range(8):
                log.append(f"t{n}")
                await asyncio.sleep(0)

        async def main(name: str) -> None:
            log.append(name)
            await asyncio.sleep(0)
            loop.call_soon(log.append, name + "-callback")
            await asyncio.sleep(0)
            log.append(name + "-end")

        loop.create_task(ticker())
        run(main("x"))
        log.append("|")
        run(main("y"))
        log.append("|")
        run(asyncio.sleep(0))
        return log

    results = {}
    for twin in ("native", "anywait"):
        with twin_runner(twin, loop_kind) as (run, loop):
            results[twin] = scenario(run, loop)
    assert results["anywait"] == results["native"]


def test_inside_a_task_and_between_calls(runner: tuple[Run, Any]) -> None:
    run, loop = runner

    async def where() -> tuple[bool, bool]:
        return asyncio.current_task() is not None, asyncio.get_running_loop() is loop

    assert run(where()) == (True, True)
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
    assert asyncio.get_event_loop() is loop
    assert asyncio.current_task(loop) is None


def test_contextvars_in_and_not_back(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def read_and_set() -> str:
        seen = var.get()
        var.set("set inside")
        return seen

    var.set("request-1")
    assert run(read_and_set()) == "request-1"
    assert var.get() == "request-1"
    var.set("request-2")
    assert run(read_and_set()) == "request-2"


def test_done_callbacks_of_the_awaited_task_run_first(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    log: list[str] = []

    async def with_callbacks() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(lambda t: log.append("cb1"))
        task.add_done_callback(lambda t: log.append("cb2"))

    run(with_callbacks())
    log.append("returned")
    assert log == ["cb1", "cb2", "returned"]


def test_loop_stop_inside_a_call(runner: tuple[Run, Any]) -> None:
    run, loop = runner

    async def stops() -> None:
        loop.stop()
        await asyncio.sleep(0.05)

    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
        run(stops())
    assert run(co_value()) == 42


def test_run_until_complete_from_sync_code(runner: tuple[Run, Any]) -> None:
    _, loop = runner
    assert loop.run_until_complete(co_value()) == 42
    fut = asyncio.ensure_future(co_value(), loop=loop)
    assert loop.run_until_complete(fut) == 42


def test_sync_code_in_its_tasks_can_await(loop_kind: str) -> None:
    with anywait.persistent_loop(loop_factory=_factory(loop_kind)) as loop:

        def helper() -> int:
            return int(anywait.await_(co_value())) + 1

        async def uses_helper() -> int:
            return helper()

        assert anywait.await_(uses_helper()) == 43
        task = loop.create_task(uses_helper())
        assert anywait.await_(task) == 43
    # Stopped, the thread is as it was before start_loop: the usual no-portal error,
    # which names start_loop for sync code.
    with pytest.raises(RuntimeError, match=r"needs a portal.*anywait\.start_loop\(\)"):
        anywait.await_(co_value())


def test_shutdown_finishes_every_task(loop_kind: str) -> None:
    log: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            await asyncio.sleep(0)
            log.append(name)

    async def agen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            log.append("agen closed")

    async def start_agen() -> None:
        gen = agen()
        await gen.__anext__()
        _KEEP.append(gen)

    loop = anywait.start_loop(loop_factory=_factory(loop_kind))
    tasks = [loop.create_task(forever(f"t{n}")) for n in range(3)]
    anywait.await_(start_agen())
    anywait.stop_loop()
    _KEEP.clear()
    assert sorted(log) == ["agen closed", "t0", "t1", "t2"]
    assert all(t.cancelled() for t in tasks)
    assert loop.is_closed()
    # A new one can be started after.
    with anywait.persistent_loop():
        assert anywait.await_(co_value()) == 42


_KEEP: list[Any] = []


def test_bad_calls() -> None:
    with pytest.raises(RuntimeError, match="no persistent loop to stop"):
        anywait.stop_loop()

    async def start_inside() -> None:
        anywait.start_loop()

    with pytest.raises(RuntimeError, match="while an event loop is running"):
        asyncio.run(start_inside())
    with anywait.persistent_loop() as loop:
        with pytest.raises(RuntimeError, match="has a persistent loop already"):
            anywait.start_loop()
        # From a loop callback (no task, no portal): the no-portal error, no hang.
        errors: list[BaseException] = []

        def callback() -> None:
            try:
                anywait.await_(co_value())
            except RuntimeError as exc:
                errors.append(exc)

        loop.call_soon(callback)
        anywait.await_(asyncio.sleep(0.01))
        assert len(errors) == 1
        assert "needs a portal" in str(errors[0])

        # From another thread.
        seen: list[BaseException] = []

        def other_thread() -> None:
            coro = co_value()
            try:
                anywait.await_(coro)
            except RuntimeError as exc:
                seen.append(exc)
            assert coro.cr_frame is None  # closed: no "never awaited" warning

        thread = threading.Thread(target=other_thread, name="worker")
        thread.start()
        thread.join()
        assert len(seen) == 1
        assert "MainThread" in str(seen[0])
        assert "start_loop() on this thread" in str(seen[0])

        async def stop_inside() -> None:
            anywait.stop_loop()

        with pytest.raises(RuntimeError, match="must be called from sync code"):
            anywait.await_(stop_inside())


def test_each_thread_its_own_loop() -> None:
    results: dict[str, Any] = {}

    def worker(name: str) -> None:
        with anywait.persistent_loop() as loop:
            results[name] = (anywait.await_(co_value()), loop)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [v for v, _ in results.values()] == [42, 42, 42]
    assert len({id(loop) for _, loop in results.values()}) == 3


@pytest.mark.parametrize("twin_name", ["native", "anywait"])
def test_ctrl_c_cancels_what_it_awaits(run_scenario: Any, twin_name: str) -> None:
    result = run_scenario("sync_loop_sigint", twin_name)
    assert result.stdout.splitlines() == [
        "cancelled inside",
        "KeyboardInterrupt from the call",
        "usable after: 42",
    ]


def test_interpreter_exit_stops_the_loop(run_scenario: Any) -> None:
    result = run_scenario("sync_loop_exit")
    assert result.stdout.splitlines() == ["started", "task cancelled and finished"]
    assert result.stderr == ""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are 3.12+")
def test_eager_task_factory_kept() -> None:
    def factory() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        return loop

    with anywait.persistent_loop(loop_factory=factory):
        assert anywait.await_(co_value()) == 42


def test_asyncgen_hooks_between_calls(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    outside = sys.get_asyncgen_hooks()

    async def inside() -> Any:
        return sys.get_asyncgen_hooks()

    hooks = run(inside())
    assert hooks.finalizer is not None  # the loop's, while it runs
    assert sys.get_asyncgen_hooks() == outside  # not between calls


def test_exception_escaping_the_loop_leaves_it_usable(runner: tuple[Run, Any]) -> None:
    run, loop = runner

    def callback() -> None:
        raise SystemExit(3)  # a callback's SystemExit leaves run_forever, as in asyncio

    async def schedules() -> None:
        loop.call_soon(callback)
        await asyncio.sleep(0.05)

    with pytest.raises(SystemExit):
        run(schedules())
    assert run(co_value()) == 42
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()


def test_a_server_and_a_connection_persist_between_calls(loop_kind: str) -> None:
    """Real sockets on 127.0.0.1: a server started by one call keeps serving, and a
    connection opened by one call is used by the next ones."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: str) -> bytes:
        writer.write(text.encode() + b"\n")
        anywait.await_(writer.drain())
        return bytes(anywait.await_(asyncio.wait_for(reader.readline(), 5)))

    with anywait.persistent_loop(
        loop_factory=_factory(loop_kind), debug=loop_kind == "asyncio-debug"
    ):
        server = anywait.await_(asyncio.start_server(echo, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        reader, writer = anywait.await_(asyncio.open_connection("127.0.0.1", port))
        assert ask(reader, writer, "one") == b"ONE\n"
        assert ask(reader, writer, "two") == b"TWO\n"
        writer.close()
        anywait.await_(writer.wait_closed())
        server.close()
        anywait.await_(server.wait_closed())
