"""await_ next to AnyIO, on asyncio and on Trio: cancel scopes and timeouts, task groups,
threads, memory object streams, locks. Each scenario runs natively and through sync code
+ await_, and the observable logs must match."""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import anywait
import pytest
from portal_harness import (
    ANYIO_BACKENDS,
    Wait,
    available,
    both,
    cancelled_caught,
    run,
)


@pytest.fixture(params=ANYIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    reason = available(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


def frame_names(exc: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(exc.__traceback__)]


def leaves(exc: BaseException) -> list[str]:
    """The exceptions inside (nested) exception groups, as sorted reprs; AnyIO 3 raises a
    lone child exception as it is."""
    inner = getattr(exc, "exceptions", None)
    if inner is None:
        return [repr(exc)]
    return sorted(leaf for e in inner for leaf in leaves(e))


# --- AnyIO ----------------------------------------------------------------------------


def test_anyio_move_on_after_expires_inside_await_(anyio_backend: str) -> None:
    import anyio

    async def after_a_checkpoint() -> str:
        await anyio.sleep(0)
        return "not cancelled any more"

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []
        with anyio.move_on_after(0.01) as scope:
            try:
                await wait(anyio.sleep(10))
            except anyio.get_cancelled_exc_class():
                log.append("cancelled")
                raise
            finally:
                log.append(anyio.current_effective_deadline() <= anyio.current_time())
        log.append(cancelled_caught(scope))
        log.append(await wait(after_a_checkpoint()))
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal == ["cancelled", True, True, "not cancelled any more"]


def test_anyio_fail_after_raises_timeout_error_through_await_(anyio_backend: str) -> None:
    import anyio

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []
        try:
            with anyio.fail_after(0.01):
                try:
                    await wait(anyio.sleep(10))
                finally:
                    log.append("finally")
        except TimeoutError as exc:
            log.append(type(exc).__name__)
            log.append(isinstance(exc.__context__, anyio.get_cancelled_exc_class()))
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal == ["finally", "TimeoutError", True]


def test_anyio_cancel_scopes_entered_by_sync_code(anyio_backend: str) -> None:
    """Cancel scopes are sync context managers: sync code may open them around await_,
    as async code opens them around await."""
    import anyio

    async def native() -> list[Any]:
        log: list[Any] = []
        with anyio.move_on_after(0.005) as scope:
            await anyio.sleep(10)
        log.append(cancelled_caught(scope))
        with anyio.move_on_after(0.005) as outer:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.02)
                log.append("shielded sleep finished")
            log.append("outer scope still running")
            await anyio.sleep(0)
            log.append("not reached")
        log.append(cancelled_caught(outer))
        return log

    def legacy() -> list[Any]:
        log: list[Any] = []
        with anyio.move_on_after(0.005) as scope:
            anywait.await_(anyio.sleep(10))
        log.append(cancelled_caught(scope))
        with anyio.move_on_after(0.005) as outer:
            with anyio.CancelScope(shield=True):
                anywait.await_(anyio.sleep(0.02))
                log.append("shielded sleep finished")
            log.append("outer scope still running")
            anywait.await_(anyio.sleep(0))
            log.append("not reached")
        log.append(cancelled_caught(outer))
        return log

    async def through_portal() -> list[Any]:
        await anywait.ensure_portal()
        return legacy()

    assert run(anyio_backend, native) == run(anyio_backend, through_portal)
    assert run(anyio_backend, native) == [
        True,
        "shielded sleep finished",
        "outer scope still running",
        True,
    ]


def test_anyio_task_group_children_use_await_(anyio_backend: str) -> None:
    import anyio

    async def scenario(wait: Wait) -> list[str]:
        log: list[str] = []
        events = {name: anyio.Event() for name in "abc"}

        async def child(name: str, after: str | None) -> None:
            await wait.enter_task()  # a child needs a portal of its own
            if after is not None:
                await wait(events[after].wait())
            log.append(name)
            await wait(anyio.sleep(0))
            events[name].set()

        async with anyio.create_task_group() as group:
            group.start_soon(child, "c", "b")
            group.start_soon(child, "b", "a")
            group.start_soon(child, "a", None)
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal == ["a", "b", "c"]


def test_anyio_failing_child_cancels_siblings_blocked_in_await_(anyio_backend: str) -> None:
    import anyio

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []

        async def blocked() -> None:
            await wait.enter_task()
            try:
                await wait(anyio.sleep(10))
            except anyio.get_cancelled_exc_class():
                log.append("sibling cancelled")
                raise
            finally:
                log.append("sibling finally")

        async def failing() -> None:
            await wait.enter_task()
            await wait(anyio.sleep(0.005))
            raise KeyError("child failed")

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(blocked)
                group.start_soon(failing)
                await wait(anyio.sleep(10))
        except BaseException as exc:  # an ExceptionGroup on AnyIO 4
            log.append(leaves(exc))
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal
    assert native == ["sibling cancelled", "sibling finally", ["KeyError('child failed')"]]


def test_anyio_task_group_start_reports_from_sync_code(anyio_backend: str) -> None:
    import anyio

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []

        def report(task_status: Any) -> None:  # sync code in the child
            task_status.started("ready")

        async def service(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            await wait.enter_task()
            await wait(anyio.sleep(0))
            report(task_status)
            log.append("service after started()")
            await wait(anyio.sleep(0))
            log.append("service done")

        async with anyio.create_task_group() as group:
            log.append(await group.start(service))
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal
    assert sorted(native) == ["ready", "service after started()", "service done"]


def test_anyio_to_thread_run_sync_through_await_(anyio_backend: str) -> None:
    import anyio
    import anyio.to_thread

    def blocking(x: int) -> tuple[int, bool]:
        time.sleep(0.001)
        return 2 * x, threading.current_thread() is threading.main_thread()

    def failing() -> None:
        raise ValueError("in the worker thread")

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = [await wait(anyio.to_thread.run_sync(blocking, 21))]
        try:
            await wait(anyio.to_thread.run_sync(failing))
        except ValueError as exc:
            log.append((repr(exc), frame_names(exc)[-1]))
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal == [(42, False), ("ValueError('in the worker thread')", "failing")]


def test_anyio_from_thread_runs_sync_code_in_a_portal(anyio_backend: str) -> None:
    """A worker thread asks the loop to run sync code that uses await_ (with a portal of
    its own, on the loop's thread)."""
    import anyio
    import anyio.from_thread
    import anyio.to_thread

    def legacy(x: int) -> tuple[int, bool]:
        anywait.await_(anyio.sleep(0))
        return x + 1, threading.current_thread() is threading.main_thread()

    def in_worker_thread() -> tuple[int, bool]:
        result: tuple[int, bool] = anyio.from_thread.run(anywait.with_portal_run_sync, legacy, 41)
        return result

    async def main() -> tuple[int, bool]:
        result: tuple[int, bool] = await anyio.to_thread.run_sync(in_worker_thread)
        return result

    assert run(anyio_backend, main) == (42, True)


def test_anyio_memory_object_streams(anyio_backend: str) -> None:
    import anyio

    async def scenario(wait: Wait) -> list[str]:
        log: list[str] = []
        send, receive = anyio.create_memory_object_stream(0)

        async def producer() -> None:
            await wait.enter_task()
            async with send:
                for i in range(3):
                    await wait(send.send(i))
                    log.append(f"sent {i}")

        async def consumer() -> None:
            await wait.enter_task()
            async with receive:
                while True:
                    try:
                        item = await wait(receive.receive())
                    except anyio.EndOfStream:
                        log.append("end of stream")
                        break
                    log.append(f"got {item}")

        async with anyio.create_task_group() as group:
            group.start_soon(consumer)
            group.start_soon(producer)

        # A sender blocked in await_ when the receiving side is closed.
        send, receive = anyio.create_memory_object_stream(0)

        async def stuck_sender() -> None:
            await wait.enter_task()
            try:
                await wait(send.send("never received"))
            except anyio.BrokenResourceError:
                log.append("BrokenResourceError")

        async with anyio.create_task_group() as group:
            group.start_soon(stuck_sender)
            await wait(anyio.sleep(0.005))
            await wait(receive.aclose())
        await wait(send.aclose())
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal
    assert native[-2:] == ["end of stream", "BrokenResourceError"]
    assert sorted(native[:-2]) == sorted(
        [f"sent {i}" for i in range(3)] + [f"got {i}" for i in range(3)]
    )


def test_anyio_lock_contention(anyio_backend: str) -> None:
    import anyio

    async def scenario(wait: Wait) -> list[str]:
        log: list[str] = []
        lock = anyio.Lock()

        async def worker(name: str) -> None:
            await wait.enter_task()
            for _ in range(2):
                await wait(lock.acquire())
                try:
                    log.append(f"{name} in")
                    await wait(anyio.sleep(0))
                    log.append(f"{name} out")
                finally:
                    lock.release()

        async with anyio.create_task_group() as group:
            group.start_soon(worker, "a")
            group.start_soon(worker, "b")
        return log

    native, portal = both(anyio_backend, scenario)
    assert native == portal
    assert all(native[i].split()[0] == native[i + 1].split()[0] for i in range(0, 8, 2))
