"""agentkit's default HTTP/1.1 transport (``agentkit._transport._Transport``) against real sockets.

The servers here are blocking-socket servers in background threads (:class:`RawServer`), so they serve
tests on asyncio and trio alike and send exactly the bytes a test needs: well formed, malformed, slow or
cut short. The tests go through public surfaces: ``httpx2.AsyncClient(transport=_Transport(...))`` and
``agentkit.Client``; they assert what the server saw (request bytes, accepted TCP connections) and
what the caller got (status, body, exception type).

| area | tests |
|---|---|
| request bytes | `test_request_line_host_content_length_and_body_on_the_wire`, `test_request_body_*`, `test_invalid_header_is_refused_before_anything_is_sent` |
| response framing | `test_framed_body_is_read_exactly_and_the_connection_reused`, `test_large_response_body_is_read_whole`, `test_body_until_close_*`, `test_response_without_body_*`, `test_interim_1xx_responses_are_skipped`, `test_response_forbidding_reuse_*` |
| keep-alive | `test_sequential_requests_share_one_connection`, `test_idle_connection_closed_by_the_server_*`, `test_keepalive_expiry_*`, `test_stray_bytes_after_a_response_*`, `test_max_keepalive_zero_*`, `test_request_with_connection_close_is_not_reused` |
| malformed responses | `test_malformed_response_raises_remote_protocol_error_and_is_discarded`, `test_chunk_size_with_underscore_is_refused` |
| timeouts | `test_no_answer_raises_read_timeout`, `test_stall_*`, `test_read_timeout_is_per_read_not_total`, `test_write_timeout_*`, `test_connect_*` |
| pool | `test_max_connections_*`, `test_pool_timeout_*`, `test_waiting_request_*`, `test_idle_connection_to_another_origin_*`, `test_cancelled_request_*`, `test_closing_the_client_*` |
| streaming | `test_stream_yields_chunks_as_they_arrive`, `test_closing_a_stream_early_*` |
| agentkit.Client | `test_client_*` (LocalServer, retries, HTTP_PROXY / NO_PROXY) |
| HTTPS | `test_https_*` (certificates made at test time with `cryptography`, else the `openssl` CLI, else skipped) |
"""  # noqa: E501

from __future__ import annotations

import contextlib
import hashlib
import itertools
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import anyio
import anyio.to_thread
import httpx2
import pytest

import agentkit._client
from agentkit import APIConnectionError, Client
from agentkit._transport import _Transport
from agentkit.testing import LocalServer

from .conftest import load_json, own

pytestmark = pytest.mark.anyio

# --- a threaded raw-socket HTTP server ----------------------------------------------------------

Handler = Callable[[socket.socket, bytes], None]
"""``handler(conn, request)``: write any bytes to ``conn`` (the request is already read off it)."""

_local = threading.local()


