"""A persistent loop left running at interpreter exit is stopped then, as stop_loop()
does: its tasks are cancelled and finish."""

import asyncio

import anywait


async def forever():
    try:
        await asyncio.sleep(100)
    except asyncio.CancelledError:
        await asyncio.sleep(0)
        print("task cancelled and finished", flush=True)
        raise


loop = anywait.start_loop()
loop.create_task(forever())
anywait.await_(asyncio.sleep(0))
print("started", flush=True)
