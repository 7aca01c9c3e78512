"""Sans-IO streaming: bytes in, server-sent events out, a complete :class:`Message` at the end.

Nothing here does I/O, so every wire fixture is a plain unit test and chunk boundaries can be
fuzzed. Two layers:

- :class:`SSEDecoder` frames bytes into ``(event, data)`` pairs following the SSE spec: lines end in
  ``\\n``, ``\\r\\n`` or ``\\r``; bytes are split into lines *before* decoding, so a multi-byte character
  split across chunks is fine; comments and unknown fields are ignored; an event not closed by a blank
  line is dropped. Work is linear in the bytes fed (a chunk is scanned once, whatever the length of the
  line it belongs to), and a line or an event larger than :data:`MAX_LINE_BYTES` /
  :data:`MAX_EVENT_BYTES` is a :class:`ProtocolError`, so a hostile stream cannot make it buffer
  without bound.
- :class:`MessageAccumulator` folds Messages-API events into a snapshot and returns the final
  :class:`Message` only once ``message_stop`` arrived. An ``error`` event raises the typed API error;
  a stream that ends early, or an event that is not the documented shape (a block ``index`` out of
  order, a ``delta`` that is not an object, a field of the wrong type...) raises :class:`ProtocolError`.
  Nothing it allocates is sized by a number the server sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

from pydantic import ValidationError

from ._exceptions import ProtocolError, _make_status_error
from ._json import loads
from .types import InvalidToolInput, Message, StreamEvent, _stream_event_adapter

__all__ = ["MAX_EVENT_BYTES", "MAX_LINE_BYTES", "MAX_MESSAGE_BYTES", "MessageAccumulator", "SSEDecoder"]

#: The longest SSE line accepted, in bytes (16 MiB). The largest legitimate lines are one
#: ``content_block_start`` carrying a complete block (a redacted thinking blob, a server tool's result)
#: or one big ``input_json_delta``; real ones are far below this.
MAX_LINE_BYTES = 16 * 2**20
#: The largest ``data`` of one SSE event (its data lines together), in bytes (16 MiB).
MAX_EVENT_BYTES = 16 * 2**20
#: The most event data one streamed Message may carry in total, in bytes (256 MiB; pings excluded).
MAX_MESSAGE_BYTES = 256 * 2**20

_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})
_LF, _CR = 0x0A, 0x0D
# Delta types folded into the block, with the string field each one must carry.
_DELTA_FIELDS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
}
# Top-level fields of ``message_delta`` besides ``delta`` and ``usage`` that update the Message (beta:
# the SDK's beta accumulator copies them when not null).
_MESSAGE_DELTA_FIELDS = ("context_management", "input_transformations")


class SSEDecoder:
    """Incremental SSE framing: ``feed(bytes)`` yields ``(event_name, data)`` for each complete event.

    ``max_line_bytes`` and ``max_event_bytes`` bound what it buffers (defaults :data:`MAX_LINE_BYTES`,
    :data:`MAX_EVENT_BYTES`); past either, ``feed`` raises :class:`ProtocolError`.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_max_event",
        "_max_line",
        "_partial",
        "_partial_size",
        "_request_id",
        "_skip_lf",
    )

    def __init__(
        self,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        request_id: str | None = None,
    ) -> None:
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._request_id = request_id
        self._partial: list[bytes] = []  # pieces of the line not yet terminated
        self._partial_size = 0
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" is its other half
        self._event: str | None = None
        self._data: list[str] = []
        self._data_size = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str]]:
        """Add bytes; yield every event completed by them."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if not chunk:
            return
        # Only this chunk is scanned: the pending start of a line is kept in pieces, joined once.
        lines = chunk.splitlines(keepends=True)
        last = lines[-1]
        tail = last[-1]
        complete = tail in (_LF, _CR)
        if complete:
            self._skip_lf = tail == _CR
        else:
            lines.pop()
        if lines and self._partial:
            lines[0] = b"".join(self._partial) + lines[0]
            self._partial, self._partial_size = [], 0
            if len(lines[0]) > self._max_line:
                self._check(lines[0])
        if not complete:
            self._hold(last)
        if len(chunk) > self._max_line:  # only then can a line of this chunk be too long
            for raw in lines:
                self._check(raw)
        for raw in lines:
            event = self._line(raw)
            if event is not None:
                yield event

    def flush(self) -> Iterator[tuple[str, str]]:
        """End of input: an event (or line) without its terminator is dropped, as the SSE spec requires."""
        self._partial, self._partial_size, self._skip_lf = [], 0, False
        self._event, self._data, self._data_size = None, [], 0
        yield from ()

    def _hold(self, piece: bytes) -> None:
        self._partial_size += len(piece)
        if self._partial_size > self._max_line:
            self._too_long()
        self._partial.append(piece)

    def _check(self, raw: bytes) -> None:
        if len(raw.rstrip(b"\r\n")) > self._max_line:
            self._too_long()

    def _too_long(self) -> NoReturn:
        raise ProtocolError(
            f"an SSE line is longer than {self._max_line} bytes (agentkit._sse.MAX_LINE_BYTES); "
            "the stream is not a Messages API event stream",
            request_id=self._request_id,
            error_type="sse_line_too_long",
        )

    def _line(self, raw: bytes) -> tuple[str, str] | None:
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if not line:
            if not self._data:
                self._event = None
                return None
            event = (self._event or "message", "\n".join(self._data))
            self._event, self._data, self._data_size = None, [], 0
            return event
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            size = self._data_size = self._data_size + len(value) + 1 if self._data else len(value)
            if size > self._max_event:
                raise ProtocolError(
                    f"an SSE event's data is larger than {self._max_event} bytes "
                    "(agentkit._sse.MAX_EVENT_BYTES)",
                    request_id=self._request_id,
                    error_type="sse_event_too_large",
                )
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def typed_event(payload: dict[str, Any], request_id: str | None = None) -> StreamEvent:
    """A payload the accumulator took, as a typed :data:`StreamEvent` (``ProtocolError`` if malformed)."""
    try:
        return _stream_event_adapter.validate_python(payload)
    except (ValidationError, RecursionError) as exc:
        raise ProtocolError(
            f"malformed {payload.get('type')!r} event: {_first_error(exc)}",
            request_id=request_id,
            error_type="malformed_event",
        ) from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return f"{where}: {first.get('msg')}{more}"
    return type(exc).__name__


class MessageAccumulator:
    """Folds stream events (JSON dicts) into a :class:`Message`.

    ``feed(event)`` folds one event in; ``message()`` returns the final Message once ``message_stop``
    was seen and raises :class:`ProtocolError` otherwise. An event that is not the documented shape is
    a :class:`ProtocolError` (``error_type="malformed_event"``) at the event, before anything is
    allocated for it: block indexes must come in order (0, 1, 2, ...), deltas and stops must name a
    block that started, and fields have their documented JSON types.
    """

    __slots__ = (
        "_blocks",
        "_done",
        "_json",
        "_max_bytes",
        "_opened",
        "_parts",
        "_request_id",
        "_size",
        "_snapshot",
        "_stopped",
    )

    def __init__(self, request_id: str | None = None, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._blocks: list[dict[str, Any]] = []
        self._parts: dict[int, list[str]] = {}  # text/thinking deltas, joined at the end
        self._json: dict[int, list[str]] = {}  # input_json_delta buffers
        self._opened: set[int] = set()  # blocks that came by content_block_start
        self._stopped: set[int] = set()
        self._done = False
        self._request_id = request_id
        self._size = 0
        self._max_bytes = max_message_bytes

    @property
    def done(self) -> bool:
        """True once ``message_stop`` arrived."""
        return self._done

    def feed_sse(self, event: str, data: str) -> dict[str, Any] | None:
        """Parse one SSE event's data and fold it in; returns the parsed payload (None if ignored)."""
        if data == "[DONE]":  # removed in 2023-06-01; some proxies still send it
            return None
        if event != "ping":
            self._size += len(data)
            if self._size > self._max_bytes:
                raise ProtocolError(
                    f"the streamed Message is larger than {self._max_bytes} bytes "
                    "(agentkit._sse.MAX_MESSAGE_BYTES)",
                    request_id=self._request_id,
                    error_type="message_too_large",
                )
        try:
            payload = loads(data)
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
        if not isinstance(payload, dict):
            self._malformed("an event", f"is a {type(payload).__name__}, not an object")
        kind = payload.get("type")
        if kind == "content_block_delta":
            self._delta(payload)
        elif kind == "content_block_start":
            self._require_start(kind)
            index = self._index(payload, kind)
            if index != len(self._blocks):
                self._malformed(kind, f"has index {index}; the next block is {len(self._blocks)}")
            block = self._object(payload, "content_block", kind)
            if not isinstance(block.get("type"), str):
                self._malformed(kind, "has a content_block without a string 'type'")
            self._blocks.append(dict(block))
            self._opened.add(index)
            if block["type"] == "fallback":  # beta: the Message's model is the model that answered
                target = block.get("to")
                if isinstance(target, dict) and isinstance(target.get("model"), str):
                    snap = self._require_start(kind)
                    snap["model"] = target["model"]
        elif kind == "content_block_stop":
            self._require_start(kind)
            self._stopped.add(self._known_index(payload, kind))
        elif kind == "message_start":
            if self._snapshot is not None:
                self._malformed(kind, "arrived twice")
            message = self._object(payload, "message", kind)
            usage = message.get("usage")
            if usage is not None and not isinstance(usage, dict):
                self._malformed(kind, "has a message.usage that is not an object")
            content = message.get("content")
            if content is None:
                content = []
            if not isinstance(content, list) or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in content
            ):
                self._malformed(kind, "has a message.content that is not a list of blocks")
            self._snapshot = dict(message)
            self._snapshot["usage"] = dict(usage or {})
            self._blocks = [dict(b) for b in content]
        elif kind == "message_delta":
            snap = self._require_start(kind)
            delta = payload.get("delta")
            if delta is not None:
                if not isinstance(delta, dict):
                    self._malformed(kind, "has a delta that is not an object")
                for key in ("content", "usage"):
                    if key in delta:
                        self._malformed(kind, f"may not replace the message's {key!r}")
                snap.update(delta)
            for key in _MESSAGE_DELTA_FIELDS:  # beta fields beside the delta, kept when present
                if payload.get(key) is not None:
                    snap[key] = payload[key]
            usage = payload.get("usage")
            if usage is not None:
                if not isinstance(usage, dict):
                    self._malformed(kind, "has a usage that is not an object")
                target = snap["usage"]
                for key, value in usage.items():
                    if value is not None:
                        target[key] = value
        elif kind == "message_stop":
            self._require_start(kind)
            self._done = True
        elif kind == "error":
            raise _make_status_error(
                status=200,
                body={"error": payload.get("error"), "request_id": payload.get("request_id")},
                request_id=self._request_id,
                prefer_type=True,
            )
        elif not isinstance(kind, str):
            self._malformed("an event", f"has a 'type' that is not a string ({type(kind).__name__})")
        # ping and unknown event types: nothing to do

    def _malformed(self, kind: str, problem: str) -> NoReturn:
        raise ProtocolError(
            f"malformed stream: {kind} {problem}", request_id=self._request_id, error_type="malformed_event"
        )

    def _require_start(self, kind: str) -> dict[str, Any]:
        if self._snapshot is None:
            raise ProtocolError(
                f"{kind} before message_start", request_id=self._request_id, error_type="malformed_event"
            )
        return self._snapshot

    def _index(self, payload: dict[str, Any], kind: str) -> int:
        index = payload.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            self._malformed(kind, f"has index {index!r}; expected a block number (0, 1, ...)")
        return int(index)

    def _known_index(self, payload: dict[str, Any], kind: str) -> int:
        index = self._index(payload, kind)
        if not 0 <= index < len(self._blocks):
            self._malformed(kind, f"names block {index}, which never started")
        return index

    def _object(self, payload: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
        value = payload.get(key)
        if not isinstance(value, dict):
            self._malformed(kind, f"has a {key!r} that is not an object")
        return value

    def _delta(self, payload: dict[str, Any]) -> None:
        kind = "content_block_delta"
        index = payload.get("index")
        # The hot path (a valid delta) is checked inline; anything else gets the named error below.
        if type(index) is not int or not 0 <= index < len(self._blocks):
            self._require_start(kind)
            index = self._known_index(payload, kind)
        delta = payload.get("delta")
        if type(delta) is not dict:
            delta = self._object(payload, "delta", kind)
        dkind = delta.get("type")
        field = _DELTA_FIELDS.get(dkind) if isinstance(dkind, str) else None
        if field is not None:
            value = delta.get(field)
            if not isinstance(value, str):
                self._malformed(kind, f"has a {dkind} whose {field!r} is not a string")
            if dkind == "input_json_delta":
                self._json.setdefault(index, []).append(value)
            elif dkind == "signature_delta":
                self._blocks[index]["signature"] = value
            else:
                self._parts.setdefault(index, []).append(value)
        elif dkind == "citations_delta":
            citation = delta.get("citation")
            if not isinstance(citation, dict):
                self._malformed(kind, "has a citations_delta whose 'citation' is not an object")
            block = self._blocks[index]
            citations = block.get("citations")
            if not isinstance(citations, list):
                citations = block["citations"] = []
            citations.append(citation)
        elif dkind == "compaction_delta":  # beta: the delta carries the block's whole content
            block = self._blocks[index]
            if block.get("type") == "compaction":
                for key in ("content", "encrypted_content"):
                    value = delta.get(key)
                    if value is not None and not isinstance(value, str):
                        self._malformed(kind, f"has a compaction_delta whose {key!r} is not a string")
                    block[key] = value
        elif not isinstance(dkind, str):
            self._malformed(kind, "has a delta without a string 'type'")
        # unknown delta types are ignored

    def partial_json(self, index: int) -> str:
        """The tool input JSON received so far for block ``index`` (for live UIs)."""
        return "".join(self._json.get(index, ()))

    def text_so_far(self, index: int) -> str:
        """The text (or thinking) received so far for block ``index``."""
        return "".join(self._parts.get(index, ()))

    def message(self) -> Message:
        """The accumulated Message. Raises :class:`ProtocolError` if ``message_stop`` never came, or if
        the result is not a valid Message (a missing ``id``, negative usage...)."""
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
                start = block.get(field)
                block[field] = (start if isinstance(start, str) else "") + "".join(parts)
            if kind in _TOOL_BLOCKS and index in self._opened and index not in self._stopped:
                # No content_block_stop (cut by max_tokens): the call is incomplete even if the
                # JSON so far parses; it keeps the start's input and is never run.
                raw = "".join(self._json.get(index, ()))
                invalid.append(InvalidToolInput(index=index, id=str(block.get("id", "")), raw=raw))
            elif kind in _TOOL_BLOCKS and index in self._json:
                raw = "".join(self._json[index])
                if raw.strip():
                    try:
                        parsed = loads(raw)
                    except ValueError:
                        parsed = None
                    if isinstance(parsed, dict):
                        block["input"] = parsed
                    else:
                        invalid.append(InvalidToolInput(index=index, id=str(block.get("id", "")), raw=raw))
            blocks.append(block)
        snapshot = dict(self._snapshot)
        snapshot["content"] = blocks
        try:
            message = Message.model_validate(snapshot)
        except (ValidationError, RecursionError) as exc:
            raise ProtocolError(
                f"the streamed Message is malformed: {_first_error(exc)}",
                request_id=self._request_id,
                error_type="malformed_event",
            ) from exc
        message._invalid_tool_inputs = invalid
        message._request_id = self._request_id
        return message
