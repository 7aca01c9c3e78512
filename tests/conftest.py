"""Shared test configuration: every async test runs on both anyio backends (asyncio and trio).

Wire fixtures come from two corpora. ``OWN`` (``tests/fixtures/``) ships with the repository and is always
used. ``SHARED`` (``../shared/spec/fixtures`` relative to the repository root) is the larger recorded
third-party corpus that sits beside the CI checkout; when it is present the same tests run over it as well,
when it is absent each test's shared case is skipped with one reason (:data:`SHARED_MISSING`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import pytest

OWN = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "spec" / "fixtures"
HAVE_SHARED = SHARED.is_dir()
SHARED_MISSING = "../shared/spec/fixtures not present: the recorded third-party corpus runs in CI"
CORPORA: dict[str, Path] = {"own": OWN, **({"shared": SHARED} if HAVE_SHARED else {})}


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


# ----------------------------------------------------------------------------- what each corpus holds


def streams(root: Path) -> list[Path]:
    """SSE response bodies, each with ``NAME.expected.json`` beside it."""
    return sorted(root.glob("*.sse"))


def beta_streams(root: Path) -> list[Path]:
    """Streams of beta features (compaction, fallback, context management) under ``beta/``."""
    return sorted(root.glob("beta/*.sse"))


def error_bodies(root: Path) -> list[Path]:
    """HTTP error bodies named ``STATUS_TYPE….json``."""
    return sorted(root.glob("errors/*.json")) + sorted(root.glob("errors_more/*.json"))


def request_bodies(root: Path) -> list[Path]:
    """Valid request bodies (create, or count_tokens when there is no ``max_tokens``)."""
    return sorted(root.glob("requests/*.json"))


def envelopes(root: Path) -> list[Path]:
    """PoYo-style ``{"code", "data"}`` bodies, each with ``NAME.expected.json`` beside it."""
    return sorted(p for p in root.glob("*envelope*.json") if not p.name.endswith(".expected.json"))


def message_bodies(root: Path) -> list[Path]:
    """Non-streaming Message bodies (``message_*.json`` here, ``*_response.json`` in the shared corpus)."""
    pattern = "message_*.json" if root == OWN else "*_response.json"
    return sorted(p for p in root.glob(pattern) if not p.name.endswith(".expected.json"))


def expected_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(path.suffix) + ".expected.json")


# Named files a test reads from each corpus (same role, different recordings).
NAMED: dict[str, dict[str, str]] = {
    "own": {
        "end_turn": "message_end_turn.json",
        "tool_use": "message_tool_use.json",
        "count_tokens_request": "requests/count_tokens.json",
        "count_tokens_response": "count_tokens.response.json",
        "thinking_stream": "thinking_signature_tool_use.sse",
        "thinking_followup": "requests/convert_currency.thinking.followup.json",
        "parallel_stream": "tool_use_parallel_inputs.sse",
        "error_stream": "error_event_after_text.sse",
        "truncated_stream": "truncated_mid_tool.sse",
        "text_then_tool_stream": "tool_use_parallel_inputs.sse",
        "auth_envelope": "envelope_code_401.json",
    },
    "shared": {
        "end_turn": "end_turn_response.json",
        "tool_use": "tool_use_response.json",
        "count_tokens_request": "requests/real_count_tokens.json",
        "count_tokens_response": "real_count_tokens.response.json",
        "thinking_stream": "real_thinking_then_tool_use.sse",
        "thinking_followup": "requests/real_thinking_then_tool_use.followup.json",
        "parallel_stream": "tool_use_parallel.sse",
        "error_stream": "error_mid_stream.sse",
        "truncated_stream": "truncated.sse",
        "text_then_tool_stream": "tool_use_single.sse",
        "auth_envelope": "poyo_envelope_error.json",
    },
}

# Streams the local server re-emits from their expected Message (test_server): a mix of block kinds.
ROUND_TRIP: dict[str, list[str]] = {
    "own": [
        "thinking_signature_tool_use",
        "tool_use_empty_partial_json",
        "redacted_thinking_text",
        "refusal_padded_json",
        "cache_usage",
        "tool_use_parallel_inputs",
        "multibyte_text",
    ],
    "shared": [
        "real_thinking_then_tool_use",
        "real_parallel_tool_use",
        "real_redacted_thinking",
        "sdk_refusal",
        "usage_cache",
        "tool_use_parallel",
    ],
}


def corpus_of(root: Path) -> str:
    """``"own"`` or ``"shared"``: which corpus ``root`` is."""
    return "own" if root == OWN else "shared"


def own(role: str) -> Path:
    """The repository's own fixture for ``role`` (see :data:`NAMED`)."""
    return OWN / NAMED["own"][role]


