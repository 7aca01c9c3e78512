"""agentkit.Client's HTTP behaviour on both stacks, against servers that send exact bytes.

Each test goes through ``agentkit.Client`` on ``http="httpx"`` and ``http="aiohttp"`` (asyncio only),
on asyncio and trio, against :class:`tests._rawserver.RawServer` (blocking sockets in threads): what
the caller gets (a Message or a typed :class:`AgentKitError`) and what the server saw (requests, TCP
connections).

| area | tests |
|---|---|
| malformed answers (framing, CR/LF/NUL in header values, status 000, unbounded trailers, a 5,000-digit Content-Length, ...) | `test_malformed_answer_is_a_typed_connection_error_and_the_next_request_works` |
| pool | `test_max_connections_caps_concurrent_connections`, `test_cancelled_request_does_not_leak_its_pool_slot` |
| keep-alive | `test_stale_bytes_after_an_answer_are_never_the_next_answer` (plain and TLS, same write and later) |
| TLS | `test_tls_verify_*`, `test_tls_client_certificate_*` (certificates made at test time) |
| proxies | `test_env_proxy_and_no_proxy_are_honoured` |
| options | `test_bad_http_options_are_refused_where_given`, `test_aiohttp_stack_on_trio_is_a_configuration_error`, `test_client_kept_open_across_event_loops_works_on_both_stacks` |
"""  # noqa: E501

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from agentkit import AgentKitError, APIConnectionError, APITimeoutError, Client, ConfigurationError
from agentkit.testing import LocalServer

from ._rawserver import (
    CHUNKED_HEAD,
    ForwardingProxy,
    Handler,
    RawServer,
    TLSFiles,
    make_certificates,
    pause,
    replies,
    server_tls,
    stall_after,
    then_hang_up,
)

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Hello"}]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def message_body(text: str) -> bytes:
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    ).encode()


def answer(text: str = "fine", *headers: str) -> bytes:
    body = message_body(text)
    extra = "".join(f"{header}\r\n" for header in headers)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


GOOD = message_body("fine")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def client(url: str, http_stack: str, **options: Any) -> Client:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 5.0)
    return Client(api_key="sk-test", base_url=url, http=http_stack, **options)


async def create(c: Client) -> str:
    return (await c.create(model=MODEL, max_tokens=8, messages=MESSAGES)).text


# --- malformed answers ---------------------------------------------------------------------------


def _with_body(head: bytes) -> bytes:
    return head + GOOD


