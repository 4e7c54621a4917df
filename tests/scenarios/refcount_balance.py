"""Does one fiber operation leak references or memory blocks?

Usage: refcount_balance.py OPERATION MEASURE BATCH. MEASURE is ``refs``
(sys.gettotalrefcount, debug builds) or ``blocks`` (sys.getallocatedblocks). Runs the
operation BATCH times per batch, warms up, then prints one JSON list: the growth of the
measure over each of the following batches.
"""

import contextvars
import gc
import json
import sys

from anywait.lowlevel import Fiber, FiberExit, current, suspend

var = contextvars.ContextVar("var", default=None)


class Marker:
    pass


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError(f"{fn} did not raise {exc_type.__name__}")


def body(arg, *, kw):
    value = suspend(arg)
    return [value, kw]


def start_and_finish():
    assert Fiber(lambda a, *, kw: (a, kw), Marker(), kw=Marker()).switch()


def suspend_and_resume_then_finish():
    fiber = Fiber(body, Marker(), kw=Marker())
    fiber.switch()
    fiber.switch(Marker())


def ping_pong_many_values():
    def echo():
        value = suspend()
        while value is not None:
            value = suspend([value])

    fiber = Fiber(echo)
    fiber.switch()
    for _ in range(10):
        fiber.switch(Marker())
    fiber.switch(None)


def close_suspended():
    fiber = Fiber(body, Marker(), kw=Marker())
    fiber.switch()
    fiber.close()


def drop_suspended():
    fiber = Fiber(body, Marker(), kw=Marker())
    fiber.switch()
    del fiber


def close_refused_then_finished():
    def refuse_once():
        try:
            suspend()
        except FiberExit:
            suspend(Marker())

    fiber = Fiber(refuse_once)
    fiber.switch()
    raises(RuntimeError, fiber.close)
    fiber.switch()


def throw_caught():
    def catch():
        try:
            suspend()
        except ValueError as exc:
            return exc

    fiber = Fiber(catch)
    fiber.switch()
    fiber.throw(ValueError(Marker()))


def throw_uncaught():
    fiber = Fiber(body, Marker(), kw=Marker())
    fiber.switch()
    raises(ValueError, fiber.throw, ValueError)


def exception_escapes_with_traceback():
    def fail(payload):
        local = Marker()  # noqa: F841
        raise KeyError(payload)

    exc = raises(KeyError, Fiber(fail, Marker()).switch)
    assert exc.__traceback__ is not None


def throw_or_close_before_start():
    raises(ValueError, Fiber(body, Marker(), kw=Marker()).throw, ValueError(Marker()))
    Fiber(body, Marker(), kw=Marker()).close()


def misuse_errors():
    fiber = Fiber(lambda: None)
    raises(TypeError, fiber.switch, Marker())
    fiber.switch()
    raises(RuntimeError, fiber.switch)
    raises(RuntimeError, suspend, Marker())


def nested_fibers():
    def outer():
        inner = Fiber(body, Marker(), kw=Marker())
        inner.switch()
        suspend(current())
        return inner.switch(Marker())

    fiber = Fiber(outer)
    fiber.switch()
    fiber.switch()


def exception_state_across_switches():
    def handle_and_suspend():
        try:
            raise ValueError(Marker())
        except ValueError:
            suspend()
            suspend(sys.exc_info())

    fiber = Fiber(handle_and_suspend)
    try:
        raise KeyError(Marker())
    except KeyError:
        fiber.switch()
        fiber.switch()
    fiber.switch()


def context_variables():
    def set_and_suspend():
        var.set(Marker())
        suspend()
        return var.get()

    var.set(Marker())
    fiber = Fiber(set_and_suspend)
    fiber.switch()
    fiber.switch()


def frames_handed_out():
    def hand_out_frame():
        suspend(sys._getframe())
        return sys._getframe()

    fiber = Fiber(hand_out_frame)
    frame = fiber.switch()
    assert frame.f_locals is not None
    assert fiber.switch().f_code is not None


def generator_in_a_fiber():
    def gen():
        yield suspend(Marker())
        yield Marker()

    fiber = Fiber(lambda: list(gen()))
    fiber.switch()
    fiber.switch(Marker())


def deep_recursion_error():
    def recurse():
        recurse()

    raises(RecursionError, Fiber(recurse).switch)


OPERATIONS = {
    f.__name__: f
    for f in [
        start_and_finish,
        suspend_and_resume_then_finish,
        ping_pong_many_values,
        close_suspended,
        drop_suspended,
        close_refused_then_finished,
        throw_caught,
        throw_uncaught,
        exception_escapes_with_traceback,
        throw_or_close_before_start,
        misuse_errors,
        nested_fibers,
        exception_state_across_switches,
        context_variables,
        frames_handed_out,
        generator_in_a_fiber,
        deep_recursion_error,
    ]
}


def measure(kind):
    gc.collect()
    if kind == "refs":
        return sys.gettotalrefcount()
    return sys.getallocatedblocks()


if __name__ == "__main__":
    operation, kind, batch = OPERATIONS[sys.argv[1]], sys.argv[2], int(sys.argv[3])
    sys.setrecursionlimit(200)  # keeps deep_recursion_error cheap
    growth = []
    for _ in range(9):
        before = measure(kind)
        for _ in range(batch):
            operation()
        growth.append(measure(kind) - before)
    print(json.dumps(growth[3:]))  # the first batches warm up caches and pools
