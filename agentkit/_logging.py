"""Tracing with structlog: a one-call setup for applications and a secret-redacting processor.

Importing agentkit configures nothing: the library only calls ``structlog.get_logger()``. An
application calls :func:`configure_logging` once (pretty console in development, JSON lines in
production), or wires :func:`redact_secrets` into its own structlog chain.

Redaction: every key given to a ``Client`` is registered; any run of 12 of its characters is redacted
wherever it appears (a truncated rendering leaks a prefix), and credentials of known shapes are
redacted unregistered. Console tracebacks are rendered without frame locals.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

# structlog is imported by the functions that use it, not with agentkit: ``import structlog`` imports
# ``structlog.dev``, which imports rich when it is installed (~50 ms of ``import agentkit``). The first
# ``get_logger`` (an Agent's constructor) pays it, not a request.

__all__ = ["configure_logging", "get_logger", "redact_secrets"]

_REDACTED = "[redacted]"
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "api-key",
        "apikey",
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
    }
)
# Credentials of known shapes, even when nobody registered them. Each rule runs only on text that
# contains one of its hints (lower-cased; a few ``in`` tests, in C), so a clean line costs no regex.
# A rule keeps its group 1 (a field's name, an auth scheme) and redacts the rest of the match.
_TOKEN = r"[A-Za-z0-9_\-]"
_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # sk-… keys: Anthropic (sk-ant-…), OpenAI project keys (sk-proj-…), most gateways
    (("sk-",), re.compile(rf"()(?<![A-Za-z0-9])sk-{_TOKEN}{{16,}}")),
    # JWTs (header.payload[.signature]), as bearer tokens and gateway keys are
    (("eyj",), re.compile(rf"()(?<!{_TOKEN})eyJ{_TOKEN}{{8,}}\.{_TOKEN}{{8,}}(?:\.{_TOKEN}+)?")),
    # the token after Bearer
    (("bearer",), re.compile(r"(?i)(bearer\s+)(?!\[redacted)[A-Za-z0-9._~+/\-]{8,}=*")),
    # a cookie header's whole value
    (
        ("cookie",),
        re.compile(r"(?i)((?<![A-Za-z0-9_\-])(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)(?!\[redacted)[^\"'\r\n]+"),
    ),
    # the value of an auth-like field: x-api-key: …, 'authorization': 'Basic …', "password"="…", api_key=…
    (
        ("api-key", "api_key", "apikey", "authorization", "passw", "secret", "access", "refresh"),
        re.compile(
            r"(?i)((?<![A-Za-z0-9_\-])(?:x-)?(?:api[-_]?key|(?:proxy-)?authorization|passw(?:or)?d"
            r"|(?:client[-_])?secret|(?:access|refresh)[-_]token)[\"']?\s*[:=]\s*(?:b(?=[\"']))?[\"']?\s*"
            r"(?:(?:bearer|basic|digest|token)\s+)?)(?!\[redacted)[^\s\"',;&}\])]+"
        ),
    ),
    # the password in a URL's userinfo (postgres://user:password@host)
    (("://",), re.compile(r"(://[^\s/:@]+:)(?!\[redacted)[^\s/@]+(?=@)")),
)


# Registered secrets (the API keys given to clients) are redacted whole and in part: any run of
# _MIN_RUN characters of one (all of it, if shorter) is redacted wherever it appears, so a truncated
# rendering (``rich`` cuts locals at 80 characters, a message quotes a key's first 20) leaks nothing.
# Search: each secret longer than _MIN_RUN is cut into aligned blocks of _BLOCK characters; any run of
# _MIN_RUN >= 2 * _BLOCK - 1 characters of it contains one whole block, so a line is searched for the
# blocks only (``str.find``, in C) and a hit is extended both ways to the longest run shared with
# that secret.
_MIN_RUN = 12
_BLOCK = 6


class _Registry:
    """An immutable snapshot of the registered secrets, in the shape the scrubber searches."""

    __slots__ = ("blocks", "secrets", "whole")

    def __init__(self, secrets: frozenset[str]) -> None:
        self.secrets = secrets
        self.whole = tuple(s for s in secrets if len(s) <= _MIN_RUN)
        blocks: dict[str, list[tuple[str, int]]] = {}
        for secret in secrets:
            if len(secret) > _MIN_RUN:
                for offset in range(0, len(secret) - _BLOCK + 1, _BLOCK):
                    blocks.setdefault(secret[offset : offset + _BLOCK], []).append((secret, offset))
        self.blocks = tuple((block, tuple(owners)) for block, owners in blocks.items())


_registry = _Registry(frozenset())
_secrets_lock = threading.Lock()


def get_logger(name: str) -> Any:
    """agentkit's loggers: structlog's own once the application configured structlog (or a test
    captures logs); until then only warnings and errors reach stderr, so an unconfigured library
    stays quiet — like the standard library's last-resort handler — and does no work for info lines."""
    import structlog

    if structlog.is_configured():
        return structlog.get_logger(name)
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_exception_formatter(False)),
            _scrub_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_name=name,
    )


