"""What the local server answers with: the :data:`reply` helpers, which build replies and faults in one
short call, and ready-made policies (:class:`Script`, :class:`FunctionPolicy`, :class:`EchoPolicy`,
:class:`WeatherWorkload`). The :class:`Request` a policy sees and the :class:`Reply` kinds are in
``_replies`` (re-exported here).

A *policy* is any callable ``(Request) -> Reply | dict`` (or an ``async def`` returning one; it runs on
the server's asyncio loop). A ``dict`` is a Message, completed with defaults by the server.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ._replies import (
    CutStreamReply,
    DelayReply,
    DropMidBodyReply,
    DropReply,
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
    TrickleReply,
)
from ._wire import new_id, sign_thinking

__all__ = [
    "CutStreamReply",
    "DelayReply",
    "DropMidBodyReply",
    "DropReply",
    "EchoPolicy",
    "ErrorEventReply",
    "ErrorReply",
    "FunctionPolicy",
    "MalformedReply",
    "MessageReply",
    "PingForeverReply",
    "Policy",
    "RawReply",
    "Reply",
    "ReplyLike",
    "Request",
    "ResetReply",
    "Script",
    "ScriptExhausted",
    "TrickleReply",
    "WeatherWorkload",
    "reply",
]


def _as_message_reply(
    value: ReplyLike | None, default_text: str = "Partial answer that is cut"
) -> MessageReply:
    if value is None:
        return MessageReply({"content": [{"type": "text", "text": default_text}]})
    if isinstance(value, MessageReply):
        return value
    if isinstance(value, dict):
        return MessageReply(dict(value))
    raise TypeError(f"expected a message reply or a Message dict, got {type(value).__name__}")


class _ReplyHelpers:
    """Constructors for replies and faults: ``reply.text("hi")``, ``reply.error(429)``, ``reply.drop()``…"""

    # ---- messages

    @staticmethod
    def message(
        content: Sequence[dict[str, Any]],
        stop_reason: str | None = None,
        *,
        usage: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> MessageReply:
        """A Message with these blocks; ``stop_reason`` inferred when ``None``; extra Message fields."""
        msg: dict[str, Any] = {"content": list(content), **fields}
        if stop_reason is not None:
            msg["stop_reason"] = stop_reason
        if usage is not None:
            msg["usage"] = usage
        return MessageReply(msg, headers=dict(headers or {}))

    @staticmethod
    def text(text: str, stop_reason: str = "end_turn", **fields: Any) -> MessageReply:
        """A text answer (``end_turn`` unless told)."""
        return _ReplyHelpers.message([{"type": "text", "text": text}], stop_reason, **fields)

    @staticmethod
    def tool_use_block(
        name: str, input: Mapping[str, Any] | None = None, id: str | None = None
    ) -> dict[str, Any]:
        """A ``tool_use`` content block (fresh ``toolu_…`` id unless given)."""
        return {"type": "tool_use", "id": id or new_id("toolu_"), "name": name, "input": dict(input or {})}

    @staticmethod
    def tool_use(
        name: str, input: Mapping[str, Any] | None = None, id: str | None = None, *, text: str | None = None
    ) -> MessageReply:
        """One tool call (optionally after some text); ``stop_reason: tool_use``."""
        return _ReplyHelpers.tool_uses([(name, input or {}, id)], text=text)

    @staticmethod
    def tool_uses(
        calls: Iterable[
            tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str | None] | dict[str, Any]
        ],
        *,
        text: str | None = None,
    ) -> MessageReply:
        """Parallel tool calls, each ``(name, input)``, ``(name, input, id)`` or a ``tool_use`` block dict."""
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        for call in calls:
            if isinstance(call, dict):
                content.append(call)
            else:
                cid = call[2] if len(call) > 2 else None
                content.append(_ReplyHelpers.tool_use_block(call[0], call[1], cid))
        return _ReplyHelpers.message(content, "tool_use")

    @staticmethod
    def thinking_block(
        thinking: str = "Let me think about this.", signature: str | None = None
    ) -> dict[str, Any]:
        """A ``thinking`` block signed by the local server (edit the text and the server rejects it)."""
        return {"type": "thinking", "thinking": thinking, "signature": signature or sign_thinking(thinking)}

    @staticmethod
    def redacted_thinking_block(data: str | None = None) -> dict[str, Any]:
        """A ``redacted_thinking`` block with opaque ``data``."""
        return {"type": "redacted_thinking", "data": data or "RWRhY3RlZA" + new_id("")}

    @staticmethod
    def with_thinking(
        inner: ReplyLike,
        thinking: str = "Let me think about this.",
        *,
        signature: str | None = None,
        redacted: bool = False,
    ) -> MessageReply:
        """``inner`` with a thinking block (or ``redacted_thinking`` when ``redacted``) put first."""
        base = _as_message_reply(inner)
        block = (
            _ReplyHelpers.redacted_thinking_block()
            if redacted
            else _ReplyHelpers.thinking_block(thinking, signature)
        )
        msg = dict(base.message)
        msg["content"] = [block, *msg.get("content", [])]
        shifted = {k + 1: v for k, v in base.partial_json.items()}
        return dataclasses.replace(base, message=msg, partial_json=shifted, headers=dict(base.headers))

    @staticmethod
    def pause_turn(content: Sequence[dict[str, Any]] | None = None) -> MessageReply:
        """``stop_reason: pause_turn`` (a long server-tool turn paused; the client resends it unchanged)."""
        blocks = list(content) if content is not None else [{"type": "text", "text": "Still working on it."}]
        return _ReplyHelpers.message(blocks, "pause_turn")

    @staticmethod
    def refusal(
        category: str = "cyber", explanation: str = "This request was refused due to policy."
    ) -> MessageReply:
        """``stop_reason: refusal`` with ``stop_details`` and an empty text block, like the real API."""
        return _ReplyHelpers.message(
            [{"type": "text", "text": ""}],
            "refusal",
            stop_details={"type": "refusal", "category": category, "explanation": explanation},
        )

    @staticmethod
    def stop_sequence(text: str, sequence: str) -> MessageReply:
        """Text ended by a stop sequence (``stop_reason: stop_sequence``, ``stop_sequence`` echoed)."""
        return _ReplyHelpers.text(text, "stop_sequence", stop_sequence=sequence)

    @staticmethod
    def max_tokens(text: str = "This answer was cut because it got too lo") -> MessageReply:
        """Text cut by the output cap (``stop_reason: max_tokens``)."""
        return _ReplyHelpers.text(text, "max_tokens")

    @staticmethod
    def max_tokens_cut_tool_use(
        name: str,
        raw_partial_json: str = '{"city": "Pa',
        *,
        id: str | None = None,
        text: str | None = None,
        close_block: bool = False,
    ) -> MessageReply:
        """A ``tool_use`` cut by ``max_tokens``: streamed, its input JSON stops at ``raw_partial_json``
        (and the block gets no ``content_block_stop`` unless ``close_block``); non-streaming, the block
        has ``input: {}``. Either way ``stop_reason: max_tokens``."""
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content.append(_ReplyHelpers.tool_use_block(name, {}, id))
        return MessageReply(
            {"content": content, "stop_reason": "max_tokens"},
            partial_json={len(content) - 1: raw_partial_json},
            close_cut_blocks=close_block,
        )

    # ---- faults

    @staticmethod
    def error(
        status: int = 529,
        type: str | None = None,
        message: str | None = None,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        headers: dict[str, str] | None = None,
        should_retry: bool | None = None,
        envelope_code: int | None = None,
        error_code: str | None = None,
    ) -> ErrorReply:
        """An HTTP error with the API body. ``type`` defaults from ``status`` (429 → ``rate_limit_error``…);
        ``retry_after``/``retry_after_ms``/``should_retry`` set ``retry-after``, ``retry-after-ms``,
        ``x-should-retry``; ``error_code`` sets ``error.details.error_code``; ``envelope_code`` sends a
        PoYo envelope ``{"code": envelope_code, "message", "data": null}`` instead (with ``status``)."""
        etype = type or _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return ErrorReply(
            status=status,
            type=etype,
            message=message or _DEFAULT_MESSAGES.get(etype, f"HTTP {status}"),
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            should_retry=should_retry,
            envelope_code=envelope_code,
            error_code=error_code,
            headers=dict(headers or {}),
        )

    @staticmethod
    def rate_limit(retry_after: float | None = 1.0) -> ErrorReply:
        """429 ``rate_limit_error`` with ``retry-after`` (seconds)."""
        return _ReplyHelpers.error(429, retry_after=retry_after)

    @staticmethod
    def overloaded() -> ErrorReply:
        """529 ``overloaded_error``."""
        return _ReplyHelpers.error(529)

    @staticmethod
    def drop() -> DropReply:
        """Close the connection before the status line (the client sees a connection error)."""
        return DropReply()

    @staticmethod
    def reset() -> ResetReply:
        """Reset the connection (TCP RST) before answering."""
        return ResetReply()

    @staticmethod
    def drop_mid_body(inner: ReplyLike | None = None) -> DropMidBodyReply:
        """Send headers and part of the body of ``inner`` (default: a short text), then close."""
        return DropMidBodyReply(_as_message_reply(inner))

    @staticmethod
    def cut_stream(after_events: int = 3, inner: ReplyLike | None = None) -> CutStreamReply:
        """Stream ``after_events`` events of ``inner`` (``ping`` counts), then close: no ``message_stop``."""
        return CutStreamReply(_as_message_reply(inner), after_events)

    @staticmethod
    def error_event(
        after_events: int = 3,
        type: str = "overloaded_error",
        message: str = "Overloaded",
        inner: ReplyLike | None = None,
    ) -> ErrorEventReply:
        """Stream ``after_events`` events of ``inner``, then an ``error`` event of this type."""
        return ErrorEventReply(_as_message_reply(inner), after_events, type, message)

    @staticmethod
    def malformed(body: bytes | None = None) -> MalformedReply:
        """200 with invalid JSON (streaming: an SSE event whose data is not JSON)."""
        return MalformedReply(body)

    @staticmethod
    def raw(
        status: int = 200,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> RawReply:
        """Exactly this status, content type and body (e.g. a gateway's HTML 502)."""
        return RawReply(status, body, content_type, dict(headers or {}))

    # ---- hostile HTTP (see agentkit.testing._hostile)

    @staticmethod
    def buffered_sse(inner: ReplyLike | None = None) -> Reply:
        """SSE events in one ``Content-Length`` body sent with the head (a buffering gateway)."""
        from ._hostile import BufferedStreamReply

        return BufferedStreamReply(_as_message_reply(inner, "buffered"))

    @staticmethod
    def stale_bytes(inner: ReplyLike | None = None, delay: float = 0.05) -> Reply:
        """Answer ``inner``, then write an extra answer onto the idle kept-alive connection."""
        from ._hostile import StaleBytesReply

        return StaleBytesReply(_as_message_reply(inner, "the real answer"), delay)

    @staticmethod
    def bare_lf(inner: ReplyLike | None = None) -> Reply:
        """``inner`` with bare-LF line ends in the head (then the connection is closed)."""
        from ._hostile import BareLFReply

        return BareLFReply(_as_message_reply(inner, "bare LF"))

    @staticmethod
    def gzip(inner: ReplyLike | None = None) -> Reply:
        """``inner`` with ``Content-Encoding: gzip`` (SSE compressed event by event)."""
        from ._hostile import GzipReply

        return GzipReply(_as_message_reply(inner, "compressed"))

    @staticmethod
    def gzip_bomb(size: int = 128 * 1024 * 1024) -> Reply:
        """A small gzip body that decodes to ``size`` bytes."""
        from ._hostile import GzipBombReply

        return GzipBombReply(size)

    @staticmethod
    def trickle(inner: ReplyLike | None = None, chunk_size: int = 1, interval: float = 0.05) -> TrickleReply:
        """``inner`` (default: a short text) sent ``chunk_size`` bytes every ``interval`` seconds."""
        if chunk_size < 1 or interval < 0:
            raise ValueError(f"chunk_size must be >= 1 and interval >= 0, got {chunk_size}, {interval}")
        return TrickleReply(_as_message_reply(inner), chunk_size, interval)

    @staticmethod
    def ping_forever(
        after_events: int = 1, interval: float = 0.02, inner: ReplyLike | None = None, limit: float = 60.0
    ) -> PingForeverReply:
        """A stream that never ends: ``after_events`` events of ``inner``, then a ``ping`` every
        ``interval`` seconds (a JSON request gets whitespace for ever instead); closed after ``limit``."""
        if after_events < 0 or interval <= 0:
            raise ValueError(f"after_events must be >= 0 and interval > 0, got {after_events}, {interval}")
        return PingForeverReply(_as_message_reply(inner), after_events, interval, limit)

    @staticmethod
    def delay(seconds: float, inner: ReplyLike) -> DelayReply:
        """Answer ``inner`` after ``seconds`` (on top of the server-wide ``latency``)."""
        return DelayReply(seconds, inner)


reply = _ReplyHelpers()
"""Reply and fault constructors; see :class:`_ReplyHelpers` methods (``reply.text``, ``reply.error``…)."""

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_DEFAULT_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "conflict_error": "Conflict",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}

