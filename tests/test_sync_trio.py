"""Sync-first programs on Trio: ``anywait.start_loop(backend="trio")`` and ``await_``
from sync code with no running loop (``anywait._sync_trio``).

Differential: each scenario is a sync function given ``run(afn, *args)``, which is
either ``trio.from_thread.run`` into one long-lived ``trio.run`` on a background thread
(the native twin: a new system task per call, in a copy of the caller's context) or
``anywait.await_(afn(*args))`` on a persistent Trio run; what the scenario returns must
be the same. What only anywait can do (no second thread: the run is frozen between
calls; Ctrl-C; interpreter exit) is tested on its own, Ctrl-C and exit in child
interpreters.
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

trio = pytest.importorskip("trio")

Run = Callable[..., Any]


def in_trio_run() -> bool:
    """``trio.lowlevel.in_trio_run()``, which Trio before 0.23 lacks."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def twin_run(twin: str) -> Iterator[tuple[Run, Any]]:
    """``run`` and the run's token: a background ``trio.run`` (native) or anywait's."""
    if twin == "native":
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def host() -> None:
            box["token"] = trio.lowlevel.current_trio_token()
            box["stop"] = trio.Event()
            ready.set()
            await box["stop"].wait()

        thread = threading.Thread(target=trio.run, args=(host,), name="trio-run")
        thread.start()
        ready.wait()
        token = box["token"]

        def run(afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
            return trio.from_thread.run(afn, *args, trio_token=token)

        try:
            yield run, token
        finally:
            trio.from_thread.run_sync(box["stop"].set, trio_token=token)
            thread.join()
    else:
        token = anywait.start_loop(backend="trio")

        def run(afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
            return anywait.await_(afn(*args))

        try:
            yield run, token
        finally:
            anywait.stop_loop()


@pytest.fixture(params=["native", "anywait"])
def runner(request: pytest.FixtureRequest) -> Iterator[tuple[Run, Any]]:
    with twin_run(request.param) as r:
        yield r


def outcome(run: Run, afn: Callable[..., Awaitable[Any]], *args: Any) -> tuple[str, Any]:
    try:
        return "value", run(afn, *args)
    except BaseException as exc:
        names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        return "raised", (type(exc).__name__, str(exc), [n for n in names if n.startswith("co_")])


async def co_value() -> int:
    await trio.sleep(0)
    return 42


async def co_raise() -> None:
    await trio.sleep(0)
    await co_inner()


async def co_inner() -> None:
    raise ValueError("boom")


async def co_too_slow() -> None:
    with trio.fail_after(0.01):
        await trio.sleep(1)


async def co_moves_on() -> str:
    with trio.move_on_after(0.01) as scope:
        await trio.sleep(1)
    return f"cancelled_caught={scope.cancelled_caught}"


async def co_nursery() -> list[str]:
    order: list[str] = []

    async def child(name: str, delay: float) -> None:
        await trio.sleep(delay)
        order.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(child, "slow", 0.02)
        nursery.start_soon(child, "fast", 0)
    return order


async def co_group() -> None:
    async def fails(n: int) -> None:
        raise KeyError(n)  # both, in their first step: no checkpoint cancels either

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fails, 1)
        nursery.start_soon(fails, 2)


def test_values_exceptions_tracebacks(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    got = [
        outcome(run, co_value),
        outcome(run, co_raise),
        outcome(run, co_too_slow),
        outcome(run, co_moves_on),
        outcome(run, co_nursery),
        outcome(run, trio.sleep, 0),
    ]
    assert got == [
        ("value", 42),
        ("raised", ("ValueError", "boom", ["co_raise", "co_inner"])),
        ("raised", ("TooSlowError", "", ["co_too_slow"])),
        ("value", "cancelled_caught=True"),
        ("value", ["fast", "slow"]),
        ("value", None),
    ]
    with pytest.raises(BaseExceptionGroup) as info:
        run(co_group)
    assert sorted(e.args[0] for e in info.value.exceptions) == [1, 2]


def test_each_call_is_a_new_system_task_named_for_its_function(runner: tuple[Run, Any]) -> None:
    run, _ = runner

    async def co_who() -> tuple[str, int, bool, bool]:
        task = trio.lowlevel.current_task()
        root = trio.lowlevel.current_root_task()
        parent = task.parent_nursery
        return task.name, id(task), task is root, parent is not None and parent.parent_task is root

    first, second = run(co_who), run(co_who)
    assert (
        first[0]
        == second[0]
        == f"{__name__}.test_each_call_is_a_new_system_task_named_for_its_function.<locals>.co_who"
    )
    assert first[2:] == second[2:] == (False, True)


def test_what_the_run_holds_persists_between_calls(runner: tuple[Run, Any]) -> None:
    """A system task started by one call, and a memory channel to it, serve the next."""
    run, _ = runner
    box: dict[str, Any] = {}

    async def doubler(receive: Any, send: Any) -> None:
        async with receive, send:
            async for n in receive:
                await send.send(2 * n)

    async def co_start() -> None:
        to_task, from_caller = trio.open_memory_channel[int](10)
        to_caller, from_task = trio.open_memory_channel[int](10)
        trio.lowlevel.spawn_system_task(doubler, from_caller, to_caller)
        box["send"], box["receive"] = to_task, from_task

    async def co_ask(n: int) -> int:
        await box["send"].send(n)
        return int(await box["receive"].receive())

    run(co_start)
    assert [run(co_ask, n) for n in (1, 2, 3)] == [2, 4, 6]


def test_a_tcp_server_and_connection_persist_between_calls(runner: tuple[Run, Any]) -> None:
    """Real sockets on 127.0.0.1: a listener served by a system task started in one call,
    and a connection opened in another, used by the next ones."""
    run, _ = runner
    box: dict[str, Any] = {}

    async def echo(stream: Any) -> None:
        async with stream:
            async for data in stream:
                await stream.send_all(data.upper())

    async def co_serve() -> int:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        trio.lowlevel.spawn_system_task(trio.serve_listeners, echo, listeners)
        return int(listeners[0].socket.getsockname()[1])

    async def co_connect(port: int) -> None:
        box["stream"] = await trio.open_tcp_stream("127.0.0.1", port)

    async def co_ask(text: bytes) -> bytes:
        await box["stream"].send_all(text)
        with trio.fail_after(5):
            return bytes(await box["stream"].receive_some(100))

    async def co_close() -> None:
        await box["stream"].aclose()

    port = run(co_serve)
    run(co_connect, port)
    assert run(co_ask, b"one") == b"ONE"
    assert run(co_ask, b"two") == b"TWO"
    run(co_close)


cv: contextvars.ContextVar[str] = contextvars.ContextVar("cv", default="unset")


def test_contextvars_in_and_not_back(runner: tuple[Run, Any]) -> None:
    run, _ = runner

    async def co_sees() -> str:
        seen = cv.get()
        cv.set("inside")
        await trio.sleep(0)
        return seen

    token = cv.set("caller")
    try:
        assert run(co_sees) == "caller"
        assert cv.get() == "caller"  # what the call set stays in its copy
    finally:
        cv.reset(token)


def test_between_calls_the_thread_is_not_in_a_trio_run(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    outside = sys.get_asyncgen_hooks()

    async def co_inside() -> tuple[bool, bool]:
        hooks = sys.get_asyncgen_hooks()
        return in_trio_run(), hooks.firstiter is not None

    assert run(co_inside) == (True, True)
    assert in_trio_run() is False
    assert sys.get_asyncgen_hooks() == outside
    with pytest.raises(RuntimeError, match="must be called from async context"):
        trio.lowlevel.current_task()
    # Other runs work between calls, and the persistent one goes on after them.
    assert trio.run(co_value) == 42
    assert asyncio.run(asyncio.sleep(0, "asyncio")) == "asyncio"
    assert run(co_value) == 42


def test_sniffio_names_trio_only_inside_calls(runner: tuple[Run, Any]) -> None:
    sniffio = pytest.importorskip("sniffio")
    run, _ = runner

    async def co_library() -> str:
        return str(sniffio.current_async_library())

    async def in_asyncio() -> str:
        return str(sniffio.current_async_library())

    assert run(co_library) == "trio"
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()
    assert asyncio.run(in_asyncio()) == "asyncio"
    assert run(co_library) == "trio"


def test_time_and_deadlines_go_on_across_calls(runner: tuple[Run, Any]) -> None:
    run, _ = runner
    box: dict[str, Any] = {}

    async def co_now() -> float:
        return float(trio.current_time())

    async def co_start_timer() -> None:
        async def timer(done: Any) -> None:
            await trio.sleep(0.05)
            done.set()

        box["done"] = trio.Event()
        trio.lowlevel.spawn_system_task(timer, box["done"])

    async def co_wait_timer() -> bool:
        with trio.move_on_after(5):
            await box["done"].wait()
        return bool(box["done"].is_set())

    first = run(co_now)
    run(trio.sleep, 0.02)
    assert run(co_now) - first >= 0.02
    run(co_start_timer)
    threading.Event().wait(0.1)  # the timer's deadline passes between calls
    started = run(co_now)
    assert run(co_wait_timer)
    assert run(co_now) - started < 1  # it fired at once, not a wait later


# -- anywait only ---------------------------------------------------------------------


def test_the_run_is_frozen_between_calls() -> None:
    """No second thread: between calls nothing of the run executes."""
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(len(ticks))
            await trio.sleep(0.001)

    async def co_start() -> None:
        trio.lowlevel.spawn_system_task(ticker)
        await trio.sleep(0.02)

    with anywait.persistent_loop(backend="trio"):
        anywait.await_(co_start())
        frozen = len(ticks)
        assert frozen > 0
        threading.Event().wait(0.05)
        assert len(ticks) == frozen
        anywait.await_(trio.sleep(0.02))
        assert len(ticks) > frozen


def test_sync_code_in_a_call_can_await() -> None:
    """Every task of the run has a portal, so sync code the call runs can await_."""

    def sync_library(n: int) -> int:
        anywait.await_(trio.sleep(0))
        return n + 1

    async def co_uses_sync_code() -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0)
            return sync_library(41)

    with anywait.persistent_loop(backend="trio"):
        assert anywait.await_(co_uses_sync_code()) == 42


def test_stop_loop_cancels_system_tasks_and_lets_them_finish() -> None:
    log: list[str] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0)
            log.append("finished")

    async def co_start() -> None:
        trio.lowlevel.spawn_system_task(forever)
        await trio.sleep(0)

    anywait.start_loop(backend="trio")
    anywait.await_(co_start())
    anywait.stop_loop()
    assert log == ["finished"]
    # The thread is as before: no persistent loop, and a new one can start.
    with pytest.raises(RuntimeError, match="needs a portal"):
        anywait.await_(co_value())
    with anywait.persistent_loop(backend="trio"):
        assert anywait.await_(co_value()) == 42


def test_a_crashed_run_says_so_and_can_be_replaced() -> None:
    """A system task that raises crashes ``trio.run`` (TrioInternalError, as in Trio)."""

    async def crashes() -> None:
        raise ValueError("system task failed")

    async def co_start() -> None:
        trio.lowlevel.spawn_system_task(crashes)
        await trio.sleep(1)

    anywait.start_loop(backend="trio")
    try:
        with pytest.raises(RuntimeError, match="persistent Trio run ended") as info:
            anywait.await_(co_start())
        assert isinstance(info.value.__cause__, trio.TrioInternalError)
        coro = co_value()
        with pytest.raises(RuntimeError, match="persistent Trio run has ended"):
            anywait.await_(coro)
        assert coro.cr_frame is None  # closed: no "never awaited" warning
    finally:
        anywait.stop_loop()
    with anywait.persistent_loop(backend="trio"):
        assert anywait.await_(co_value()) == 42


def test_bad_calls() -> None:
    with pytest.raises(ValueError, match="unknown backend 'curio'"):
        anywait.start_loop(backend="curio")
    with pytest.raises(TypeError, match="not for backend='trio'"):
        anywait.start_loop(backend="trio", debug=True)

    async def start_inside() -> None:
        anywait.start_loop(backend="trio")

    with pytest.raises(RuntimeError, match="inside a Trio run"):
        trio.run(start_inside)
    with anywait.persistent_loop(backend="trio"):
        for backend in ("trio", "asyncio"):
            with pytest.raises(RuntimeError, match="has a persistent loop already"):
                anywait.start_loop(backend=backend)
        # From another thread: that thread has no persistent loop.
        seen: list[BaseException] = []

        def other_thread() -> None:
            try:
                anywait.await_(co_value())
            except RuntimeError as exc:
                seen.append(exc)

        thread = threading.Thread(target=other_thread, name="worker")
        thread.start()
        thread.join()
        assert len(seen) == 1
        assert "start_loop() on this thread" in str(seen[0])

        async def stop_inside() -> None:
            anywait.stop_loop()

        with pytest.raises(RuntimeError, match="must be called from sync code"):
            anywait.await_(stop_inside())
        assert anywait.await_(co_value()) == 42


def test_ctrl_c_cancels_what_it_awaits(run_scenario: Any) -> None:
    result = run_scenario("sync_trio_sigint")
    assert result.stdout.splitlines() == [
        "cancelled inside",
        "KeyboardInterrupt from the call",
        "usable after: 42",
        "KeyboardInterrupt while computing",
        "usable after: 42",
        "between calls SIGINT is Python's: True",
    ]


def test_interpreter_exit_stops_the_run(run_scenario: Any) -> None:
    result = run_scenario("sync_trio_exit")
    assert result.stdout.splitlines() == ["started", "system task cancelled and finished"]
    assert result.stderr == ""
