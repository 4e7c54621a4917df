"""Ctrl-C (SIGINT) during a sync-first call: it cancels what the call awaits, the call
raises KeyboardInterrupt, and the loop stays usable. Usage: sync_loop_sigint.py native|anywait
(native: the same on one asyncio.Runner, the twin)."""

import asyncio
import signal
import sys

import anywait

# A test run started as a background job of a shell inherits SIGINT ignored; Ctrl-C
# here must be what it is at a terminal, for both twins.
signal.signal(signal.SIGINT, signal.default_int_handler)


async def interrupted():
    signal.raise_signal(signal.SIGINT)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("cancelled inside", flush=True)
        raise


async def value():
    await asyncio.sleep(0)
    return 42


def main(run):
    try:
        run(interrupted())
    except KeyboardInterrupt:
        print("KeyboardInterrupt from the call", flush=True)
    print("usable after:", run(value()), flush=True)


if sys.argv[1] == "native":
    with asyncio.Runner() as runner:
        main(runner.run)
else:
    with anywait.persistent_loop():
        main(anywait.await_)
