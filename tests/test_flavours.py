"""Round trips against the local server in each provider flavour, auth failures, and retry timing.

Flavours (wire reference §1, §11): ``anthropic`` (``x-api-key`` or Bearer, not both), ``poyo``
(``x-api-key`` + ``anthropic-version`` required, JSON answers wrapped in ``{"code": 200, "data": …}``),
``toapis`` (Bearer or ``x-api-key``). Each is driven by the matching ``Client(provider=...)``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from agentkit import AuthenticationError, Client, InternalServerError, RateLimitError
from agentkit.testing import FunctionPolicy, LocalServer, Request, Script, reply
from agentkit.types import Message

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
KEY = "sk-flavour-key-0123456789"
MESSAGES = [{"role": "user", "content": "Hello"}]

# (server flavour, client provider, client auth override, header the key must travel in)
CASES = [
    pytest.param("anthropic", "anthropic", None, "x-api-key", id="anthropic-x-api-key"),
    pytest.param("anthropic", "anthropic", "bearer", "authorization", id="anthropic-bearer"),
    pytest.param("poyo", "poyo", None, "x-api-key", id="poyo-x-api-key"),
    pytest.param("toapis", "toapis", None, "authorization", id="toapis-bearer"),
    pytest.param("toapis", "toapis", "x-api-key", "x-api-key", id="toapis-x-api-key"),
]


def make_client(server: LocalServer, provider: Any, auth: Any, **kwargs: Any) -> Client:
    kwargs.setdefault("api_key", KEY)
    return Client(base_url=server.base_url, provider=provider, auth=auth, **kwargs)


def assert_key_header(request: Request, header: str, key: str = KEY) -> None:
    expected = f"Bearer {key}" if header == "authorization" else key
    assert request.headers.get(header) == expected
    other = "x-api-key" if header == "authorization" else "authorization"
    assert other not in request.headers, "the key must travel in exactly one header"
    assert request.headers.get("anthropic-version") == "2023-06-01"


async def stream_text(client: Client) -> Message:
    async with client.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    return stream.message


@pytest.mark.parametrize(("flavour", "provider", "auth", "header"), CASES)
async def test_round_trip_create_and_stream(flavour: Any, provider: Any, auth: Any, header: str) -> None:
    policy = Script([reply.text("plain answer"), reply.text("streamed answer")])
    with LocalServer(policy, flavour=flavour, api_key=KEY) as server:
        async with make_client(server, provider, auth) as client:
            message = await client.create(model=MODEL, max_tokens=64, messages=MESSAGES)
            streamed = await stream_text(client)
    assert message.text == "plain answer"
    assert message.id.startswith("msg_") and message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert streamed.text == "streamed answer"
    assert streamed.stop_reason == "end_turn"
    requests = server.requests
    assert [r.status for r in requests] == [200, 200]
    assert [r.stream for r in requests] == [False, True]
    for request in requests:
        assert_key_header(request, header)


async def test_poyo_envelope_is_really_sent_and_unwrapped() -> None:
    """The poyo flavour does wrap its JSON answers; the client hands back the inner Message."""
    with LocalServer(Script([reply.text("inside the envelope")]), flavour="poyo", api_key=KEY) as server:
        async with make_client(server, "poyo", None) as client:
            response = await client._http.post(
                server.base_url + "/v1/messages",
                json={"model": MODEL, "max_tokens": 16, "messages": MESSAGES},
                headers=client._headers_for(0, None),
            )
            body = response.json()
            assert body["code"] == 200 and body["data"]["type"] == "message"
            server.policy = Script([reply.text("inside the envelope")])
            message = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.text == "inside the envelope"


@pytest.mark.parametrize(("flavour", "provider", "auth", "header"), CASES)
async def test_wrong_key_is_authentication_error_and_not_retried(
    flavour: Any, provider: Any, auth: Any, header: str
) -> None:
    with LocalServer(Script([]), flavour=flavour, api_key=KEY) as server:
        async with make_client(
            server, provider, auth, api_key="sk-wrong-key-000000", max_retries=3
        ) as client:
            with pytest.raises(AuthenticationError) as create_error:
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
            assert len(server.requests) == 1  # not retried
            with pytest.raises(AuthenticationError) as stream_error:
                await stream_text(client)
            assert len(server.requests) == 2  # not retried either
    for info in (create_error, stream_error):
        assert info.value.status_code == 401
        assert "sk-wrong-key" not in str(info.value)
    assert [r.status for r in server.requests] == [401, 401]
    assert_key_header(server.requests[0], header, "sk-wrong-key-000000")


@pytest.mark.parametrize(("flavour", "provider", "auth", "header"), CASES)
async def test_missing_key_is_authentication_error_and_not_retried(
    flavour: Any, provider: Any, auth: Any, header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with LocalServer(Script([]), flavour=flavour, api_key=KEY) as server:
        async with make_client(server, provider, auth, api_key=None, max_retries=3) as client:
            with pytest.raises(AuthenticationError):
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
            with pytest.raises(AuthenticationError):
                await stream_text(client)
    assert [r.status for r in server.requests] == [401, 401]
    for request in server.requests:
        assert "x-api-key" not in request.headers and "authorization" not in request.headers


# --- retries, proven by the server's request count and the arrival times -------------------------


class Timed:
    """First request: ``fault``; then a text answer. Records ``time.monotonic()`` at each arrival."""

    def __init__(self, fault: Any, faults: int = 1) -> None:
        self.fault = fault
        self.faults = faults
        self.arrivals: list[float] = []

    def __call__(self, request: Request) -> Any:
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) <= self.faults:
            return self.fault
        return reply.text("after the retry")


@pytest.mark.parametrize("mode", ["create", "stream"])
@pytest.mark.parametrize(
    ("flavour", "provider"), [("anthropic", "anthropic"), ("poyo", "poyo"), ("toapis", "toapis")]
)
async def test_429_retry_honours_retry_after(flavour: Any, provider: Any, mode: str) -> None:
    policy = Timed(reply.error(429, retry_after=0.2))
    with LocalServer(FunctionPolicy(policy), flavour=flavour, api_key=KEY) as server:
        async with make_client(server, provider, None, max_retries=2) as client:
            if mode == "create":
                message = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
            else:
                message = await stream_text(client)
    assert message.text == "after the retry"
    assert [r.status for r in server.requests] == [429, 200]
    assert server.requests[1].headers.get("x-stainless-retry-count") == "1"
    assert "x-stainless-retry-count" not in server.requests[0].headers
    assert policy.arrivals[1] - policy.arrivals[0] >= 0.2  # lower bound only: cannot flake


async def test_retry_after_ms_wins_over_retry_after() -> None:
    policy = Timed(reply.error(529, retry_after=30, retry_after_ms=150))
    with LocalServer(FunctionPolicy(policy), api_key=KEY) as server:
        async with make_client(server, "anthropic", None, max_retries=1) as client:
            message = await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert message.text == "after the retry"
    assert len(server.requests) == 2
    assert policy.arrivals[1] - policy.arrivals[0] >= 0.15


async def test_retries_stop_at_max_retries_and_raise_the_last_error() -> None:
    policy = Timed(reply.error(429, retry_after=0.01), faults=10)
    with LocalServer(FunctionPolicy(policy), api_key=KEY) as server:
        async with make_client(server, "anthropic", None, max_retries=2) as client:
            with pytest.raises(RateLimitError) as info:
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert info.value.retry_after == pytest.approx(0.01)
    assert [r.status for r in server.requests] == [429, 429, 429]  # 1 + max_retries
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == [None, "1", "2"]


async def test_should_retry_false_header_wins_over_a_retryable_status() -> None:
    policy = Timed(reply.error(503, should_retry=False), faults=10)
    with LocalServer(FunctionPolicy(policy), api_key=KEY) as server:
        async with make_client(server, "anthropic", None, max_retries=3) as client:
            with pytest.raises(InternalServerError) as info:
                await client.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    assert info.value.status_code == 503
    assert len(server.requests) == 1
