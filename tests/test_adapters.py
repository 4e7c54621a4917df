"""The helpers around await_: autoawait, decorate_as_sync, async_context, async_iter,
and the tree scopes (portals_for_children, portals_for_tree, with_portal_run_tree).
Where a helper stands in for a native construct (``async with``, ``async for``), the
scenario runs both ways and the observable results must match."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anywait
import pytest
from portal_harness import require, run, sleep


def on_trio(backend: str) -> bool:
    return backend.endswith("trio")


def with_portal(backend: str, main: Callable[[], Awaitable[Any]]) -> Any:
    async def wrapped() -> Any:
        await anywait.ensure_portal()
        return await main()

    return run(backend, wrapped)


# --- autoawait, decorate_as_sync ------------------------------------------------------


def test_autoawait_makes_a_property_out_of_an_async_function(backend: str) -> None:
    class Remote:
        @property
        @anywait.autoawait
        async def value(self) -> int:
            """The remote value."""
            await sleep(backend, 0)
            return 7

    async def main() -> tuple[int, str | None]:
        return Remote().value, Remote.value.fget.__doc__  # type: ignore[attr-defined]

    assert with_portal(backend, main) == (7, "The remote value.")


def test_autoawait_raises_what_the_async_function_raises(backend: str) -> None:
    @anywait.autoawait
    async def fails() -> None:
        await sleep(backend, 0)
        raise LookupError("missing")

    async def main() -> str:
        try:
            fails()
        except LookupError as exc:
            return repr(exc)
        return "no exception"

    assert with_portal(backend, main) == "LookupError('missing')"


def test_decorate_as_sync_caches_results_not_coroutines(backend: str) -> None:
    calls: list[int] = []

    @anywait.decorate_as_sync(functools.lru_cache(maxsize=None))
    async def square(x: int) -> int:
        calls.append(x)
        await sleep(backend, 0)
        return x * x

    async def main() -> list[int]:
        # No portal in this task: decorate_as_sync brings its own.
        assert not anywait.has_portal()
        return [await square(3), await square(3), await square(4)]

    assert run(backend, main) == [9, 9, 16]
    assert calls == [3, 4]


# --- async_context --------------------------------------------------------------------


def make_resource(log: list[str], backend: str, *, suppress: bool = False) -> Any:
    @asynccontextmanager
    async def resource(name: str) -> AsyncIterator[str]:
        await sleep(backend, 0)
        log.append(f"enter {name}")
        try:
            yield name.upper()
        except KeyError as exc:
            log.append(f"saw {exc!r}")
            if not suppress:
                raise
        finally:
            await sleep(backend, 0)
            log.append(f"exit {name}")

    return resource


@pytest.mark.parametrize("suppress", [False, True])
def test_async_context_behaves_as_async_with(backend: str, suppress: bool) -> None:
    def scenario(use_sync: bool) -> list[str]:
        log: list[str] = []
        resource = make_resource(log, backend, suppress=suppress)

        def sync_body() -> None:
            with anywait.async_context(resource("a")) as value:
                log.append(f"body {value}")
                raise KeyError("k")

        async def native_body() -> None:
            async with resource("a") as value:
                log.append(f"body {value}")
                raise KeyError("k")

        async def main() -> None:
            try:
                if use_sync:
                    sync_body()
                else:
                    await native_body()
                log.append("no exception")
            except KeyError as exc:
                log.append(f"raised {exc!r}")

        with_portal(backend, main)
        return log

    assert scenario(use_sync=True) == scenario(use_sync=False)


class OnlyEnter:
    async def __aenter__(self) -> None:
        pass


class OnlyExit:
    async def __aexit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("obj", [1, OnlyEnter(), OnlyExit()], ids=["int", "enter", "exit"])
def test_async_context_refuses_what_async_with_refuses(obj: Any) -> None:
    async def native() -> str:
        try:
            async with obj:
                pass
        except TypeError as exc:
            return str(exc)
        return "accepted"

    async def sync() -> str:
        try:
            with anywait.async_context(obj):
                pass
        except TypeError as exc:
            return str(exc)
        return "accepted"

    assert with_portal("asyncio", sync) == asyncio.run(native())


# --- async_iter -----------------------------------------------------------------------


def test_async_iter_behaves_as_async_for(backend: str) -> None:
    async def numbers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await sleep(backend, 0)
            yield i

    async def native() -> list[int]:
        return [i async for i in numbers(4)]

    async def sync() -> list[int]:
        return list(anywait.async_iter(numbers(4)))

    assert with_portal(backend, sync) == run(backend, native) == [0, 1, 2, 3]


def test_async_iter_of_an_async_generator_speaks_the_generator_protocol(backend: str) -> None:
    log: list[str] = []

    async def echo() -> Any:
        received = None
        try:
            while True:
                await sleep(backend, 0)
                try:
                    received = yield received
                except ValueError as exc:
                    received = f"caught {exc}"
        finally:
            await sleep(backend, 0)
            log.append("closed")

    async def main() -> list[Any]:
        gen = anywait.async_iter(echo())
        out = [next(gen), gen.send("a"), gen.throw(ValueError("v"))]  # type: ignore[attr-defined]
        gen.close()  # type: ignore[attr-defined]
        return out

    assert with_portal(backend, main) == [None, "a", "caught v"]
    assert log == ["closed"]


def test_async_iter_ends_with_stop_iteration_and_plain_iterators_have_no_send(
    backend: str,
) -> None:
    class Countdown:
        def __init__(self, n: int) -> None:
            self.n = n

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            await sleep(backend, 0)
            if self.n == 0:
                raise StopAsyncIteration
            self.n -= 1
            return self.n

    async def main() -> tuple[list[int], bool, str]:
        it = anywait.async_iter(Countdown(2))
        items = [next(it), next(it)]
        try:
            next(it)
            ended = "no"
        except StopIteration:
            ended = "StopIteration"
        return items, hasattr(it, "send"), ended

    assert with_portal(backend, main) == ([1, 0], False, "StopIteration")


def test_async_iter_refuses_what_async_for_refuses() -> None:
    class BadAiter:
        def __aiter__(self) -> int:
            return 1

    for obj in (1, BadAiter()):

        async def native(obj: Any = obj) -> str:
            try:
                async for _ in obj:
                    pass
            except TypeError as exc:
                return str(exc)
            return "accepted"

        with pytest.raises(TypeError) as info:
            anywait.async_iter(obj)
        assert str(info.value) == asyncio.run(native()).replace("'async for'", "'async_iter'")


# --- tree scopes ----------------------------------------------------------------------


async def spawn_all(backend: str, fns: list[Callable[[], Awaitable[Any]]]) -> None:
    """Run ``fns`` as child tasks (a Trio nursery; asyncio tasks, gathered: TaskGroup
    cannot find a pure-Python parent task on 3.14) to completion."""
    if on_trio(backend):
        import trio

        async with trio.open_nursery() as nursery:
            for fn in fns:
                nursery.start_soon(fn)
    else:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*[loop.create_task(fn()) for fn in fns])


def tree_scenario(backend: str, log: list[str]) -> Callable[[], Awaitable[None]]:
    """A task tree three levels deep where each task records whether it has a portal
    and uses await_ if it does."""

    def sync_sleep() -> None:
        anywait.await_(sleep(backend, 0))

    async def leaf() -> None:
        log.append(f"leaf {anywait.has_portal()}")
        sync_sleep()

    async def child() -> None:
        log.append(f"child {anywait.has_portal()}")
        sync_sleep()
        await spawn_all(backend, [leaf])

    async def root() -> None:
        await spawn_all(backend, [child, child])

    return root


def test_with_portal_run_tree_gives_every_descendant_a_portal(backend: str) -> None:
    log: list[str] = []

    async def main() -> bool:
        root = tree_scenario(backend, log)
        await anywait.with_portal_run_tree(root)
        return anywait.has_portal()

    assert run(backend, main) is False  # the calling task itself got none
    assert sorted(log) == ["child True"] * 2 + ["leaf True"] * 2


def test_portals_for_tree_covers_the_current_task_and_its_children(backend: str) -> None:
    log: list[str] = []

    async def main() -> list[Any]:
        async with anywait.portals_for_tree():
            seen: list[Any] = [anywait.has_portal()]
            anywait.await_(sleep(backend, 0))
            await tree_scenario(backend, log)()
        # The portal the block gave the task ends with it, as in greenback...
        seen.append(anywait.has_portal())
        try:
            anywait.await_(sleep(backend, 0))
        except RuntimeError as exc:
            seen.append(type(exc).__name__)

        # ...and new children are plain tasks again.
        async def late() -> None:
            seen.append(anywait.has_portal())

        await spawn_all(backend, [late])
        return seen

    assert run(backend, main) == [True, False, "RuntimeError", False]
    assert sorted(log) == ["child True"] * 2 + ["leaf True"] * 2


def test_portals_for_tree_leaves_a_portal_the_task_had_before(backend: str) -> None:
    async def main() -> list[bool]:
        await anywait.ensure_portal()
        async with anywait.portals_for_tree():
            seen = [anywait.has_portal()]
        anywait.await_(sleep(backend, 0))
        return [*seen, anywait.has_portal()]

    assert run(backend, main) == [True, True]


def test_portals_for_children_leaves_the_current_task_alone(backend: str) -> None:
    async def main() -> list[bool]:
        seen: list[bool] = []

        async def child() -> None:
            seen.append(anywait.has_portal())

        with anywait.portals_for_children():
            seen.append(anywait.has_portal())
            await spawn_all(backend, [child])
        return seen

    assert run(backend, main) == [False, True]


def test_with_portal_run_tree_adds_no_schedule_point(backend: str) -> None:
    """Another task that is ready to run does not run during the call."""
    order: list[str] = []

    async def quick() -> None:
        order.append("inside")

    async def other() -> None:
        order.append("other")

    async def main() -> list[str]:
        if on_trio(backend):
            import trio

            async with trio.open_nursery() as nursery:
                nursery.start_soon(other)
                await anywait.with_portal_run_tree(quick)
                order.append("after")
        else:
            task = asyncio.get_running_loop().create_task(other())
            await anywait.with_portal_run_tree(quick)
            order.append("after")
            await task
        return order

    assert run(backend, main) == ["inside", "after", "other"]


def test_trio_tree_skips_nurseries_opened_outside_the_scope() -> None:
    require("trio")
    import trio

    async def main() -> list[tuple[str, bool]]:
        seen: list[tuple[str, bool]] = []

        async def report(name: str) -> None:
            seen.append((name, anywait.has_portal()))

        async with trio.open_nursery() as outer:

            async def inside_scope() -> None:
                outer.start_soon(report, "outer nursery")
                async with trio.open_nursery() as inner:
                    inner.start_soon(report, "inner nursery")

            await anywait.with_portal_run_tree(inside_scope)
        return sorted(seen)

    assert trio.run(main) == [("inner nursery", True), ("outer nursery", False)]


def test_tree_scopes_nest_and_the_trio_instrument_goes_away() -> None:
    require("trio")
    import trio

    async def main() -> tuple[list[bool], list[bool]]:
        inside: list[bool] = []
        after: list[bool] = []

        async def report(into: list[bool]) -> None:
            into.append(anywait.has_portal())

        with anywait.portals_for_children(), anywait.portals_for_children():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(report, inside)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report, after)
        return inside, after

    assert trio.run(main) == ([True], [False])


def test_asyncio_tree_honours_an_explicit_context() -> None:
    import contextvars

    async def main() -> list[bool]:
        seen: list[bool] = []

        async def report() -> None:
            seen.append(anywait.has_portal())

        outside = contextvars.copy_context()
        with anywait.portals_for_children():
            await asyncio.get_running_loop().create_task(report(), context=outside)
            await asyncio.get_running_loop().create_task(report())
        return seen

    assert asyncio.run(main()) == [False, True]


def test_tree_scope_outside_a_task_raises() -> None:
    with (
        pytest.raises(RuntimeError, match="task of a running event loop"),
        anywait.portals_for_children(),
    ):
        pass


# --- with_portal_run_sync's call portal -----------------------------------------------


def test_call_portal_runs_once_and_behaves_as_a_coroutine_would() -> None:
    from anywait._anywait import _call_in_portal

    calls: list[tuple[Any, ...]] = []

    def record(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "done"

    portal = _call_in_portal(record, (1, 2), {"k": 3})
    with pytest.raises(StopIteration) as stop:
        portal.send(None)
    assert stop.value.value == "done"
    assert calls == [((1, 2), {"k": 3})]
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        portal.send(None)

    unstarted = _call_in_portal(record, (), None)
    with pytest.raises(KeyError):
        unstarted.throw(KeyError("before start"))
    _call_in_portal(record, (), None).close()
    assert len(calls) == 1  # neither ran the function


def test_with_portal_run_sync_traceback_goes_straight_into_the_function(backend: str) -> None:
    def fails() -> None:
        anywait.await_(sleep(backend, 0))
        raise ValueError("from sync code")

    async def main() -> list[str]:
        import traceback

        try:
            await anywait.with_portal_run_sync(fails)
        except ValueError as exc:
            return [f.name for f in traceback.extract_tb(exc.__traceback__)]
        return []

    assert run(backend, main) == ["main", "with_portal_run_sync", "fails"]
