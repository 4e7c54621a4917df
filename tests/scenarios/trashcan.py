"""Deallocating very deep structures in fibers (CPython's "trashcan" defers the inner
levels to avoid deep C recursion, with per-thread state that must follow each stack).

Usage: trashcan.py CASE. Prints "ok CASE" on success.
"""

import gc
import sys
import weakref

from anywait.lowlevel import Fiber, suspend

DEPTH = 200_000


class Sentinel:
    pass


def nested(depth=DEPTH, innermost=None):
    structure = [innermost]
    for _ in range(depth):
        structure = [structure]
    return structure


def watched():
    sentinel = Sentinel()
    return nested(innermost=sentinel), weakref.ref(sentinel)


def dropped_inside_a_fiber():
    structure, alive = watched()
    holder = [structure]
    del structure
    Fiber(holder.clear).switch()
    assert alive() is None


def built_in_a_fiber_dropped_outside():
    structure, alive = Fiber(watched).switch()
    del structure
    assert alive() is None


def dropped_while_the_fiber_is_suspended_mid_dealloc():
    """A __del__ deep inside a trashcan-deferred deallocation suspends the fiber; the
    thread's own stack then deallocates deep structures too; then the fiber resumes."""

    class SuspendInDel:
        def __del__(self):
            suspend("suspended in __del__")

    def drop():
        structure = nested(innermost=[SuspendInDel(), nested()])
        del structure
        return "dealloc finished"

    fiber = Fiber(drop)
    assert fiber.switch() == "suspended in __del__"
    outside, alive = watched()
    del outside
    assert alive() is None
    assert fiber.switch() == "dealloc finished"


def two_fibers_suspended_mid_dealloc():
    class SuspendInDel:
        def __del__(self):
            suspend("suspended in __del__")

    def drop():
        structure, alive = watched()
        structure[0][0].append(SuspendInDel())
        structure = nested(innermost=structure)
        del structure
        return alive() is None

    first, second = Fiber(drop), Fiber(drop)
    assert first.switch() == "suspended in __del__"
    assert second.switch() == "suspended in __del__"
    assert first.switch() is True
    assert second.switch() is True


def collected_cycles_of_deep_structures_in_a_fiber():
    def build_and_collect():
        for _ in range(3):
            structure = nested(50_000)
            structure.append(structure)  # a cycle: freed by the collector
            del structure
            gc.collect()
            suspend()
        return "collected"

    fiber = Fiber(build_and_collect)
    for _ in range(3):
        fiber.switch()
        gc.collect()
    assert fiber.switch() == "collected"


CASES = {
    f.__name__: f
    for f in [
        dropped_inside_a_fiber,
        built_in_a_fiber_dropped_outside,
        dropped_while_the_fiber_is_suspended_mid_dealloc,
        two_fibers_suspended_mid_dealloc,
        collected_cycles_of_deep_structures_in_a_fiber,
    ]
}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print("ok", sys.argv[1])
