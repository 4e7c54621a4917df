"""Stackful generators (``@anywait.generator`` + ``yield_``) against native generators.

Each scenario is written twice: natively, with ``yield from`` at every level, and with
plain functions calling ``anywait.yield_`` at the bottom. What a consumer can observe
must match: the values, ``send``/``throw``/``close``, exceptions and the frames of
their tracebacks, ``finally`` order on close and on garbage collection, the context
and the handled exception the body sees, and the errors of misuse.
"""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import gc
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import Any

import anywait
import pytest
from anywait import yield_
from anywait.lowlevel import Fiber

# --- twins: a recursive walk ------------------------------------------------------------

Tree = tuple[Any, ...] | int


def native_walk(tree: Tree, log: list[str]) -> Generator[int, Any, int]:
    if isinstance(tree, int):
        got = yield tree
        if got is not None:
            log.append(f"got {got}")
        return tree
    total = 0
    try:
        for child in tree:
            total += yield from native_walk(child, log)
    finally:
        log.append(f"leave {len(tree)}")
    return total


def stackful_walk_body(tree: Tree, log: list[str]) -> int:
    if isinstance(tree, int):
        got = yield_(tree)
        if got is not None:
            log.append(f"got {got}")
        return tree
    total = 0
    try:
        for child in tree:
            total += stackful_walk_body(child, log)
    finally:
        log.append(f"leave {len(tree)}")
    return total


stackful_walk = anywait.generator(stackful_walk_body)
TREE: Tree = (1, (2, (3, 4)), ((5,), 6), 7)


def twins() -> list[Callable[[Tree, list[str]], Generator[int, Any, int]]]:
    return [native_walk, stackful_walk]


def test_same_values_and_return_value() -> None:
    results = []
    for walk in twins():
        log: list[str] = []
        gen = walk(TREE, log)
        values = []
        while True:
            try:
                values.append(next(gen))
            except StopIteration as stop:
                results.append((values, stop.value, log))
                break
    assert results[0] == results[1]
    assert results[0][0] == [1, 2, 3, 4, 5, 6, 7]
    assert results[0][1] == 28


def test_send_reaches_the_yield_call_at_any_depth() -> None:
    outs = []
    for walk in twins():
        log: list[str] = []
        gen = walk(TREE, log)
        seen = [gen.send(None)]
        try:
            while True:
                seen.append(gen.send(seen[-1] * 100))
        except StopIteration:
            pass
        outs.append((seen, log))
    assert outs[0] == outs[1]
    assert "got 400" in outs[0][1]


def test_yield_from_a_stackful_generator_delegates_send_throw_and_close() -> None:
    def delegating(inner: Generator[int, Any, int], log: list[str]) -> Generator[int, Any, str]:
        total = yield from inner
        log.append(f"inner returned {total}")
        return "outer done"

    outs = []
    for walk in twins():
        log: list[str] = []
        gen = delegating(walk(TREE, log), log)
        values = [next(gen), gen.send("s1"), next(gen)]
        with pytest.raises(KeyError):
            gen.throw(KeyError("in"))
        gen.close()
        outs.append((values, log))
    assert outs[0] == outs[1]


def test_exception_at_depth_and_its_frames() -> None:
    def native_fail(depth: int) -> Generator[int, None, None]:
        if depth == 0:
            yield 1
            raise ValueError("deep")
        yield from native_fail(depth - 1)

    def stackful_fail_body(depth: int) -> None:
        if depth == 0:
            yield_(1)
            raise ValueError("deep")
        stackful_fail_body(depth - 1)

    outs = []
    for gen in (native_fail(3), anywait.generator(stackful_fail_body)(3)):
        assert next(gen) == 1
        with pytest.raises(ValueError, match="deep") as info:
            next(gen)
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        outs.append(frames[1:])  # [0] is this test's frame
    assert outs[0] == ["native_fail"] * 4
    assert outs[1] == ["stackful_fail_body"] * 4


