"""What the client and its streams share on the wire: the request body encoded, transport failures
as typed errors, and an answer decoded (status errors, PoYo-style envelopes, the Message)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2

from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ProtocolError,
    _make_status_error,
)
from ._json import loads
from ._retry import classify, parse_retry_after
from ._secrets import _forget_locals
from .types import InvalidToolInput, Message


@asynccontextmanager
async def _transport_errors(url: str) -> AsyncIterator[None]:
    """httpx transport failures as agentkit's typed (retryable) connection errors."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        _forget_locals(exc)
        raise APITimeoutError(f"no answer from {url} within the timeout") from exc
    except httpx2.TransportError as exc:
        _forget_locals(exc)
        raise APIConnectionError(f"connection to {url} failed: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:  # a TLS alert or socket error the stack did not wrap (ssl.SSLError included)
        _forget_locals(exc)
        raise APIConnectionError(f"connection to {url} failed: {type(exc).__name__}: {exc}") from exc
    except httpx2.DecodingError as exc:
        _forget_locals(exc)
        raise ProtocolError(f"the answer from {url} could not be decoded (Content-Encoding): {exc}") from exc
    except BaseException as exc:  # a cancellation (the caller's deadline) passed through those frames too
        _forget_locals(exc)
        raise


def _encode(body: Mapping[str, Any]) -> bytes:
    """A request body as compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _request_id(response: httpx2.Response | None) -> str | None:
    return response.headers.get("request-id") if response is not None else None


def _status_error(response: httpx2.Response, raw: bytes) -> APIStatusError:
    try:
        body: Any = loads(raw) if raw else None
    except ValueError:
        body = raw[:500].decode("utf-8", "replace")
    if isinstance(body, dict) and "error" not in body:  # an envelope-style error ({"code", "message"/"msg"})
        text = body.get("message") or body.get("msg")
        if isinstance(text, str):
            body = {"error": {"message": text}}
    error = _make_status_error(
        status=response.status_code,
        body=body,
        request_id=_request_id(response),
        retry_after=parse_retry_after(response.headers),
    )
    classify(error, response.status_code, response.headers)
    return error


def _unwrap_envelope(data: Any, response: httpx2.Response) -> Any:
    """PoYo-style ``{"code": 200, "data": {...}}``: unwrap it; a non-200 code is a typed error."""
    if isinstance(data, dict) and "code" in data and "data" in data and data.get("type") != "message":
        code = data.get("code")
        inner = data.get("data")
        if code == 200 and inner is not None:
            return inner
        message = data.get("message") or data.get("msg") or f"envelope code {code}"
        status = code if isinstance(code, int) else None
        if isinstance(inner, dict) and isinstance(inner.get("error"), dict):
            body: Any = inner
        else:
            body = {"error": {"message": str(message)}}
        raise _make_status_error(
            status=status if status and status >= 400 else 500, body=body, request_id=_request_id(response)
        )
    return data


def _parse_message(data: Any, response: httpx2.Response) -> Message:
    if not isinstance(data, dict) or data.get("type") not in (None, "message") or "content" not in data:
        if isinstance(data, dict) and data.get("type") == "error":
            raise _make_status_error(status=response.status_code, body=data, request_id=_request_id(response))
        raise ProtocolError(
            "the answer is not a Message (no content); is base_url a Messages API endpoint?",
            request_id=_request_id(response),
        )
    invalid = _isolate_invalid_tool_inputs(data)
    try:
        message = Message.model_validate(data)
    except ValueError as exc:
        raise ProtocolError(f"malformed Message: {exc}", request_id=_request_id(response)) from exc
    message._invalid_tool_inputs = invalid
    message._request_id = _request_id(response)
    return message


def _isolate_invalid_tool_inputs(data: dict[str, Any]) -> list[InvalidToolInput]:
    """A ``tool_use`` whose ``input`` is not an object must not sink the whole Message: it keeps
    ``input: {}`` (so the history stays valid), is flagged, and is never run."""
    invalid: list[InvalidToolInput] = []
    content = data.get("content")
    if not isinstance(content, list):
        return invalid
    for index, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use"):
            value = block.get("input", {})
            if not isinstance(value, dict):
                raw = json.dumps(value, ensure_ascii=False)
                content[index] = {**block, "input": {}}
                invalid.append(InvalidToolInput(index=index, id=str(block.get("id", "")), raw=raw))
    return invalid
