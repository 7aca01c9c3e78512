"""Hostile responses never freeze, exhaust or escape: every one ends in a typed ``AgentKitError``.

Sans-IO first (the decoder and the accumulator, fed bytes and events directly), then through the real
client against the local server (raw bodies, retry headers, bodies that never end), then hypothesis:
random bytes and mutated event sequences, directly and through the client, raise only AgentKitErrors.
"""

from __future__ import annotations

import contextlib
import json
import math
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentkit._client
from agentkit import (
    Agent,
    AgentKitError,
    APITimeoutError,
    Client,
    ConfigurationError,
    InternalServerError,
    ProtocolError,
    RateLimitError,
    tool,
)
from agentkit._sse import MAX_EVENT_BYTES, MAX_LINE_BYTES, MessageAccumulator, SSEDecoder, typed_event
from agentkit.testing import FunctionPolicy, LocalServer, Script, reply
from agentkit.types import to_wire

from .conftest import CORPORA

MODEL = "claude-sonnet-4-6"
KEY = "sk-test"
MESSAGES = [{"role": "user", "content": "Hello"}]
DEEP = "[" * 2000 + "]" * 2000  # json.loads raises RecursionError on this


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + str(e.get("type", "message")).encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    )


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    },
}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
STOP0 = {"type": "content_block_stop", "index": 0}
END = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
MSTOP = {"type": "message_stop"}
GOOD = [START, TEXT_START, TEXT_DELTA, STOP0, END, MSTOP]


def fold(data: bytes, chunk: int = 0) -> Any:
    """Decoder + accumulator over ``data`` (in ``chunk``-byte pieces); the Message at the end."""
    decoder = SSEDecoder()
    accumulator = MessageAccumulator()
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    for piece in pieces:
        for event, payload in decoder.feed(piece):
            raw = accumulator.feed_sse(event, payload)
            if raw is not None:
                typed_event(raw)
    for event, payload in decoder.flush():
        accumulator.feed_sse(event, payload)
    return accumulator.message()


# --- 1. the decoder: linear, with a line cap ------------------------------------------------------


def test_an_unterminated_line_past_the_cap_is_a_protocol_error() -> None:
    decoder = SSEDecoder()
    piece = b"x" * 65536
    with pytest.raises(ProtocolError) as info:
        list(decoder.feed(b"data: "))
        for _ in range(MAX_LINE_BYTES // len(piece) + 2):
            list(decoder.feed(piece))
    assert info.value.error_type == "sse_line_too_long"
    assert str(MAX_LINE_BYTES) in info.value.message


def test_a_complete_line_past_the_cap_in_one_chunk_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        list(SSEDecoder().feed(b"data: " + b"x" * (MAX_LINE_BYTES + 1) + b"\n\n"))
    assert info.value.error_type == "sse_line_too_long"


def test_an_event_past_the_cap_is_a_protocol_error() -> None:
    line = b"data: " + b"y" * (2**20) + b"\n"  # 1 MiB lines: each one fine, together too big
    decoder = SSEDecoder()
    with pytest.raises(ProtocolError) as info:
        for _ in range(MAX_EVENT_BYTES // 2**20 + 2):
            list(decoder.feed(line))
    assert info.value.error_type == "sse_event_too_large"


def test_a_long_line_under_the_cap_fed_in_small_chunks_is_one_event() -> None:
    """A 12 MB tool-input delta arriving 16 KiB at a time (the old decoder re-scanned the whole
    pending line on every chunk: quadratic; see benchmarks/sse_long_line.py)."""
    blob = "z" * (12 * 2**20)
    events = [
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": blob}},
        STOP0,
        END,
        MSTOP,
    ]
    message = fold(sse(*events), chunk=16384)
    assert message.text == blob


def test_cr_lf_split_across_chunks_is_one_line_end() -> None:
    data = sse(*GOOD).replace(b"\n", b"\r\n")
    for cut in range(len(data)):
        if data[cut - 1 : cut] == b"\r":
            decoder = SSEDecoder()
            events = list(decoder.feed(data[:cut])) + list(decoder.feed(data[cut:]))
            assert [name for name, _ in events] == [e["type"] for e in GOOD]


# --- 2. the accumulator allocates nothing sized by the server ----------------------------------------


@pytest.mark.parametrize("index", [1, 1_000_000, -1, "0", 0.0, True, None])
def test_a_block_index_other_than_the_next_one_is_a_protocol_error(index: Any) -> None:
    accumulator = MessageAccumulator()
    accumulator.feed(START)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as info:
            accumulator.feed({**TEXT_START, "index": index})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.error_type == "malformed_event"
    assert repr(index) in info.value.message or str(index) in info.value.message
    assert peak < 1_000_000  # nothing padded up to the index


@pytest.mark.parametrize(
    "event",
    [
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "x"}},
        {"type": "content_block_delta", "index": -1, "delta": {"type": "text_delta", "text": "x"}},
        {
            "type": "content_block_delta",
            "index": 7,
            "delta": {"type": "input_json_delta", "partial_json": "{"},
        },
        {"type": "content_block_stop", "index": 3},
        {"type": "content_block_stop", "index": "0"},
    ],
    ids=["delta-next", "delta-negative", "json-delta-unknown", "stop-unknown", "stop-string"],
)
def test_deltas_and_stops_for_an_unknown_block_are_protocol_errors(event: dict[str, Any]) -> None:
    accumulator = MessageAccumulator()
    accumulator.feed(START)
    accumulator.feed(TEXT_START)
    with pytest.raises(ProtocolError, match="malformed stream"):
        accumulator.feed(event)


