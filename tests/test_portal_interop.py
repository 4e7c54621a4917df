"""await_ next to the libraries and interpreter features that a portal task meets in real
programs: AnyIO (on asyncio and on Trio), Trio's own objects and its KeyboardInterrupt
protection, asyncio's eager tasks, and greenlet. Each scenario runs natively and
through sync code + await_ where both exist, and the observable logs must match."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import anywait
import pytest
from portal_harness import (
    ANYIO_BACKENDS,
    TRIO_BACKENDS,
    Wait,
    available,
    both,
    cancelled_caught,
    run,
    task_group,
)

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=ANYIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    reason = available(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


@pytest.fixture(params=TRIO_BACKENDS)
def trio_backend(request: pytest.FixtureRequest) -> str:
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


# --- asyncio eager tasks (3.12+) -------------------------------------------------------

needs_eager_tasks = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.eager_task_factory is new in Python 3.12"
)

EAGER_BACKENDS = ["asyncio", "asyncio-pytask", "uvloop"]


def eager_loop_factory(backend: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop whose task factory starts tasks eagerly (C or pure-Python Tasks)."""

    def make() -> asyncio.AbstractEventLoop:
        if backend == "uvloop":
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        if backend == "asyncio-pytask":
            loop.set_task_factory(asyncio.create_eager_task_factory(asyncio.tasks._PyTask))
        else:
            loop.set_task_factory(asyncio.eager_task_factory)
        return loop

    return make


def eager_unsupported(backend: str) -> str | None:
    """Why the backend's loop does not start tasks eagerly here, if it does not."""
    if sys.version_info < (3, 12):
        return None
    started: list[bool] = []

    async def child() -> None:
        started.append(True)

    async def probe() -> bool:
        task = asyncio.get_running_loop().create_task(child())
        eager = bool(started)
        await task
        return eager

    loop = eager_loop_factory(backend)()
    coro = probe()
    try:
        if not loop.run_until_complete(coro):
            return f"{type(loop).__module__} does not start tasks eagerly with an eager factory"
    except TypeError as exc:  # uvloop 0.23 on 3.13.0
        coro.close()
        return (
            f"{type(loop).__module__} calls the task factory with eager_start=, which this "
            f"Python's asyncio.eager_task_factory does not take ({exc})"
        )
    finally:
        loop.close()
    return None


@pytest.fixture(params=EAGER_BACKENDS)
def eager_backend(request: pytest.FixtureRequest) -> str:
    reason = available(request.param) or eager_unsupported(request.param)
    if reason is not None:
        pytest.skip(reason)
    return str(request.param)


def run_eager(backend: str, main: Callable[[], Any]) -> Any:
    with asyncio.Runner(loop_factory=eager_loop_factory(backend)) as runner:
        return runner.run(main())


@needs_eager_tasks
def test_eager_task_gets_a_portal_during_its_eager_first_step(eager_backend: str) -> None:
    async def value(x: str) -> str:
        await asyncio.sleep(0.001)
        return x

    def scenario(wait: Wait) -> Callable[[], Any]:
        async def main() -> list[str]:
            log: list[str] = []

            async def child() -> str:
                log.append("child's eager first step")
                await wait.enter_task()  # ensure_portal() while running eagerly
                log.append("child's second step")
                log.append(await wait(value("awaited")))
                return "child done"

            task = asyncio.create_task(child())
            log.append(f"created, done={task.done()}")
            log.append(await task)
            return log

        return main

    native = run_eager(eager_backend, scenario(Wait(eager_backend, portal=False)))
    portal = run_eager(eager_backend, scenario(Wait(eager_backend, portal=True)))
    assert native == portal
    # ensure_portal() is a checkpoint: the eager step ends there, and the creator
    # resumes before the child's second step (which is its first in the portal).
    assert native == [
        "child's eager first step",
        "created, done=False",
        "child's second step",
        "awaited",
        "child done",
    ]