class RawServer:
    """A TCP server on ``host`` port 0, one thread per connection, independent of any event loop.

    For each request read off a connection (head plus ``Content-Length`` or chunked body) it records
    the raw bytes in :attr:`requests` and calls ``handler(conn, request)``; then it reads the next
    request on that connection until the client closes it or the handler hangs up (:func:`hang_up`).
    With ``read_requests=False`` the handler gets the fresh connection and ``b""``, and owns it.
    :attr:`accepted` counts TCP connections, :attr:`max_open` the most open at once. ``close()`` (or
    leaving the ``with`` block) stops :func:`pause` in handlers, hangs up every connection, joins every
    thread, and re-raises the first exception a handler raised other than ``OSError``.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        read_requests: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.handler: Handler = handler or replies(ok())
        self.read_requests = read_requests
        self.ssl_context = ssl_context
        self.requests: list[bytes] = []
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._errors: list[BaseException] = []
        self._sockets: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family, backlog=128)
        self.port: int = self._listener.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="raw-server-accept", daemon=True)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):  # wake the blocked accept()
            socket.create_connection(self._listener.getsockname()[:2], timeout=1).close()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:
            hang_up(sock)
        for thread in self._threads:
            thread.join(5)
        if self._errors:
            raise self._errors[0]

    def wait_all_closed(self, timeout: float = 2.0) -> bool:
        """Block until every accepted connection has ended (True), or ``timeout`` passes (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.open == 0, timeout)

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                conn.close()
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                number = self.accepted
                self.open += 1
                self.max_open = max(self.max_open, self.open)
                self._sockets[number] = conn
            thread = threading.Thread(target=self._serve, args=(number, conn), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, number: int, conn: socket.socket) -> None:
        _local.server = self
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._sockets[number] = conn
            if not self.read_requests:
                self.handler(conn, b"")
                return
            buffer = bytearray()
            while not self.stopping.is_set():
                request = read_message(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                self.handler(conn, request)
        except OSError:
            pass  # the client went away, or the server is stopping
        except BaseException as exc:
            with self._lock:
                self._errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self.open -= 1
                self._sockets.pop(number, None)
                self._lock.notify_all()


def pause(seconds: float) -> None:
    """Sleep in a handler; returns at once when the server is closing."""
    _local.server.stopping.wait(seconds)


def hang_up(conn: socket.socket) -> None:
    """Close both directions of ``conn`` now (the client reads EOF); works on TLS sockets too."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


def read_message(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP/1.1 message (head + Content-Length or chunked body) off ``sock``; None at EOF."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    head = bytes(buffer[: end + 4])
    del buffer[: end + 4]
    headers = parse_message(head)[1]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            line = _read_line(sock, buffer)
            body += line
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while (trailer := _read_line(sock, buffer)) != b"\r\n":
                    body += trailer
                body += b"\r\n"
                return head + bytes(body)
            body += _read_exact(sock, buffer, size + 2)
    return head + _read_exact(sock, buffer, int(headers.get("content-length", "0")))


def _read_line(sock: socket.socket, buffer: bytearray) -> bytes:
    while (end := buffer.find(b"\r\n")) < 0:
        _receive_more(sock, buffer)
    line = bytes(buffer[: end + 2])
    del buffer[: end + 2]
    return line


def _read_exact(sock: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        _receive_more(sock, buffer)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def _receive_more(sock: socket.socket, buffer: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the peer closed the connection mid-message")
    buffer += data


def parse_message(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """``(first line, {lower-case name: value}, body)`` of a raw HTTP message."""
    head, _, body = raw.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers, body


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body (extensions and trailers dropped)."""
    out = bytearray()
    while True:
        line, _, body = body.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


# --- responses and handlers ---------------------------------------------------------------------


def ok(body: bytes = b"ok", *headers: str) -> bytes:
    """A ``200`` with a ``Content-Length`` body and optional extra header lines."""
    extra = "".join(f"{header}\r\n" for header in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def chunks(*parts: bytes) -> bytes:
    """``parts`` as a chunked body, terminator included."""
    return b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def replies(*answers: bytes | Handler) -> Handler:
    """The n-th request (over all connections) gets ``answers[n]``; the last answer repeats."""
    counter = itertools.count()

    def handler(conn: socket.socket, request: bytes) -> None:
        answer = answers[min(next(counter), len(answers) - 1)]
        if isinstance(answer, bytes):
            conn.sendall(answer)
        else:
            answer(conn, request)

    return handler


def then_hang_up(data: bytes = b"") -> Handler:
    """Send ``data`` (maybe nothing), then close the connection."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)
        hang_up(conn)

    return handler


def in_pieces(*pieces: bytes, gap: float = 0.02, close: bool = False) -> Handler:
    """Send ``pieces`` one TCP write each, ``gap`` seconds apart (then hang up if ``close``)."""

    def handler(conn: socket.socket, request: bytes) -> None:
        for index, piece in enumerate(pieces):
            if index:
                pause(gap)
            conn.sendall(piece)
        if close:
            hang_up(conn)

    return handler


def body_later(answer: bytes, gap: float = 0.3) -> Handler:
    """The head at once, the body ``gap`` seconds later: the response holds its connection meanwhile
    (a body that arrives with the head is taken off the connection at once)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    return in_pieces(head + b"\r\n\r\n", body, gap=gap)


def byte_by_byte(data: bytes) -> Handler:
    """Send ``data`` one byte per TCP write (TCP_NODELAY is on), with a short sleep between writes."""

    def handler(conn: socket.socket, request: bytes) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(0.0005)

    return handler


def stall_after(data: bytes = b"") -> Handler:
    """Send ``data``, then send nothing more until the server closes (the connection stays open)."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)
        pause(30)

    return handler


@contextlib.asynccontextmanager
async def client_for(
    server: RawServer | str, *, timeout: float | httpx2.Timeout = 5.0, **transport_options: object
) -> AsyncIterator[httpx2.AsyncClient]:
    """An ``httpx2.AsyncClient`` on a fresh :class:`_Transport` (options passed through)."""
    base_url = server if isinstance(server, str) else server.url
    transport = _Transport(**transport_options)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, base_url=base_url, timeout=timeout) as client:
        yield client


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- 1. request bytes on the wire ---------------------------------------------------------------


async def test_request_line_host_content_length_and_body_on_the_wire() -> None:
    with RawServer() as server:
        async with client_for(server) as client:
            first = await client.post(
                "/v1/messages?x=1&y=a b", content=b'{"hello": "world"}', headers={"X-Trace": "t-1"}
            )
            second = await client.get("/second")
    assert (first.status_code, first.content) == (200, b"ok")
    assert (second.status_code, second.content) == (200, b"ok")
    assert server.accepted == 1
    post, get = server.requests
    line, headers, body = parse_message(post)
    assert line == "POST /v1/messages?x=1&y=a%20b HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert post.lower().count(b"\r\nhost:") == 1
    assert headers["content-length"] == "18"
    assert headers["x-trace"] == "t-1"
    assert "transfer-encoding" not in headers
    assert body == b'{"hello": "world"}'
    line, headers, body = parse_message(get)
    assert line == "GET /second HTTP/1.1"
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert body == b""


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 300_000])
async def test_request_body_of_any_size_arrives_exact(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))

    def digest(conn: socket.socket, request: bytes) -> None:
        conn.sendall(ok(hashlib.sha256(parse_message(request)[2]).hexdigest().encode()))

    with RawServer(digest) as server:
        async with client_for(server) as client:
            response = await client.post("/upload", content=payload)
    assert response.text == hashlib.sha256(payload).hexdigest()
    assert parse_message(server.requests[0])[1]["content-length"] == str(size)


@pytest.mark.parametrize("parts", [(b"abc", b"defg"), ()], ids=["two-parts", "empty"])
async def test_request_body_from_a_generator_is_sent_chunked(parts: tuple[bytes, ...]) -> None:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    with RawServer() as server:
        async with client_for(server) as client:
            first = await client.post("/stream-up", content=body())
            second = await client.get("/after")  # the framing left nothing behind on the connection
    assert first.status_code == second.status_code == 200
    assert server.accepted == 1
    _, headers, raw_body = parse_message(server.requests[0])
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert dechunk(raw_body) == b"".join(parts)
    assert raw_body.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Evil", "a\r\nInjected: yes"),
        ("X-Evil", "a\nInjected: yes"),
        ("X-Evil", "a\rInjected: yes"),
        ("X-Evil", "a\x00b"),
        ("Bad Name", "v"),
    ],
    ids=["crlf", "lf", "cr", "nul", "space-in-name"],
)
async def test_invalid_header_is_refused_before_anything_is_sent(name: str, value: str) -> None:
    with RawServer() as server:
        async with client_for(server) as client:
            with pytest.raises(httpx2.LocalProtocolError):
                await client.get("/bad", headers={name: value})
            good = await client.get("/good")
    assert good.status_code == 200
    assert server.accepted == 1  # the refused request did not even connect
    assert len(server.requests) == 1
    assert parse_message(server.requests[0])[0] == "GET /good HTTP/1.1"


# --- 2. response framing ------------------------------------------------------------------------

FRAMED = {
    "content-length": ok(b"hello world"),
    "no-reason-phrase": b"HTTP/1.1 200\r\nContent-Length: 11\r\n\r\nhello world",
    "lower-case-names": b"HTTP/1.1 200 OK\r\ncontent-length:11\r\n\r\nhello world",
    "content-length-split": in_pieces(
        b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 11\r\n\r\nhel", b"lo wo", b"rld"
    ),
    "chunked": CHUNKED_HEAD + chunks(b"hel", b"lo", b" ", b"world"),
    "chunked-extensions-trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;x=y\r\nhello\r\n6;name="quoted value";flag\r\n world\r\n'
        b"0;last=1\r\nX-Trailer: t\r\nAnother-Trailer: 2\r\n\r\n"
    ),
    "chunked-upper-hex": CHUNKED_HEAD + b"B\r\nhello world\r\n0\r\n\r\n",
    "chunked-split": in_pieces(
        CHUNKED_HEAD + b"5\r", b"\nhel", b"lo\r", b"\n6;x", b"=y\r\n world\r\n0\r", b"\n\r", b"\n"
    ),
    "chunked-byte-by-byte": byte_by_byte(CHUNKED_HEAD + chunks(b"hello", b" ", b"world")),
}


@pytest.mark.parametrize("answer", FRAMED.values(), ids=FRAMED.keys())
async def test_framed_body_is_read_exactly_and_the_connection_reused(answer: bytes | Handler) -> None:
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server) as client:
            first = await client.get("/first")
            second = await client.get("/second")
    assert first.status_code == 200
    assert first.content == b"hello world"
    assert second.content == b"next"
    assert server.accepted == 1


LARGE = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB, past any single read or buffer


@pytest.mark.parametrize(
    "answer",
    [
        ok(LARGE),
        CHUNKED_HEAD + chunks(LARGE[:3_000_000], LARGE[3_000_000:]),
        then_hang_up(b"HTTP/1.1 200 OK\r\n\r\n" + LARGE),
    ],
    ids=["content-length", "chunked", "until-close"],
)
async def test_large_response_body_is_read_whole(answer: bytes | Handler) -> None:
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server) as client:
            first = await client.get("/large")
            second = await client.get("/second")
    assert len(first.content) == len(LARGE)
    assert first.content == LARGE
    assert second.content == b"next"


@pytest.mark.parametrize(
    "answer",
    [
        then_hang_up(b"HTTP/1.1 200 OK\r\n\r\nbody until close"),
        then_hang_up(b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nbody until close"),
        in_pieces(b"HTTP/1.1 200 OK\r\n\r\nbody ", b"until ", b"close", close=True),
    ],
    ids=["http/1.1", "http/1.0", "in-pieces"],
)
async def test_body_until_close_is_read_and_the_connection_not_reused(answer: Handler) -> None:
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server) as client:
            first = await client.get("/first")
            second = await client.get("/second")
    assert first.content == b"body until close"
    assert second.content == b"next"
    assert server.accepted == 2


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ],
    ids=["204", "204-length-0", "304-with-length", "head-with-length", "head-chunked"],
)
async def test_response_without_body_reads_none_and_reuses_the_connection(method: str, answer: bytes) -> None:
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server, timeout=2.0) as client:
            first = await client.request(method, "/first")
            second = await client.get("/second")
    assert first.content == b""
    assert second.content == b"next"
    assert server.accepted == 1


async def test_interim_1xx_responses_are_skipped() -> None:
    answer = in_pieces(
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + ok(b"final", "X-Final: 1"),
    )
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server) as client:
            first = await client.post("/first", content=b"x")
            second = await client.get("/second")
    assert first.status_code == 200
    assert first.content == b"final"
    assert first.headers["x-final"] == "1"
    assert "link" not in first.headers
    assert second.content == b"next"
    assert server.accepted == 1


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"one", "Connection: close"),
        ok(b"one", "Connection: Keep-Alive, Close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\none",
    ],
    ids=["connection-close", "connection-list-with-close", "http/1.0"],
)
async def test_response_forbidding_reuse_makes_the_next_request_open_a_new_connection(answer: bytes) -> None:
    # The server leaves the connection open (and would answer on it): only the client can decide.
    with RawServer(replies(answer, ok(b"two"))) as server:
        async with client_for(server) as client:
            first = await client.get("/first")
            second = await client.get("/second")
    assert (first.content, second.content) == (b"one", b"two")
    assert server.accepted == 2


# --- 3. keep-alive --------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection() -> None:
    def numbered(conn: socket.socket, request: bytes) -> None:
        conn.sendall(ok(parse_message(request)[0].split()[1].encode()))

    with RawServer(numbered) as server:
        async with client_for(server) as client:
            bodies = [(await client.get(f"/n/{n}")).content for n in range(20)]
    assert bodies == [f"/n/{n}".encode() for n in range(20)]
    assert len(server.requests) == 20
    assert server.accepted == 1


async def test_idle_connection_closed_by_the_server_is_replaced_without_error() -> None:
    def answer_then_close_when_idle(conn: socket.socket, request: bytes) -> None:
        conn.sendall(ok())
        pause(0.05)
        hang_up(conn)

    with RawServer(answer_then_close_when_idle) as server:
        async with client_for(server) as client:
            first = await client.get("/first")
            await anyio.sleep(0.2)
            second = await client.get("/second")
    assert first.status_code == second.status_code == 200
    assert server.accepted == 2
    assert len(server.requests) == 2


async def test_keepalive_expiry_opens_a_new_connection_after_idling() -> None:
    with RawServer() as server:
        async with client_for(server, keepalive_expiry=0.05) as client:
            await client.get("/1")
            await client.get("/2")
            assert server.accepted == 1  # reused while fresh
            await anyio.sleep(0.2)
            await client.get("/3")
    assert server.accepted == 2


async def test_stray_bytes_after_a_response_make_the_connection_unusable() -> None:
    with RawServer(replies(ok(b"one") + b"X", ok(b"two"))) as server:
        async with client_for(server) as client:
            first = await client.get("/first")
            await anyio.sleep(0.05)  # let the stray byte arrive
            second = await client.get("/second")
    assert (first.content, second.content) == (b"one", b"two")
    assert server.accepted == 2


async def test_max_keepalive_zero_keeps_no_idle_connection() -> None:
    with RawServer() as server:
        async with client_for(server, max_keepalive=0) as client:
            for _ in range(3):
                assert (await client.get("/")).status_code == 200
        assert await anyio.to_thread.run_sync(server.wait_all_closed)
    assert server.accepted == 3


async def test_request_with_connection_close_is_not_reused() -> None:
    # A lenient server that keeps the connection open anyway: the client alone must not reuse it.
    with RawServer() as server:
        async with client_for(server) as client:
            await client.get("/first", headers={"Connection": "close"})
            await client.get("/second")
    assert parse_message(server.requests[0])[1]["connection"] == "close"
    assert server.accepted == 2


# --- 4. malformed responses ----------------------------------------------------------------------


def _head_ending_just_past_64k() -> Handler:
    """A 66,000-byte head: 65,000 bytes, a pause, then 1,000 more with the end, in one read."""
    status = b"HTTP/1.1 200 OK\r\n"
    first = status + b"X-Filler: " + b"a" * (65_000 - len(status) - len(b"X-Filler: \r\n")) + b"\r\n"
    end = b"Content-Length: 2\r\n\r\n"
    rest = b"X-More: " + b"b" * (1_000 - len(end) - len(b"X-More: \r\n")) + b"\r\n" + end
    assert (len(first), len(rest)) == (65_000, 1_000)
    return in_pieces(first, rest + b"ok", gap=0.1)


BIG_HEAD = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 200_000 + b"\r\nContent-Length: 2\r\n\r\nok"

MALFORMED = {
    "garbage-status-line": b"garbage\r\n\r\n",
    "two-digit-status": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "letters-in-status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "unknown-version": b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nok",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "empty-header-name": b"HTTP/1.1 200 OK\r\n: value\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold-tab": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\tcontinued\r\nContent-Length: 2\r\n\r\nok",
    "negative-chunk-size": CHUNKED_HEAD + b"-1\r\nx\r\n0\r\n\r\n",
    "plus-chunk-size": CHUNKED_HEAD + b"+2\r\nok\r\n0\r\n\r\n",
    "non-hex-chunk-size": CHUNKED_HEAD + b"zz\r\nok\r\n0\r\n\r\n",
    "empty-chunk-size": CHUNKED_HEAD + b"\r\nok\r\n0\r\n\r\n",
    "0x-chunk-size": CHUNKED_HEAD + b"0x2\r\nok\r\n0\r\n\r\n",
    "chunk-not-followed-by-crlf": CHUNKED_HEAD + b"2\r\nokXX0\r\n\r\n",
    "chunk-line-over-4k-in-one-read": CHUNKED_HEAD + b"2;" + b"x" * 10_000 + b"\r\nok\r\n0\r\n\r\n",
    "chunk-line-without-end-too-long": CHUNKED_HEAD + b"2;" + b"x" * 200_000 + b"\r\nok\r\n0\r\n\r\n",
    "two-content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "non-numeric-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
    "negative-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "transfer-encoding-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
    "transfer-encoding-chunked-then-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok",
    "head-larger-than-64k": BIG_HEAD,
    "head-over-64k-ending-in-the-crossing-read": _head_ending_just_past_64k(),
    "head-without-end-larger-than-64k": b"HTTP/1.1 200 OK\r\n" + b"X-Filler: a\r\n" * 20_000,
    "close-before-any-byte": then_hang_up(),
    "close-mid-status-line": then_hang_up(b"HTTP/1.1 2"),
    "close-mid-head": then_hang_up(b"HTTP/1.1 200 OK\r\nContent-Le"),
    "close-mid-body": then_hang_up(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    "close-mid-chunk": then_hang_up(CHUNKED_HEAD + b"5\r\nab"),
    "close-mid-chunk-size-line": then_hang_up(CHUNKED_HEAD + b"5\r\nhello\r\n3"),
    "close-before-last-chunk": then_hang_up(CHUNKED_HEAD + b"5\r\nhello\r\n"),
    "close-mid-trailers": then_hang_up(CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n"),
    "close-after-interim-response": then_hang_up(b"HTTP/1.1 100 Continue\r\n\r\n"),
}


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_response_raises_remote_protocol_error_and_is_discarded(
    answer: bytes | Handler,
) -> None:
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server, timeout=2.0) as client:
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.get("/bad")
            after = await client.get("/after")
    assert after.content == b"next"
    assert server.accepted == 2


async def test_chunk_size_with_underscore_is_refused() -> None:
    answer = CHUNKED_HEAD + b"1_0\r\n" + b"s" * 16 + b"\r\n0\r\n\r\n"
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server, timeout=2.0) as client:
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.get("/bad")


# --- 5. timeouts ------------------------------------------------------------------------------------


async def test_no_answer_raises_read_timeout() -> None:
    with RawServer(replies(stall_after(), ok(b"next"))) as server:
        async with client_for(server) as client:
            started = time.monotonic()
            with pytest.raises(httpx2.ReadTimeout):
                await client.get("/silent", timeout=httpx2.Timeout(0.3))
            elapsed = time.monotonic() - started
            after = await client.get("/after")
    assert 0.25 <= elapsed < 2.0
    assert after.content == b"next"
    assert server.accepted == 2


@pytest.mark.parametrize(
    "sent",
    [
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        CHUNKED_HEAD + b"5\r\nhello\r\n5\r\nwo",
        b"HTTP/1.1 200 OK\r\n\r\nuntil close, but stalled",
    ],
    ids=["mid-head", "mid-length-body", "mid-chunk", "mid-until-close-body"],
)
async def test_stall_mid_response_raises_read_timeout(sent: bytes) -> None:
    with RawServer(replies(stall_after(sent), ok(b"next"))) as server:
        async with client_for(server) as client:
            started = time.monotonic()
            with pytest.raises(httpx2.ReadTimeout):
                await client.get("/stalls", timeout=httpx2.Timeout(0.15))
            elapsed = time.monotonic() - started
            after = await client.get("/after")
    assert elapsed < 2.0
    assert after.content == b"next"
    assert server.accepted == 2


async def test_read_timeout_is_per_read_not_total() -> None:
    # Every piece arrives 0.05 s after the previous one; the whole takes ~0.3 s, past the 0.15 s timeout.
    answer = in_pieces(
        b"HTTP/1.1 200 OK\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\r\n" + b"5\r\nslow \r\n",
        b"4\r\nbut \r\n",
        b"6\r\nsteady\r\n",
        b"1\r\n.\r\n",
        b"0\r\n\r\n",
        gap=0.05,
    )
    with RawServer(replies(answer)) as server:
        async with client_for(server, timeout=httpx2.Timeout(0.15)) as client:
            started = time.monotonic()
            async with client.stream("GET", "/slow") as response:
                parts = [part async for part in response.aiter_raw()]
            elapsed = time.monotonic() - started
    assert b"".join(parts) == b"slow but steady."
    assert len(parts) == 4  # delivered as they came
    assert elapsed > 0.15
    assert server.accepted == 1


HUGE = b"x" * (32 * 1024 * 1024)  # more than the socket buffers of both ends hold


async def test_write_timeout_when_the_server_does_not_read() -> None:
    connections = itertools.count()

    def first_connection_never_reads(conn: socket.socket, request: bytes) -> None:
        if next(connections) == 0:
            pause(30)
        elif read_message(conn, bytearray()) is not None:
            conn.sendall(ok())

    with RawServer(first_connection_never_reads, read_requests=False) as server:
        async with client_for(server) as client:
            started = time.monotonic()
            with pytest.raises(httpx2.WriteTimeout):
                await client.post("/huge", content=HUGE, timeout=httpx2.Timeout(5, write=0.2))
            elapsed = time.monotonic() - started
            assert elapsed < 3.0
            assert (await client.get("/after")).status_code == 200  # the pool slot was given back
    assert server.accepted == 2


async def test_write_timeout_abandons_the_rest_of_the_request(anyio_backend: str) -> None:
    gave_up = threading.Event()
    received: list[int] = []

    def reads_late(conn: socket.socket, request: bytes) -> None:
        gave_up.wait(5)  # only start reading once the client has given up
        conn.settimeout(3)
        total = 0
        with contextlib.suppress(OSError):
            while data := conn.recv(1 << 20):
                total += len(data)
        received.append(total)

    with RawServer(reads_late, read_requests=False) as server:
        try:
            async with client_for(server) as client:
                with pytest.raises(httpx2.WriteTimeout):
                    await client.post("/huge", content=HUGE, timeout=httpx2.Timeout(5, write=0.2))
        finally:
            gave_up.set()
        assert await anyio.to_thread.run_sync(server.wait_all_closed, 5.0)
    assert len(received) == 1
    assert received[0] < len(HUGE)  # a request the client reported as failed must not arrive whole


async def test_connect_to_a_closed_port_raises_connect_error() -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get("/")


async def test_unsupported_scheme_is_refused_by_the_transport() -> None:
    async with _Transport() as transport:
        with pytest.raises(httpx2.UnsupportedProtocol):
            await transport.handle_async_request(httpx2.Request("GET", "ftp://127.0.0.1/file"))


async def test_ipv6_literal_host() -> None:
    try:
        server = RawServer(host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        async with client_for(server) as client:
            response = await client.get("/v6")
    assert response.content == b"ok"
    assert parse_message(server.requests[0])[1]["host"] == f"[::1]:{server.port}"


# --- 6. pool limits and cancellation ------------------------------------------------------------


async def test_max_connections_caps_concurrent_connections() -> None:
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def slow(conn: socket.socket, request: bytes) -> None:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        pause(0.06)
        with lock:
            in_flight -= 1
        conn.sendall(ok())

    statuses: list[int] = []
    with RawServer(slow) as server:
        async with client_for(server, max_connections=2) as client:

            async def one() -> None:
                statuses.append((await client.get("/")).status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(one)
    assert statuses == [200] * 6
    assert server.max_open == 2
    assert server.accepted == 2
    assert most_in_flight == 2


async def test_pool_timeout_while_the_only_connection_is_held_then_it_works_again() -> None:
    with RawServer(replies(body_later(ok(b"held body")), ok(b"next"))) as server:
        async with client_for(server, max_connections=1) as client:
            async with client.stream("GET", "/held") as held:
                started = time.monotonic()
                with pytest.raises(httpx2.PoolTimeout):
                    await client.get("/waits", timeout=httpx2.Timeout(5, pool=0.2))
                assert time.monotonic() - started < 2.0
                assert await held.aread() == b"held body"
            after = await client.get("/after")
    assert after.content == b"next"
    assert server.accepted == 1  # the held connection went back to the pool and was reused
    assert len(server.requests) == 2


async def test_response_whose_body_came_with_its_head_frees_the_connection_at_once() -> None:
    # The body arrived in the same read as the head: nothing is left to read off the connection, so
    # it goes back to the pool before the (streamed, still open) response is read.
    with RawServer(replies(ok(b"first"), ok(b"second"))) as server:
        async with client_for(server, max_connections=1) as client:
            async with client.stream("GET", "/first") as first:
                second = await client.get("/second", timeout=httpx2.Timeout(5, pool=0.5))
                assert await first.aread() == b"first"
    assert second.content == b"second"
    assert server.accepted == 1


async def test_waiting_request_gets_the_connection_when_it_is_released() -> None:
    with RawServer(replies(body_later(ok(b"held body")), ok(b"second"))) as server:
        async with client_for(server, max_connections=1) as client:
            results: list[bytes] = []

            async def second() -> None:
                results.append((await client.get("/second", timeout=httpx2.Timeout(5, pool=3))).content)

            async with client.stream("GET", "/held") as held:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(second)
                    await anyio.sleep(0.05)
                    assert results == []  # still waiting for the pool
                    assert await held.aread() == b"held body"
    assert results == [b"second"]
    assert server.accepted == 1


async def test_idle_connection_to_another_origin_is_evicted_at_the_limit() -> None:
    with RawServer(replies(ok(b"a"))) as first, RawServer(replies(ok(b"b"))) as other:
        async with client_for(first, max_connections=1, timeout=httpx2.Timeout(5, pool=1)) as client:
            assert (await client.get(first.url + "/")).content == b"a"
            assert (await client.get(other.url + "/")).content == b"b"
            assert await anyio.to_thread.run_sync(first.wait_all_closed)  # the idle one was closed
            assert (await client.get(first.url + "/")).content == b"a"
    assert (first.accepted, other.accepted) == (2, 1)


@pytest.mark.parametrize(
    "answer",
    [stall_after(), stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")],
    ids=["waiting-for-the-head", "mid-body"],
)
async def test_cancelled_request_does_not_leak_its_pool_slot(answer: Handler) -> None:
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server, max_connections=1, timeout=httpx2.Timeout(5, pool=1)) as client:
            with anyio.move_on_after(0.1) as scope:
                await client.get("/cancelled")
            assert scope.cancelled_caught
            after = await client.get("/after")
    assert after.content == b"next"
    assert server.accepted == 2


async def test_cancelled_request_waiting_for_the_pool_does_not_leak() -> None:
    with RawServer(replies(body_later(ok(b"held body")), ok(b"next"))) as server:
        async with client_for(server, max_connections=1, timeout=httpx2.Timeout(5, pool=1)) as client:
            async with client.stream("GET", "/held") as held:
                with anyio.move_on_after(0.1) as scope:
                    await client.get("/queued")
                assert scope.cancelled_caught
                await held.aread()
            after = await client.get("/after")
            again = await client.get("/again")
    assert (after.content, again.content) == (b"next", b"next")
    assert server.accepted == 1
    assert len(server.requests) == 3  # the cancelled request was never sent


async def test_closing_the_client_closes_idle_connections_and_the_transport() -> None:
    with RawServer() as server:
        transport = _Transport()
        async with httpx2.AsyncClient(transport=transport, base_url=server.url) as client:
            await client.get("/")
            assert server.open == 1  # kept alive
        assert await anyio.to_thread.run_sync(server.wait_all_closed)
        with pytest.raises(RuntimeError, match="closed"):
            await transport.handle_async_request(httpx2.Request("GET", server.url))


# --- 7. streaming -------------------------------------------------------------------------------

EVENTS = [f'event: ping\ndata: {{"n": {n}}}\n\n'.encode() for n in range(3)]


async def test_stream_yields_chunks_as_they_arrive() -> None:
    first_chunk_seen = threading.Event()
    seen_before_last: list[bool] = []

    def sse(conn: socket.socket, request: bytes) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        conn.sendall(b"%x\r\n%b\r\n" % (len(EVENTS[0]), EVENTS[0]))
        pause(0.1)
        conn.sendall(b"%x\r\n%b\r\n" % (len(EVENTS[1]), EVENTS[1]))
        seen_before_last.append(first_chunk_seen.wait(5))  # the last event waits for the client
        conn.sendall(b"%x\r\n%b\r\n0\r\n\r\n" % (len(EVENTS[2]), EVENTS[2]))

    with RawServer(replies(sse, ok(b"next"))) as server:
        async with client_for(server) as client:
            received: list[bytes] = []
            async with client.stream("POST", "/events", json={"stream": True}) as response:
                assert response.headers["content-type"] == "text/event-stream"
                async for chunk in response.aiter_raw():
                    received.append(chunk)
                    first_chunk_seen.set()
            after = await client.get("/after")
    assert seen_before_last == [True]
    assert received[0] == EVENTS[0]
    assert b"".join(received) == b"".join(EVENTS)
    assert after.content == b"next"
    assert server.accepted == 1  # read to the end: reused


async def test_closing_a_stream_early_discards_the_connection_without_hanging() -> None:
    # The server sends one event and then holds the stream open (until it is closed).
    answer = stall_after(CHUNKED_HEAD + b"%x\r\n%b\r\n" % (len(EVENTS[0]), EVENTS[0]))
    with RawServer(replies(answer, ok(b"next"))) as server:
        async with client_for(server) as client:
            started = time.monotonic()
            async with client.stream("POST", "/events", json={"stream": True}) as response:
                async for chunk in response.aiter_raw():
                    assert chunk == EVENTS[0]
                    break
            assert time.monotonic() - started < 2.0
            after = await client.get("/after")
    assert after.content == b"next"
    assert server.accepted == 2


# --- 8. through agentkit.Client -----------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Hello"}]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy configured in the environment (so agentkit.Client uses its own transport)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_client_creates_over_one_kept_alive_connection(no_proxy_env: pytest.MonkeyPatch) -> None:
    with LocalServer() as server:
        async with Client(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
            assert isinstance(client._http._transport, _Transport)
            texts = [
                (await client.create(model="m", max_tokens=8, messages=MESSAGES)).text for _ in range(10)
            ]
            async with client.stream(model="m", max_tokens=8, messages=MESSAGES) as stream:
                async for _ in stream:
                    pass
            streamed = stream.message.text
        assert texts == ["echo: Hello"] * 10
        assert streamed == "echo: Hello"
        assert len(server.requests) == 11
        assert server.connections_accepted == 1


def test_client_kept_open_across_event_loops_does_not_reuse_the_old_loops_connections(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    # A Client used from two asyncio.run() calls without being closed in between: the first loop's
    # idle connection is bound to a dead loop, so the second run must open a new one, not hang on it.
    import asyncio

    with LocalServer() as server:
        client = Client(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=5)

        async def once() -> str:
            return (await client.create(model="m", max_tokens=8, messages=MESSAGES)).text

        assert asyncio.run(once()) == "echo: Hello"
        started = time.monotonic()
        assert asyncio.run(once()) == "echo: Hello"
        assert time.monotonic() - started < 3.0
        assert server.connections_accepted == 2


async def test_client_retries_a_connection_closed_before_the_answer(no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setattr(agentkit._client, "_INITIAL_BACKOFF", 0.001)
    answer = ok(
        own("end_turn").read_bytes(),
        "Content-Type: application/json",
        "request-id: req_2",
    )
    expected = load_json(own("end_turn"))["content"][0]["text"]
    with RawServer(replies(then_hang_up(), answer)) as server:
        async with Client(base_url=server.url, api_key="sk-test", max_retries=2) as client:
            message = await client.create(model="m", max_tokens=8, messages=MESSAGES)
    assert message.text == expected
    assert server.accepted == 2
    assert len(server.requests) == 2
    with RawServer(replies(then_hang_up(), answer)) as server:
        async with Client(base_url=server.url, api_key="sk-test", max_retries=0) as client:
            with pytest.raises(APIConnectionError):
                await client.create(model="m", max_tokens=8, messages=MESSAGES)


class ForwardingProxy(RawServer):
    """A plain HTTP forward proxy: records absolute-form request lines, relays to the origin."""

    def __init__(self) -> None:
        super().__init__(self._forward)
        self.request_lines: list[str] = []

    def _forward(self, conn: socket.socket, request: bytes) -> None:
        line, _, rest = request.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ")
        self.request_lines.append(line.decode("latin-1"))
        origin = httpx2.URL(target)
        assert origin.scheme == "http" and origin.host and origin.port
        with socket.create_connection((origin.host, origin.port), timeout=5) as upstream:
            upstream.sendall(f"{method} {origin.raw_path.decode()} {version}\r\n".encode() + rest)
            response = read_message(upstream, bytearray())
        assert response is not None
        conn.sendall(response)


@pytest.mark.parametrize("bypass", [False, True], ids=["through-proxy", "no-proxy-bypass"])
async def test_client_honours_http_proxy_and_no_proxy(no_proxy_env: pytest.MonkeyPatch, bypass: bool) -> None:
    with LocalServer() as server, ForwardingProxy() as proxy:
        base_url = server.base_url
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        if bypass:
            no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        async with Client(base_url=base_url, api_key="sk-test", max_retries=0) as client:
            message = await client.create(model="m", max_tokens=8, messages=MESSAGES)
    assert message.text == "echo: Hello"
    assert len(server.requests) == 1
    if bypass:
        assert proxy.request_lines == []
        assert proxy.accepted == 0
    else:
        assert proxy.request_lines == [f"POST {base_url}/v1/messages HTTP/1.1"]


# --- 9. HTTPS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def _certificates_with_cryptography(directory: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentkit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _certificates_with_openssl(directory: Path, openssl: str) -> None:
    def run(command: str) -> None:
        subprocess.run(
            [openssl, *command.split()], cwd=directory, check=True, capture_output=True, timeout=60
        )

    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    run(
        f"req -x509 {new_key} -keyout ca.key -out ca.pem -days 2 -subj /CN=agentkit-test-CA "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
    )
    run(f"req -new {new_key} -keyout server.key -out server.csr -subj /CN=localhost")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
    )
    run(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 "
        "-out server.pem -extfile server.ext"
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA and a server certificate for 127.0.0.1/localhost, made now (no new dependency)."""
    directory = tmp_path_factory.mktemp("tls")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("HTTPS tests need `cryptography` (importable) or the `openssl` CLI to make a cert")
        _certificates_with_openssl(directory, openssl)
    else:
        _certificates_with_cryptography(directory)
    return TLSFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")


def server_tls(files: TLSFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


async def test_https_request_with_a_trusted_certificate_and_keep_alive(tls_files: TLSFiles) -> None:
    trusting = ssl.create_default_context(cafile=str(tls_files.ca))
    answers = replies(ok(b"secret"), CHUNKED_HEAD + chunks(b"chunked ", b"over tls"))
    with RawServer(answers, ssl_context=server_tls(tls_files)) as server:
        async with client_for(server, ssl_context=trusting) as client:
            first = await client.post("/tls", content=b"payload")
            second = await client.get("/tls-chunked")
    assert server.url.startswith("https://127.0.0.1:")
    assert first.content == b"secret"
    assert second.content == b"chunked over tls"
    assert parse_message(server.requests[0])[2] == b"payload"
    assert server.accepted == 1


async def test_https_with_an_untrusted_certificate_raises_connect_error(tls_files: TLSFiles) -> None:
    with RawServer(ssl_context=server_tls(tls_files)) as server:
        async with client_for(server) as client:  # the default, verifying context
            with pytest.raises(httpx2.ConnectError):
                await client.get("/")
    assert server.requests == []
