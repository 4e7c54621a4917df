"""Tracing, profiling or monitoring switched on or off while a fiber is suspended, then
the fiber resumed. (CPython instruments or de-instruments the code of every frame
executing on a thread's stack at that moment; a fiber's suspended frames are on no
thread's stack, and debug builds assert when they run with stale instrumentation.)

Usage: tracing_toggled.py CASE. Prints one JSON list: the events seen after the resume,
as [event, function] pairs, or line offsets from ``body``'s first line for monitoring.
"""

import json
import sys

from anywait.lowlevel import Fiber, suspend

events = []


def record(frame, event, arg):
    if frame.f_code.co_filename == __file__:
        name = getattr(arg, "__name__", "?") if event.startswith("c_") else frame.f_code.co_name
        events.append([event, name])
    return record


def helper():
    return 1


def body():
    total = helper()
    total += suspend()
    total += helper()
    return total


def suspended():
    fiber = Fiber(body)
    fiber.switch()
    return fiber


def finish(fiber):
    assert fiber.switch(10) == 12


def trace_set_while_suspended():
    fiber = suspended()
    sys.settrace(record)
    finish(fiber)
    sys.settrace(None)


def trace_removed_while_suspended():
    sys.settrace(record)
    fiber = suspended()
    sys.settrace(None)
    events.clear()
    finish(fiber)


def profile_set_while_suspended():
    fiber = suspended()
    sys.setprofile(record)
    finish(fiber)
    sys.setprofile(None)


def profile_removed_while_suspended():
    sys.setprofile(record)
    fiber = suspended()
    sys.setprofile(None)
    events.clear()
    finish(fiber)


def _monitor_lines(code=body.__code__):
    monitoring = sys.monitoring
    monitoring.use_tool_id(3, "anywait-tests")

    def on_line(event_code, line):
        if event_code is code:
            events.append(line - code.co_firstlineno)

    monitoring.register_callback(3, monitoring.events.LINE, on_line)
    return monitoring


def monitoring_enabled_while_suspended():
    monitoring = _monitor_lines()
    fiber = suspended()
    monitoring.set_events(3, monitoring.events.LINE)
    finish(fiber)
    monitoring.set_events(3, 0)


def monitoring_disabled_while_suspended():
    monitoring = _monitor_lines()
    monitoring.set_events(3, monitoring.events.LINE)
    fiber = suspended()
    monitoring.set_events(3, 0)
    events.clear()
    finish(fiber)


# The other way round: a tool changed inside a fiber, while the thread's own frames (the
# resumer's) are off every chain; they go on after the fiber suspends.


def resumer(toggle):
    fiber = Fiber(lambda: (toggle(), suspend()))
    fiber.switch()
    total = helper()  # line 3 of resumer: runs after the switch back
    return total + 1  # line 4


def profile_set_inside_a_fiber():
    resumer(lambda: sys.setprofile(record))
    sys.setprofile(None)


def profile_removed_inside_a_fiber():
    sys.setprofile(record)
    resumer(lambda: sys.setprofile(None))
    events.clear()
    resumer(lambda: None)


def monitoring_enabled_inside_a_fiber():
    monitoring = _monitor_lines(resumer.__code__)
    resumer(lambda: monitoring.set_events(3, monitoring.events.LINE))
    monitoring.set_events(3, 0)


def monitoring_disabled_inside_a_fiber():
    monitoring = _monitor_lines(resumer.__code__)
    monitoring.set_events(3, monitoring.events.LINE)
    resumer(lambda: (monitoring.set_events(3, 0), events.clear()))


CASES = {
    f.__name__: f
    for f in [
        profile_set_inside_a_fiber,
        profile_removed_inside_a_fiber,
        monitoring_enabled_inside_a_fiber,
        monitoring_disabled_inside_a_fiber,
        trace_set_while_suspended,
        trace_removed_while_suspended,
        profile_set_while_suspended,
        profile_removed_while_suspended,
        monitoring_enabled_while_suspended,
        monitoring_disabled_while_suspended,
    ]
}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print(json.dumps(events))
