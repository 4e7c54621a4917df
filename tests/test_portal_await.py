"""await_ behaves as `await` would at that point: each scenario runs natively and
through sync frames + await_, on every backend, and the observable traces must match."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import traceback
from typing import Any

import anywait
import pytest
from portal_harness import (
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


@pytest.mark.scale
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
