"""await_ of generators, async generators and custom awaitables, and await_ inside the
protocols the interpreter calls synchronously (operators, special methods, map and
filter, __exit__, __del__): each scenario runs natively and through sync frames +
await_, on every backend, and the observable traces must match."""

from __future__ import annotations

import functools
import itertools
import re
import sys
import traceback
import types
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import anywait
from portal_harness import (
    Wait,
    both,
    run,
    sleep,
    task_group,
)

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
