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
