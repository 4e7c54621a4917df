"""greenlet inside portal tasks: sync code in a task with a portal starts greenlets, and
either calls ``await_`` inside one or (SQLAlchemy's pattern) hands awaitables to the
parent greenlet, which awaits them. greenlet keeps its own per-thread stack bookkeeping
(absolute stack addresses, the current greenlet), so mistakes here crash.

Each case runs a portal version and a native version (same program with native awaits
and no portals) and checks that the two logs are equal.

Usage: portal_greenlet.py CASE [BACKEND]. Prints "native: LOG", "portal: LOG" and
"ok CASE"; exits non-zero if the logs differ.
"""

import asyncio
import contextvars
import sys

import anywait
import greenlet


def run(backend, main):
    if backend == "trio":
        import trio

        return trio.run(main)
    return asyncio.run(main())


async def nap(backend, seconds=0.0):
    if backend == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def value_later(backend, value, seconds=0.001):
    await nap(backend, seconds)
    return value


def greenlet_spawn_and_run(fn, await_):
    """SQLAlchemy's greenlet_spawn, with the awaiting done by ``await_`` (a sync callable
    here; SQLAlchemy's own version is async and awaits natively): ``fn`` runs in a child
    greenlet and hands each awaitable to its parent with ``parent.switch``."""
    child = greenlet.greenlet(fn)
    result = child.switch()
    while not child.dead:
        try:
            value = await_(result)
        except BaseException:
            result = child.throw(*sys.exc_info())
        else:
            result = child.switch(value)
    return result


async def greenlet_spawn(fn):
    """SQLAlchemy's greenlet_spawn as it is (the parent awaits natively)."""
    child = greenlet.greenlet(fn)
    result = child.switch()
    while not child.dead:
        try:
            value = await result
        except BaseException:
            result = child.throw(*sys.exc_info())
        else:
            result = child.switch(value)
    return result


def await_only(awaitable):
    """SQLAlchemy's await_only: the child greenlet hands the awaitable to its parent."""
    return greenlet.getcurrent().parent.switch(awaitable)


# --- one task -------------------------------------------------------------------------


def await__inside_a_greenlet(backend):
    """A single portal task calls await_ (really suspending) inside a child greenlet,
    which then finishes and switches back to its parent."""

    async def native():
        log = ["start"]
        log.append(await value_later(backend, "slept"))
        log.append(await value_later(backend, "again"))
        return [*log, "done"]

    async def portal():
        await anywait.ensure_portal()

        def body():
            log = ["start"]
            log.append(anywait.await_(value_later(backend, "slept")))
            log.append(anywait.await_(value_later(backend, "again")))
            return [*log, "done"]

        return greenlet.greenlet(body).switch()

    return run(backend, native), run(backend, portal)


def await__in_the_parent_while_a_greenlet_is_suspended(backend):
    """SQLAlchemy's pattern with await_ in the parent: the child greenlet is suspended
    (its stack saved by greenlet) while the parent's sync code blocks in await_."""

    def body():
        log = [await_only(value_later(backend, "first"))]
        try:
            await_only(failing(backend))
        except KeyError as exc:
            log.append(repr(exc))
        log.append(await_only(value_later(backend, "second")))
        return log

    async def native():
        return await greenlet_spawn(body)

    async def portal():
        await anywait.ensure_portal()
        return greenlet_spawn_and_run(body, anywait.await_)

    return run(backend, native), run(backend, portal)


async def failing(backend):
    await nap(backend)
    raise KeyError("raised in the awaited coroutine")


def sqlalchemy_greenlet_spawn_in_one_portal_task(backend):
    """SQLAlchemy's greenlet_spawn unchanged (native awaits in the parent coroutine) in a
    task with a portal: each step may run on a different worker fiber, but with one
    task the same parked worker comes back."""

    def body():
        return [await_only(value_later(backend, "a")), await_only(value_later(backend, "b"))]

    async def native():
        return await greenlet_spawn(body)

    async def portal():
        await anywait.ensure_portal()
        return await greenlet_spawn(body)

    return run(backend, native), run(backend, portal)


# --- several tasks (asyncio only) -----------------------------------------------------


def two_tasks_each_suspend_inside_a_greenlet(backend):
    """Two portal tasks each call await_ inside their own child greenlet at once."""

    async def native():
        async def task(i):
            return [await value_later(backend, f"{i}.{k}", 0.001 * (2 - k)) for k in range(2)]

        return await asyncio.gather(task(0), task(1))

    async def portal():
        async def task(i):
            await anywait.ensure_portal()

            def body():
                return [
                    anywait.await_(value_later(backend, f"{i}.{k}", 0.001 * (2 - k)))
                    for k in range(2)
                ]

            return greenlet.greenlet(body).switch()

        return await asyncio.gather(task(0), task(1))

    return run(backend, native), run(backend, portal)


def a_plain_task_uses_greenlets_while_a_portal_task_is_suspended_in_one(backend):
    """A portal task blocks in await_ inside a greenlet; meanwhile a task without a
    portal runs SQLAlchemy's greenlet_spawn."""

    def body():
        return await_only(value_later(backend, "plain", 0.001)) + "!"

    async def native():
        async def portal_like():
            return await value_later(backend, "portal", 0.01)

        return await asyncio.gather(portal_like(), greenlet_spawn(body))

    async def portal():
        async def portal_task():
            await anywait.ensure_portal()
            return greenlet.greenlet(
                lambda: anywait.await_(value_later(backend, "portal", 0.01))
            ).switch()

        return await asyncio.gather(portal_task(), greenlet_spawn(body))

    return run(backend, native), run(backend, portal)


