"""greenback's public API, served by anywait: what greenback's own test suite imports
as ``greenback`` when it runs against anywait (tests/test_compat_greenback.py)."""

from anywait import (
    AutoPortalInstrument,
    async_context,
    async_iter,
    autoawait,
    await_,
    bestow_portal,
    decorate_as_sync,
    ensure_portal,
    has_portal,
    portals_for_children,
    portals_for_tree,
    with_portal_run,
    with_portal_run_sync,
    with_portal_run_tree,
)
from anywait import __version__ as __version__

__all__ = [
    "AutoPortalInstrument",
    "async_context",
    "async_iter",
    "autoawait",
    "await_",
    "bestow_portal",
    "decorate_as_sync",
    "ensure_portal",
    "has_portal",
    "portals_for_children",
    "portals_for_tree",
    "with_portal_run",
    "with_portal_run_sync",
    "with_portal_run_tree",
]
