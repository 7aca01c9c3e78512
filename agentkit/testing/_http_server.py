"""The HTTP/1.1 side of the local server: asyncio streams, run in a background thread.

One asyncio loop in its own thread serves every connection, so tests on any anyio backend (asyncio or
trio) and plain synchronous code can use it. Requests are parsed by h11 (a ``Content-Length`` body;
chunked request bodies get 411), keep-alive and pipelining included. Responses are written here, byte
for byte (``Content-Length`` JSON or ``Transfer-Encoding: chunked`` SSE, so connections stay reusable),
since the hostile replies must be able to write what no HTTP library would.
What a request means (routes, validation, auth per flavour, replies) is ``_server.LocalServer``'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
from collections import deque
from types import TracebackType
from typing import Any, Self

import anyio.to_thread
import h11

from ._recorded import redact_headers
from ._replies import Request
from ._wire import dumps, error_body, new_id

MAX_BODY = 32 * 1024 * 1024
_HEAD_LIMIT = 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    529: "Overloaded",
}
_SSE_TYPE = "text/event-stream; charset=utf-8"
DEFAULT_MAX_RECORDED = 10_000
_JSON_TYPE = "application/json"


class _HTTPError(Exception):
    """A malformed HTTP request: answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str, *, unread: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.unread = unread  # body bytes left unread on the connection


class _Closed(Exception):
    """The reply closed the connection (a fault): stop serving it."""


