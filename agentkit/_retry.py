"""The retry policy: which failures are retried, how ``retry-after`` is read and capped, the backoff.

It follows the official SDK's rule: a server-advertised delay (``retry-after-ms``, else ``retry-after``
in seconds or as an HTTP date) is obeyed when it is more than 0 and at most :data:`MAX_RETRY_AFTER`
(60 s); otherwise (absent, unparsable, zero, negative, not finite, or longer than the cap) the normal
exponential backoff with jitter is used. Nothing here raises on a hostile header.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

from ._exceptions import APIConnectionError, APIStatusError

#: The longest ``retry-after`` honoured, in seconds; a longer one falls back to the normal backoff.
MAX_RETRY_AFTER = 60.0
#: Statuses below 500 that are retried (request timeout, lock conflict, rate limit).
RETRY_STATUS = frozenset({408, 409, 429})


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an
    HTTP date); ``None`` when absent or unparsable. Never raises; the result is finite."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        when = parsed.timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return when - time.time() if math.isfinite(when) else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def classify(error: APIStatusError, status: int, headers: Mapping[str, str]) -> None:
    """Set ``error.retryable``: ``x-should-retry`` wins, then a spend limit is final, then the status."""
    should = headers.get("x-should-retry")
    if should in ("true", "false"):
        error.retryable = should == "true"
    elif error.error_code == "enforced_spend_limit_reached":
        error.retryable = False
    elif status in RETRY_STATUS or status >= 500:
        error.retryable = True


def should_retry(error: Exception) -> bool:
    """Connection failures (timeouts included) and errors marked retryable."""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, APIStatusError):
        return error.retryable
    return False


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff for retry ``attempt`` (0-based), capped at ``maximum``, minus up to 25% jitter."""
    return min(initial * 2.0 ** min(attempt, 64), maximum) * (1 - 0.25 * random.random())


def retry_delay(
    error: Exception, attempt: int, max_retries: int, *, initial: float, maximum: float
) -> float | None:
    """Seconds to wait before retrying ``error`` after ``attempt`` retries, or ``None`` to give up."""
    if attempt >= max_retries or not should_retry(error):
        return None
    advertised = error.retry_after if isinstance(error, APIStatusError) else None
    if advertised is not None and 0 < advertised <= MAX_RETRY_AFTER:
        return advertised
    return backoff(attempt, initial, maximum)
