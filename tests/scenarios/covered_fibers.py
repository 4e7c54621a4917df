"""Run under ``coverage run``: every line ending in the marker comment executes only
inside a fiber, and the test checks coverage reports each of them as executed."""

import threading

from anywait.lowlevel import Fiber, suspend


def inner():
    value = suspend("inner suspended")  # covered in a fiber
    return value * 2  # covered in a fiber


def numbers():
    yield suspend("in a generator")  # covered in a fiber
    yield 2  # covered in a fiber


def body():
    first = suspend("first")  # covered in a fiber
    nested = Fiber(inner)  # covered in a fiber
    nested.switch()  # covered in a fiber
    second = nested.switch(first)  # covered in a fiber
    total = sum(numbers()) + second  # covered in a fiber
    try:  # covered in a fiber
        suspend("last")  # covered in a fiber
    finally:
        print("unwound", total)  # covered in a fiber


def on_thread():
    fiber = Fiber(lambda: suspend() or "thread fiber")  # covered in a fiber
    fiber.switch()
    return fiber.switch()


fiber = Fiber(body)
assert fiber.switch() == "first"
assert fiber.switch(1) == "in a generator"
assert fiber.switch(1) == "last"
del fiber  # unwound by the garbage collector: its finally runs
results = []
thread = threading.Thread(target=lambda: results.append(on_thread()))
thread.start()
thread.join()
assert results == ["thread fiber"], results
