"""Type stubs for anywait's compiled core. Public names are re-exported by
:mod:`anywait.lowlevel`, which is where to read about them."""

import contextvars
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar, final

_T = TypeVar("_T")

class FiberExit(BaseException):
    """Raised inside a suspended fiber to unwind it, by :meth:`Fiber.close` or when the
    fiber is garbage-collected. Like :class:`GeneratorExit` it derives from
    :class:`BaseException`; code that catches it must re-raise it or return."""

@final
class Fiber:
    """A function running on its own native stack.

    ``Fiber(fn, *args, **kwargs)`` does not run anything yet: the first
    :meth:`switch` calls ``fn(*args, **kwargs)`` on the fiber's stack, in a copy of the
    contextvars context that was current when the fiber was created.
    """

    def __init__(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None: ...
    def switch(self, value: Any = None) -> Any:
        """Start or resume the fiber and run it until it suspends or finishes.

        The first call starts ``fn`` (``value`` must then be None, as for a generator's
        first ``send``). Later calls make the :func:`suspend` the fiber is waiting in
        return ``value``. Returns the value the fiber passes to :func:`suspend`, or
        ``fn``'s return value once it finishes; an exception escaping ``fn``
        propagates from here with its traceback, and the fiber is then dead.

        Raises RuntimeError if the fiber is dead, is running (it is this fiber, or one
        waiting on a fiber it resumed), belongs to another thread, or if an exception is
        pending.
        """
    def throw(self, exc: BaseException | type[BaseException]) -> Any:
        """Raise ``exc`` inside the fiber where it is suspended, then run it like
        :meth:`switch`. Thrown into a fiber that has not started, ``exc`` propagates
        from here at once and ``fn`` never runs. RuntimeError on a dead fiber."""
    def close(self) -> None:
        """Unwind a suspended fiber by raising :class:`FiberExit` inside it.

        Returns when the fiber has died (by letting FiberExit out, or by returning). An
        exception other than FiberExit escaping the fiber propagates. If the fiber
        catches FiberExit and suspends again, raises RuntimeError. A fiber that never
        started is marked dead without running; closing a dead fiber does nothing;
        closing a running one raises RuntimeError.
        """
    @property
    def started(self) -> bool:
        """Whether the fiber has been started."""
    @property
    def dead(self) -> bool:
        """Whether the fiber has finished: returned, raised, closed, or killed before
        it started."""
    @property
    def running(self) -> bool:
        """Whether the fiber is executing, or waiting for a fiber it resumed."""

def suspend(value: Any = None) -> Any:
    """Suspend the current fiber, handing ``value`` to the code that resumed it.

    Returns the value of the next :meth:`Fiber.switch`, or raises what the next
    :meth:`Fiber.throw` throws. RuntimeError outside a fiber."""

def current() -> Fiber | None:
    """The innermost fiber running on this thread, or None on the thread's own stack.

    None also while a garbage-collected fiber whose object has already been
    destroyed is being unwound."""

def await_(awaitable: Awaitable[_T], /) -> _T:
    """Await ``awaitable`` from sync code running in a task that has a portal, exactly as
    ``await awaitable`` would at this point (same value, exception, cancellation,
    context and checkpoints), and return its result.

    RuntimeError if there is no portal (call ``await anywait.ensure_portal()`` first, or
    use ``anywait.run``), including outside any event loop and on another thread; the
    interpreter's own TypeError for objects that cannot be awaited. A coroutine passed
    to a failing ``await_`` is closed."""

@final
@final
class StackfulGenerator(Generator[Any, Any, Any]):
    """What a function decorated with :func:`anywait.generator` returns: a generator
    whose body yields with :func:`yield_` from any depth."""

    def __new__(
        cls,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None = None,
        /,
    ) -> StackfulGenerator: ...
    def __iter__(self) -> StackfulGenerator: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(
        self,
        typ: BaseException | type[BaseException],
        val: object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any: ...
    def close(self) -> Any: ...
    @property
    def gi_running(self) -> bool: ...
    @property
    def gi_suspended(self) -> bool: ...
    @property
    def __name__(self) -> str: ...
    @property
    def __qualname__(self) -> str: ...

@final
class StackfulAsyncGenerator(AsyncGenerator[Any, Any]):
    """What a function decorated with :func:`anywait.async_generator` returns: an async
    generator whose body yields with :func:`yield_` from any depth, sync or async."""

    def __new__(
        cls,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None = None,
        /,
    ) -> StackfulAsyncGenerator: ...
    def __aiter__(self) -> StackfulAsyncGenerator: ...
    def __anext__(self) -> Coroutine[Any, Any, Any]: ...
    def asend(self, value: Any, /) -> Coroutine[Any, Any, Any]: ...
    def athrow(self, exc: BaseException | type[BaseException], /) -> Coroutine[Any, Any, Any]: ...  # type: ignore[override]
    def aclose(self) -> Coroutine[Any, Any, None]: ...
    @property
    def ag_running(self) -> bool: ...
    @property
    def __name__(self) -> str: ...
    @property
    def __qualname__(self) -> str: ...

def yield_(value: Any = None, /) -> Any:
    """Suspend the innermost running anywait generator, producing ``value``; returns
    what its consumer sends (None for ``next()``)."""

class Portal:
    """A coroutine whose steps run on fibers, so that ``await_`` works inside it. The
    event loop drives it exactly like the coroutine it wraps."""

    def __init__(self, coro: Any, /) -> None: ...
    @property
    def coro(self) -> Any:
        """The wrapped coroutine."""
    def send(self, value: Any, /) -> Any: ...
    def throw(self, exc: Any, value: Any = None, traceback: Any = None, /) -> Any: ...
    def close(self) -> None: ...
    def __await__(self) -> Portal: ...
    def __iter__(self) -> Portal: ...
    def __next__(self) -> Any: ...
    @property
    def cr_frame(self) -> Any: ...
    @property
    def cr_await(self) -> Any: ...
    @property
    def cr_code(self) -> Any: ...
    @property
    def cr_running(self) -> bool: ...
    @property
    def cr_suspended(self) -> bool: ...
    if sys.version_info >= (3, 15):
        @property
        def cr_state(self) -> str: ...

def _make_portal(coro: Any, /) -> Portal: ...
def _in_portal_step() -> bool: ...
def _shareable_context() -> contextvars.Context | None: ...
def _call_in_portal(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None, /
) -> Portal: ...
def _swap_c_task_coro(task: Any, old: Any, new: Any, /) -> None: ...
def _install_portal_here() -> Awaitable[None] | Literal[True] | None: ...
def _set_no_portal_hint(hint: Callable[[], str | None], /) -> None: ...
def _set_sync_first(fallback: Callable[[Any], Any], /) -> None: ...
def _set_input_hook(hook: Callable[[], object] | None, /) -> None: ...
def _set_cancelled_hook(
    cancelled_type: type[BaseException], hook: Callable[[BaseException], BaseException | None], /
) -> None: ...