class _HTTPServer:
    """Serves HTTP/1.1 on ``host`` in a thread of its own and records each request. A subclass sets the
    attributes below in ``__init__``, answers a request in :meth:`_serve` and judges its credentials in
    :meth:`_auth_problem` (before they are redacted)."""

    host: str
    max_body: int
    linger: bool
    _requested_port: int
    _backlog: int
    _port: int | None
    _lock: threading.Lock
    _requests: deque[Request]
    _received: int
    _counter: itertools.count[int]
    _thread: threading.Thread | None
    _loop: asyncio.AbstractEventLoop | None
    _stop: asyncio.Event | None
    _ready: threading.Event
    _startup_error: BaseException | None
    _conn_tasks: set[asyncio.Task[None]]
    _connections: int

    async def _serve(
        self,
        request: Request,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        received: float,
        auth: tuple[int, str, str] | None,
    ) -> None:
        """Answer ``request`` (the subclass's job)."""
        raise NotImplementedError

    def _auth_problem(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """What is wrong with the request's credentials: (status, type, message) (the subclass's job)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The TCP port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("LocalServer is not running; use `with LocalServer(...)` or call start()")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``, without ``/v1`` (pass it as a client's ``base_url``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Request]:
        """A snapshot of the recorded requests (the last ``max_recorded``), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def requests_received(self) -> int:
        """How many requests the server received in all (recorded or not, cleared or not)."""
        return self._received

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server accepted so far (keep-alive reuse keeps this low)."""
        return self._connections

    def clear_requests(self) -> None:
        """Forget the recorded requests (``requests_received`` keeps counting)."""
        with self._lock:
            self._requests.clear()

    def start(self) -> Self:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("LocalServer already started")
        self._ready.clear()
        self._thread = threading.Thread(target=self._thread_main, name="agentkit-local-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join the thread (idempotent)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # pragma: no cover - surfaced through start()
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = await asyncio.start_server(
                self._on_connection,
                self.host,
                self._requested_port,
                limit=_HEAD_LIMIT,
                backlog=self._backlog,
                reuse_address=True,
            )
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._conn_tasks):
                task.cancel()
            if self._conn_tasks:
                await asyncio.wait(list(self._conn_tasks), timeout=5)
            await server.wait_closed()

    # ------------------------------------------------------------------ connections

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        self._connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        requests = _Requests(reader)
        try:
            while True:
                try:
                    parsed = await self._read_request(requests)
                except _HTTPError as exc:
                    self._write_response(
                        writer,
                        exc.status,
                        dumps(error_body("invalid_request_error", exc.message, new_id("req_"))),
                        keep_alive=False,
                    )
                    await writer.drain()
                    if exc.unread and self.linger:
                        await _drain(reader, exc.unread)
                    break
                if parsed is None:
                    break
                request, keep_alive, auth = parsed
                try:
                    await self._serve(request, writer, keep_alive, asyncio.get_running_loop().time(), auth)
                except _Closed:
                    return
                except (ConnectionError, OSError):
                    raise
                except Exception as exc:  # a bug in a reply or in the server: answer it, don't hide it
                    self._error(
                        writer,
                        request,
                        False,
                        500,
                        "api_error",
                        f"agentkit.testing server error: {type(exc).__name__}: {exc}",
                    )
                    await writer.drain()
                    break
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conn_tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(
        self, requests: _Requests
    ) -> tuple[Request, bool, tuple[int, str, str] | None] | None:
        head = await requests.head()
        if head is None:
            return None  # the client closed an idle connection
        if head.http_version not in (b"1.0", b"1.1"):  # h11 parses any HTTP/x.y request line
            version = head.http_version.decode("ascii")
            raise _HTTPError(505, f"HTTP/{version} is not served here; use HTTP/1.1")
        method, target = head.method.decode("ascii"), head.target.decode("ascii")
        headers: dict[str, str] = {}
        for raw_name, raw_value in head.headers:  # h11 gives names lower-cased and values validated
            key, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if "transfer-encoding" in headers:
            raise _HTTPError(411, "chunked request bodies are not supported; send a Content-Length body")
        length = int(headers.get("content-length", "0"))  # h11 checked it is one non-negative integer
        if length > self.max_body:  # answered before the body is read, as a gateway's limit would
            with self._lock:
                index = next(self._counter)
                path = target.partition("?")[0]
                self._requests.append(Request(method, path, headers, b"", None, index, status=413))
            unread = length - requests.buffered()  # what is still on its way (a lingering close reads it)
            raise _HTTPError(413, "Request exceeds the maximum allowed number of bytes.", unread=unread)
        body = await requests.body()
        connection = headers.get("connection", "").lower()
        http11 = head.http_version == b"1.1"
        keep_alive = "close" not in connection if http11 else "keep-alive" in connection
        path, _, query = target.partition("?")
        parsed_json: Any = None
        if body:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        auth = self._auth_problem(headers)  # the only look at the credentials: they are not recorded
        with self._lock:
            request = Request(
                method=method,
                path=path,
                headers=redact_headers(headers),
                body=body,
                json=parsed_json,
                index=next(self._counter),
                query=query,
            )
            self._requests.append(request)
            self._received += 1
        return request, keep_alive, auth

    # ------------------------------------------------------------------ responses

    def _write_response(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        content_type: str = _JSON_TYPE,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
        request: Request | None = None,
    ) -> None:
        if request is not None:
            request.status = status  # before writing: the client may read the answer at once
        writer.write(
            self._head(status, content_type, request_id, keep_alive, headers, length=len(body)) + body
        )

    @staticmethod
    def _head(
        status: int,
        content_type: str,
        request_id: str | None,
        keep_alive: bool,
        headers: dict[str, str] | None,
        *,
        length: int | None,
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"content-type: {content_type}",
            f"request-id: {request_id or new_id('req_')}",
            "server: agentkit-local",
            "connection: keep-alive" if keep_alive else "connection: close",
        ]
        if length is None:
            lines.append("transfer-encoding: chunked")
            lines.append("cache-control: no-cache")
        else:
            lines.append(f"content-length: {length}")
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _error(
        self,
        writer: asyncio.StreamWriter,
        request: Request,
        keep_alive: bool,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        error_code: str | None = None,
        envelope_code: int | None = None,
    ) -> None:
        rid = new_id("req_")
        if envelope_code is not None:
            body = dumps({"code": envelope_code, "message": message, "data": None})
        else:
            body = dumps(error_body(error_type, message, rid, error_code))
        self._write_response(
            writer, status, body, keep_alive=keep_alive, request_id=rid, headers=headers, request=request
        )

    async def _stream(
        self,
        request: Request,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        events: list[bytes],
        headers: dict[str, str] | None,
        event_delay: float,
        *,
        end: bool,
    ) -> None:
        request.status = 200
        head = self._head(200, _SSE_TYPE, None, keep_alive, headers, length=None)
        if event_delay > 0:
            writer.write(head)
            for event in events:
                await writer.drain()
                await asyncio.sleep(event_delay)
                writer.write(_chunk(event))
        else:
            writer.write(head + b"".join(_chunk(e) for e in events))
        if end:
            writer.write(b"0\r\n\r\n")


class _Requests:
    """The requests of one connection, parsed by h11: one ``h11.Connection`` per request (responses are
    written by the server itself, so h11 never sees them), fed the bytes read past the previous
    request's end (pipelined requests, an EOF)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._parser = _parser()

    async def head(self) -> h11.Request | None:
        """The next request's line and headers; None when the client closed between requests."""
        event = await self._event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 gives a Request first
            raise _HTTPError(400, "malformed HTTP request")
        return event

    def buffered(self) -> int:
        """Bytes read from the connection that h11 has not yet handed over (after a head: body bytes)."""
        return len(self._parser.trailing_data[0])

    async def body(self) -> bytes:
        """The request's body, whole (its size was checked against the limit from the head); the next
        request's parser starts with what came after it."""
        parts: list[bytes] = []
        while not isinstance(event := await self._event(), h11.EndOfMessage):
            if isinstance(event, h11.Data):
                parts.append(event.data)
            elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - h11 raises first
                raise _HTTPError(400, "the request body ended early")
        after, closed = self._parser.trailing_data
        self._parser = _parser()
        if after:
            self._parser.receive_data(after)
        if closed:
            self._parser.receive_data(b"")  # b"" is how h11 is told of the EOF
        return b"".join(parts)

    async def _event(self) -> object:  # an h11.Event (or PAUSED, which a server never sees here)
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
                raise _HTTPError(status, f"malformed HTTP request: {exc}") from None
            if event is not h11.NEED_DATA:
                return event
            parser.receive_data(await self._reader.read(1 << 16))


def _parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=_HEAD_LIMIT)


async def _drain(reader: asyncio.StreamReader, size: int, seconds: float = 10.0) -> None:
    """Read and drop up to ``size`` bytes (for at most ``seconds``): a lingering close."""
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        async with asyncio.timeout(seconds):
            while size > 0 and (data := await reader.read(min(size, 1 << 20))):
                size -= len(data)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)
