"""Property: whatever the model does, the agent only ever sends requests the API accepts.

A hypothesis-drawn plan scripts the model turn by turn: text, K parallel tool calls (valid inputs,
inputs violating the schema, unknown tool names), transient error statuses before a turn (retried),
``max_tokens`` cutting a ``tool_use``, an early ``end_turn``. For every plan: each request the local
server received passed its validation (statuses only 200 or the retried codes: zero 400s), every
request's history and the final history pass ``check_messages``, no ``tool_use`` id runs twice, only
valid calls run, and usage adds up to the responses that arrived.

(The schema and SSE-split properties live in test_tool_schema.py and test_sse.py.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentkit._client
from agentkit import Agent, AgentRunError, Client, Conversation
from agentkit._context import RunContext
from agentkit._history import check_messages
from agentkit._tool import tool
from agentkit.testing import LocalServer, Script, reply
from agentkit.types import ToolResultBlock, ToolUseBlock, to_wire

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
KEY = "sk-test"
RETRIED = (429, 500, 503, 529)
USAGE = {"input_tokens": 3, "output_tokens": 2}
MAX_TURNS = 6

CALLS: Counter[str] = Counter()


@tool
async def lookup(city: str, ctx: RunContext[Any]) -> str:
    """Current weather for a city.

    Args:
        city: City name.
    """
    assert ctx.tool_use_id is not None
    CALLS[ctx.tool_use_id] += 1
    return f"{city}: 21C"


# --- the plan ----------------------------------------------------------------------------------

call = st.one_of(
    st.tuples(st.just("valid"), st.sampled_from(["Paris", "Oslo", "Lima"])),
    st.tuples(st.just("invalid"), st.sampled_from([{"city": 5}, {}, {"town": "Oslo"}, {"city": None}])),
    st.tuples(st.just("unknown"), st.sampled_from(["get_stock", "lookup_v2", "x"])),
)
action = st.one_of(
    st.tuples(st.just("text"), st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")),
    st.tuples(st.just("tools"), st.lists(call, min_size=1, max_size=4)),
    st.tuples(st.just("cut"), st.just(None)),
)
turn = st.tuples(st.lists(st.sampled_from(RETRIED), max_size=2), action)
plan_strategy = st.lists(turn, min_size=1, max_size=MAX_TURNS + 1)


def build_replies(plan: list[tuple[list[int], tuple[str, Any]]]) -> list[Any]:
    """One reply per request: the errors before each turn, then the turn; then a final answer."""
    replies: list[Any] = []
    for errors, (kind, arg) in plan:
        replies += [reply.error(status, retry_after_ms=1) for status in errors]
        if kind == "text":
            replies.append(reply.message([{"type": "text", "text": arg}], "end_turn", usage=dict(USAGE)))
        elif kind == "tools":
            blocks = []
            for flavour, value in arg:
                if flavour == "valid":
                    blocks.append(reply.tool_use_block("lookup", {"city": value}))
                elif flavour == "invalid":
                    blocks.append(reply.tool_use_block("lookup", value))
                else:
                    blocks.append(reply.tool_use_block(value, {"q": 1}))
            replies.append(reply.message(blocks, "tool_use", usage=dict(USAGE)))
        else:
            cut = reply.max_tokens_cut_tool_use("lookup", '{"city": "Pa')
            cut.message["usage"] = dict(USAGE)
            replies.append(cut)
    # whatever the agent asks after the plan (a wrap-up included) gets an answer
    replies += [reply.message([{"type": "text", "text": "Done."}], "end_turn", usage=dict(USAGE))] * 3
    return replies


# --- fixtures: one server and one client per test function (hypothesis runs many examples) ---------


@pytest.fixture
def server() -> Any:
    with LocalServer(Script([])) as srv:
        yield srv


@pytest.fixture
async def client(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Client]:
    monkeypatch.setattr(agentkit._client, "_INITIAL_BACKOFF", 0.001)
    async with Client(api_key=KEY, base_url=server.base_url, max_retries=2, timeout=5.0) as c:
        yield c


def wire(messages: list[Any]) -> list[dict[str, Any]]:
    return [to_wire(m) for m in messages]  # type: ignore[misc]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plan_strategy, stream=st.booleans(), parallel=st.booleans())
async def test_random_model_behaviour_never_produces_a_rejected_request(
    server: LocalServer, client: Client, plan: list[Any], stream: bool, parallel: bool
) -> None:
    CALLS.clear()
    server.clear_requests()
    server.policy = Script(build_replies(plan))
    agent = Agent(
        client,
        model=MODEL,
        tools=[lookup],
        stream=stream,
        parallel_tool_calls=parallel,
        max_turns=MAX_TURNS,
        on_truncated_tool_use="continue",
    )
    conversation = Conversation()
    result = None
    stopped: AgentRunError | None = None
    try:
        result = await agent.run("Weather, please.", history=conversation)
    except AgentRunError as exc:  # a guard (the loop guard) may stop a run; history stays valid
        stopped = exc
    if stopped is not None:
        check_messages(wire(stopped.messages))
        assert stopped.messages == conversation.messages

    requests = server.requests
    answered = [r.status for r in requests]
    assert set(answered) <= {200, *RETRIED}, f"a request was rejected: {answered}"
    for request in requests:  # what was sent was valid history, not only what the server said
        check_messages(request.messages)
    history = conversation.messages
    # valid to continue: with the next user turn the API accepts it (a final assistant turn checked bare
    # would count as a prefill, which may not end in whitespace); Conversation.check() says the same.
    follow_up = [{"role": "user", "content": "Next question."}] if history[-1].role == "assistant" else []
    check_messages(wire(history) + follow_up)
    conversation.check()

    ok = answered.count(200)
    assert (conversation.usage.input_tokens, conversation.usage.output_tokens) == (3 * ok, 2 * ok)
    if result is not None:
        assert result.turns == ok
        assert result.messages == history

    uses = [b for m in history if m.role == "assistant" for b in m.content if isinstance(b, ToolUseBlock)]
    results = {
        b.tool_use_id: b
        for m in history
        if m.role == "user" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    }
    assert len({u.id for u in uses}) == len(uses)
    assert all(n == 1 for n in CALLS.values()), f"a tool_use id ran twice: {CALLS}"
    runnable = {u.id for u in uses if u.name == "lookup" and isinstance(u.input.get("city"), str)}
    assert set(CALLS) <= runnable, "a call with an invalid input or an unknown name was run"
    for use in uses:
        if use.id not in runnable:
            assert results[use.id].is_error, f"{use.name}{use.input} was answered as a success"


async def test_completed_conversation_ending_in_whitespace_round_trips(
    server: LocalServer, client: Client
) -> None:
    """Found by the property above (plan: one text turn ``'0 '``)."""
    server.policy = Script([reply.text("Sunny.\n")])
    conversation = Conversation()
    result = await Agent(client, model=MODEL).run("Weather?", history=conversation)
    assert result.text == "Sunny.\n"
    conversation.check()
    assert Conversation.from_json(conversation.to_json()).messages == conversation.messages
