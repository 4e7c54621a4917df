"""100,000 fibers suspended at the same time, each resumable, and all closable.

Usage: scale_suspended.py COUNT. (vm.max_map_count is 65530 by default, so this only
works if a fiber stack costs less than one memory mapping on average.)
"""

import os
import sys

from anywait.lowlevel import Fiber, suspend

unwound = 0


def wait(n):
    global unwound
    try:
        while True:
            suspend(n)
    finally:
        unwound += 1


if __name__ == "__main__":
    count = int(sys.argv[1])
    fibers = [Fiber(wait, n) for n in range(count)]
    for n, fiber in enumerate(fibers):
        assert fiber.switch() == n
    assert not any(fiber.dead for fiber in fibers)
    try:
        with open("/proc/self/maps") as maps:
            mappings = sum(1 for _ in maps)
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no /proc (a chroot may lack it): informative only
        mappings = rss = -1
    print(f"{count} suspended: {mappings} mappings, rss {rss}")
    for n, fiber in enumerate(reversed(fibers)):  # every one is still resumable
        assert fiber.switch() == count - 1 - n
    for fiber in fibers:
        fiber.close()
    assert all(fiber.dead for fiber in fibers)
    assert unwound == count, unwound
    print("ok")
