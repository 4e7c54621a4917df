"""Stackful async generators (``@anywait.async_generator``) against native ones.

Each scenario has three twins: a native async generator, a stackful one whose body is
sync (``await_`` + ``yield_``, from a frame below the body), and a stackful one whose
body is async (``await`` + ``yield_``). The consumer is the same ``async`` code, with
no portal; what it observes must match, on every backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import anywait
import pytest
from anywait import await_, yield_
from portal_harness import (
    cancelled_exc_class,
    checkpoint,
    current_asyncio_task,
    family,
    has_cancel_scopes,
    move_on_after,
    run,
    sleep,
    task_group,
)

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def counters(backend: str, log: list[str]) -> list[Callable[[int], AsyncIterator[Any]]]:
    """Three twins yielding ``n`` values with a checkpoint before each, logging their
    ``finally`` and what they are sent."""

    async def native(n: int) -> AsyncIterator[Any]:
        try:
            for i in range(n):
                await sleep(backend, 0)
                got = yield f"{i}:{VAR.get()}"
                if got is not None:
                    log.append(f"got {got}")
        finally:
            log.append("finally")

    def item(i: int) -> None:
        await_(sleep(backend, 0))
        got = yield_(f"{i}:{VAR.get()}")
        if got is not None:
            log.append(f"got {got}")

    @anywait.async_generator
    def stackful_sync(n: int) -> None:
        try:
            for i in range(n):
                item(i)
        finally:
            log.append("finally")

    async def async_item(i: int) -> None:
        await sleep(backend, 0)
        got = yield_(f"{i}:{VAR.get()}")
        if got is not None:
            log.append(f"got {got}")

    @anywait.async_generator
    async def stackful_async(n: int) -> None:
        try:
            for i in range(n):
                await async_item(i)
        finally:
            log.append("finally")

    return [native, stackful_sync, stackful_async]


def all_twins(backend: str, scenario: Callable[[Any, list[str]], Any]) -> list[Any]:
    results = []
    for index in range(3):
        log: list[str] = []
        make = counters(backend, log)[index]

        async def main(make: Any = make, log: list[str] = log) -> Any:
            return await scenario(make, log), log

        results.append(run(backend, main))
    return results


def assert_all_equal(results: list[Any]) -> Any:
    assert results[1] == results[0], "sync-bodied twin differs from native"
    assert results[2] == results[0], "async-bodied twin differs from native"
    return results[0]


def test_values_send_and_finally(backend: str) -> None:
    async def scenario(make: Any, log: list[str]) -> Any:
        VAR.set("consumer")
        values = [item async for item in make(3)]
        gen = make(3)
        sent = [await gen.__anext__(), await gen.asend("hello"), await gen.asend(None)]
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
        return values, sent

    result = assert_all_equal(all_twins(backend, scenario))
    assert result[0][0] == ["0:consumer", "1:consumer", "2:consumer"]


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # Trio's, for every twin
def test_athrow_aclose_and_the_errors_of_misuse(backend: str) -> None:
    async def scenario(make: Any, log: list[str]) -> Any:
        seen: list[Any] = []
        gen = make(5)
        await gen.__anext__()
        try:
            await gen.athrow(KeyError("thrown"))
        except KeyError as exc:
            seen.append(repr(exc))
        seen.append(await gen.aclose())
        for call in (lambda: gen.asend(None), lambda: gen.athrow(KeyError("x")), gen.aclose):
            try:
                seen.append(await call())
            except BaseException as exc:
                seen.append(repr(exc))
        fresh = make(5)
        seen.append(await fresh.aclose())
        step = make(5).asend(None)
        await step
        try:
            await step
        except RuntimeError as exc:
            seen.append(str(exc))
        return seen

    result = assert_all_equal(all_twins(backend, scenario))
    assert "cannot reuse already awaited __anext__()/asend()" in result[0]


def test_running_generator_refuses_a_second_step(backend: str) -> None:
    async def scenario(make: Any, log: list[str]) -> Any:
        gen = make(3)
        seen: list[Any] = []
        async with task_group(backend) as tg:

            async def first() -> None:
                seen.append(await gen.__anext__())

            tg.start_soon(first)
            await checkpoint(backend)  # `first` is now inside the generator's await
            try:
                await gen.__anext__()
            except RuntimeError as exc:
                seen.append((str(exc), gen.ag_running))
        await gen.aclose()
        return seen

    assert_all_equal(all_twins(backend, scenario))


def test_aclosing_and_break(backend: str) -> None:
    async def scenario(make: Any, log: list[str]) -> Any:
        got = []
        async with contextlib.aclosing(make(10)) as gen:
            async for item in gen:
                got.append(item)
                if len(got) == 2:
                    break
        return got

    assert_all_equal(all_twins(backend, scenario))


def test_cancellation_inside_the_generator(backend: str) -> None:
    def twins(log: list[str]) -> list[Any]:
        exc_class = cancelled_exc_class(backend)

        async def native() -> AsyncIterator[int]:
            try:
                await sleep(backend, 10)
            except exc_class:
                log.append("cancelled inside")
                raise
            finally:
                log.append("finally")
            yield 1

        @anywait.async_generator
        def stackful_sync() -> None:
            try:
                await_(sleep(backend, 10))
            except exc_class:
                log.append("cancelled inside")
                raise
            finally:
                log.append("finally")
            yield_(1)

        @anywait.async_generator
        async def stackful_async() -> None:
            try:
                await sleep(backend, 10)
            except exc_class:
                log.append("cancelled inside")
                raise
            finally:
                log.append("finally")
            yield_(1)

        return [native, stackful_sync, stackful_async]

    results = []
    for index in range(3):
        log: list[str] = []

        async def main(index: int = index, log: list[str] = log) -> list[str]:
            make = twins(log)[index]  # the cancellation class is looked up in the run
            if has_cancel_scopes(backend):
                with move_on_after(backend, 0.01):
                    await make().__anext__()
                log.append("after scope")
            else:
                import asyncio

                task = current_asyncio_task()
                asyncio.get_running_loop().call_later(0.01, task.cancel)
                try:
                    await make().__anext__()
                except asyncio.CancelledError:
                    log.append("cancelled outside")
                    task.uncancel()
            return log

        results.append(run(backend, main))
    assert_all_equal(results)
    assert results[0][:2] == ["cancelled inside", "finally"]


def test_contextvars_are_the_consumers_task_context(backend: str) -> None:
    def twins() -> list[Any]:
        async def native() -> AsyncIterator[str]:
            yield VAR.get()
            VAR.set("set inside")
            yield VAR.get()

        @anywait.async_generator
        def stackful_sync() -> None:
            yield_(VAR.get())
            VAR.set("set inside")
            yield_(VAR.get())

        @anywait.async_generator
        async def stackful_async() -> None:
            yield_(VAR.get())
            VAR.set("set inside")
            yield_(VAR.get())

        return [native, stackful_sync, stackful_async]

    results = []
    for make in twins():

        async def main(make: Any = make) -> list[str]:
            VAR.set("consumer")
            gen = make()
            seen = [await gen.__anext__(), await gen.__anext__(), VAR.get()]
            await gen.aclose()
            return seen

        results.append(run(backend, main))
    assert_all_equal(results)


def test_an_unfinished_generator_is_finalized_by_the_loop(backend: str) -> None:
    async def awaiting_in_finally(log: list[str]) -> None:
        try:
            await checkpoint(backend)
            log.append("closed, awaited in finally")
        except cancelled_exc_class(backend):
            # Trio closes leftover async generators in a cancelled scope.
            log.append("closed, cancelled in finally")
            raise

    def twins(log: list[str]) -> list[Any]:
        async def native() -> AsyncIterator[int]:
            try:
                yield 1
                yield 2
            finally:
                await awaiting_in_finally(log)

        @anywait.async_generator
        def stackful_sync() -> None:
            try:
                yield_(1)
                yield_(2)
            finally:
                await_(awaiting_in_finally(log))

        @anywait.async_generator
        async def stackful_async() -> None:
            try:
                yield_(1)
                yield_(2)
            finally:
                await awaiting_in_finally(log)

        return [native, stackful_sync, stackful_async]

    results = []
    for index in range(3):
        log: list[str] = []
        make = twins(log)[index]
        kept: list[Any] = []

        async def main(make: Any = make, kept: list[Any] = kept) -> None:
            gen = make()
            kept.append(gen)  # alive until the run ends: the loop's shutdown closes it
            await gen.__anext__()

        run(backend, main)
        kept.clear()
        gc.collect()
        results.append(log)
    assert_all_equal(results)
    expected = "awaited" if family(backend) == "asyncio" else "cancelled"
    assert results[0] == [f"closed, {expected} in finally"]


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # Trio's, for both twins
def test_collected_mid_iteration_the_finalizer_closes_it(backend: str) -> None:
    async def awaiting_in_finally(log: list[str]) -> None:
        try:
            await checkpoint(backend)
            log.append("closed, awaited in finally")
        except cancelled_exc_class(backend):
            # Trio closes abandoned async generators in a cancelled scope.
            log.append("closed, cancelled in finally")
            raise

    def twins(log: list[str]) -> list[Any]:
        async def native() -> AsyncIterator[int]:
            try:
                yield 1
                yield 2
            finally:
                await awaiting_in_finally(log)

        @anywait.async_generator
        def stackful() -> None:
            try:
                yield_(1)
                yield_(2)
            finally:
                await_(awaiting_in_finally(log))

        return [native, stackful]

    results = []
    for index in range(2):
        log: list[str] = []

        async def main(index: int = index, log: list[str] = log) -> list[str]:
            g = twins(log)[index]()
            await g.__anext__()
            del g
            gc.collect()
            for _ in range(20):
                await sleep(backend, 0)
            return list(log)

        results.append(run(backend, main))
    expected = "awaited" if family(backend) == "asyncio" else "cancelled"
    assert results[0] == results[1] == [f"closed, {expected} in finally"]


def test_pep_525_and_ignored_generator_exit() -> None:
    async def native_stop() -> AsyncIterator[int]:
        yield 1
        raise StopAsyncIteration

    @anywait.async_generator
    def stackful_stop() -> None:
        yield_(1)
        raise StopAsyncIteration

    async def native_ignores() -> AsyncIterator[int]:
        try:
            yield 1
        except GeneratorExit:
            yield 2

    @anywait.async_generator
    def stackful_ignores() -> None:
        try:
            yield_(1)
        except GeneratorExit:
            yield_(2)

    async def main(stop: Any, ignores: Any) -> list[str]:
        seen = []
        gen = stop()
        await gen.__anext__()
        try:
            await gen.__anext__()
        except RuntimeError as exc:
            seen.append(str(exc))
        gen = ignores()
        await gen.__anext__()
        try:
            await gen.aclose()
        except RuntimeError as exc:
            seen.append(str(exc))
        return seen

    native = run("asyncio", lambda: main(native_stop, native_ignores))
    stackful = run("asyncio", lambda: main(stackful_stop, stackful_ignores))
    assert native == stackful
    assert family("asyncio") == "asyncio"


def test_the_decorator_refuses_native_generators() -> None:
    async def native() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator function already"):
        anywait.async_generator(native)
    with pytest.raises(TypeError, match="needs a function"):
        anywait.async_generator(None)  # type: ignore[arg-type]
    import collections.abc

    @anywait.async_generator
    def body() -> None:
        yield_(1)

    assert isinstance(body(), collections.abc.AsyncGenerator)


def test_steps_held_awaited_again_and_the_generator_freed_by_refcount(backend: str) -> None:
    # anywait reuses a finished __anext__ step that nothing else holds; what user code
    # can observe of steps (and of the generator's lifetime) must stay native.
    async def scenario(make: Any, log: list[str]) -> Any:
        import weakref

        seen: list[Any] = []
        gen = make(4)
        held = gen.__anext__()
        seen.append(await held)
        with contextlib.suppress(RuntimeError):
            await held
            seen.append("awaited twice")
        seen.append(await gen.__anext__())  # a step while `held` is still alive
        second = gen.__anext__()
        seen.append(second is held)
        seen.append(await second)
        del held, second
        seen.append(await gen.__anext__())
        with contextlib.suppress(StopAsyncIteration):
            await gen.__anext__()
        with contextlib.suppress(StopAsyncIteration):
            await gen.__anext__()
            seen.append("more")
        alive = weakref.ref(gen)
        del gen
        seen.append(alive() is None)  # no GC needed: nothing keeps it in a cycle
        return seen

    seen, log = assert_all_equal(all_twins(backend, scenario))
    assert seen[-1] is True
    assert log == ["finally"]