# --- 3. every failure is an AgentKitError ------------------------------------------------------------

MALFORMED: dict[str, list[dict[str, Any]]] = {
    "message_start-without-message": [{"type": "message_start"}],
    "message_start-message-not-object": [{"type": "message_start", "message": "hello"}],
    "message_start-content-not-list": [
        {"type": "message_start", "message": {**START["message"], "content": "x"}}
    ],
    "message_start-without-id": [
        {"type": "message_start", "message": {"type": "message", "model": MODEL, "content": []}},
        MSTOP,
    ],
    "message_start-twice": [START, START, MSTOP],
    "block-start-without-block": [START, {"type": "content_block_start", "index": 0}],
    "block-start-block-not-object": [START, {"type": "content_block_start", "index": 0, "content_block": 5}],
    "block-start-block-without-type": [
        START,
        {"type": "content_block_start", "index": 0, "content_block": {}},
    ],
    "delta-not-object": [START, TEXT_START, {"type": "content_block_delta", "index": 0, "delta": "x"}],
    "delta-without-type": [START, TEXT_START, {"type": "content_block_delta", "index": 0, "delta": {}}],
    "text-not-string": [
        START,
        TEXT_START,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
    ],
    "signature-not-string": [
        START,
        TEXT_START,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": []}},
    ],
    "citation-not-object": [
        START,
        TEXT_START,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": 1}},
    ],
    "message_delta-delta-not-object": [START, {"type": "message_delta", "delta": [1]}],
    "message_delta-usage-not-object": [START, {"type": "message_delta", "delta": {}, "usage": "many"}],
    "message_delta-replaces-usage": [START, {"type": "message_delta", "delta": {"usage": "x"}}, MSTOP],
    "type-not-string": [START, {"type": 5}],
    "stop_reason-not-string": [START, {"type": "message_delta", "delta": {"stop_reason": 5}}, MSTOP],
    "negative-usage": [
        START,
        {"type": "message_delta", "delta": {}, "usage": {"output_tokens": -(10**9)}},
        MSTOP,
    ],
    "absurd-usage": [START, {"type": "message_delta", "delta": {}, "usage": {"input_tokens": 10**30}}, MSTOP],
    "usage-string": [START, {"type": "message_delta", "delta": {}, "usage": {"input_tokens": "12"}}, MSTOP],
}


@pytest.mark.parametrize("events", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_event_is_a_protocol_error(events: list[dict[str, Any]]) -> None:
    with pytest.raises(ProtocolError):
        fold(sse(*events))


def test_json_nested_too_deep_in_a_data_line_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="invalid JSON"):
        MessageAccumulator().feed_sse("message_start", DEEP)


def test_tool_input_nested_too_deep_is_an_invalid_input_not_a_crash() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    deep = '{"a":' * 2000 + "1" + "}" * 2000
    message = fold(
        sse(
            START,
            {"type": "content_block_start", "index": 0, "content_block": block},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": deep},
            },
            STOP0,
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
            MSTOP,
        )
    )
    assert [bad.id for bad in message.invalid_tool_inputs] == ["toolu_1"]


def tool_use_answer(tool_input: str) -> bytes:
    return (
        '{"id":"msg_1","type":"message","role":"assistant","model":"m","stop_reason":"tool_use",'
        '"content":[{"type":"tool_use","id":"toolu_1","name":"f","input":' + tool_input + "}]}"
    ).encode()