MALFORMED: dict[str, bytes | Handler] = {
    "garbage-status-line": b"garbage\r\n\r\n",
    "status-000": _with_body(b"HTTP/1.1 000 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD)),
    "two-digit-status": _with_body(b"HTTP/1.1 20 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD)),
    "cr-in-header-value": _with_body(
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: %d\r\n\r\n" % len(GOOD)
    ),
    "nul-in-header-value": _with_body(
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: %d\r\n\r\n" % len(GOOD)
    ),
    "header-without-colon": _with_body(
        b"HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: %d\r\n\r\n" % len(GOOD)
    ),
    "5000-digit-content-length": _with_body(
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n"
    ),
    "negative-content-length": _with_body(b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n"),
    "two-content-lengths": _with_body(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: 3\r\n\r\n" % len(GOOD)
    ),
    "non-hex-chunk-size": CHUNKED_HEAD + b"zz\r\nok\r\n0\r\n\r\n",
    "unbounded-trailers": CHUNKED_HEAD
    + b"%x\r\n%s\r\n0\r\n" % (len(GOOD), GOOD)
    + b"X-T: aaaa\r\n" * 200_000,
    "head-without-end": b"HTTP/1.1 200 OK\r\n" + b"X-Filler: a\r\n" * 100_000,
    "close-before-any-byte": then_hang_up(),
    "close-mid-head": then_hang_up(b"HTTP/1.1 200 OK\r\nContent-Le"),
    "close-mid-body": then_hang_up(b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n" + GOOD[:20]),
    "close-mid-chunk": then_hang_up(CHUNKED_HEAD + b"500\r\n" + GOOD[:20]),
}


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_answer_is_a_typed_connection_error_and_the_next_request_works(
    http_stack: str, bad: bytes | Handler
) -> None:
    with RawServer(replies(bad, answer("next"))) as server:
        async with client(server.url, http_stack) as c:
            with pytest.raises(APIConnectionError):
                await create(c)
            assert await create(c) == "next"
    assert len(server.requests) == 2


# --- pool ----------------------------------------------------------------------------------------


async def test_max_connections_caps_concurrent_connections(http_stack: str) -> None:
    in_flight = most = 0
    lock = threading.Lock()
    both_busy = threading.Event()

    def slow(conn: socket.socket, request: bytes) -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 2:
                both_busy.set()
        both_busy.wait(2)  # the first two meet here, so the limit is really exercised
        with lock:
            in_flight -= 1
        conn.sendall(answer())

    with RawServer(slow) as server:
        async with client(server.url, http_stack, max_connections=2) as c:
            texts: list[str] = []

            async def one() -> None:
                texts.append(await create(c))

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(one)
    assert texts == ["fine"] * 6
    assert (server.max_open, server.accepted, most) == (2, 2, 2)


@pytest.mark.parametrize(
    "stall",
    [stall_after(), stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")],
    ids=["waiting-for-the-head", "mid-body"],
)
async def test_cancelled_request_does_not_leak_its_pool_slot(http_stack: str, stall: Handler) -> None:
    arrived = threading.Event()

    def stalls(conn: socket.socket, request: bytes) -> None:
        arrived.set()
        stall(conn, request)

    with RawServer(replies(stalls, answer("next"))) as server:
        async with client(server.url, http_stack, max_connections=1, timeout=httpx2.Timeout(5, pool=2)) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(create, c)
                await anyio.to_thread.run_sync(arrived.wait, 5.0)
                tg.cancel_scope.cancel()
            assert await create(c) == "next"
    assert server.accepted == 2


async def test_waiting_past_the_pool_timeout_is_an_api_timeout(http_stack: str) -> None:
    arrived = threading.Event()

    def holds(conn: socket.socket, request: bytes) -> None:
        arrived.set()
        stall_after()(conn, request)

    with RawServer(replies(holds, answer("next"))) as server:
        # aiohttp has one limit for the pool wait and the connect together: connect + pool here.
        timeout = httpx2.Timeout(30, connect=0.5, pool=0.2)
        async with client(server.url, http_stack, max_connections=1, timeout=timeout) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(create, c)  # holds the only connection
                await anyio.to_thread.run_sync(arrived.wait, 5.0)
                with pytest.raises(APITimeoutError):
                    await create(c)
                tg.cancel_scope.cancel()
    assert len(server.requests) == 1  # the second request never got a connection


# --- keep-alive: bytes after an answer -------------------------------------------------------------


def _stale_after(delay: float) -> Handler:
    """The real answer, then (in the same write, or ``delay`` s later) an extra one nobody asked for."""
    stale = answer("STALE")

    def handler(conn: socket.socket, request: bytes) -> None:
        if delay == 0:
            conn.sendall(answer("first") + stale)
        else:
            conn.sendall(answer("first"))
            pause(delay)
            conn.sendall(stale)
        _stale_sent.set()

    return handler


_stale_sent = threading.Event()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("delay", [0.0, 0.05], ids=["same-write", "while-idle"])
async def test_stale_bytes_after_an_answer_are_never_the_next_answer(
    http_stack: str, tls: bool, delay: float, tls_files: TLSFiles, request: pytest.FixtureRequest
) -> None:
    if http_stack == "httpx" and delay == 0:
        # httpcore2 keeps bytes that came in the same read as an answer in h11's buffer and parses
        # them as the next request's answer (documented in the README, "HTTP stacks"); strict, so a
        # fixed httpcore2 shows up here.
        request.applymarker(pytest.mark.xfail(strict=True, reason="httpcore2 serves same-read stale bytes"))
    _stale_sent.clear()
    context = server_tls(tls_files) if tls else None
    with RawServer(replies(_stale_after(delay), answer("second")), ssl_context=context) as server:
        async with client(server.url, http_stack, verify=str(tls_files.ca)) as c:
            assert await create(c) == "first"
            assert await anyio.to_thread.run_sync(_stale_sent.wait, 5.0)
            await anyio.sleep(0.05)  # let the stale bytes reach the client's socket
            second = await create(c)
    assert second == "second"
    assert server.accepted == 2


# --- TLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["path", "pathlib", "context", "off"])
async def test_tls_verify_accepts_a_ca_bundle_a_context_or_off(
    http_stack: str, tls_files: TLSFiles, how: str
) -> None:
    verify: Any = {
        "path": str(tls_files.ca),
        "pathlib": Path(tls_files.ca),
        "context": ssl.create_default_context(cafile=str(tls_files.ca)),
        "off": False,
    }[how]
    with RawServer(replies(answer("over tls")), ssl_context=server_tls(tls_files)) as server:
        async with client(server.url, http_stack, verify=verify) as c:
            texts = [await create(c), await create(c)]
    assert texts == ["over tls"] * 2
    assert server.accepted == 1


async def test_tls_verify_refuses_an_unknown_ca_by_default(http_stack: str, tls_files: TLSFiles) -> None:
    with RawServer(replies(answer()), ssl_context=server_tls(tls_files)) as server:
        async with client(server.url, http_stack) as c:
            with pytest.raises(APIConnectionError):
                await create(c)
    assert server.requests == []


@pytest.mark.parametrize("with_cert", [True, False], ids=["with-cert", "without-cert"])
async def test_tls_client_certificate_is_presented(
    http_stack: str, tls_files: TLSFiles, with_cert: bool
) -> None:
    cert = (str(tls_files.client_cert), str(tls_files.client_key)) if with_cert else None
    context = server_tls(tls_files, require_client_cert=True)
    with RawServer(replies(answer("mutual")), ssl_context=context) as server:
        async with client(server.url, http_stack, verify=str(tls_files.ca), cert=cert) as c:
            if with_cert:
                assert await create(c) == "mutual"
            else:
                with pytest.raises(APIConnectionError):
                    await create(c)
    assert len(server.requests) == (1 if with_cert else 0)


# --- proxies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bypass", [False, True], ids=["through-proxy", "no-proxy-bypass"])
async def test_env_proxy_and_no_proxy_are_honoured(
    http_stack: str, no_proxy_env: pytest.MonkeyPatch, bypass: bool
) -> None:
    with LocalServer() as server, ForwardingProxy() as proxy:
        base_url = server.base_url
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        if bypass:
            no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        async with client(server.base_url, http_stack) as c:
            text = await create(c)
    assert text == "echo: Hello"
    assert len(server.requests) == 1
    if bypass:
        assert proxy.accepted == 0
    else:
        assert proxy.request_lines == [f"POST {base_url}/v1/messages HTTP/1.1"]


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"http": "curl"}, "http='curl'"),
        ({"verify": 1.5}, "verify=float"),
        ({"verify": "/no/such/ca.pem"}, "/no/such/ca.pem"),
        ({"verify": ssl.create_default_context(), "cert": "c.pem"}, "cert="),
        ({"http": "aiohttp", "http2": True}, "http2=True"),
        ({"http_client": httpx2.AsyncClient(), "verify": False}, "verify="),
        ({"transport": httpx2.MockTransport(lambda r: httpx2.Response(200)), "http": "aiohttp"}, "http="),
        ({"max_response_bytes": 0}, "max_response_bytes"),
    ],
    ids=[
        "unknown-stack",
        "verify-type",
        "verify-path",
        "cert-with-context",
        "aiohttp-http2",
        "http-client",
        "transport",
        "max-response-bytes",
    ],
)
def test_bad_http_options_are_refused_where_given(options: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names.replace("(", r"\(").replace("[", r"\[")):
        Client(api_key="sk-test", base_url="http://127.0.0.1:9", **options)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_aiohttp_stack_on_trio_is_a_configuration_error(anyio_backend: str) -> None:
    with LocalServer() as server:
        async with client(server.base_url, "aiohttp") as c:
            with pytest.raises(ConfigurationError, match="asyncio only"):
                await create(c)
    assert server.requests == []


def test_client_kept_open_across_event_loops_works_on_both_stacks(http_stack: str) -> None:
    # A Client used from two asyncio.run() calls without being closed in between (Agent.run_sync).
    import trio

    with LocalServer() as server:
        c = client(server.base_url, http_stack)
        texts = [asyncio.run(create(c)), asyncio.run(create(c))]
        if http_stack == "httpx":  # and from one trio run to the next (aiohttp is asyncio only)
            texts += [trio.run(create, c), trio.run(create, c), asyncio.run(create(c))]
    assert texts == ["echo: Hello"] * len(texts)
    assert len(server.requests) == len(texts)


def test_threads_running_run_sync_on_one_client_each_keep_and_close_their_own_pools(http_stack: str) -> None:
    # A threaded (WSGI) server with one module-level agent: each request thread's run_sync runs a loop of
    # its own. The barrier keeps all three runs in flight at once (each is inside its tool call between
    # its two requests), so the client serves three live loops: each must keep its own pools (a pool's
    # connections belong to its loop) and close them before its loop ends; nothing is left unclosed.
    import gc
    import warnings

    from agentkit import Agent, tool
    from agentkit.testing import reply

    barrier = threading.Barrier(3, timeout=10)

    @tool
    def meet() -> str:
        """Waits until the other runs are in their call too."""
        barrier.wait()
        return "met"

    def policy(request: Any) -> Any:
        answered = any(b.get("type") == "tool_result" for b in request.messages[-1]["content"])
        return reply.text("done") if answered else reply.tool_uses([("meet", {})])

    texts: list[str] = []
    gc.collect()  # what earlier tests left is not this test's to report
    gc.disable()
    try:
        with LocalServer(policy=policy) as server, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            agent = Agent(client(server.base_url, http_stack), model="claude-sonnet-4-6", tools=[meet])
            def request() -> None:
                texts.append(agent.run_sync("go").text)

            threads = [threading.Thread(target=request) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
            gc.collect()  # pools dropped unclosed would say so now
    finally:
        gc.enable()
    assert texts == ["done"] * 3
    assert server.requests_received == 6
    assert [str(w.message) for w in caught if "unclosed" in str(w.message).lower()] == []


async def test_typed_errors_only(http_stack: str) -> None:
    # Whatever the wire does, only AgentKitError subclasses leave the Client (a 5,000-digit chunk size).
    with RawServer(replies(CHUNKED_HEAD + b"f" * 5000 + b"\r\n")) as server:
        async with client(server.url, http_stack) as c:
            with pytest.raises(AgentKitError):
                await create(c)


# --- streaming -----------------------------------------------------------------------------------


def _sse_events(text: str) -> list[bytes]:
    from agentkit.testing import message_events, sse_event

    message = json.loads(message_body(text))
    return [sse_event(name, payload) for name, payload in message_events(message)]


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_stream_events_arrive_as_they_are_sent(http_stack: str, encoding: str) -> None:
    # The server sends the first event, then waits until the client has it before sending the rest:
    # a stack that buffered the body (or the decoder) would deadlock here until the timeout.
    import zlib

    events = _sse_events("streamed live")
    first_seen = threading.Event()
    waited: list[bool] = []
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)

    def encode(data: bytes) -> bytes:
        if encoding == "identity":
            return data
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def sse(conn: socket.socket, request: bytes) -> None:
        extra = "" if encoding == "identity" else "Content-Encoding: gzip\r\n"
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{extra}"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        part = encode(events[0])
        conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        waited.append(first_seen.wait(5))
        rest = encode(b"".join(events[1:])) + (b"" if encoding == "identity" else compressor.flush())
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))

    with RawServer(replies(sse, answer("next"))) as server:
        async with client(server.url, http_stack) as c:
            async with c.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as stream:
                async for event in stream:
                    first_seen.set()
                    assert event.type
            assert stream.message.text == "streamed live"
            assert await create(c) == "next"
    assert waited == [True]
    assert server.accepted == 1  # read to the end: the connection was reused


async def test_leaving_a_stream_early_frees_the_connection(http_stack: str) -> None:
    events = _sse_events("never finished")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    held = stall_after(head + b"%x\r\n%s\r\n" % (len(events[0]), events[0]))
    with RawServer(replies(held, answer("next"))) as server:
        async with client(server.url, http_stack, max_connections=1) as c:
            async with c.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as stream:
                async for event in stream:
                    assert event.type == "message_start"
                    break
            assert await create(c) == "next"
    assert server.accepted == 2  # the unfinished one was closed, not reused


def test_aiohttp_stack_without_aiohttp_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # `import aiohttp` now raises ImportError
    with pytest.raises(ConfigurationError, match=r"agentkit\[aiohttp\]"):
        Client(api_key="sk-test", base_url="http://127.0.0.1:9", http="aiohttp")
    from agentkit.transports import AiohttpTransport

    with pytest.raises(ConfigurationError, match=r"agentkit\[aiohttp\]"):
        AiohttpTransport()
