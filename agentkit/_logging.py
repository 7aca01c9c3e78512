"""Tracing with structlog: a one-call setup for applications and a secret-redacting processor.

Importing agentkit configures nothing: the library only calls ``structlog.get_logger()``. An
application calls :func:`configure_logging` once (pretty console in development, JSON lines in
production), or wires :func:`redact_secrets` into its own structlog chain.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = ["configure_logging", "get_logger", "redact_secrets"]

_REDACTED = "[redacted]"
_SECRET_KEYS = frozenset(
    {"api_key", "x-api-key", "authorization", "proxy-authorization", "password", "secret"}
)
# Anthropic-style keys and bearer tokens, even when nobody registered them.
_SECRET_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{8,}=*")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def get_logger(name: str) -> Any:
    """agentkit's loggers: structlog's own once the application configured structlog (or a test
    captures logs); until then only warnings and errors reach stderr, so an unconfigured library
    stays quiet — like the standard library's last-resort handler — and does no work for info lines."""
    if structlog.is_configured():
        return structlog.get_logger(name)
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_name=name,
    )


def _register_secret(value: str) -> None:
    """Remember a secret (an API key given to a Client) so every log line is scrubbed of it."""
    if len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def _scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    if "sk-ant-" in text or "earer" in text:
        text = _SECRET_PATTERN.sub(_REDACTED, text)
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
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace API keys and auth headers anywhere in the event with ``[redacted]``."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = _REDACTED
        elif key == "exc_info":
            continue
        else:
            event_dict[key] = _scrub_value(value)
    return event_dict


def _scrub_rendered(_logger: Any, _method: str, event_dict: Any) -> Any:
    # Final pass over the rendered line (tracebacks included).
    return _scrub(event_dict) if isinstance(event_dict, str) else event_dict


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
    from ._validate import log_level, logging_options  # here: _validate imports this module

    numeric = log_level(level)
    logging_options(format, stream)
    out = stream or sys.stderr
    if format == "auto":
        format = "console" if out.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info if format == "json" else _identity,
            renderer,
            _scrub_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # Not cached: module-level loggers must follow a later configure_logging() or capture_logs().
        cache_logger_on_first_use=False,
    )


def _identity(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event_dict
