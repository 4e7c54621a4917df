"""The names greenback's tests import from ``greenback._util``, served by anywait."""

from anywait import async_context, async_iter, autoawait, decorate_as_sync

__all__ = ["async_context", "async_iter", "autoawait", "decorate_as_sync"]
