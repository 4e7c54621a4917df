"""Sphinx configuration of anywait's API reference (``make docs``; part of ``make test``).

The reference is built from the docstrings of the installed package (autodoc), with
warnings as errors and nitpicky cross-references. ``check_every_public_name`` fails the
build when a name in ``anywait.__all__`` or ``anywait.lowlevel.__all__`` has no entry, so
the reference cannot fall behind the package.
"""

from __future__ import annotations

from typing import Any

import anywait
import anywait.lowlevel

project = "anywait"
copyright = "the anywait developers"
release = anywait.__version__
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
nitpick_ignore_regex = [
    # Standard-library types in signatures (no intersphinx: the build is offline).
    ("py:class", r"(collections\.abc|contextlib|asyncio(\.events)?)\.\w+"),
    ("py:mod", r"contextvars"),
    # The package's type variables (anywait._portals.T and the like).
    ("py:class", r"(anywait\._\w+\.)?(T|P|T_co)"),
]
html_theme = "alabaster"
exclude_patterns = ["_build"]


def check_every_public_name(app: Any, exception: BaseException | None) -> None:
    if exception is not None:
        return
    documented = set(app.env.domaindata["py"]["objects"])
    missing = [
        f"{module.__name__}.{name}"
        for module in (anywait, anywait.lowlevel)
        for name in module.__all__
        if not name.startswith("__") and f"{module.__name__}.{name}" not in documented
    ]
    if missing:
        raise RuntimeError(f"public names with no entry in the API reference: {missing}")


def setup(app: Any) -> None:
    app.connect("build-finished", check_every_public_name)