def test_throw_arrives_at_the_yield_and_can_be_handled_deep() -> None:
    def native_body() -> Generator[str, None, str]:
        def inner() -> Generator[str, None, str]:
            try:
                yield "waiting"
            except KeyError as exc:
                yield f"handled {exc!r}"
            return "inner"

        return (yield from inner())

    def stackful_body() -> str:
        def inner() -> str:
            try:
                yield_("waiting")
            except KeyError as exc:
                yield_(f"handled {exc!r}")
            return "inner"

        return inner()

    outs = []
    for gen in (native_body(), anywait.generator(stackful_body)()):
        first = next(gen)
        second = gen.throw(KeyError("k"))
        with pytest.raises(StopIteration) as stop:
            next(gen)
        outs.append((first, second, stop.value.value))
    assert outs[0] == outs[1] == ("waiting", "handled KeyError('k')", "inner")


def test_throw_forms_and_their_errors_match() -> None:
    def native() -> Generator[int, None, None]:
        while True:
            try:
                yield 1
            except Exception as exc:
                yield type(exc).__name__ + repr(exc.args)  # type: ignore[misc]

    def stackful_body() -> None:
        while True:
            try:
                yield_(1)
            except Exception as exc:
                yield_(type(exc).__name__ + repr(exc.args))

    outs = []
    for gen in (native(), anywait.generator(stackful_body)()):
        next(gen)
        got: list[Any] = [gen.throw(KeyError), next(gen), gen.throw(KeyError("x")), next(gen)]
        for bad in (1, "no", object()):
            try:
                gen.throw(bad)  # type: ignore[call-overload]
            except TypeError as exc:
                got.append(str(exc))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                gen.throw(KeyError("a"), "b")  # type: ignore[call-overload]
            except TypeError as exc:
                got.append(str(exc))
            got.append(gen.throw(KeyError, "v"))  # type: ignore[call-overload]
            got.append(next(gen))
        got.append([(w.category, str(w.message)) for w in caught])
        outs.append(got)
    assert outs[0] == outs[1]


def test_close_runs_finally_blocks_innermost_first() -> None:
    outs = []
    for walk in twins():
        log: list[str] = []
        gen = walk(TREE, log)
        next(gen), next(gen), next(gen)
        outs.append((gen.close(), log, gen.close()))
        with pytest.raises(StopIteration):
            next(gen)
    assert outs[0] == outs[1]
    assert outs[0][1] == ["leave 2", "leave 2", "leave 4"]


def test_close_returns_the_return_value_where_native_close_does() -> None:
    def native() -> Generator[int, None, str]:
        try:
            yield 1
        except GeneratorExit:
            return "closed"
        return "end"

    def stackful_body() -> str:
        try:
            yield_(1)
        except GeneratorExit:
            return "closed"
        return "end"

    outs = []
    for gen in (native(), anywait.generator(stackful_body)()):
        next(gen)
        outs.append(gen.close())
    assert outs[0] == outs[1]


def test_garbage_collection_closes_a_suspended_generator() -> None:
    outs = []
    for walk in twins():
        log: list[str] = []
        gen = walk(TREE, log)
        next(gen), next(gen)
        del gen
        gc.collect()
        outs.append(log)
    assert outs[0] == outs[1] == [["leave 2", "leave 4"]][0]


def test_ignoring_generator_exit_is_an_error_on_close_and_on_collection(
    capture_unraisable: Any,
) -> None:
    def native() -> Generator[int, None, None]:
        while True:
            try:  # noqa: SIM105 (the twin of the stackful body below)
                yield 1
            except GeneratorExit:
                pass

    def stackful_body() -> None:
        while True:
            try:  # noqa: SIM105 (as natively above)
                yield_(1)
            except GeneratorExit:
                pass

    messages = []
    for make in (native, anywait.generator(stackful_body)):
        gen = make()
        next(gen)
        with pytest.raises(RuntimeError) as info:
            gen.close()
        messages.append(str(info.value))
        with capture_unraisable() as recorder:
            del gen
            gc.collect()
        assert len(recorder.reports) == 1
        assert "GeneratorExit" in recorder.reports[0][1]
    assert messages[0] == messages[1] == "generator ignored GeneratorExit"


