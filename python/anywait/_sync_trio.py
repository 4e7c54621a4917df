"""A persistent Trio run for sync-first programs: ``anywait.start_loop(backend="trio")``.

One ``trio.run`` runs on a fiber for the life of the persistent loop, with a portal under
every task (`AutoPortalInstrument`). `await_` in sync code runs its awaitable as a new
system task of that run (in a copy of the caller's context, as asyncio's persistent loop
does) and switches to the fiber until it is done; the fiber then suspends at the end of
that batch of Trio's scheduler, where ``trio.run`` would wait for I/O next (below):
between calls nothing of the run executes, and what it holds (system tasks started
with ``trio.lowlevel.spawn_system_task``, memory channels, sockets) persists.

Why not guest mode on a host loop (``trio.lowlevel.start_guest_run``): guest mode waits
for I/O in a helper thread and hands every batch across threads, and needs a host loop
running; this design has neither, and a call costs two fiber switches.

Why this is safe although Trio's run state is thread-local: the fiber only ever pauses
between batches (no task step is open), and while it is paused what the run put on the
thread (its thread-local run state, its async-generator hooks, the name sniffio reports,
and on the main thread its SIGINT handler and signal wakeup fd) is taken off and put back
when it resumes, so sync code sees no Trio run (``trio.run`` works there,
``in_trio_run()`` is False, Ctrl-C is a plain KeyboardInterrupt).

The run pauses where it would next wait for I/O: in the clock Trio asks for the wait's
timeout when it has nothing to run (`_PausingClock`), else in ``before_io_wait`` (the
timeout is 0 then). A new call is spawned as a system task there, when the run resumes,
and the wait that follows does not block.

The awaited code is not KI-protected (as in the main task of a ``trio.run``, though it
runs in a system task): Ctrl-C while it computes raises KeyboardInterrupt in it, as
Trio does; Ctrl-C while the run waits is delivered to the run's main task, which
cancels what the call awaits, and the call raises KeyboardInterrupt. Either way the
run goes on.

Invariants: one host per thread (`_sync_loop` keeps it); its fiber is resumed only from
the host's thread, never while it runs, and only by `run` and `stop`.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's, without its enum conversions
import contextvars
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anywait._anywait import Fiber, suspend
from anywait._run import AutoPortalInstrument

T = TypeVar("T")


class TrioHost:
    """The persistent Trio run of one thread (see the module docs)."""

    def __init__(self) -> None:
        import outcome  # a dependency of Trio's
        import trio
        from trio._core import _run as trio_run

        self.trio = trio
        self.outcome_of = outcome  # looked up once: run() and pause() are per call
        self.run_context = trio_run.GLOBAL_RUN_CONTEXT  # the run's thread-local state
        self.thread = threading.current_thread()
        self.awaited = trio.lowlevel.disable_ki_protection(_await)
        trio.abc.Clock.register(_PausingClock)  # current_clock() is a trio.abc.Clock
        self.outer_signals = _Signals.current()
        self.run_signals: _Signals | None = None
        self.token: Any = None
        self.stop_event: Any = None
        self.target: Any = None  # the cancel scope of the call now running, if any
        self.outcome: list[Any] = []
        self.interrupted = False
        self.pause_pending = False  # the main task asks for the first: start returns
        self.pending: tuple[Any, str, contextvars.Context] | None = None  # the next call
        self.paused_state: dict[str, Any] | None = None
        self.run_asyncgen_hooks: Any = None
        self.outer_asyncgen_hooks = sys.get_asyncgen_hooks()
        self.ended: BaseException | None = None  # what ended trio.run, if it raised
        self.ended_reported = False
        self.sniffio_cvar: contextvars.ContextVar[str | None] | None = None
        self.fiber = Fiber(self._main)
        self.fiber.switch()
        if self.fiber.dead:
            raise RuntimeError("the persistent Trio run ended as it started") from self.ended

    # -- on the fiber ---------------------------------------------------------------

    def _main(self) -> None:
        try:
            instruments: list[Any] = [_Pauser(self), AutoPortalInstrument()]
            clock: Any = _PausingClock(self)  # a trio.abc.Clock (registered)
            self.trio.run(self._run_main, instruments=instruments, clock=clock)
        except BaseException as exc:  # reported by whoever resumed us last
            self.ended = exc

    async def _run_main(self) -> None:
        trio = self.trio
        self.token = trio.lowlevel.current_trio_token()
        self.stop_event = trio.Event()
        import sniffio  # a dependency of Trio's

        thread_local = getattr(sniffio, "thread_local", None)  # sniffio 1.3+
        if getattr(thread_local, "name", None) != "trio":
            # Trio before 0.23 names itself to sniffio through a context variable set
            # in its tasks' contexts, which a call's context (the caller's) lacks; as
            # its trio.from_thread.run does, calls set it.
            self.sniffio_cvar = sniffio.current_async_library_cvar
        self.pause_pending = True
        while True:
            try:
                await self.stop_event.wait()
                return
            except KeyboardInterrupt:  # Trio delivers Ctrl-C to the main task
                if self.target is None:
                    continue
                self.interrupted = True
                self.target.cancel()

    def pause(self) -> bool:
        """Called where the run would wait next once a call is done: leave the thread as
        if no Trio run were on it, until the next resume; then spawn the call it brings.
        True if it brought one."""
        self.pause_pending = False
        state = self.run_context
        self.paused_state = dict(state.__dict__)
        state.__dict__.clear()
        self.run_asyncgen_hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(*self.outer_asyncgen_hooks)
        self.run_signals = _swap_signals(self.outer_signals)
        # Trio 0.23+ names itself in sniffio's thread-local for the whole run; between
        # calls sync code (and an asyncio.run there) must not be told it runs in Trio.
        sniffio = sys.modules.get("sniffio")
        library: Any = getattr(sniffio, "thread_local", None)
        run_library = getattr(library, "name", None)
        if run_library is not None:
            library.name = None  # sync code: no async library
        suspend()
        if run_library is not None:
            library.name = run_library
        self.outer_signals = _swap_signals(self.run_signals)
        self.outer_asyncgen_hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(*self.run_asyncgen_hooks)
        state.__dict__.update(self.paused_state)
        self.paused_state = None
        if self.pending is None:
            return False  # stop() resumed us
        call, name, context = self.pending
        self.pending = None
        self.trio.lowlevel.spawn_system_task(call, name=name, context=context)
        return True

    # -- from sync code -------------------------------------------------------------

    def run(self, aw: Awaitable[T]) -> T:
        if self.target is not None or self.outcome:
            _close(aw)
            raise RuntimeError(
                "await_() re-entered the persistent Trio run while it was already running "
                "a call on this thread"
            )
        trio = self.trio
        outcome = self.outcome_of
        context = contextvars.copy_context()
        if self.sniffio_cvar is not None:
            context.run(self.sniffio_cvar.set, "trio")
        box = self.outcome

        async def call() -> None:
            with trio.CancelScope() as scope:
                self.target = scope
                box.append(await outcome.acapture(self.awaited, aw))
            self.target = None
            if not box:  # cancelled by Ctrl-C before it finished
                box.append(outcome.Error(KeyboardInterrupt()))
            elif (
                isinstance(box[0], outcome.Error)
                and isinstance(box[0].error, trio.Cancelled)
                and not scope.cancel_called
            ):
                # Not our scope (Ctrl-C's): only the system nursery's is outside it, so the
                # run is ending (a system task crashed it). No pause: the caller resumes
                # the fiber until trio.run returns, and reports how it ended.
                return
            self.pause_pending = True

        if self.fiber.dead:
            _close(aw)
            raise RuntimeError("the persistent Trio run has ended") from None
        self.pending = (call, _task_name(aw), context)
        try:
            while not box:
                self._resume()
            result = box[0]
        finally:
            box.clear()
        if self.interrupted:
            self.interrupted = False
            if not isinstance(result, outcome.Error) or isinstance(result.error, trio.Cancelled):
                raise KeyboardInterrupt
        return result.unwrap()  # type: ignore[no-any-return]

    def _resume(self) -> None:
        if self.fiber.dead:
            raise RuntimeError("the persistent Trio run has ended") from self.ended
        self.fiber.switch()
        if self.fiber.dead and self.ended is not None:
            self.ended_reported = True
            raise RuntimeError("the persistent Trio run ended") from self.ended

    def stop(self) -> None:
        """Ends the run: its system tasks are cancelled and finish, as at the end of
        any ``trio.run``; then the fiber ends."""
        if self.fiber.dead:
            return
        self.token.run_sync_soon(self.stop_event.set)
        while not self.fiber.dead:
            self.fiber.switch()
        # trio.run put back what it found when it started; sync code may have changed it
        # between calls since.
        _swap_signals(self.outer_signals)
        if self.ended is not None and not self.ended_reported:
            self.ended_reported = True
            raise RuntimeError("the persistent Trio run ended with an error") from self.ended


class _PausingClock:
    """Trio's own clock, and the place the run pauses once a call is done, when the
    run has nothing to run: Trio asks it how long to wait for I/O, and it pauses
    before it answers. After the resume the answer is 0 if the resume brought a call
    (now runnable), else the time to the next deadline as of then (so the time spent
    paused is not waited again)."""

    def __init__(self, host: TrioHost) -> None:
        from trio._core._run import SystemClock  # the clock trio.run uses by default

        self.host = host
        self.inner = SystemClock()
        self.current_time: Callable[[], float] = self.inner.current_time  # often: no frame

    def start_clock(self) -> None:
        self.inner.start_clock()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if self.host.pause_pending and self.host.pause():
            return 0.0
        return float(self.inner.deadline_to_sleep_time(deadline))


class _Pauser:
    """The instrument through which the run pauses once a call is done when the run
    has tasks to run (Trio then waits for I/O with timeout 0, asking no clock)."""

    __slots__ = ("host",)

    def __init__(self, host: TrioHost) -> None:
        self.host = host

    def before_io_wait(self, timeout: float) -> None:
        if self.host.pause_pending:
            self.host.pause()


class _Signals:
    """The main thread's SIGINT handler and signal wakeup fd (what ``trio.run`` sets)."""

    __slots__ = ("sigint", "wakeup_fd")

    def __init__(self, sigint: Any, wakeup_fd: int) -> None:
        self.sigint = sigint
        self.wakeup_fd = wakeup_fd

    @classmethod
    def current(cls) -> _Signals | None:
        if threading.current_thread() is not threading.main_thread():
            return None  # signals are the main thread's only
        fd = _signal.set_wakeup_fd(-1)
        _signal.set_wakeup_fd(fd)
        return cls(_signal.getsignal(signal.SIGINT), fd)

    def install(self) -> None:
        if self.sigint is not None:  # None: installed outside Python, left alone
            _signal.signal(signal.SIGINT, self.sigint)
        # Trio sets its fd with warn_on_full_buffer=False; for any other fd the flag
        # only changes whether a full buffer warns.
        _signal.set_wakeup_fd(self.wakeup_fd, warn_on_full_buffer=False)


def _swap_signals(new: _Signals | None) -> _Signals | None:
    """Installs ``new`` (if any) and returns what was installed before."""
    old = _Signals.current()
    if new is not None:
        new.install()
    return old


def _task_name(aw: object) -> str:
    """The call's task is named as Trio names a task for its function, when ``aw`` is a
    coroutine (``module.qualname``)."""
    frame = getattr(aw, "cr_frame", None)
    qualname = getattr(aw, "__qualname__", None)
    if frame is None or qualname is None:
        return repr(aw)
    return f"{frame.f_globals.get('__name__', '?')}.{qualname}"


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _close(aw: object) -> None:
    close = getattr(aw, "close", None)
    if close is not None and hasattr(aw, "cr_frame"):
        close()
