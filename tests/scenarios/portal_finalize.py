"""A portal that becomes garbage while its coroutine is suspended closes it, as CPython
closes a suspended coroutine: ``finally`` blocks run, in sync frames blocked in
``await_`` too, and awaiting again while closing is reported as "coroutine ignored
GeneratorExit". Each case runs the same coroutine natively (driven by hand) and through
a portal, and prints both logs; the test compares them.

Usage: portal_finalize.py CASE. Prints "native: LOG" and "portal: LOG".
"""

import gc
import sys
import threading

import anywait
import anywait.lowlevel
from anywait._anywait import _make_portal

log = []
sys.unraisablehook = lambda u: log.append(f"unraisable {u.exc_type.__name__}: {u.exc_value}")


class Trap:
    """An awaitable that suspends its task once (what a Future does)."""

    def __await__(self):
        yield "trap"


def blocked_in_finally(use_portal):
    async def native():
        try:
            await Trap()
        finally:
            log.append("finally")

    def sync():
        try:
            anywait.await_(Trap())
        finally:
            log.append("finally")

    async def through_sync():
        sync()

    return through_sync() if use_portal else native()


def awaits_while_closing(use_portal):
    async def native():
        try:
            await Trap()
        finally:
            log.append("finally")
            await Trap()

    def sync():
        try:
            anywait.await_(Trap())
        finally:
            log.append("finally")
            anywait.await_(Trap())

    async def through_sync():
        sync()

    return through_sync() if use_portal else native()


def suspended_at_native_await(use_portal):
    """No await_ open: the portal still closes the coroutine itself, so that sync code
    in its finally blocks can await_ (and gets what `await` gets there)."""

    def sync_cleanup():
        log.append("cleanup")
        anywait.await_(Trap())

    async def native():
        try:
            await Trap()
        finally:
            log.append("cleanup")
            await Trap()

    async def through_sync():
        try:
            await Trap()
        finally:
            sync_cleanup()

    return through_sync() if use_portal else native()


def in_a_cycle(use_portal):
    """The coroutine's frame holds its own portal (or itself), and so does the sync
    frame blocked in ``await_``: only the collector can free them. The portal reports
    what its suspended frames hold, as a suspended coroutine's frame is reported."""

    async def inner(holder):
        await Trap()

    async def native(holder):
        try:
            await inner(holder)
        finally:
            log.append(f"finally, holder has {len(holder)}")

    def sync(holder):
        anywait.await_(Trap())

    async def through_sync(holder):
        try:
            sync(holder)
        finally:
            log.append(f"finally, holder has {len(holder)}")

    holder = []
    coro = through_sync(holder) if use_portal else native(holder)
    return coro, holder


def fiber_in_a_cycle(use_fiber):
    """A suspended ``lowlevel.Fiber`` whose function holds the fiber: collected, and its
    ``finally`` run, as for a suspended generator in the same cycle."""

    def body(holder):
        try:
            anywait.lowlevel.suspend("trap")
        finally:
            log.append(f"finally, holder has {len(holder)}")

    def gen(holder):
        try:
            yield "trap"
        finally:
            log.append(f"finally, holder has {len(holder)}")

    holder = []
    if use_fiber:
        step = anywait.lowlevel.Fiber(body, holder)
        resume = step.switch
    else:
        step = gen(holder)
        resume = step.__next__
    holder.append(step)
    assert resume() == "trap"
    del step, resume, holder
    gc.collect()
    return list(log)


def drive(case, use_portal):
    log.clear()
    if case == "fiber_in_a_cycle":
        return fiber_in_a_cycle(use_portal)
    if case == "in_a_cycle":
        coro, holder = in_a_cycle(use_portal)
        step = _make_portal(coro) if use_portal else coro
        holder.append(step)  # the coroutine's frame holds the portal: a cycle
        assert step.send(None) == "trap"
        del step, coro, holder
        gc.collect()
    else:
        # As in a task, the portal holds the only reference to the coroutine.
        step = _make_portal(globals()[case](True)) if use_portal else globals()[case](False)
        assert step.send(None) == "trap"
        del step
    gc.collect()
    return list(log)


def other_thread():
    """Dropped on a thread that is not the one its step runs on: leaked, reported."""
    log.clear()
    step = _make_portal(blocked_in_finally(True))
    assert step.send(None) == "trap"
    box = [step]
    del step
    thread = threading.Thread(target=box.clear)
    thread.start()
    thread.join()
    gc.collect()
    print("other thread:", log)


case = sys.argv[1]
if case == "other_thread":
    other_thread()
else:
    print("native:", drive(case, use_portal=False))
    print("portal:", drive(case, use_portal=True))
