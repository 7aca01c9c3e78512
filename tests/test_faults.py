"""The fault matrix: an agent run over a real local HTTP server, with one fault injected at turn 2.

Every fault is injected after a first tool turn, so there is history to protect. For each one the run
either recovers transparently (the client retries) or fails with the right typed error, and in both
cases: the ``Conversation`` passed as ``history=`` (appended in place) and ``AgentRunError.messages``
pass :func:`agentkit._history.check_messages` (every ``tool_use`` answered), usage counts only the
responses that arrived, no tool runs twice for one ``tool_use`` id, and the server never answered 400.
Each agent test runs with JSON requests and with SSE streaming requests, on asyncio and on trio, and on
both HTTP stacks (``Client(http="httpx")`` and ``Client(http="aiohttp")``, the latter on asyncio only).

| fault | expected behaviour | test |
|---|---|---|
| 429 with `retry-after` | retried after the advertised delay (lower bound checked); run completes | `test_429_with_retry_after_is_retried_and_the_run_recovers` |
| 429 spend limit (`enforced_spend_limit_reached`) | `RateLimitError` at once, not retried | `test_429_spend_limit_is_not_retried` |
| 529 overloaded | retried with backoff (`x-stainless-retry-count` sent); run completes | `test_529_overloaded_is_retried_and_the_run_recovers` |
| 500 / 502 / 503 | retried with backoff; run completes | `test_5xx_is_retried_and_the_run_recovers` |
| 500 / 529 on every attempt | `InternalServerError` / `OverloadedError` after `max_retries` retries | `test_5xx_on_every_attempt_fails_typed_after_max_retries` |
| 401 / 403 / 404 / 413 | `AuthenticationError` / `PermissionDeniedError` / `NotFoundError` / `RequestTooLargeError` at once, never retried | `test_4xx_fails_typed_at_once_without_retry` |
| connection refused (nothing listening) | `APIConnectionError` after the retries | `test_connection_refused_fails_with_api_connection_error_after_retries`, `test_connection_refused_on_a_plain_create_is_retried_then_typed` |
| connection closed before the status line | retried; run completes | `test_connection_dropped_before_status_line_is_retried` |
| connection reset (TCP RST) before the status line | retried; run completes | `test_connection_reset_before_status_line_is_retried` |
| connection dropped mid-body | JSON: retried, run completes. SSE: `APIConnectionError`, never re-sent once the response began | `test_connection_dropped_mid_body` |
| stream cut before `message_stop` | SSE: `APIConnectionError`/`ProtocolError`, not re-sent, no partial turn kept. JSON: retried, completes | `test_stream_cut_before_message_stop` |
| `error` event mid-stream | SSE: `OverloadedError` (typed by `error.type`), not re-sent. JSON (HTTP 529): retried, completes | `test_error_event_mid_stream` |
| invalid JSON with status 200 | `ProtocolError`, not retried | `test_invalid_json_fails_with_protocol_error` |
| empty body with status 200 | `ProtocolError`, not retried | `test_empty_200_body_fails_with_protocol_error` |
| gateway HTML 502 (not JSON) | retried; `InternalServerError` (status 502) after the retries | `test_gateway_html_502_is_retried_then_typed` |
| PoYo envelope with a non-200 `code` | code 529 (HTTP 200) or 500 (HTTP 500): retried, completes. code 401: `AuthenticationError`, not retried | `test_poyo_envelope_error_code` |
| response slower than the timeout | retried, run completes; `APITimeoutError` when every attempt is slow | `test_response_slower_than_timeout_is_retried_then_recovers`, `test_response_always_slower_than_timeout_fails_with_api_timeout_error` |
| SSE stream stalls past the read timeout | `APITimeoutError`, not re-sent | `test_stream_stalled_past_read_timeout_fails_with_api_timeout_error` |
| caller cancels (anyio cancel scope) while tools run | cancellation propagates; every pending call answered `is_error` "not run: cancelled"; the conversation continues in a new run | `test_caller_cancel_mid_dispatch_leaves_history_valid_and_resumable` |
| model calls an unknown tool | `is_error` result listing the tools; run continues | `test_unknown_tool_name_gets_error_result_and_run_continues` |
| input violating the schema | `is_error` validation result, tool not run; run continues | `test_schema_violating_input_gets_error_result_and_run_continues` |
| input that is not an object (`"input": "str"`) | `is_error` result, tool not run; run continues | `test_non_object_input_gets_error_result_and_run_continues` |
| streamed input JSON invalid / not an object, `stop_reason: tool_use` | never run, answered `is_error` | `test_invalid_streamed_tool_input_is_never_run` |
| huge input (1 MB) | tool runs once; run completes | `test_huge_input_runs_once_and_run_completes` |
| `tool_use` truncated by `max_tokens` | never run; answered; `ToolInputTruncatedError` (raise) or an error result the model can act on (continue) | `test_tool_use_truncated_by_max_tokens_is_never_run` |
| tool raises | `is_error` result with the exception text; run continues | `test_tool_that_raises_gets_error_result_and_run_continues` |
| tool hangs past `@tool(timeout=0.2)` | `is_error` "timed out after 0.2s" at the timeout (async and blocking sync tools) | `test_tool_hanging_past_its_timeout_gets_error_result` |
| tool returns something unserialisable | `is_error` result naming the type; run continues | `test_tool_returning_unserialisable_value_gets_error_result` |
| endless tool loop | `MaxTurnsExceeded` (on_limit=raise) or a wrap-up answer with `stopped_by_limit` (wrap_up) | `test_endless_tool_loop_stops_at_max_turns` |
| same call repeated | `ToolLoopError` | `test_same_call_repeated_stops_with_tool_loop_error` |
"""  # noqa: E501

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

