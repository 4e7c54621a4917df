"""100,000 fibers created and finished one after another keep the RSS flat.

Usage: scale_churn.py COUNT. Each fiber suspends once, then ends one of four ways
(returns, raises, is closed, is dropped while suspended). Prints the resident set size
(from /proc/self/statm) after a warm-up and after COUNT more fibers, and fails if it grew.
"""

import gc
import os
import resource
import sys

from anywait.lowlevel import Fiber, suspend

PAGE = os.sysconf("SC_PAGE_SIZE")
ALLOWED_GROWTH = 16 * 1024 * 1024


def rss():
    """The resident set size now, or, without /proc (a chroot may lack it), the peak
    resident set size so far, which cannot grow either if memory stays flat."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def body(n):
    local = [n]  # noqa: F841  (gives the frame something to own)
    value = suspend(n)
    if value == "raise":
        raise ValueError(n)
    return value


def churn(count):
    for n in range(count):
        fiber = Fiber(body, n)
        assert fiber.switch() == n
        ending = n % 4
        if ending == 0:
            assert fiber.switch("return") == "return"
        elif ending == 1:
            try:
                fiber.switch("raise")
            except ValueError:
                pass
            else:
                raise AssertionError("the fiber did not raise")
        elif ending == 2:
            fiber.close()
        if ending != 3:
            assert fiber.dead
        del fiber  # ending 3: dropped while suspended


if __name__ == "__main__":
    count = int(sys.argv[1])
    churn(count // 10)  # warm-up: pools, free lists, arenas
    gc.collect()
    before = rss()
    churn(count)
    gc.collect()
    after = rss()
    print(f"rss before {before} after {after} growth {after - before}")
    assert after - before < ALLOWED_GROWTH, f"RSS grew by {after - before} bytes"
    print("ok")
