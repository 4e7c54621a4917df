"""External sampling profilers read a fiber's stack as a complete stack.

CPython's remote unwinder (``_remote_debugging``, 3.14+; the engine of
``python -m profiling.sampling`` in 3.15) reads a thread's frames from outside the
process. 3.15 ends every thread's frame chain in a sentinel "base frame" and rejects a
sample whose chain does not end there as torn: a fiber's chain must end in it too, or
every sample taken while a fiber runs is lost.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

remote_debugging: Any = pytest.importorskip(
    "_remote_debugging", reason="the remote unwinder is new in CPython 3.14"
)

# The child spins in loops that push no frames, so a sample never races a call; SIGUSR1
# ends each loop.
CHILD = textwrap.dedent(
    """
    import signal, sys
    from anywait.lowlevel import Fiber, suspend

    phase_over = False

    def next_phase(signum, frame):
        global phase_over
        phase_over = True

    signal.signal(signal.SIGUSR1, next_phase)

    def spin(name):
        global phase_over
        phase_over = False
        print(name, flush=True)
        while not phase_over:
            pass

    def on_the_fiber():
        spin("fiber")
        suspend()

    def on_the_thread():
        spin("thread")

    fiber = Fiber(on_the_fiber)
    fiber.switch()
    on_the_thread()  # the fiber is suspended meanwhile
    fiber.switch()
    """
)

SAMPLES = 20


def _innermost_stacks(unwinder: Any) -> list[list[str]]:
    stacks = []
    for _ in range(SAMPLES):
        (sample,) = unwinder.get_stack_trace()
        # 3.15 groups threads by interpreter; 3.14 lists the threads.
        (thread,) = getattr(sample, "threads", [sample])
        stacks.append([frame.funcname for frame in thread.frame_info])
    return stacks


#: 3.15's unwinder can cache the part of a stack it saw last (it marks the frame in the
#: target's thread state), which must not outlive a switch to another stack.
UNWINDER_OPTIONS = [{}, {"cache_frames": True}] if sys.version_info >= (3, 15) else [{}]


@pytest.mark.parametrize("options", UNWINDER_OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_every_sample_of_a_running_fiber_and_of_its_thread_is_complete(
    options: dict[str, bool],
) -> None:
    seen = {}
    with subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", CHILD],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        try:
            unwinder = None
            for phase in ("fiber", "thread"):
                assert child.stdout.readline().strip() == phase
                # One unwinder for both phases, so that what it cached from the fiber's
                # stack meets the thread's. A torn sample raises (RuntimeError
                # "Incomplete sample ...").
                unwinder = unwinder or remote_debugging.RemoteUnwinder(child.pid, **options)
                seen[phase] = _innermost_stacks(unwinder)
                child.send_signal(signal.SIGUSR1)
            assert child.wait(timeout=30) == 0
        finally:
            if child.poll() is None:
                child.kill()
    # The fiber's chain starts at the fiber's function; the thread's at the module.
    assert seen["fiber"] == [["spin", "on_the_fiber"]] * SAMPLES
    assert seen["thread"] == [["spin", "on_the_thread", "<module>"]] * SAMPLES
