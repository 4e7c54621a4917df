"""Differential fuzzer: random programs run natively and through anywait, logs compared.

``program`` generates a random program (a tree of async and sync-capable frames) and
renders it twice as Python source; ``runner`` runs both twins on one backend, compares
their event logs and reduces a diverging program; ``python -m tests.fuzz`` is the long
run. ``tests/test_fuzz.py`` runs a few hundred seeded programs per backend.

Nothing is imported here, so that ``python -m tests.fuzz`` can put ``tests/`` on
``sys.path`` (for ``portal_harness``) before the submodules load.
"""
