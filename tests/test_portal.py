"""await_ behaves as `await` would at that point: each scenario runs natively and
through sync frames + await_, on every backend, and the observable traces must match."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import itertools
import re
import sys
import threading
import traceback
import types
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import anywait
import pytest
from portal_harness import (
    ASYNCIO_BACKENDS,
    Wait,
    both,
    cancelled_caught,
    cancelled_exc_class,
    current_asyncio_task,
    current_task,
    current_task_coro,
    has_cancel_scopes,
    make_event,
    move_on_after,
    require,
    run,
    sleep,
    task_group,
)


def test_value_of_an_awaited_coroutine(backend: str) -> None:
    async def double(x: int) -> int:
        await sleep(backend, 0)
        return 2 * x

    async def scenario(wait: Wait) -> int:
        return int(await wait(double(21)))

    assert both(backend, scenario) == (42, 42)


def test_exception_and_its_innermost_frames(backend: str) -> None:
    async def fails() -> None:
        await sleep(backend, 0)
        raise KeyError("boom")

    async def scenario(wait: Wait) -> tuple[str, list[str]]:
        try:
            await wait(fails())
        except KeyError as exc:
            names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
            return repr(exc), names[-1:]
        return "no exception", []

    assert both(backend, scenario) == (("KeyError('boom')", ["fails"]),) * 2


def test_traceback_shows_the_sync_caller_and_no_anywait_frames(backend: str) -> None:
    async def fails() -> None:
        raise ValueError("inner")

    def legacy() -> None:
        anywait.await_(fails())

    async def main() -> list[str]:
        await anywait.ensure_portal()
        try:
            legacy()
        except ValueError as exc:
            return [f.name for f in traceback.extract_tb(exc.__traceback__)]
        return []

    assert run(backend, main) == ["main", "legacy", "fails"]


def test_context_is_shared_with_awaited_code(backend: str) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def setter() -> str:
        seen = var.get()
        var.set("set by awaited code")
        return seen

    async def scenario(wait: Wait) -> tuple[str, str]:
        var.set("task")
        seen = await wait(setter())
        return seen, var.get()

    assert both(backend, scenario) == (("task", "set by awaited code"),) * 2


def test_context_run_in_sync_code_isolates(backend: str) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def setter() -> str:
        var.set("inside")
        await sleep(backend, 0)
        return var.get()

    async def main() -> tuple[str, str]:
        await anywait.ensure_portal()
        var.set("task")
        inner = contextvars.copy_context().run(lambda: anywait.await_(setter()))
        return inner, var.get()

    assert run(backend, main) == ("inside", "task")


def test_a_coroutine_that_never_yields_is_not_a_checkpoint(backend: str) -> None:
    async def immediate() -> str:
        return "now"

    async def scenario(wait: Wait) -> list[str]:
        order: list[str] = []

        async def other() -> None:
            order.append("other ran")

        async with task_group(backend) as group:
            group.start_soon(other)
            order.append(await wait(immediate()))
            order.append(await wait(immediate()))
        return order

    native, portal = both(backend, scenario)
    assert native == portal == ["now", "now", "other ran"]


def test_cancellation_arrives_at_the_await__call_and_finally_runs(backend: str) -> None:
    async def scenario(wait: Wait) -> list[str]:
        log: list[str] = []
        if has_cancel_scopes(backend):
            with move_on_after(backend, 0.01) as scope:
                try:
                    await wait(sleep(backend, 10))
                except cancelled_exc_class(backend):
                    log.append("cancelled")
                    raise
                finally:
                    log.append("finally")
            log.append(f"cancelled_caught={cancelled_caught(scope)}")
        else:
            task = current_asyncio_task()
            assert task is not None
            asyncio.get_running_loop().call_later(0.01, task.cancel)
            try:
                await wait(sleep(backend, 10))
            except asyncio.CancelledError:
                log.append("cancelled")
                task.uncancel()
            finally:
                log.append("finally")
        return log

    native, portal = both(backend, scenario)
    assert native == portal
    assert native[:2] == ["cancelled", "finally"]


def test_awaiting_a_non_awaitable_raises_the_native_type_error(backend: str) -> None:
    async def scenario(wait: Wait) -> str:
        try:
            await wait(42)
        except TypeError as exc:
            return str(exc)
        return "no error"

    native, portal = both(backend, scenario)
    assert native == portal


def test_await__nests_through_sync_and_async_layers(backend: str) -> None:
    async def leaf() -> int:
        await sleep(backend, 0)
        return 1

    def sync_middle() -> int:
        return int(anywait.await_(leaf())) + 10

    async def async_middle() -> int:
        await sleep(backend, 0)
        return sync_middle() + 100

    def sync_top() -> int:
        return int(anywait.await_(async_middle())) + 1000

    async def main() -> int:
        await anywait.ensure_portal()
        return sync_top()

    assert run(backend, main) == 1111


def test_await__works_inside_sorted_key_and_properties(backend: str) -> None:
    async def weight(x: int) -> int:
        await sleep(backend, 0)
        return -x

    class Box:
        def __init__(self, x: int) -> None:
            self.x = anywait.await_(weight(x))

        @property
        def doubled(self) -> int:
            return 2 * int(anywait.await_(weight(self.x)))

    async def main() -> tuple[list[int], int]:
        await anywait.ensure_portal()
        order = sorted([1, 3, 2], key=lambda x: anywait.await_(weight(x)))
        return order, Box(5).doubled

    assert run(backend, main) == ([3, 2, 1], 10)


def test_await__without_a_portal_says_how_to_get_one_and_closes_the_coroutine(
    backend: str,
) -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    async def main() -> str:
        coro = never()
        try:
            anywait.await_(coro)
        except RuntimeError as exc:
            assert coro.cr_frame is None  # closed: no "never awaited" warning
            return str(exc)
        return "no error"

    message = run(backend, main)
    assert "ensure_portal" in message
    assert "anywait.run" in message


def test_await__outside_any_event_loop_raises() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(RuntimeError, match="portal"):
        anywait.await_(nothing())


def test_await__from_another_thread_raises(backend: str) -> None:
    async def nothing() -> None:
        pass

    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            anywait.await_(nothing())
        except BaseException as exc:
            errors.append(exc)

    async def main() -> None:
        await anywait.ensure_portal()
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()

    run(backend, main)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


def test_ensure_portal_is_idempotent_and_has_portal_reports_it(backend: str) -> None:
    async def main() -> tuple[bool, bool, bool]:
        before = anywait.has_portal()
        await anywait.ensure_portal()
        await anywait.ensure_portal()
        return before, anywait.has_portal(), anywait.has_portal()

    assert run(backend, main) == (False, True, True)


def test_with_portal_run_sync_gives_a_sync_function_a_portal(backend: str) -> None:
    async def value() -> str:
        await sleep(backend, 0)
        return "v"

    def legacy(suffix: str) -> str:
        return str(anywait.await_(value())) + suffix

    async def main() -> tuple[str, str, bool]:
        a = await anywait.with_portal_run_sync(legacy, "1")

        async def wrapped() -> str:
            return legacy("2")

        b = await anywait.with_portal_run(wrapped)
        return a, b, anywait.has_portal()

    assert run(backend, main) == ("v1", "v2", False)


def test_run_gives_every_task_a_portal() -> None:
    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    def legacy() -> int:
        return int(anywait.await_(value()))

    async def child() -> int:
        return legacy()

    async def main() -> list[int]:
        return [legacy(), await asyncio.create_task(child())]

    assert anywait.run(main) == [7, 7]


def test_run_with_trio_gives_every_task_a_portal() -> None:
    require("trio")
    import trio

    def legacy() -> str:
        anywait.await_(trio.sleep(0))
        return "ok"

    async def main() -> list[str]:
        results: list[str] = []

        async def child() -> None:
            results.append(legacy())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
        results.append(legacy())
        return results

    assert anywait.run(main, backend="trio") == ["ok", "ok"]


def test_bestow_portal_on_a_finished_task_raises() -> None:
    async def main() -> str:
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        try:
            anywait.bestow_portal(task)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "finished" in asyncio.run(main())


def test_bestow_portal_gives_a_waiting_task_a_portal() -> None:
    async def value() -> int:
        return 3

    async def child(started: asyncio.Event) -> int:
        started.set()
        await asyncio.sleep(0)
        return int(anywait.await_(value()))

    async def main() -> tuple[bool, int]:
        started = asyncio.Event()
        task = asyncio.create_task(child(started))
        await started.wait()
        anywait.bestow_portal(task)
        return anywait.has_portal(task), await task

    assert asyncio.run(main()) == (True, 3)


def test_ten_thousand_tasks_blocked_in_await__at_once() -> None:
    blocked = 0

    async def worker(release: asyncio.Event) -> int:
        nonlocal blocked
        await anywait.ensure_portal()
        blocked += 1
        anywait.await_(release.wait())
        return 1

    async def main() -> int:
        release = asyncio.Event()
        tasks = [asyncio.create_task(worker(release)) for _ in range(10_000)]
        while blocked < 10_000:
            await asyncio.sleep(0)
        release.set()
        return sum(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == 10_000


def test_keyboard_interrupt_propagates_out_of_await_(backend: str) -> None:
    async def interrupt() -> None:
        raise KeyboardInterrupt

    async def scenario(wait: Wait) -> str:
        try:
            await wait(interrupt())
        except KeyboardInterrupt:
            return "caught"
        return "missed"

    assert both(backend, scenario) == ("caught", "caught")


# --- other tasks: has_portal, bestow_portal, their coroutine's state -------------------


@pytest.mark.parametrize("state", ["blocked", "scheduled"])
def test_has_portal_and_bestow_portal_on_another_task(backend: str, state: str) -> None:
    """bestow_portal gives a task that is blocked (waiting for an event) or scheduled
    (ready to run its next step) a portal from its next step on."""

    async def value() -> str:
        await sleep(backend, 0)
        return "awaited"

    async def main() -> list[Any]:
        tasks: list[Any] = []
        log: list[Any] = []
        go = make_event(backend)

        async def child() -> None:
            tasks.append(current_task(backend))
            if state == "blocked":
                await go.wait()
            else:
                while not go.is_set():
                    await sleep(backend, 0)  # always scheduled again at once
            log.append(anywait.await_(value()))

        async with task_group(backend) as group:
            group.start_soon(child)
            while not tasks:
                await sleep(backend, 0)
            log.append(anywait.has_portal(tasks[0]))
            anywait.bestow_portal(tasks[0])
            log.append(anywait.has_portal(tasks[0]))
            go.set()
        return log

    assert run(backend, main) == [False, True, "awaited"]


def test_a_suspended_tasks_coroutine_reports_its_state_as_a_coroutine_would(
    backend: str,
) -> None:
    async def scenario(wait: Wait) -> list[str]:
        coros: list[Any] = []
        states: list[str] = []

        async def child() -> None:
            await wait.enter_task()
            coros.append(current_task_coro(backend))
            states.append(inspect.getcoroutinestate(coros[0]))
            await wait(sleep(backend, 0.01))

        async with task_group(backend) as group:
            group.start_soon(child)
            while not coros:
                await sleep(backend, 0)
            states.append(inspect.getcoroutinestate(coros[0]))  # blocked in await_
        states.append(inspect.getcoroutinestate(coros[0]))
        return states

    native, portal = both(backend, scenario)
    assert native == portal == ["CORO_RUNNING", "CORO_SUSPENDED", "CORO_CLOSED"]


# --- generators, async generators, custom awaitables ----------------------------------


def test_a_generator_paused_across_await__keeps_its_place(backend: str) -> None:
    async def double(x: int) -> int:
        await sleep(backend, 0)
        return 2 * x

    def doubles(n: int) -> Iterator[int]:
        for i in range(n):
            yield anywait.await_(double(i))

    async def adoubles(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield await double(i)

    async def native() -> list[int]:
        numbers = adoubles(3)
        got = [await anext(numbers)]
        got.append(await double(10))
        return got + [x async for x in numbers]

    def legacy() -> list[int]:
        numbers = doubles(3)
        got = [next(numbers)]
        got.append(anywait.await_(double(10)))  # the generator stays paused meanwhile
        return got + list(numbers)

    async def through_portal() -> list[int]:
        await anywait.ensure_portal()
        return legacy()

    assert run(backend, native) == run(backend, through_portal) == [0, 20, 2, 4]


def test_an_async_generator_driven_by_await_(backend: str) -> None:
    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []

        async def ticker() -> AsyncIterator[int]:
            try:
                for i in range(3):
                    await sleep(backend, 0)
                    yield i
            finally:
                await sleep(backend, 0)
                log.append("finally")

        ticks = ticker()
        log.append(await wait(ticks.__anext__()))
        log.append(await wait(ticks.asend(None)))
        await wait(ticks.aclose())
        try:
            await wait(ticks.__anext__())
        except StopAsyncIteration:
            log.append("StopAsyncIteration")

        async def one() -> AsyncIterator[int]:
            yield 1

        ones = one()
        log.append(await wait(ones.__anext__()))
        try:
            await wait(ones.athrow(KeyError("thrown")))
        except KeyError as exc:
            log.append(repr(exc))
        return log

    native, portal = both(backend, scenario)
    assert native == portal == [0, 1, "finally", "StopAsyncIteration", 1, "KeyError('thrown')"]


def test_custom_awaitables_give_what_await_gives(backend: str) -> None:
    class Delegates:
        def __init__(self, value: Any) -> None:
            self.value = value

        def __await__(self) -> Generator[Any, Any, Any]:
            yield from sleep(backend, 0).__await__()
            if isinstance(self.value, BaseException):
                raise self.value
            return self.value

    @types.coroutine
    def generator_based() -> Generator[Any, Any, str]:
        yield from sleep(backend, 0).__await__()
        return "generator-based"

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = [await wait(Delegates("value")), await wait(generator_based())]
        try:
            await wait(Delegates(ValueError("from __await__")))
        except ValueError as exc:
            frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
            log.append((repr(exc), frames[-1]))
        return log

    native, portal = both(backend, scenario)
    assert native == portal
    assert native[-1] == ("ValueError('from __await__')", "__await__")


def test_objects_await_refuses_give_the_native_type_errors(backend: str) -> None:
    async def spare() -> None:
        pass

    class ReturnsACoroutine:
        def __await__(self) -> Any:
            self.coro = spare()
            return self.coro

    class ReturnsAnInt:
        def __await__(self) -> Any:
            return 5

    def plain_generator() -> Iterator[int]:
        yield 1

    async def scenario(wait: Wait) -> list[str]:
        messages = []
        for obj in [ReturnsACoroutine(), ReturnsAnInt(), plain_generator(), None]:
            try:
                await wait(obj)
            except TypeError as exc:
                messages.append(str(exc))
            if isinstance(obj, ReturnsACoroutine):
                obj.coro.close()
        return messages

    native, portal = both(backend, scenario)
    assert native == portal
    assert len(native) == 4


# --- await_ inside protocols that the interpreter calls synchronously ------------------


def test_await__inside_operators_and_special_methods(backend: str) -> None:
    async def value(x: Any) -> Any:
        await sleep(backend, 0)
        return x

    aw = anywait.await_

    class Remote:
        def __init__(self, n: int) -> None:
            self.n = n
            self.stored: dict[Any, Any] = {}

        def __add__(self, other: int) -> int:
            return int(aw(value(self.n + other)))

        def __eq__(self, other: object) -> bool:
            return bool(aw(value(isinstance(other, Remote) and other.n == self.n)))

        def __hash__(self) -> int:
            return int(aw(value(hash(self.n))))

        def __len__(self) -> int:
            return int(aw(value(self.n)))

        def __bool__(self) -> bool:
            return bool(aw(value(self.n > 0)))

        def __contains__(self, x: int) -> bool:
            return bool(aw(value(0 <= x < self.n)))

        def __getitem__(self, i: int) -> int:
            if i >= self.n:
                raise IndexError(i)
            return int(aw(value(i * i)))

        def __setitem__(self, key: Any, v: Any) -> None:
            self.stored[key] = aw(value(v))

        def __getattr__(self, name: str) -> str:
            if name.startswith("_"):
                raise AttributeError(name)
            return str(aw(value(name.upper())))

        def __format__(self, spec: str) -> str:
            return str(aw(value(f"<{self.n}:{spec}>")))

    def legacy() -> list[Any]:
        r = Remote(3)
        r["k"] = "v"
        return [
            r + 1,
            r == Remote(3),
            r != Remote(4),
            {r: "hashed"}[r],
            len(r),
            bool(r),
            2 in r,
            list(r),  # the old __getitem__ iteration protocol
            r.stored,
            r.anything,
            f"{r:x}",
        ]

    async def main() -> list[Any]:
        await anywait.ensure_portal()
        return legacy()

    assert run(backend, main) == [
        4,
        True,
        True,
        "hashed",
        3,
        True,
        True,
        [0, 1, 4],
        {"k": "v"},
        "ANYTHING",
        "<3:x>",
    ]


def test_await__inside_map_filter_and_other_c_level_callbacks(backend: str) -> None:
    async def value(x: Any) -> Any:
        await sleep(backend, 0)
        return x

    def aw(x: Any) -> Any:
        return anywait.await_(value(x))

    def legacy() -> list[Any]:
        return [
            list(map(lambda x: aw(x) * 2, range(4))),
            list(filter(lambda x: aw(x) % 2, range(5))),
            functools.reduce(lambda a, b: aw(a) + aw(b), range(5)),
            re.sub(r"\d", lambda m: str(aw(int(m.group())) + 1), "a1b2"),
            max(["aa", "b", "ccc"], key=lambda s: aw(len(s))),
            ",".join(aw(c) for c in "xyz"),
            sum(aw(i) for i in range(5)),
            {k: aw(k * 2) for k in range(3)},
            list(itertools.starmap(lambda a, b: aw(a + b), [(1, 2), (3, 4)])),
            sorted(map(aw, [3, 1, 2]), reverse=True),
        ]

    async def main() -> list[Any]:
        await anywait.ensure_portal()
        return legacy()

    assert run(backend, main) == [
        [0, 2, 4, 6],
        [1, 3],
        10,
        "a2b3",
        "ccc",
        "x,y,z",
        10,
        {0: 0, 1: 2, 2: 4},
        [3, 7],
        [3, 2, 1],
    ]


def test_map_with_await__interleaves_with_other_tasks_as_await_would(backend: str) -> None:
    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []

        async def step(x: int) -> int:
            log.append(f"step {x}")
            await sleep(backend, 0)
            return x * 10

        async def ticker() -> None:
            await wait.enter_task()
            for i in range(4):
                log.append(f"tick {i}")
                await sleep(backend, 0)

        async with task_group(backend) as group:
            group.start_soon(ticker)
            await sleep(backend, 0)
            if wait.portal:
                log.append(list(map(lambda x: anywait.await_(step(x)), range(3))))
            else:
                log.append([await step(x) for x in range(3)])
        return log

    native, portal = both(backend, scenario)
    assert native == portal
    assert native.count("tick 3") == 1


def test_await__in_exit_and_except_blocks_keeps_the_exception_in_flight(
    backend: str,
) -> None:
    async def pause() -> None:
        await sleep(backend, 0)

    def in_flight() -> str:
        return repr(sys.exc_info()[1])

    class Async:
        def __init__(self, log: list[str]) -> None:
            self.log = log

        async def __aenter__(self) -> None:
            pass

        async def __aexit__(self, *exc_info: Any) -> bool:
            self.log.append(f"exit sees {exc_info[1]!r}")
            await pause()
            self.log.append(f"after the await {in_flight()}")
            return False

    class Sync(Async):
        def __enter__(self) -> None:
            pass

        def __exit__(self, *exc_info: Any) -> bool:
            self.log.append(f"exit sees {exc_info[1]!r}")
            anywait.await_(pause())
            self.log.append(f"after the await {in_flight()}")
            return False

    async def native() -> list[str]:
        log: list[str] = []
        try:
            try:
                async with Async(log):
                    raise KeyError("a")
            except KeyError:
                await pause()
                log.append(f"except block {in_flight()}")
                raise
        except KeyError as exc:
            log.append(str([f.name for f in traceback.extract_tb(exc.__traceback__)]))
        log.append(f"afterwards {in_flight()}")
        return log

    def legacy() -> list[str]:
        log: list[str] = []
        try:
            try:
                with Sync(log):
                    raise KeyError("a")
            except KeyError:
                anywait.await_(pause())
                log.append(f"except block {in_flight()}")
                raise
        except KeyError as exc:
            log.append(str([f.name for f in traceback.extract_tb(exc.__traceback__)]))
        log.append(f"afterwards {in_flight()}")
        return log

    async def through_portal() -> list[str]:
        await anywait.ensure_portal()
        return legacy()

    native_log = run(backend, native)
    portal_log = run(backend, through_portal)
    assert native_log[:3] == portal_log[:3]
    assert native_log[:3] == [
        "exit sees KeyError('a')",
        "after the await KeyError('a')",
        "except block KeyError('a')",
    ]
    assert native_log[3] == "['native']"
    assert portal_log[3] == "['legacy']"
    assert native_log[4] == portal_log[4] == "afterwards None"


def test_await__in_del_works_inside_a_portal_step(backend: str) -> None:
    async def value(x: str) -> str:
        await sleep(backend, 0)
        return x

    log: list[str] = []

    class Resource:
        def __del__(self) -> None:
            try:
                log.append(anywait.await_(value("closed in __del__")))
            except RuntimeError as exc:
                log.append(f"RuntimeError: {'portal' in str(exc)}")

    def legacy() -> None:
        resource = Resource()
        del resource  # the finalizer runs here, inside the portal step

    async def with_portal() -> None:
        await anywait.ensure_portal()
        legacy()

    async def without_portal() -> None:
        legacy()

    run(backend, with_portal)
    run(backend, without_portal)
    assert log == ["closed in __del__", "RuntimeError: True"]


# --- asyncio futures and friends -------------------------------------------------------


@pytest.fixture(params=ASYNCIO_BACKENDS)
def asyncio_backend(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


def test_futures_resolved_later_or_already(asyncio_backend: str) -> None:
    async def scenario(wait: Wait) -> list[Any]:
        loop = asyncio.get_running_loop()
        log: list[Any] = []

        async def other() -> None:
            log.append("other ran")

        ready = loop.create_future()
        ready.set_result("already")
        later = loop.create_future()
        loop.call_later(0.001, later.set_result, "later")
        failing = loop.create_future()
        loop.call_soon(failing.set_exception, OSError("from the future"))
        cancelled = loop.create_future()
        loop.call_soon(cancelled.cancel)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            threaded = asyncio.wrap_future(pool.submit(lambda: threading.current_thread().name))

            task = asyncio.ensure_future(other())
            log.append(await wait(ready))  # done: no trip through the loop
            log.append(await wait(later))
            try:
                await wait(failing)
            except OSError as exc:
                log.append(repr(exc))
            try:
                await wait(cancelled)
            except asyncio.CancelledError:
                log.append("CancelledError")
            log.append(await wait(threaded) != threading.current_thread().name)
        await task
        return log

    native, portal = both(asyncio_backend, scenario)
    assert (
        native
        == portal
        == [
            "already",
            "other ran",
            "later",
            "OSError('from the future')",
            "CancelledError",
            True,
        ]
    )


def test_gather_shield_wait_for_and_timeout(asyncio_backend: str) -> None:
    if asyncio_backend == "asyncio-pytask" and sys.version_info >= (3, 14):
        pytest.skip(
            "3.14's asyncio.timeout() (wait_for uses it) cannot find a pure-Python Task: "
            "the C current_task() does not see them"
        )

    async def value(x: Any, delay: float = 0) -> Any:
        await asyncio.sleep(delay)
        if isinstance(x, BaseException):
            raise x
        return x

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = [await wait(asyncio.gather(value(1), value(2, 0.001)))]
        log.append(await wait(asyncio.gather(value(1), value(KeyError(2)), return_exceptions=True)))
        log[-1] = [repr(x) for x in log[-1]]
        try:
            await wait(asyncio.gather(value(1, 0.01), value(KeyError("g"))))
        except KeyError as exc:
            log.append(repr(exc))
        log.append(await wait(asyncio.shield(value("shielded"))))
        try:
            await wait(asyncio.wait_for(value("slow", 10), 0.001))
        except TimeoutError as exc:
            log.append(type(exc).__name__)
        try:
            async with asyncio.timeout(0.001):
                await wait(value("slow", 10))
        except TimeoutError as exc:
            log.append(f"timeout: {type(exc.__context__).__name__}")
        log.append(current_asyncio_task().cancelling())
        return log

    native, portal = both(asyncio_backend, scenario)
    assert (
        native
        == portal
        == [
            [1, 2],
            ["1", "KeyError(2)"],
            "KeyError('g')",
            "shielded",
            "TimeoutError",
            "timeout: CancelledError",
            0,
        ]
    )


class _BareYields:
    """An awaitable iterator (no send, no throw) that yields None ``n`` times (a bare
    yield: asyncio steps the task again at once), then returns."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __await__(self) -> _BareYields:
        return self

    def __iter__(self) -> _BareYields:
        return self

    def __next__(self) -> None:
        if self.n == 0:
            raise StopIteration(f"done after {self.n} left")
        self.n -= 1


class _Absorbs(_BareYields):
    """Also has send and throw; a thrown exception makes it return."""

    def send(self, value: Any) -> None:
        return self.__next__()

    def throw(self, exc: Any, *args: Any) -> None:
        raise StopIteration(f"absorbed {type(exc).__name__}, {self.n} left")


def test_iterators_with_and_without_throw_under_cancellation(asyncio_backend: str) -> None:
    async def scenario(wait: Wait) -> list[Any]:
        task = current_asyncio_task()
        log: list[Any] = [await wait(_BareYields(3))]
        for awaitable in [_BareYields(3), _Absorbs(3)]:
            task.cancel()
            try:
                log.append(await wait(awaitable))
            except asyncio.CancelledError:
                log.append(f"CancelledError, {awaitable.n} left")
            task.uncancel()
        return log

    native, portal = both(asyncio_backend, scenario)
    assert (
        native
        == portal
        == [
            "done after 0 left",
            "CancelledError, 2 left",
            "absorbed CancelledError, 2 left",
        ]
    )
