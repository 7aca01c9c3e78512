"""Hostile-but-real HTTP behaviour (gateways, proxies, broken servers), on both HTTP stacks.

Each case runs through ``agentkit.Client`` (or ``Agent``) against :class:`agentkit.testing.LocalServer`
with a hostile reply from :mod:`agentkit.testing`, on ``http="httpx"`` and ``http="aiohttp"`` (asyncio
only), on asyncio and trio.

| behaviour | expected | test |
|---|---|---|
| SSE buffered by a gateway into one `Content-Length` body sent with the head | streams fine (`Client.stream`, `Agent.stream`) | `test_buffered_sse_with_a_content_length_streams` |
| early `413` while a large body uploads (server stops reading) | `RequestTooLargeError`, body sent once | `test_early_413_during_a_large_upload_is_typed_and_sent_once` |
| stale bytes written onto an idle kept-alive connection | never served as the next answer | `test_stale_bytes_on_an_idle_connection_are_never_the_next_answer` |
| bare-LF line ends in the head | accepted (both stacks), never a hang | `test_bare_lf_response_is_accepted_not_a_hang` |
| `Content-Encoding: gzip` SSE and JSON | decoded, SSE still streams | `test_gzip_answers_are_decoded` |
| gzip bomb | `ProtocolError` past `max_response_bytes` (decoded size), not retried | `test_gzip_bomb_is_refused_by_decoded_size` |
"""  # noqa: E501

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import pytest

from agentkit import (
    Agent,
    AgentKitError,
    APIConnectionError,
    APITimeoutError,
    Client,
    ProtocolError,
    RequestTooLargeError,
)
from agentkit.testing import LocalServer, Script, StaleBytesReply, reply
from agentkit.testing._hostile import stale_message_text

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture(params=[False, True], ids=["json", "sse"])
def stream(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def client_for(server: LocalServer, http_stack: str, **options: Any) -> Client:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 5.0)
    return Client(api_key="sk-test", base_url=server.base_url, http=http_stack, **options)  # type: ignore[arg-type]


async def ask(client: Client, *, stream: bool, messages: list[dict[str, Any]] | None = None) -> str:
    messages = messages or MESSAGES
    if not stream:
        return (await client.create(model=MODEL, max_tokens=64, messages=messages)).text
    async with client.stream(model=MODEL, max_tokens=64, messages=messages) as events:
        kinds = [event.type async for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    return events.message.text


async def test_buffered_sse_with_a_content_length_streams(http_stack: str) -> None:
    script = Script([reply.buffered_sse(reply.text("buffered answer")) for _ in range(2)])
    with LocalServer(script) as server:
        async with client_for(server, http_stack) as client:
            assert await ask(client, stream=True) == "buffered answer"
            agent = Agent(client, model=MODEL, stream=True)
            async with agent.stream("Hello") as events:
                kinds = [event.kind async for event in events]
    assert "text_delta" in kinds and kinds[-1] == "run_finished"
    assert server.requests[0].headers["accept"] == "text/event-stream"
    assert server.connections_accepted == 1  # the buffered body was read whole: connection reused


@pytest.mark.parametrize("linger", [True, False], ids=["lingering-close", "reset"])
async def test_early_413_during_a_large_upload_is_typed_and_sent_once(http_stack: str, linger: bool) -> None:
    # 8 MB of prompt against a 64 KB limit: the server answers 413 from the head, before the client
    # could have written the body (more than both socket buffers hold). With a lingering close it reads
    # and drops the body; with a reset it stops reading and closes (the client's writes fail).
    big = [{"role": "user", "content": "x" * 8_000_000}]
    with LocalServer(max_body=64 * 1024, linger=linger) as server:
        async with client_for(server, http_stack, max_retries=0 if not linger else 2) as client:
            with pytest.raises(AgentKitError) as caught:
                await ask(client, stream=False, messages=big)
    if linger or http_stack == "aiohttp":
        # aiohttp reads the answer while it uploads, so it sees the 413 even when the upload fails.
        assert isinstance(caught.value, RequestTooLargeError)
        assert caught.value.status_code == 413
    else:
        # httpcore reads the answer only after the write failed, and by then the reset has discarded
        # it: a connection error (retryable; documented in the README).
        assert isinstance(caught.value, RequestTooLargeError | APIConnectionError)
    assert [r.status for r in server.requests] == [413]  # one upload: not retried, not re-sent
    assert server.connections_accepted == 1


async def test_stale_bytes_on_an_idle_connection_are_never_the_next_answer(
    http_stack: str, stream: bool
) -> None:
    stale = reply.stale_bytes(reply.text("first answer"))
    assert isinstance(stale, StaleBytesReply)
    with LocalServer(Script([stale, reply.text("second answer")])) as server:
        async with client_for(server, http_stack) as client:
            assert await ask(client, stream=stream) == "first answer"
            assert await anyio.to_thread.run_sync(stale.written.wait, 5.0)
            second = await ask(client, stream=stream)
    assert second != stale_message_text()
    assert second == "second answer"
    assert len(server.requests) == 2
    assert server.connections_accepted == 2  # the connection with unread bytes was not reused


async def test_bare_lf_response_is_accepted_not_a_hang(http_stack: str, stream: bool) -> None:
    with LocalServer(Script([reply.bare_lf(reply.text("bare LF")), reply.text("after")])) as server:
        async with client_for(server, http_stack) as client:
            try:
                first = await ask(client, stream=stream)
            except APITimeoutError:  # pragma: no cover - the failure this test exists for
                pytest.fail("a bare-LF answer hung the client until its timeout")
            after = await ask(client, stream=stream)
    assert first == "bare LF"
    assert after == "after"


async def test_gzip_answers_are_decoded(http_stack: str, stream: bool) -> None:
    inner = reply.message([{"type": "text", "text": "compressed " * 50}], "end_turn")
    inner.event_delay = 0.001  # SSE: one compressed chunk per event
    with LocalServer(Script([reply.gzip(inner), reply.text("plain")])) as server:
        async with client_for(server, http_stack) as client:
            text = await ask(client, stream=stream)
            after = await ask(client, stream=stream)
    assert text == "compressed " * 50
    assert after == "plain"
    assert "gzip" in server.requests[0].headers["accept-encoding"]
    assert server.connections_accepted == 1


@pytest.mark.parametrize(
    ("size", "cap"),
    [(8 * 1024 * 1024, 1024 * 1024), (65 * 1024 * 1024, None)],
    ids=["own-cap", "default-cap"],
)
async def test_gzip_bomb_is_refused_by_decoded_size(
    http_stack: str, stream: bool, size: int, cap: int | None
) -> None:
    options: dict[str, Any] = {"max_retries": 2}
    if cap is not None:
        options["max_response_bytes"] = cap
    with LocalServer(Script([reply.gzip_bomb(size)] * 3)) as server:
        async with client_for(server, http_stack, **options) as client:
            with pytest.raises(ProtocolError, match="max_response_bytes"):
                await ask(client, stream=stream)
    assert len(server.requests) == 1  # a refused answer is not retried