import agentkit._client
from agentkit import (
    Agent,
    AgentKitError,
    AgentRunError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    Client,
    Conversation,
    Hooks,
    InternalServerError,
    MaxTurnsExceeded,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RequestTooLargeError,
    RunResult,
    ToolInputTruncatedError,
    ToolLoopError,
)
from agentkit._context import RunContext
from agentkit._history import check_messages
from agentkit._tool import tool
from agentkit.testing import FunctionPolicy, LocalServer, MessageReply, Request, reply
from agentkit.types import Message, MessageParam, ToolResultBlock, ToolUseBlock, to_wire

from .conftest import results_by_id, tool_use_ids

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
KEY = "sk-test"
PROMPT = "What's the weather in Paris and Oslo?"
FINAL = "Paris and Oslo: 21C, clear."
U1 = {"input_tokens": 11, "output_tokens": 5}
U2 = {"input_tokens": 23, "output_tokens": 7}
TURN1_IDS = ("toolu_t1_paris", "toolu_t1_oslo")

#: executions per tool_use id, across every tool of this module
CALLS: Counter[str] = Counter()
#: the HTTP stack of the test being run (``Client(http=...)``)
STACK: dict[str, Any] = {"http": "httpx"}


@pytest.fixture(autouse=True)
def _fast_and_clean(monkeypatch: pytest.MonkeyPatch, http_stack: str) -> None:
    CALLS.clear()
    monkeypatch.setattr(agentkit._client, "_INITIAL_BACKOFF", 0.005)
    monkeypatch.setitem(STACK, "http", http_stack)


