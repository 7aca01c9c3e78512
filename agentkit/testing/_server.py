"""``LocalServer``: the Messages API's semantics on the local HTTP server (``_http_server``): routes,
request validation, auth per flavour, and each :class:`Reply` (messages, errors, faults) on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import socket
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ._hostile import HostileReply, send_hostile
from ._http_server import _JSON_TYPE, _SSE_TYPE, DEFAULT_MAX_RECORDED, MAX_BODY, _chunk, _Closed, _HTTPServer
from ._policies import (
    STATUS_BY_TYPE,
    CutStreamReply,
    DelayReply,
    DropMidBodyReply,
    DropReply,
    EchoPolicy,
    ErrorEventReply,
    ErrorReply,
    MalformedReply,
    MessageReply,
    PingForeverReply,
    Policy,
    RawReply,
    Reply,
    ReplyLike,
    Request,
    ResetReply,
    ScriptExhausted,
    TrickleReply,
)
from ._validation import InvalidRequest, validate_count_tokens, validate_create
from ._wire import complete_message, dumps, estimate_tokens, message_events, sse_event

__all__ = ["DEFAULT_MODELS", "Flavour", "LocalServer"]

Flavour: TypeAlias = Literal["anthropic", "poyo", "toapis"]
"""Which endpoint to imitate: auth headers accepted, and PoYo's ``{"code": 200, "data": …}`` envelope."""

DEFAULT_MODELS = ("claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5")


@dataclass
class _Rendered(Reply):
    """A Message reply already encoded: a JSON ``body``, or SSE ``events``."""

    body: bytes | None
    events: list[bytes] | None
    headers: dict[str, str]
    event_delay: float


