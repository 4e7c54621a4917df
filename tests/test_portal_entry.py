"""How a running task enters the portal `ensure_portal` gives it.

An asyncio C Task (also uvloop's) takes its next step at once, from inside the step
that called ``ensure_portal`` (see crates/anywait-py/src/immediate_step.rs); Trio tasks
and pure-Python asyncio tasks yield once. What a task waits on after that first portal
step must stay reachable the way a native wait is: ``Task.cancel()`` cancels it, the
task's repr names it, and nothing of it outlives the task.
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
from anywait._anywait import _ImmediateStep
from portal_harness import (
    ASYNCIO_BACKENDS,
    current_task,
    family,
    portal_entry_yields,
    require,
    run,
    sleep,
    task_group,
)


@pytest.fixture(params=ASYNCIO_BACKENDS)
def asyncio_backend(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


def test_entering_a_portal_lets_other_tasks_run_only_where_it_must_yield(backend: str) -> None:
    async def main() -> tuple[bool, list[str]]:
        log: list[str] = []

        async def other() -> None:
            log.append("other ran")

        async with task_group(backend) as group:
            group.start_soon(other)
            await sleep(backend, 0)  # `other` has run; now it is our turn alone
            log.clear()
            group.start_soon(other)
            yields = portal_entry_yields(backend)
            await anywait.ensure_portal()
            log.append("entered")
            assert anywait.has_portal()
        return yields, log

    yields, log = run(backend, main)
    expected_yields = family(backend) == "trio" or backend == "asyncio-pytask"
    assert yields == expected_yields
    if yields:
        # A schedule point: `other` may run first (Trio orders a batch as it likes).
        assert sorted(log) == ["entered", "other ran"]
        if backend == "asyncio-pytask":
            assert log == ["other ran", "entered"]
    else:
        assert log == ["entered", "other ran"]


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


def test_a_cancel_requested_before_ensure_portal_is_delivered_at_it(backend: str) -> None:
    async def main() -> str:
        if family(backend) == "trio":
            # Trio cancels at cancellation points; ensure_portal() is never one.
            return "not applicable"
        current_task(backend).cancel()
        try:
            await anywait.ensure_portal()
        except asyncio.CancelledError:
            return "cancelled at ensure_portal()"
        return "not cancelled"

    if family(backend) == "trio":
        assert run(backend, main) == "not applicable"
        return
    assert run(backend, main) == "cancelled at ensure_portal()"


def test_keyboard_interrupt_in_the_first_portal_step_leaves_the_loop_as_native_does(
    asyncio_backend: str,
) -> None:
    def interrupted(portal: bool) -> list[str]:
        log: list[str] = []

        async def main() -> None:
            if portal:
                await anywait.ensure_portal()
            elif portal_entry_yields(asyncio_backend):
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


def test_the_step_object_acts_as_a_finished_future_for_anyone_else() -> None:
    """Only the waiting task's own wakeup runs at once; any other callback is scheduled,
    as a finished future schedules it."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        step = _ImmediateStep(loop, asyncio.current_task())
        assert step.done()
        assert step.get_loop() is loop
        step.add_done_callback(lambda f: log.append(f"called with the step: {f is step}"))
        log.append("added")
        await asyncio.sleep(0)
        assert step.cancel() is False
        return log

    assert asyncio.run(main()) == ["added", "called with the step: True"]
