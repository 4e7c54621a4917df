"""How a running task enters the portal `ensure_portal` gives it.

``ensure_portal()`` is a checkpoint every time, as greenback documents: a schedule
point and a cancellation point (Trio's ``checkpoint()``; on asyncio a bare yield). When
it installs a portal, that yield is what moves the task into it. What a task waits on
after that first portal step must stay reachable the way a native wait is:
``Task.cancel()`` cancels it, the task's repr names it, and nothing of it outlives the
task.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import weakref
from typing import Any

import anywait
import pytest
from portal_harness import (
    ASYNCIO_BACKENDS,
    cancelled_caught,
    current_task,
    family,
    has_cancel_scopes,
    move_on_after,
    require,
    run,
    sleep,
    task_group,
)


@pytest.fixture(params=ASYNCIO_BACKENDS)
def asyncio_backend(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


@pytest.mark.parametrize("has_one", [False, True], ids=["installs", "has-one"])
def test_ensure_portal_is_a_schedule_point_every_time(backend: str, has_one: bool) -> None:
    async def main() -> list[str]:
        log: list[str] = []

        async def other() -> None:
            log.append("other ran")

        if has_one:
            await anywait.ensure_portal()
        async with task_group(backend) as group:
            group.start_soon(other)
            while not log:  # until `other` has run; now it is our turn alone
                await sleep(backend, 0)
            log.clear()
            group.start_soon(other)
            await anywait.ensure_portal()
            log.append(f"after ensure_portal, has_portal={anywait.has_portal()}")
        return log

    log = run(backend, main)
    if family(backend) == "trio":
        log.sort()  # a schedule point: Trio runs the batch of ready tasks in any order
        assert log == ["after ensure_portal, has_portal=True", "other ran"]
    else:
        assert log == ["other ran", "after ensure_portal, has_portal=True"]


@pytest.mark.parametrize("has_one", [False, True], ids=["installs", "has-one"])
def test_ensure_portal_is_a_cancellation_point_every_time(backend: str, has_one: bool) -> None:
    """A cancel requested before ``ensure_portal()`` is delivered at it, as at any
    checkpoint; a portal it installs on the way stays (the task can use it if it goes
    on)."""

    async def main() -> list[Any]:
        log: list[Any] = []
        if has_one:
            await anywait.ensure_portal()
        if has_cancel_scopes(backend):
            with move_on_after(backend, 0) as scope:
                await anywait.ensure_portal()
                log.append("not cancelled")
            log.append(cancelled_caught(scope))
        else:
            current_task(backend).cancel()
            try:
                await anywait.ensure_portal()
                log.append("not cancelled")
            except asyncio.CancelledError:
                current_task(backend).uncancel()
                log.append(True)
        log.append(anywait.has_portal())
        anywait.await_(sleep(backend, 0))
        return log

    assert run(backend, main) == [True, True]


def test_ensure_portal_passes_trio_assert_checkpoints() -> None:
    require("trio")
    import trio
    import trio.testing

    async def main() -> bool:
        with trio.testing.assert_checkpoints():
            await anywait.ensure_portal()  # installs
        with trio.testing.assert_checkpoints():
            await anywait.ensure_portal()  # has one
        with trio.testing.assert_no_checkpoints():
            anywait.has_portal()
        return anywait.has_portal()

    assert trio.run(main) is True


def test_ensure_portal_inside_a_scoped_portal_is_still_a_checkpoint(backend: str) -> None:
    async def main() -> list[str]:
        log: list[str] = []

        async def other() -> None:
            log.append("other ran")

        async def scoped() -> None:
            async with task_group(backend) as group:
                group.start_soon(other)
                await anywait.ensure_portal()
                log.append("after ensure_portal")

        await anywait.with_portal_run(scoped)
        return log

    log = run(backend, main)
    assert sorted(log) == ["after ensure_portal", "other ran"]
    if family(backend) == "asyncio":
        assert log == ["other ran", "after ensure_portal"]


def test_cancel_reaches_the_future_the_first_portal_step_waits_on(asyncio_backend: str) -> None:
    async def main() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        log: list[str] = []

        def legacy() -> None:
            try:
                anywait.await_(future)
            finally:
                log.append("finally ran")

        async def child() -> None:
            await anywait.ensure_portal()
            legacy()

        task = asyncio.ensure_future(child())
        for _ in range(3):
            await asyncio.sleep(0)
        waiting_repr = repr(task)
        assert task.cancel("stop it")
        try:
            await task
        except asyncio.CancelledError as exc:
            outcome = ("cancelled", exc.args)
        return waiting_repr, future.cancelled(), outcome, log

    waiting_repr, future_cancelled, outcome, log = run(asyncio_backend, main)
    assert "wait_for=<Future pending" in waiting_repr
    assert future_cancelled
    assert outcome == ("cancelled", ("stop it",))
    assert log == ["finally ran"]


def test_keyboard_interrupt_in_the_first_portal_step_leaves_the_loop_as_native_does(
    asyncio_backend: str,
) -> None:
    def interrupted(portal: bool) -> list[str]:
        log: list[str] = []

        async def main() -> None:
            if portal:
                await anywait.ensure_portal()
            else:
                await asyncio.sleep(0)
            log.append(f"task is current: {current_task(asyncio_backend) is not None}")
            raise KeyboardInterrupt

        try:
            run(asyncio_backend, main)
        except KeyboardInterrupt:
            log.append("KeyboardInterrupt out of the loop")
        return log

    assert (
        interrupted(portal=False)
        == interrupted(portal=True)
        == [
            "task is current: True",
            "KeyboardInterrupt out of the loop",
        ]
    )


def test_what_the_first_portal_step_waits_on_does_not_outlive_the_task(
    asyncio_backend: str,
) -> None:
    """Over batches of fresh tasks whose first portal step waits on a future (cancelled
    or resolved), blocks and, on debug builds, references grow no more than for the
    same tasks awaiting natively (uvloop itself leaks references on some debug builds)."""

    async def batch(portal: bool, n: int, alive: set[weakref.ref[Any]]) -> None:
        loop = asyncio.get_running_loop()

        async def child(future: asyncio.Future[int]) -> int:
            if not portal:
                return await future
            await anywait.ensure_portal()
            return int(anywait.await_(future))

        for i in range(n):
            future: asyncio.Future[int] = loop.create_future()
            alive.add(weakref.ref(future, alive.discard))
            task = asyncio.ensure_future(child(future))
            await asyncio.sleep(0)
            if i % 2:
                future.set_result(i)
                assert await task == i
            else:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            del future, task

    def measure() -> int:
        gc.collect()
        total = getattr(sys, "gettotalrefcount", None)
        return int(total()) if total is not None else sys.getallocatedblocks()

    def growth(portal: bool) -> float:
        found: list[int] = []
        alive: set[weakref.ref[Any]] = set()  # the futures not yet freed

        async def main() -> None:
            await batch(portal, 600, alive)  # warm-up: free lists, pools, dict sizes settle
            for _ in range(5):
                before = measure()
                await batch(portal, 200, alive)
                found.append(measure() - before)

        run(asyncio_backend, main)
        gc.collect()
        assert not alive
        return statistics.median(found)

    native = growth(portal=False)
    # One leaked block (or reference) per task would add 200 per batch; the rest is
    # the loop's and the test's own churn.
    assert growth(portal=True) - native <= 50, native