@pytest.fixture(params=[False, True], ids=["json", "sse"])
def stream(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# --- tools -------------------------------------------------------------------------------------


@tool
async def lookup(city: str, ctx: RunContext[Any]) -> str:
    """Current weather for a city.

    Args:
        city: City name.
    """
    assert ctx.tool_use_id is not None
    CALLS[ctx.tool_use_id] += 1
    return f"{city[:20]}: 21C"


@tool
async def explode(ctx: RunContext[Any]) -> str:
    """A tool that fails."""
    assert ctx.tool_use_id is not None
    CALLS[ctx.tool_use_id] += 1
    raise RuntimeError("disk on fire")


@tool(timeout=0.2)
async def hang_async(ctx: RunContext[Any]) -> str:
    """A tool that never answers."""
    assert ctx.tool_use_id is not None
    CALLS[ctx.tool_use_id] += 1
    await anyio.sleep(30)
    return "never"


@tool(timeout=0.2)
def hang_sync(ctx: RunContext[Any]) -> str:
    """A blocking tool that answers too late."""
    assert ctx.tool_use_id is not None
    CALLS[ctx.tool_use_id] += 1
    time.sleep(2.0)  # far past the timeout: waiting for it would show in the span below
    return "too late"


@tool
async def unserialisable(ctx: RunContext[Any]) -> Any:
    """A tool that returns something that is not JSON."""
    assert ctx.tool_use_id is not None
    CALLS[ctx.tool_use_id] += 1
    return object()


TOOLS = [lookup, explode, hang_async, hang_sync, unserialisable]


# --- policies and helpers ----------------------------------------------------------------------


def first_turn() -> Any:
    return reply.message(
        [
            reply.tool_use_block("lookup", {"city": "Paris"}, TURN1_IDS[0]),
            reply.tool_use_block("lookup", {"city": "Oslo"}, TURN1_IDS[1]),
        ],
        "tool_use",
        usage=dict(U1),
    )


def final_turn() -> Any:
    return reply.message([{"type": "text", "text": FINAL}], "end_turn", usage=dict(U2))


class FaultAtTurn2:
    """Turn 1: two parallel lookups. Turn 2: ``fault`` for the first ``times`` requests (None: always),
    then the final answer. Runs on the server's loop thread (one thread, so no lock needed)."""

    def __init__(self, fault: Any, times: int | None = 1) -> None:
        self.fault = fault
        self.times = times
        self.sent = 0
        self.arrivals: list[float] = []

    def __call__(self, request: Request) -> Any:
        if request.assistant_turns == 0:
            return first_turn()
        self.arrivals.append(time.monotonic())
        if self.times is None or self.sent < self.times:
            self.sent += 1
            return self.fault
        return final_turn()


def bad_turn2(second: Any) -> FunctionPolicy:
    """Turn 1: lookups; turn 2: ``second`` (the model misbehaving); turn 3: the final answer."""

    def policy(request: Request) -> Any:
        if request.assistant_turns == 0:
            return first_turn()
        if request.assistant_turns == 1:
            return second
        return final_turn()

    return FunctionPolicy(policy)


@dataclass
class Outcome:
    result: RunResult[Any] | None
    error: BaseException | None
    conversation: Conversation


async def run_agent(
    server: LocalServer,
    *,
    stream: bool,
    max_retries: int = 2,
    timeout: float = 5.0,
    provider: Any = None,
    tools: list[Any] | None = None,
    **agent_kwargs: Any,
) -> Outcome:
    client = Client(
        api_key=KEY,
        base_url=server.base_url,
        max_retries=max_retries,
        timeout=timeout,
        provider=provider,
        **STACK,
    )
    agent = Agent(client, model=MODEL, tools=tools or TOOLS, stream=stream, **agent_kwargs)
    conversation = Conversation()
    result: RunResult[Any] | None = None
    error: BaseException | None = None
    try:
        result = await agent.run(PROMPT, history=conversation)
    except AgentKitError as exc:
        error = exc
    finally:
        await client.aclose()
    return Outcome(result, error, conversation)


def wire(messages: list[MessageParam]) -> list[dict[str, Any]]:
    return [to_wire(m) for m in messages]  # type: ignore[misc]




def statuses(server: LocalServer) -> list[int | None]:
    return [r.status for r in server.requests]


def assert_invariants(outcome: Outcome, server: LocalServer) -> None:
    """What must hold whatever the fault: valid history, each tool_use run at most once, zero 400s."""
    history = outcome.conversation.messages
    check_messages(wire(history))
    if outcome.result is not None:
        assert outcome.result.messages == history
        check_messages(wire(outcome.result.messages))
    if isinstance(outcome.error, AgentRunError):
        check_messages(wire(outcome.error.messages))
        assert outcome.error.messages == history
    ids = tool_use_ids(history)
    assert len(ids) == len(set(ids))
    assert set(CALLS) <= set(ids), "a tool ran for an id the history does not hold"
    assert all(n == 1 for n in CALLS.values()), f"a tool ran twice for one id: {CALLS}"
    assert 400 not in statuses(server), "the server rejected a request (400)"


def assert_recovered(outcome: Outcome, server: LocalServer, *, requests: int) -> None:
    assert_invariants(outcome, server)
    assert outcome.error is None, f"expected recovery, got {outcome.error!r}"
    result = outcome.result
    assert result is not None
    assert result.text == FINAL
    assert result.turns == 2
    assert (result.usage.input_tokens, result.usage.output_tokens) == (34, 12)
    usage = outcome.conversation.usage
    assert (usage.input_tokens, usage.output_tokens) == (34, 12)
    assert dict(CALLS) == dict.fromkeys(TURN1_IDS, 1)
    assert len(server.requests) == requests


def assert_failed(
    outcome: Outcome, server: LocalServer, error: type[BaseException], *, requests: int
) -> BaseException:
    assert_invariants(outcome, server)
    assert isinstance(outcome.error, error), f"expected {error.__name__}, got {outcome.error!r}"
    history = outcome.conversation.messages
    # user prompt, the tool turn, its results: the failed turn left nothing behind
    assert [m.role for m in history] == ["user", "assistant", "user"]
    assert set(results_by_id(history)) == set(TURN1_IDS)
    usage = outcome.conversation.usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 5), "usage of the failed turn was counted"
    assert dict(CALLS) == dict.fromkeys(TURN1_IDS, 1)
    assert len(server.requests) == requests
    return outcome.error


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- transient API errors: retried ---------------------------------------------------------------


