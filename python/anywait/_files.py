"""Sync file objects over async byte streams, and async byte iterators over sync writers.

``sync_reader(stream)`` is a binary file object whose reads ``await_`` the stream, so
the stdlib's sync parsers (``tarfile``, ``gzip``, ``csv``, ``json.load``, ``pickle.load``)
read straight from a socket, an HTTP body or a pipe. ``sync_writer(stream)`` is its
counterpart for writes. ``iter_chunks(fn)`` turns a function that writes to a file object
into an async iterator of the bytes it writes (for ``tarfile``/``zipfile``/``csv.writer``
producing a streamed response body): ``fn`` runs on a stackful generator, and each write
hands its bytes to the consumer.

The reads and writes are ``await_`` calls: they work wherever ``await_`` does (a portal
task, a persistent loop), on the stream's own loop.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO, TextIO, overload

from anywait._anywait import await_
from anywait._generators import generator, yield_

__all__ = ["iter_chunks", "sync_reader", "sync_writer"]

_READER_KINDS = (
    "an asyncio StreamReader, a Trio ReceiveStream, an AnyIO ByteReceiveStream, any object "
    "with an async read(n) or receive(n) method, or an async iterator of bytes"
)
_WRITER_KINDS = (
    "an asyncio StreamWriter, a Trio SendStream, an AnyIO ByteSendStream, or any object "
    "with an async write(data) or send(data) method"
)


def _maybe_await(result: Any) -> Any:
    """``await_`` the result if it is awaitable (some streams' methods are sync)."""
    if isinstance(result, Awaitable):
        return await_(result)
    return result


def _is_end_of_stream(exc: BaseException) -> bool:
    """AnyIO's receive() ends a stream by raising EndOfStream (anyio need not be
    imported for anything else to work, so it is looked up, not imported)."""
    anyio = sys.modules.get("anyio")
    return anyio is not None and isinstance(exc, anyio.EndOfStream)


class _OverStream(io.RawIOBase):
    """A raw file over an async stream, which closing it closes only if asked."""

    _stream: Any
    _close_stream: bool

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._close_stream:
            _close(self._stream)


class _StreamRaw(_OverStream):
    """The raw reader under ``sync_reader``: each ``readinto`` is one receive."""

    def __init__(self, stream: Any, close_stream: bool) -> None:
        self._stream = stream
        self._close_stream = close_stream
        self._pending = b""  # what an async iterator gave beyond the last read
        self._failure: BaseException | None = None
        self._eof = False
        self._buffered_bytes = _stream_reader_buffer(stream)
        if hasattr(stream, "receive_some"):  # Trio
            self._receive: Callable[[int], bytes] = self._receive_some
        elif hasattr(stream, "read") and callable(stream.read):
            self._receive = self._read
        elif hasattr(stream, "receive") and callable(stream.receive):
            self._receive = self._receive_anyio
        elif hasattr(stream, "__anext__"):
            self._receive = self._next_chunk
        elif hasattr(stream, "__aiter__"):
            self._stream = stream.__aiter__()
            self._receive = self._next_chunk
        else:
            raise TypeError(
                f"sync_reader() needs an async byte stream: {_READER_KINDS}; "
                f"got {type(stream).__name__}"
            )

    def _receive_some(self, n: int) -> bytes:
        return bytes(await_(self._stream.receive_some(n)))

    def _read(self, n: int) -> bytes:
        return bytes(_maybe_await(self._stream.read(n)))

    def _receive_anyio(self, n: int) -> bytes:
        try:
            return bytes(await_(self._stream.receive(n)))
        except Exception as exc:
            if _is_end_of_stream(exc):
                return b""
            raise

    def _next_chunk(self, n: int) -> bytes:
        if not self._pending:
            while True:
                try:
                    chunk = await_(self._stream.__anext__())
                except StopAsyncIteration:
                    return b""
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(
                        "sync_reader() over an async iterator needs it to give bytes, got "
                        f"{type(chunk).__name__}"
                    )
                if chunk:
                    self._pending = bytes(chunk)
                    break
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._failure is not None:
            # A stream that failed stays failed: the same error, not a silent EOF.
            raise self._failure
        if self._eof:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            if self._buffered_bytes is not None:
                taken = self._take_buffered(view)
                if taken:
                    return taken
            data = self._receive(len(view))
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._failure = exc
            raise
        if not data:
            self._eof = True
            return 0
        view[: len(data)] = data
        return len(data)

    def _take_buffered(self, view: memoryview) -> int:
        """Waits, as ``StreamReader.read(n)`` does, then copies what the reader has
        buffered straight into ``view``: one copy, where ``read(n)`` makes two (a slice,
        then bytes) before ``readinto`` makes a third. 0 when there is nothing to take:
        at EOF, or after an error, which ``read(n)`` then reports as for any stream."""
        buffered = self._buffered_bytes
        stream = self._stream
        assert buffered is not None
        if not buffered and not stream._eof and stream._exception is None:
            await_(stream._wait_for_data("read"))
        if stream._exception is not None:
            return 0
        count = min(len(view), len(buffered))
        if count:
            with memoryview(buffered) as whole, whole[:count] as part:
                view[:count] = part
            del buffered[:count]
            self._stream._maybe_resume_transport()
        return count

    def seekable(self) -> bool:
        return callable(getattr(self._stream, "seek", None)) and callable(
            getattr(self._stream, "tell", None)
        )

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("this stream cannot seek")
        self._pending, self._eof = b"", False
        return int(_maybe_await(self._stream.seek(offset, whence)))

    def tell(self) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("this stream cannot tell its position")
        return int(_maybe_await(self._stream.tell()))


def _stream_reader_buffer(stream: Any) -> bytearray | None:
    """The internal buffer of an asyncio ``StreamReader`` (its exact class, whose
    ``read`` is known), or None. Reads take from it directly while it holds bytes; an
    empty buffer, an error or EOF go through ``read(n)`` as for any stream. It relies on
    ``_buffer``, ``_eof``, ``_exception``, ``_wait_for_data`` and
    ``_maybe_resume_transport``, which every supported version has; without them this
    returns None and only ``read(n)`` is used."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or type(stream) is not asyncio.StreamReader:
        return None
    buffer = getattr(stream, "_buffer", None)
    known = (
        hasattr(stream, "_exception")
        and hasattr(stream, "_eof")
        and callable(getattr(stream, "_wait_for_data", None))
        and callable(getattr(stream, "_maybe_resume_transport", None))
    )
    return buffer if isinstance(buffer, bytearray) and known else None


def _close(stream: Any) -> None:
    """Closes an async stream the way its kind is closed."""
    if hasattr(stream, "aclose"):
        await_(stream.aclose())
        return
    result = stream.close()
    if isinstance(result, Awaitable):
        await_(result)
    wait_closed = getattr(stream, "wait_closed", None)  # asyncio StreamWriter
    if wait_closed is not None:
        await_(wait_closed())


@overload
def sync_reader(
    stream: Any,
    *,
    buffer_size: int = ...,
    encoding: None = None,
    errors: str | None = None,
    newline: str | None = None,
    close_stream: bool = False,
) -> BinaryIO: ...
@overload
def sync_reader(
    stream: Any,
    *,
    buffer_size: int = ...,
    encoding: str,
    errors: str | None = None,
    newline: str | None = None,
    close_stream: bool = False,
) -> TextIO: ...
def sync_reader(
    stream: Any,
    *,
    buffer_size: int = io.DEFAULT_BUFFER_SIZE,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    close_stream: bool = False,
) -> BinaryIO | TextIO:
    """A sync file object reading from the async byte ``stream``.

    Each read that needs more bytes ``await_``\\ s one receive of up to ``buffer_size``
    bytes. ``stream`` is an asyncio ``StreamReader``, a Trio ``ReceiveStream``, an AnyIO
    ``ByteReceiveStream``, anything with an async ``read(n)`` or ``receive(n)``, or an
    async iterator of bytes. With ``encoding`` the file is text (``io.TextIOWrapper``).
    A read after the stream failed raises the stream's error again. Closing the file
    closes the stream only if ``close_stream``. ``seekable()`` is False unless the
    stream has ``seek`` and ``tell``.
    """
    raw = _StreamRaw(stream, close_stream)
    buffered = io.BufferedReader(raw, buffer_size)
    if encoding is None:
        return buffered
    return io.TextIOWrapper(buffered, encoding=encoding, errors=errors, newline=newline)


class _SinkRaw(_OverStream):
    """The raw writer under ``sync_writer``: each ``write`` sends all it is given."""

    def __init__(self, stream: Any, close_stream: bool) -> None:
        self._stream = stream
        self._close_stream = close_stream
        if hasattr(stream, "send_all"):  # Trio
            self._send: Callable[[bytes], None] = self._send_all
        elif hasattr(stream, "write") and callable(stream.write):
            self._send = self._write
        elif hasattr(stream, "send") and callable(stream.send):
            self._send = self._send_anyio
        else:
            raise TypeError(
                f"sync_writer() needs an async byte stream: {_WRITER_KINDS}; "
                f"got {type(stream).__name__}"
            )

    def _send_all(self, data: bytes) -> None:
        await_(self._stream.send_all(data))

    def _write(self, data: bytes) -> None:
        is_closing = getattr(self._stream, "is_closing", None)
        if is_closing is not None and is_closing():
            # asyncio's transports drop writes after close without an error; refuse
            # them here so that no byte is lost silently.
            raise BrokenPipeError(f"the stream is closed: {len(data)} bytes could not be written")
        _maybe_await(self._stream.write(data))
        drain = getattr(self._stream, "drain", None)  # asyncio StreamWriter
        if drain is not None:
            await_(drain())

    def _send_anyio(self, data: bytes) -> None:
        await_(self._stream.send(data))

    def writable(self) -> bool:
        return True

    def write(self, buffer: Any) -> int:
        data = bytes(buffer)  # the caller may reuse its buffer once we return
        if data:
            self._send(data)
        return len(data)


def sync_writer(
    stream: Any, *, buffer_size: int = io.DEFAULT_BUFFER_SIZE, close_stream: bool = False
) -> BinaryIO:
    """A sync binary file object writing to the async byte ``stream``.

    Writes are buffered (``buffer_size``), and each write that reaches the stream
    ``await_``\\ s the send of all of it: an asyncio ``StreamWriter`` (write, then
    drain), a Trio ``SendStream``, an AnyIO ``ByteSendStream``, or anything with an
    async ``write``/``send``. ``flush()`` waits until the buffered bytes are sent. A
    write to a closed stream raises. Closing the file closes the stream only if
    ``close_stream``.
    """
    return io.BufferedWriter(_SinkRaw(stream, close_stream), buffer_size)


class _YieldingRaw(io.RawIOBase):
    """The raw writer under ``iter_chunks``: each write is one chunk for the consumer."""

    def __init__(self) -> None:
        self.stopped = False

    def writable(self) -> bool:
        return True

    def write(self, buffer: Any) -> int:
        if self.stopped:
            raise BrokenPipeError("the consumer of iter_chunks() stopped reading (aclose)")
        data = bytes(buffer)
        if data:
            yield_(data)
        return len(data)


def _write_all(
    fn: Callable[..., Any], buffer_size: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    raw = _YieldingRaw()
    file = io.BufferedWriter(raw, buffer_size)
    try:
        fn(file, *args, **kwargs)
    except GeneratorExit:
        # The consumer closed the iterator: what is still buffered has nowhere to go,
        # and closing the file must not try to hand it over.
        raw.stopped = True
        with contextlib.suppress(OSError):
            file.close()
        raise
    file.close()  # the last chunk: what is still buffered


_chunk_generator = generator(_write_all)


class _Chunks(AsyncIterator[bytes]):
    """The async iterator ``iter_chunks`` returns."""

    def __init__(self, gen: Any) -> None:
        self._gen = gen

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return bytes(next(self._gen))
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Stops the writing function: ``GeneratorExit`` is raised in its write."""
        self._gen.close()


def iter_chunks(
    fn: Callable[..., Any], *args: Any, buffer_size: int = io.DEFAULT_BUFFER_SIZE, **kwargs: Any
) -> AsyncIterator[bytes]:
    """An async iterator of the bytes ``fn(file, *args, **kwargs)`` writes to ``file``.

    ``file`` is a buffered binary file object; each time its buffer (``buffer_size``)
    fills, and when ``fn`` returns, the bytes go to the consumer as one chunk. ``fn``
    runs a little at a time, as the consumer asks for chunks, with no thread and no
    temporary file. ``aclose()`` (or ``break`` under ``contextlib.aclosing``) stops
    it with ``GeneratorExit`` raised in its current write.
    """
    if not callable(fn):
        raise TypeError(f"iter_chunks() needs a function to call, got {type(fn).__name__}")
    return _Chunks(_chunk_generator(fn, buffer_size, args, kwargs))
