"""An agent inside a web service: Starlette served by uvicorn, each run streamed as server-sent events.

    pip install -e '.[examples]'
    python examples/service.py [--port 8000]          # then open http://127.0.0.1:8000/
    curl -N 'http://127.0.0.1:8000/chat?q=What%27s+the+weather+in+Tokyo%3F'
    python examples/service.py --self-test 20        # start, fire 20 concurrent requests, stop

``GET /`` is a small chat page (no build step: ``examples/service_page.html``) showing the streamed
text, each tool call as it starts and finishes, and an approve/deny prompt for calls that need a
person (``subscribe_alerts`` does). ``GET /chat?q=...&session=...`` runs the agent and sends each event
as ``event: <kind>`` / ``data: <json>``; the last one is ``run_finished`` (or ``error``). A run that
waits for approval ends with ``run_finished`` and ``status: awaiting_approval``;
``GET /decide?session=...&decision=approve|deny`` resumes it, streamed the same way. One Agent and one
Client serve every request; each ``session`` keeps its conversation and its paused run in the agent's
store (SQLite here, ``--db``; ``PostgresStore`` for many machines), so any worker can continue it.

SIGINT/SIGTERM stop it gracefully (uvicorn): the port closes at once, streams already running get
``--grace`` seconds to finish, then they are cancelled (every ``tool_use`` still answered).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from agentkit import (
    Agent,
    AgentKitError,
    AgentStream,
    Approve,
    Deny,
    configure_logging,
    tool,
)
from agentkit.stores import SQLiteStore, Store
from agentkit.testing import demo_client
from agentkit.tools import weather

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
PAGE = Path(__file__).with_name("service_page.html")
MAX_QUESTION = 4_000  # characters
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # ask proxies not to buffer


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@tool(requires_approval=True)
def subscribe_alerts(city: str) -> str:
    """Subscribe the user to severe-weather alerts for a city (each subscription needs their approval).

    Args:
        city: City name, e.g. "Oslo".
    """
    return f"subscribed to severe-weather alerts for {city}"


class Busy:
    """Sessions running a question in this process, so a second one gets a 409 at once (the store
    catches the same race across workers: the later append fails with SessionConflictError)."""

    def __init__(self) -> None:
        self._names: set[str] = set()

    def claim(self, session: str) -> bool:
        if session in self._names:
            return False
        self._names.add(session)
        return True

    def release(self, session: str) -> None:
        self._names.discard(session)


def create_app(agent: Agent[None, None]) -> Starlette:
    """The Starlette app: the chat page, the SSE endpoints and a health check. With ``session=``, the
    agent's store keeps the conversation and a run waiting for approval, for any worker to continue."""
    store = agent.store
    busy = Busy()
    stats = {"in_flight": 0, "completed": 0}
    page = PAGE.read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def chat(request: Request) -> Response:
        question = request.query_params.get("q", "").strip()
        if not question:
            return PlainTextResponse("missing ?q=question\n", status_code=400)
        if len(question) > MAX_QUESTION:
            return PlainTextResponse(f"question over {MAX_QUESTION} characters\n", status_code=413)
        session = request.query_params.get("session") or None
        if session is not None and store is not None and (await store.load(session)).state is not None:
            return PlainTextResponse("this session is waiting for a decision\n", status_code=409)
        return _streamed(session, lambda: agent.stream(question, session=session))

    async def decide(request: Request) -> Response:
        session = request.query_params.get("session", "")
        decision = request.query_params.get("decision")
        if decision not in ("approve", "deny"):
            return PlainTextResponse("use decision=approve or decision=deny\n", status_code=400)
        paused = (await store.load(session)).state if session and store is not None else None
        if paused is None:
            return PlainTextResponse("nothing in this session waits for a decision\n", status_code=409)
        reason = request.query_params.get("reason") or "the user declined"
        verdict = Approve() if decision == "approve" else Deny(reason)
        decisions = {call.tool_use_id: verdict for call in paused.pending}
        # The store records the decision before the call runs: a second click (or another worker
        # deciding at the same time) gets AlreadyDecidedError, and the call runs once.
        return _streamed(session, lambda: agent.resume_stream(session=session, decisions=decisions))

    def _streamed(session: str | None, start: Callable[[], AgentStream[None]]) -> Response:
        if session is not None and not busy.claim(session):
            return PlainTextResponse("this session is already running a question\n", status_code=409)
        return StreamingResponse(
            run_events(session, start), media_type="text/event-stream", headers=SSE_HEADERS
        )

    async def run_events(session: str | None, start: Callable[[], AgentStream[None]]) -> AsyncIterator[str]:
        stats["in_flight"] += 1
        try:
            # Leaving this block early (the client went away, or shutdown cancelled the response)
            # closes the run: calls still running are cancelled, every tool_use is answered, so the
            # session stays valid for its next question.
            async with start() as events:
                async for event in events:
                    yield sse(event.kind, event.to_dict())
            stats["completed"] += 1
        except AgentKitError as exc:  # API, agent or store failure: tell the client, in the stream
            yield sse("error", {"error": type(exc).__name__, "message": str(exc)})
        finally:
            if session is not None:
                busy.release(session)
            stats["in_flight"] -= 1

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/chat", chat),
            Route("/decide", decide),
        ],
    )
    app.state.stats = stats
    app.state.store = store
    return app


# --- running it ----------------------------------------------------------------------------------


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


def server_for(app: Starlette, *, grace: float) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=grace, lifespan="off", access_log=False
    )
    return uvicorn.Server(config)


