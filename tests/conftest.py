"""Shared test configuration: every async test runs on both anyio backends (asyncio and trio)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "spec" / "fixtures"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def strip_nulls(value: Any) -> Any:
    """Drop ``None`` values recursively (a client may drop ``null`` fields; see fixtures/README)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


@pytest.fixture(params=["httpx", "aiohttp"])
def http_stack(request: pytest.FixtureRequest) -> str:
    """The Client's HTTP stack (``Client(http=...)``); aiohttp cases run on asyncio only (see below)."""
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the aiohttp-on-trio combinations: aiohttp runs on asyncio only (tested on its own)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("http_stack") == "aiohttp" and params.get("anyio_backend") == "trio":
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
