"""The collector runs while tasks are blocked in ``await_`` (and fibers are suspended):
what their frames hold must be exactly what it was when they resume, whether the
collector was shown it or not. Each case runs natively (``await``, a generator) and
through anywait, with collections forced while the twin is suspended, and prints both
logs; the test compares them.

Usage: gc_blocked.py CASE. Prints "native: LOG" and "anywait: LOG".
"""

import asyncio
import gc
import sys

import anywait
import anywait.lowlevel

log = []
sys.unraisablehook = lambda u: log.append(f"unraisable {u.exc_type.__name__}: {u.exc_value}")


def new_loop():
    """An event loop whose slow-callback report is off (60 s): dev mode's report is about
    timing, not this scenario's subject, and under emulation (arm64 on qemu) one full
    collection takes longer than its 0.1 s."""
    loop = asyncio.new_event_loop()
    loop.slow_callback_duration = 60.0
    return loop


def cycle(tag):
    """A list that holds itself: tracked, and garbage unless something else holds it."""
    node = [tag]
    node.append(node)
    return node


def intact(node, tag):
    return node[0] == tag and node[1] is node


async def collector(rounds):
    """Collects while the other task is blocked."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        gc.collect()


async def checkpoint(value):
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return value


def run_twins(native, through_anywait):
    async def with_collector(coro, portal):
        if portal:
            await anywait.ensure_portal()
        task = asyncio.ensure_future(collector(4))
        result = await coro
        await task
        return result

    out = {}
    for name, make, portal in (("native", native, False), ("anywait", through_anywait, True)):
        log.clear()
        with asyncio.Runner(loop_factory=new_loop) as runner:
            result = runner.run(with_collector(make(), portal))
        gc.collect()
        out[name] = (result, list(log))
    return out


def stack_values():
    """Temporaries on the value stacks of the blocked frames (a coroutine's, and sync
    frames' while they call), some of them cycles only those stacks hold."""

    async def native_leaf():
        return await checkpoint(3)

    def sync_leaf():
        return anywait.await_(checkpoint(3))

    async def native_mid():
        parts = [cycle("mid"), {"k": cycle("dict")}, await native_leaf()]
        return intact(parts[0], "mid") and intact(parts[1]["k"], "dict") and parts[2]

    def sync_mid():
        parts = [cycle("mid"), {"k": cycle("dict")}, sync_leaf()]
        return intact(parts[0], "mid") and intact(parts[1]["k"], "dict") and parts[2]

    async def inner_native():
        return (cycle("inner"), await native_mid())

    async def inner_sync():
        return (cycle("inner"), sync_mid())

    async def native():
        pair = (cycle("outer"), await inner_native())
        return intact(pair[0], "outer") and intact(pair[1][0], "inner") and pair[1][1]

    async def through_anywait():
        pair = (cycle("outer"), await inner_sync())
        return intact(pair[0], "outer") and intact(pair[1][0], "inner") and pair[1][1]

    return run_twins(native, through_anywait)


def deep_chain():
    """More nested coroutines than the view records: nothing reported, all intact."""

    async def native_at(depth):
        node = cycle(depth)
        value = await (checkpoint(1) if depth == 0 else native_at(depth - 1)) + (depth > 0)
        return value if intact(node, depth) else -1

    async def sync_at(depth):
        node = cycle(depth)
        value = anywait.await_(checkpoint(1)) if depth == 0 else await sync_at(depth - 1) + 1
        return value if intact(node, depth) else -1

    return run_twins(lambda: native_at(40), lambda: sync_at(40))


def collect_in_step():
    """Collections inside the blocked step itself, around and between its awaits."""

    async def native():
        node = cycle("here")
        gc.collect()
        await checkpoint(None)
        gc.collect()
        await checkpoint(None)
        return intact(node, "here")

    def sync():
        node = cycle("here")
        gc.collect()
        anywait.await_(checkpoint(None))
        gc.collect()
        anywait.await_(checkpoint(None))
        return intact(node, "here")

    async def through_anywait():
        return sync()

    return run_twins(native, through_anywait)


def held_from_outside():
    """A blocked coroutine in a cycle that something outside also holds: kept (and its
    frames' objects with it) until that reference goes."""
    keep = []

    async def native(holder):
        try:
            await checkpoint(None)
            await asyncio.sleep(3600)
        finally:
            log.append(f"finally, holder has {len(holder)}")

    def sync():
        anywait.await_(checkpoint(None))
        anywait.await_(asyncio.sleep(3600))

    async def through_anywait(holder):
        await anywait.ensure_portal()
        try:
            sync()
        finally:
            log.append(f"finally, holder has {len(holder)}")

    async def main(make):
        holder = []
        coro = make(holder)
        keep.append(coro)
        task = asyncio.ensure_future(coro)
        holder.append(task)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        del task, holder, coro
        gc.collect()
        log.append(f"collected with an outside reference: {len(log)}")

    out = {}
    for name, make in (("native", native), ("anywait", through_anywait)):
        log.clear()
        keep.clear()
        loop = new_loop()
        loop.run_until_complete(main(make))
        for task in asyncio.all_tasks(loop):
            task.cancel()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()
        keep.clear()
        gc.collect()
        out[name] = list(log)
    return out


def fiber_stack():
    """A suspended ``lowlevel.Fiber`` in the middle of an expression, collected over."""

    def body():
        parts = [cycle("a"), {"k": cycle("b")}, anywait.lowlevel.suspend("parked")]
        return intact(parts[0], "a") and intact(parts[1]["k"], "b") and parts[2]

    def gen():
        parts = [cycle("a"), {"k": cycle("b")}, (yield "parked")]
        return intact(parts[0], "a") and intact(parts[1]["k"], "b") and parts[2]

    out = {}
    for name in ("native", "anywait"):
        if name == "anywait":
            fiber = anywait.lowlevel.Fiber(body)
            first = fiber.switch()
        else:
            g = gen()
            first = next(g)
        for _ in range(3):
            gc.collect()
        if name == "anywait":
            result = fiber.switch("value")
        else:
            try:
                g.send("value")
            except StopIteration as stop:
                result = stop.value
        out[name] = (first, result)
    return out


case = sys.argv[1]
results = globals()[case]()
for name in ("native", "anywait"):
    print(f"{name}: {results[name]!r}")
