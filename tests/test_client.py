"""The Client through an in-memory transport: auth, base URLs, envelopes, errors and retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

import agentkit
from agentkit import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    Client,
    ConfigurationError,
    ConflictError,
    GatewayTimeoutError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RequestTooLargeError,
)
from agentkit.types import Message, ToolUseBlock

from .conftest import (
    OWN,
    envelopes,
    error_bodies,
    expected_path,
    load_json,
    message_bodies,
    named_over_corpora,
    over_corpora,
    own,
    strip_nulls,
)

pytestmark = pytest.mark.anyio

KEY = "sk-ant-test-SECRET-0123456789"
MESSAGES = [{"role": "user", "content": "Hello"}]


class Recorder:
    """A MockTransport handler answering from a list of (status, body, headers) and recording requests."""

    def __init__(self, *answers: tuple[int, Any, dict[str, str]] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx2.Response(status, content=content, headers={"request-id": "req_test", **headers})

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("base_url", "https://api.example.test")
        return Client(transport=httpx2.MockTransport(self), **kwargs)


def ok(body: Any | None = None) -> tuple[int, Any, dict[str, str]]:
    return (200, body or load_json(own("end_turn")), {})


@pytest.mark.parametrize("path", named_over_corpora("tool_use"))
async def test_create_returns_a_typed_message_and_sends_the_wire_body(path: Path) -> None:
    recorder = Recorder(ok(load_json(path)))
    async with recorder.client() as client:
        message = await client.create(
            model="claude-sonnet-4-6",
            max_tokens=256,
            messages=MESSAGES,
            tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}],
            tool_choice={"type": "auto"},
            system="be brief",
        )
    assert isinstance(message, Message)
    assert isinstance(message.tool_uses[0], ToolUseBlock)
    assert message.request_id == "req_test"
    request = recorder.requests[0]
    assert request.url == "https://api.example.test/v1/messages"
    body = json.loads(request.content)
    assert body == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hello"}],
        "system": "be brief",
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "auto"},
    }
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["x-api-key"] == KEY
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("kwargs", "header", "value"),
    [
        ({}, "x-api-key", KEY),
        ({"provider": "poyo"}, "x-api-key", KEY),
        ({"provider": "toapis"}, "authorization", f"Bearer {KEY}"),
        ({"auth": "bearer"}, "authorization", f"Bearer {KEY}"),
        ({"provider": "toapis", "auth": "x-api-key"}, "x-api-key", KEY),
    ],
)
async def test_auth_header_per_provider(kwargs: dict[str, Any], header: str, value: str) -> None:
    recorder = Recorder(ok())
    async with recorder.client(**kwargs) as client:
        await client.create(model="m", max_tokens=1, messages=MESSAGES)
    headers = recorder.requests[0].headers
    assert headers[header] == value
    other = "authorization" if header == "x-api-key" else "x-api-key"
    assert other not in headers  # exactly one auth header: some gateways refuse both


@pytest.mark.parametrize(
    "base_url",
    [
        "https://gw.example.test",
        "https://gw.example.test/",
        "https://gw.example.test/v1",
        "https://gw.example.test/v1/",
    ],
)
async def test_base_url_with_or_without_v1(base_url: str) -> None:
    recorder = Recorder(ok())
    async with recorder.client(base_url=base_url) as client:
        await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert str(recorder.requests[0].url) == "https://gw.example.test/v1/messages"


async def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://env.example.test/v1")
    client = Client()
    assert client.base_url == "https://env.example.test"
    assert client._headers["x-api-key"] == KEY
    await client.aclose()


@pytest.mark.parametrize("bad", ["not a url", "ftp://x.test", "https://"])
def test_bad_base_url_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        Client(api_key=KEY, base_url=bad)


def test_proxy_provider_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="base_url"):
        Client(api_key=KEY, provider="poyo")


def test_the_key_never_shows_in_repr() -> None:
    client = Client(api_key=KEY, base_url="https://x.test")
    assert KEY not in repr(client)
    assert KEY not in repr(client._api_key)
    assert KEY not in str(vars(client).get("_api_key"))


def _envelopes(root: Path, *, error: bool) -> list[Path]:
    return [p for p in envelopes(root) if ("error" in load_json(expected_path(p))) is error]


@pytest.mark.parametrize("path", over_corpora(lambda root: _envelopes(root, error=False)))
async def test_envelope_is_unwrapped(path: Path) -> None:
    recorder = Recorder(ok(load_json(path)))
    async with recorder.client(provider="poyo") as client:
        message = await client.create(model="m", max_tokens=1, messages=MESSAGES)
    expected = load_json(expected_path(path))
    assert strip_nulls(message.model_dump(mode="json", exclude_none=True)) == strip_nulls(expected)


@pytest.mark.parametrize("path", over_corpora(lambda root: _envelopes(root, error=True)))
async def test_envelope_error_is_typed(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentkit._client._INITIAL_BACKOFF", 0.001)
    body = load_json(path)
    recorder = Recorder(ok(body))
    async with recorder.client(provider="poyo", max_retries=2) as client:
        with pytest.raises(ERROR_CLASSES[body["code"]]) as info:
            await client.create(model="m", max_tokens=1, messages=MESSAGES)
    expected = load_json(expected_path(path))["error"]
    assert info.value.error_type == expected["type"]
    assert info.value.message == expected["message"]
    # the envelope code retries like the HTTP status would: authentication never, rate limits yes
    assert len(recorder.requests) == (3 if body["code"] in RETRIED else 1)


@pytest.mark.parametrize("path", over_corpora(message_bodies))
async def test_message_bodies_parse_to_the_same_message(path: Path) -> None:
    body = load_json(path)
    recorder = Recorder(ok(body))
    async with recorder.client() as client:
        message = await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert strip_nulls(message.model_dump(mode="json", exclude_none=True)) == strip_nulls(body)
    assert [b.id for b in message.tool_uses] == [b["id"] for b in body["content"] if b["type"] == "tool_use"]


ERROR_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: BillingError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    429: RateLimitError,
    500: InternalServerError,
    504: GatewayTimeoutError,
    529: OverloadedError,
}
RETRIED = {409, 429, 500, 504, 529}


@pytest.mark.parametrize("path", over_corpora(error_bodies))
async def test_each_error_body_maps_to_its_exception_and_retry_rule(path: Path) -> None:
    status = int(path.name.split("_")[0])
    body = load_json(path)
    recorder = Recorder((status, body, {"retry-after-ms": "1"}))
    async with recorder.client(max_retries=2) as client:
        with pytest.raises(ERROR_CLASSES[status]) as info:
            await client.create(model="m", max_tokens=1, messages=MESSAGES)
    error = info.value
    assert error.status_code == status
    assert error.error_type == body["error"]["type"]
    assert error.message == body["error"]["message"]
    assert error.request_id == "req_test"  # the header wins, as in the SDK
    spend_limit = body["error"].get("details", {}).get("error_code") == "enforced_spend_limit_reached"
    expected_attempts = 3 if status in RETRIED and not spend_limit else 1
    assert len(recorder.requests) == expected_attempts
    assert KEY not in str(error) and KEY not in repr(error)


async def test_retry_succeeds_and_counts_attempts_in_a_header() -> None:
    recorder = Recorder(
        (529, load_json(OWN / "errors/529_overloaded_error.json"), {"retry-after": "0.001"}),
        (500, b"upstream exploded", {"retry-after": "0.001"}),
        ok(),
    )
    async with recorder.client(max_retries=2) as client:
        message = await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert message.stop_reason == "end_turn"
    assert [r.headers.get("x-stainless-retry-count") for r in recorder.requests] == [None, "1", "2"]


async def test_x_should_retry_header_wins() -> None:
    refuse = Recorder((529, load_json(OWN / "errors/529_overloaded_error.json"), {"x-should-retry": "false"}))
    async with refuse.client() as client:
        with pytest.raises(OverloadedError):
            await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert len(refuse.requests) == 1
    force = Recorder(
        (
            400,
            load_json(OWN / "errors/400_invalid_request_error.json"),
            {"x-should-retry": "true", "retry-after-ms": "1"},
        ),
        ok(),
    )
    async with force.client() as client:
        await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert len(force.requests) == 2


async def test_connection_errors_are_retried_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentkit._client._INITIAL_BACKOFF", 0.001)
    recorder = Recorder(httpx2.ConnectError("refused"))
    async with recorder.client(max_retries=1) as client:
        with pytest.raises(APIConnectionError, match="connection to"):
            await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert len(recorder.requests) == 2


async def test_non_json_error_body_falls_back_to_the_status() -> None:
    recorder = Recorder((413, b"<html>Request Entity Too Large</html>", {}))
    async with recorder.client() as client:
        with pytest.raises(RequestTooLargeError) as info:
            await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert info.value.error_type == "request_too_large"
    assert "32 MB" in str(info.value)


async def test_invalid_json_on_200_is_a_protocol_error() -> None:
    recorder = Recorder((200, b"{nope", {}))
    async with recorder.client() as client:
        with pytest.raises(ProtocolError, match="invalid JSON"):
            await client.create(model="m", max_tokens=1, messages=MESSAGES)


@pytest.mark.parametrize("path", named_over_corpora("count_tokens_response"))
async def test_count_tokens(path: Path) -> None:
    answer = load_json(path)
    recorder = Recorder(ok(answer))
    request = load_json(path.parent / ("requests/" + path.name.removesuffix(".response.json") + ".json"))
    async with recorder.client() as client:
        count = await client.count_tokens(
            model=request["model"], messages=request["messages"], system=request.get("system")
        )
    assert count == answer["input_tokens"]
    assert recorder.requests[0].url.path == "/v1/messages/count_tokens"
    assert "max_tokens" not in json.loads(recorder.requests[0].content)


@pytest.mark.parametrize("path", named_over_corpora("parallel_stream"))
async def test_stream_yields_typed_events_and_the_final_message(path: Path) -> None:
    sse = await anyio.Path(path).read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(sse), 50):
            yield sse[start : start + 50]

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx2.Response(
            200, content=chunks(), headers={"content-type": "text/event-stream; charset=utf-8"}
        )

    client = Client(api_key=KEY, base_url="https://x.test", transport=httpx2.MockTransport(handler))
    async with client.stream(model="m", max_tokens=1, messages=MESSAGES) as stream:
        kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    expected = strip_nulls(load_json(expected_path(path)))
    assert strip_nulls(stream.message.model_dump(mode="json", exclude_none=True)) == expected
    await client.aclose()


async def test_dict_input_is_validated_into_models() -> None:
    recorder = Recorder(ok())
    async with recorder.client() as client:
        with pytest.raises(ValueError, match="role"):
            await client.create(model="m", max_tokens=1, messages=[{"role": "robot", "content": "hi"}])
    assert recorder.requests == []


def test_public_api_is_exported() -> None:
    for name in agentkit.__all__:
        assert hasattr(agentkit, name)


@pytest.mark.parametrize("path", over_corpora(lambda root: _envelopes(root, error=True)))
async def test_envelope_error_body_with_an_http_error_status_keeps_its_message(path: Path) -> None:
    body = load_json(path)
    recorder = Recorder((body["code"], body, {}))
    async with recorder.client(provider="poyo", max_retries=0) as client:
        with pytest.raises(ERROR_CLASSES[body["code"]]) as info:
            await client.create(model="m", max_tokens=1, messages=MESSAGES)
    assert info.value.message == load_json(expected_path(path))["error"]["message"]


class _ReadsContent(httpx2.AsyncBaseTransport):
    """A user's transport that reads ``request.content`` without ``aread()`` (MockTransport reads
    first, so it would not notice a request built around an unread stream)."""

    def __init__(self) -> None:
        self.seen: list[tuple[list[tuple[bytes, bytes]], bytes]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append((request.headers.raw, request.content))
        return httpx2.Response(200, json=ok()[1])


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        ("https://api.example.test", b"api.example.test"),
        ("http://127.0.0.1:8443/v1", b"127.0.0.1:8443"),
        ("https://bücher.test", b"xn--bcher-kva.test"),
    ],
)
async def test_a_request_carries_its_body_and_framing_headers_once(base_url: str, host: bytes) -> None:
    transport = _ReadsContent()
    async with Client(api_key=KEY, base_url=base_url, transport=transport, max_retries=0) as client:
        await client.create(model="m", max_tokens=5, messages=MESSAGES)
        async with client.stream(model="m", max_tokens=5, messages=MESSAGES) as stream:
            [event async for event in stream]  # a JSON answer to a stream request: still a Message
    for raw, content in transport.seen:
        names = [name.lower() for name, _ in raw]
        assert len(names) == len(set(names)), names  # nothing sent twice
        assert (raw[0][0].lower(), raw[0][1]) == (b"host", host)  # Host first, as RFC 9110 asks
        assert {k.lower(): v for k, v in raw}[b"content-length"] == str(len(content)).encode()
        assert json.loads(content)["messages"] == MESSAGES
    assert [json.loads(content).get("stream") for _, content in transport.seen] == [None, True]