def _register_secret(value: str) -> None:
    """Remember a secret (an API key given to a Client) so every log line is scrubbed of it."""
    global _registry
    if len(value) >= 6 and value not in _registry.secrets:
        with _secrets_lock:
            _registry = _Registry(_registry.secrets | {value})


def _secret_spans(text: str, registry: _Registry) -> list[tuple[int, int]]:
    """Where runs of registered secrets appear in ``text``: (start, end) pairs, unsorted."""
    spans: list[tuple[int, int]] = []
    for secret in registry.whole:
        at = text.find(secret)
        while at != -1:
            spans.append((at, at + len(secret)))
            at = text.find(secret, at + 1)
    found: dict[tuple[str, int], tuple[int, int]] = {}  # (secret, where it would start) -> last span
    for block, owners in registry.blocks:
        at = text.find(block)
        while at != -1:
            for secret, offset in owners:
                origin = at - offset
                last = found.get((secret, origin))
                if last is not None and last[0] <= at and at + _BLOCK <= last[1]:
                    continue  # inside a run of this secret already found
                start = at - _common_run(text, secret, at, offset, -1)
                end = at + _BLOCK + _common_run(text, secret, at + _BLOCK, offset + _BLOCK, 1)
                found[secret, origin] = (start, end)
                if end - start >= _MIN_RUN:
                    spans.append((start, end))
            at = text.find(block, at + 1)
    return spans


def _common_run(text: str, secret: str, at: int, offset: int, direction: int) -> int:
    """How many characters ``text`` and ``secret`` share going right from ``text[at]`` and
    ``secret[offset]`` (direction 1), or left from just before them (-1). Binary search over slice
    comparisons (in C), not a character loop."""
    if direction > 0:
        low, high = 0, min(len(secret) - offset, len(text) - at)
        while low < high:
            mid = (low + high + 1) // 2
            if text[at : at + mid] == secret[offset : offset + mid]:
                low = mid
            else:
                high = mid - 1
        return low
    low, high = 0, min(offset, at)
    while low < high:
        mid = (low + high + 1) // 2
        if text[at - mid : at] == secret[offset - mid : offset]:
            low = mid
        else:
            high = mid - 1
    return low


def _pattern_sub(match: re.Match[str]) -> str:
    return match.group(1) + _REDACTED


def _scrub(text: str) -> str:
    """``text`` with registered secrets (whole or any run of 12 characters) and credential-shaped
    values redacted."""
    lowered = text.lower()
    for hints, pattern in _RULES:
        for hint in hints:
            if hint in lowered:
                text = pattern.sub(_pattern_sub, text)
                break
    registry = _registry
    if registry.secrets:
        spans = _secret_spans(text, registry)
        if spans:
            spans.sort()
            parts: list[str] = []
            done = 0
            for start, end in spans:
                if end <= done:
                    continue
                parts.append(text[done : max(start, done)])
                parts.append(_REDACTED)
                done = end
            parts.append(text[done:])
            text = "".join(parts)
    return text


