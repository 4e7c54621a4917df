"""await_ next to Trio's own objects: events, wait_task_rescheduled and its abort
function, threads, and KeyboardInterrupt protection. Each scenario runs natively and
through sync code + await_, and the observable logs must match."""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import anywait
import pytest
from portal_harness import (
    TRIO_BACKENDS,
    Wait,
    available,
    both,
    task_group,
)


@pytest.fixture(params=TRIO_BACKENDS)
def trio_backend(request: pytest.FixtureRequest) -> str:
    reason = available(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


def frame_names(exc: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(exc.__traceback__)]


# --- Trio -----------------------------------------------------------------------------


def test_trio_event_and_wait_all_tasks_blocked(trio_backend: str) -> None:
    import trio
    import trio.testing

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []
        event = trio.Event()

        async def waiter(name: str) -> None:
            await wait.enter_task()
            await wait(event.wait())
            log.append(f"{name} woke")

        async with task_group(trio_backend) as group:
            group.start_soon(waiter, "a")
            group.start_soon(waiter, "b")
            # Tasks blocked in await_ count as blocked, as tasks blocked in await do.
            await wait(trio.testing.wait_all_tasks_blocked())
            log.append(event.statistics().tasks_waiting)
            event.set()
        log.append(sorted(log.pop() for _ in range(2)))
        return log

    native, portal = both(trio_backend, scenario)
    assert native == portal == [2, ["a woke", "b woke"]]


def test_trio_wait_task_rescheduled_and_its_abort_function(trio_backend: str) -> None:
    import outcome
    import trio

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []
        task = trio.lowlevel.current_task()

        def abort(raise_cancel: Any) -> Any:
            log.append("abort called")
            return trio.lowlevel.Abort.SUCCEEDED

        async def reschedule(result: Any) -> None:
            trio.lowlevel.reschedule(task, result)

        async with task_group(trio_backend) as group:
            group.start_soon(reschedule, outcome.Value(42))
            log.append(await wait(trio.lowlevel.wait_task_rescheduled(abort)))
            group.start_soon(reschedule, outcome.Error(KeyError("rescheduled with an error")))
            try:
                await wait(trio.lowlevel.wait_task_rescheduled(abort))
            except KeyError as exc:
                log.append(repr(exc))
        with trio.move_on_after(0.005) as scope:
            await wait(trio.lowlevel.wait_task_rescheduled(abort))
        log.append(scope.cancelled_caught)

        async def whoami() -> bool:
            return trio.lowlevel.current_task() is task

        log.append(await wait(whoami()))
        return log

    native, portal = both(trio_backend, scenario)
    assert native == portal
    assert native == [42, "KeyError('rescheduled with an error')", "abort called", True, True]


def test_trio_threads_through_await_(trio_backend: str) -> None:
    import trio

    def legacy() -> str:
        anywait.await_(trio.sleep(0))
        return "ran on the loop"

    def in_thread() -> tuple[str, bool]:
        result = trio.from_thread.run(anywait.with_portal_run_sync, legacy)
        return result, threading.current_thread() is threading.main_thread()

    async def scenario(wait: Wait) -> Any:
        return await wait(trio.to_thread.run_sync(in_thread))

    native, portal = both(trio_backend, scenario)
    assert native == portal == ("ran on the loop", False)


@pytest.fixture
def default_sigint_handler() -> Iterator[None]:
    """Trio only takes over SIGINT if the handler is Python's default one."""
    saved = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


def both_catching_interrupts(backend: str, scenario: Callable[[Wait], Any]) -> tuple[Any, Any]:
    """``both``, but a KeyboardInterrupt that escapes fails the test instead of ending
    the whole pytest session."""
    try:
        return both(backend, scenario)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the event loop")


@pytest.mark.usefixtures("default_sigint_handler")
@pytest.mark.parametrize("sender", ["protected task", "thread"])
def test_trio_sigint_while_blocked_in_await__raises_there(trio_backend: str, sender: str) -> None:
    """SIGINT arrives while the main task is blocked in await_(trio.sleep(...)): Trio
    defers it (the run loop is KI-protected) and delivers KeyboardInterrupt to the main
    task where it is blocked, exactly as when it is blocked in ``await``."""
    import trio
    import trio.testing

    def send_sigint() -> None:
        signal.raise_signal(signal.SIGINT)

    @trio.lowlevel.enable_ki_protection
    async def interrupt_once_all_are_blocked(send: Callable[[], None]) -> None:
        await trio.testing.wait_all_tasks_blocked()  # the main task is in trio.sleep(10)
        send()

    def sigint_from_a_thread() -> Callable[[], None]:
        go = threading.Event()
        thread = threading.Thread(target=lambda: go.wait() and os.kill(os.getpid(), signal.SIGINT))
        thread.start()
        return go.set

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []
        send = sigint_from_a_thread() if sender == "thread" else send_sigint
        async with task_group(trio_backend) as group:
            group.start_soon(interrupt_once_all_are_blocked, send)
            try:
                await wait(trio.sleep(10))
            except KeyboardInterrupt as exc:
                names = frame_names(exc)
                log.append(names[names.index("sleep") :])
        log.append("main task carried on")
        return log

    native, portal = both_catching_interrupts(trio_backend, scenario)
    assert native == portal
    assert native[-1] == "main task carried on"
    assert native[0][0] == "sleep"


@pytest.mark.usefixtures("default_sigint_handler")
def test_trio_ki_protection_seen_by_sync_code(trio_backend: str) -> None:
    """Sync code (and code it awaits) inherits the KI protection of the async function
    that called it; a SIGINT raised in protected sync code is deferred to the main
    task's next checkpoint, one raised in unprotected code interrupts at once."""
    import trio

    async def scenario(wait: Wait) -> list[Any]:
        log: list[Any] = []

        def report(where: str) -> None:
            log.append((where, trio.lowlevel.currently_ki_protected()))

        async def awaited() -> None:
            report("awaited from protected code")

        def interrupt(where: str) -> None:
            signal.raise_signal(signal.SIGINT)
            log.append(f"{where}: still running after SIGINT")

        @trio.lowlevel.enable_ki_protection
        async def protected() -> None:
            report("protected")
            await wait(trio.lowlevel.cancel_shielded_checkpoint())
            report("protected after a checkpoint")
            await wait(awaited())
            interrupt("protected")

        @trio.lowlevel.disable_ki_protection
        async def unprotected() -> None:
            report("unprotected")
            try:
                interrupt("unprotected")
            except KeyboardInterrupt:
                log.append("unprotected: KeyboardInterrupt at the signal")

        report("task")
        await protected()
        try:
            await wait(trio.lowlevel.checkpoint())
        except KeyboardInterrupt:
            log.append("deferred KeyboardInterrupt at the next checkpoint")
        await unprotected()
        return log

    native, portal = both_catching_interrupts(trio_backend, scenario)
    assert native == portal
    assert native == [
        ("task", False),
        ("protected", True),
        ("protected after a checkpoint", True),
        ("awaited from protected code", True),
        "protected: still running after SIGINT",
        "deferred KeyboardInterrupt at the next checkpoint",
        ("unprotected", False),
        "unprotected: KeyboardInterrupt at the signal",
    ]
