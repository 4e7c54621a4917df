"""fork() with fibers alive: the child can keep using them.

Usage: fork.py CASE. The parent forks, the child checks what it must and exits with 0 on
success (os._exit), and the parent exits with the child's status (or 1 on a crash).
"""

import gc
import os
import queue
import sys
import threading
import warnings

from anywait.lowlevel import Fiber, current, suspend


def counter(start):
    total = start
    try:
        while True:
            total += suspend(total)
    finally:
        print(f"unwound in {'child' if os.getpid() != PARENT else 'parent'}", flush=True)


def suspended_counters(count):
    fibers = [Fiber(counter, n) for n in range(count)]
    for n, fiber in enumerate(fibers):
        assert fiber.switch() == n
    return fibers


def fork_and_check(in_child, in_parent=lambda: None):
    """Run in_child in a forked child; return its exit status to the caller."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            in_child()
            sys.stdout.flush()
        except BaseException:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    in_parent()  # after the child, so that their output does not interleave
    if os.WIFSIGNALED(status):
        print(f"child killed by signal {os.WTERMSIG(status)}", file=sys.stderr)
        return 1
    return os.WEXITSTATUS(status)


def child_resumes_the_parents_fibers():
    fibers = suspended_counters(10)

    def resume_all():
        for n, fiber in enumerate(fibers):
            assert fiber.switch(100) == n + 100
        for fiber in fibers:
            fiber.close()
        assert all(fiber.dead for fiber in fibers)

    return fork_and_check(resume_all, resume_all)


def child_drops_the_parents_fibers():
    fibers = suspended_counters(3)

    def drop_all():
        fibers.clear()
        gc.collect()

    return fork_and_check(drop_all)


def child_makes_new_fibers():
    kept = suspended_counters(3)  # noqa: F841

    def ping_pong():
        fiber = Fiber(lambda: [suspend(n) for n in range(1000)])
        fiber.switch()
        for n in range(1000):
            result = fiber.switch(n)
        assert result == list(range(1000)), result
        assert Fiber(current).switch() is not None

    return fork_and_check(ping_pong, ping_pong)


def fork_inside_a_fiber():
    def body():
        pid = os.fork()
        inner = Fiber(lambda: suspend("inner") + 1)
        assert inner.switch() == "inner"
        value = suspend(pid)
        return inner.switch(value)

    fiber = Fiber(body)
    pid = fiber.switch()
    assert fiber.switch(41) == 42
    if pid == 0:
        sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return 1 if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def fibers_of_a_thread_that_is_gone_in_the_child():
    handoff, release = queue.Queue(), threading.Event()

    def owner():
        mine = suspended_counters(2)
        handoff.put(mine)
        release.wait()
        for fiber in mine:  # in the parent, where this thread still exists
            fiber.close()

    thread = threading.Thread(target=owner)
    thread.start()
    fibers = handoff.get()

    def use_them():
        reported = []
        sys.unraisablehook = reported.append
        for fiber in fibers:
            try:
                fiber.switch(1)
            except RuntimeError:
                pass
            else:
                raise AssertionError("switched a fiber of a thread that does not exist")
        del fiber
        fibers.clear()
        gc.collect()
        leaked = [r for r in reported if "its stack is leaked" in str(r.exc_value)]
        print(f"reported as leaked: {len(leaked)}", flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        status = fork_and_check(use_them)
    release.set()
    thread.join()
    return status


CASES = {
    f.__name__: f
    for f in [
        child_resumes_the_parents_fibers,
        child_drops_the_parents_fibers,
        child_makes_new_fibers,
        fork_inside_a_fiber,
        fibers_of_a_thread_that_is_gone_in_the_child,
    ]
}

PARENT = os.getpid()

if __name__ == "__main__":
    status = CASES[sys.argv[1]]()
    print("child status", status, flush=True)
    sys.exit(status)