def test_stop_iteration_escaping_the_body_becomes_runtime_error() -> None:
    def native() -> Generator[int, None, None]:
        yield 1
        raise StopIteration("inner")

    def stackful_body() -> None:
        yield_(1)
        raise StopIteration("inner")

    outs = []
    for gen in (native(), anywait.generator(stackful_body)()):
        next(gen)
        with pytest.raises(RuntimeError) as info:
            next(gen)
        outs.append((str(info.value), repr(info.value.__cause__)))
    assert outs[0] == outs[1]


def test_misuse_errors_match_native_ones() -> None:
    holder: list[Any] = []

    def native() -> Generator[int, None, None]:
        yield 1
        next(holder[0])

    def stackful_body() -> None:
        yield_(1)
        next(holder[0])

    outs = []
    for make in (native, anywait.generator(stackful_body)):
        got = []
        gen = make()
        try:
            gen.send(5)
        except TypeError as exc:
            got.append(str(exc))
        holder[:] = [gen]
        next(gen)
        try:
            next(gen)
        except ValueError as exc:
            got.append(str(exc))
        got.append((gen.gi_running, gen.gi_suspended))
        with pytest.raises(StopIteration):
            next(gen)
        with pytest.raises(KeyError):
            gen.throw(KeyError("after the end"))
        got.append(gen.close())
        outs.append(got)
    assert outs[0] == outs[1]
    assert outs[0][:2] == [
        "can't send non-None value to a just-started generator",
        "generator already executing",
    ]


def test_throw_into_an_unstarted_generator_ends_it() -> None:
    log: list[str] = []
    outs = []
    for walk in twins():
        gen = walk(TREE, log)
        with pytest.raises(KeyError):
            gen.throw(KeyError("early"))
        with pytest.raises(StopIteration):
            next(gen)
        outs.append(log)
    assert outs == [[], []]


def test_is_a_generator_to_collections_abc_and_iterates_itself() -> None:
    gen = stackful_walk(TREE, [])
    assert isinstance(gen, collections.abc.Generator)
    assert iter(gen) is gen
    assert gen.__name__ == "stackful_walk_body"
    assert "stackful_walk_body" in repr(gen)
    assert list(gen) == [1, 2, 3, 4, 5, 6, 7]


# --- what the body sees of its consumer -------------------------------------------------

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_context_is_the_consumers_and_changes_flow_both_ways() -> None:
    def native() -> Generator[str, None, None]:
        yield VAR.get()
        VAR.set("set inside")
        yield VAR.get()

    def stackful_body() -> None:
        yield_(VAR.get())
        VAR.set("set inside")
        yield_(VAR.get())

    def consume(make: Callable[[], Iterator[str]]) -> list[str]:
        VAR.set("consumer")
        gen = make()
        first = next(gen)
        VAR.set("changed between")
        second = next(gen)
        return [first, second, VAR.get()]

    outs = [
        contextvars.copy_context().run(consume, make)
        for make in (native, anywait.generator(stackful_body))
    ]
    assert outs[0] == outs[1] == ["consumer", "set inside", "set inside"]


def test_each_resume_sees_the_context_of_whoever_resumes_it() -> None:
    def native() -> Generator[str, None, None]:
        while True:
            yield VAR.get()

    def stackful_body() -> None:
        while True:
            yield_(VAR.get())

    outs = []
    for make in (native, anywait.generator(stackful_body)):
        gen = make()
        seen = []
        for name in ("a", "b"):
            ctx = contextvars.copy_context()
            ctx.run(VAR.set, name)
            seen.append(ctx.run(next, gen))
        outs.append(seen)
    assert outs[0] == outs[1] == ["a", "b"]


