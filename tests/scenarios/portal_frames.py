"""The frames a portal task's code sees below it, against its native twin: the chain
``sys._getframe()`` walks (through ``f_back``), ``inspect.stack()``, where
``warnings.warn(stacklevel=...)`` points past the task's own frames, before and after a
checkpoint; and the task's coroutine frame's ``f_back`` seen from another task while the
first one waits.

Natively the task's coroutine frame has the loop's frame that stepped it as its
``f_back`` while it runs, and None while it is suspended. Under a portal the coroutine
runs on the portal's worker fiber, and the sync frames under ``await_`` above it.

Usage: portal_frames.py BACKEND plain|greenlet (BACKEND: asyncio, asyncio-pytask, uvloop,
trio). ``greenlet`` imports greenlet first, so that steps run through anywait's greenlet
bridge. Prints JSON ``{"native": ..., "anywait": ...}``.
"""

import asyncio
import inspect
import json
import os
import sys
import warnings

if sys.argv[2] == "greenlet":
    import greenlet  # noqa: F401

import anywait

BACKEND = sys.argv[1]

if BACKEND == "trio":
    import trio

    async def checkpoint():
        await trio.lowlevel.checkpoint()
else:

    async def checkpoint():
        await asyncio.sleep(0)


def name(function):
    """The twins' functions by one name (``native_leaf`` and ``sync_leaf`` are ``leaf``)."""
    return function.removeprefix("native_").removeprefix("sync_")


def chain(frame):
    names = []
    while frame is not None:
        names.append(name(frame.f_code.co_name))
        frame = frame.f_back
    return names


def where_a_warning_points(stacklevel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("probe", stacklevel=stacklevel)
    (warning,) = caught
    return [os.path.basename(warning.filename), warning.lineno]


def look(frame, log):
    """What the leaf sees: its chain, inspect.stack()'s functions, and where a warning
    with a stacklevel past the task's frames (leaf, mid, task) points."""
    log.append(
        {
            "chain": chain(frame),
            "inspect": [name(info.function) for info in inspect.stack()[1:]],
            # where_a_warning_points, look, leaf, mid, task: the loop's frame below.
            "warning": where_a_warning_points(6),
        }
    )


def task_frame(frame):
    while frame.f_code.co_name != "task":
        frame = frame.f_back
    return frame


# -- native: every frame a coroutine ----------------------------------------------------


async def native_leaf(log, seen):
    look(sys._getframe(), log)
    seen.append(task_frame(sys._getframe()))
    await checkpoint()
    await checkpoint()
    look(sys._getframe(), log)


async def native_mid(log, seen):
    await native_leaf(log, seen)


# -- anywait: sync frames under await_ ---------------------------------------------------


def sync_leaf(log, seen):
    look(sys._getframe(), log)
    seen.append(task_frame(sys._getframe()))
    anywait.await_(checkpoint())
    anywait.await_(checkpoint())
    look(sys._getframe(), log)


def sync_mid(log, seen):
    sync_leaf(log, seen)


async def observer(seen, log):
    """Reads the other task's coroutine frame's f_back while that task waits."""
    while not seen:
        await checkpoint()
    log.append({"f_back while waiting": repr(seen[0].f_back)})


def run_twin(through_anywait):
    log = []
    seen = []

    async def task():
        if through_anywait:
            await anywait.ensure_portal()
            sync_mid(log, seen)
        else:
            await native_mid(log, seen)

    async def main():
        if BACKEND == "trio":
            async with trio.open_nursery() as nursery:
                nursery.start_soon(task)
                nursery.start_soon(observer, seen, log)
        else:
            await asyncio.gather(task(), observer(seen, log))

    if BACKEND == "trio":
        trio.run(main)
    else:
        if BACKEND == "uvloop":
            import uvloop  # (Debian bookworm's has no uvloop.run)

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        if BACKEND == "asyncio-pytask":
            loop.set_task_factory(
                lambda loop, coro, **kw: asyncio.tasks._PyTask(coro, loop=loop, **kw)
            )
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
    return log


print(json.dumps({"native": run_twin(False), "anywait": run_twin(True)}))
