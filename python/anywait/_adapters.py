"""Adapters that let sync code use async objects through `await_`: decorators, context
managers, iterators. Each one is a thin layer of `await_` calls, so it needs a portal
exactly as `await_` does, and behaves as the matching ``await``/``async with``/``async
for`` would at the same place."""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from anywait._anywait import await_
from anywait._portals import with_portal_run_sync

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def autoawait(async_fn: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """Turn an async function into a sync one that awaits it with `await_`.

    Use it where Python calls your code synchronously but you want to write it
    async: ``__getattr__``, property setters, operators, callbacks. The result must be
    called where `await_` works (a task with a portal).
    """

    @functools.wraps(async_fn)
    def call_and_wait(*args: P.args, **kwargs: P.kwargs) -> T:
        return await_(async_fn(*args, **kwargs))

    return call_and_wait


def decorate_as_sync(
    decorator: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Apply a decorator written for sync functions to an async function.

    ``@decorate_as_sync(functools.lru_cache())`` on an ``async def`` caches results, not
    coroutine objects: the async function is wrapped in a sync function that awaits it
    with `await_`, ``decorator`` decorates that, and the result is an async function
    that calls the decorated sync one inside a portal of its own (so its callers need
    no portal). ``await decorate_as_sync(d)(f)(*args)`` is
    ``await with_portal_run_sync(d(autoawait(f)), *args)``.
    """

    def decorate(async_fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        decorated_sync = decorator(autoawait(async_fn))

        @functools.wraps(decorated_sync)
        async def run_in_portal(*args: Any, **kwargs: Any) -> Any:
            return await with_portal_run_sync(decorated_sync, *args, **kwargs)

        return run_in_portal

    return decorate


def _fully_qualified_name(cls: type) -> str:
    """How 3.14 names a type in its error messages (``%T``)."""
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


_NOT_ASYNC_CM = "{!r} object does not support the asynchronous context manager protocol"


class async_context(Generic[T_co]):  # named like contextlib's helpers
    """Use an async context manager in a sync ``with`` statement.

    ``with async_context(cm) as x:`` runs ``cm.__aenter__()`` and ``cm.__aexit__()``
    through `await_`, so it behaves as ``async with cm as x:`` would at that point,
    exception suppression included. An object that is not an async context manager gets
    the TypeError ``async with`` gives.
    """

    __slots__ = ("_aexit", "_cm")

    def __init__(self, cm: AbstractAsyncContextManager[T_co]) -> None:
        self._cm = cm

    def __enter__(self) -> T_co:
        cls = type(self._cm)
        aenter = getattr(cls, "__aenter__", None)
        aexit = getattr(cls, "__aexit__", None)
        # Same lookup order and wording as the interpreter's own `async with`.
        if sys.version_info >= (3, 14):
            if aexit is None or aenter is None:
                missing = "__aexit__" if aexit is None else "__aenter__"
                name = _fully_qualified_name(cls)
                raise TypeError(f"{_NOT_ASYNC_CM.format(name)} (missed {missing} method)")
        elif aenter is None:
            raise TypeError(_NOT_ASYNC_CM.format(cls.__name__))
        elif aexit is None:
            raise TypeError(f"{_NOT_ASYNC_CM.format(cls.__name__)} (missed __aexit__ method)")
        self._aexit = aexit
        result: T_co = await_(aenter(self._cm))
        return result

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(await_(self._aexit(self._cm, exc_type, exc, tb)))


class async_iter(Generic[T_co]):  # named like the builtin iter()
    """Use an async iterable in sync code: ``for x in async_iter(ait):``, ``next()``,
    ``list()``, ``yield from``.

    Each item is fetched with ``await_(anext(it))``, so it behaves as ``async for``
    would; StopAsyncIteration becomes StopIteration. When the iterator is an async
    generator (it has ``asend``, ``athrow`` and ``aclose``), the wrapper also has
    ``send``, ``throw`` and ``close``, so it can stand in for a sync generator.
    """

    __slots__ = ("_it",)
    _it: AsyncIterator[Any]

    def __new__(cls, iterable: AsyncIterable[T_co]) -> async_iter[T_co]:
        aiter = getattr(type(iterable), "__aiter__", None)
        if aiter is None:
            raise TypeError(
                "'async_iter' requires an object with __aiter__ method, got "
                f"{type(iterable).__name__}"
            )
        it = aiter(iterable)
        if getattr(type(it), "__anext__", None) is None:
            raise TypeError(
                "'async_iter' received an object from __aiter__ that does not implement "
                f"__anext__: {type(it).__name__}"
            )
        if cls is async_iter and all(hasattr(it, name) for name in ("asend", "athrow", "aclose")):
            cls = _async_generator_as_sync
        self = super().__new__(cls)
        self._it = it
        return self

    def __iter__(self) -> async_iter[T_co]:
        return self

    def __next__(self) -> T_co:
        try:
            item: T_co = await_(type(self._it).__anext__(self._it))
        except StopAsyncIteration as end:
            raise StopIteration(*end.args) from None
        return item


class _async_generator_as_sync(async_iter[T_co]):
    """`async_iter` of an async generator: the sync generator protocol as well."""

    __slots__ = ()

    def _agen(self) -> AsyncGenerator[T_co, Any]:
        agen: AsyncGenerator[T_co, Any] = self._it  # type: ignore[assignment]
        return agen

    def send(self, value: Any) -> T_co:
        return self._wait(self._agen().asend(value))

    def throw(self, *exc_info: Any) -> T_co:
        return self._wait(self._agen().athrow(*exc_info))

    def close(self) -> None:
        await_(self._agen().aclose())

    @staticmethod
    def _wait(aw: Awaitable[T_co]) -> T_co:
        try:
            return await_(aw)
        except StopAsyncIteration as end:
            raise StopIteration(*end.args) from None
