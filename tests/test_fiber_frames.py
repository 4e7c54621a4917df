"""Frame chains inside fibers: each stack's chain ends at its own root, and stays intact."""

from __future__ import annotations

import faulthandler
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

from anywait.lowlevel import Fiber, suspend


def _chain_names(frame: FrameType | None) -> list[str]:
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


def _callers_chain() -> list[str]:
    return _chain_names(sys._getframe(1))


def test_the_fiber_functions_frame_has_no_caller() -> None:
    def root() -> object:
        return sys._getframe().f_back

    assert Fiber(root).switch() is None


def test_the_frame_chain_inside_a_fiber_ends_at_the_fiber_function() -> None:
    def helper() -> list[str]:
        return _callers_chain()

    def root() -> list[str]:
        return helper()

    assert Fiber(root).switch() == ["helper", "root"]


def test_the_frame_chain_inside_a_nested_fiber_ends_at_its_own_function() -> None:
    def inner() -> list[str]:
        return _callers_chain()

    def outer() -> list[str]:
        return Fiber(inner).switch()

    assert Fiber(outer).switch() == ["inner"]


def test_the_frame_chain_after_resuming_ends_at_the_fiber_function() -> None:
    def helper() -> list[str]:
        suspend()
        return _callers_chain()

    def root() -> list[str]:
        return helper()

    fiber = Fiber(root)
    fiber.switch()
    assert fiber.switch() == ["helper", "root"]


def test_extract_stack_inside_a_fiber_lists_only_fiber_frames() -> None:
    def helper() -> list[str]:
        return [entry.name for entry in traceback.extract_stack()]

    def root() -> list[str]:
        return helper()

    assert Fiber(root).switch() == ["root", "helper"]


def test_the_callers_frame_chain_is_unchanged_by_switching() -> None:
    def suspend_twice() -> None:
        suspend()
        suspend()

    fiber = Fiber(suspend_twice)
    before = sys._getframe()
    chain_before = _chain_names(before)
    fiber.switch()
    fiber.switch()
    after = sys._getframe()
    assert after is before
    assert _chain_names(after) == chain_before
    fiber.switch()


def test_a_suspended_fibers_frame_can_be_inspected_from_outside() -> None:
    def hand_out_own_frame() -> None:
        marker = "visible from outside"  # noqa: F841
        suspend(sys._getframe())

    fiber = Fiber(hand_out_own_frame)
    frame = fiber.switch()
    assert frame.f_code.co_name == "hand_out_own_frame"
    assert frame.f_locals["marker"] == "visible from outside"
    assert frame.f_lineno == frame.f_code.co_firstlineno + 2
    fiber.switch()


def test_a_suspended_fibers_inner_frame_links_back_to_the_fiber_function() -> None:
    def helper() -> None:
        suspend(sys._getframe())

    def root() -> None:
        helper()

    fiber = Fiber(root)
    frame = fiber.switch()
    assert _chain_names(frame) == ["helper", "root"]
    fiber.switch()


def test_the_frame_of_a_finished_fiber_stays_readable() -> None:
    def keep_frame() -> FrameType:
        marker = "after the end"  # noqa: F841
        return sys._getframe()

    frame = Fiber(keep_frame).switch()
    assert frame.f_code.co_name == "keep_frame"
    assert frame.f_locals["marker"] == "after the end"
    assert frame.f_back is None


def test_frames_of_many_fibers_finished_in_turn_stay_distinct() -> None:
    def keep_frame(n: int) -> FrameType:
        return sys._getframe()

    frames = [Fiber(keep_frame, n).switch() for n in range(100)]
    assert [frame.f_locals["n"] for frame in frames] == list(range(100))


def test_a_generator_frame_suspended_in_a_fiber_links_back_into_the_fiber() -> None:
    def gen() -> object:
        suspend(sys._getframe())
        yield

    def root() -> None:
        next(gen())

    fiber = Fiber(root)
    frame = fiber.switch()
    assert _chain_names(frame) == ["gen", "root"]
    fiber.switch()


def test_faulthandler_dumps_the_fibers_stack_from_inside_a_fiber(tmp_path: Path) -> None:
    def dump_here() -> None:
        with open(tmp_path / "dump.txt", "w") as out:
            faulthandler.dump_traceback(out, all_threads=False)

    def root() -> None:
        dump_here()

    Fiber(root).switch()
    dumped = (tmp_path / "dump.txt").read_text()
    assert [line.split(" in ")[-1] for line in dumped.splitlines()[1:]] == ["dump_here", "root"]


def test_another_thread_sees_the_fiber_frame_as_this_threads_current_frame() -> None:
    def look_from_another_thread() -> list[str]:
        seen: list[str] = []
        me = threading.get_ident()
        thread = threading.Thread(
            target=lambda: seen.extend(_chain_names(sys._current_frames()[me]))
        )
        thread.start()
        thread.join()
        return seen

    def root() -> list[str]:
        return look_from_another_thread()

    seen = Fiber(root).switch()
    # the innermost frames are threading's (start/join); the chain then ends at the root
    assert seen[-2:] == ["look_from_another_thread", "root"]