@pytest.mark.anyio
async def test_an_answer_nested_too_deep_to_resend_is_a_protocol_error() -> None:
    """300 levels parse, but pydantic cannot serialise past ~250: the next request would break."""
    deep = '{"a":' * 300 + "1" + "}" * 300
    with LocalServer(FunctionPolicy(lambda r: reply.raw(200, tool_use_answer(deep))), api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(ProtocolError, match="nested deeper than 128"):
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)


@pytest.mark.anyio
async def test_an_answer_nested_within_the_cap_goes_back_on_the_wire() -> None:
    nested = '{"a":' * 120 + "1" + "}" * 120
    with LocalServer(
        FunctionPolicy(lambda r: reply.raw(200, tool_use_answer(nested))), api_key=KEY
    ) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            message = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert json.loads(json.dumps(to_wire(message.to_param())))["content"][0]["input"] == json.loads(nested)


def test_a_block_nested_too_deep_in_a_stream_is_a_protocol_error() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": json.loads("[" * 200 + "]" * 200)}
    with pytest.raises(ProtocolError, match="nested deeper"):
        fold(sse(START, {"type": "content_block_start", "index": 0, "content_block": block}))


@pytest.mark.parametrize(
    "usage", [{"input_tokens": -1}, {"output_tokens": 10**12}, {"cache_read_input_tokens": -5}]
)
@pytest.mark.anyio
async def test_impossible_usage_in_a_json_answer_is_a_protocol_error(usage: dict[str, int]) -> None:
    with LocalServer(Script([reply.text("hi", usage=usage)]), api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(ProtocolError, match="usage"):
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_negative_usage_fails_the_run_instead_of_switching_its_token_budget_off(stream: bool) -> None:
    """Summed, -10**9 input tokens would keep ``total_tokens`` under any budget for ever."""

    @tool
    def ping() -> str:
        """Answers pong."""
        return "pong"

    script = Script(
        [reply.message([reply.tool_use_block("ping")], "tool_use", usage={"input_tokens": -(10**9)})]
    )
    with LocalServer(script, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            agent = Agent(client, model=MODEL, tools=[ping], token_budget=1000, stream=stream)
            with pytest.raises(ProtocolError, match="input_tokens"):
                await agent.run("go")
    assert len(server.requests) == 1


def test_a_streamed_message_past_its_size_cap_is_a_protocol_error() -> None:
    accumulator = MessageAccumulator(max_message_bytes=4096)
    accumulator.feed_sse("message_start", json.dumps(START))
    accumulator.feed_sse("content_block_start", json.dumps(TEXT_START))
    delta = json.dumps(TEXT_DELTA)
    with pytest.raises(ProtocolError) as info:
        for _ in range(4096 // len(delta) + 2):
            accumulator.feed_sse("content_block_delta", delta)
    assert info.value.error_type == "message_too_large"
    pinged = MessageAccumulator(max_message_bytes=4096)
    for _ in range(1000):  # pings carry nothing: they do not count
        pinged.feed_sse("ping", '{"type": "ping"}')


@pytest.mark.anyio
async def test_json_nested_too_deep_in_a_body_is_a_protocol_error() -> None:
    with LocalServer(Script([reply.raw(200, DEEP.encode())]), api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(ProtocolError, match="invalid JSON"):
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)


@pytest.mark.anyio
async def test_json_nested_too_deep_in_an_error_body_keeps_the_status_error() -> None:
    with LocalServer(FunctionPolicy(lambda r: reply.raw(503, DEEP.encode())), api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(InternalServerError) as info:
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert info.value.status_code == 503


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["message_start-without-message", "delta-not-object", "negative-usage"])
async def test_a_malformed_stream_through_the_client_is_a_protocol_error(name: str) -> None:
    body = sse(*MALFORMED[name])
    with LocalServer(Script([reply.raw(200, body, "text/event-stream")]), api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(ProtocolError):
                async with client.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream:
                    async for _ in stream:  # typed events
                        pass
    assert len(server.requests) == 1


# --- retry-after: unparsable values are ignored, long ones capped at 60 s -----------------------------


@pytest.fixture
def retry_delays(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The retry delays the client chose (from its ``model.retry`` log line). A delay over the 60 s cap
    fails the test at once instead of sleeping it."""
    monkeypatch.setattr(agentkit._client, "_INITIAL_BACKOFF", 0.002)
    delays: list[float] = []

    def record(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("event") == "model.retry":
            delays.append(event["delay"])
            if not event["delay"] <= 60:
                raise AssertionError(f"the client would sleep {event['delay']} s")
        raise structlog.DropEvent

    structlog.configure(processors=[record])
    try:
        yield delays
    finally:
        structlog.reset_defaults()


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["soon", "", "1e999", "nan", "-inf", "Wed, 99 Foo 2026 00:00:00 GMT"])
async def test_an_unparsable_retry_after_is_ignored_and_the_429_kept(
    value: str, retry_delays: list[float]
) -> None:
    fault = reply.error(429, headers={"retry-after": value})
    with LocalServer(FunctionPolicy(lambda r: fault), api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=2) as client:
            with pytest.raises(RateLimitError) as info:
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert info.value.retry_after is None
    assert [r.status for r in server.requests] == [429, 429, 429]
    assert len(retry_delays) == 2 and all(0 < d <= 0.01 for d in retry_delays)  # the normal backoff


@pytest.mark.anyio
@pytest.mark.parametrize(
    "header", [{"retry-after": "3600"}, {"retry-after-ms": "61000"}, {"retry-after": "60.5"}]
)
async def test_a_retry_after_over_60_seconds_falls_back_to_the_backoff(
    header: dict[str, str], retry_delays: list[float]
) -> None:
    script = Script([reply.error(429, headers=header), reply.text("after the retry")])
    with LocalServer(script, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=1) as client:
            message = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.text == "after the retry"
    assert len(retry_delays) == 1 and retry_delays[0] <= 0.01


@pytest.mark.anyio
async def test_a_retry_after_within_the_cap_is_obeyed(retry_delays: list[float]) -> None:
    script = Script([reply.error(529, headers={"retry-after-ms": "30"}), reply.text("ok")])
    with LocalServer(script, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=1) as client:
            await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert retry_delays == [0.03]


# --- 5. a total deadline per request ---------------------------------------------------------------


async def heartbeat(ticks: list[int]) -> None:
    while True:
        await anyio.sleep(0.005)
        ticks.append(1)


@pytest.mark.anyio
async def test_an_endless_ping_stream_ends_at_the_total_timeout_and_is_not_resent() -> None:
    ticks: list[int] = []
    policy = FunctionPolicy(lambda r: reply.ping_forever(after_events=2, interval=0.01, limit=20))
    with LocalServer(policy, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=2) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(heartbeat, ticks)
                events: list[str] = []
                with pytest.raises(APITimeoutError, match=r"total_timeout=0\.3s"):
                    async with client.stream(
                        model=MODEL, max_tokens=16, messages=MESSAGES, total_timeout=0.3
                    ) as stream:
                        async for event in stream.raw_events():
                            events.append(event["type"])
                tg.cancel_scope.cancel()
    assert events[0] == "message_start"
    assert events.count("ping") >= 2  # the stream kept delivering; only the total deadline stops it
    assert len(server.requests) == 1  # events were delivered: never re-sent
    assert ticks  # the loop kept running while the client waited


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentkit._client, "_INITIAL_BACKOFF", 0.002)


@pytest.mark.anyio
@pytest.mark.usefixtures("fast_backoff")
async def test_a_trickled_json_body_ends_at_the_total_timeout_and_is_retried() -> None:
    policy = FunctionPolicy(lambda r: reply.trickle(reply.text("a slow answer " * 20), interval=0.02))
    with LocalServer(policy, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=1, total_timeout=0.25) as client:
            with pytest.raises(APITimeoutError, match=r"total_timeout=0\.25s"):
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert len(server.requests) == 2  # nothing was delivered: retried like a timeout


@pytest.mark.anyio
async def test_an_endless_json_body_ends_at_the_total_timeout() -> None:
    policy = FunctionPolicy(lambda r: reply.ping_forever(interval=0.01, limit=20))
    with LocalServer(policy, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
            with pytest.raises(APITimeoutError):
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES, total_timeout=0.2)


@pytest.mark.anyio
@pytest.mark.usefixtures("fast_backoff")
async def test_a_stream_whose_head_never_comes_is_retried_after_the_total_timeout() -> None:
    script = Script([reply.delay(20, reply.text("late")), reply.text("on time")])
    with LocalServer(script, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=1, total_timeout=0.3) as client:
            async with client.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream:
                message = await stream.final_message()
    assert message.text == "on time"
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_trickled_stream_within_the_total_timeout_completes() -> None:
    policy = FunctionPolicy(lambda r: reply.trickle(reply.text("fine"), chunk_size=256, interval=0.001))
    with LocalServer(policy, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, total_timeout=30) as client:
            async with client.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream:
                message = await stream.final_message()
            again = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.text == again.text == "fine"


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "5", True])
def test_total_timeout_must_be_a_positive_number(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="total_timeout"):
        Client(api_key=KEY, base_url="http://127.0.0.1:9", total_timeout=bad)


# --- hypothesis: random bytes and mutated event sequences raise only AgentKitErrors --------------------

def _events_of(path: Path) -> list[Any]:
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("data: "):
            try:
                events.append(json.loads(line[6:]))
            except ValueError:  # e.g. a gateway's `data: [DONE]`
                continue
    return events


FIXTURE_EVENTS = [_events_of(path) for root in CORPORA.values() for path in sorted(root.glob("*.sse"))]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
KEYS = [
    "type",
    "index",
    "delta",
    "content_block",
    "message",
    "usage",
    "text",
    "partial_json",
    "id",
    "content",
]


@st.composite
def mutated_stream(draw: st.DrawFn) -> list[Any]:
    """A real fixture's events with a few mutations: a key's value replaced, a key deleted, an event
    dropped, duplicated or replaced by an arbitrary JSON value."""
    events: list[Any] = json.loads(json.dumps(draw(st.sampled_from(FIXTURE_EVENTS))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(events) - 1))
        action = draw(st.sampled_from(["set", "delete", "drop", "dup", "replace", "nested"]))
        target = events[at]
        if action == "drop" and len(events) > 1:
            events.pop(at)
        elif action == "dup":
            events.insert(at, json.loads(json.dumps(target)))
        elif action == "replace":
            events[at] = draw(json_values)
        elif isinstance(target, dict):
            inner = target
            if action == "nested":
                nested = [v for v in target.values() if isinstance(v, dict)]
                if nested:
                    inner = draw(st.sampled_from(nested))
            key = draw(st.sampled_from(KEYS))
            if action == "delete":
                inner.pop(key, None)
            else:
                inner[key] = draw(json_values)
    return events


def encode(events: list[Any]) -> bytes:
    out = []
    for e in events:
        name = e.get("type") if isinstance(e, dict) and isinstance(e.get("type"), str) else "message"
        out.append(b"event: " + name.encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n")
    return b"".join(out)


def only_agentkit_errors(data: bytes, chunk: int) -> None:
    with contextlib.suppress(AgentKitError):
        fold(data, chunk)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), chunk=st.integers(0, 64))
def test_random_bytes_raise_only_agentkit_errors(data: bytes, chunk: int) -> None:
    only_agentkit_errors(data, chunk)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"data: ", b"event: ", b"\n", b"\r", b":", b"{", b"}", b"x"])),
    chunk=st.integers(0, 8),
)
def test_random_sse_shaped_bytes_raise_only_agentkit_errors(data: list[bytes], chunk: int) -> None:
    only_agentkit_errors(b"".join(data), chunk)


@settings(max_examples=200, deadline=None)
@given(events=mutated_stream(), chunk=st.integers(0, 97))
def test_mutated_event_sequences_raise_only_agentkit_errors(events: list[Any], chunk: int) -> None:
    only_agentkit_errors(encode(events), chunk)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(Script([]), api_key=KEY) as srv:
        yield srv


@pytest.fixture
async def client(server: LocalServer) -> AsyncIterator[Client]:
    async with Client(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=10) as c:
        yield c


@pytest.mark.anyio
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=mutated_stream(), junk=st.binary(max_size=40), stream=st.booleans())
async def test_mutated_answers_through_the_client_raise_only_agentkit_errors(
    server: LocalServer, client: Client, events: list[Any], junk: bytes, stream: bool
) -> None:
    body = encode(events) + junk
    if stream:
        server.policy = FunctionPolicy(lambda r: reply.raw(200, body, "text/event-stream"))
    else:  # a JSON answer built from the (mutated) message_start's message, or the junk
        first = events[0] if events and isinstance(events[0], dict) else {}
        message = first.get("message", first)
        server.policy = FunctionPolicy(lambda r: reply.raw(200, json.dumps(message).encode() + junk))
    try:
        if stream:
            async with client.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as s:
                async for _ in s:
                    pass
        else:
            await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    except AgentKitError:
        pass


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_the_client_works_again_after_a_total_timeout(stream: bool) -> None:
    """The cancelled connection is dropped, not handed back to the pool half-read."""
    script = Script([reply.ping_forever(interval=0.01, limit=20), reply.text("next")])
    with LocalServer(script, api_key=KEY) as server:
        async with Client(api_key=KEY, base_url=server.base_url, max_retries=0, total_timeout=0.2) as client:
            with pytest.raises(APITimeoutError):
                if stream:
                    async with client.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as s:
                        await s.final_message()
                else:
                    await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
            message = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.text == "next"
    assert len(server.requests) == 2
