"""Holding the API key so that nothing renders it: the key, the headers of a request, the traces an
HTTP failure leaves behind (frame locals, the request an httpx2 error carries)."""

from __future__ import annotations

import traceback
from typing import Any

import httpx2


class _Secret:
    """Holds the API key: its repr, str and format never show it; it is not picklable; copies share it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<secret>"

    def __reduce__(self) -> Any:
        raise TypeError("an agentkit secret (the API key) cannot be pickled: give the key to a new Client")

    def __copy__(self) -> _Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Secret:
        return self


# Headers whose values are credentials: never rendered (a traceback's locals are rendered with repr).
# Besides the standard ones, any header whose name says so (x-goog-api-key, x-auth-token, ...).
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
_SECRET_HEADER_WORDS = ("key", "token", "secret", "auth", "cookie", "passw")


def _is_secret_header(name: str) -> bool:
    """Whether a header (by name) carries a credential."""
    name = name.lower()
    return name in _SECRET_HEADERS or any(word in name for word in _SECRET_HEADER_WORDS)


class _Headers(dict[str, str]):
    """The headers of one request: a plain dict for httpx2, whose repr masks the credentials."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr({k: "[redacted]" if _is_secret_header(k) else v for k, v in self.items()})

    __str__ = __repr__


def _forget_locals(error: BaseException) -> None:
    """Clear what in ``error`` and its causes could render the key: the locals of their finished
    frames, and the request attached to an httpx2 error (replaced by a copy with credentials masked).

    A transport failure is raised deep in the HTTP stack, whose frames hold the request's raw head
    (the key included): a traceback rendered with its locals (error trackers do that) must not show
    them. File and line of each frame stay.
    """
    seen: set[int] = set()
    chain: BaseException | None = error
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        traceback.clear_frames(chain.__traceback__)
        request = getattr(chain, "_request", None)
        if isinstance(request, httpx2.Request) and isinstance(chain, httpx2.RequestError):
            headers = request.headers.multi_items()
            masked = [(k, "[redacted]" if _is_secret_header(k) else v) for k, v in headers]
            chain.request = httpx2.Request(request.method, request.url, headers=masked)
        chain = chain.__cause__ or chain.__context__