@needs_eager_tasks
def test_anywait_run_with_eager_tasks(eager_backend: str) -> None:
    """anywait.run wraps the loop's eager task factory: every task has a portal from
    its eager first step, which runs inside the creating task's step."""

    async def immediate(x: int) -> int:
        return x

    async def later(x: int) -> int:
        await asyncio.sleep(0.001)
        return x

    def scenario(portal: bool) -> Callable[[], Any]:
        def legacy(aw: Any) -> Any:
            return anywait.await_(aw)

        async def wait(aw: Any) -> Any:
            return legacy(aw) if portal else await aw

        async def main() -> tuple[list[Any], set[bool]]:
            log: list[Any] = []
            portals: set[bool] = set()

            async def quick(x: int) -> int:
                portals.add(anywait.has_portal())
                log.append(f"quick {x} starts")
                result: int = await wait(immediate(x))
                log.append(f"quick {x} ends")
                return result

            async def slow(x: int) -> int:
                portals.add(anywait.has_portal())
                log.append(f"slow {x} starts")
                result: int = await wait(later(x))
                log.append(f"slow {x} resumes")
                return result

            quick_task = asyncio.create_task(quick(1))
            log.append(f"quick created, done={quick_task.done()}")
            slow_task = asyncio.create_task(slow(2))
            log.append(f"slow created, done={slow_task.done()}")
            log += [await quick_task, await slow_task]
            gathered = asyncio.gather(slow(3))  # wraps slow(3) in a task: it starts at once
            log.append(f"gathered, done={gathered.done()}")
            log += await gathered
            return log, portals

        return main

    native, native_portals = run_eager(eager_backend, scenario(portal=False))
    portal, portals = anywait.run(
        scenario(portal=True), loop_factory=eager_loop_factory(eager_backend)
    )
    assert native == portal
    assert native[:5] == [
        "quick 1 starts",
        "quick 1 ends",
        "quick created, done=True",
        "slow 2 starts",
        "slow created, done=False",
    ]
    assert (native_portals, portals) == ({False}, {True})


# --- greenlet (in child interpreters: a mistake crashes) -------------------------------


@pytest.fixture
def greenlet_scenario(run_scenario: Runner) -> Callable[..., list[str]]:
    reason = _greenlet_unavailable()
    if reason is not None:
        pytest.skip(reason)

    def run_case(case: str, backend: str = "asyncio") -> list[str]:
        result = run_scenario("portal_greenlet", case, backend)
        assert result.stdout.splitlines()[-1] == f"ok {case}"
        return result.stdout.splitlines()

    return run_case


def _greenlet_unavailable() -> str | None:
    try:
        import greenlet  # noqa: F401
    except ImportError as exc:
        return f"greenlet cannot be imported here: {exc}"
    return None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    "case",
    [
        "await__inside_a_greenlet",
        "await__in_the_parent_while_a_greenlet_is_suspended",
        "sqlalchemy_greenlet_spawn_in_one_portal_task",
        "await__in_a_greenlet_runs_in_the_greenlets_context",
    ],
)
def test_greenlet_in_one_portal_task(
    greenlet_scenario: Callable[..., list[str]], case: str, backend: str
) -> None:
    if backend == "trio" and available("trio") is not None:
        pytest.skip(str(available("trio")))
    greenlet_scenario(case, backend)


@pytest.mark.parametrize(
    "case",
    [
        "other_tasks_see_their_own_current_greenlet",
        "two_tasks_each_suspend_inside_a_greenlet",
        "a_plain_task_uses_greenlets_while_a_portal_task_is_suspended_in_one",
    ],
)
def test_greenlet_await__inside_greenlets_of_concurrent_tasks(
    greenlet_scenario: Callable[..., list[str]], case: str
) -> None:
    greenlet_scenario(case)


def test_greenlet_sqlalchemy_pattern_with_concurrent_portal_tasks(
    greenlet_scenario: Callable[..., list[str]],
) -> None:
    greenlet_scenario("sqlalchemy_greenlet_spawn_with_concurrent_portal_tasks")
