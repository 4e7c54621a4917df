"""Top-level conftest of a greenback test-suite run against anywait (copied next to
the ``greenback`` shim package by tests/test_compat_greenback.py).

It proves the suite runs against anywait, and deselects the tests that cannot apply,
each with its reason; a listed test that no longer exists fails the run, so a new
greenback release is looked at rather than silently half-tested.
"""

from __future__ import annotations

import anywait
import greenback
import greenback._impl
import pytest

#: test node id (relative to greenback/_tests/) -> why it does not run against anywait
DESELECTED = {
    "test_impl.py::test_find_ptr_in_object": "greenback's private pointer search in objects",
    "test_impl.py::test_portal_map_does_not_leak": "greenback's private task -> portal map",
    "test_impl.py::test_misuse": (
        "greenback-only limitations: with_portal_run_tree refuses asyncio (anywait runs "
        "it), errors come from sniffio (anywait needs no sniffio); its other two checks "
        "are anywait's own tests: has_portal() outside a task is False "
        "(tests/test_portal_queries.py), await_(42) raises the native TypeError "
        "(tests/test_portal_await.py)"
    ),
    "test_impl.py::test_uncleanable_traceback": (
        "greenback calls send() on anything registered as a collections.abc.Coroutine; "
        "anywait drives it through __await__ as native `await` does (which returns None "
        "here, where greenback raises TypeError)"
    ),
}


def native_frees_after_the_task() -> bool:
    """Whether, natively, an object that awaited a cancelled Trio sleep in its task is
    freed only after the task has ended, outside any task.

    It is on CPython 3.12 and 3.13: the traceback of the ``Cancelled`` that Trio holds
    for the step keeps the sleeping frames, and each frame its caller's (``f_back``),
    until Trio drops the finished task. greenback's ``test_magic`` counts on the object
    dying in its task or at the test's ``gc.collect()`` (greenback's own reference
    cycles delay it that long); anywait frees it where ``await`` does, so there a
    ``__del__`` that calls ``await_`` runs outside any task, exactly as an ``async``
    finaliser would have no task to run in.
    """
    import trio

    where: list[object] = []

    class Probe:
        def __del__(self) -> None:
            try:
                where.append(trio.lowlevel.current_task())
            except RuntimeError:
                where.append(None)

    async def child() -> None:
        probe = Probe()
        await _sleep_a_little(probe)
        del probe

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    trio.run(main)
    return where == [None]


async def _sleep_a_little(probe: object) -> None:
    import trio

    await trio.sleep(0.001)


def trio_lacks_raises_group() -> bool:
    """Whether this Trio predates ``trio.testing.RaisesGroup`` (added in Trio 0.25;
    Debian bookworm ships 0.22)."""
    import trio.testing

    return not hasattr(trio.testing, "RaisesGroup")


def new_greenlet_hides_trio_from_sniffio() -> bool:
    """Whether, natively, sync code in a new greenlet inside a Trio task gets
    ``AsyncLibraryNotFoundError`` from ``sniffio.current_async_library()``.

    It does with sniffio < 1.3 and Trio < 0.23 (Debian bookworm), which find Trio by a
    context variable, and a new greenlet starts in an empty context. anywait runs what
    ``await_`` is given in the caller's context, as ``await`` would there, so AnyIO
    cannot tell it runs under Trio; greenback runs it in the task's context instead.
    greenback's ``test_double_greenlet[trio]`` calls ``anyio.sleep(0)`` from such a
    greenlet.
    """
    import greenlet
    import sniffio
    import trio

    seen: list[bool] = []

    def sniff() -> None:
        try:
            sniffio.current_async_library()
            seen.append(False)
        except sniffio.AsyncLibraryNotFoundError:
            seen.append(True)

    async def main() -> None:
        greenlet.greenlet(sniff).switch()

    trio.run(main)
    return seen == [True]


#: Deselected where the environment or the native behaviour a test relies on differs
#: (see its function).
NATIVE_DEPENDENT = {
    "test_impl.py::test_exit_task_with_error": (
        trio_lacks_raises_group,
        "it uses trio.testing.RaisesGroup, which this Trio predates (greenback itself "
        "fails it here, with AttributeError)",
    ),
    "test_impl.py::test_double_greenlet[trio]": (
        new_greenlet_hides_trio_from_sniffio,
        "here sniffio finds Trio by a context variable, which a new greenlet does not "
        "have; anywait runs the awaitable in the greenlet's context, as await would "
        "there (see new_greenlet_hides_trio_from_sniffio)",
    ),
    "test_util.py::test_magic": (
        native_frees_after_the_task,
        "on this interpreter an object a Trio task made is freed natively after the task "
        "ends, outside any task, so its __del__ has no task to await_ in (greenback's "
        "reference cycles keep it to the test's gc.collect()); see native_frees_after_the_task",
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    assert greenback.await_ is anywait.await_, "the suite must run against anywait"
    assert greenback._impl.ensure_portal is anywait.ensure_portal
    for test, (applies, reason) in NATIVE_DEPENDENT.items():
        if applies():
            DESELECTED[test] = reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop, seen = [], [], set()
    for item in items:
        node = item.nodeid.split("greenback/_tests/", 1)[-1]
        key = node if node in DESELECTED else node.split("[", 1)[0]
        if key in DESELECTED:
            drop.append(item)
            seen.add(key)
        else:
            keep.append(item)
    missing = sorted(set(DESELECTED) - seen)
    if missing:
        raise pytest.UsageError(f"deselected tests that greenback no longer has: {missing}")
    for key in sorted(seen):
        print(f"deselected {key}: {DESELECTED[key]}")
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