async def test_429_with_retry_after_is_retried_and_the_run_recovers(stream: bool) -> None:
    policy = FaultAtTurn2(reply.error(429, retry_after=0.1))
    with LocalServer(FunctionPolicy(policy)) as server:
        outcome = await run_agent(server, stream=stream)
    assert_recovered(outcome, server, requests=3)
    assert statuses(server) == [200, 429, 200]
    assert policy.arrivals[1] - policy.arrivals[0] >= 0.1 - 0.005  # retry-after honoured (lower bound)


async def test_529_overloaded_is_retried_and_the_run_recovers(stream: bool) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.error(529), times=2))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_recovered(outcome, server, requests=4)
    assert statuses(server) == [200, 529, 529, 200]
    assert server.requests[3].headers.get("x-stainless-retry-count") == "2"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retried_and_the_run_recovers(stream: bool, status: int) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.error(status)))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_recovered(outcome, server, requests=3)
    assert statuses(server) == [200, status, 200]


@pytest.mark.parametrize(("status", "error"), [(500, InternalServerError), (529, OverloadedError)])
async def test_5xx_on_every_attempt_fails_typed_after_max_retries(
    stream: bool, status: int, error: type[APIStatusError]
) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.error(status), times=None))) as server:
        outcome = await run_agent(server, stream=stream, max_retries=2)
    exc = assert_failed(outcome, server, error, requests=1 + 3)
    assert isinstance(exc, APIStatusError) and exc.status_code == status


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, RequestTooLargeError),
    ],
)
async def test_4xx_fails_typed_at_once_without_retry(
    stream: bool, status: int, error: type[APIStatusError]
) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.error(status), times=None))) as server:
        outcome = await run_agent(server, stream=stream, max_retries=3)
    exc = assert_failed(outcome, server, error, requests=2)
    assert isinstance(exc, APIStatusError) and exc.status_code == status


async def test_429_spend_limit_is_not_retried(stream: bool) -> None:
    fault = reply.error(429, error_code="enforced_spend_limit_reached")
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault, times=None))) as server:
        outcome = await run_agent(server, stream=stream, max_retries=3)
    exc = assert_failed(outcome, server, RateLimitError, requests=2)
    assert isinstance(exc, RateLimitError) and exc.error_code == "enforced_spend_limit_reached"


# --- the network ---------------------------------------------------------------------------------


