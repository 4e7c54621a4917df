"""What `has_portal` answers, what `bestow_portal` does to the running task, and how
long a portal made for a call or a block lasts: greenback's documented contract.

`has_portal()` means "`await_` works here", so these tests check both answers against
what `await_` actually does at the same point.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anywait
import pytest
from portal_harness import current_task, family, run, sleep, task_group


def await_works(backend: str) -> bool:
    """Whether `await_` runs here, found by trying (a coroutine that finishes at once)."""

    async def nothing() -> None:
        pass

    coro = nothing()
    try:
        anywait.await_(coro)
    except RuntimeError:
        return False
    return True


def answers(backend: str) -> tuple[bool, bool]:
    return anywait.has_portal(), await_works(backend)


# --- has_portal outside any task -------------------------------------------------------


def test_has_portal_at_module_level_is_false() -> None:
    assert anywait.has_portal() is False


def test_has_portal_in_a_loop_callback_is_false(backend: str) -> None:
    """A callback the loop runs outside any task (``call_soon`` / Trio's
    ``run_sync_soon``) asks freely; a raise there would fail it every time."""

    async def main() -> list[Any]:
        seen: list[Any] = []
        done = anywait_event(backend)

        def callback() -> None:
            seen.append(anywait.has_portal())
            done.set()

        await anywait.ensure_portal()  # even while the loop runs a task with a portal
        if family(backend) == "trio":
            import trio

            trio.lowlevel.current_trio_token().run_sync_soon(callback)
        else:
            asyncio.get_running_loop().call_soon(callback)
        await done.wait()
        return seen

    assert run(backend, main) == [False]


def test_has_portal_in_another_thread_is_false(backend: str) -> None:
    async def main() -> list[Any]:
        seen: list[Any] = []
        await anywait.ensure_portal()
        thread = threading.Thread(target=lambda: seen.append(anywait.has_portal()))
        thread.start()
        thread.join()
        return seen

    assert run(backend, main) == [False]


def anywait_event(backend: str) -> Any:
    if family(backend) == "trio":
        import trio

        return trio.Event()
    return asyncio.Event()


# --- has_portal means "await_ works here" ----------------------------------------------


def test_has_portal_inside_scoped_portals_and_decorated_functions(backend: str) -> None:
    async def main() -> dict[str, tuple[bool, bool]]:
        seen: dict[str, tuple[bool, bool]] = {"task, before": answers(backend)}

        async def in_run() -> None:
            seen["with_portal_run"] = answers(backend)

        def in_run_sync() -> None:
            seen["with_portal_run_sync"] = answers(backend)

        async def in_tree() -> None:
            seen["with_portal_run_tree"] = answers(backend)

        def sync_decorator(fn: Callable[[], None]) -> Callable[[], None]:
            def wrapper() -> None:
                seen["decorate_as_sync, in the sync decorator"] = answers(backend)
                fn()

            return wrapper

        @anywait.decorate_as_sync(sync_decorator)
        async def decorated() -> None:
            seen["decorate_as_sync, in the function"] = answers(backend)

        await anywait.with_portal_run(in_run)
        await anywait.with_portal_run_sync(in_run_sync)
        await anywait.with_portal_run_tree(in_tree)
        await decorated()
        seen["task, after"] = answers(backend)
        return seen

    assert run(backend, main) == {
        "task, before": (False, False),
        "with_portal_run": (True, True),
        "with_portal_run_sync": (True, True),
        "with_portal_run_tree": (True, True),
        "decorate_as_sync, in the sync decorator": (True, True),
        "decorate_as_sync, in the function": (True, True),
        "task, after": (False, False),
    }


def test_has_portal_of_the_current_task_passed_explicitly(backend: str) -> None:
    async def main() -> list[bool]:
        me = current_task(backend)
        seen = [anywait.has_portal(me)]
        await anywait.ensure_portal()
        return [*seen, anywait.has_portal(me)]

    assert run(backend, main) == [False, True]


# --- bestow_portal on the running task -------------------------------------------------


def test_bestow_portal_on_the_running_task_takes_effect_at_its_next_checkpoint(
    backend: str,
) -> None:
    async def main() -> list[Any]:
        seen: list[Any] = []
        anywait.bestow_portal(current_task(backend))
        seen.append(answers(backend))
        try:
            anywait.await_(sleep(backend, 0))
        except RuntimeError as exc:
            seen.append("yield to the event loop first" in str(exc))
        anywait.bestow_portal(current_task(backend))  # again: no change, no error
        await sleep(backend, 0)
        seen.append(answers(backend))
        return seen

    assert run(backend, main) == [(False, False), True, (True, True)]


def test_bestow_portal_refuses_what_is_not_a_task(backend: str) -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            anywait.bestow_portal(object())

    run(backend, main)


def test_bestow_portal_on_a_finished_task_of_any_backend_raises(backend: str) -> None:
    async def main() -> str:
        tasks: list[Any] = []

        async def child() -> None:
            tasks.append(current_task(backend))

        async with task_group(backend) as group:
            group.start_soon(child)
        with pytest.raises(RuntimeError, match="finished") as info:
            anywait.bestow_portal(tasks[0])
        return str(info.value)

    assert "finished" in run(backend, main)


# --- portals made for a call or a block end with it ------------------------------------


def test_ensure_portal_inside_with_portal_run_does_not_outlive_the_call(backend: str) -> None:
    async def main() -> list[Any]:
        seen: list[Any] = []

        async def inner() -> None:
            await anywait.ensure_portal()
            seen.append(answers(backend))

        await anywait.with_portal_run(inner)
        seen.append(answers(backend))
        await sleep(backend, 0)  # not even after the task's next step
        seen.append(answers(backend))
        return seen

    assert run(backend, main) == [(True, True), (False, False), (False, False)]


def test_portals_for_tree_ends_the_portal_it_gave_the_task(backend: str) -> None:
    async def main() -> list[Any]:
        seen: list[Any] = [answers(backend)]
        async with anywait.portals_for_tree():
            seen.append(answers(backend))
            anywait.await_(sleep(backend, 0))
            seen.append(answers(backend))
        seen.append(answers(backend))
        await sleep(backend, 0)
        seen.append(answers(backend))
        return seen

    no, yes = (False, False), (True, True)
    assert run(backend, main) == [no, yes, yes, no, no]


def test_portals_for_tree_ends_its_portal_when_the_block_raises(backend: str) -> None:
    async def main() -> list[Any]:
        seen: list[Any] = []
        try:
            async with anywait.portals_for_tree():
                anywait.await_(sleep(backend, 0))
                raise KeyError("out of the block")
        except KeyError as exc:
            seen.append(exc.args)
        seen.append(answers(backend))
        return seen

    assert run(backend, main) == [("out of the block",), (False, False)]
