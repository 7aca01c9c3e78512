"""The sans-IO SSE decoder and Message accumulator against every wire fixture."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit import APIStatusError, OverloadedError, ProtocolError
from agentkit._sse import MessageAccumulator, SSEDecoder
from agentkit.types import TextBlock, ThinkingBlock, ToolUseBlock, to_wire

from .conftest import (
    CORPORA,
    beta_streams,
    corpus_of,
    corpus_params,
    envelopes,
    error_bodies,
    expected_path,
    load_json,
    message_bodies,
    named_over_corpora,
    over_corpora,
    request_bodies,
    streams,
    strip_nulls,
)

STREAMS = [path for root in CORPORA.values() for path in streams(root)]
STREAM_CASES = over_corpora(streams)
BETA_CASES = over_corpora(beta_streams)


def accumulate(chunks: list[bytes]) -> Any:
    """Run chunks through decoder + accumulator; return what the fixtures' expected files describe."""
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    try:
        for chunk in chunks:
            for event, data in decoder.feed(chunk):
                accumulator.feed_sse(event, data)
        for event, data in decoder.flush():
            accumulator.feed_sse(event, data)
        message = accumulator.message()
    except (APIStatusError, ProtocolError) as exc:
        return {"error": {"type": exc.error_type, "message": exc.message}}
    if message.invalid_tool_inputs:
        bad = message.invalid_tool_inputs[0]
        return {"stop_reason": message.stop_reason, "invalid_tool_input": bad.model_dump()}
    return strip_nulls(to_wire(message))


def expected_for(path: Path) -> Any:
    return strip_nulls(load_json(path.with_suffix(".expected.json")))


# Reference material in the shared corpus that no test here reads: recorded response headers.
UNREAD_SHARED_DIRS = {"headers"}
MINIMUM_STREAMS = {"own": 15, "shared": 20}


@pytest.mark.parametrize("root", corpus_params())
def test_every_fixture_is_covered(root: Path) -> None:
    corpus = corpus_of(root)
    found = streams(root)
    assert len(found) >= MINIMUM_STREAMS[corpus], f"{corpus}: only {len(found)} streams in {root}"
    paired = found + beta_streams(root) + envelopes(root)
    missing = [p.name for p in paired if not expected_path(p).exists()]
    assert not missing, f"{corpus}: no .expected.json for {missing}"
    read = {*paired, *map(expected_path, paired), *error_bodies(root), *request_bodies(root)}
    read |= {*message_bodies(root), *root.glob("*count_tokens.response.json")}
    unread = [
        p.relative_to(root).as_posix()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.name not in ("README.md", ".gitattributes")
        and p not in read
        and not (corpus == "shared" and p.relative_to(root).parts[0] in UNREAD_SHARED_DIRS)
    ]
    assert not unread, f"{corpus}: fixture files no test reads: {unread}"
    if corpus == "own":  # the README says what each file exercises
        readme = (root / "README.md").read_text(encoding="utf-8")
        names = sorted(p.relative_to(root).as_posix() for p in read if not p.name.endswith(".expected.json"))
        undocumented = [name for name in names if f"`{name}`" not in readme]
        assert not undocumented, f"tests/fixtures/README.md does not describe {undocumented}"


@pytest.mark.parametrize("path", STREAM_CASES)
def test_fixture_accumulates_to_expected(path: Path) -> None:
    assert accumulate([path.read_bytes()]) == expected_for(path)


@pytest.mark.parametrize("path", STREAM_CASES)
def test_fixture_split_at_every_byte_offset(path: Path) -> None:
    data = path.read_bytes()
    expected = expected_for(path)
    for offset in range(len(data) + 1):
        assert accumulate([data[:offset], data[offset:]]) == expected, f"split at byte {offset}"


@pytest.mark.parametrize("path", STREAM_CASES)
def test_fixture_fed_byte_by_byte(path: Path) -> None:
    data = path.read_bytes()
    assert accumulate([data[i : i + 1] for i in range(len(data))]) == expected_for(path)


@pytest.mark.parametrize("path", BETA_CASES)
def test_beta_stream_accumulates_like_the_sdk_beta_accumulator(path: Path) -> None:
    # The expected Message is what the official SDK's beta accumulator ends with (shared corpus), or
    # worked out from its rules (own): compaction_delta fills the compaction block, a fallback block
    # relabels the Message's model, context_management on message_delta is kept; at every byte split.
    data = path.read_bytes()
    expected = expected_for(path)
    for offset in range(len(data) + 1):
        assert accumulate([data[:offset], data[offset:]]) == expected, f"split at byte {offset}"
    assert accumulate([data[i : i + 1] for i in range(len(data))]) == expected


