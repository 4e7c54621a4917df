"""Unbounded recursion inside a fiber must raise RecursionError, never crash.

Usage: recursion_overflow.py CASE  (CASE is a key of CASES). Prints "ok CASE" and exits
0 when the recursion ended in RecursionError; any crash shows up as the exit status, with
faulthandler's traceback on stderr.
"""

import json
import sys
import threading

from anywait.lowlevel import Fiber, suspend

NESTING = 100_000


def python_recursion():
    def recurse():
        recurse()

    recurse()


def python_recursion_with_a_high_limit():
    # Python-to-Python calls use no C stack, so a high limit is still safe.
    sys.setrecursionlimit(NESTING)
    python_recursion()


def nested_list():
    nested = []
    for _ in range(NESTING):
        nested = [nested]
    return nested


def nested_list_repr():
    repr(nested_list())


def nested_list_json():
    json.dumps(nested_list())


class ReprChain:
    def __init__(self, inner):
        self.inner = inner

    def __repr__(self):
        return f"ReprChain({self.inner!r})"  # PyObject_Repr (C) -> __repr__ (Python)


def repr_chain():
    chain = None
    for _ in range(NESTING):
        chain = ReprChain(chain)
    repr(chain)


class GetattrLoop:
    def __getattr__(self, name):
        return getattr(self, name)  # C slot -> Python, without end


def getattr_loop():
    return GetattrLoop().missing


C_CASES = [nested_list_repr, nested_list_json, repr_chain, getattr_loop]


def expect_recursion_error(work, *args):
    try:
        work(*args)
    except RecursionError:
        return "RecursionError"
    return "no error"


def in_fiber(work):
    assert Fiber(expect_recursion_error, work).switch() == "RecursionError"


def escaping_the_fiber(work):
    try:
        Fiber(work).switch()
    except RecursionError:
        return
    raise AssertionError("RecursionError did not escape the fiber")


def from_a_deep_caller(work):
    def descend(depth):
        if depth:
            return descend(depth - 1)
        return Fiber(expect_recursion_error, work).switch()

    assert descend(sys.getrecursionlimit() - 100) == "RecursionError"


def in_a_nested_fiber(work):
    def level(depth):
        def descend(n):
            return descend(n - 1) if n else level(depth - 1)

        if depth == 0:
            return expect_recursion_error(work)
        return Fiber(descend, 300).switch()

    assert Fiber(level, 3).switch() == "RecursionError"


def after_suspending(work):
    def suspend_then_overflow():
        suspend()
        return expect_recursion_error(work)

    fiber = Fiber(suspend_then_overflow)
    fiber.switch()
    assert expect_recursion_error(work) == "RecursionError"  # the thread's own stack
    assert fiber.switch() == "RecursionError"


def many_times(work):
    for _ in range(20):
        in_fiber(work)


def on_a_thread(work):
    results = []
    thread = threading.Thread(
        target=lambda: results.append(Fiber(expect_recursion_error, work).switch())
    )
    thread.start()
    thread.join()
    assert results == ["RecursionError"]


def then_keep_working(work):
    def overflow_then_suspend():
        outcome = expect_recursion_error(work)
        return suspend(outcome) + expect_recursion_error(work)

    fiber = Fiber(overflow_then_suspend)
    assert fiber.switch() == "RecursionError"
    assert fiber.switch("again: ") == "again: RecursionError"


WORK = {f.__name__: f for f in [python_recursion, python_recursion_with_a_high_limit, *C_CASES]}
HOW = {
    f.__name__: f
    for f in [
        in_fiber,
        escaping_the_fiber,
        from_a_deep_caller,
        in_a_nested_fiber,
        after_suspending,
        many_times,
        on_a_thread,
        then_keep_working,
    ]
}

if __name__ == "__main__":
    work_name, how_name = sys.argv[1], sys.argv[2]
    HOW[how_name](WORK[work_name])
    print("ok", work_name, how_name)