async def read_stream(
    http: httpx2.AsyncClient, url: str, question: str, session: str | None = None, **params: str
) -> list[tuple[str, Any]]:
    """GET one SSE stream; returns its ``(event, data)`` pairs."""
    events: list[tuple[str, Any]] = []
    name = "message"
    params = {**({"q": question} if question else {}), **({"session": session} if session else {}), **params}
    async with http.stream("GET", url, params=params) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


async def self_test(app: Starlette, n: int) -> bool:
    """Serve on a free port, fire ``n`` concurrent requests at it, check every stream, stop it."""
    cities = ["Tokyo", "Paris", "London", "Sydney", "Berlin", "Cairo", "Singapore", "Reykjavik"]
    failures: list[str] = []
    durations: list[float] = []
    sock = bind(0)
    port = sock.getsockname()[1]
    server = server_for(app, grace=10)
    base = f"http://127.0.0.1:{port}"
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        limits = httpx2.Limits(max_connections=n)
        async with httpx2.AsyncClient(timeout=30, limits=limits) as http:
            # The socket is listening already: requests wait in its backlog until uvicorn accepts.

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

            # A session keeps its conversation between requests.
            store = app.state.store
            await read_stream(http, f"{base}/chat", "What's the weather in Paris?", "s1")
            after_first = len((await store.load("s1")).messages)
            last = await read_stream(http, f"{base}/chat", "And in Tokyo?", "s1")
            after_second = len((await store.load("s1")).messages)
            if not (0 < after_first < after_second) or last[-1][0] != "run_finished":
                failures.append("the session did not keep its conversation between requests")
            # A call that needs approval pauses the run; the decision (another request) resumes it.
            paused = await read_stream(http, f"{base}/chat", "Subscribe me to weather alerts for Oslo", "s2")
            resumed = await read_stream(http, f"{base}/decide", "", "s2", decision="approve")
            again = await http.get(f"{base}/decide", params={"session": "s2", "decision": "approve"})
            if (
                paused[-1][1].get("status") != "awaiting_approval"
                or resumed[-1][1].get("status") != "completed"
                or "subscribed" not in resumed[-1][1]["text"]
                or again.status_code != 409
            ):
                failures.append("approval did not pause, resume once, and refuse a second decision")
            missing = await http.get(f"{base}/chat")
            unknown = await http.get(f"{base}/nope")
            page = await http.get(f"{base}/")
            if (missing.status_code, unknown.status_code, page.status_code) != (400, 404, 200):
                failures.append(
                    f"expected 400, 404 and 200, got {missing.status_code}, {unknown.status_code} "
                    f"and {page.status_code}"
                )
        server.should_exit = True

    try:  # the port must be closed now
        await anyio.connect_tcp("127.0.0.1", port)
        failures.append("the port still accepts connections after shutdown")
    except OSError:
        pass

    durations.sort()
    ok = n - sum(f.startswith("request") for f in failures)
    print(f"self-test: {ok}/{n} concurrent streams ended with run_finished, each answering its own city")
    if durations:
        p50 = durations[len(durations) // 2] * 1000
        print(f"  latency: p50 {p50:.0f} ms, max {durations[-1] * 1000:.0f} ms")
    print("  sessions: a follow-up question continued the same conversation")
    print("  approval: a subscription waited for a decision, resumed once on approve, refused a second one")
    print("  errors: 400 for a missing ?q=, 404 for an unknown path; the chat page is served")
    print(f"  shutdown: port closed, {app.state.stats['in_flight']} stream(s) left in flight")
    for failure in failures:
        print(f"  FAIL {failure}")
    return not failures


def make_agent(client: Any, store: Store | None = None) -> Agent[None, None]:
    # One Agent and one Client for every request: runs keep their state apart, and the client's
    # connection pool is shared (and safe to use from concurrent tasks). The store keeps each session.
    return Agent(
        client,
        store=store,
        model=MODEL,
        system="You are a concise weather assistant. Use get_weather for facts.",
        tools=[weather.get_weather, subscribe_alerts],
        max_turns=5,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds for in-flight streams on stop")
    parser.add_argument("--self-test", type=int, metavar="N", help="fire N concurrent requests, then stop")
    parser.add_argument("--db", type=Path, help="the SQLite file for sessions (default: a new temporary one)")
    args = parser.parse_args()
    configure_logging("warning")

    with demo_client() as env:
        if env.offline:
            weather.offline()
        db = args.db or Path(tempfile.mkdtemp(prefix="agentkit-service-")) / "sessions.db"
        store = SQLiteStore(db)
        app = create_app(make_agent(env.client, store))
        # Many concurrent runs keep many objects alive, and CPython's default GC thresholds then make
        # it re-scan all of them often: at 2,000 concurrent runs that is a third of the CPU. Freezing
        # what startup built and collecting less often is the usual service setting (see
        # benchmarks/README.md, "GC at scale").
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)

        async def run() -> bool:
            async with env.client, store:  # closed once the server has stopped
                if args.self_test is not None:
                    return await self_test(app, args.self_test)
                sock = bind(args.port)
                print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/ (Ctrl-C stops)", flush=True)
                await server_for(app, grace=args.grace).serve([sock])
                print(f"stopped after {app.state.stats['completed']} completed stream(s)")
                return True

        return 0 if anyio.run(run) else 1  # uvicorn runs on asyncio


if __name__ == "__main__":
    sys.exit(main())
