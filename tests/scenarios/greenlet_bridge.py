"""await_ inside greenlets that sync code starts in portal steps (SQLAlchemy's pattern),
with many such tasks at once, plain tasks switching greenlets of their own meanwhile,
cancellation arriving inside a greenlet, and worker threads that exit with bridged
workers parked. A crash here means greenlet's view of the thread went out of step
with the fibers.

Usage: greenlet_bridge.py asyncio|trio. Prints "ok BACKEND".
"""

import asyncio
import contextvars
import sys
import threading

import anywait
import greenlet

backend = sys.argv[1]
request_id = contextvars.ContextVar("request_id", default=None)

if backend == "trio":
    import trio

    sleep = trio.sleep
else:
    sleep = asyncio.sleep


def in_greenlet(n):
    anywait.await_(sleep(0.001))
    back = greenlet.getcurrent().parent.switch(n + 1)  # to the sync code that started us
    anywait.await_(sleep(0))
    return back * 2


def sync_job(n):
    """Sync code in a portal task: a greenlet that awaits, suspended across await_."""
    request_id.set(n)
    child = greenlet.greenlet(in_greenlet)
    first = child.switch(n)
    anywait.await_(sleep(0))
    assert request_id.get() == n  # the task's context, not the greenlet's
    second = child.switch(first)
    return first, second


def cancelled_in_greenlet(log):
    def body():
        try:
            anywait.await_(sleep(10))
        finally:
            log.append("greenlet finally")

    greenlet.greenlet(body).switch()


def plain_switching():
    """Greenlet use in a task without a portal, on the loop's own stack."""
    total = 0
    for i in range(5):
        g = greenlet.greenlet(lambda x: greenlet.getcurrent().parent.switch(x) + 1)
        total += g.switch(i)
        g.switch(0)
    return total


async def job(n):
    return await anywait.with_portal_run_sync(sync_job, n)


async def plain():
    total = 0
    for _ in range(20):
        total += plain_switching()
        await sleep(0)
    return total


async def asyncio_main():
    log = []
    results = await asyncio.gather(plain(), *(job(n) for n in range(50)))
    assert results[0] == 200
    assert results[1:] == [(n + 1, 2 * (n + 1)) for n in range(50)]
    try:
        async with asyncio.timeout(0.01):
            await anywait.with_portal_run_sync(cancelled_in_greenlet, log)
    except TimeoutError:
        log.append("timeout")
    assert log == ["greenlet finally", "timeout"], log


async def trio_main():
    log = []
    results = {}

    async def run_job(n):
        results[n] = await job(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(plain)
        for n in range(50):
            nursery.start_soon(run_job, n)
    assert results == {n: (n + 1, 2 * (n + 1)) for n in range(50)}
    with trio.move_on_after(0.01):
        await anywait.with_portal_run_sync(cancelled_in_greenlet, log)
        log.append("not cancelled")
    assert log == ["greenlet finally"], log


def run_loop():
    if backend == "trio":
        trio.run(trio_main)
    else:
        asyncio.run(asyncio_main())


run_loop()
# Threads whose bridged workers are parked when they exit (their runners are leaked).
threads = [threading.Thread(target=run_loop) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
run_loop()


async def stray_switch():
    """Code that switches to the parent of the greenlet running the step (thinking it
    is its own greenlet) fails that task with a RuntimeError; the program goes on."""
    await anywait.ensure_portal()
    greenlet.getcurrent().parent.switch("not anywait's message")


try:
    anywait.run(stray_switch, backend=backend)
    stray_error = "the stray switch went unnoticed"
except RuntimeError as exc:
    stray_error = str(exc)
assert "switched into anywait's step machinery" in stray_error, stray_error
run_loop()
print("ok", backend)
