"""Ctrl-C (SIGINT) during a sync-first call on a persistent Trio run: while the run
waits, it cancels what the call awaits and the call raises KeyboardInterrupt; while
the awaited code computes, KeyboardInterrupt is raised there, as Trio raises it in
unprotected code. Either way the run stays usable, and between calls SIGINT has
Python's own handler."""

import signal
import threading
import time

import anywait
import trio

# A test run started as a background job of a shell inherits SIGINT ignored; Ctrl-C
# here must be what it is at a terminal, for both twins.
signal.signal(signal.SIGINT, signal.default_int_handler)


async def interrupted():
    threading.Timer(0.1, signal.raise_signal, (signal.SIGINT,)).start()
    try:
        await trio.sleep(30)
    except trio.Cancelled:
        print("cancelled inside", flush=True)
        raise


async def computing():
    await trio.sleep(0)
    signal.raise_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # no checkpoint: the interrupt lands in here
        pass
    print("not interrupted", flush=True)


async def value():
    await trio.sleep(0)
    return 42


with anywait.persistent_loop(backend="trio"):
    try:
        anywait.await_(interrupted())
    except KeyboardInterrupt:
        print("KeyboardInterrupt from the call", flush=True)
    print("usable after:", anywait.await_(value()), flush=True)
    try:
        anywait.await_(computing())
    except KeyboardInterrupt:
        print("KeyboardInterrupt while computing", flush=True)
    print("usable after:", anywait.await_(value()), flush=True)
    print(
        "between calls SIGINT is Python's:",
        signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        flush=True,
    )
