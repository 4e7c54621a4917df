"""``sync_reader``/``sync_writer``/``iter_chunks``: the stdlib's sync parsers and writers
over real async streams (a TCP connection on 127.0.0.1), on asyncio and Trio, and AnyIO.

The twin of each read is the same parser over the same bytes in a ``BytesIO``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tarfile
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anywait
import pytest
from portal_harness import require

PAYLOAD = {f"dir/file{i}.txt": (f"line {i}\n" * (500 * i + 1)).encode() for i in range(6)}
ROWS = [
    ["id", "name", "note"],
    *[[str(i), f"name {i}", 'ü, "quoted"\nnewline'] for i in range(300)],
]


def targz_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in PAYLOAD.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_tar(file: Any) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=file, mode="r|gz") as archive:
        for member in archive:
            extracted = archive.extractfile(member)
            assert extracted is not None
            out[member.name] = extracted.read()
    return out


def read_csv(file: Any) -> list[list[str]]:
    return list(csv.reader(file))


def csv_bytes() -> bytes:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(ROWS)
    return text.getvalue().encode("utf-8")


# --- a real local TCP connection, per backend ---------------------------------------------


def serve_bytes_asyncio(data: bytes, client: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """A server on 127.0.0.1 that sends ``data`` in small pieces, then closes; the client
    task (with a portal) gets (reader, writer)."""

    async def main() -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for at in range(0, len(data), 1000):
                writer.write(data[at : at + 1000])
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await anywait.ensure_portal()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await client(reader, writer)
            finally:
                writer.close()
                await writer.wait_closed()

    return asyncio.run(main())


def serve_bytes_trio(data: bytes, client: Callable[[Any], Awaitable[Any]]) -> Any:
    require("trio")
    import trio

    async def main() -> Any:
        async def handle(stream: Any) -> None:
            async with stream:
                for at in range(0, len(data), 1000):
                    await stream.send_all(data[at : at + 1000])

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, handle, 0)
            port = listeners[0].socket.getsockname()[1]
            await anywait.ensure_portal()
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                result = await client(stream)
            nursery.cancel_scope.cancel()
        return result

    return trio.run(main)


def test_tarfile_stream_mode_over_tcp_asyncio() -> None:
    async def client(reader: asyncio.StreamReader, _writer: Any) -> Any:
        return read_tar(anywait.sync_reader(reader))

    assert serve_bytes_asyncio(targz_bytes(), client) == read_tar(io.BytesIO(targz_bytes()))


def test_tarfile_stream_mode_over_tcp_trio() -> None:
    async def client(stream: Any) -> Any:
        return read_tar(anywait.sync_reader(stream))

    assert serve_bytes_trio(targz_bytes(), client) == read_tar(io.BytesIO(targz_bytes()))


def test_csv_text_mode_over_tcp_asyncio_and_trio() -> None:
    def text(file: Any) -> Any:
        return read_csv(io.TextIOWrapper(file, encoding="utf-8", newline=""))

    async def asyncio_client(reader: Any, _writer: Any) -> Any:
        return read_csv(anywait.sync_reader(reader, encoding="utf-8", newline=""))

    async def trio_client(stream: Any) -> Any:
        return read_csv(anywait.sync_reader(stream, encoding="utf-8", newline=""))

    expected = text(io.BytesIO(csv_bytes()))
    assert expected == ROWS
    assert serve_bytes_asyncio(csv_bytes(), asyncio_client) == expected
    assert serve_bytes_trio(csv_bytes(), trio_client) == expected


def test_anyio_byte_stream_over_tcp() -> None:
    require("anyio-asyncio")
    import anyio

    data = targz_bytes()

    async def main() -> Any:
        async def handle(stream: Any) -> None:
            async with stream:
                for at in range(0, len(data), 4096):
                    await stream.send(data[at : at + 4096])

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            await anywait.ensure_portal()
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                result = read_tar(anywait.sync_reader(stream))
            tg.cancel_scope.cancel()
        return result

    assert anyio.run(main) == PAYLOAD


def test_json_load_over_an_async_byte_iterator() -> None:
    document = {"items": list(range(1000)), "text": "ünïcode" * 50}
    encoded = json.dumps(document).encode()

    async def body() -> AsyncIterator[bytes]:
        for at in range(0, len(encoded), 777):
            await asyncio.sleep(0)
            yield encoded[at : at + 777]

    async def main() -> Any:
        await anywait.ensure_portal()
        return json.load(anywait.sync_reader(body()))

    assert asyncio.run(main()) == document


def test_sync_writer_over_tcp_and_close_stream() -> None:
    received: list[bytes] = []

    async def main() -> bool:
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read())
            writer.close()
            done.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await anywait.ensure_portal()
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            file = anywait.sync_writer(writer)
            text = io.TextIOWrapper(file, encoding="utf-8", newline="")
            csv.writer(text).writerows(ROWS)
            text.flush()
            text.detach().close()  # the file, not the stream
            still_open = not writer.is_closing()
            with anywait.sync_writer(writer, close_stream=True) as last:
                last.write(b"--end--")
            assert writer.is_closing()
            await done.wait()
        return still_open

    assert asyncio.run(main()) is True
    assert received == [csv_bytes() + b"--end--"]


def test_iter_chunks_streams_a_zip_archive_out_and_it_reads_back() -> None:
    def write_zip(file: Any, members: dict[str, bytes]) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)

    async def main() -> list[bytes]:
        return [chunk async for chunk in anywait.iter_chunks(write_zip, PAYLOAD, buffer_size=256)]

    chunks = asyncio.run(main())
    assert len(chunks) > 1  # streamed, not written in one piece
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == PAYLOAD


def test_iter_chunks_aclose_stops_the_writer() -> None:
    log: list[str] = []

    def endless(file: Any) -> None:
        try:
            while True:
                file.write(b"x" * 1000)
        finally:
            log.append("writer stopped")

    async def main() -> int:
        chunks = anywait.iter_chunks(endless, buffer_size=1000)
        first = await chunks.__anext__()
        await chunks.aclose()  # type: ignore[attr-defined]
        return len(first)

    assert asyncio.run(main()) == 1000
    assert log == ["writer stopped"]


# --- bad input --------------------------------------------------------------------------


def test_what_is_no_stream_gets_a_type_error_naming_what_works() -> None:
    with pytest.raises(TypeError, match=r"StreamReader.*ReceiveStream.*async iterator"):
        anywait.sync_reader(object())
    with pytest.raises(TypeError, match=r"StreamWriter.*SendStream"):
        anywait.sync_writer(object())
    with pytest.raises(TypeError, match="needs a function"):
        anywait.iter_chunks(1)  # type: ignore[arg-type]


def test_a_read_after_the_stream_failed_raises_its_error_again() -> None:
    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        async def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return b"abc"
            raise ConnectionResetError("peer went away")

    async def main() -> list[str]:
        await anywait.ensure_portal()
        source = Failing()
        file = anywait.sync_reader(source)
        seen = [file.read1(10).decode()]
        for _ in range(2):
            try:
                file.read(10)
            except ConnectionResetError as exc:
                seen.append(str(exc))
        seen.append(f"calls={source.calls}")
        return seen

    assert asyncio.run(main()) == ["abc", "peer went away", "peer went away", "calls=2"]


class _SubclassedReader(asyncio.StreamReader):
    """Not the exact class: sync_reader must go through its public read(n)."""


@pytest.mark.parametrize("reader_class", [asyncio.StreamReader, _SubclassedReader])
@pytest.mark.parametrize("ending", ["eof", "error", "error with data buffered"])
def test_an_asyncio_stream_reader_fed_piece_by_piece(reader_class: type, ending: str) -> None:
    # sync_reader takes an asyncio StreamReader's buffered bytes directly (one copy);
    # what it reads, and where the error comes, must be what read(n) gives natively.
    async def feed(reader: asyncio.StreamReader) -> None:
        if ending == "error with data buffered":
            # All of it before the first read: natively the error comes first.
            reader.feed_data(b"never read")
            reader.set_exception(ConnectionResetError("peer went away"))
            return
        for piece in (b"abc", b"defgh", b"", b"ijklmnopq"):
            await asyncio.sleep(0)
            reader.feed_data(piece)
        await asyncio.sleep(0)
        if ending == "eof":
            reader.feed_eof()
        else:
            reader.set_exception(ConnectionResetError("peer went away"))

    async def native(reader: asyncio.StreamReader) -> tuple[bytes, str]:
        got = b""
        try:
            while piece := await reader.read(4):
                got += piece
        except ConnectionResetError as exc:
            return got, str(exc)
        return got, "eof"

    def through_sync_reader(reader: asyncio.StreamReader) -> tuple[bytes, str]:
        file = anywait.sync_reader(reader, buffer_size=4)
        got = b""
        try:
            while piece := file.read1(4):
                got += piece
        except ConnectionResetError as exc:
            return got, str(exc)
        return got, "eof"

    async def main(through_anywait: bool) -> tuple[bytes, str]:
        await anywait.ensure_portal()
        reader = reader_class()
        feeding = asyncio.create_task(feed(reader))
        await asyncio.sleep(0)  # the feeder's first step before the first read
        result = through_sync_reader(reader) if through_anywait else await native(reader)
        await feeding
        return result

    expected = asyncio.run(main(False))
    assert asyncio.run(main(True)) == expected
    assert expected[0] == (b"" if ending == "error with data buffered" else b"abcdefghijklmnopq")


def test_a_write_to_a_closed_stream_raises_and_drops_nothing_silently() -> None:
    async def main() -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await anywait.ensure_portal()
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            file = anywait.sync_writer(writer, buffer_size=16)
            writer.close()
            await writer.wait_closed()
            try:
                file.write(b"0123456789" * 10)
                file.flush()
            except BrokenPipeError as exc:
                return str(exc)
            return "no error"

    assert "could not be written" in asyncio.run(main())


def test_sync_writer_over_a_trio_stream_and_an_anyio_stream() -> None:
    require("trio")
    import trio

    async def trio_main() -> bytes:
        received: list[bytes] = []

        async def handle(stream: Any) -> None:
            async with stream:
                while data := await stream.receive_some():
                    received.append(data)

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, handle, 0)
            port = listeners[0].socket.getsockname()[1]
            await anywait.ensure_portal()
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            with (
                anywait.sync_writer(stream, close_stream=True) as file,
                tarfile.open(fileobj=file, mode="w|gz") as archive,
            ):
                for name, data in PAYLOAD.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
            await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        return b"".join(received)

    sent = trio.run(trio_main)
    assert read_tar(io.BytesIO(sent)) == PAYLOAD

    require("anyio-asyncio")
    import anyio

    async def anyio_main() -> bytes:
        send, receive = anyio.create_memory_object_stream(100)

        class Bytes:
            """An AnyIO-style byte stream: async send(data)."""

            async def send(self, data: bytes) -> None:
                await send.send(data)

        await anywait.ensure_portal()
        with anywait.sync_writer(Bytes()) as file:
            file.write(b"abc" * 10_000)
        send.close()
        with receive:
            return b"".join([chunk async for chunk in receive])

    assert anyio.run(anyio_main) == b"abc" * 10_000