def test_the_body_sees_the_exception_its_consumer_handles() -> None:
    def native() -> Generator[str, None, None]:
        yield repr(sys.exc_info()[1])
        try:
            raise KeyError("own")
        except KeyError:
            yield repr(sys.exc_info()[1])
        yield repr(sys.exc_info()[1])

    def stackful_body() -> None:
        yield_(repr(sys.exc_info()[1]))
        try:
            raise KeyError("own")
        except KeyError:
            yield_(repr(sys.exc_info()[1]))
        yield_(repr(sys.exc_info()[1]))

    outs = []
    for make in (native, anywait.generator(stackful_body)):
        gen = make()
        seen = []
        try:
            raise ValueError("consumer's")
        except ValueError:
            seen.append(next(gen))
        seen.append(next(gen))
        try:
            raise IndexError("later")
        except IndexError:
            seen.append(next(gen))
        outs.append(seen)
    assert outs[0] == outs[1]
    assert outs[0] == ['ValueError("consumer\'s")', "KeyError('own')", "IndexError('later')"]


def test_the_bodys_frames_count_on_top_of_the_consumers_depth(
    recursion_limit: Callable[[int], None],
) -> None:
    def depth_reached() -> int:
        reached = 0

        def down(n: int) -> None:
            nonlocal reached
            reached = n
            down(n + 1)

        with contextlib.suppress(RecursionError):
            down(0)
        return reached

    def native() -> Generator[int, None, None]:
        yield depth_reached()

    def stackful_body() -> None:
        yield_(depth_reached())

    def consume_at(depth: int, make: Callable[[], Iterator[int]]) -> int:
        if depth:
            return consume_at(depth - 1, make)
        return next(make())

    recursion_limit(400)
    for consumer_depth in (0, 150):
        native_reached = consume_at(consumer_depth, native)
        stackful_reached = consume_at(consumer_depth, anywait.generator(stackful_body))
        assert abs(native_reached - stackful_reached) <= 3, (consumer_depth, native_reached)


# --- errors of misuse --------------------------------------------------------------------


def test_yield__outside_any_generator_says_where_it_works() -> None:
    with pytest.raises(RuntimeError, match=r"outside an anywait generator.*@anywait.generator"):
        yield_(1)

    def native() -> Generator[None, None, None]:
        yield_(1)
        yield

    with pytest.raises(RuntimeError, match="outside an anywait generator"):
        next(native())


def test_yield__in_a_fiber_inside_a_generator_is_refused() -> None:
    def body() -> None:
        fiber = Fiber(yield_, 1)
        with pytest.raises(RuntimeError, match="inside an anywait generator"):
            fiber.switch()
        yield_("still fine")

    assert list(anywait.generator(body)()) == ["still fine"]


def test_the_decorator_refuses_what_it_cannot_make_a_generator_of() -> None:
    def native() -> Iterator[int]:
        yield 1

    async def coroutine() -> None:
        pass

    with pytest.raises(TypeError, match="generator function already"):
        anywait.generator(native)
    with pytest.raises(TypeError, match="is async"):
        anywait.generator(coroutine)
    with pytest.raises(TypeError, match="needs a function"):
        anywait.generator(1)  # type: ignore[arg-type]


def test_made_on_one_thread_consumed_on_another_once_started_stays() -> None:
    held = [stackful_walk(TREE, [])]  # a list, so that the test can drop its only reference
    results: list[Any] = []

    def consume() -> None:
        results.append(next(held[0]))

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join()
    assert results == [1]
    with pytest.raises(RuntimeError, match="other than the one that started it"):
        next(held[0])
    # Its thread has ended: collected, it cannot run its finally blocks, and says so.
    reported: list[Any] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "unraisablehook", reported.append)
        held.clear()
        gc.collect()
    (report,) = reported
    assert "garbage-collected after its thread ended" in str(report.exc_value)
