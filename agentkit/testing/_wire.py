"""Wire encoding for the local server: ids, Message defaults, SSE events, error bodies, HTTP framing.

Pure functions (no I/O), so they are cheap to test and cheap per request.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "complete_message",
    "error_body",
    "estimate_tokens",
    "message_events",
    "new_id",
    "sign_thinking",
    "sse_event",
    "verify_signature",
]


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# One prebuilt C encoder: ``json.dumps`` rebuilds it on every call, which dominated per-event CPU.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode: Any = (
    _c_make_encoder(None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    if _c_make_encoder is not None
    else None
)


def _dumps(value: Any) -> str:
    if _encode is not None:
        return "".join(_encode(value, 0))
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # pragma: no cover


_SIGNATURE_PREFIX = "AKsig"


_ID_PREFIX = base64.b32encode(os.urandom(10)).decode("ascii")
_id_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    """A unique id shaped like the API's (``msg_01…``, ``toolu_01…``, ``req_01…``): cheap, never repeats."""
    return f"{prefix}01{_ID_PREFIX}{next(_id_counter):08X}"


def estimate_tokens(n_chars: int) -> int:
    """A cheap deterministic token estimate: about four characters per token, at least one."""
    return max(1, n_chars // 4)


def sign_thinking(thinking: str) -> str:
    """The signature the local server gives a thinking block: a hash of its text (detects edits)."""
    digest = hashlib.sha256(b"agentkit-local-thinking\x00" + thinking.encode("utf-8")).digest()
    return _SIGNATURE_PREFIX + base64.b64encode(digest).decode("ascii")


def verify_signature(thinking: str, signature: str) -> bool:
    """False only for a signature made by :func:`sign_thinking` for different text; others are trusted."""
    if not signature.startswith(_SIGNATURE_PREFIX):
        return True
    return signature == sign_thinking(thinking)


def complete_message(message: Mapping[str, Any], *, model: str, input_tokens: int) -> dict[str, Any]:
    """Fill in what a Message dict leaves out: id, type, role, model, stop_reason, stop_sequence, usage.

    ``stop_reason`` defaults to ``tool_use`` when the content has a ``tool_use`` block, else ``end_turn``;
    usage defaults to ``input_tokens`` and an output estimate from the content size. Given fields win.
    """
    content = list(message.get("content") or [])
    out: dict[str, Any] = {
        "id": message.get("id") or new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": message.get("model") or model,
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
    }
    for key, value in message.items():
        if key not in out or key == "stop_reason" or key == "stop_sequence":
            out[key] = value
    out["content"] = content
    if out.get("stop_reason") is None:
        has_tool = any(isinstance(b, Mapping) and b.get("type") == "tool_use" for b in content)
        out["stop_reason"] = "tool_use" if has_tool else "end_turn"
    usage = dict(message.get("usage") or {})
    usage.setdefault("input_tokens", input_tokens)
    if "output_tokens" not in usage:
        usage["output_tokens"] = estimate_tokens(len(_dumps(content))) if content else 1
    out["usage"] = usage
    return out


def sse_event(name: str, payload: Mapping[str, Any]) -> bytes:
    """One SSE event as the API frames it: ``event: NAME\\ndata: JSON\\n\\n``."""
    return b"event: " + name.encode("ascii") + b"\ndata: " + _dumps(payload).encode("utf-8") + b"\n\n"


def _chunks(text: str, pieces: int) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty slices (whole code points)."""
    if not text:
        return []
    pieces = max(1, min(pieces, len(text)))
    size = -(-len(text) // pieces)
    return [text[k : k + size] for k in range(0, len(text), size)]


def _text_pieces(text: str) -> int:
    return min(4, max(1, len(text) // 8))


def message_events(
    message: Mapping[str, Any],
    *,
    partial_json: Mapping[int, str] | None = None,
    close_cut_blocks: bool = False,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(event_name, payload)`` for streaming a complete Message exactly like the API.

    ``message_start`` (content ``[]``, ``stop_reason: null``, ``output_tokens: 1``), a ``ping``, then per
    block ``content_block_start`` → deltas → ``content_block_stop``, ``message_delta`` (stop reason and
    the full usage) and ``message_stop``. Text and thinking come in a few deltas; tool input as
    ``input_json_delta`` chunks starting with ``""``; thinking ends with a ``signature_delta``;
    ``redacted_thinking`` and unknown blocks arrive whole in ``content_block_start``.

    ``partial_json`` maps a block index to raw (possibly invalid) JSON streamed instead of the block's
    input, as when ``max_tokens`` cuts a call; such a block gets no ``content_block_stop`` unless
    ``close_cut_blocks``.
    """
    usage = dict(message.get("usage") or {})
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 1
    head = {k: v for k, v in message.items() if k not in ("content", "usage")}
    head["content"] = []
    head["stop_reason"] = None
    head["stop_sequence"] = None
    head["usage"] = start_usage
    yield "message_start", {"type": "message_start", "message": head}
    yield "ping", {"type": "ping"}
    cut = partial_json or {}
    for index, block in enumerate(message.get("content") or []):
        btype = block.get("type")
        if btype == "text":
            start = {k: v for k, v in block.items() if k != "citations"}
            text = block.get("text") or ""
            yield _block_start(index, {**start, "text": ""})
            for piece in _chunks(text, _text_pieces(text)):
                yield _block_delta(index, {"type": "text_delta", "text": piece})
            for citation in block.get("citations") or ():  # §9: citations_delta appends to citations
                yield _block_delta(index, {"type": "citations_delta", "citation": citation})
        elif btype in ("tool_use", "server_tool_use"):
            yield _block_start(index, {**block, "input": {}})
            if index in cut:
                raw = cut[index]
            else:
                value = block.get("input") or {}
                raw = _dumps(value) if value else ""
            for piece in ["", *_chunks(raw, 4 if len(raw) > 12 else 1)]:
                yield _block_delta(index, {"type": "input_json_delta", "partial_json": piece})
            if index in cut and not close_cut_blocks:
                continue
        elif btype == "thinking":
            thinking = block.get("thinking") or ""
            yield _block_start(index, {**block, "thinking": "", "signature": ""})
            for piece in _chunks(thinking, _text_pieces(thinking)):
                yield _block_delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _block_delta(index, {"type": "signature_delta", "signature": block.get("signature") or ""})
        elif btype == "compaction":  # beta: the start carries nulls, one compaction_delta fills them
            yield _block_start(index, {**block, "content": None, "encrypted_content": None})
            fill = {k: block.get(k) for k in ("content", "encrypted_content")}
            yield _block_delta(index, {"type": "compaction_delta", **fill})
        else:  # redacted_thinking, server tool results, anything else: whole in the start event
            yield _block_start(index, block)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    delta: dict[str, Any] = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    if "stop_details" in message:
        delta["stop_details"] = message["stop_details"]
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
    yield "message_stop", {"type": "message_stop"}


def _block_start(index: int, block: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def _block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def error_body(
    error_type: str, message: str, request_id: str, error_code: str | None = None
) -> dict[str, Any]:
    """The API's error body: ``{"type":"error","error":{"type","message"[,"details"]},"request_id"}``."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": request_id}


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _dumps(value).encode("utf-8")
