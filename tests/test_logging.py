"""Tracing setup: importing configures nothing; configure_logging renders JSON/console and redacts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog

from agentkit import Client, configure_logging, redact_secrets


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_importing_agentkit_does_not_configure_structlog() -> None:
    code = "import structlog, agentkit, agentkit.testing; print(structlog.is_configured())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_json_lines_with_level_filter_and_redaction() -> None:
    key = "sk-ant-api03-ABCDEFGHIJKLMNOP"
    Client(api_key=key, base_url="https://x.test")  # registers the key for redaction
    stream = io.StringIO()
    configure_logging("info", format="json", stream=stream)
    log = structlog.get_logger("agentkit.test")
    log.debug("hidden.event")
    log.info("shown.event", note=f"the key is {key}", headers={"authorization": "Bearer abcdefghijklmnop"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["shown.event"]
    assert key not in stream.getvalue()
    assert lines[0]["headers"]["authorization"] == "[redacted]"
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]


def test_console_format() -> None:
    stream = io.StringIO()
    configure_logging("debug", format="console", stream=stream)
    structlog.get_logger().debug("model.request", turn=1)
    assert "model.request" in stream.getvalue()
    assert "turn=1" in stream.getvalue()


def test_redact_secrets_processor_on_its_own() -> None:
    event = {
        "event": "x",
        "x-api-key": "whatever",
        "detail": "Authorization: Bearer tok_1234567890abcdef",
        "nested": [{"api_key": "k"}],
    }
    out = redact_secrets(None, "info", event)
    assert out["x-api-key"] == "[redacted]"
    assert "tok_1234567890abcdef" not in out["detail"]
    assert out["nested"][0]["api_key"] == "[redacted]"
