"""Starting, suspending and resuming one fiber: values in both directions, flags."""

from __future__ import annotations

import functools

import pytest
from anywait.lowlevel import Fiber, current, suspend


def test_creating_a_fiber_does_not_call_its_function() -> None:
    calls: list[int] = []
    Fiber(calls.append, 1)
    assert calls == []


def test_first_switch_calls_the_function_with_the_given_arguments() -> None:
    def report(*args: object, **kwargs: object) -> object:
        return args, kwargs

    assert Fiber(report, 1, "two", key=3).switch() == ((1, "two"), {"key": 3})


def test_switch_returns_the_value_the_fiber_suspends_with() -> None:
    fiber = Fiber(lambda: suspend("from the fiber"))
    assert fiber.switch() == "from the fiber"


def test_suspend_without_a_value_hands_none_to_the_resumer() -> None:
    fiber = Fiber(lambda: suspend() or "finished")
    assert fiber.switch() is None
    assert not fiber.dead


def test_suspend_returns_the_value_of_the_next_switch() -> None:
    fiber = Fiber(lambda: ("resumed with", suspend()))
    fiber.switch()
    assert fiber.switch("a value") == ("resumed with", "a value")


def test_switch_without_a_value_resumes_suspend_with_none() -> None:
    fiber = Fiber(lambda: ("resumed with", suspend("ready")))
    fiber.switch()
    assert fiber.switch() == ("resumed with", None)


def test_objects_cross_a_switch_unchanged_in_both_directions() -> None:
    going_in, coming_out = object(), object()

    def exchange() -> object:
        received = suspend(coming_out)
        return received

    fiber = Fiber(exchange)
    assert fiber.switch() is coming_out
    assert fiber.switch(going_in) is going_in


def test_values_ping_pong_between_caller_and_fiber() -> None:
    def add_one_to_everything() -> str:
        value = suspend("ready")
        while value is not None:
            value = suspend(value + 1)
        return "done"

    fiber = Fiber(add_one_to_everything)
    assert fiber.switch() == "ready"
    answers = [fiber.switch(n) for n in range(1000)]
    assert answers == list(range(1, 1001))
    assert fiber.switch(None) == "done"


def test_switch_returns_the_functions_return_value_when_it_finishes() -> None:
    def two_steps() -> str:
        suspend()
        return "returned"

    fiber = Fiber(two_steps)
    fiber.switch()
    assert fiber.switch() == "returned"


def test_function_that_never_suspends_finishes_in_its_first_switch() -> None:
    fiber = Fiber(lambda: 42)
    assert fiber.switch() == 42
    assert fiber.dead


def test_first_switch_with_a_value_raises_type_error_without_starting() -> None:
    calls: list[str] = []
    fiber = Fiber(calls.append, "ran")
    with pytest.raises(TypeError):
        fiber.switch("not None")
    assert calls == []
    assert not fiber.started
    assert not fiber.dead


def test_fiber_can_start_after_rejecting_a_first_value() -> None:
    fiber = Fiber(lambda: "started")
    with pytest.raises(TypeError):
        fiber.switch(0)
    assert fiber.switch() == "started"


def test_switching_a_finished_fiber_raises_runtime_error() -> None:
    fiber = Fiber(lambda: None)
    fiber.switch()
    with pytest.raises(RuntimeError):
        fiber.switch()


def test_fiber_is_neither_started_nor_running_nor_dead_before_its_first_switch() -> None:
    fiber = Fiber(lambda: None)
    assert (fiber.started, fiber.running, fiber.dead) == (False, False, False)


def test_fiber_is_started_but_not_running_while_suspended() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    assert (fiber.started, fiber.running, fiber.dead) == (True, False, False)


def test_fiber_is_started_and_running_while_its_function_executes() -> None:
    def own_flags() -> tuple[bool, bool, bool]:
        me = current()
        assert me is not None
        return me.started, me.running, me.dead

    assert Fiber(own_flags).switch() == (True, True, False)


def test_fiber_is_dead_and_not_running_after_its_function_returns() -> None:
    fiber = Fiber(lambda: None)
    fiber.switch()
    assert (fiber.started, fiber.running, fiber.dead) == (True, False, True)


def test_fiber_is_dead_after_its_function_raises() -> None:
    class Failed(Exception):
        pass

    def fail() -> None:
        raise Failed

    fiber = Fiber(fail)
    with pytest.raises(Failed):
        fiber.switch()
    assert fiber.dead
    assert not fiber.running


def test_suspend_outside_a_fiber_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        suspend()


def test_current_is_none_on_the_threads_own_stack() -> None:
    assert current() is None


def test_current_is_the_fiber_running_the_code() -> None:
    fiber = Fiber(current)
    assert fiber.switch() is fiber


def test_current_is_none_again_after_the_fiber_suspends() -> None:
    fiber = Fiber(suspend)
    fiber.switch()
    assert current() is None


def test_fiber_rejects_an_object_that_is_not_callable() -> None:
    with pytest.raises(TypeError):
        Fiber(42)  # type: ignore[arg-type]


class _Doubler:
    def __call__(self, x: int) -> int:
        return 2 * x

    def method(self, x: int) -> int:
        return 2 * x


@pytest.mark.parametrize(
    ("fn", "argument"),
    [
        pytest.param(lambda x: 2 * x, 6, id="lambda"),
        pytest.param(sum, [2, 3, 4, 3], id="builtin"),
        pytest.param(functools.partial(int.__mul__, 2), 6, id="partial"),
        pytest.param(_Doubler(), 6, id="callable-instance"),
        pytest.param(_Doubler().method, 6, id="bound-method"),
    ],
)
def test_fiber_runs_any_callable(fn: object, argument: object) -> None:
    assert Fiber(fn, argument).switch() == 12  # type: ignore[arg-type]


def test_suspend_works_at_any_call_depth() -> None:
    def descend(depth: int) -> int:
        if depth == 0:
            return suspend("at the bottom")
        return descend(depth - 1) + 1

    fiber = Fiber(descend, 200)
    assert fiber.switch() == "at the bottom"
    assert fiber.switch(0) == 200


def test_suspend_works_from_a_callback_called_by_c_code() -> None:
    # sorted() is C: the key function's suspend() leaves C frames on the fiber's stack.
    fiber = Fiber(lambda: sorted([3, 1, 2], key=suspend))
    asked = [fiber.switch()]
    while len(asked) < 3:
        asked.append(fiber.switch(-asked[-1]))
    assert asked == [3, 1, 2]
    assert fiber.switch(-asked[-1]) == [3, 2, 1]


def test_suspend_works_from_a_special_method_called_by_the_interpreter() -> None:
    class AsksForItsHash:
        def __hash__(self) -> int:
            return suspend("hash?")

    fiber = Fiber(lambda: {AsksForItsHash(): "value"}.popitem()[1])
    assert fiber.switch() == "hash?"
    assert fiber.switch(7) == "value"


def test_many_suspended_fibers_can_be_resumed_in_any_order() -> None:
    def count(name: int) -> list[tuple[int, int]]:
        seen = []
        for step in range(5):
            seen.append((name, suspend(step)))
        return seen

    fibers = [Fiber(count, name) for name in range(20)]
    for fiber in fibers:
        assert fiber.switch() == 0
    results = {}
    for step in range(1, 6):
        for name, fiber in reversed(list(enumerate(fibers))):
            returned = fiber.switch(step * 100 + name)
            if step < 5:
                assert returned == step
            else:
                results[name] = returned
    assert results == {
        name: [(name, step * 100 + name) for step in range(1, 6)] for name in range(20)
    }