async def test_connection_refused_fails_with_api_connection_error_after_retries(stream: bool) -> None:
    """The endpoint goes away after turn 1: nothing listens on the port any more."""
    dead = f"http://127.0.0.1:{dead_port()}"

    def gone(ctx: RunContext[Any], message: Message) -> None:
        client.base_url = dead

    with LocalServer(FunctionPolicy(FaultAtTurn2(None))) as server:
        client = Client(api_key=KEY, base_url=server.base_url, max_retries=2, timeout=2.0, **STACK)
        agent = Agent(client, model=MODEL, tools=TOOLS, stream=stream, hooks=Hooks(after_response=gone))
        conversation = Conversation()
        with pytest.raises(APIConnectionError) as info:
            await agent.run(PROMPT, history=conversation)
        await client.aclose()
    assert not isinstance(info.value, APITimeoutError)
    outcome = Outcome(None, info.value, conversation)
    assert_failed(outcome, server, APIConnectionError, requests=1)


async def test_connection_refused_on_a_plain_create_is_retried_then_typed() -> None:
    client = Client(
        api_key=KEY, base_url=f"http://127.0.0.1:{dead_port()}", max_retries=1, timeout=2.0, **STACK
    )
    started = time.monotonic()
    with pytest.raises(APIConnectionError):
        await client.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    await client.aclose()
    assert time.monotonic() - started < 5


async def test_connection_dropped_before_status_line_is_retried(stream: bool) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.drop(), times=2))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_recovered(outcome, server, requests=4)
    assert statuses(server) == [200, None, None, 200]


async def test_connection_reset_before_status_line_is_retried(stream: bool) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.reset()))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_recovered(outcome, server, requests=3)


async def test_connection_dropped_mid_body(stream: bool) -> None:
    fault = reply.drop_mid_body(final_turn())
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault))) as server:
        outcome = await run_agent(server, stream=stream)
    if stream:  # the response began: never silently re-sent
        assert_failed(outcome, server, APIConnectionError, requests=2)
    else:
        assert_recovered(outcome, server, requests=3)


async def test_stream_cut_before_message_stop(stream: bool) -> None:
    fault = reply.cut_stream(after_events=4, inner=final_turn())
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault))) as server:
        outcome = await run_agent(server, stream=stream)
    if stream:
        exc = assert_failed(outcome, server, AgentKitError, requests=2)
        assert isinstance(exc, APIConnectionError | ProtocolError)
    else:
        assert_recovered(outcome, server, requests=3)


async def test_error_event_mid_stream(stream: bool) -> None:
    fault = reply.error_event(after_events=4, inner=final_turn())
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault))) as server:
        outcome = await run_agent(server, stream=stream)
    if stream:
        exc = assert_failed(outcome, server, OverloadedError, requests=2)
        assert isinstance(exc, OverloadedError) and exc.error_type == "overloaded_error"
    else:  # answered as HTTP 529 to a JSON request
        assert_recovered(outcome, server, requests=3)


async def test_invalid_json_fails_with_protocol_error(stream: bool) -> None:
    with LocalServer(FunctionPolicy(FaultAtTurn2(reply.malformed(), times=None))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_failed(outcome, server, ProtocolError, requests=2)


async def test_gateway_html_502_is_retried_then_typed(stream: bool) -> None:
    fault = reply.raw(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault, times=None))) as server:
        outcome = await run_agent(server, stream=stream, max_retries=2)
    exc = assert_failed(outcome, server, InternalServerError, requests=1 + 3)
    assert isinstance(exc, InternalServerError) and exc.status_code == 502


async def test_empty_200_body_fails_with_protocol_error(stream: bool) -> None:
    fault = reply.raw(200, b"", "application/json")
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault, times=None))) as server:
        try:
            outcome = await run_agent(server, stream=stream)
        except Exception as exc:  # anything but an AgentKitError escaping the run is a bug
            pytest.fail(f"{type(exc).__name__} escaped the run: {exc}")
    assert_failed(outcome, server, ProtocolError, requests=2)


