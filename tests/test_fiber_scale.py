"""Scale: 100,000 fibers one after another in flat memory, and 100,000 suspended at once.

Both run in a child interpreter: the first measures its own resident set size, the
second holds about a gigabyte of touched stack pages and thousands of mappings' worth of
address space, which must not burden the rest of the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

COUNT = 100_000


@pytest.mark.slow
@pytest.mark.scale
def test_fibers_created_and_finished_in_turn_keep_memory_flat(
    run_scenario: Callable[..., Any],
) -> None:
    result = run_scenario("scale_churn", COUNT)
    assert result.stdout.rstrip().endswith("ok")


@pytest.mark.slow
@pytest.mark.scale
def test_one_hundred_thousand_fibers_can_be_suspended_at_once(
    run_scenario: Callable[..., Any],
) -> None:
    result = run_scenario("scale_suspended", COUNT)
    assert f"{COUNT} suspended" in result.stdout
    assert result.stdout.rstrip().endswith("ok")
