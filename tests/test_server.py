"""The local Messages API server (agentkit.testing), exercised over real HTTP with httpx2."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest

from agentkit.testing import (
    LocalServer,
    Request,
    Script,
    WeatherWorkload,
    reply,
)

from .conftest import (
    ROUND_TRIP,
    corpus_of,
    expected_path,
    load_json,
    named_over_corpora,
    over_corpora,
    request_bodies,
    strip_nulls,
)

KEY = "sk-test"
MODEL = "claude-sonnet-4-6"
BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def headers(flavour: str = "anthropic") -> dict[str, str]:
    if flavour == "toapis":
        return {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    return {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def body(**changes: Any) -> dict[str, Any]:
    out = dict(BODY)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- a minimal test-local SSE reader


def parse_sse(data: bytes) -> list[tuple[str, Any]]:
    """Split an SSE body into (event, parsed data) pairs; keeps only complete (blank-line-ended) events."""
    events: list[tuple[str, Any]] = []
    text = data.decode("utf-8").replace("\r\n", "\n")
    blocks = text.split("\n\n")
    for block in blocks[:-1]:  # the last piece is incomplete (or empty)
        name, payload = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                payload.append(line[5:].lstrip(" "))
        if payload:
            raw = "\n".join(payload)
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw
            events.append((name, parsed))
    return events


def accumulate(events: list[tuple[str, Any]]) -> dict[str, Any]:
    """Rebuild a Message from parsed events (raises if the stream never reached message_stop)."""
    message: dict[str, Any] = {}
    buffers: dict[int, str] = {}
    done = False
    for name, data in events:
        assert data["type"] == name
        if name == "message_start":
            message = dict(data["message"])
            message["content"] = []
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                buffers[data["index"]] = buffers.get(data["index"], "") + delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
        elif name == "content_block_stop":
            raw = buffers.pop(data["index"], "")
            if raw:
                message["content"][data["index"]]["input"] = json.loads(raw)
        elif name == "message_delta":
            message.update(data["delta"])
            for key, value in data["usage"].items():
                if value is not None:
                    message["usage"][key] = value
        elif name == "message_stop":
            done = True
        elif name == "error":
            raise RuntimeError(data["error"]["type"])
    assert done, "stream ended without message_stop"
    return message


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(policy=Script([])) as srv:
        yield srv


_TLS = ssl.create_default_context()  # built once: each client would otherwise load CA certificates (~70 ms)


def client(srv: LocalServer, flavour: str = "anthropic", **kwargs: Any) -> httpx2.Client:
    return httpx2.Client(base_url=srv.base_url, headers=headers(flavour), timeout=5, verify=_TLS, **kwargs)


def raw_post(url: str, **kwargs: Any) -> httpx2.Response:
    with httpx2.Client(verify=_TLS, timeout=5) as c:
        return c.post(url, **kwargs)


def aclient(srv: LocalServer, **kwargs: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=srv.base_url, headers=headers(), timeout=10, verify=_TLS, **kwargs)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("flavour", ["anthropic", "poyo", "toapis"])
def test_round_trip_json_and_sse(flavour: str) -> None:
    script = Script(
        [reply.text("Hello from the local server!"), reply.tool_use("get_weather", {"city": "Tokyo"})]
    )
    with LocalServer(policy=script, flavour=flavour, api_key=KEY) as srv, client(srv, flavour) as c:  # type: ignore[arg-type]
        r = c.post("/v1/messages", json=body())
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["request-id"].startswith("req_")
        data = r.json()
        if flavour == "poyo":
            assert data["code"] == 200
            data = data["data"]
        assert data["type"] == "message"
        assert data["role"] == "assistant"
        assert data["model"] == MODEL
        assert data["id"].startswith("msg_")
        assert data["content"] == [{"type": "text", "text": "Hello from the local server!"}]
        assert data["stop_reason"] == "end_turn"
        assert data["usage"]["input_tokens"] > 0
        assert data["usage"]["output_tokens"] > 0

        r = c.post("/v1/messages", json=body(stream=True, tools=[WEATHER_TOOL]))
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["transfer-encoding"] == "chunked"
        events = parse_sse(r.content)
        assert [e for e, _ in events][:2] == ["message_start", "ping"]
        assert events[-1][0] == "message_stop"
        msg = accumulate(events)
        assert msg["stop_reason"] == "tool_use"
        assert msg["content"][0]["input"] == {"city": "Tokyo"}
        assert msg["content"][0]["id"].startswith("toolu_")
    assert srv.connections_accepted == 1  # both on one keep-alive connection


@pytest.mark.anyio
async def test_async_with_and_async_client(anyio_backend: str) -> None:
    async with (
        LocalServer(policy=lambda req: reply.text(f"you said {req.last_user_text}")) as srv,
        aclient(srv) as c,
    ):
        r = await c.post("/v1/messages", json=body())
        assert r.json()["content"][0]["text"] == "you said hi"
        async with c.stream("POST", "/v1/messages", json=body(stream=True)) as resp:
            raw = b"".join([chunk async for chunk in resp.aiter_bytes()])
        assert accumulate(parse_sse(raw))["content"][0]["text"] == "you said hi"
    assert len(srv.requests) == 2
    assert srv.requests[0].headers["x-api-key"] == KEY
    assert srv.requests[0].json == body()


def test_requests_are_recorded(server: LocalServer) -> None:
    server.policy = Script([reply.text("a")])
    with client(server) as c:
        c.post("/v1/messages?beta=true", json=body(), headers={"X-Custom": "1"})
    (req,) = server.requests
    assert (req.method, req.path, req.query, req.index, req.status) == (
        "POST",
        "/v1/messages",
        "beta=true",
        0,
        200,
    )
    assert req.headers["x-custom"] == "1"
    assert req.json == body()
    server.clear_requests()
    assert server.requests == []


@pytest.mark.parametrize("path", named_over_corpora("count_tokens_request"))
def test_count_tokens_and_models(server: LocalServer, path: Any) -> None:
    with client(server) as c:
        r = c.post("/v1/messages/count_tokens", json=load_json(path))
        assert r.status_code == 200
        n = r.json()["input_tokens"]
        assert isinstance(n, int) and n > 0
        r2 = c.post("/v1/messages/count_tokens", json=load_json(path))
        assert r2.json()["input_tokens"] == n  # deterministic
        r = c.post("/v1/messages/count_tokens", json=body())
        assert r.status_code == 400
        assert r.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"
        models = c.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == [
            "claude-sonnet-4-6",
            "claude-opus-4-6",
            "claude-haiku-4-5",
        ]
        assert models["has_more"] is False
        assert c.get("/v1/models/claude-opus-4-6").json()["type"] == "model"
        assert c.get("/v1/models/gpt-5").status_code == 404
        r = c.get("/v1/nothing")
        assert r.status_code == 404
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "not_found_error"
        assert r.json()["request_id"] == r.headers["request-id"]


def test_request_ids_are_unique(server: LocalServer) -> None:
    with client(server) as c:
        ids = {c.get("/v1/models").headers["request-id"] for _ in range(20)}
    assert len(ids) == 20


# --------------------------------------------------------------------------- auth

AUTH_CASES = [
    ("anthropic", {"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error"),
    ("anthropic", {"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
    (
        "anthropic",
        {"authorization": "Bearer wrong", "anthropic-version": "2023-06-01"},
        401,
        "authentication_error",
    ),
    (
        "anthropic",
        {"x-api-key": KEY, "authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"},
        400,
        "invalid_request_error",
    ),
    ("anthropic", {"x-api-key": KEY}, 400, "invalid_request_error"),
    (
        "toapis",
        {"authorization": "Bearer nope", "anthropic-version": "2023-06-01"},
        401,
        "authentication_error",
    ),
    ("toapis", {"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
    ("toapis", {"authorization": f"Bearer {KEY}"}, 400, "invalid_request_error"),
    ("poyo", {"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, 401, "envelope"),
    ("poyo", {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}, 401, "envelope"),
    ("poyo", {"x-api-key": KEY}, 400, "envelope"),
]


@pytest.mark.parametrize(("flavour", "hdrs", "status", "kind"), AUTH_CASES)
def test_auth_failures(flavour: str, hdrs: dict[str, str], status: int, kind: str) -> None:
    with LocalServer(policy=Script([]), flavour=flavour) as srv:  # type: ignore[arg-type]
        r = raw_post(srv.base_url + "/v1/messages", json=body(), headers=hdrs)
    assert r.status_code == status
    data = r.json()
    if kind == "envelope":
        assert data["code"] == status
        assert data["data"] is None
        if status == 401:
            assert (
                data == {"code": 401, "message": "invalid api key", "data": None}
                or "x-api-key" in data["message"]
            )
        else:
            assert "anthropic-version" in data["message"]
    else:
        assert data["type"] == "error"
        assert data["error"]["type"] == kind
    assert KEY not in r.text


@pytest.mark.parametrize("flavour", ["anthropic", "toapis"])
def test_both_auth_styles_accepted(flavour: str) -> None:
    with LocalServer(policy=lambda _r: reply.text("ok"), flavour=flavour) as srv:  # type: ignore[arg-type]
        for hdrs in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}):
            r = raw_post(
                srv.base_url + "/v1/messages",
                json=body(),
                headers={**hdrs, "anthropic-version": "2023-06-01"},
            )
            assert r.status_code == 200, r.text


def test_api_key_none_accepts_any_key() -> None:
    with LocalServer(policy=lambda _r: reply.text("ok"), api_key=None) as srv:
        r = raw_post(
            srv.base_url + "/v1/messages",
            json=body(),
            headers={"x-api-key": "anything", "anthropic-version": "2023-06-01"},
        )
    assert r.status_code == 200


# --------------------------------------------------------------------------- validation

THINK = {"type": "enabled", "budget_tokens": 1024}
USER = [{"role": "user", "content": "hi"}]

VALIDATION: list[tuple[str, dict[str, Any], str]] = [
    ("model missing", body(model=None), "model: Field required"),
    ("model not str", body(model=3), "model: Input should be a valid"),
    ("max_tokens missing", body(max_tokens=None), "max_tokens: Field required"),
    ("max_tokens negative", body(max_tokens=-1), "max_tokens: Input should be greater than or equal to 0"),
    ("max_tokens str", body(max_tokens="5"), "max_tokens: Input should be a valid integer"),
    ("messages missing", body(messages=None), "messages: Field required"),
    ("messages empty", body(messages=[]), "messages: at least one message"),
    ("unknown field", body(foo=1), "foo: Extra inputs are not permitted"),
    ("history broken", body(messages=[{"role": "assistant", "content": "x"}]), "messages.0.role"),
    (
        "unanswered tool_use",
        body(
            messages=[
                {"role": "user", "content": "a"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "n", "input": {}}],
                },
                {"role": "user", "content": "b"},
            ]
        ),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "bad tool name",
        body(tools=[{**WEATHER_TOOL, "name": "get weather"}]),
        "tools.0.custom.name: String should match pattern",
    ),
    ("long tool name", body(tools=[{**WEATHER_TOOL, "name": "x" * 65}]), "String should match pattern"),
    ("duplicate tools", body(tools=[WEATHER_TOOL, WEATHER_TOOL]), "Tool names must be unique"),
    (
        "schema not object",
        body(tools=[{**WEATHER_TOOL, "input_schema": {"type": "string"}}]),
        "input_schema.type: Input should be 'object'",
    ),
    ("schema missing", body(tools=[{"name": "t"}]), "input_schema: Field required"),
    (
        "root anyOf",
        body(tools=[{**WEATHER_TOOL, "input_schema": {"type": "object", "anyOf": [{}]}}]),
        "does not support oneOf, allOf, or anyOf at the top level",
    ),
    (
        "tool extra key",
        body(tools=[{**WEATHER_TOOL, "parameters": {}}]),
        "tools.0.custom.parameters: Extra inputs",
    ),
    (
        "tool_choice string",
        body(tools=[WEATHER_TOOL], tool_choice="auto"),
        "tool_choice: Input should be an object",
    ),
    (
        "tool_choice bad type",
        body(tools=[WEATHER_TOOL], tool_choice={"type": "some"}),
        "does not match any of the expected tags",
    ),
    (
        "tool_choice unknown tool",
        body(tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "nope"}),
        "'nope' was not found",
    ),
    (
        "tool_choice tool no name",
        body(tools=[WEATHER_TOOL], tool_choice={"type": "tool"}),
        "tool_choice.tool.name: Field required",
    ),
    (
        "tool_choice any no tools",
        body(tool_choice={"type": "any"}),
        "may only be specified while providing tools",
    ),
    (
        "temperature and top_p",
        body(temperature=0.5, top_p=0.9),
        "`temperature` and `top_p` cannot both be specified",
    ),
    ("temperature range", body(temperature=1.5), "temperature: Input should be between 0 and 1"),
    (
        "budget too small",
        body(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 512}),
        "greater than or equal to 1024",
    ),
    (
        "budget over max",
        body(max_tokens=1024, thinking=THINK),
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    (
        "thinking forced tool",
        body(max_tokens=4000, thinking=THINK, tools=[WEATHER_TOOL], tool_choice={"type": "any"}),
        "Thinking may not be enabled when tool_choice forces tool use",
    ),
    ("thinking bad type", body(thinking={"type": "on"}), "thinking: Input tag 'on'"),
    (
        "thinking temperature",
        body(max_tokens=4000, thinking=THINK, temperature=0.5),
        "`temperature` may only be set to 1",
    ),
    ("system int", body(system=5), "system: Input should be a valid string or a list of text blocks"),
    ("system image block", body(system=[{"type": "image"}]), "system.0: Input should be a text block"),
    (
        "metadata extra",
        body(metadata={"user_id": "u", "email": "x"}),
        "metadata.email: Extra inputs are not permitted",
    ),
    ("stream not bool", body(stream="yes"), "stream: Input should be a valid boolean"),
    (
        "thinking dropped mid loop",
        body(
            max_tokens=4000,
            thinking=THINK,
            messages=[
                {"role": "user", "content": "a"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "n", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}],
                },
            ],
        ),
        "Expected `thinking` or `redacted_thinking`, but found `tool_use`",
    ),
]


@pytest.mark.parametrize(("name", "payload", "message"), VALIDATION, ids=[v[0] for v in VALIDATION])
def test_validation_errors(server: LocalServer, name: str, payload: dict[str, Any], message: str) -> None:
    with client(server) as c:
        r = c.post("/v1/messages", json=payload)
    assert r.status_code == 400
    data = r.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"
    assert message in data["error"]["message"]
    assert data["request_id"] == r.headers["request-id"]


def test_body_not_json_or_not_object(server: LocalServer) -> None:
    with client(server) as c:
        r = c.post("/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert "not valid JSON" in r.json()["error"]["message"]
        r = c.post("/v1/messages", json=[1, 2])
        assert r.status_code == 400
        assert "body: Input should be a valid dictionary" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", over_corpora(request_bodies))
def test_fixture_requests_are_accepted(path: Any) -> None:
    payload = load_json(path)
    endpoint = "/v1/messages" if "max_tokens" in payload else "/v1/messages/count_tokens"
    with LocalServer(policy=lambda _r: reply.text("ok")) as srv, client(srv) as c:
        r = c.post(endpoint, json=payload)
    assert r.status_code == 200, r.text


def test_thinking_signatures_are_checked() -> None:
    think = reply.with_thinking(
        reply.tool_use("get_weather", {"city": "Oslo"}, id="toolu_w1"), "I need the weather."
    )
    with (
        LocalServer(policy=Script([think, reply.text("Cold."), reply.text("again")])) as srv,
        client(srv) as c,
    ):
        payload = body(max_tokens=4000, thinking=THINK, tools=[WEATHER_TOOL], stream=True)
        turn = accumulate(parse_sse(c.post("/v1/messages", json=payload).content))
        assert [b["type"] for b in turn["content"]] == ["thinking", "tool_use"]
        assert turn["content"][0]["signature"]
        results = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_w1", "content": "-3C"}],
        }
        history = [*USER, {"role": "assistant", "content": turn["content"]}, results]
        assert c.post("/v1/messages", json={**payload, "messages": history}).status_code == 200
        edited = [dict(turn["content"][0], thinking="I need the weather!"), turn["content"][1]]
        history[1] = {"role": "assistant", "content": edited}
        r = c.post("/v1/messages", json={**payload, "messages": history})
        assert r.status_code == 400
        assert "Invalid `signature` in `thinking` block" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- policies


def test_script_exhausted_is_a_clear_500(server: LocalServer) -> None:
    with client(server) as c:
        r = c.post("/v1/messages", json=body())
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "api_error"
    assert "Script exhausted" in r.json()["error"]["message"]


def test_policy_errors_and_bad_returns_are_500() -> None:
    def boom(_req: Request) -> Any:
        raise KeyError("oops")

    with LocalServer(policy=boom) as srv, client(srv) as c:
        r = c.post("/v1/messages", json=body())
        assert r.status_code == 500
        assert "KeyError" in r.json()["error"]["message"]
        srv.policy = lambda _r: 42  # type: ignore[assignment,return-value]
        r = c.post("/v1/messages", json=body())
        assert r.status_code == 500
        assert "policy returned int" in r.json()["error"]["message"]


def test_script_items_and_dict_messages() -> None:
    script = Script(
        [
            {"content": [{"type": "text", "text": "from a dict"}]},
            lambda req: reply.text(f"call {req.index}"),
            {
                "id": "msg_fixed",
                "content": [{"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}}],
                "usage": {"input_tokens": 7, "output_tokens": 3},
            },
        ]
    )
    with LocalServer(policy=script) as srv, client(srv) as c:
        assert c.post("/v1/messages", json=body()).json()["content"][0]["text"] == "from a dict"
        assert c.post("/v1/messages", json=body()).json()["content"][0]["text"] == "call 1"
        data = c.post("/v1/messages", json=body()).json()
    assert data["id"] == "msg_fixed"
    assert data["stop_reason"] == "tool_use"
    assert data["usage"] == {"input_tokens": 7, "output_tokens": 3}
    assert script.used == 3 and script.remaining == 0


@pytest.mark.anyio
async def test_async_policy(anyio_backend: str) -> None:
    async def slow_policy(req: Request) -> Any:
        import asyncio  # runs on the server's own asyncio loop, whatever the test backend

        await asyncio.sleep(0.01)
        return reply.text("async ok")

    async with (
        LocalServer(policy=slow_policy) as srv,
        aclient(srv) as c,
    ):
        r = await c.post("/v1/messages", json=body())
    assert r.json()["content"][0]["text"] == "async ok"


def test_weather_workload_is_stateless_and_complete() -> None:
    with LocalServer(policy=WeatherWorkload(tool_turns=2, parallel=3)) as srv, client(srv) as c:
        messages: list[dict[str, Any]] = list(USER)
        for _turn in range(2):
            msg = c.post("/v1/messages", json=body(messages=messages, tools=[WEATHER_TOOL])).json()
            calls = [b for b in msg["content"] if b["type"] == "tool_use"]
            assert msg["stop_reason"] == "tool_use"
            assert len(calls) == 3
            assert all(b["name"] == "get_weather" and "city" in b["input"] for b in calls)
            messages.append({"role": "assistant", "content": msg["content"]})
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": b["id"], "content": "sunny"} for b in calls
                    ],
                }
            )
        final = c.post("/v1/messages", json=body(messages=messages, tools=[WEATHER_TOOL])).json()
        assert final["stop_reason"] == "end_turn"
        # thinking on: tool turns start with a signed thinking block that validates when sent back
        msg = c.post("/v1/messages", json=body(max_tokens=4000, thinking=THINK, tools=[WEATHER_TOOL])).json()
        assert msg["content"][0]["type"] == "thinking"


# --------------------------------------------------------------------------- SSE fidelity


def fixed_tool(tid: str, name: str, inp: dict[str, Any]) -> dict[str, Any]:
    return reply.tool_use_block(name, inp, tid)


SSE_CASES: list[tuple[str, Any]] = [
    ("text", reply.text("A fairly long answer with ünïcødé and emoji 🌦️ split into several deltas.")),
    ("empty input tool", reply.tool_uses([fixed_tool("toolu_a", "now", {})])),
    (
        "parallel tools with text",
        reply.tool_uses(
            [
                fixed_tool("toolu_a", "get_weather", {"city": "Tokyo"}),
                fixed_tool("toolu_b", "get_weather", {"city": "São Paulo", "units": ["c", "f"]}),
            ],
            text="Checking both.",
        ),
    ),
    ("thinking", reply.with_thinking(reply.text("done"), "Step one.\nStep two with a longer explanation.")),
    ("redacted", reply.with_thinking(reply.text("done"), redacted=True)),
    ("refusal", reply.refusal()),
    ("pause_turn", reply.pause_turn()),
    ("stop_sequence", reply.stop_sequence("one two", "three")),
    (
        "unknown block",
        reply.message(
            [
                {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
                {"type": "text", "text": "x"},
            ]
        ),
    ),
]


@pytest.mark.parametrize(("name", "rep"), SSE_CASES, ids=[c[0] for c in SSE_CASES])
def test_sse_reconstructs_the_json_message(name: str, rep: Any) -> None:
    rep.message["id"] = "msg_same"
    rep.message["usage"] = {"input_tokens": 12, "output_tokens": 34}
    with LocalServer(policy=lambda _r: rep) as srv, client(srv) as c:
        as_json = c.post("/v1/messages", json=body()).json()
        raw = c.post("/v1/messages", json=body(stream=True)).content
    events = parse_sse(raw)
    names = [e for e, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    for event, data in events:
        if event == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            first = data
            break
    else:
        first = None
    if first is not None:
        assert first["delta"]["partial_json"] == ""
    assert raw.count(b"event: ") == len(events)
    assert accumulate(events) == as_json


@pytest.mark.parametrize(
    "path", over_corpora(lambda root: [root / f"{name}.sse" for name in ROUND_TRIP[corpus_of(root)]])
)
def test_sse_of_real_messages_round_trips(path: Any) -> None:
    expected = load_json(expected_path(path))
    with LocalServer(policy=lambda _r: dict(expected), verify_signatures=False) as srv, client(srv) as c:
        raw = c.post("/v1/messages", json=body(stream=True)).content
    assert strip_nulls(accumulate(parse_sse(raw))) == strip_nulls(expected)


# --------------------------------------------------------------------------- faults


def test_error_reply_with_retry_headers(server: LocalServer) -> None:
    server.policy = Script(
        [
            reply.error(429, retry_after=3, retry_after_ms=2500, should_retry=True, headers={"x-extra": "1"}),
            reply.error(529),
            reply.error(
                429, message="spend limit", error_code="enforced_spend_limit_reached", should_retry=False
            ),
            reply.error(200, envelope_code=429, message="busy"),
        ]
    )
    with client(server) as c:
        r = c.post("/v1/messages", json=body())
        assert r.status_code == 429
        assert r.headers["retry-after"] == "3"
        assert r.headers["retry-after-ms"] == "2500"
        assert r.headers["x-should-retry"] == "true"
        assert r.headers["x-extra"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"
        r = c.post("/v1/messages", json=body())
        assert (r.status_code, r.json()["error"]["type"]) == (529, "overloaded_error")
        r = c.post("/v1/messages", json=body())
        assert r.json()["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
        assert r.headers["x-should-retry"] == "false"
        r = c.post("/v1/messages", json=body())
        assert (r.status_code, r.json()) == (200, {"code": 429, "message": "busy", "data": None})


@pytest.mark.parametrize("stream", [False, True])
def test_drop_and_reset_are_connection_errors(server: LocalServer, stream: bool) -> None:
    server.policy = Script([reply.drop(), reply.reset(), reply.text("recovered")])
    with client(server) as c:
        with pytest.raises(httpx2.TransportError):
            c.post("/v1/messages", json=body(stream=stream))
        with pytest.raises(httpx2.TransportError):
            c.post("/v1/messages", json=body(stream=stream))
        assert c.post("/v1/messages", json=body()).json()["content"][0]["text"] == "recovered"
    assert [r.status for r in server.requests] == [None, None, 200]


@pytest.mark.parametrize("stream", [False, True])
def test_drop_mid_body(server: LocalServer, stream: bool) -> None:
    server.policy = Script([reply.drop_mid_body(reply.text("x" * 200))])
    with client(server) as c, pytest.raises(httpx2.RemoteProtocolError):
        c.post("/v1/messages", json=body(stream=stream))


def read_stream_until_error(c: httpx2.Client, payload: dict[str, Any]) -> tuple[bytes, Exception | None]:
    chunks: list[bytes] = []
    error: Exception | None = None
    with c.stream("POST", "/v1/messages", json=payload) as r:
        assert r.status_code == 200
        try:
            for chunk in r.iter_bytes():
                chunks.append(chunk)
        except httpx2.TransportError as exc:
            error = exc
    return b"".join(chunks), error


def test_cut_stream_has_no_message_stop(server: LocalServer) -> None:
    server.policy = Script([reply.cut_stream(after_events=4, inner=reply.text("a longer text that is cut"))])
    with client(server) as c:
        raw, error = read_stream_until_error(c, body(stream=True))
    assert isinstance(error, httpx2.RemoteProtocolError)
    events = parse_sse(raw)
    assert [e for e, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    with pytest.raises(AssertionError, match="without message_stop"):
        accumulate(events)


def test_cut_stream_on_json_request_is_a_truncated_body(server: LocalServer) -> None:
    server.policy = Script([reply.cut_stream()])
    with client(server) as c, pytest.raises(httpx2.RemoteProtocolError):
        c.post("/v1/messages", json=body())


def test_error_event_mid_stream(server: LocalServer) -> None:
    server.policy = Script(
        [reply.error_event(after_events=4, inner=reply.text("partial text here")), reply.error_event()]
    )
    with client(server) as c:
        raw, error = read_stream_until_error(c, body(stream=True))
        assert error is None  # the response itself ends cleanly
        events = parse_sse(raw)
        assert [e for e, _ in events][-2:] == ["content_block_delta", "error"]
        assert events[-1][1] == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }
        r = c.post("/v1/messages", json=body())  # non-streaming: an HTTP error
        assert (r.status_code, r.json()["error"]["type"]) == (529, "overloaded_error")


def test_malformed_bodies(server: LocalServer) -> None:
    server.policy = Script(
        [reply.malformed(), reply.malformed(), reply.raw(502, b"<html>bad gateway</html>", "text/html")]
    )
    with client(server) as c:
        r = c.post("/v1/messages", json=body())
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            r.json()
        raw = c.post("/v1/messages", json=body(stream=True)).content
        assert isinstance(parse_sse(raw)[0][1], str)  # data is not JSON
        r = c.post("/v1/messages", json=body())
        assert (r.status_code, r.headers["content-type"], r.text) == (
            502,
            "text/html",
            "<html>bad gateway</html>",
        )


def test_max_tokens_cut_tool_use(server: LocalServer) -> None:
    server.policy = lambda _r: reply.max_tokens_cut_tool_use(
        "get_weather", '{"city": "Pa', text="Let me check"
    )
    with client(server) as c:
        data = c.post("/v1/messages", json=body()).json()
        assert data["stop_reason"] == "max_tokens"
        assert data["content"][1]["input"] == {}
        events = parse_sse(c.post("/v1/messages", json=body(stream=True)).content)
    partial = "".join(
        d["delta"]["partial_json"]
        for e, d in events
        if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert partial == '{"city": "Pa'
    assert {"type": "content_block_stop", "index": 1} not in [d for _, d in events]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-1][0] == "message_stop"


def test_latency_and_delay() -> None:
    with (
        LocalServer(policy=Script([reply.text("a"), reply.delay(0.2, reply.text("b"))]), latency=0.1) as srv,
        client(srv) as c,
    ):
        t0 = time.perf_counter()
        c.post("/v1/messages", json=body())
        t1 = time.perf_counter()
        c.post("/v1/messages", json=body())
        t2 = time.perf_counter()
    assert 0.1 <= t1 - t0 < 1.0
    assert 0.3 <= t2 - t1 < 1.5


def test_latency_counts_from_arrival_and_covers_the_servers_own_work() -> None:
    # The policy (the server's own work) runs inside the latency window, not before or after it: a
    # slow policy shorter than the latency does not lengthen the answer, one longer than it does.
    called: list[float] = []

    def slow_policy(_request: Request) -> dict[str, Any]:
        called.append(time.perf_counter())
        time.sleep(1.0)
        return {"content": [{"type": "text", "text": "ok"}]}

    with LocalServer(policy=slow_policy, latency=2.0) as srv, client(srv) as c:
        t0 = time.perf_counter()
        assert c.post("/v1/messages", json=body()).status_code == 200
        elapsed = time.perf_counter() - t0
        srv.latency = 0.1
        t1 = time.perf_counter()
        assert c.post("/v1/messages", json=body()).status_code == 200
        slow = time.perf_counter() - t1
    assert called[0] - t0 < 1.0  # the policy ran at once, not after the 2 s latency
    assert 2.0 <= elapsed < 2.6  # latency respected; the 1 s policy hidden inside it (else 3 s)
    assert slow >= 1.0  # a policy longer than the latency delays the answer past it


def test_event_delay_streams_incrementally(server: LocalServer) -> None:
    rep = reply.text("slow")
    rep.event_delay = 0.3  # the whole stream takes over 2 s: a buffered one would show below
    server.policy = lambda _r: rep
    with client(server) as c, c.stream("POST", "/v1/messages", json=body(stream=True)) as r:
        t0 = time.perf_counter()
        first = next(r.iter_lines())
        assert time.perf_counter() - t0 < 1.0
        assert first == "event: message_start"


# --------------------------------------------------------------------------- HTTP details


def raw_exchange(srv: LocalServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_chunked_request_body_is_refused(server: LocalServer) -> None:
    out = raw_exchange(
        server,
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 411 ")
    assert b"connection: close" in out


def test_malformed_request_line(server: LocalServer) -> None:
    assert raw_exchange(server, b"HELLO\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(server, b"GET /v1/models HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: a\x00b\r\n\r\n", b"400"),  # NUL in a value
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nbad name: v\r\n\r\n", b"400"),  # space in a name
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"400"),
        (b"POST /v1/messages HTTP/2.0\r\nHost: x\r\n\r\n", b"505"),  # not HTTP/1.x
    ],
    ids=["nul-in-value", "space-in-name", "two-lengths", "negative-length", "http2-line"],
)
def test_a_malformed_request_is_answered_with_its_status_and_closed(
    server: LocalServer, request_bytes: bytes, status: bytes
) -> None:
    out = raw_exchange(server, request_bytes)
    assert out.startswith(b"HTTP/1.1 " + status + b" "), out[:200]
    assert b"connection: close" in out
    assert server.requests_received == 0  # none of them is taken for a request


def test_an_incomplete_request_head_gets_400_and_an_idle_close_gets_nothing(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""


def test_pipelined_keep_alive_and_http10_close(server: LocalServer) -> None:
    req = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: sk-test\r\nanthropic-version: 2023-06-01\r\n\r\n"
    last = req.replace(b"Host: x", b"Host: x\r\nConnection: close")
    out = raw_exchange(server, req + req + last)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    out = raw_exchange(server, req.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert out.count(b"HTTP/1.1 200 OK") == 1 and b"connection: close" in out


@pytest.mark.anyio
async def test_300_concurrent_keep_alive_requests(anyio_backend: str) -> None:
    n = 300
    statuses: list[int] = []
    limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
    async with (
        LocalServer(policy=WeatherWorkload(tool_turns=1, parallel=2), latency=0.05) as srv,
        aclient(srv, limits=limits) as c,
    ):

        async def one(k: int) -> None:
            r = await c.post("/v1/messages", json=body(stream=k % 2 == 0))
            if k % 2 == 0:
                assert accumulate(parse_sse(r.content))["stop_reason"] == "tool_use"
            statuses.append(r.status_code)

        # 300 at once (the server's latency keeps them all in flight), then more on the same connections.
        # (httpx2's pool is O(connections) per request, so the client, not the server, bounds this test.)
        for count in (n, 30):
            async with anyio.create_task_group() as tg:
                for k in range(count):
                    tg.start_soon(one, k)
    assert statuses == [200] * (n + 30)
    assert len(srv.requests) == n + 30
    assert srv.connections_accepted <= n


# --------------------------------------------------------------------------- command line


def test_serve_subprocess_starts_answers_and_stops() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentkit.testing",
            "serve",
            "--port",
            "0",
            "--policy",
            "weather",
            "-T",
            "1",
            "-K",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = raw_post(url + "/v1/messages", json=body(tools=[WEATHER_TOOL]), headers=headers(), timeout=5)
        assert r.status_code == 200
        assert [b["name"] for b in r.json()["content"]] == ["get_weather", "get_weather"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