def _scrub_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {
            k: _REDACTED if str(k).lower() in _SECRET_KEYS else _scrub_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return _scrub(f"{type(value).__name__}: {value}")
    if value is None or isinstance(value, int | float):
        return value
    # Any other object is rendered with its repr later: scrub that (keep the object when clean).
    text = repr(value)
    scrubbed = _scrub(text)
    return value if scrubbed == text else scrubbed


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace API keys and auth headers anywhere in the event with ``[redacted]``."""
    return event_dict if _is_clean(event_dict) else _redact_fields(event_dict)


def _redact_fields(event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = _REDACTED
        elif key == "exc_info":
            continue
        else:
            event_dict[key] = _scrub_value(value)
    return event_dict


def _is_clean(event_dict: MutableMapping[str, Any]) -> bool:
    """Fast path for the common event (flat strings and numbers, nothing to redact): one scrub of
    all its ``key=value`` pairs joined, instead of one per field (and, in :func:`configure_logging`'s
    chain, instead of a second pass over the rendered line). Anything else is not "clean"."""
    texts: list[str] = []
    for key, value in event_dict.items():
        if key.lower() in _SECRET_KEYS or key in _EXCEPTION_KEYS:
            return False
        if isinstance(value, str | int | float) or value is None:
            texts.append(f"{key}={value}")
        else:
            return False
    joined = "\n".join(texts)
    return _scrub(joined) == joined


_EXCEPTION_KEYS = frozenset({"exc_info", "exception", "stack", "stack_info"})


def _redacting(*render: Any) -> Any:
    """The end of :func:`configure_logging`'s chain: ``render`` (exception formatting, the renderer)
    between the redaction of the fields and a final scrub of the rendered line (tracebacks, reprs);
    a clean event (see :func:`_is_clean`) is rendered with no scrubbing at all."""

    def processor(logger: Any, method: str, event_dict: Any) -> Any:
        clean = _is_clean(event_dict)
        if not clean:
            event_dict = _redact_fields(event_dict)
        for step in render:
            event_dict = step(logger, method, event_dict)
        return event_dict if clean or not isinstance(event_dict, str) else _scrub(event_dict)

    return processor


def _scrub_rendered(_logger: Any, _method: str, event_dict: Any) -> Any:
    # Final pass over the rendered line (tracebacks included).
    return _scrub(event_dict) if isinstance(event_dict, str) else event_dict


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@functools.cache
def _exception_formatter(colors: bool) -> Any:
    """The console's traceback renderer: rich's when installed, but never with frame locals (they
    hold deps, headers and keys, and rich prints them truncated, past any whole-value redaction);
    the plain one otherwise. Its output is scrubbed; a coloured traceback that needed scrubbing is
    written without colours (escape codes inside a secret would hide it from the scrubber)."""
    import structlog

    inner: Any = structlog.dev.plain_traceback
    try:
        import rich  # noqa: F401  (optional: only to pick the renderer)
    except ImportError:
        pass
    else:
        inner = structlog.dev.RichTracebackFormatter(
            show_locals=False, color_system="truecolor" if colors else None
        )

    def render(sio: TextIO, exc_info: Any) -> None:
        buffer = io.StringIO()
        inner(buffer, exc_info)
        text = buffer.getvalue()
        plain = _ANSI.sub("", text) if colors else text
        scrubbed = _scrub(plain)
        sio.write(text if scrubbed == plain else scrubbed)

    return render


def _stamp_unless_given(stamper: Any) -> Any:
    """``stamper``, except for events that carry their own ``timestamp`` (a durable workflow's events
    carry the workflow's time, the same on every replay)."""

    def stamp(logger: Any, method: str, event: Any) -> Any:
        return event if "timestamp" in event else stamper(logger, method, event)

    return stamp


def configure_logging(
    level: str | int = "info",
    *,
    format: Literal["auto", "console", "json"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for an application: levels, timestamps, secret redaction, a renderer.

    Args:
        level: the lowest level logged (``"debug"``, ``"info"``, ``"warning"``, ...). Events below it
            cost almost nothing.
        format: ``"console"`` (coloured, for development), ``"json"`` (one JSON object per line, for
            production), or ``"auto"``: console on a terminal, JSON otherwise.
        stream: where lines go (default ``sys.stderr``).
    """
    import structlog

    from ._validate import log_level, logging_options  # here: _validate imports this module

    numeric = log_level(level)
    logging_options(format, stream)
    out = stream or sys.stderr
    if format == "auto":
        format = "console" if out.isatty() else "json"
    colors = out.isatty()
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=_exception_formatter(colors))
        if format == "console"
        else structlog.processors.JSONRenderer()
    )
    steps = (structlog.processors.format_exc_info, renderer) if format == "json" else (renderer,)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _stamp_unless_given(structlog.processors.TimeStamper(fmt="iso", utc=True)),
            _redacting(*steps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # Not cached: module-level loggers must follow a later configure_logging() or capture_logs().
        cache_logger_on_first_use=False,
    )