@pytest.mark.parametrize(
    ("http_status", "code", "etype", "error"),
    [
        (200, 529, "overloaded_error", None),
        (500, 500, "api_error", None),
        (200, 401, "authentication_error", AuthenticationError),
    ],
    ids=["http200-code529-retried", "http500-code500-retried", "http200-code401-typed"],
)
async def test_poyo_envelope_error_code(
    stream: bool, http_status: int, code: int, etype: str, error: type[APIStatusError] | None
) -> None:
    fault = reply.error(http_status, type=etype, message=f"envelope {code}", envelope_code=code)
    times = 1 if error is None else None
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault, times=times)), flavour="poyo") as server:
        outcome = await run_agent(server, stream=stream, provider="poyo")
    if error is None:
        assert_recovered(outcome, server, requests=3)
    else:
        exc = assert_failed(outcome, server, error, requests=2)
        assert "envelope 401" in str(exc)


async def test_response_slower_than_timeout_is_retried_then_recovers(stream: bool) -> None:
    fault = reply.delay(0.6, final_turn())
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault))) as server:
        outcome = await run_agent(server, stream=stream, timeout=0.25)
    assert_recovered(outcome, server, requests=3)


async def test_response_always_slower_than_timeout_fails_with_api_timeout_error(stream: bool) -> None:
    fault = reply.delay(0.6, final_turn())
    with LocalServer(FunctionPolicy(FaultAtTurn2(fault, times=None))) as server:
        outcome = await run_agent(server, stream=stream, timeout=0.2, max_retries=1)
    assert_failed(outcome, server, APITimeoutError, requests=3)


async def test_stream_stalled_past_read_timeout_fails_with_api_timeout_error() -> None:
    slow = final_turn()
    slow.event_delay = 0.5
    with LocalServer(FunctionPolicy(FaultAtTurn2(slow, times=None))) as server:
        outcome = await run_agent(server, stream=True, timeout=0.2)
    assert_failed(outcome, server, APITimeoutError, requests=2)


# --- the caller cancels --------------------------------------------------------------------------


async def test_caller_cancel_mid_dispatch_leaves_history_valid_and_resumable(stream: bool) -> None:
    started: list[str] = []
    both_started = anyio.Event()

    @tool
    async def slow_lookup(city: str, ctx: RunContext[Any]) -> str:
        """Slow weather lookup.

        Args:
            city: City name.
        """
        assert ctx.tool_use_id is not None
        CALLS[ctx.tool_use_id] += 1
        started.append(city)
        if len(started) == 2:
            both_started.set()
        await anyio.sleep(30)
        return "never"

    def policy(request: Request) -> Any:
        if request.assistant_turns == 0:
            return reply.message(
                [
                    reply.tool_use_block("slow_lookup", {"city": "Paris"}, "toolu_c1"),
                    reply.tool_use_block("slow_lookup", {"city": "Oslo"}, "toolu_c2"),
                ],
                usage=dict(U1),
            )
        return final_turn()

    with LocalServer(FunctionPolicy(policy)) as server:
        client = Client(api_key=KEY, base_url=server.base_url, max_retries=0, **STACK)
        agent = Agent(client, model=MODEL, tools=[slow_lookup], stream=stream)
        conversation = Conversation()
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await agent.run(PROMPT, history=conversation)
                raise AssertionError("the run was not cancelled")

            group.start_soon(run)
            with anyio.fail_after(5):
                await both_started.wait()
            group.cancel_scope.cancel()
        history = conversation.messages
        check_messages(wire(history))
        results = results_by_id(history)
        assert set(results) == {"toolu_c1", "toolu_c2"}
        assert all(r.is_error and "cancelled" in str(r.content) for r in results.values())
        assert dict(CALLS) == {"toolu_c1": 1, "toolu_c2": 1}
        assert len(server.requests) == 1
        usage = conversation.usage
        assert (usage.input_tokens, usage.output_tokens) == (11, 5)
        # the conversation continues where it stopped; the server accepts it
        result = await agent.run("Try again later.", history=conversation)
        await client.aclose()
    assert result.text == FINAL
    assert statuses(server) == [200, 200]
    assert dict(CALLS) == {"toolu_c1": 1, "toolu_c2": 1}
    check_messages(wire(conversation.messages))


