"""Hostile-but-real server behaviours, as replies: what gateways and proxies do to HTTP in the wild.

Each is a :class:`Reply` a policy may return (build them with :data:`reply`: ``reply.buffered_sse()``,
``reply.stale_bytes()``, ``reply.bare_lf()``, ``reply.gzip()``, ``reply.gzip_bomb()``). The early
``413`` while a large body uploads is a server setting instead: ``LocalServer(max_body=...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import threading
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._replies import MessageReply, Reply, Request

if TYPE_CHECKING:
    from ._server import LocalServer

__all__ = [
    "BareLFReply",
    "BufferedStreamReply",
    "GzipBombReply",
    "GzipReply",
    "HostileReply",
    "StaleBytesReply",
]

_SSE_TYPE = "text/event-stream; charset=utf-8"
_JSON_TYPE = "application/json"


class HostileReply(Reply):
    """Base of the replies in this module."""


@dataclass
class BufferedStreamReply(HostileReply):
    """A streaming answer buffered by a gateway: every SSE event in one ``Content-Length`` body, sent in
    the same write as the head. (A non-streaming request gets ``inner`` as JSON.)"""

    inner: MessageReply


@dataclass
class StaleBytesReply(HostileReply):
    """``inner`` answered normally on a kept-alive connection, then, ``delay`` seconds later, ``data`` (by
    default a whole extra ``200`` whose Message says ``stale bytes``) written onto the idle connection.
    ``written`` is set once those bytes went out. A client must never take them as the next answer."""

    inner: MessageReply
    delay: float = 0.05
    data: bytes | None = None
    written: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


@dataclass
class BareLFReply(HostileReply):
    """``inner`` with a head whose lines end in a bare ``LF`` (no ``CR``); the body is framed by
    ``Content-Length`` (SSE events included) and the connection closed after it."""

    inner: MessageReply


@dataclass
class GzipReply(HostileReply):
    """``inner`` with ``Content-Encoding: gzip``; SSE is compressed event by event (sync flush), so the
    events still arrive as they are sent."""

    inner: MessageReply


@dataclass
class GzipBombReply(HostileReply):
    """Status 200, ``Content-Encoding: gzip``: a small body that decodes to ``size`` bytes (SSE comment
    lines for a streaming request, JSON whitespace otherwise)."""

    size: int = 128 * 1024 * 1024


def stale_message_text() -> str:
    """The text of the Message in :class:`StaleBytesReply`'s default extra answer."""
    return "stale bytes: not the answer to any request"


async def send_hostile(
    server: LocalServer, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, reply: HostileReply
) -> bool:
    """Write ``reply``; True when the connection must be closed after it."""
    request.status = 200
    if isinstance(reply, BufferedStreamReply):
        body, content_type = _body(server, request, reply.inner)
        head = server._head(200, content_type, None, keep_alive, reply.inner.headers, length=len(body))
        writer.write(head + body)
        return False
    if isinstance(reply, StaleBytesReply):
        await _send_then_stale(server, request, writer, keep_alive, reply)
        return False
    if isinstance(reply, BareLFReply):
        body, content_type = _body(server, request, reply.inner)
        head = server._head(200, content_type, None, False, reply.inner.headers, length=len(body))
        writer.write(head.replace(b"\r\n", b"\n") + body)
        await writer.drain()
        return True
    if isinstance(reply, GzipReply):
        await _send_gzip(server, request, writer, keep_alive, reply.inner)
        return False
    if isinstance(reply, GzipBombReply):
        body = _bomb(reply.size, request.stream)
        content_type = _SSE_TYPE if request.stream else _JSON_TYPE
        headers = {"content-encoding": "gzip"}
        writer.write(server._head(200, content_type, None, keep_alive, headers, length=len(body)) + body)
        return False
    raise TypeError(f"unhandled hostile reply {reply!r}")  # pragma: no cover


def _body(server: LocalServer, request: Request, inner: MessageReply) -> tuple[bytes, str]:
    if request.stream:
        return b"".join(server._events(request, inner)), _SSE_TYPE
    return server._message_body(request, inner), _JSON_TYPE


async def _send_then_stale(
    server: LocalServer,
    request: Request,
    writer: asyncio.StreamWriter,
    keep_alive: bool,
    reply: StaleBytesReply,
) -> None:
    body, content_type = _body(server, request, reply.inner)
    if request.stream:
        head = server._head(200, content_type, None, keep_alive, reply.inner.headers, length=None)
        writer.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    else:
        writer.write(server._head(200, content_type, None, keep_alive, reply.inner.headers, length=len(body)))
        writer.write(body)
    data = reply.data
    if data is None:
        stale = server._message_body(
            request, MessageReply({"content": [{"type": "text", "text": stale_message_text()}]})
        )
        data = server._head(200, _JSON_TYPE, None, True, None, length=len(stale)) + stale

    def write_stale() -> None:
        with contextlib.suppress(Exception):  # the client may have closed the connection meanwhile
            if not writer.is_closing():
                writer.write(data)
        reply.written.set()

    asyncio.get_running_loop().call_later(reply.delay, write_stale)


async def _send_gzip(
    server: LocalServer, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, inner: MessageReply
) -> None:
    headers = {**inner.headers, "content-encoding": "gzip"}
    if not request.stream:
        body = gzip.compress(server._message_body(request, inner))
        writer.write(server._head(200, _JSON_TYPE, None, keep_alive, headers, length=len(body)) + body)
        return
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    writer.write(server._head(200, _SSE_TYPE, None, keep_alive, headers, length=None))
    for event in server._events(request, inner):
        if inner.event_delay > 0:
            await writer.drain()
            await asyncio.sleep(inner.event_delay)
        _chunk(writer, compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH))
    _chunk(writer, compressor.flush())
    writer.write(b"0\r\n\r\n")


def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))


@functools.lru_cache(maxsize=8)
def _bomb(size: int, stream: bool) -> bytes:
    """``size`` bytes of SSE comments (or JSON whitespace), gzip-compressed (made once per size)."""
    unit = b": keep-alive\n" if stream else b" "
    block = unit * (1024 * 1024 // len(unit))
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    parts.append(compressor.compress(unit * ((size % len(block)) // len(unit))))
    parts.append(compressor.flush())
    return b"".join(parts)