def sqlalchemy_greenlet_spawn_with_concurrent_portal_tasks(backend):
    """SQLAlchemy's greenlet_spawn in a portal task A, while portal task B blocks in
    await_ in between A's steps: A's next step runs on another worker fiber than the
    one its greenlet's stack was saved from."""

    def run_with(use_portal):
        log = []

        async def task_a(a_suspended, b_blocked):
            if use_portal:
                await anywait.ensure_portal()

            def body():
                log.append(await_only(a_suspended.wait()))
                return await_only(b_blocked.wait())

            log.append(await greenlet_spawn(body))

        async def task_b(a_suspended, b_blocked):
            if use_portal:
                await anywait.ensure_portal()
            a_suspended.set()
            await asyncio.sleep(0)
            b_blocked.set()
            if use_portal:  # blocks in await_, holding on to a worker fiber
                log.append(anywait.await_(asyncio.sleep(0.01, "b done")))
            else:
                log.append(await asyncio.sleep(0.01, "b done"))

        async def main():
            a_suspended, b_blocked = asyncio.Event(), asyncio.Event()
            await asyncio.gather(task_a(a_suspended, b_blocked), task_b(a_suspended, b_blocked))
            return log

        return asyncio.run(main())

    return run_with(False), run_with(True)


def other_tasks_see_their_own_current_greenlet(backend):
    """While a portal task is suspended in await_ inside a child greenlet, another task
    (without a portal) asks greenlet for the current greenlet: it must be the thread's
    main greenlet, as it is natively."""

    def seen_from_another_task():
        return greenlet.getcurrent().parent is None  # the main greenlet has no parent

    async def native():
        async def suspended():
            await value_later(backend, "x", 0.01)

        async def other():
            await asyncio.sleep(0.001)
            return seen_from_another_task()

        return (await asyncio.gather(suspended(), other()))[1]

    async def portal():
        async def suspended():
            await anywait.ensure_portal()
            greenlet.greenlet(lambda: anywait.await_(value_later(backend, "x", 0.01))).switch()

        async def other():
            await asyncio.sleep(0.001)
            return seen_from_another_task()

        return (await asyncio.gather(suspended(), other()))[1]

    return run(backend, native), run(backend, portal)


where = contextvars.ContextVar("where", default="unset")


async def read_then_set(backend, log):
    log.append(f"awaited sees {where.get()}")
    await nap(backend, 0.001)
    log.append(f"after a suspension {where.get()}")
    where.set("set by the awaitable")


def await__in_a_greenlet_runs_in_the_greenlets_context(backend):
    """What await_ is given runs in the context current where it is called, as await
    would run it: a new greenlet's (empty) context, or the one given as gr_context;
    what it sets is seen by the caller and not by the task. Natively, the same body
    runs in a task started in that context."""

    def body(log):
        log.append(f"caller sees {where.get()}")
        return log

    async def native_body(log):
        body(log)
        await read_then_set(backend, log)
        log.append(f"caller then sees {where.get()}")

    async def in_new_task(context, log):
        if backend == "trio":
            import trio

            async with trio.open_nursery() as nursery:
                context.run(nursery.start_soon, native_body, log)
        else:
            await context.run(asyncio.ensure_future, native_body(log))

    async def native():
        where.set("task")
        empty, copied = [], []
        await in_new_task(contextvars.Context(), empty)
        await in_new_task(contextvars.copy_context(), copied)
        return [empty, copied, f"task sees {where.get()}"]

    def greenlet_body(log):
        body(log)
        anywait.await_(read_then_set(backend, log))
        log.append(f"caller then sees {where.get()}")

    async def portal():
        where.set("task")
        await anywait.ensure_portal()
        empty, copied = [], []
        greenlet.greenlet(greenlet_body).switch(empty)
        child = greenlet.greenlet(greenlet_body)
        child.gr_context = contextvars.copy_context()
        child.switch(copied)
        return [empty, copied, f"task sees {where.get()}"]

    return run(backend, native), run(backend, portal)


CASES = {
    f.__name__: f
    for f in [
        await__inside_a_greenlet,
        await__in_the_parent_while_a_greenlet_is_suspended,
        sqlalchemy_greenlet_spawn_in_one_portal_task,
        two_tasks_each_suspend_inside_a_greenlet,
        a_plain_task_uses_greenlets_while_a_portal_task_is_suspended_in_one,
        sqlalchemy_greenlet_spawn_with_concurrent_portal_tasks,
        other_tasks_see_their_own_current_greenlet,
        await__in_a_greenlet_runs_in_the_greenlets_context,
    ]
}

if __name__ == "__main__":
    case = sys.argv[1]
    backend = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    native, portal = CASES[case](backend)
    print(f"native: {native}", flush=True)
    print(f"portal: {portal}", flush=True)
    if native != portal:
        sys.exit("the portal log differs from the native one")
    print(f"ok {case}")