# --- bad input from the model --------------------------------------------------------------------


def assert_bad_call_answered(outcome: Outcome, server: LocalServer, bad_id: str, needle: str) -> None:
    assert_invariants(outcome, server)
    assert outcome.error is None, repr(outcome.error)
    assert outcome.result is not None and outcome.result.text == FINAL
    result = results_by_id(outcome.conversation.messages)[bad_id]
    assert result.is_error, result
    assert needle.lower() in str(result.content).lower(), result.content
    assert statuses(server) == [200, 200, 200]


async def test_unknown_tool_name_gets_error_result_and_run_continues(stream: bool) -> None:
    bad = reply.tool_use("get_stock_price", {"ticker": "ACME"}, "toolu_bad")
    with LocalServer(bad_turn2(bad)) as server:
        outcome = await run_agent(server, stream=stream)
    assert_bad_call_answered(outcome, server, "toolu_bad", "Unknown tool 'get_stock_price'")
    assert "toolu_bad" not in CALLS


@pytest.mark.parametrize(
    "bad_input", [{"city": 123}, {}, {"town": "Paris"}], ids=["type", "missing", "extra"]
)
async def test_schema_violating_input_gets_error_result_and_run_continues(
    stream: bool, bad_input: dict[str, Any]
) -> None:
    bad = reply.tool_use("lookup", bad_input, "toolu_bad")
    with LocalServer(bad_turn2(bad)) as server:
        outcome = await run_agent(server, stream=stream)
    assert_bad_call_answered(outcome, server, "toolu_bad", "lookup")
    assert "toolu_bad" not in CALLS


async def test_non_object_input_gets_error_result_and_run_continues(stream: bool) -> None:
    bad = reply.message(
        [{"type": "tool_use", "id": "toolu_bad", "name": "lookup", "input": "str"}], "tool_use"
    )
    with LocalServer(bad_turn2(bad)) as server:
        outcome = await run_agent(server, stream=stream)
    assert_bad_call_answered(outcome, server, "toolu_bad", "lookup")
    assert "toolu_bad" not in CALLS


@pytest.mark.parametrize("raw", ['"str"', '{"x": '], ids=["non-object", "invalid-json"])
async def test_invalid_streamed_tool_input_is_never_run(raw: str) -> None:
    """Spec §9: invalid tool input JSON marks the call invalid; never execute it. A tool without
    parameters makes the difference visible (an empty input would validate)."""
    bad = MessageReply(
        {"content": [reply.tool_use_block("explode", {}, "toolu_bad")], "stop_reason": "tool_use"},
        partial_json={0: raw},
        close_cut_blocks=True,
    )
    with LocalServer(bad_turn2(bad)) as server:
        outcome = await run_agent(server, stream=True)
    assert_invariants(outcome, server)
    assert outcome.result is not None and outcome.result.text == FINAL
    assert results_by_id(outcome.conversation.messages)["toolu_bad"].is_error
    assert "toolu_bad" not in CALLS, "the call with invalid input was executed"


async def test_huge_input_runs_once_and_run_completes(stream: bool) -> None:
    bad = reply.tool_use("lookup", {"city": "P" * 1_000_000}, "toolu_huge")
    with LocalServer(bad_turn2(bad)) as server:
        outcome = await run_agent(server, stream=stream)
    assert_invariants(outcome, server)
    assert outcome.result is not None and outcome.result.text == FINAL
    assert CALLS["toolu_huge"] == 1
    assert not results_by_id(outcome.conversation.messages)["toolu_huge"].is_error


