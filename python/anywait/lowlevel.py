"""Stackful fibers: run a function on its own native stack, leave it at any depth.

A :class:`Fiber` runs ``fn(*args, **kwargs)`` on a separate native stack. Code running in
it, at any call depth (inside sync helpers, ``sorted(key=...)``, a generator body),
can call :func:`suspend` to hand a value back to whoever resumed the fiber; a later
:meth:`Fiber.switch` continues it from that point. This is the engine beneath
anywait's portals; most code should use ``anywait.await_`` instead.

Semantics worth knowing before use:

* Each fiber runs in a *copy* of the :mod:`contextvars` context current when it was
  created (like an asyncio task): its changes stay inside it.
* A fiber starts with no exception being handled and a recursion depth of 0; its
  frame chain (``sys._getframe().f_back``) ends at ``fn``.
* A fiber belongs to the thread that created it.
* A suspended fiber that is garbage-collected is unwound by raising :class:`FiberExit`
  inside it, on its own thread, so ``finally`` blocks and ``with`` exits run. One that
  catches it and suspends again is leaked (and reported via ``sys.unraisablehook``).
  At interpreter shutdown suspended fibers are not unwound.
* Reference cycles that pass through the frames of a *suspended* fiber are invisible
  to the garbage collector (as with greenlet): such a fiber is never collected. Close
  fibers explicitly when you are done with them.
"""

from anywait._support import check_interpreter

check_interpreter()

from anywait._anywait import Fiber, FiberExit, current, suspend  # noqa: E402

__all__ = ["Fiber", "FiberExit", "current", "suspend"]
