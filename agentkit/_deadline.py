"""A total deadline for one request attempt: sending, waiting, and reading the whole body or stream.

``timeout`` (httpx2's) bounds each network step (connect, each read, each write), so a server that
keeps sending something (``ping`` events, a body trickled a byte at a time) keeps a request alive for
ever. A :class:`_Deadline` bounds the whole attempt; on expiry the step in progress is cancelled and
:class:`~agentkit.APITimeoutError` is raised.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import NoReturn

import anyio
import httpx2

from ._exceptions import APITimeoutError, ConfigurationError


def check_total_timeout(value: float | None, name: str = "total_timeout") -> float | None:
    """``value`` if it is ``None`` or a positive finite number of seconds, else ConfigurationError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None (no total deadline), got {value!r}"
        )
    return float(value)


class _Deadline:
    """``seconds`` from now (``None``: never). :meth:`guard` runs one step under it."""

    __slots__ = ("_at", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._at = anyio.current_time() + seconds if seconds is not None else math.inf

    @property
    def active(self) -> bool:
        return self.seconds is not None

    @contextmanager
    def guard(self, what: str, request_id: str | None = None) -> Iterator[None]:
        """Run the block; if the deadline passes first, cancel it and raise APITimeoutError."""
        if self.seconds is None:
            yield
            return
        remaining = self._at - anyio.current_time()
        if remaining <= 0:
            self._expired(what, request_id)
        with anyio.move_on_after(remaining) as scope:
            yield
        if scope.cancelled_caught:
            self._expired(what, request_id)

    def _expired(self, what: str, request_id: str | None) -> NoReturn:
        raise APITimeoutError(
            f"{what} did not finish within total_timeout={self.seconds:g}s", request_id=request_id
        )

    def chunks(self, response: httpx2.Response, request_id: str | None) -> AsyncIterator[bytes]:
        """``response.aiter_raw()``, each read under the deadline (the consumer's time counts too)."""
        if response.is_stream_consumed:  # the transport buffered a body that came whole with the head
            try:
                return _Once(response.content)
            except httpx2.ResponseNotRead:
                return _Once(b"")
        raw = response.aiter_raw()
        return raw if self.seconds is None else _Guarded(raw, self, request_id)


class _Guarded:
    """An async iterator of chunks whose every read runs under a deadline (a class, not an async
    generator: nothing is left for the garbage collector to finalise when a stream is abandoned)."""

    __slots__ = ("_deadline", "_raw", "_request_id")

    def __init__(self, raw: AsyncIterator[bytes], deadline: _Deadline, request_id: str | None) -> None:
        self._raw = raw
        self._deadline = deadline
        self._request_id = request_id

    def __aiter__(self) -> _Guarded:
        return self

    async def __anext__(self) -> bytes:
        with self._deadline.guard("the stream", self._request_id):
            return await anext(self._raw)


class _Once:
    """One chunk, as an async iterator."""

    __slots__ = ("_chunk",)

    def __init__(self, chunk: bytes) -> None:
        self._chunk: bytes | None = chunk

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        chunk, self._chunk = self._chunk, None
        if chunk is None:
            raise StopAsyncIteration
        return chunk
