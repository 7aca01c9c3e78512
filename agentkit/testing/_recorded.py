"""How :class:`LocalServer` records a request's credentials: redacted, yet still comparable.

A test wants to know which header carried the key and whether it was the right one; nobody wants the
key itself in a recorded request, its repr or a failing assertion's output. So a credential header
is recorded as a :class:`RedactedHeader`: a ``str`` that reads ``[redacted]`` (``Bearer [redacted]``
keeps the auth scheme) but compares equal to the value that was sent, by a salted SHA-256 digest
(the salt is per process and never stored on the value).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from .._secrets import _is_secret_header

__all__ = ["RedactedHeader", "redact_headers"]

_SALT = secrets.token_bytes(16)
_SCHEMES = frozenset({"bearer", "basic", "digest", "token"})


def _digest(value: str) -> bytes:
    return hmac.new(_SALT, value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()


class RedactedHeader(str):
    """A credential header as recorded: reads ``[redacted]``, compares equal to the value sent.

    ``recorded == "Bearer sk-..."`` is true exactly when that was the value; ``str``, ``repr`` and
    JSON show only ``[redacted]`` (after the auth scheme, for ``Authorization``-style values).
    """

    _digest: bytes

    def __new__(cls, shown: str, digest: bytes) -> RedactedHeader:
        self = super().__new__(cls, shown)
        self._digest = digest
        return self

    @classmethod
    def of(cls, value: str) -> RedactedHeader:
        """Redact ``value`` (a header value as received)."""
        scheme, sep, _ = value.partition(" ")
        shown = f"{scheme} [redacted]" if sep and scheme.lower() in _SCHEMES else "[redacted]"
        return cls(shown, _digest(value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RedactedHeader):
            return hmac.compare_digest(self._digest, other._digest)
        if isinstance(other, str):
            return hmac.compare_digest(self._digest, _digest(other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self._digest)

    def __getnewargs__(self) -> tuple[Any, ...]:  # copy and pickle keep the digest
        return (str(self), self._digest)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of lower-cased ``headers`` with every credential header redacted (``x-api-key``,
    ``authorization``, ``proxy-authorization``, ``cookie``, and any whose name says key, token,
    secret, auth or password)."""
    return {k: RedactedHeader.of(v) if _is_secret_header(k) else v for k, v in headers.items()}