class LocalServer(_HTTPServer):
    """A real HTTP server speaking the Messages API on ``127.0.0.1``, answering from a ``policy``.

    ``with LocalServer(policy=Script([...])) as server:`` (or ``async with``) starts it on a free port;
    ``server.base_url`` is ``http://127.0.0.1:PORT`` (no ``/v1``) and ``server.requests`` the recorded
    :class:`Request` list. ``flavour`` picks the auth rules (``anthropic``: ``x-api-key`` or Bearer, not
    both; ``poyo``: ``x-api-key`` only, JSON answers wrapped in ``{"code": 200, "data": …}``, auth errors
    as envelopes; ``toapis``: either). ``api_key=None`` accepts any key. Every answer leaves
    ``latency`` seconds after its request arrived (the server's own validation and policy run inside
    that window, as a remote API's would; a policy that takes longer delays the answer).
    ``verify_signatures`` rejects thinking blocks whose text no longer matches the
    signature this server gave them. ``policy`` may be swapped while running. A request whose
    ``Content-Length`` is over ``max_body`` is answered ``413`` as soon as its head arrives, before
    its body is read (recorded with ``status`` 413 and an empty body); then the connection is closed
    at once, leaving the body unread (the peer sees a reset), or, with ``linger=True``, after the
    body was read and dropped (a lingering close, as nginx does).

    Recorded requests (and the requests policies see) carry no credentials: ``x-api-key``,
    ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` values read ``[redacted]`` (after the
    scheme: ``Bearer [redacted]``) yet compare equal to the value sent, so
    ``server.requests[0].headers["x-api-key"] == key`` still tells which key arrived. Only the last
    ``max_recorded`` requests are kept (default 10 000); ``requests_received`` counts them all.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        flavour: Flavour = "anthropic",
        api_key: str | None = "sk-test",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Iterable[str] = DEFAULT_MODELS,
        verify_signatures: bool = True,
        backlog: int = 4096,
        max_recorded: int = DEFAULT_MAX_RECORDED,
        max_body: int = MAX_BODY,
        linger: bool = False,
    ) -> None:
        if not isinstance(max_recorded, int) or isinstance(max_recorded, bool) or max_recorded < 1:
            raise ValueError(f"max_recorded must be an int >= 1 (the requests kept), got {max_recorded!r}")
        if flavour not in ("anthropic", "poyo", "toapis"):
            raise ValueError(f"unknown flavour {flavour!r}; use 'anthropic', 'poyo' or 'toapis'")
        self.policy: Policy = policy if policy is not None else EchoPolicy()
        self.flavour: Flavour = flavour
        self.api_key = api_key
        self.latency = latency
        self.host = host
        self.models = tuple(models)
        self.verify_signatures = verify_signatures
        self._requested_port = port
        self._backlog = backlog
        self.max_body = max_body
        self.linger = linger
        self._port: int | None = None
        self._lock = threading.Lock()
        self._requests: deque[Request] = deque(maxlen=max_recorded)
        self._received = 0
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._connections = 0

    def __repr__(self) -> str:
        where = f"http://{self.host}:{self._port}" if self._port is not None else "not running"
        key = "any key" if self.api_key is None else "key set"
        return f"<LocalServer {where} flavour={self.flavour!r} {key} requests={self._received}>"

    # ------------------------------------------------------------------ answers

    async def _serve(
        self,
        request: Request,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        received: float,
        auth: tuple[int, str, str] | None,
    ) -> None:
        """Answer ``latency`` seconds after the request arrived: the server's own work (validation, the
        policy) runs inside that window, as a remote API's does, so a burst of requests is not delayed
        by this process's CPU on top of the latency."""
        reply = self._render(request, await self._reply(request, auth))
        if self.latency > 0:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, received + self.latency - loop.time()))
        await self._answer(request, writer, keep_alive, reply)

    async def _reply(self, request: Request, auth: tuple[int, str, str] | None) -> ReplyLike:
        """What to answer ``request`` with (errors included), not yet sent; ``auth`` is what is wrong
        with its credentials (judged before they were redacted), if anything."""
        route = (request.method, request.path)
        handler: Callable[[Request], Awaitable[ReplyLike]]
        if route == ("POST", "/v1/messages"):
            handler = self._create
        elif route == ("POST", "/v1/messages/count_tokens"):
            handler = self._count_tokens
        elif request.method == "GET" and (
            request.path == "/v1/models" or request.path.startswith("/v1/models/")
        ):
            handler = self._models
        else:
            return ErrorReply(404, "not_found_error", f"Not found: {request.method} {request.path}")
        if auth is not None:
            status, error_type, message = auth
            envelope = status if self.flavour == "poyo" else None  # PoYo answers these as envelopes
            return ErrorReply(status, error_type, message, envelope_code=envelope)
        return await handler(request)

    def _auth_problem(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """What is wrong with the request's auth headers for this flavour: (status, type, message)."""
        x_key = headers.get("x-api-key")
        auth = headers.get("authorization")
        bearer = auth[7:].strip() if auth is not None and auth[:7].lower() == "bearer " else None
        if self.flavour == "poyo":
            if x_key is None:
                return 401, "authentication_error", "missing api key: send x-api-key"
            if self.api_key is not None and x_key != self.api_key:
                return 401, "authentication_error", "invalid api key"
        else:
            if self.flavour == "anthropic" and x_key is not None and auth is not None:
                return (
                    400,
                    "invalid_request_error",
                    "send exactly one of `x-api-key` or `Authorization: Bearer`, not both",
                )
            keys = [k for k in (x_key, bearer) if k is not None]
            if not keys:
                return 401, "authentication_error", "x-api-key header is required"
            if self.api_key is not None and self.api_key not in keys:
                return 401, "authentication_error", "invalid x-api-key" if x_key else "invalid bearer token"
        if "anthropic-version" not in headers:
            return 400, "invalid_request_error", "anthropic-version: header is required"
        return None

    @staticmethod
    def _no_json(request: Request) -> ErrorReply | None:
        if request.json is not None:
            return None
        message = (
            "There was an error parsing the body of your request: it is not valid JSON"
            if request.body
            else "body: a JSON request body is required"
        )
        return ErrorReply(400, "invalid_request_error", message)

    async def _models(self, request: Request) -> ReplyLike:
        def entry(model: str) -> dict[str, Any]:
            return {
                "type": "model",
                "id": model,
                "display_name": model.replace("-", " ").title(),
                "created_at": "2026-01-01T00:00:00Z",
                "lifecycle": "active",  # required by the SDK's ModelInfo (2.12), like the fields above
            }

        if request.path == "/v1/models":
            data = [entry(m) for m in self.models]
            body: Any = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            model = request.path[len("/v1/models/") :]
            if model not in self.models:
                return ErrorReply(404, "not_found_error", f"model: {model}")
            body = entry(model)
        return RawReply(200, dumps(body))

    async def _count_tokens(self, request: Request) -> ReplyLike:
        problem = self._no_json(request)
        if problem is not None:
            return problem
        try:
            validate_count_tokens(request.json)
        except InvalidRequest as exc:
            return ErrorReply(400, "invalid_request_error", str(exc))
        return RawReply(200, dumps({"input_tokens": estimate_tokens(len(request.body))}))

    async def _create(self, request: Request) -> ReplyLike:
        problem = self._no_json(request)
        if problem is not None:
            return problem
        try:
            validate_create(request.json, verify_signatures=self.verify_signatures)
        except InvalidRequest as exc:
            return ErrorReply(400, "invalid_request_error", str(exc))
        if request.json.get("max_tokens") == 0:  # pre-warms the cache: no output, the policy is not asked
            return MessageReply({"content": [], "stop_reason": "max_tokens", "usage": {"output_tokens": 0}})
        try:
            result = self.policy(request)
            if inspect.isawaitable(result):
                result = await _await(result)
        except ScriptExhausted as exc:
            return ErrorReply(500, "api_error", str(exc))
        except Exception as exc:
            return ErrorReply(500, "api_error", f"policy raised {type(exc).__name__}: {exc}")
        return result

    async def _answer(
        self, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, result: ReplyLike
    ) -> None:
        """Send ``result``, as :meth:`_render` left it."""
        while isinstance(result, DelayReply):
            await asyncio.sleep(result.seconds)
            result = result.inner
        if not isinstance(result, Reply):
            self._error(
                writer,
                request,
                keep_alive,
                500,
                "api_error",
                f"policy returned {type(result).__name__}; expected a Reply or a Message dict",
            )
            return
        if isinstance(result, _Rendered):  # Message replies were rendered by _serve
            await self._send_rendered(request, writer, keep_alive, result)
        elif isinstance(result, ErrorReply):
            self._send_error_reply(request, writer, keep_alive, result)
        elif isinstance(result, DropReply):
            writer.close()
            raise _Closed
        elif isinstance(result, ResetReply):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            raise _Closed
        elif isinstance(result, DropMidBodyReply | CutStreamReply):
            await self._send_cut(request, writer, result)
        elif isinstance(result, ErrorEventReply):
            await self._send_error_event(request, writer, keep_alive, result)
        elif isinstance(result, MalformedReply):
            self._send_malformed(request, writer, keep_alive, result)
        elif isinstance(result, TrickleReply | PingForeverReply):
            await self._send_slowly(request, writer, result)
        elif isinstance(result, HostileReply):
            if await send_hostile(self, request, writer, keep_alive, result):
                writer.close()
                raise _Closed
        elif isinstance(result, RawReply):
            self._write_response(
                writer,
                result.status,
                result.body,
                keep_alive=keep_alive,
                content_type=result.content_type,
                headers=result.headers,
                request=request,
            )
        else:  # pragma: no cover - every Reply subclass is handled above
            raise TypeError(f"unhandled reply {result!r}")

    def _message(self, request: Request, reply: MessageReply) -> dict[str, Any]:
        msg = complete_message(
            reply.message, model=request.model, input_tokens=estimate_tokens(len(request.body))
        )
        if reply.partial_json and not request.stream:
            content = [dict(b) for b in msg["content"]]
            for index in reply.partial_json:
                if 0 <= index < len(content):
                    content[index]["input"] = {}
            msg["content"] = content
        return msg

    def _events(self, request: Request, reply: MessageReply) -> list[bytes]:
        msg = self._message(request, reply)
        return [
            sse_event(name, payload)
            for name, payload in message_events(
                msg, partial_json=reply.partial_json, close_cut_blocks=reply.close_cut_blocks
            )
        ]

    def _message_body(self, request: Request, reply: MessageReply) -> bytes:
        msg = self._message(request, reply)
        if self.flavour == "poyo":
            return dumps({"code": 200, "data": msg})
        return dumps(msg)

    def _render(self, request: Request, reply: ReplyLike) -> ReplyLike:
        """A Message reply encoded now (JSON body or SSE events), so that the encoding too happens
        inside the latency window; other replies are returned as they are."""
        if isinstance(reply, DelayReply):
            return DelayReply(reply.seconds, self._render(request, reply.inner))
        if isinstance(reply, dict):
            reply = MessageReply(reply)
        if not isinstance(reply, MessageReply):
            return reply
        if request.stream:
            return _Rendered(None, self._events(request, reply), reply.headers, reply.event_delay)
        return _Rendered(self._message_body(request, reply), None, reply.headers, 0.0)

    async def _send_rendered(
        self, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, reply: _Rendered
    ) -> None:
        if reply.events is None:
            body = reply.body or b""
            self._write_response(
                writer, 200, body, keep_alive=keep_alive, headers=reply.headers, request=request
            )
            return
        await self._stream(
            request, writer, keep_alive, reply.events, reply.headers, reply.event_delay, end=True
        )

    def _send_error_reply(
        self, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, reply: ErrorReply
    ) -> None:
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            ra = reply.retry_after
            headers["retry-after"] = (
                str(int(ra)) if isinstance(ra, float | int) and float(ra).is_integer() else str(ra)
            )
        if reply.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{reply.retry_after_ms:g}"
        if reply.should_retry is not None:
            headers["x-should-retry"] = "true" if reply.should_retry else "false"
        self._error(
            writer,
            request,
            keep_alive,
            reply.status,
            reply.type,
            reply.message,
            headers=headers,
            error_code=reply.error_code,
            envelope_code=reply.envelope_code,
        )

    async def _send_cut(
        self, request: Request, writer: asyncio.StreamWriter, reply: DropMidBodyReply | CutStreamReply
    ) -> None:
        request.status = 200
        if request.stream:
            events = self._events(request, reply.inner)
            if isinstance(reply, CutStreamReply):
                await self._stream(request, writer, False, events[: reply.after_events], None, 0.0, end=False)
            else:
                first = events[0]
                writer.write(self._head(200, _SSE_TYPE, None, False, None, length=None))
                writer.write(_chunk(first)[: len(first) // 2])
        else:
            body = self._message_body(request, reply.inner)
            writer.write(self._head(200, _JSON_TYPE, None, False, None, length=len(body)))
            writer.write(body[: len(body) // 2])
        await writer.drain()
        writer.close()
        raise _Closed

    async def _send_error_event(
        self, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, reply: ErrorEventReply
    ) -> None:
        if not request.stream:
            status = STATUS_BY_TYPE.get(reply.type, 500)
            self._error(writer, request, keep_alive, status, reply.type, reply.message)
            return
        events = self._events(request, reply.inner)[: reply.after_events]
        events.append(
            sse_event("error", {"type": "error", "error": {"type": reply.type, "message": reply.message}})
        )
        await self._stream(request, writer, keep_alive, events, None, reply.inner.event_delay, end=True)

    async def _send_slowly(
        self, request: Request, writer: asyncio.StreamWriter, reply: TrickleReply | PingForeverReply
    ) -> None:
        """A body that keeps coming (trickled, or pings for ever); the connection is closed after it."""
        request.status = 200
        loop = asyncio.get_running_loop()
        if isinstance(reply, TrickleReply):
            if request.stream:
                body = b"".join(self._events(request, reply.inner))
                writer.write(self._head(200, _SSE_TYPE, None, False, None, length=len(body)))
            else:
                body = self._message_body(request, reply.inner)
                writer.write(self._head(200, _JSON_TYPE, None, False, None, length=len(body)))
            for start in range(0, len(body), reply.chunk_size):
                await writer.drain()
                await asyncio.sleep(reply.interval)
                writer.write(body[start : start + reply.chunk_size])
        else:
            stream = request.stream
            writer.write(self._head(200, _SSE_TYPE if stream else _JSON_TYPE, None, False, None, length=None))
            if stream:
                writer.write(
                    b"".join(_chunk(e) for e in self._events(request, reply.inner)[: reply.after_events])
                )
            filler = _chunk(sse_event("ping", {"type": "ping"}) if stream else b" ")
            end = loop.time() + reply.limit
            while loop.time() < end:
                await writer.drain()
                await asyncio.sleep(reply.interval)
                writer.write(filler)
        await writer.drain()
        writer.close()
        raise _Closed

    def _send_malformed(
        self, request: Request, writer: asyncio.StreamWriter, keep_alive: bool, reply: MalformedReply
    ) -> None:
        if request.stream:
            body = reply.body or b'{"type":"message_start","message":{"id":"msg_'
            event = b"event: message_start\ndata: " + body + b"\n\n"
            request.status = 200
            writer.write(self._head(200, _SSE_TYPE, None, keep_alive, None, length=None))
            writer.write(_chunk(event) + b"0\r\n\r\n")
            return
        body = reply.body or b'{"id": "msg_01Malformed", "type": "message", "content": [{"type": "te'
        self._write_response(writer, 200, body, keep_alive=keep_alive, request=request)


async def _await(value: Awaitable[ReplyLike]) -> ReplyLike:
    return await value
