"""greenlet imported while portal tasks already run. Steps that begin after the import
are bridged (await_ inside greenlets works, with other tasks blocked meanwhile); in the
one step during which greenlet was imported, await_ inside a greenlet made in that step
cannot be handed back to the loop safely, and raises a RuntimeError saying why instead.

Usage: greenlet_late_import.py. Prints "ok".
"""

import asyncio
import sys

import anywait

assert "greenlet" not in sys.modules


async def blocked(event):
    """A portal task blocked in await_ across the import."""
    anywait.await_(event.wait())
    return "released"


def import_and_use_in_same_step():
    import greenlet

    def body():
        try:
            anywait.await_(asyncio.sleep(0))
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    return greenlet.greenlet(body).switch()


def use_in_later_step():
    import greenlet

    def body(n):
        anywait.await_(asyncio.sleep(0.001))
        return n * 2

    return greenlet.greenlet(body).switch(21)


async def main():
    event = asyncio.Event()
    waiter = asyncio.create_task(blocked(event))
    await asyncio.sleep(0)
    same_step = import_and_use_in_same_step()
    assert "greenlet was imported after the step began" in same_step, same_step
    await asyncio.sleep(0)  # the next step is bridged
    doubled = await asyncio.gather(*[asyncio.create_task(later()) for _ in range(5)])
    assert doubled == [42] * 5
    event.set()
    assert await waiter == "released"


async def later():
    return use_in_later_step()


anywait.run(main)
print("ok")
