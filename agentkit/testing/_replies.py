"""What a policy is given and what it returns: the :class:`Request` the server received, the
:class:`Reply` kinds (a Message, an error, the faults), ``ReplyLike`` and ``Policy``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "CutStreamReply",
    "DelayReply",
    "DropMidBodyReply",
    "DropReply",
    "ErrorEventReply",
    "ErrorReply",
    "MalformedReply",
    "MessageReply",
    "PingForeverReply",
    "Policy",
    "RawReply",
    "Reply",
    "ReplyLike",
    "Request",
    "ResetReply",
    "TrickleReply",
]


@dataclass
class Request:
    """One HTTP request the server received (also what a policy is called with).

    ``headers`` are lower-cased (repeated headers joined with ``", "``); ``json`` is the parsed body
    (``None`` when absent or not JSON); ``index`` numbers the requests this server received, from 0;
    ``status`` is the status answered (``None`` until answered, or when the connection was dropped).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    index: int
    query: str = ""
    status: int | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` (empty if missing)."""
        value = self.json.get("messages") if isinstance(self.json, dict) else None
        return value if isinstance(value, list) else []

    @property
    def stream(self) -> bool:
        """Whether the request asked for SSE (``"stream": true``)."""
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def model(self) -> str:
        """The requested model name."""
        value = self.json.get("model") if isinstance(self.json, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tool definitions sent (empty if none)."""
        value = self.json.get("tools") if isinstance(self.json, dict) else None
        return value if isinstance(value, list) else []

    @property
    def thinking_enabled(self) -> bool:
        """Whether extended thinking is on (``enabled`` or ``adaptive``)."""
        value = self.json.get("thinking") if isinstance(self.json, dict) else None
        return isinstance(value, dict) and value.get("type") in ("enabled", "adaptive")

    @property
    def assistant_turns(self) -> int:
        """How many assistant messages the history holds (a stateless server's notion of progress)."""
        return sum(1 for m in self.messages if isinstance(m, dict) and m.get("role") == "assistant")

    @property
    def last_user_text(self) -> str:
        """The text of the last user message (text blocks joined), ``""`` if none."""
        for msg in reversed(self.messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                content = msg.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return "".join(
                        b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
                    )
                return ""
        return ""

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The ``tool_result`` blocks of the last message, if it is a user message."""
        msgs = self.messages
        if not msgs or not isinstance(msgs[-1], dict) or msgs[-1].get("role") != "user":
            return []
        content = msgs[-1].get("content")
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


# --------------------------------------------------------------------------------------------- replies


class Reply:
    """Base class of everything a policy may return (besides a plain Message ``dict``)."""


@dataclass
class MessageReply(Reply):
    """A successful Message, as JSON or (when the request streams) as SSE.

    ``message`` may omit id/type/role/model/stop_reason/usage (the server fills them in).
    ``partial_json`` maps a content index to raw tool-input JSON streamed instead of the block's input
    (a call cut by ``max_tokens``); ``close_cut_blocks`` sends ``content_block_stop`` for such blocks.
    ``event_delay`` sleeps between SSE events; ``headers`` are added to the response.
    """

    message: dict[str, Any]
    partial_json: dict[int, str] = field(default_factory=dict)
    close_cut_blocks: bool = False
    event_delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ErrorReply(Reply):
    """An HTTP error with the API's error body (or a PoYo envelope when ``envelope_code`` is set)."""

    status: int = 500
    type: str = "api_error"
    message: str = "Internal server error"
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    envelope_code: int | None = None
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class DropReply(Reply):
    """Close the connection before sending a status line."""


@dataclass
class ResetReply(Reply):
    """Abort the connection with a TCP RST (``SO_LINGER`` 0) before sending anything."""


@dataclass
class DropMidBodyReply(Reply):
    """Send the status line, headers and part of the body, then close the connection."""

    inner: MessageReply


@dataclass
class CutStreamReply(Reply):
    """Stream the first ``after_events`` SSE events (``ping`` included) then close: no ``message_stop``.

    For a non-streaming request this behaves like :class:`DropMidBodyReply`.
    """

    inner: MessageReply
    after_events: int = 3


@dataclass
class ErrorEventReply(Reply):
    """Stream ``after_events`` events, then an ``error`` event, then end the response normally.

    For a non-streaming request the error is answered as an HTTP error (529 for ``overloaded_error``).
    """

    inner: MessageReply
    after_events: int = 3
    type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass
class MalformedReply(Reply):
    """Status 200 with a body that is not valid JSON (or, streaming, an event whose data is not JSON)."""

    body: bytes | None = None


@dataclass
class RawReply(Reply):
    """Exactly these status, headers and body bytes (``content-length`` and ``request-id`` are added)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class TrickleReply(Reply):
    """Send ``inner`` (its JSON body, or its SSE events) ``chunk_size`` bytes at a time, ``interval``
    seconds apart: every read gets bytes, so per-read timeouts never fire, but the body takes long."""

    inner: MessageReply
    chunk_size: int = 1
    interval: float = 0.05


@dataclass
class PingForeverReply(Reply):
    """A response that never ends. Streaming: the first ``after_events`` events of ``inner``, then a
    ``ping`` event every ``interval`` seconds; not streaming: a chunked JSON body that is only
    whitespace, one space every ``interval``. The server gives up after ``limit`` seconds (a safety net
    for a test that forgot the client)."""

    inner: MessageReply
    after_events: int = 1
    interval: float = 0.02
    limit: float = 60.0


@dataclass
class DelayReply(Reply):
    """Wait ``seconds`` before answering with ``inner``."""

    seconds: float
    inner: ReplyLike


ReplyLike: TypeAlias = Reply | dict[str, Any]
"""A :class:`Reply` or a Message ``dict``."""

Policy: TypeAlias = Callable[[Request], "ReplyLike | Awaitable[ReplyLike]"]
"""Anything the server can ask for a reply."""
