"""Eager tasks (3.12+) created inside a portal task's step, with greenlet loaded: their
first step runs nested in the creating step, so it is not bridged. await_ works there
(also after the loop resumed the step); await_ inside a greenlet switched to in such a
step is refused with a RuntimeError rather than leaving greenlet's state wrong.

Usage: greenlet_eager.py. Prints "ok".
"""

import asyncio

import anywait
import greenlet
from anywait._tree import PortalTaskFactory


async def plain(n):
    anywait.await_(asyncio.sleep(0))
    anywait.await_(asyncio.sleep(0.001))  # after the loop resumed this step
    return n


async def in_greenlet():
    def body():
        try:
            anywait.await_(asyncio.sleep(0))
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    return greenlet.greenlet(body).switch()


async def main():
    assert await asyncio.gather(*[plain(n) for n in range(5)]) == list(range(5))
    refused = await asyncio.gather(in_greenlet())
    assert "began nested in another task's step" in refused[0], refused


with asyncio.Runner() as runner:
    loop = runner.get_loop()
    loop.set_task_factory(PortalTaskFactory(asyncio.eager_task_factory, everything=True))
    runner.run(main())
print("ok")
