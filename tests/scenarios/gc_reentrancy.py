"""The garbage collector and finalizers run Python code at arbitrary allocation points,
including in the middle of fiber operations; that code may itself switch fibers.

Usage: gc_reentrancy.py CASE. Prints "ok CASE".
"""

import gc
import sys

from anywait.lowlevel import Fiber, suspend

switched_in_finalizers = 0


class SwitchesWhenCollected:
    """Part of a reference cycle; its finalizer starts, suspends and finishes a fiber."""

    def __init__(self):
        self.cycle = self

    def __del__(self):
        global switched_in_finalizers
        fiber = Fiber(lambda: suspend("in __del__") + "!")
        assert fiber.switch() == "in __del__"
        assert fiber.switch("done") == "done!"
        switched_in_finalizers += 1


class DropsSuspendedFiberWhenCollected:
    """Part of a reference cycle, holding a suspended fiber that is unwound when the
    cycle is collected."""

    def __init__(self):
        self.cycle = self
        self.fiber = Fiber(lambda: suspend() and None)
        self.fiber.switch()


def ping_pong(rounds, make_garbage):
    def echo():
        value = suspend()
        while True:
            make_garbage()
            value = suspend(value + 1)

    fiber = Fiber(echo)
    fiber.switch()
    for n in range(rounds):
        make_garbage()
        assert fiber.switch(n) == n + 1
    fiber.close()


def collections_during_switches_run_finalizers_that_switch():
    gc.set_threshold(5, 1, 1)
    ping_pong(3000, SwitchesWhenCollected)
    gc.collect()
    assert switched_in_finalizers > 1000, switched_in_finalizers


def collections_during_switches_unwind_garbage_fibers():
    gc.set_threshold(5, 1, 1)
    ping_pong(3000, DropsSuspendedFiberWhenCollected)
    gc.collect()


def collections_inside_nested_fibers():
    gc.set_threshold(3, 1, 1)

    def level(depth):
        SwitchesWhenCollected()
        DropsSuspendedFiberWhenCollected()
        if depth:
            child = Fiber(level, depth - 1)
            while not child.dead:
                child.switch()
                suspend()

    for _ in range(30):
        top = Fiber(level, 6)
        while not top.dead:
            top.switch()
    gc.collect()


def collections_while_fibers_are_suspended_in_generators_with_frames():
    """Suspended fibers whose frames (generator frames among them, and frame objects
    handed out and put in reference cycles) hold the only references to their data:
    collections must neither free that data nor corrupt it."""

    class Node:
        def __init__(self, value):
            self.value = value
            self.cycle = self

    def gen(n):
        node = Node([n] * 3)
        yield suspend(sys._getframe())
        yield node.value

    def body(n):
        local = Node(("local", n))
        values = list(gen(n))
        return local.value, values

    fibers = [Fiber(body, n) for n in range(200)]
    frames = [fiber.switch() for fiber in fibers]
    cycles = []
    for frame in frames:
        holder = [frame]
        holder.append(holder)
        cycles.append(holder)
    del frames, holder
    for _ in range(5):
        gc.collect()
    cycles.clear()
    gc.collect()
    for n, fiber in enumerate(fibers):
        assert fiber.switch("resumed") == (("local", n), ["resumed", [n] * 3])


CASES = {
    f.__name__: f
    for f in [
        collections_during_switches_run_finalizers_that_switch,
        collections_during_switches_unwind_garbage_fibers,
        collections_inside_nested_fibers,
        collections_while_fibers_are_suspended_in_generators_with_frames,
    ]
}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print("ok", sys.argv[1])
