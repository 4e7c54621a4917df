"""Stackful generators: ``@anywait.generator`` and ``anywait.yield_``.

A function decorated with :func:`generator` returns a generator object when called.
Its body, and anything it calls at any depth (C callbacks included: ``re.sub``,
``html.parser``, ``xml.sax``, ``sorted(key=)``), may call :func:`yield_` to produce the
next value, with no ``yield from`` at each level. The object is a
:class:`collections.abc.Generator`: ``for``, ``next()``, ``send``, ``throw``, ``close``
and ``yield from`` work as with a native generator.

The body runs on a fiber linked to its consumer: on each resume it sees the
consumer's contextvars context (the same object: changes flow both ways), the
exception the consumer is handling, and the consumer's recursion depth, as a native
generator frame does.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, ParamSpec

from anywait._anywait import StackfulAsyncGenerator, StackfulGenerator, await_, yield_

__all__ = [
    "StackfulAsyncGenerator",
    "StackfulGenerator",
    "async_generator",
    "generator",
    "yield_",
]

P = ParamSpec("P")

collections.abc.Generator.register(StackfulGenerator)
collections.abc.AsyncGenerator.register(StackfulAsyncGenerator)


def generator(func: Callable[P, Any]) -> Callable[P, Generator[Any, Any, Any]]:
    """Make ``func`` a stackful generator function.

    Calling the result returns a generator that runs ``func(*args, **kwargs)``; code
    anywhere below it calls :func:`anywait.yield_` to produce values. The function's
    return value becomes ``StopIteration.value``.
    """
    if not callable(func):
        raise TypeError(f"@anywait.generator needs a function, got {type(func).__name__}")
    if inspect.isgeneratorfunction(func):
        raise TypeError(
            f"@anywait.generator on {func.__qualname__}, which is a generator function "
            "already (it contains `yield`): drop the decorator, or replace its `yield` "
            "statements with anywait.yield_() calls"
        )
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"@anywait.generator on {func.__qualname__}, which is async: a sync "
            "generator's body is sync code (it may await_() where its consumer could)"
        )

    @functools.wraps(func)
    def make(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
        return StackfulGenerator(func, args, kwargs)

    return make


def async_generator(func: Callable[P, Any]) -> Callable[P, AsyncGenerator[Any, Any]]:
    """Make ``func`` (a sync or an async function) a stackful async generator function.

    Calling the result returns an async generator that runs ``func(*args, **kwargs)``;
    code anywhere below it, sync or async, calls :func:`anywait.yield_` to produce
    values. Sync frames ``await_`` and async frames ``await``, on the consumer's loop:
    the consumer's task needs no portal. It works with ``async for``,
    ``contextlib.aclosing`` and the event loops' async-generator finalization, as a
    native async generator does.
    """
    if not callable(func):
        raise TypeError(f"@anywait.async_generator needs a function, got {type(func).__name__}")
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        raise TypeError(
            f"@anywait.async_generator on {func.__qualname__}, which is a generator "
            "function already (it contains `yield`): drop the decorator, or replace "
            "its `yield` statements with anywait.yield_() calls"
        )
    body: Callable[..., Any] = func
    if inspect.iscoroutinefunction(func):
        coroutine_function = func

        @functools.wraps(func)
        def body(*args: Any, **kwargs: Any) -> Any:
            # The async body runs under await_ on the generator's fiber, whose traps
            # go to the consumer's loop.
            return await_(coroutine_function(*args, **kwargs))

    @functools.wraps(func)
    def make(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
        return StackfulAsyncGenerator(body, args, kwargs)

    return make
