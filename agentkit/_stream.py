"""``MessageStream``: a streaming Messages request, opened through the client's retries, its SSE
decoded and accumulated into the final Message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx2

from ._deadline import _Deadline
from ._exceptions import APIConnectionError, APITimeoutError, ProtocolError
from ._http import decoded_chunks, read_capped
from ._json import loads
from ._response import (
    _encode,
    _parse_message,
    _request_id,
    _status_error,
    _transport_errors,
    _unwrap_envelope,
)
from ._secrets import _forget_locals
from ._sse import MessageAccumulator, SSEDecoder, typed_event
from .types import Message, StreamEvent

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["MessageStream"]


class MessageStream:
    """A streaming response: iterate typed :data:`StreamEvent` objects, then read :attr:`message`.

    Retries happen only until the HTTP response arrives; once events have been delivered an error
    is raised, never silently re-sent.
    """

    def __init__(
        self,
        client: Client,
        body: dict[str, Any],
        extra_headers: Mapping[str, str] | None,
        timeout: float | httpx2.Timeout | None,
        *,
        total_timeout: float | None = None,
    ) -> None:
        self._client = client
        self._body = body
        self._extra_headers = extra_headers
        self._timeout = timeout
        self._total_timeout = total_timeout
        self._deadline = _Deadline(None)
        self._response: httpx2.Response | None = None
        self._accumulator: MessageAccumulator | None = None
        self._message: Message | None = None
        self._iterated = False

    @property
    def request_id(self) -> str | None:
        """The ``request-id`` of the response, once it arrived."""
        return _request_id(self._response) if self._response is not None else None

    @property
    def accumulator(self) -> MessageAccumulator:
        """The live accumulator (partial text and tool JSON while streaming)."""
        if self._accumulator is None:
            raise RuntimeError("the stream has not started; use `async with client.stream(...)`")
        return self._accumulator

    @property
    def message(self) -> Message:
        """The final Message; available after the events were consumed."""
        if self._message is None:
            raise RuntimeError("the stream is not finished; iterate it or await final_message()")
        return self._message

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the connection."""
        if self._response is not None:
            await self._response.aclose()

    async def _open(self) -> None:
        client = self._client
        content = _encode(self._body)
        url = client.base_url + "/v1/messages"

        async def attempt(number: int) -> None:
            headers = client._headers_for(number, self._extra_headers)
            headers["accept"] = "text/event-stream"
            self._deadline = deadline = _Deadline(self._total_timeout)
            with deadline.guard(f"the request to {url}"):
                async with _transport_errors(url):
                    response = await client._send("/v1/messages", content, headers, self._timeout)
            if response.status_code < 400 and _is_event_stream(response):
                self._response = response
                self._accumulator = MessageAccumulator(_request_id(response))
                return
            with deadline.guard(f"the request to {url}", _request_id(response)):
                async with _transport_errors(url):
                    raw = await read_capped(response, client.max_response_bytes)
            if response.status_code >= 400:
                raise _status_error(response, raw)
            # A 200 that is not SSE: a proxy answering JSON (maybe an envelope) to a stream request.
            if not raw:
                raise ProtocolError(
                    f"expected an event stream from {url}, got an empty {response.status_code} answer",
                    request_id=_request_id(response),
                )
            try:
                data = loads(raw)
            except ValueError as exc:
                raise ProtocolError(
                    f"expected an event stream from {url}, got invalid JSON: {exc}",
                    request_id=_request_id(response),
                ) from exc
            message = _parse_message(_unwrap_envelope(data, response), response)
            self._response = response
            self._accumulator = MessageAccumulator(_request_id(response))
            self._message = message

        await client._with_retries(attempt, stream=True)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._typed_events()

    async def _typed_events(self) -> AsyncIterator[StreamEvent]:
        async for payload in self.raw_events():
            yield typed_event(payload, self.request_id)

    async def raw_events(self) -> AsyncIterator[dict[str, Any]]:
        """The events as JSON dicts (cheaper than typed events); the Message accumulates either way."""
        if self._iterated:
            raise RuntimeError("a stream can be iterated only once")
        self._iterated = True
        if self._response is None:
            await self._open()
        if self._message is not None:  # non-SSE fallback: nothing to stream
            return
        response = self._response
        accumulator = self._accumulator
        assert response is not None
        assert accumulator is not None
        decoder = SSEDecoder(request_id=self.request_id)
        try:
            chunks = decoded_chunks(
                response, self._client.max_response_bytes, self._deadline, self.request_id
            )
            async for chunk in chunks:
                for event, data in decoder.feed(chunk):
                    payload = accumulator.feed_sse(event, data)
                    if payload is not None:
                        yield payload
        except httpx2.TimeoutException as exc:
            _forget_locals(exc)
            raise APITimeoutError(
                "the stream stalled past the read timeout", request_id=self.request_id
            ) from exc
        except (httpx2.TransportError, OSError) as exc:
            _forget_locals(exc)
            raise APIConnectionError(
                f"the stream broke before message_stop: {type(exc).__name__}", request_id=self.request_id
            ) from exc
        except httpx2.DecodingError as exc:
            raise ProtocolError(
                f"the stream's Content-Encoding could not be decoded: {exc}", request_id=self.request_id
            ) from exc
        for event, data in decoder.flush():
            payload = accumulator.feed_sse(event, data)
            if payload is not None:
                yield payload
        self._message = accumulator.message()

    async def final_message(self) -> Message:
        """Consume the remaining events (if any) and return the accumulated Message."""
        if self._message is None:
            if not self._iterated:
                async for _ in self.raw_events():
                    pass
            else:
                raise RuntimeError("the stream was not consumed to the end")
        return self.message


def _is_event_stream(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")
