"""anywait demo: synchronous code awaiting on the event loop that is already running.

`price_report()` is ordinary synchronous code, several calls deep, that needs an async
HTTP-like fetch at the bottom. With anywait it calls ``anywait.await_(...)`` there and
nothing above it changes colour. Ten tasks run it at once on one thread: their waits
overlap (all ten take as long as one report), and a timeout set by the async
caller cancels the sync code at its ``await_`` call, running its ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import time

import anywait

in_flight = peak = 0


async def fetch_price(item: str) -> float:
    """Stands in for real async I/O (an HTTP client, a database driver)."""
    global in_flight, peak
    in_flight += 1
    peak = max(peak, in_flight)
    await asyncio.sleep(0.2)
    in_flight -= 1
    return float(len(item))


def price_with_tax(item: str) -> float:  # sync, deep down
    return anywait.await_(fetch_price(item)) * 1.2


def price_report(items: list[str]) -> str:  # sync, legacy, not rewritten
    total = sum(price_with_tax(item) for item in items)
    return f"{len(items)} items, {total:.2f} with tax"


def slow_sync_job(log: list[str]) -> None:
    try:
        anywait.await_(asyncio.sleep(10))
    finally:
        log.append("slow job cleaned up")


async def main() -> None:
    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(anywait.with_portal_run_sync(price_report, ["tea", "milk"]))
            for _ in range(10)
        ]
    elapsed = time.perf_counter() - start
    print(f"{tasks[0].result()}, {len(tasks)} tasks in {elapsed:.2f} s")
    print(f"fetches in flight at once: {peak}")

    log: list[str] = []
    try:
        async with asyncio.timeout(0.1):
            await anywait.with_portal_run_sync(slow_sync_job, log)
    except TimeoutError:
        print(f"timeout reached the sync code: {log[0]}")


if __name__ == "__main__":
    asyncio.run(main())