@pytest.mark.parametrize("on_truncated", ["raise", "continue"])
async def test_tool_use_truncated_by_max_tokens_is_never_run(stream: bool, on_truncated: str) -> None:
    bad = reply.max_tokens_cut_tool_use("lookup", '{"city": "Pa', id="toolu_cut")
    with LocalServer(bad_turn2(bad)) as server:
        outcome = await run_agent(server, stream=stream, on_truncated_tool_use=on_truncated)
    assert_invariants(outcome, server)
    assert "toolu_cut" not in CALLS
    answer = results_by_id(outcome.conversation.messages)["toolu_cut"]
    assert answer.is_error and "max_tokens" in str(answer.content)
    if on_truncated == "raise":
        assert isinstance(outcome.error, ToolInputTruncatedError)
        assert len(server.requests) == 2
    else:
        assert outcome.result is not None and outcome.result.text == FINAL
        assert len(server.requests) == 3


async def test_tool_that_raises_gets_error_result_and_run_continues(stream: bool) -> None:
    with LocalServer(bad_turn2(reply.tool_use("explode", {}, "toolu_boom"))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_bad_call_answered(outcome, server, "toolu_boom", "RuntimeError: disk on fire")
    assert CALLS["toolu_boom"] == 1


@pytest.mark.parametrize("name", ["hang_async", "hang_sync"])
async def test_tool_hanging_past_its_timeout_gets_error_result(stream: bool, name: str) -> None:
    spans: dict[str, float] = {}

    def before(ctx: RunContext[Any], tool_use: ToolUseBlock) -> None:
        spans[tool_use.id] = time.monotonic()

    def after(ctx: RunContext[Any], tool_use: ToolUseBlock, result: ToolResultBlock) -> None:
        spans[tool_use.id] = time.monotonic() - spans[tool_use.id]

    hooks = Hooks(before_tool_call=before, after_tool_call=after)
    with LocalServer(bad_turn2(reply.tool_use(name, {}, "toolu_hang"))) as server:
        outcome = await run_agent(server, stream=stream, hooks=hooks)
    assert_bad_call_answered(outcome, server, "toolu_hang", "timed out after 0.2s")
    assert CALLS["toolu_hang"] == 1
    assert spans["toolu_hang"] < 1.5  # abandoned at its 0.2 s timeout, not waited for (2 s or 30 s)


async def test_tool_returning_unserialisable_value_gets_error_result(stream: bool) -> None:
    with LocalServer(bad_turn2(reply.tool_use("unserialisable", {}, "toolu_obj"))) as server:
        outcome = await run_agent(server, stream=stream)
    assert_bad_call_answered(outcome, server, "toolu_obj", "unserialisable value of type object")
    assert CALLS["toolu_obj"] == 1


def endless(request: Request) -> Any:
    """Always one more lookup, each with a new input (so only max_turns can stop it)."""
    if request.json.get("tool_choice", {}).get("type") == "none":
        return reply.text("Wrapped up: partial answer.")
    n = request.assistant_turns
    return reply.tool_use("lookup", {"city": f"City{n}"}, f"toolu_loop{n}")


@pytest.mark.parametrize("on_limit", ["raise", "wrap_up"])
async def test_endless_tool_loop_stops_at_max_turns(stream: bool, on_limit: str) -> None:
    with LocalServer(FunctionPolicy(endless)) as server:
        outcome = await run_agent(server, stream=stream, max_turns=4, on_limit=on_limit)
    assert_invariants(outcome, server)
    assert dict(CALLS) == {f"toolu_loop{n}": 1 for n in range(4)}
    if on_limit == "raise":
        assert isinstance(outcome.error, MaxTurnsExceeded)
        assert len(server.requests) == 4
    else:
        assert outcome.result is not None
        assert outcome.result.stopped_by_limit == "max_turns"
        assert outcome.result.text == "Wrapped up: partial answer."
        assert len(server.requests) == 5


async def test_same_call_repeated_stops_with_tool_loop_error(stream: bool) -> None:
    def same(request: Request) -> Any:
        n = request.assistant_turns
        return reply.tool_use("lookup", {"city": "Paris"}, f"toolu_same{n}")

    with LocalServer(FunctionPolicy(same)) as server:
        outcome = await run_agent(server, stream=stream, max_turns=20)
    assert_invariants(outcome, server)
    assert isinstance(outcome.error, ToolLoopError)
    assert len(server.requests) < 20
