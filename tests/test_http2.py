"""``Client(http2=True)`` against a real HTTP/2 server: hypercorn over TLS, ALPN-negotiated ``h2``.

The server is a small ASGI app answering ``POST /v1/messages`` from the own fixtures (a JSON Message,
or the SSE stream when the body asks for ``stream``), and recording each request's HTTP version, the
client's port (one port: one connection) and its headers. What must hold on HTTP/2: a JSON answer and a
stream both arrive whole, concurrent requests share one connection (multiplexed, not queued behind each
other: proven with a barrier in the app), the framing headers agentkit sets are valid HTTP/2 (its
``host`` field becomes ``:authority``, nothing is sent twice), and a retryable status is retried.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentkit import Client, OverloadedError

from ._rawserver import TLSFiles, make_certificates

pytest.importorskip("h2", reason="HTTP/2 needs h2 (the dev extra installs it)")
hypercorn_asyncio = pytest.importorskip(
    "hypercorn.asyncio", reason="the HTTP/2 server is hypercorn (dev extra)"
)
from hypercorn.config import Config  # noqa: E402

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures"
MESSAGE = (FIXTURES / "message_end_turn.json").read_bytes()
STREAM = (FIXTURES / "text_small_deltas.sse").read_bytes()
STREAM_TEXT = json.loads((FIXTURES / "text_small_deltas.expected.json").read_text())["content"][0]["text"]
OVERLOADED = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}).encode()

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Seen:
    version: str
    port: int
    headers: dict[str, str]
    names: list[str]  # every header field as it came, to see none is sent twice
    body: dict[str, Any]


@dataclass
class App:
    """The ASGI app; ``barrier`` (when set) holds each JSON answer until that many requests are in."""

    seen: list[Seen] = field(default_factory=list)
    barrier: asyncio.Barrier | None = None
    overloaded_first: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.loads(b"".join(chunks))
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        names = [k.decode() for k, _ in scope["headers"]]
        self.seen.append(Seen(scope["http_version"], scope["client"][1], headers, names, body))
        if len(self.seen) <= self.overloaded_first:
            await _answer(send, 529, "application/json", OVERLOADED)
        elif body.get("stream"):
            await _answer(send, 200, "text/event-stream", STREAM)
        else:
            if self.barrier is not None:
                await asyncio.wait_for(self.barrier.wait(), 10)
            await _answer(send, 200, "application/json", MESSAGE)


async def _answer(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"request-id", b"req_h2")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Server:
    url: str
    app: App


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server(tls_files: TLSFiles) -> Iterator[Server]:
    """hypercorn in a thread of its own (its own event loop), on a port of 127.0.0.1 bound here first."""
    app = App()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here on
    config.certfile, config.keyfile = str(tls_files.cert), str(tls_files.key)
    config.alpn_protocols = ["h2"]
    config.loglevel = "WARNING"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    serve = hypercorn_asyncio.serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    thread = threading.Thread(target=loop.run_until_complete, args=(serve,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:  # listening once a TCP connection is accepted
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "hypercorn did not start listening"
            time.sleep(0.02)
    try:
        yield Server(f"https://127.0.0.1:{port}", app)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def _client(server: Server, tls_files: TLSFiles, **options: Any) -> Client:
    options.setdefault("max_retries", 0)
    return Client(api_key="sk-test", base_url=server.url, http2=True, verify=str(tls_files.ca), **options)


MESSAGES = [{"role": "user", "content": "Hello"}]


async def test_a_json_answer_and_a_stream_arrive_whole_over_http2(
    server: Server, tls_files: TLSFiles
) -> None:
    async with _client(server, tls_files) as client:
        message = await client.create(model="m", max_tokens=16, messages=MESSAGES)
        async with client.stream(model="m", max_tokens=16, messages=MESSAGES) as stream:
            deltas = [e.delta.text async for e in stream if e.type == "content_block_delta"]  # type: ignore[union-attr]
            final = await stream.final_message()
    assert message.text == json.loads(MESSAGE)["content"][0]["text"]
    assert "".join(deltas) == final.text == STREAM_TEXT
    assert [s.version for s in server.app.seen] == ["2", "2"]
    assert len({s.port for s in server.app.seen}) == 1  # one connection for both
    for seen in server.app.seen:
        assert len(seen.names) == len(set(seen.names)), seen.names  # no field twice (host: :authority)
        assert seen.headers["host"] == server.url.removeprefix("https://")
        assert seen.headers["content-length"] == str(len(json.dumps(seen.body, separators=(",", ":"))))


async def test_concurrent_requests_are_multiplexed_on_one_connection(
    server: Server, tls_files: TLSFiles
) -> None:
    n = 5
    texts: list[str] = []
    async with _client(server, tls_files) as client:
        await client.create(model="m", max_tokens=16, messages=MESSAGES)  # open the connection first
        server.app.seen.clear()
        server.app.barrier = asyncio.Barrier(n)  # no answer leaves before all n requests are in

        async def one() -> None:
            texts.append((await client.create(model="m", max_tokens=16, messages=MESSAGES)).text)

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
    assert len(texts) == n
    assert {s.version for s in server.app.seen} == {"2"}
    assert len({s.port for s in server.app.seen}) == 1  # all n at once, on one connection


async def test_a_retryable_status_is_retried_over_http2(server: Server, tls_files: TLSFiles) -> None:
    server.app.overloaded_first = 1
    async with _client(server, tls_files, max_retries=2) as client:
        message = await client.create(model="m", max_tokens=16, messages=MESSAGES)
    assert message.text == json.loads(MESSAGE)["content"][0]["text"]
    assert [s.headers.get("x-stainless-retry-count") for s in server.app.seen] == [None, "1"]
    server.app.overloaded_first = 10
    server.app.seen.clear()
    async with _client(server, tls_files, max_retries=0) as client:
        with pytest.raises(OverloadedError):
            await client.create(model="m", max_tokens=16, messages=MESSAGES)
