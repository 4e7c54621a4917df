"""Which interpreters anywait runs on, checked before the compiled module is loaded.

anywait swaps private per-thread interpreter state, so it only works on the CPython
versions whose thread-state layout it knows. Importing it anywhere else raises
``ImportError`` that says what is supported, instead of failing in obscure ways later.
"""

from __future__ import annotations

import sys
import sysconfig

SUPPORTED = "CPython 3.11, 3.12, 3.13, 3.14 and 3.15 with the GIL, on 64-bit Linux"
MIN_VERSION = (3, 11)
MAX_VERSION = (3, 15)


def unsupported_reason(
    implementation: str,
    version: tuple[int, int],
    gil_disabled: bool,
    platform: str,
    pointer_bits: int,
) -> str | None:
    """Why anywait cannot run on the described interpreter, or None if it can."""
    if implementation != "cpython":
        return f"{implementation} is not CPython"
    if not MIN_VERSION <= version <= MAX_VERSION:
        return f"CPython {version[0]}.{version[1]} is not supported"
    if gil_disabled:
        return "the free-threaded build of CPython is not supported"
    if not platform.startswith("linux") or pointer_bits != 64:
        return f"{platform} with {pointer_bits}-bit pointers is not supported"
    return None


def check_interpreter() -> None:
    """Raise ImportError if this interpreter is not one anywait supports."""
    reason = unsupported_reason(
        sys.implementation.name,
        (sys.version_info.major, sys.version_info.minor),
        bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        sys.platform,
        64 if sys.maxsize > 2**32 else 32,
    )
    if reason is not None:
        raise ImportError(f"anywait cannot run here: {reason}. It supports {SUPPORTED}.")
