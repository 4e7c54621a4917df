"""anywait: await any awaitable from plain synchronous code.

The portal API (``await_``, ``ensure_portal``, ...) is being built; today the package
provides the fiber engine underneath it, in :mod:`anywait.lowlevel`.
"""

from anywait._support import check_interpreter

check_interpreter()

__version__ = "0.1.0"
__all__ = ["__version__"]
