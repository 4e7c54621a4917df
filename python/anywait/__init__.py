"""anywait: await any awaitable from plain synchronous code.

Sync code called (at any depth) from an async task calls ``anywait.await_(aw)`` and
gets exactly what ``await aw`` would have given, on the event loop that is already
running. The task needs a portal first: ``await anywait.ensure_portal()``, or run the
program with ``anywait.run(main)``. The fiber engine underneath is
:mod:`anywait.lowlevel`.
"""

from anywait._support import check_interpreter

check_interpreter()

from anywait._adapters import (  # noqa: E402
    async_context,
    async_iter,
    autoawait,
    decorate_as_sync,
)
from anywait._anywait import await_  # noqa: E402
from anywait._files import iter_chunks, sync_reader, sync_writer  # noqa: E402
from anywait._generators import (  # noqa: E402
    StackfulAsyncGenerator,
    StackfulGenerator,
    async_generator,
    generator,
    yield_,
)
from anywait._jupyter import load_ipython_extension, unload_ipython_extension  # noqa: E402
from anywait._nested_run import install, uninstall  # noqa: E402
from anywait._portals import (  # noqa: E402
    bestow_portal,
    ensure_portal,
    has_portal,
    with_portal_run,
    with_portal_run_sync,
)
from anywait._run import AutoPortalInstrument, run  # noqa: E402
from anywait._sync_loop import persistent_loop, start_loop, stop_loop  # noqa: E402
from anywait._tree import (  # noqa: E402
    portals_for_children,
    portals_for_tree,
    with_portal_run_tree,
)

__version__ = "0.1.0"
__all__ = [
    "AutoPortalInstrument",
    "StackfulAsyncGenerator",
    "StackfulGenerator",
    "__version__",
    "async_context",
    "async_generator",
    "async_iter",
    "autoawait",
    "await_",
    "bestow_portal",
    "decorate_as_sync",
    "ensure_portal",
    "generator",
    "has_portal",
    "install",
    "iter_chunks",
    "load_ipython_extension",
    "persistent_loop",
    "portals_for_children",
    "portals_for_tree",
    "run",
    "start_loop",
    "stop_loop",
    "sync_reader",
    "sync_writer",
    "uninstall",
    "unload_ipython_extension",
    "with_portal_run",
    "with_portal_run_sync",
    "with_portal_run_tree",
    "yield_",
]