#: HTTP status used when an ``error`` event is answered to a non-streaming request.
STATUS_BY_TYPE = {v: k for k, v in _TYPE_BY_STATUS.items()}


# --------------------------------------------------------------------------------------------- policies


class ScriptExhausted(RuntimeError):
    """A :class:`Script` was asked for more replies than it holds (answered as a 500)."""


class Script:
    """Answer requests with ``replies`` in order: one per request that passed validation.

    Items are replies, Message dicts, or callables ``(Request) -> ReplyLike`` for a reply computed from
    the request. Thread-safe. When exhausted, the request is answered 500 with a message saying so.
    """

    def __init__(self, replies: Iterable[ReplyLike | Callable[[Request], ReplyLike]]) -> None:
        self._replies = list(replies)
        self._next = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """How many replies were handed out."""
        return self._next

    @property
    def remaining(self) -> int:
        """How many replies are left."""
        return len(self._replies) - self._next

    def __call__(self, request: Request) -> ReplyLike:
        with self._lock:
            if self._next >= len(self._replies):
                raise ScriptExhausted(
                    f"agentkit.testing Script exhausted: all {len(self._replies)} scripted replies were "
                    "used; "
                    f"request #{request.index} ({request.method} {request.path}) has no reply. "
                    "Add replies to the Script."
                )
            item = self._replies[self._next]
            self._next += 1
        if callable(item):
            return item(request)
        return item


