"""await_ of asyncio's futures and its combinators (gather, shield, wait_for, timeouts)
and of iterators under cancellation: each scenario runs natively and through sync
frames + await_, and the observable traces must match."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from typing import Any

import pytest
from portal_harness import (
    ASYNCIO_BACKENDS,
    Wait,
    both,
    current_asyncio_task,
    require,
)

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
