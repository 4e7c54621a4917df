"""coverage started, or stopped, while tasks are blocked waiting, run by
tests/test_debuggers.py: three tasks wait at different depths of frames; coverage starts
(or stops) from the main task while they wait; then they are released and finish.

Usage: coverage_midrun.py MODE ACTION DATA_FILE. MODE ``await_`` (the frames are sync
functions under portals, waiting with ``anywait.await_``, every task a portal task,
the main one included, through ``anywait.run``) or ``native`` (the twin: the same
functions async, waiting with ``await``, on ``asyncio.run``); ACTION ``start`` (coverage
starts while they wait, then calls their function afresh, so that a core which turns
line events on per function on its first call after starting turns them on for it),
``stop`` (it stops while they wait) or ``throughout`` (it runs from before they start to
after they finish). The core is COVERAGE_CORE's. Prints one JSON object: the core coverage used,
the workers' results, and the lines of this file it measured and the file's statements.

Markers the test reads: ``# covered after start`` (in the helpers both twins call once
released: each must be measured when coverage started while they waited, and none when
it stopped), ``# covered before stop`` (run before the wait), ``# resumed`` (the lines a
waiting frame runs after it is released; compared with the twin's) and ``# the wait``
(the lines that differ between the twins, left out of every comparison); ``# a fresh
call`` runs only in the call made afresh after coverage starts. The twins'
functions have the same names, shapes and offsets from their ``def`` lines.
"""

import asyncio
import json
import sys

import anywait
import coverage

MODE, ACTION, DATA_FILE = sys.argv[1:4]
DEPTHS = (0, 1, 3)
waiting = []


def before_wait(levels):
    waiting.append(levels)  # covered before stop
    return levels  # covered before stop


def after_wake(levels):
    total = levels * 10  # covered after start
    for i in range(levels + 1):  # covered after start
        total += i  # covered after start
    return total  # covered after start


def unwound(levels, total):
    if levels % 2:  # covered after start
        return total + 1  # covered after start
    return total + 2  # covered after start


if MODE == "await_":

    def blocked(levels, release):
        if release is None:
            return 0  # a fresh call
        if levels:
            total = blocked(levels - 1, release)  # the wait
            return unwound(levels, total)  # resumed
        anywait.await_(release.wait())  # the wait
        return after_wake(len(waiting))  # resumed

    async def worker(levels, release):
        await anywait.ensure_portal()
        before_wait(levels)
        return blocked(levels, release)  # the wait

    async def call_afresh():
        return blocked(0, None)

else:

    async def blocked(levels, release):
        if release is None:
            return 0  # a fresh call
        if levels:
            total = await blocked(levels - 1, release)  # the wait
            return unwound(levels, total)  # resumed
        await release.wait()  # the wait
        return after_wake(len(waiting))  # resumed

    async def worker(levels, release):
        await asyncio.sleep(0)
        before_wait(levels)
        return await blocked(levels, release)  # the wait

    async def call_afresh():
        return await blocked(0, None)


async def main():
    cov = coverage.Coverage(data_file=DATA_FILE, config_file=False)
    release = asyncio.Event()
    if ACTION != "start":
        cov.start()
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(worker(levels, release)) for levels in DEPTHS]
    while len(waiting) < len(DEPTHS):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    if ACTION == "start":
        cov.start()
        await call_afresh()
    elif ACTION == "stop":
        cov.stop()
    release.set()
    results = await asyncio.gather(*tasks)
    if ACTION != "stop":
        cov.stop()
    cov.save()
    data = cov.get_data()
    (measured,) = [name for name in data.measured_files() if name.endswith("coverage_midrun.py")]
    statements = cov.analysis2(measured)[1]
    return {
        "core": dict(cov.sys_info())["core"],
        "results": results,
        "lines": sorted(data.lines(measured)),
        "statements": statements,
    }


report = anywait.run(main) if MODE == "await_" else asyncio.run(main())
print(json.dumps(report))