def _shared_placeholder() -> Any:
    return pytest.param(None, id="shared", marks=pytest.mark.skip(reason=SHARED_MISSING))


def over_corpora(pick: Callable[[Path], Iterable[Path]]) -> list[Any]:
    """``pytest.param`` per file ``pick(root)`` returns, for each corpus present (ids ``own/…``,
    ``shared/…``); without the shared corpus, one skipped ``shared`` case carries the reason."""
    params: list[Any] = []
    for name in ("own", "shared"):
        if name not in CORPORA:
            params.append(_shared_placeholder())
            continue
        root = CORPORA[name]
        for path in pick(root):
            rel = path.relative_to(root).as_posix()
            params.append(pytest.param(path, id=f"{name}/{rel.removesuffix(path.suffix)}"))
    return params


def named_over_corpora(role: str) -> list[Any]:
    """The file playing ``role`` in each corpus present (see :data:`NAMED`)."""
    return over_corpora(lambda root: [root / NAMED[corpus_of(root)][role]])


def corpus_params() -> list[Any]:
    """One case per corpus root (own, and shared or its skipped placeholder)."""
    params = [pytest.param(OWN, id="own")]
    params.append(pytest.param(SHARED, id="shared") if HAVE_SHARED else _shared_placeholder())
    return params


def tool_uses_in(messages: Iterable[Any]) -> list[Any]:
    """The ``tool_use`` blocks of a history's assistant turns, in order."""
    from agentkit.types import ToolUseBlock

    return [
        b
        for m in messages
        if m.role == "assistant" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolUseBlock)
    ]


def tool_use_ids(messages: Iterable[Any]) -> list[str]:
    """The ids of a history's ``tool_use`` blocks, in order."""
    return [b.id for b in tool_uses_in(messages)]


def results_by_id(messages: Iterable[Any]) -> dict[str, Any]:
    """A history's ``tool_result`` blocks by ``tool_use_id``."""
    from agentkit.types import ToolResultBlock

    return {
        b.tool_use_id: b
        for m in messages
        if m.role == "user" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    }


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


# ----------------------------------------------------------------------------- conversation stores


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterable[str]:
    """A real PostgreSQL server for the whole test session (started here, stopped at the end). It is
    skipped with one reason where none can be started, and fails instead when ``CI`` is set."""
    import os

    from tests.postgres_server import PostgresServer, Unavailable

    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401

        server = PostgresServer()
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
    except (Unavailable, ImportError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the PostgreSQL store, but no server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started here: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterable[Any]:
    """Each store test runs against SQLite (a file in tmp_path) and a real PostgreSQL server."""
    from tests.stores_support import Backend

    if request.param == "sqlite":
        location = str(tmp_path / "sessions.db")
    else:
        location = request.getfixturevalue("postgres_dsn")
    backend = Backend(request.param, location)
    yield backend
    backend.close()


class Held:
    """A tool (``.tool``, named ``hold``) that holds its run until the test lets it go: ``entered``
    is set once the run is inside the call, ``release`` ends it. No timing: a barrier."""

    def __init__(self) -> None:
        from agentkit import tool

        self.entered = anyio.Event()
        self.release = anyio.Event()

        @tool
        async def hold() -> str:
            """Waits until released."""
            self.entered.set()
            await self.release.wait()
            return "released"

        self.tool = hold
