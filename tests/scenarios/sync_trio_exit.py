"""A persistent Trio run left running at interpreter exit is stopped then, as
stop_loop() does: its system tasks are cancelled and finish."""

import anywait
import trio


async def forever():
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(0)
        print("system task cancelled and finished", flush=True)


async def start():
    trio.lowlevel.spawn_system_task(forever)
    await trio.sleep(0)


anywait.start_loop(backend="trio")
anywait.await_(start())
print("started", flush=True)
