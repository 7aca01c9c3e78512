"""agentkit's default HTTP transport: lean HTTP/1.1 with keep-alive, for ``httpx2.AsyncClient``.

Why it exists: with httpcore as the transport, one Messages round trip costs about 0.75 ms of client CPU
on this project's benchmark (cancel scopes and trace contexts per read and write, h11's event machinery,
and a pool that polls every connection it holds on each request, O(N) per request). That was most of
agentkit's CPU per turn and kept many concurrent runs CPU-bound. This transport does the same job in
a fraction of it (see ``benchmarks/README.md``):

- one cancel scope per request, whose deadline moves with each phase (connect, write, read);
- an O(1) pool: a stack of idle connections per origin, a count of open ones, and a FIFO of waiters;
- a small, strict HTTP/1.1 response parser (status line, headers, ``Content-Length``, chunked
  bodies, read-until-close), with limits on what a server may send.

It plugs into httpx2 through its public ``AsyncBaseTransport`` interface, so httpx2 still builds the
requests and responses, and a user can always pass their own ``transport=`` or ``http_client=``.
It speaks HTTP/1.1 only and does not do proxies: :class:`agentkit.Client` uses httpx2's own stack when
the environment configures a proxy for its URL.

It works on asyncio and trio (through anyio).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import anyio
import anyio.abc
import httpx2

_MAX_HEAD = 64 * 1024  # status line + headers
_MAX_CHUNK_LINE = 4096  # a chunk-size line (with extensions)
_RECEIVE = 65536
_HIGH_WATER = 1 << 20  # bytes buffered before an asyncio connection stops reading
_NO_BODY_STATUS = frozenset({204, 304})
_Origin = tuple[str, str, int]


class _Stream(Protocol):
    """What a connection needs from a byte stream (anyio's streams and :class:`_AsyncioStream` fit)."""

    async def send(self, item: bytes, /) -> None: ...

    async def receive(self, max_bytes: int = 65536, /) -> bytes: ...

    async def aclose(self) -> None: ...


class _AsyncioStream(asyncio.Protocol):
    """A connection on asyncio's own transport, for the asyncio backend.

    anyio's socket stream pauses the transport after every read and resumes it before the next (two
    ``epoll_ctl`` calls per read) and adds a scheduling round trip to every send; this one keeps
    reading into a buffer (up to ``_HIGH_WATER``) and writes straight to the transport. Same contract
    as an anyio byte stream: ``receive`` raises ``anyio.EndOfStream`` at the end, ``BrokenResourceError``
    when the connection broke.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused = False

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _HIGH_WATER and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None:
            self._error = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    # stream interface
    async def send(self, item: bytes, /) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise anyio.BrokenResourceError from self._error
        transport.write(item)
        if self._writable is not None:
            await self._writable
            if transport.is_closing():
                raise anyio.BrokenResourceError from self._error

    async def receive(self, max_bytes: int = 65536, /) -> bytes:
        while not self._buffer:
            if self._error is not None:
                raise anyio.BrokenResourceError from self._error
            if self._eof:
                raise anyio.EndOfStream
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def aclose(self) -> None:
        # abort, not close: close() would keep sending whatever is still queued (the rest of a request
        # that timed out) before letting go of the socket
        if self._transport is not None:
            try:
                self._transport.abort()
            except RuntimeError:  # its event loop is closed: the socket closes with the transport
                self._transport = None


class _Connection:
    """One open connection: its stream, the bytes read past the last response, and (for anyio streams,
    to check an idle one is still open) its raw socket."""

    __slots__ = ("buffer", "idle_since", "origin", "sock", "stream")

    def __init__(self, stream: _Stream, origin: _Origin, sock: socket.socket | None) -> None:
        self.stream = stream
        self.origin = origin
        self.buffer = bytearray()
        self.idle_since = 0.0
        self.sock = sock

    def looks_closed(self) -> bool:
        """True when an idle connection can't take a request: closed by the server, unexpected bytes
        waiting, or made on another event loop."""
        if self.buffer:
            return True
        stream = self.stream
        if isinstance(stream, _AsyncioStream):  # its transport reads eagerly: EOF or bytes are buffered
            # a connection made on another event loop (a Client kept across asyncio.run calls) is dead
            return stream._eof or bool(stream._buffer) or stream._loop is not asyncio.get_running_loop()
        if self.sock is None:
            return False
        try:
            self.sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
        except (BlockingIOError, InterruptedError):
            return False  # nothing to read: still open
        except OSError:
            return True
        return True  # EOF (b"") or stray bytes: either way not usable for a new request


class _Transport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 connection pool: ``max_connections`` open at most, ``max_keepalive`` kept idle.

    A request takes the most recently used idle connection to its origin (after checking the server
    has not closed it), or opens one, or waits (``pool`` timeout) until one is released.
    """

    def __init__(
        self,
        *,
        max_connections: int | None = 1000,
        max_keepalive: int | None = 200,
        keepalive_expiry: float | None = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._waiters: collections.deque[anyio.Event] = collections.deque()
        self._closed = False

    # --- pool ------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        host = url.host
        port = url.port or (443 if scheme == "https" else 80)
        origin = (scheme, host, port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head = _request_head(request, url.raw_path)
        body = await request.aread()
        if body and "chunked" in request.headers.get("transfer-encoding", ""):
            body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
        elif not body and "transfer-encoding" in request.headers:
            body = b"0\r\n\r\n"

        connection = await self._acquire(origin, timeouts)
        try:
            writing = True
            with anyio.CancelScope(deadline=_deadline(timeouts.get("write"))) as scope:
                try:
                    await connection.stream.send(head + body)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    raise httpx2.WriteError(f"sending the request failed: {exc!r}") from exc
                writing = False
                read_timeout = timeouts.get("read")
                scope.deadline = _deadline(read_timeout)
                while True:  # skip 1xx interim responses (100 Continue, 103 Early Hints)
                    status, reason, version, headers = await self._read_head(connection, scope, read_timeout)
                    if status >= 200:
                        break
            if scope.cancelled_caught:
                if writing:
                    raise httpx2.WriteTimeout("sending the request timed out")
                raise httpx2.ReadTimeout("no response within the read timeout")
            response_stream = self._body_stream(connection, request, status, version, headers, timeouts)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(connection)
            raise
        extensions = {"http_version": version, "reason_phrase": reason}
        buffered = response_stream.buffered_body()
        if buffered is not None:
            # The whole body came with the head (the usual JSON answer): hand it over as bytes and the
            # connection back at once, sparing httpx2 its streaming read path.
            await self._release(connection, response_stream.keep_alive)
            return httpx2.Response(status, headers=headers, content=buffered, extensions=extensions)
        return httpx2.Response(status, headers=headers, stream=response_stream, extensions=extensions)

    async def _acquire(self, origin: _Origin, timeouts: dict[str, float | None]) -> _Connection:
        woken = False
        while True:
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()
                self._idle_count -= 1
                expiry = self._keepalive_expiry
                if (expiry is not None and time.monotonic() - connection.idle_since > expiry) or (
                    connection.looks_closed()
                ):
                    await self._discard(connection)
                    continue
                return connection
            if self._max_connections is None or self._open < self._max_connections:
                self._open += 1
                try:
                    return await self._connect(origin, timeouts)
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            if self._idle_count:  # at the limit with idle connections to other origins: free one
                await self._evict_one()
                continue
            waiter = anyio.Event()
            if woken:  # woken before but beaten to the slot: keep our place at the front
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                with anyio.fail_after(timeouts.get("pool")):
                    await waiter.wait()
            except BaseException as exc:
                if not waiter.is_set():
                    self._waiters.remove(waiter)
                else:  # woken, but not taking the slot: pass the wake-up on
                    self._wake()
                if isinstance(exc, TimeoutError):
                    raise httpx2.PoolTimeout("no free connection within the pool timeout") from exc
                raise
            woken = True

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.is_set():
                waiter.set()
                return

    async def _connect(self, origin: _Origin, timeouts: dict[str, float | None]) -> _Connection:
        scheme, host, port = origin
        tls = scheme == "https"
        try:
            with anyio.fail_after(timeouts.get("connect")):
                if _on_asyncio():
                    protocol = _AsyncioStream()
                    await asyncio.get_running_loop().create_connection(
                        lambda: protocol,
                        host,
                        port,
                        ssl=(self._ssl_context or _default_ssl_context()) if tls else None,
                        server_hostname=host if tls else None,
                        happy_eyeballs_delay=0.25,  # RFC 8305, as anyio.connect_tcp does on trio
                    )
                    return _Connection(protocol, origin, None)
                stream: anyio.abc.ByteStream
                if tls:
                    stream = await anyio.connect_tcp(
                        host,
                        port,
                        ssl_context=self._ssl_context or _default_ssl_context(),
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(host, port)
                raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
                return _Connection(stream, origin, raw if isinstance(raw, socket.socket) else None)
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise httpx2.ConnectError(f"connecting to {host}:{port} failed: {exc}") from exc

    async def _release(self, connection: _Connection, reusable: bool) -> None:
        """Back to the idle stack (or closed); wakes one waiter either way."""
        if (
            reusable
            and not self._closed
            and (self._max_keepalive is None or self._idle_count < self._max_keepalive)
        ):
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
            self._idle_count += 1
            self._wake()
            return
        await self._discard(connection)

    async def _discard(self, connection: _Connection) -> None:
        self._open -= 1
        self._wake()
        stream = connection.stream
        if isinstance(stream, anyio.abc.AsyncResource):
            await anyio.aclose_forcefully(stream)
        else:
            await stream.aclose()  # _AsyncioStream: closing never waits

    async def _evict_one(self) -> None:
        for stack in self._idle.values():
            if stack:
                self._idle_count -= 1
                await self._discard(stack.pop(0))  # the oldest
                return

    async def aclose(self) -> None:
        self._closed = True
        idle = [c for stack in self._idle.values() for c in stack]
        self._idle.clear()
        self._idle_count = 0
        for connection in idle:
            await self._discard(connection)

    # --- HTTP/1.1 ---------------------------------------------------------------------------

    async def _read_head(
        self, connection: _Connection, scope: anyio.CancelScope, read_timeout: float | None
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        async def receive() -> bytes:
            data = await _receive(connection)
            scope.deadline = _deadline(read_timeout)  # the read timeout counts from the last bytes
            return data

        head = await _read_until(
            connection,
            b"\r\n\r\n",
            _MAX_HEAD,
            receive,
            "response head",
            closed_at_once="Server disconnected without sending a response.",
        )
        return _parse_head(head)

    def _body_stream(
        self,
        connection: _Connection,
        request: httpx2.Request,
        status: int,
        version: bytes,
        headers: list[tuple[bytes, bytes]],
        timeouts: dict[str, float | None],
    ) -> _BodyStream:
        length: int | None = None
        chunked = False
        # RFC 9112 9.6: no further request on a connection either side said "close" on
        keep_alive = version == b"HTTP/1.1" and "close" not in request.headers.get("connection", "").lower()
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise httpx2.RemoteProtocolError(f"invalid Content-Length {value!r}")
                length = int(value)
            elif lowered == b"transfer-encoding":
                codings = [c.strip() for c in value.lower().split(b",")]
                if codings[-1] != b"chunked":
                    raise httpx2.RemoteProtocolError(f"unsupported Transfer-Encoding {value!r}")
                chunked = True
            elif lowered == b"connection" and b"close" in value.lower():
                keep_alive = False
        if request.method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
            mode, length = "length", 0
        elif chunked:
            mode, length = "chunked", None
        elif length is not None:
            mode = "length"
        else:
            mode, keep_alive = "close", False
        return _BodyStream(self, connection, mode, length, keep_alive, timeouts.get("read"))


class _BodyStream(httpx2.AsyncByteStream):
    """A response body read off its connection; the connection goes back to the pool at the end."""

    def __init__(
        self,
        transport: _Transport,
        connection: _Connection,
        mode: str,
        length: int | None,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._mode = mode
        self._length = length
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout

    @property
    def keep_alive(self) -> bool:
        return self._keep_alive

    def buffered_body(self) -> bytes | None:
        """The whole body if it has a length and is already buffered (taken off the connection), else
        None (then iterate)."""
        connection = self._connection
        length = self._length
        if connection is None or self._mode != "length" or length is None or len(connection.buffer) < length:
            return None
        body = bytes(connection.buffer[:length])
        del connection.buffer[:length]
        self._connection = None
        return body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx2.StreamClosed()
        reading = self._chunked(connection) if self._mode == "chunked" else self._plain(connection)
        try:
            async for part in reading:
                if part:
                    yield part
        except TimeoutError as exc:
            await self.aclose()
            raise httpx2.ReadTimeout("the response body stalled past the read timeout") from exc
        except BaseException:
            await self.aclose()
            raise
        self._connection = None
        await self._transport._release(connection, self._keep_alive)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:  # not read to the end: the connection's state is unknown
            with anyio.CancelScope(shield=True):
                await self._transport._discard(connection)

    async def _more(self, connection: _Connection) -> bytes:
        with anyio.fail_after(self._read_timeout):
            return await _receive(connection)

    async def _fill(self, connection: _Connection, what: str) -> None:
        """Read more into the connection's buffer; ``RemoteProtocolError`` if it ends instead."""
        data = await self._more(connection)
        if not data:
            raise httpx2.RemoteProtocolError(f"the server closed the connection in the middle of a {what}")
        connection.buffer += data

    async def _pass_on(self, connection: _Connection, size: int, what: str) -> AsyncIterator[bytes]:
        """The next ``size`` bytes, piece by piece as they arrive (a big body sent slowly still streams)."""
        buffer = connection.buffer
        while size:
            if not buffer:
                await self._fill(connection, what)
            part = bytes(buffer[:size])
            del buffer[:size]
            size -= len(part)
            yield part

    async def _plain(self, connection: _Connection) -> AsyncIterator[bytes]:
        if self._length is not None:
            async for part in self._pass_on(connection, self._length, "body"):
                yield part
            return
        buffer = connection.buffer  # until the server closes
        if buffer:
            yield bytes(buffer)
            buffer.clear()
        while data := await self._more(connection):
            yield data

    async def _chunked(self, connection: _Connection) -> AsyncIterator[bytes]:
        buffer = connection.buffer
        while True:
            line = await self._line(connection)
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise httpx2.RemoteProtocolError(f"invalid chunk size line {bytes(line[:40])!r}")
            size = int(size_text, 16)
            if size == 0:
                while await self._line(connection):  # trailers, up to the empty line
                    pass
                return
            async for part in self._pass_on(connection, size, "chunk"):
                yield part
            while len(buffer) < 2:
                await self._fill(connection, "chunk")
            if buffer[:2] != b"\r\n":
                raise httpx2.RemoteProtocolError("a chunk is not followed by CRLF")
            del buffer[:2]

    async def _line(self, connection: _Connection) -> bytes:
        return await _read_until(
            connection, b"\r\n", _MAX_CHUNK_LINE, lambda: self._more(connection), "chunk framing line"
        )


# --- helpers -----------------------------------------------------------------------------------


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio (or another anyio backend)
        return False
    return True


async def _read_until(
    connection: _Connection,
    delimiter: bytes,
    limit: int,
    receive: Callable[[], Awaitable[bytes]],
    what: str,
    *,
    closed_at_once: str | None = None,
) -> bytes:
    """The buffered bytes up to ``delimiter`` (both taken off the buffer), reading more as needed;
    ``RemoteProtocolError`` when they run past ``limit`` or the connection ends first (with the message
    ``closed_at_once`` if it ends before any byte)."""
    buffer = connection.buffer
    start = 0
    while True:
        end = buffer.find(delimiter, start)
        if end > limit or (end < 0 and len(buffer) > limit):
            raise httpx2.RemoteProtocolError(f"{what} longer than {limit} bytes")
        if end >= 0:
            break
        start = max(0, len(buffer) - len(delimiter) + 1)
        data = await receive()
        if not data:
            if not buffer and closed_at_once is not None:
                raise httpx2.RemoteProtocolError(closed_at_once)
            raise httpx2.RemoteProtocolError(f"the server closed the connection in the middle of a {what}")
        buffer += data
    found = bytes(buffer[:end])
    del buffer[: end + len(delimiter)]
    return found


async def _receive(connection: _Connection) -> bytes:
    """The next bytes from the connection; b"" at the end of the stream."""
    try:
        return await connection.stream.receive(_RECEIVE)
    except anyio.EndOfStream:
        return b""
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, ssl.SSLError) as exc:
        raise httpx2.ReadError(f"reading the response failed: {exc!r}") from exc


def _deadline(timeout: float | None) -> float:
    return anyio.current_time() + timeout if timeout is not None else float("inf")


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _request_head(request: httpx2.Request, target: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), target)]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\0" in value or not _TOKEN.fullmatch(name):
            raise httpx2.LocalProtocolError(
                f"invalid header {name!r}: not a token, or CR, LF or NUL in its value"
            )
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def _parse_head(head: bytes) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise httpx2.RemoteProtocolError(f"invalid status line {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise httpx2.RemoteProtocolError(f"invalid header line {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return int(code), reason, version, headers


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx2's verified context (certifi CA store), loaded once: loading it costs ~25 ms."""
    context = httpx2.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
