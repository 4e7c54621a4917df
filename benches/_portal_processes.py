"""bench_portal.py's other processes: the greenlet server (a child that has imported
greenlet and measures the cells that need it, on request over a pipe) and the RSS children
(a fresh interpreter per sample that blocks N tasks in await_ and reports its growth).
Both run bench_portal.py itself, with a hidden flag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import _harness as h
from _portal_measures import Measure, give_portal, make_backend, make_measure, portal_api
from _portal_rows import BASELINE, WITH_GREENLET, peer

#: The script the children run (``--serve``, ``--rss-child``).
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_portal.py")


class MeasureSampler(h._TimedSampler):
    """The harness's sampler (batch calibration, warm-up), with the clock read by whatever
    runs the operations: the factory yields a Measure, and the sample is what it reports."""

    def _time(self, n: int) -> int:
        with self.factory() as measure:
            elapsed: Any = measure(n)
            return int(elapsed)


def yielding(measure: Measure) -> Any:
    @contextlib.contextmanager
    def factory() -> Iterator[Measure]:
        yield measure

    return factory


class GreenletServer:
    """The child process that measures the cells needing greenlet (``--serve``): one JSON
    request per line, ``[backend, bench, impl, n]``, answered with ``{"ns": ...}``."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _call(self, request: list[Any]) -> int:
        if self.proc is None:
            cmd = [sys.executable, SCRIPT, "--serve"]
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the greenlet server died (exit status {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"greenlet server, {request[:3]}:\n{reply['error']}")
        return int(reply["ns"])

    def measure(self, backend: str, bench: str, impl: str) -> Measure:
        return lambda n: self._call([backend, bench, impl, n])

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc = None


def serve() -> None:
    """``--serve``: import greenlet, then answer GreenletServer's requests until stdin ends."""
    import greenlet  # noqa: F401  (the reason this process exists)

    measures: dict[tuple[str, str, str], Measure] = {}
    for line in sys.stdin:
        backend_name, bench, impl, n = json.loads(line)
        try:
            key = (backend_name, bench, impl)
            if key not in measures:
                backend = make_backend(backend_name)
                assert backend is not None
                measures[key] = make_measure(backend, bench, impl)
            reply: dict[str, Any] = {"ns": measures[key](n)}
        except Exception:
            reply = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


# --- RSS per blocked task (child process) ----------------------------------------------------


def _statm_bytes() -> tuple[int, int]:
    """(resident, mapped) bytes of this process."""
    with open("/proc/self/statm") as fh:
        size, resident = fh.read().split()[:2]
    page = os.sysconf("SC_PAGESIZE")
    return int(resident) * page, int(size) * page


def rss_child(backend_name: str, impl: str, count: int, depth: int) -> None:
    """Runs in a fresh interpreter: prints {"bytes_per_task": ...} as JSON and exits at once
    (without unwinding the blocked tasks, which would only cost time)."""
    import gc

    if impl == WITH_GREENLET:
        import greenlet  # noqa: F401

        impl = BASELINE
    backend = make_backend(backend_name)
    assert backend is not None
    counts = {"blocked": 0, "done": 0}

    def sync_descend(d: int, await_: Callable[[Any], Any], event: Any) -> None:
        if d > 1:
            sync_descend(d - 1, await_, event)
            return
        counts["blocked"] += 1
        await_(event.wait())

    async def async_descend(d: int, event: Any) -> None:
        if d > 1:
            await async_descend(d - 1, event)
            return
        counts["blocked"] += 1
        await event.wait()

    if impl == "native":

        async def task(event: Any) -> None:
            await async_descend(depth, event)
            counts["done"] += 1

    elif impl == "awaitlet":
        al = peer("awaitlet")

        async def task(event: Any) -> None:
            await al.async_def(sync_descend, depth, al.awaitlet, event)
            counts["done"] += 1

    else:
        api = portal_api(impl)

        async def task(event: Any) -> None:
            await give_portal(api)
            sync_descend(depth, api.await_, event)
            counts["done"] += 1

    async def until(key: str, n: int) -> None:
        while counts[key] < n:
            await backend.checkpoint()

    async def measure(spawn: Callable[[Any, Any], None]) -> None:
        # Warm-up: one task through the whole path and out again, so code objects, type
        # caches and first-use allocations are not charged to the measured tasks.
        event = backend.event()
        spawn(task, event)
        await until("blocked", 1)
        event.set()
        await until("done", 1)

        event = backend.event()
        gc.collect()
        gc.disable()
        before, vm_before = _statm_bytes()
        for _ in range(count):
            spawn(task, event)
        await until("blocked", 1 + count)
        gc.collect()
        after, vm_after = _statm_bytes()
        # Mapped size is kept for the JSON only: it shows reserved stacks, which cost
        # address space but no memory until touched.
        result = {
            "bytes_per_task": (after - before) / count,
            "mapped_bytes_per_task": (vm_after - vm_before) / count,
            "rss_before": before,
            "rss_after": after,
            "greenlet_imported": "greenlet" in sys.modules,
        }
        print(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)

    async def main() -> None:
        if backend_name == "trio":
            import trio

            async with trio.open_nursery() as nursery:
                await measure(nursery.start_soon)
        else:
            tasks: list[Any] = [None] * (count + 1)
            create_task = asyncio.get_running_loop().create_task
            spawned = iter(range(count + 1))

            def spawn(fn: Any, event: Any) -> None:
                tasks[next(spawned)] = create_task(fn(event))

            await measure(spawn)

    backend.run(main)


def rss_sampler(backend: str, impl: str, count: int, depth: int, info: dict[str, Any]) -> Any:
    def sample() -> float:
        cmd = [
            sys.executable,
            SCRIPT,
            "--rss-child",
            backend,
            impl,
            str(count),
            str(depth),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"RSS child for {backend}/{impl} failed ({proc.returncode}):\n{proc.stderr}"
            )
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        info.setdefault("children", []).append(out)
        return float(out["bytes_per_task"]) / 1024

    return sample
