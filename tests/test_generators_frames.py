"""The frame chain seen from inside a stackful generator, against native twins.

While a native generator runs, its frame's ``f_back`` is the frame that resumed it
(the consumer's), so ``sys._getframe()`` walks, ``inspect.stack()`` and
``warnings.warn(stacklevel=...)`` reach the consumer's frames; while it is suspended,
``f_back`` is None. A stackful generator's body must look the same from inside, at any
depth below the body, whichever frame resumes it.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import Any

import anywait
from anywait import yield_


def names(frame: FrameType | None, limit: int = 8) -> list[str]:
    """The function names of ``frame`` and its callers, innermost first, up to the
    test's own frame (below it the names depend on how pytest runs the test)."""
    out: list[str] = []
    while frame is not None and len(out) < limit:
        out.append(frame.f_code.co_name)
        if frame.f_code.co_name.startswith("test_"):
            break
        frame = frame.f_back
    return out


def here() -> list[str]:
    return names(sys._getframe(1))


# --- twins: a body that reports its frame chain from two depths ----------------------


def native_walk() -> Iterator[Any]:
    yield here()
    yield from native_deeper()


def native_deeper() -> Iterator[Any]:
    yield here()


@anywait.generator
def stackful_walk() -> None:
    yield_(here())
    stackful_deeper()


def stackful_deeper() -> None:
    yield_(here())


def consume_in_a(gen: Iterator[Any]) -> Any:
    return next(gen)


def consume_in_b(gen: Iterator[Any]) -> Any:
    return next(gen)


def test_f_back_of_the_body_is_the_frame_that_resumed_it() -> None:
    test = "test_f_back_of_the_body_is_the_frame_that_resumed_it"
    seen = {}
    for twin, gen in (("native", native_walk()), ("stackful", stackful_walk())):
        first = consume_in_a(gen)
        # The deeper frame: natively a generator of its own (resumed through yield
        # from), here a plain call; both see the body, then the consumer, below it.
        second = consume_in_b(gen)
        seen[twin] = [[name.replace(twin, "TWIN") for name in chain] for chain in (first, second)]
    assert seen["stackful"] == seen["native"]
    assert seen["native"] == [
        ["TWIN_walk", "consume_in_a", test],
        ["TWIN_deeper", "TWIN_walk", "consume_in_b", test],
    ]


def test_a_suspended_bodys_frame_has_no_f_back() -> None:
    frames: dict[str, FrameType] = {}

    def native() -> Iterator[int]:
        frames["native"] = sys._getframe()
        yield 1

    @anywait.generator
    def stackful() -> None:
        frames["stackful"] = sys._getframe()
        yield_(1)

    gens = [native(), stackful()]
    for gen in gens:
        next(gen)
    assert frames["native"].f_back is None
    assert frames["stackful"].f_back is None
    # Running again, its f_back is whoever resumes it now.
    seen: list[Any] = []

    def look(gen: Iterator[int]) -> None:
        for _ in gen:
            pass

    @anywait.generator
    def watched() -> None:
        frame = sys._getframe()
        yield_(1)
        seen.append(names(frame.f_back, 2))

    look(watched())
    assert seen == [["look", "test_a_suspended_bodys_frame_has_no_f_back"]]
    for gen in gens:
        gen.close()


def test_inspect_stack_and_warnings_stacklevel_reach_the_consumer() -> None:
    def warn_two_up() -> None:
        # stacklevel=3: past this helper and the body, at the consumer's line.
        warnings.warn("from the body", UserWarning, stacklevel=3)

    def native() -> Iterator[list[str]]:
        warn_two_up()
        yield [f.function for f in inspect.stack()[:3]]

    @anywait.generator
    def stackful() -> None:
        warn_two_up()
        yield_([f.function for f in inspect.stack()[:3]])

    results = []
    for make in (native, stackful):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stack = next(make())  # the consumer's line: where the warning points
        (warning,) = caught
        results.append((stack[1:], warning.filename, warning.lineno))
    assert results[0] == results[1]
    test = "test_inspect_stack_and_warnings_stacklevel_reach_the_consumer"
    assert results[0][0][0] == test
    assert results[0][1] == __file__


def test_nested_generators_chain_through_each_other() -> None:
    def native_inner() -> Iterator[list[str]]:
        yield here()

    def native_outer() -> Iterator[list[str]]:
        for item in native_inner():  # noqa: UP028 (the twin of a for loop over yield_)
            yield item

    @anywait.generator
    def stackful_inner() -> None:
        yield_(here())

    @anywait.generator
    def stackful_outer() -> None:
        for item in stackful_inner():
            yield_(item)

    expected = [
        "native_inner",
        "native_outer",
        "test_nested_generators_chain_through_each_other",
    ]
    assert next(native_outer()) == expected
    assert next(stackful_outer()) == [name.replace("native", "stackful") for name in expected]


def test_a_frame_set_by_sys_getframe_from_cpython_callbacks() -> None:
    # A callback that C code (sorted's key) calls, yielding from there.
    def key(item: int) -> int:
        yield_(names(sys._getframe(), 3))
        return item

    @anywait.generator
    def sorting() -> None:
        sorted([2, 1], key=key)

    first = consume_in_a(sorting())
    assert first == ["key", "sorting", "consume_in_a"]


def test_an_async_generators_sync_body_sees_the_consuming_coroutine() -> None:
    async def native() -> AsyncIterator[list[str]]:
        yield here()

    @anywait.async_generator
    def stackful() -> None:
        yield_(here())

    async def consumer(make: Callable[[], AsyncIterator[list[str]]]) -> list[str]:
        async for item in make():
            return item[:2]
        raise AssertionError("no item")

    assert asyncio.run(consumer(native)) == ["native", "consumer"]
    assert asyncio.run(consumer(stackful)) == ["stackful", "consumer"]