@pytest.mark.parametrize("path", BETA_CASES)
def test_beta_stream_matches_the_official_sdk_beta_accumulator(path: Path) -> None:
    # The official SDK as the oracle, on the same events (skipped when `anthropic` is not installed).
    pytest.importorskip("anthropic")
    import httpx2
    from anthropic.lib.streaming._beta_messages import accumulate_event

    snapshot: Any = None
    buffers: dict[int, bytes] = {}
    decoder = SSEDecoder()
    for event, data in [*decoder.feed(path.read_bytes()), *decoder.flush()]:
        if event != "ping":
            snapshot = accumulate_event(
                event=json.loads(data),
                current_snapshot=snapshot,
                json_bufs=buffers,
                request_headers=httpx2.Headers(),
            )
    assert accumulate([path.read_bytes()]) == strip_nulls(snapshot.to_dict())


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


@settings(max_examples=60, deadline=None)
@given(
    index=st.sampled_from(range(len(STREAMS))),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
    pings=st.lists(st.integers(min_value=0, max_value=200), max_size=4),
)
def test_random_splits_with_pings_accumulate_the_same(index: int, cuts: list[int], pings: list[int]) -> None:
    path = STREAMS[index]
    events = path.read_bytes().split(b"\n\n")
    for position in pings:  # a ping between any two events changes nothing
        at = position % len(events)
        events.insert(at, PING.rstrip(b"\n"))
    data = b"\n\n".join(events)
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert accumulate(chunks) == expected_for(path)


def test_decoder_frames_like_the_sse_spec() -> None:
    decoder = SSEDecoder()
    stream = b": comment\r\nevent: a\r\ndata: one\rdata:two\n\nid: 7\nretry: 5\ndata\n\nevent: lost\ndata: x"
    events = list(decoder.feed(stream)) + list(decoder.flush())
    # multi-line data joins with \n; "data" alone is an empty data line; the unterminated event is dropped
    assert events == [("a", "one\ntwo"), ("message", "")]


def test_multibyte_character_split_across_chunks() -> None:
    payload = 'data: {"type": "ping", "x": "\U0001f600"}\n\n'.encode()
    cut = payload.index(b"\xf0") + 2
    decoder = SSEDecoder()
    events = list(decoder.feed(payload[:cut])) + list(decoder.feed(payload[cut:]))
    assert events == [("message", '{"type": "ping", "x": "\U0001f600"}')]


@pytest.mark.parametrize("path", named_over_corpora("thinking_stream"))
def test_typed_blocks_from_a_thinking_stream(path: Path) -> None:
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    for event, data in decoder.feed(path.read_bytes()):
        accumulator.feed_sse(event, data)
    message = accumulator.message()
    kinds = [type(b) for b in message.content]
    assert kinds[0] is ThinkingBlock
    assert ToolUseBlock in kinds
    thinking = message.content[0]
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature


@pytest.mark.parametrize("path", named_over_corpora("error_stream"))
def test_error_event_raises_the_typed_error(path: Path) -> None:
    data = path.read_bytes()
    decoder = SSEDecoder()
    accumulator = MessageAccumulator(request_id="req_1")
    with pytest.raises(OverloadedError) as info:
        for event, payload in decoder.feed(data):
            accumulator.feed_sse(event, payload)
    assert info.value.status_code == 200
    assert info.value.request_id == "req_1"


@pytest.mark.parametrize("path", named_over_corpora("truncated_stream"))
def test_truncated_stream_is_an_error_not_a_short_message(path: Path) -> None:
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    for event, payload in decoder.feed(path.read_bytes()):
        accumulator.feed_sse(event, payload)
    assert not accumulator.done
    with pytest.raises(ProtocolError, match="before message_stop"):
        accumulator.message()


def test_invalid_json_in_an_event_is_a_protocol_error() -> None:
    accumulator = MessageAccumulator()
    with pytest.raises(ProtocolError, match="invalid JSON"):
        accumulator.feed_sse("message_start", "{not json")


@pytest.mark.parametrize("path", named_over_corpora("text_then_tool_stream"))
def test_partial_text_and_json_are_visible_while_streaming(path: Path) -> None:
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    data = path.read_bytes()
    cut = data.index(b"input_json_delta") + 60
    for event, payload in decoder.feed(data[:cut]):
        accumulator.feed_sse(event, payload)
    assert accumulator.text_so_far(0)
    message_events = list(decoder.feed(data[cut:]))
    for event, payload in message_events:
        accumulator.feed_sse(event, payload)
    message = accumulator.message()
    assert isinstance(message.content[0], TextBlock)
    tool_use = message.tool_uses[0]
    assert accumulator.partial_json(1) and tool_use.input


def _line_ends(data: bytes, end: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", end)


@pytest.mark.parametrize("end", [b"\r\n", b"\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.stem)
def test_fixture_with_other_line_ends_fed_byte_by_byte(path: Path, end: bytes) -> None:
    """A "\\r" ending one chunk may be half of a "\\r\\n" ending in the next: one line end, not two."""
    data = _line_ends(path.read_bytes(), end)
    assert accumulate([data[i : i + 1] for i in range(len(data))]) == expected_for(path)
    assert accumulate([data]) == expected_for(path)
