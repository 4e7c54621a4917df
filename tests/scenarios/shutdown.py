"""The interpreter exits with fibers suspended, running, or on other threads.

Usage: shutdown.py CASE. Each case sets the situation up and lets the interpreter exit;
the test checks the exit status and that nothing was printed to stderr (no crash, no
"Exception ignored" report) unless the case expects it.
"""

import atexit
import sys
import threading

from anywait.lowlevel import Fiber, suspend


def waiting(name):
    def wait():
        try:
            while True:
                suspend()
        finally:
            print("unwound", name)

    fiber = Fiber(wait)
    fiber.switch()
    return fiber


def suspended_in_globals():
    global KEPT
    KEPT = [waiting(n) for n in range(10)]


def suspended_in_a_cycle():
    holder = {"fiber": waiting("in a cycle")}
    holder["self"] = holder


def suspended_holding_suspended():
    global KEPT

    def hold():
        inner = waiting("inner")  # noqa: F841
        suspend()

    KEPT = Fiber(hold)
    KEPT.switch()


def suspended_holding_objects_with_del():
    global KEPT

    class Noisy:
        def __del__(self):
            print("Noisy.__del__ ran")

    def hold():
        noisy = Noisy()  # noqa: F841
        suspend()

    KEPT = Fiber(hold)
    KEPT.switch()


def sys_exit_inside_a_fiber():
    global KEPT
    KEPT = waiting("bystander")
    Fiber(sys.exit, 3).switch()


def sys_exit_inside_nested_fibers():
    global KEPT
    KEPT = waiting("bystander")

    def level(depth):
        if depth == 0:
            sys.exit(4)
        Fiber(level, depth - 1).switch()

    Fiber(level, 3).switch()


def unhandled_exception_inside_a_fiber():
    def fail_in_fiber():
        raise LookupError("raised in the fiber")

    Fiber(fail_in_fiber).switch()


def atexit_closes_a_suspended_fiber():
    fiber = waiting("by atexit")
    atexit.register(fiber.close)


def atexit_resumes_a_suspended_fiber():
    fiber = Fiber(lambda: print("resumed by atexit:", suspend()))
    fiber.switch()
    atexit.register(fiber.switch, "yes")


def daemon_thread_blocked_inside_a_fiber():
    started = threading.Event()

    def block_forever():
        kept = [waiting(n) for n in range(3)]  # noqa: F841
        started.set()
        threading.Event().wait()

    def run():
        Fiber(block_forever).switch()

    threading.Thread(target=run, daemon=True).start()
    started.wait()


def daemon_thread_switching_fibers_at_exit():
    started = threading.Event()

    def ping_pong_forever():
        fiber = Fiber(lambda: [suspend() for _ in iter(int, 1)])
        fiber.switch()
        started.set()
        while True:
            fiber.switch()

    def run():
        Fiber(ping_pong_forever).switch()

    threading.Thread(target=run, daemon=True).start()
    started.wait()
    global RELEASES_THE_GIL_DURING_FINALIZATION
    RELEASES_THE_GIL_DURING_FINALIZATION = ReleaseTheGilWhenDestroyed()


FINALIZATION_LOCK = threading.Lock()


class ReleaseTheGilWhenDestroyed:
    """Destroyed while the interpreter finalizes (module globals are cleared after the
    interpreter is marked as finalizing): waits with the GIL released, which lets a
    daemon thread try to take the GIL at that moment, instead of only if the timing
    happens to allow it. (CPython 3.11-3.13 then ends the daemon thread with
    pthread_exit() wherever it is, on a fiber stack here; 3.14 parks it forever.)"""

    def __del__(self, lock=FINALIZATION_LOCK):
        lock.acquire()
        lock.acquire(timeout=0.2)


CASES = {
    f.__name__: f
    for f in [
        suspended_in_globals,
        suspended_in_a_cycle,
        suspended_holding_suspended,
        suspended_holding_objects_with_del,
        sys_exit_inside_a_fiber,
        sys_exit_inside_nested_fibers,
        unhandled_exception_inside_a_fiber,
        atexit_closes_a_suspended_fiber,
        atexit_resumes_a_suspended_fiber,
        daemon_thread_blocked_inside_a_fiber,
        daemon_thread_switching_fibers_at_exit,
    ]
}

if __name__ == "__main__":
    print("start", sys.argv[1], flush=True)
    CASES[sys.argv[1]]()
