"""pdb driven by a person, run in a pseudo-terminal by tests/test_debuggers.py: a task
calls ``step``, which stops at ``breakpoint()``; the person steps over the wait on the
next line while another task keeps ticking, then looks around and continues. A third
task, the bystander, is already waiting when pdb starts (so its frames were entered
before tracing was on); it is released once ``step``'s task is done, and a breakpoint
set on the line after its wait must stop there.

Usage: pdb_stepping.py BACKEND MODE, BACKEND ``asyncio`` or ``trio``, MODE ``await_``
(``step`` and its caller are sync functions under a portal, waiting with
``anywait.await_``) or ``native`` (the twin: the same functions async, waiting with
``await``). The twins' functions have the same names and sit at the same offsets from
their ``def`` lines, so that what pdb shows of one can be compared with the other.
"""

import sys

import anywait

BACKEND, MODE = sys.argv[1], sys.argv[2]

if BACKEND == "trio":
    import trio

    async def sleep(seconds, result=None):
        await trio.sleep(seconds)
        return result

else:
    import asyncio

    sleep = asyncio.sleep

other_ticks = []
bystander_waiting = []


async def ticker():
    while True:
        other_ticks.append(len(other_ticks))
        await sleep(0)


if MODE == "await_":

    def step():
        breakpoint()
        x = anywait.await_(sleep(0.01, result=41))
        print(x + 1)
        return x

    def caller():
        return step()

    async def task():
        await anywait.ensure_portal()
        return caller()

    def waiting(release):
        bystander_waiting.append(True)
        anywait.await_(release.wait())
        print("bystander woken")
        return release.is_set()

    async def bystander(release):
        await anywait.ensure_portal()
        return waiting(release)

else:

    async def step():
        breakpoint()
        x = await sleep(0.01, result=41)
        print(x + 1)
        return x

    async def caller():
        return await step()

    async def task():
        await sleep(0)  # where the twin takes its portal
        return await caller()

    async def waiting(release):
        bystander_waiting.append(True)
        await release.wait()
        print("bystander woken")
        return release.is_set()

    async def bystander(release):
        await sleep(0)
        return await waiting(release)


if BACKEND == "trio":

    async def main():
        release = trio.Event()
        async with trio.open_nursery() as ticking:
            ticking.start_soon(ticker)
            async with trio.open_nursery() as waiting_tasks:
                waiting_tasks.start_soon(bystander, release)
                while not bystander_waiting:
                    await sleep(0)
                result = await task()
                release.set()
            ticking.cancel_scope.cancel()
        return result

    print("result", trio.run(main))
else:

    async def main():
        release = asyncio.Event()
        ticking = asyncio.get_running_loop().create_task(ticker())
        waiting_task = asyncio.get_running_loop().create_task(bystander(release))
        while not bystander_waiting:
            await sleep(0)
        result = await task()
        release.set()
        await waiting_task
        ticking.cancel()
        return result

    print("result", asyncio.run(main()))