class FunctionPolicy:
    """Wrap a function ``(Request) -> ReplyLike`` (sync or async) as a policy (plain callables work too)."""

    def __init__(self, fn: Callable[[Request], ReplyLike | Awaitable[ReplyLike]]) -> None:
        self.fn = fn

    def __call__(self, request: Request) -> ReplyLike | Awaitable[ReplyLike]:
        return self.fn(request)


class EchoPolicy:
    """Answer every request with ``"echo: <last user text>"`` (end_turn)."""

    def __call__(self, request: Request) -> ReplyLike:
        return reply.text(f"echo: {request.last_user_text}" if request.last_user_text else "echo")


CITIES = ("Tokyo", "Paris", "London", "New York", "Sydney", "Cairo", "Lima", "Oslo", "Nairobi", "Seoul")


class WeatherWorkload:
    """A scripted, stateless weather agent workload for benchmarks.

    While the request's history has fewer than ``tool_turns`` assistant turns, reply with ``parallel``
    ``get_weather`` calls (``{"city": ...}``, cities cycled from :data:`CITIES`); then answer with an
    ``end_turn`` text. With thinking on, each reply starts with a signed thinking block.
    """

    def __init__(self, tool_turns: int = 2, parallel: int = 3, tool_name: str = "get_weather") -> None:
        if tool_turns < 0 or parallel < 1:
            raise ValueError("tool_turns must be >= 0 and parallel >= 1")
        self.tool_turns = tool_turns
        self.parallel = parallel
        self.tool_name = tool_name

    def __call__(self, request: Request) -> ReplyLike:
        turn = request.assistant_turns
        out: MessageReply
        if turn < self.tool_turns:
            calls = [
                (self.tool_name, {"city": CITIES[(turn * self.parallel + k) % len(CITIES)]})
                for k in range(self.parallel)
            ]
            out = reply.tool_uses(calls)
        else:
            n = len(request.tool_results)
            out = reply.text(f"Done after {turn} tool turns; the last turn had {n} results.")
        if request.thinking_enabled and (turn == 0 or turn < self.tool_turns):
            out = reply.with_thinking(out, f"Turn {turn}: I should check the weather.")
        return out
