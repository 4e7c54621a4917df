"""The names greenback's tests import from ``greenback._impl``, served by anywait."""

from typing import Any

from anywait import (
    AutoPortalInstrument,
    await_,
    bestow_portal,
    ensure_portal,
    has_portal,
    portals_for_children,
    portals_for_tree,
    with_portal_run,
    with_portal_run_sync,
    with_portal_run_tree,
)
from anywait._tasks import current_task as _current_task_and_backend


def current_task() -> Any:
    """The running asyncio or Trio task (greenback's helper of the same name)."""
    return _current_task_and_backend()[0]


__all__ = [
    "AutoPortalInstrument",
    "await_",
    "bestow_portal",
    "current_task",
    "ensure_portal",
    "has_portal",
    "portals_for_children",
    "portals_for_tree",
    "with_portal_run",
    "with_portal_run_sync",
    "with_portal_run_tree",
]
