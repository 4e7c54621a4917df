"""What a ``sys.settrace`` tracer started while frames are suspended sees of them once
they resume, natively and through anywait: a coroutine or generator frame resumed by
``send`` gets a ``call`` event, and the tracer's answer traces the rest of it; the sync
frames under ``await_`` (and ``yield_``) are given that event when their fiber resumes.

Usage: tracing_resumed.py CASE (portal-asyncio, portal-trio, generator, tracer_raises).
Prints JSON ``{"native": EVENTS, "anywait": EVENTS}``, each event ``[event, function,
line offset from the function's first line]`` for this file's frames of the twin.
Left out: the ``exception`` events of the StopIteration that carries a coroutine's or
generator's return value to the frame awaiting it (the sync twin returns its value);
a generator frame's ``return`` event at a ``yield`` is shown as ``yield`` (the sync
frames under ``yield_`` get none: see pystate/tracing.rs).
"""

import asyncio
import inspect
import json
import sys

import anywait

CASE = sys.argv[1]
TWIN_FUNCTIONS = {"task", "mid", "leaf", "wait_gate", "after", "gen", "inner"}
events = []


def name(code):
    return code.co_name.removeprefix("native_").removeprefix("sync_")


def record(frame, event, arg):
    code = frame.f_code
    if code.co_filename == __file__ and name(code) in TWIN_FUNCTIONS:
        if event == "exception" and arg[0] is StopIteration:
            return record
        events.append([event, name(code), frame.f_lineno - code.co_firstlineno])
        if CASE == "tracer_raises" and event == "call" and name(code) == "mid":
            raise LookupError("from the tracer")
    return record


def after(value):
    return value + 1


# -- portals: the twins have the same lines at the same offsets --------------------------


async def wait_gate(gate):
    await gate.wait()
    return 1


async def native_leaf(gate):
    value = await wait_gate(gate)
    return after(value)


async def native_mid(gate):
    return await native_leaf(gate)


def sync_leaf(gate):
    value = anywait.await_(wait_gate(gate))
    return after(value)


def sync_mid(gate):
    return sync_leaf(gate)


def portal_twin(through_anywait, backend):
    """A task blocked three frames deep; the tracer starts, then the gate opens."""
    outcome = []

    async def task(gate):
        if through_anywait:
            await anywait.ensure_portal()
        try:
            outcome.append(sync_mid(gate) if through_anywait else await native_mid(gate))
        except LookupError as exc:
            outcome.append(repr(exc))

    async def controller(gate, checkpoint):
        for _ in range(5):
            await checkpoint()
        sys.settrace(record)
        gate.set()

    if backend == "trio":
        import trio

        async def main():
            gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(task, gate)
                nursery.start_soon(controller, gate, trio.lowlevel.checkpoint)

        trio.run(main)
    else:

        async def main():
            gate = asyncio.Event()
            await asyncio.gather(task(gate), controller(gate, lambda: asyncio.sleep(0)))

        asyncio.run(main())
    sys.settrace(None)
    return outcome


# -- stackful generators: the native twin delegates with yield from ----------------------


def same_first_line(function):
    """The native twin's decorator: its lines then have the stackful twin's offsets."""
    return function


def native_inner():
    value = yield 1
    return after(value)


@same_first_line
def native_gen():
    total = yield from native_inner()
    yield total


def sync_inner():
    value = anywait.yield_(1)
    return after(value)


@anywait.generator
def sync_gen():
    total = sync_inner()
    anywait.yield_(total)


def generator_twin(through_anywait):
    gen = sync_gen() if through_anywait else native_gen()
    assert next(gen) == 1
    sys.settrace(record)
    outcome = gen.send(10)
    sys.settrace(None)
    if events[-1][:2] == ["return", "gen"] and inspect.getgeneratorstate(gen) == "GEN_SUSPENDED":
        events[-1][0] = "yield"  # the native generator's frame, leaving at its yield
    gen.close()
    return [outcome]


def run(through_anywait):
    events.clear()
    if CASE == "generator":
        outcome = generator_twin(through_anywait)
    else:
        outcome = portal_twin(through_anywait, "trio" if CASE == "portal-trio" else "asyncio")
    return {"outcome": outcome, "events": list(events)}


print(json.dumps({"native": run(False), "anywait": run(True)}))
