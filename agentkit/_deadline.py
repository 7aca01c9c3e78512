"""A total deadline for one request attempt: sending, waiting, and reading the whole body or stream.

``timeout`` (httpx2's) bounds each network step (connect, each read, each write), so a server that
keeps sending something (``ping`` events, a body trickled a byte at a time) keeps a request alive for
ever. A :class:`_Deadline` bounds the whole attempt; on expiry the step in progress is cancelled and
:class:`~agentkit.APITimeoutError` is raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import anyio

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
