"""``tarfile`` reading a stream-mode archive off a local TCP socket, three ways, in one run.

    python benches/bench_files.py              # 256 MiB archive, 5 rounds
    python benches/bench_files.py --quick      # 32 MiB, 2 rounds

Rows (milliseconds to read the whole archive, every member's bytes; lower is better):

* anywait -- an asyncio ``StreamReader`` under ``anywait.sync_reader`` in a portal task:
  tarfile runs in the task, each refill ``await_``\\ s one read.
* blocking socket file -- the same tarfile loop over ``socket.makefile("rb")`` on a plain
  blocking socket, no event loop at all: the floor.
* thread + run_coroutine_threadsafe -- tarfile on a worker thread, whose reads hand
  ``reader.read(n)`` to the loop and wait for the result.

A second table drains the same bytes without parsing them, to show the floor: any reader
on an asyncio stream pays for the loop's transport (a ``recv`` into a new bytes object,
appended to the reader's buffer, per event-loop turn), which a blocking socket file does
not. Its rows:

* anywait -- ``sync_reader(reader).read(1 MiB)`` until EOF, in a portal task;
* asyncio, natively -- ``await reader.read(1 MiB)`` until EOF: the asyncio floor;
* blocking socket file -- ``makefile("rb").read(1 MiB)`` until EOF.

So the best an asyncio-based reader can do with tarfile is about the blocking tarfile
time plus (asyncio drain - blocking drain).

The server is a thread sending the archive from memory with ``sendall``. Uncompressed
(``r|``) so that the figures show I/O, not zlib.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import sys
import tarfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

CHUNK = 1 << 20
BUFFER = 256 * 1024


def make_archive(total: int) -> bytes:
    out = io.BytesIO()
    member = total // 8
    block = os.urandom(1 << 16) * (member // (1 << 16))
    with tarfile.open(fileobj=out, mode="w|") as archive:
        for i in range(8):
            info = tarfile.TarInfo(f"part{i}.bin")
            info.size = len(block)
            archive.addfile(info, io.BytesIO(block))
    return out.getvalue()


def serve(archive: bytes) -> int:
    listener = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(archive)

    threading.Thread(target=loop, daemon=True).start()
    return int(listener.getsockname()[1])


def read_all(file: Any) -> int:
    total = 0
    with tarfile.open(fileobj=file, mode="r|") as archive:
        for member in archive:
            extracted = archive.extractfile(member)
            assert extracted is not None
            while data := extracted.read(CHUNK):
                total += len(data)
    return total


def blocking(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb", BUFFER) as f:
        return read_all(f)


def with_anywait(port: int) -> int:
    import anywait

    async def main() -> int:
        await anywait.ensure_portal()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=BUFFER)
        try:
            return read_all(anywait.sync_reader(reader, buffer_size=BUFFER))
        finally:
            writer.close()

    return asyncio.run(main())


def drain_blocking(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb", BUFFER) as f:
        total = 0
        while data := f.read(CHUNK):
            total += len(data)
        return total


def drain_asyncio(port: int) -> int:
    async def main() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=BUFFER)
        total = 0
        try:
            while data := await reader.read(CHUNK):
                total += len(data)
        finally:
            writer.close()
        return total

    return asyncio.run(main())


def drain_anywait(port: int) -> int:
    import anywait

    async def main() -> int:
        await anywait.ensure_portal()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=BUFFER)
        file = anywait.sync_reader(reader, buffer_size=BUFFER)
        total = 0
        try:
            while data := file.read(CHUNK):
                total += len(data)
        finally:
            writer.close()
        return total

    return asyncio.run(main())


class _ThreadRaw(io.RawIOBase):
    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self.reader, self.loop = reader, loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = asyncio.run_coroutine_threadsafe(self.reader.read(len(buffer)), self.loop).result()
        buffer[: len(data)] = data
        return len(data)


def with_thread(port: int) -> int:
    async def main() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=BUFFER)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.to_thread(
                read_all, io.BufferedReader(_ThreadRaw(reader, loop), BUFFER)
            )
        finally:
            writer.close()

    return asyncio.run(main())


def case(
    name: str, fn: Any, port: int, size: int, bench: str = "read the archive", note: str = ""
) -> h.Case:
    def sample() -> float:
        t0 = time.perf_counter()
        got = fn(port)
        elapsed = time.perf_counter() - t0
        assert got == size, (name, got, size)
        return elapsed * 1000

    return h.Case(bench, name, "ms", sample, note=note)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true")
    p.add_argument("--mib", type=int, default=None, help="archive size (default 256)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 5)")
    args = p.parse_args()
    mib = args.mib or (32 if args.quick else 256)
    rounds = args.rounds or (2 if args.quick else 5)
    archive = make_archive(mib << 20)
    size = (mib << 20) // 8 // (1 << 16) * (1 << 16) * 8  # what make_archive puts in
    port = serve(archive)
    env = h.environment()
    print(f"Python {env['python']}, {env['cpus']} CPUs, load average {env['loadavg'][0]:.2f}")
    print(f"a {len(archive) >> 20} MiB stream-mode tar archive over 127.0.0.1, {rounds} rounds\n")
    cases = [
        case("anywait", with_anywait, port, size),
        case("blocking socket file", blocking, port, size),
        case("thread + run_coroutine_threadsafe", with_thread, port, size),
    ]
    drain = "drain the stream, no parsing"
    cases += [
        case("anywait", drain_anywait, port, len(archive), drain),
        case("asyncio, natively", drain_asyncio, port, len(archive), drain, "the asyncio floor"),
        case("blocking socket file", drain_blocking, port, len(archive), drain),
    ]
    samples = h.run_rounds(cases, rounds, label="files", gc_off=False)
    rows = h.summarize(cases, samples, baseline="anywait")
    h.print_table(rows, baseline="anywait")
    for row in rows:
        if row.spread:
            mib_per_s = len(archive) / (row.spread.median / 1000) / (1 << 20)
            print(f"  {row.case.bench}, {row.case.impl}: {mib_per_s:.0f} MiB/s")
    print("\n/ anywait: this row's time over anywait's; above 1 means anywait is faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
