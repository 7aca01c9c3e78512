"""Sans-IO streaming: bytes in, server-sent events out, a complete :class:`Message` at the end.

Nothing here does I/O, so every wire fixture is a plain unit test and chunk boundaries can be
fuzzed. Two layers:

- :class:`SSEDecoder` frames bytes into ``(event, data)`` pairs following the SSE spec: lines end in
  ``\\n``, ``\\r\\n`` or ``\\r``; bytes are split into lines *before* decoding, so a multi-byte character
  split across chunks is fine; comments and unknown fields are ignored; an event not closed by a blank
  line is dropped.
- :class:`MessageAccumulator` folds Messages-API events into a snapshot and returns the final
  :class:`Message` only once ``message_stop`` arrived. An ``error`` event raises the typed API error;
  a stream that ends early raises :class:`ProtocolError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ._exceptions import ProtocolError, _make_status_error
from .types import InvalidToolInput, Message

__all__ = ["MessageAccumulator", "SSEDecoder"]

_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})


class SSEDecoder:
    """Incremental SSE framing: ``feed(bytes)`` yields ``(event_name, data)`` for each complete event."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str]]:
        """Add bytes; yield every event completed by them."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not buffer:
            return
        lines = buffer.splitlines(keepends=True)
        last = lines[-1]
        # A line is complete only with its terminator; a trailing "\r" may still be half of "\r\n".
        if last.endswith(b"\n"):
            self._buffer = b""
        else:
            self._buffer = lines.pop()
        for raw in lines:
            event = self._line(raw)
            if event is not None:
                yield event

    def flush(self) -> Iterator[tuple[str, str]]:
        """End of input: a line held back for a possible ``\r\n`` is processed; an event (or line)
        without its terminator is dropped, as the SSE spec requires."""
        rest, self._buffer = self._buffer, b""
        if rest.endswith(b"\r"):
            event = self._line(rest)
            if event is not None:
                yield event
        self._event, self._data = None, []

    def _line(self, raw: bytes) -> tuple[str, str] | None:
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if not line:
            if not self._data:
                self._event = None
                return None
            event = (self._event or "message", "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


class MessageAccumulator:
    """Folds stream events (JSON dicts) into a :class:`Message`.

    ``feed(event)`` returns the event dict back for convenience; ``message()`` returns the final
    Message once ``message_stop`` was seen and raises :class:`ProtocolError` otherwise.
    """

    __slots__ = ("_blocks", "_done", "_json", "_opened", "_parts", "_request_id", "_snapshot", "_stopped")

    def __init__(self, request_id: str | None = None) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._blocks: list[dict[str, Any]] = []
        self._parts: dict[int, list[str]] = {}  # text/thinking deltas, joined at the end
        self._json: dict[int, list[str]] = {}  # input_json_delta buffers
        self._opened: set[int] = set()  # blocks that came by content_block_start
        self._stopped: set[int] = set()
        self._done = False
        self._request_id = request_id

    @property
    def done(self) -> bool:
        """True once ``message_stop`` arrived."""
        return self._done

    def feed_sse(self, event: str, data: str) -> dict[str, Any] | None:
        """Parse one SSE event's data and fold it in; returns the parsed payload (None if ignored)."""
        if data == "[DONE]":  # removed in 2023-06-01; some proxies still send it
            return None
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise ProtocolError(
                f"invalid JSON in SSE event {event!r}: {exc}", request_id=self._request_id
            ) from exc
        if not isinstance(payload, dict):
            raise ProtocolError(f"SSE event {event!r} is not a JSON object", request_id=self._request_id)
        payload.setdefault("type", event)
        self.feed(payload)
        return payload

    def feed(self, payload: dict[str, Any]) -> None:
        """Fold one event payload (``{"type": ..., ...}``) into the snapshot."""
        kind = payload.get("type")
        if kind == "content_block_delta":
            self._delta(payload)
        elif kind == "content_block_start":
            index = payload["index"]
            block = dict(payload["content_block"])
            while len(self._blocks) <= index:
                self._blocks.append({})
            self._blocks[index] = block
            self._opened.add(index)
        elif kind == "content_block_stop":
            self._stopped.add(payload["index"])
        elif kind == "message_start":
            self._snapshot = dict(payload["message"])
            self._snapshot["usage"] = dict(self._snapshot.get("usage") or {})
            self._blocks = [dict(b) for b in self._snapshot.get("content") or []]
        elif kind == "message_delta":
            snap = self._require_start(kind)
            for key, value in (payload.get("delta") or {}).items():
                snap[key] = value
            usage = payload.get("usage")
            if usage:
                target = snap["usage"]
                for key, value in usage.items():
                    if value is not None:
                        target[key] = value
        elif kind == "message_stop":
            self._require_start(kind)
            self._done = True
        elif kind == "error":
            error = payload.get("error")
            raise _make_status_error(
                status=200,
                body={"error": error, "request_id": payload.get("request_id")},
                request_id=self._request_id,
                prefer_type=True,
            )
        # ping and unknown event types: nothing to do

    def _require_start(self, kind: str) -> dict[str, Any]:
        if self._snapshot is None:
            raise ProtocolError(f"{kind} before message_start", request_id=self._request_id)
        return self._snapshot

    def _delta(self, payload: dict[str, Any]) -> None:
        index = payload["index"]
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            self._parts.setdefault(index, []).append(delta.get("text", ""))
        elif kind == "input_json_delta":
            self._json.setdefault(index, []).append(delta.get("partial_json", ""))
        elif kind == "thinking_delta":
            self._parts.setdefault(index, []).append(delta.get("thinking", ""))
        elif kind == "signature_delta":
            self._block(index)["signature"] = delta.get("signature", "")
        elif kind == "citations_delta":
            block = self._block(index)
            citations = block.get("citations")
            if not isinstance(citations, list):
                citations = block["citations"] = []
            citations.append(delta.get("citation"))
        # unknown delta types are ignored

    def _block(self, index: int) -> dict[str, Any]:
        if index >= len(self._blocks):
            raise ProtocolError(f"delta for unknown content block {index}", request_id=self._request_id)
        return self._blocks[index]

    def partial_json(self, index: int) -> str:
        """The tool input JSON received so far for block ``index`` (for live UIs)."""
        return "".join(self._json.get(index, ()))

    def text_so_far(self, index: int) -> str:
        """The text (or thinking) received so far for block ``index``."""
        return "".join(self._parts.get(index, ()))

    def message(self) -> Message:
        """The accumulated Message. Raises :class:`ProtocolError` if ``message_stop`` never came."""
        if not self._done or self._snapshot is None:
            raise ProtocolError(
                "stream ended before message_stop",
                request_id=self._request_id,
                error_type="incomplete_stream",
            )
        invalid: list[InvalidToolInput] = []
        blocks = []
        for index, block in enumerate(self._blocks):
            kind = block.get("type")
            parts = self._parts.get(index)
            if parts is not None:
                field = "thinking" if kind == "thinking" else "text"
                block[field] = block.get(field, "") + "".join(parts)
            if kind in _TOOL_BLOCKS and index in self._opened and index not in self._stopped:
                # No content_block_stop (cut by max_tokens): the call is incomplete even if the
                # JSON so far parses; it keeps the start's input and is never run.
                raw = "".join(self._json.get(index, ()))
                invalid.append(InvalidToolInput(index=index, id=str(block.get("id", "")), raw=raw))
            elif kind in _TOOL_BLOCKS and index in self._json:
                raw = "".join(self._json[index])
                if raw.strip():
                    try:
                        parsed = json.loads(raw)
                    except ValueError:
                        parsed = None
                    if isinstance(parsed, dict):
                        block["input"] = parsed
                    else:
                        invalid.append(InvalidToolInput(index=index, id=str(block.get("id", "")), raw=raw))
            blocks.append(block)
        snapshot = dict(self._snapshot)
        snapshot["content"] = blocks
        message = Message.model_validate(snapshot)
        message._invalid_tool_inputs = invalid
        message._request_id = self._request_id
        return message
