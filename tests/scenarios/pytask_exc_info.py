"""What a portal step reads from ``sys.exc_info()`` when the pure-Python ``Task`` runs
it from inside ``except`` (its ``__wakeup`` after the awaited future failed), against
the same step run natively.

Usage: pytask_exc_info.py plain|greenlet. ``greenlet`` imports greenlet first, so that
anywait's steps run through its greenlet bridge. Prints JSON ``[native, portal]``.
"""

import asyncio
import contextlib
import json
import sys

if sys.argv[1] == "greenlet":
    import greenlet  # noqa: F401

import anywait


async def probe():
    return repr(sys.exc_info()[1])


async def main(through_portal):
    loop = asyncio.get_running_loop()
    failed = loop.create_future()
    loop.call_soon(failed.set_exception, KeyError("from the future"))
    with contextlib.suppress(KeyError):
        await failed
    if through_portal:
        return await anywait.with_portal_run(probe)
    return await probe()


def run(through_portal):
    loop = asyncio.new_event_loop()
    loop.set_task_factory(lambda loop, coro, **kw: asyncio.tasks._PyTask(coro, loop=loop, **kw))
    try:
        return loop.run_until_complete(main(through_portal))
    finally:
        loop.close()


print(json.dumps([run(False), run(True)]))
