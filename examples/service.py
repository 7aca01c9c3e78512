"""An agent inside a small web service that streams its events as server-sent events (SSE).

    python examples/service.py [--port 8000]
    curl -N 'http://127.0.0.1:8000/chat?q=What%27s+the+weather+in+Tokyo%3F'
    python examples/service.py --self-test 20        # start, fire 20 concurrent requests, stop

``GET /chat?q=...`` runs the agent and sends each event as ``event: <kind>`` / ``data: <json>``; the
last one is ``run_finished`` (or ``error``). No web framework: a plain HTTP/1.1 server on anyio
(so it runs on asyncio or trio), one shared Agent and Client for every request.

SIGINT/SIGTERM stop it gracefully: the port closes at once, streams already running get ``--grace``
seconds to finish, then the client's connections are closed. A second Ctrl-C forces the exit.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import httpx2
from anyio.streams.buffered import BufferedByteReceiveStream

from agentkit import Agent, AgentKitError, configure_logging
from agentkit.testing import demo_client
from agentkit.tools import weather

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
MAX_HEAD_BYTES = 16 * 1024  # request line + headers
HEAD_TIMEOUT = 10.0  # seconds a client may take to send its request head
SSE_HEADERS = (
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-cache\r\n"
    "X-Accel-Buffering: no\r\n"  # ask reverse proxies not to buffer the stream
    "Connection: close\r\n"  # the body ends when the connection closes: no chunked encoding needed
    "\r\n"
)


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class ChatService:
    """Serves ``GET /chat?q=...`` from one shared agent; ``stop()`` shuts it down gracefully."""

    def __init__(self, agent: Agent[None, None], *, grace: float = 10.0) -> None:
        self.agent = agent
        self.grace = grace
        self.in_flight = 0
        self.completed = 0
        self.stopping = False
        self._accepting: anyio.CancelScope | None = None

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until :meth:`stop`; ``await task_group.start(service.serve)`` returns the port."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with anyio.create_task_group() as streams:  # one task per connection
            with anyio.CancelScope() as self._accepting:
                task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
                async with listener:  # closing it refuses new connections
                    await listener.serve(self._handle, task_group=streams)
            # stop() was called and the port is closed: running streams get `grace` seconds,
            # then the task group cancels whatever is left.
            streams.cancel_scope.deadline = anyio.current_time() + self.grace

    def stop(self) -> None:
        """Stop accepting connections; in-flight streams finish (within the grace period)."""
        self.stopping = True
        if self._accepting is not None:
            self._accepting.cancel()

    async def _handle(self, conn: anyio.abc.ByteStream) -> None:
        async with conn:
            try:
                with anyio.fail_after(HEAD_TIMEOUT):
                    head = await BufferedByteReceiveStream(conn).receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
            except (TimeoutError, anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.BrokenResourceError):
                return  # slow, truncated, oversized or vanished client: just hang up
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            url = urlsplit(rest.partition(" ")[0])  # "GET /chat?q=hi HTTP/1.1"
            if self.stopping:
                await respond(conn, "503 Service Unavailable", "shutting down\n")
            elif url.path == "/healthz":
                await respond(conn, "200 OK", "ok\n")
            elif url.path != "/chat":
                await respond(conn, "404 Not Found", "try GET /chat?q=...\n")
            elif method != "GET":
                await respond(conn, "405 Method Not Allowed", "use GET\n")
            elif not (question := parse_qs(url.query).get("q", [""])[0].strip()):
                await respond(conn, "400 Bad Request", "missing ?q=question\n")
            else:
                await self._chat(conn, question)

    async def _chat(self, conn: anyio.abc.ByteStream, question: str) -> None:
        self.in_flight += 1
        try:
            await conn.send(SSE_HEADERS.encode())
            async with self.agent.stream(question) as events:
                async for event in events:
                    await conn.send(sse(event.kind, event.to_dict()))
            self.completed += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client went away: leaving `async with` above closed the run
        except AgentKitError as exc:  # API or agent failure: tell the client, in the stream
            await send_quietly(conn, sse("error", {"error": type(exc).__name__, "message": str(exc)}))
        except anyio.get_cancelled_exc_class():
            # The grace period ran out during shutdown: say so (shielded, briefly), then unwind.
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await send_quietly(conn, sse("error", {"error": "Shutdown", "message": "server stopped"}))
            raise
        finally:
            self.in_flight -= 1


async def respond(conn: anyio.abc.ByteStream, status: str, body: str) -> None:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    await send_quietly(conn, head.encode() + data)


async def send_quietly(conn: anyio.abc.ByteStream, data: bytes) -> None:
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await conn.send(data)


# --- running it ----------------------------------------------------------------------------------


async def serve_until_signalled(service: ChatService, port: int) -> None:
    async with anyio.create_task_group() as tg:
        port = await tg.start(service.serve, "127.0.0.1", port)
        print(f"listening on http://127.0.0.1:{port}/chat?q=... (Ctrl-C stops)", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                print(
                    f"{signal.Signals(signum).name}: stopping; {service.in_flight} stream(s) in flight "
                    f"get {service.grace:g} s to finish (Ctrl-C again to force)",
                    flush=True,
                )
                service.stop()
                break
    print(f"stopped after {service.completed} completed stream(s)")


async def read_stream(http: httpx2.AsyncClient, url: str, question: str) -> list[tuple[str, Any]]:
    """GET one SSE stream; returns its ``(event, data)`` pairs."""
    events: list[tuple[str, Any]] = []
    name = "message"
    async with http.stream("GET", url, params={"q": question}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


async def self_test(service: ChatService, n: int) -> bool:
    """Start the service, fire ``n`` concurrent requests at it, check every stream, stop it."""
    cities = ["Tokyo", "Paris", "London", "Sydney", "Berlin", "Cairo", "Singapore", "Reykjavik"]
    failures: list[str] = []
    durations: list[float] = []
    async with anyio.create_task_group() as tg:
        port = await tg.start(service.serve, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}"
        limits = httpx2.Limits(max_connections=n)
        async with httpx2.AsyncClient(timeout=30, limits=limits) as http:

            async def one(i: int) -> None:
                city = cities[i % len(cities)]
                started = time.perf_counter()
                try:
                    events = await read_stream(http, f"{base}/chat", f"What's the weather in {city}?")
                except httpx2.HTTPError as exc:
                    failures.append(f"request {i}: {type(exc).__name__}: {exc}")
                    return
                durations.append(time.perf_counter() - started)
                if not events or events[-1][0] != "run_finished":
                    failures.append(f"request {i}: stream ended with {events[-1:]!r}")
                elif city not in events[-1][1]["text"]:  # each stream got its own answer
                    failures.append(f"request {i}: answer does not mention {city}: {events[-1][1]['text']!r}")

            async with anyio.create_task_group() as clients:
                for i in range(n):
                    clients.start_soon(one, i)

            missing = await http.get(f"{base}/chat")
            unknown = await http.get(f"{base}/nope")
            if (missing.status_code, unknown.status_code) != (400, 404):
                failures.append(f"expected 400 and 404, got {missing.status_code} and {unknown.status_code}")
        service.stop()

    try:  # the port must be closed now
        await anyio.connect_tcp("127.0.0.1", port)
        failures.append("the port still accepts connections after stop()")
    except OSError:
        pass

    durations.sort()
    ok = n - sum(f.startswith("request") for f in failures)
    print(f"self-test: {ok}/{n} concurrent streams ended with run_finished, each answering its own city")
    if durations:
        p50 = durations[len(durations) // 2] * 1000
        print(f"  latency: p50 {p50:.0f} ms, max {durations[-1] * 1000:.0f} ms")
    print("  errors: 400 for a missing ?q=, 404 for an unknown path")
    print(f"  shutdown: port closed, {service.in_flight} stream(s) left in flight")
    for failure in failures:
        print(f"  FAIL {failure}")
    return not failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds for in-flight streams on stop")
    parser.add_argument("--self-test", type=int, metavar="N", help="fire N concurrent requests, then stop")
    args = parser.parse_args()
    configure_logging("warning")

    with demo_client() as env:
        if env.offline:
            weather.offline()
        # One Agent and one Client for every request: runs keep their state apart, and the client's
        # connection pool is shared (and safe to use from concurrent tasks).
        agent: Agent[None, None] = Agent(
            env.client,
            model=MODEL,
            system="You are a concise weather assistant. Use get_weather for facts.",
            tools=[weather.get_weather],
            max_turns=5,
        )
        service = ChatService(agent, grace=args.grace)
        # Many concurrent runs keep many objects alive, and CPython's default GC thresholds then make
        # it re-scan all of them often: at 2,000 concurrent runs that is a third of the CPU. Freezing
        # what startup built and collecting less often is the usual service setting (see
        # benchmarks/README.md, "GC at scale").
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)

        async def run() -> bool:
            async with env.client:  # closed once the service has stopped
                if args.self_test is not None:
                    return await self_test(service, args.self_test)
                await serve_until_signalled(service, args.port)
                return True

        return 0 if anyio.run(run) else 1


if __name__ == "__main__":
    sys.exit(main())
