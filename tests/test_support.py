"""Importing anywait on an interpreter it does not support raises ImportError that
names the interpreter and what is supported."""

from __future__ import annotations

import pytest
from anywait import _support


@pytest.mark.parametrize(
    ("implementation", "version", "gil_disabled", "platform", "bits", "expected"),
    [
        ("pypy", (3, 11), False, "linux", 64, "pypy is not CPython"),
        ("cpython", (3, 10), False, "linux", 64, "CPython 3.10 is not supported"),
        ("cpython", (3, 16), False, "linux", 64, "CPython 3.16 is not supported"),
        ("cpython", (3, 13), True, "linux", 64, "free-threaded"),
        ("cpython", (3, 12), False, "darwin", 64, "darwin"),
        ("cpython", (3, 12), False, "linux", 32, "32-bit"),
    ],
)
def test_unsupported_interpreters_are_named(
    implementation: str,
    version: tuple[int, int],
    gil_disabled: bool,
    platform: str,
    bits: int,
    expected: str,
) -> None:
    reason = _support.unsupported_reason(implementation, version, gil_disabled, platform, bits)
    assert reason is not None
    assert expected in reason


@pytest.mark.parametrize("minor", [11, 12, 13, 14, 15])
def test_supported_interpreters_pass(minor: int) -> None:
    assert _support.unsupported_reason("cpython", (3, minor), False, "linux", 64) is None


def test_the_import_error_says_what_is_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_support, "unsupported_reason", lambda *args: "CPython 3.99 is odd")
    with pytest.raises(ImportError, match=r"CPython 3\.99 is odd.*supports CPython 3\.11"):
        _support.check_interpreter()


def test_this_interpreter_is_supported() -> None:
    _support.check_interpreter()
