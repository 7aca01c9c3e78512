"""Cost of the log scrubber per line: what secret redaction adds to every log event.

    python -m benchmarks.scrub [--number 20000] [--rounds 5]

- ``_scrub`` alone on typical rendered lines (a clean agentkit JSON line, one with usage fields, one
  holding a registered key's prefix, one with an ``Authorization: Bearer`` header), with 1, 3 and 20
  registered keys (a process usually has one or two; the test suite registers dozens);
- one whole ``log.info`` event through ``configure_logging(format="json")`` (both scrubbing passes:
  the fields and the rendered line) against the same chain without the two redaction processors.

Best of ``--rounds`` rounds (the least disturbed by other processes on a shared machine; the two
event chains alternate round by round), microseconds per call (``time.perf_counter``).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

import agentkit
from agentkit import _logging

KEY = "sk-ant-api03-Kq7vB2nX9mZ4pL8wR1tY6uE3oI5aS0dF-gH2jK4lZ6xC8vB0nM_qW3eR5tY7uI9oP-gH2jK4lZ6xC8vB0nM-AAA"
LINES = {
    "clean": json.dumps(
        {
            "event": "tool.finished",
            "run_id": "run_4f3c2a1b0e9d8c7b",
            "tool": "get_weather",
            "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
            "duration_ms": 51.2,
            "level": "info",
            "timestamp": "2026-12-01T09:00:00.123456Z",
        }
    ),
    "usage": json.dumps(
        {
            "event": "model.response",
            "run_id": "run_4f3c2a1b0e9d8c7b",
            "model": "claude-sonnet-4-6",
            "input_tokens": 1234,
            "output_tokens": 87,
            "stop_reason": "tool_use",
            "request_id": "req_011CQ9vPXm4RxF8E",
            "level": "info",
            "timestamp": "2026-12-01T09:00:00.123456Z",
        }
    ),
    "key prefix": json.dumps(
        {"event": "tool.error", "error": f"gateway refused key '{KEY[:70]}'+38", "level": "error"}
    ),
    "bearer header": json.dumps(
        {"event": "proxy", "line": "Authorization: Bearer tok_0123456789abcdefXYZ", "level": "info"}
    ),
}


def per_call(fn: Callable[[], Any], number: int, rounds: int) -> float:
    """Best-of-rounds microseconds per call of ``fn``."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        results.append((time.perf_counter() - started) / number * 1e6)
    return min(results)


def register(count: int) -> None:
    _logging._registry = _logging._Registry(frozenset())
    _logging._register_secret(KEY)
    for k in range(count - 1):
        _logging._register_secret(f"sk-ant-api03-{k:04d}" + "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0" * 3)


def event_cost(number: int, rounds: int, redact: bool) -> float:
    buffer = io.StringIO()
    agentkit.configure_logging(level="info", format="json", stream=buffer)
    if not redact:  # the same chain, minus the redaction
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ]
        )
    log = structlog.get_logger("agentkit").bind(run_id="run_4f3c2a1b0e9d8c7b", model="claude-sonnet-4-6")

    def one() -> None:
        log.info("model.response", input_tokens=1234, output_tokens=87, stop_reason="tool_use")
        buffer.seek(0)
        buffer.truncate()

    try:
        return per_call(one, number, rounds)
    finally:
        structlog.reset_defaults()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sys.stdout.write(f"python {sys.version.split()[0]}, {args.rounds} rounds of {args.number}\n\n")
    sys.stdout.write("| line (chars) | 1 key | 3 keys | 20 keys |\n|---|---|---|---|\n")
    for name, line in LINES.items():
        cells = []
        for count in (1, 3, 20):
            register(count)
            cost = per_call(functools.partial(_logging._scrub, line), args.number, args.rounds)
            cells.append(f"{cost:.2f} µs")
        sys.stdout.write(f"| {name} ({len(line)}) | {' | '.join(cells)} |\n")
    register(1)
    redacted_rounds: list[float] = []
    plain_rounds: list[float] = []
    for _ in range(args.rounds):
        redacted_rounds.append(event_cost(args.number, 1, redact=True))
        plain_rounds.append(event_cost(args.number, 1, redact=False))
    with_redaction, without = min(redacted_rounds), min(plain_rounds)
    sys.stdout.write(
        f"\nlog.info through configure_logging(json), 1 key: {with_redaction:.2f} µs per event with "
        f"redaction, {without:.2f} µs without (+{with_redaction - without:.2f} µs)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
