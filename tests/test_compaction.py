"""Compaction for long runs (``Agent(compaction=Compaction(...))``), through the public API against the
local server: the trigger reads the last request's usage; clearing keeps every pair with its ids;
summarising makes one request whose usage counts and whose summary the next request carries; thinking
and server ``compaction`` blocks go back as received; every compacted history is one the API accepts."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agentkit import (
    Agent,
    Client,
    Compaction,
    ConfigurationError,
    Conversation,
    Hooks,
    InternalServerError,
    RunContext,
    RunState,
    tool,
)
from agentkit._history import check_messages
from agentkit.testing import LocalServer, MessageReply, Request, Script, reply, sign_thinking

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
THINKING = {"type": "enabled", "budget_tokens": 1024}
BIG = "x" * 4000  # a tool result worth clearing


@tool
def fetch(page: int) -> str:
    """Fetch a page.

    Args:
        page: Page number.
    """
    return f"page {page}: " + BIG


def agent_for(server: LocalServer, compaction: Compaction | None, **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    return Agent(client, model=MODEL, tools=[fetch], compaction=compaction, **kwargs)


def sized(r: MessageReply, input_tokens: int, output_tokens: int = 10, **cache: int) -> MessageReply:
    """``r`` reporting this usage (what the trigger reads)."""
    r.message["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens, **cache}
    return r


def fetch_call(page: int, tokens: int, thinking: bool = False) -> MessageReply:
    out = reply.tool_use("fetch", {"page": page}, f"toolu_p{page}")
    if thinking:
        out = reply.with_thinking(out, f"I should fetch page {page}.")
    return sized(out, tokens)


def results(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def all_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for m in messages if m["role"] == "user" for b in results(m)]


def assistant_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["role"] == "assistant"]


# --- the trigger -------------------------------------------------------------------------------


async def test_below_the_trigger_nothing_is_compacted() -> None:
    script = Script([fetch_call(1, 100), fetch_call(2, 999), reply.text("done")])
    with LocalServer(policy=script) as server, capture_logs() as logs:
        result = await agent_for(server, Compaction(trigger_tokens=1000, keep_tool_results=0)).run("go")
    assert result.text == "done"
    last = server.requests[-1].messages
    assert [r["content"] for r in all_results(last)] == [f"page 1: {BIG}", f"page 2: {BIG}"]
    assert not [e for e in logs if e["event"] == "guard.compaction"]


async def test_the_trigger_counts_cache_tokens_of_the_last_request_only() -> None:
    # 400 + 300 + 300 = 1000 tokens in the last request: at the trigger. The first request's usage
    # (900) is not added to it: the trigger is the size of the last context, not the run's total.
    script = Script(
        [
            fetch_call(1, 900),
            sized(
                reply.tool_use("fetch", {"page": 2}, "toolu_p2"),
                400,
                cache_read_input_tokens=300,
                cache_creation_input_tokens=300,
            ),
            reply.text("done"),
        ]
    )
    with LocalServer(policy=script) as server, capture_logs() as logs:
        await agent_for(server, Compaction(trigger_tokens=1000, keep_tool_results=1)).run("go")
    second, third = server.requests[1].messages, server.requests[2].messages
    assert all_results(second)[0]["content"] == f"page 1: {BIG}"  # 900 < 1000: not compacted
    assert all_results(third)[0]["content"] == "[result cleared to save context: 4,008 chars]"
    assert all_results(third)[1]["content"] == f"page 2: {BIG}"
    (event,) = [e for e in logs if e["event"] == "guard.compaction"]
    assert event["tokens_before"] == 1000


# --- clearing old tool results -----------------------------------------------------------------


async def test_clearing_keeps_each_pair_with_its_ids_and_the_recent_results() -> None:
    script = Script([fetch_call(1, 100), fetch_call(2, 100), fetch_call(3, 5000), reply.text("done")])
    chat = Conversation()
    compaction = Compaction(trigger_tokens=1000, keep_tool_results=2)
    with LocalServer(policy=script) as server, capture_logs() as logs:
        result = await agent_for(server, compaction).run("go", history=chat)
    before, after = server.requests[2].messages, server.requests[3].messages
    assert len(after) == len(before) + 2  # nothing dropped: the same turns, one more pair
    assert assistant_turns(after)[:2] == assistant_turns(before)  # assistant turns as they were
    ids = [r["tool_use_id"] for r in all_results(after)]
    uses = [b["id"] for m in assistant_turns(after) for b in m["content"] if b["type"] == "tool_use"]
    assert ids == uses == ["toolu_p1", "toolu_p2", "toolu_p3"]
    contents = [r["content"] for r in all_results(after)]
    assert contents == [
        "[result cleared to save context: 4,008 chars]",  # the oldest one only: two are kept
        f"page 2: {BIG}",
        f"page 3: {BIG}",
    ]
    # the history the caller passed in is the compacted one (in place), and stays valid
    assert result.text == "done"
    assert chat.to_wire()[: len(after)] == after
    chat.check()
    (event,) = [e for e in logs if e["event"] == "guard.compaction"]
    assert event["strategy"] == "clear_tool_results"
    assert event["tokens_before"] == 5000
    assert 0 <= event["tokens_after_estimate"] < 5000
    assert event["messages_before"] == event["messages_after"] == 7
    assert event["log_level"] == "info"


async def test_the_last_turns_results_are_never_cleared_even_with_keep_zero() -> None:
    parallel = sized(
        reply.tool_uses([("fetch", {"page": 1}, "toolu_a"), ("fetch", {"page": 2}, "toolu_b")]), 5000
    )
    script = Script([parallel, reply.text("done")])
    with LocalServer(policy=script) as server, capture_logs() as logs:
        await agent_for(server, Compaction(trigger_tokens=10, keep_tool_results=0)).run("go")
    assert [r["content"] for r in all_results(server.requests[1].messages)] == [
        f"page 1: {BIG}",
        f"page 2: {BIG}",
    ]
    assert not [e for e in logs if e["event"] == "guard.compaction"]  # nothing worth clearing


async def test_clearing_leaves_thinking_untouched() -> None:
    script = Script(
        [fetch_call(1, 100, True), fetch_call(2, 100, True), fetch_call(3, 5000, True), reply.text("ok")]
    )
    with LocalServer(policy=script) as server:
        agent = agent_for(
            server, Compaction(trigger_tokens=1000, keep_tool_results=1), thinking=THINKING, max_tokens=2048
        )
        result = await agent.run("go")
    assert result.text == "ok"  # the server verified every signature and the thinking rules
    before, after = server.requests[2].messages, server.requests[3].messages
    assert assistant_turns(after)[:2] == assistant_turns(before)
    thinking = [b for m in assistant_turns(after) for b in m["content"] if b["type"] == "thinking"]
    assert [b["signature"] for b in thinking] == [sign_thinking(b["thinking"]) for b in thinking]
    assert len(thinking) == 3
    assert [r["content"] for r in all_results(after)][:2] == [
        "[result cleared to save context: 4,008 chars]"
    ] * 2


async def test_a_conversation_keeps_its_context_size_across_runs_and_json() -> None:
    # A chat bot: each run starts from the stored conversation. The size reported by the last request
    # of one run triggers compaction at the first request of the next, even after a JSON round trip.
    script = Script(
        [fetch_call(1, 100), fetch_call(2, 100), sized(reply.text("first"), 5000), reply.text("2nd")]
    )
    compaction = Compaction(trigger_tokens=1000, keep_tool_results=0)
    with LocalServer(policy=script) as server:
        agent = agent_for(server, compaction)
        chat = Conversation()
        await agent.run("first question", history=chat)
        assert chat.context_tokens == 5000
        chat = Conversation.from_json(chat.to_json())
        assert chat.context_tokens == 5000
        await agent.run("second question", history=chat)
    sent = server.requests[3].messages
    assert [r["content"] for r in all_results(sent)] == ["[result cleared to save context: 4,008 chars]"] * 2
    assert sent[-1] == {"role": "user", "content": [{"type": "text", "text": "second question"}]}
    assert chat.context_tokens > 0  # the second run's own last request
    with pytest.raises(ConfigurationError, match="'context_tokens' is -1; expected an int >= 0"):
        Conversation.from_json('{"messages": [], "context_tokens": -1}')


# --- summarising older turns -------------------------------------------------------------------


def summary_script(
    summary: str = "SUMMARY: fetched pages 1 and 2; both were x's.", tokens: int = 5000
) -> Script:
    return Script(
        [
            fetch_call(1, 100),
            fetch_call(2, 100),
            fetch_call(3, tokens),
            sized(reply.text(summary), 4000, 60),
            sized(reply.text("done"), 300, 5),
        ]
    )


async def test_summarising_makes_one_request_and_the_next_request_carries_the_summary() -> None:
    chat = Conversation()
    compaction = Compaction(
        trigger_tokens=1000, strategy="summarize", keep_messages=2, summary_max_tokens=500
    )
    with LocalServer(policy=summary_script()) as server, capture_logs() as logs:
        result = await agent_for(server, compaction, system="Be brief.").run("go", history=chat)
    assert result.text == "done"
    assert len(server.requests) == 5
    before, summary_request, after = (server.requests[i] for i in (2, 3, 4))
    # the history was `before` + page 3's call and result; keeping 2 messages, the cut falls before
    # page 3's call: everything up to page 2's result is summarised, the instruction appended to it
    asked = summary_request.json
    assert asked["max_tokens"] == 500 and asked["tool_choice"] == {"type": "none"}
    assert asked["system"] == "Be brief." and "thinking" not in asked
    assert summary_request.messages[:-1] == before.messages[:-1]
    last = summary_request.messages[-1]["content"]
    assert last[:-1] == before.messages[-1]["content"]
    assert last[-1] == {"type": "text", "text": compaction.summary_prompt}
    # the next request: one summary user turn, then the kept turns verbatim
    summary_turn, *kept = after.messages
    assert summary_turn["role"] == "user" and len(summary_turn["content"]) == 1
    assert summary_turn["content"][0]["text"].endswith("SUMMARY: fetched pages 1 and 2; both were x's.")
    assert [r["tool_use_id"] for r in all_results(kept)] == ["toolu_p3"]
    assert kept[0] == {
        "role": "assistant",
        "content": [reply.tool_use_block("fetch", {"page": 3}, "toolu_p3")],
    }
    assert results(kept[1])[0]["content"] == f"page 3: {BIG}"
    # its usage counts in the run's usage (and the conversation's), not as a turn
    assert result.turns == 4
    assert result.usage.input_tokens == 100 + 100 + 5000 + 4000 + 300
    assert result.usage.output_tokens == 10 * 3 + 60 + 5
    assert chat.usage.input_tokens == result.usage.input_tokens
    assert chat.to_wire()[:-1] == after.messages
    (event,) = [e for e in logs if e["event"] == "guard.compaction"]
    assert event["strategy"] == "summarize"
    assert event["tokens_before"] == 5000
    assert event["messages_before"] == 7 and event["messages_after"] == 3


@pytest.mark.parametrize("interleaved", [True, False])
async def test_summarising_with_thinking_keeps_signatures_and_passes_the_thinking_rules(
    interleaved: bool,
) -> None:
    # Mid tool loop with thinking on, the running turn's first assistant message must start with a
    # thinking block. Interleaved: every turn has one, so the cut can fall before page 3's call.
    # Not interleaved: only page 1's call has one, so the cut cannot fall inside the loop after it.
    script = Script(
        [
            fetch_call(1, 100, True),
            fetch_call(2, 100, interleaved),
            fetch_call(3, 5000, interleaved),
            sized(reply.text("SUMMARY"), 100),
            sized(reply.text("done"), 100),
        ]
    )
    compaction = Compaction(trigger_tokens=1000, strategy="summarize", keep_messages=2)
    with LocalServer(policy=script) as server:
        agent = agent_for(server, compaction, thinking=THINKING, max_tokens=2048)
        result = await agent.run("go")
    assert result.text == "done"  # the server checked the thinking rules and every signature
    before, after = server.requests[2].messages, server.requests[4].messages
    assert after[1]["content"][0]["type"] == "thinking"
    if interleaved:
        assert len(after) == 3 and after[1]["content"][1]["id"] == "toolu_p3"
    else:  # only the prompt is summarised; every turn of the loop stays, thinking first
        assert after[1:5] == before[1:] and len(after) == 7
    assert "thinking" not in server.requests[3].json


async def test_an_empty_summary_or_a_failed_summary_request_leaves_the_history_as_it_was() -> None:
    compaction = Compaction(trigger_tokens=1000, strategy="summarize", keep_messages=2)
    empty = Script(
        [
            fetch_call(1, 100),
            fetch_call(2, 5000),
            sized(reply.text(" "), 700, 3),
            sized(reply.text("ok"), 300),
        ]
    )
    with LocalServer(policy=empty) as server, capture_logs() as logs:
        result = await agent_for(server, compaction).run("go")
    assert result.text == "ok"
    assert server.requests[3].messages[:3] == server.requests[1].messages  # nothing replaced
    assert result.usage.input_tokens == 100 + 5000 + 700 + 300  # the summary request still counts
    assert not [e for e in logs if e["event"] == "guard.compaction"]

    failing = Script([fetch_call(1, 100), fetch_call(2, 5000), reply.error(500)])
    chat = Conversation()
    with LocalServer(policy=failing) as server:
        with pytest.raises(InternalServerError):
            await agent_for(server, compaction).run("go", history=chat)
        assert server.requests[2].json["tool_choice"] == {"type": "none"}  # the summary request failed
    history = chat.to_wire()
    assert len(history) == 5 and history[:2] == server.requests[1].messages[:2]
    assert [r["content"] for r in all_results(history)] == [f"page 1: {BIG}", f"page 2: {BIG}"]
    chat.check()


async def test_a_state_saved_after_compaction_round_trips_and_resumes_without_compacting_again() -> None:
    saved: list[str] = []

    def on_step(ctx: RunContext[Any], state: RunState) -> None:
        saved.append(state.to_json())

    compaction = Compaction(trigger_tokens=1000, strategy="summarize", keep_messages=2)
    # 2,500 tokens before; about 8,000 characters summarised away: the estimate after is under 1,000
    with LocalServer(policy=summary_script(tokens=2500)) as server:
        agent = agent_for(server, compaction, hooks=Hooks(on_step=on_step))
        await agent.run("go")
        sent = server.requests[4].messages
    # the checkpoint before the last request holds the compacted history
    state = RunState.from_json(saved[-2])
    assert state.step == "request"
    assert state.conversation.to_wire() == sent
    assert RunState.from_json(state.to_json()).to_dict() == state.to_dict()
    assert state.conversation.context_tokens < 1000  # the estimate after compaction, saved with it
    with LocalServer(policy=Script([reply.text("again")])) as server:
        again = await agent_for(server, compaction).resume(saved[-2])
    assert again.text == "again"
    assert server.requests[0].messages == sent  # no second summary request


# --- server-side compaction blocks -------------------------------------------------------------

COMPACTION_BLOCK = {
    "type": "compaction",
    "content": "Earlier conversation summarized.",
    "encrypted_content": "EpwBCioIDxgCEAEYASJALd_opaque_compaction_payload",
}


def compaction_script(*extra: MessageReply) -> Script:
    first = sized(
        reply.message([dict(COMPACTION_BLOCK), reply.tool_use_block("fetch", {"page": 1}, "toolu_p1")]), 100
    )
    return Script([first, fetch_call(2, 100), fetch_call(3, 5000), *extra])


@pytest.mark.parametrize("strategy", ["clear_tool_results", "summarize"])
async def test_server_compaction_blocks_go_back_as_received(strategy: str) -> None:
    tail = [sized(reply.text("SUMMARY"), 100)] if strategy == "summarize" else []
    script = compaction_script(*tail, sized(reply.text("done"), 100))
    compaction = Compaction(trigger_tokens=1000, strategy=strategy, keep_tool_results=0, keep_messages=1)  # type: ignore[arg-type]
    with LocalServer(policy=script) as server, capture_logs() as logs:
        result = await agent_for(server, compaction).run("go")
    assert result.text == "done"
    assert [e["strategy"] for e in logs if e["event"] == "guard.compaction"] == [strategy]
    for request in server.requests:
        if request.index == 0 or request.json.get("tool_choice") == {"type": "none"}:
            continue  # the first request, and the summary request of what came before the block
        blocks = [b for m in assistant_turns(request.messages) for b in m["content"]]
        assert blocks[0] == COMPACTION_BLOCK  # every request after the first: unchanged, never dropped
    last = server.requests[-1].messages
    if strategy == "summarize":  # the cut could not go past the turn that holds the block
        assert last[0]["content"][0]["text"].endswith("SUMMARY") and last[1]["content"][0] == COMPACTION_BLOCK


# --- configuration -----------------------------------------------------------------------------


def test_bad_configuration_is_refused_where_it_is_given() -> None:
    with pytest.raises(ConfigurationError, match=r"Agent\(compaction=\.\.\.\): got .yes. \(str\)"):
        Agent(model=MODEL, compaction="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"Compaction\(trigger_tokens=\.\.\.\): got 0"):
        Compaction(trigger_tokens=0)
    with pytest.raises(ConfigurationError, match=r"Compaction\(strategy=\.\.\.\): got 'drop'"):
        Compaction(trigger_tokens=10, strategy="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"keep_messages"):
        Compaction(trigger_tokens=10, keep_messages=0)
    assert Agent(model=MODEL).compaction is None


# --- every compacted history is one the API accepts (property) ---------------------------------


@tool
def probe() -> str:
    """Look once more."""
    return "probed"


def _text(draw: st.DrawFn, label: str) -> str:
    return f"{label} " + "r" * draw(st.integers(0, 3000))


@st.composite
def tool_heavy_histories(draw: st.DrawFn, thinking: bool) -> list[dict[str, Any]]:
    """Random valid histories ending in a user turn: exchanges of a prompt, rounds of parallel calls
    with their results (errors, list contents, trailing text), signed thinking blocks (every chain's
    first assistant turn has one when thinking is on), server compaction blocks, final answers."""
    messages: list[dict[str, Any]] = []
    exchanges = draw(st.integers(1, 4))
    for e in range(exchanges):
        prompt = _text(draw, f"prompt {e}")
        messages.append(
            {"role": "user", "content": prompt if draw(st.booleans()) else [{"type": "text", "text": prompt}]}
        )
        rounds = draw(st.integers(0, 4))
        for r in range(rounds):
            n = len(messages)
            blocks: list[dict[str, Any]] = []
            if (thinking and r == 0) or draw(st.integers(0, 3)) == 0:
                blocks.append(reply.thinking_block(f"thinking at {n}: " + "t" * draw(st.integers(0, 200))))
            if draw(st.integers(0, 5)) == 0:
                blocks.append({**COMPACTION_BLOCK, "content": f"compacted before {n}"})
            if draw(st.booleans()):
                blocks.append({"type": "text", "text": f"calling at {n}"})
            calls = draw(st.integers(1, 3))
            ids = [f"toolu_h{n}_{k}" for k in range(calls)]
            blocks += [reply.tool_use_block("probe", {}, i) for i in ids]
            messages.append({"role": "assistant", "content": blocks})
            answers: list[dict[str, Any]] = []
            for i in ids:
                body = _text(draw, f"result {i}")
                content: Any = body if draw(st.booleans()) else [{"type": "text", "text": body}]
                answer = {"type": "tool_result", "tool_use_id": i, "content": content}
                if draw(st.integers(0, 3)) == 0:
                    answer["is_error"] = True
                answers.append(answer)
            if draw(st.integers(0, 3)) == 0:
                answers.append({"type": "text", "text": f"note after results at {n}"})
            messages.append({"role": "user", "content": answers})
        if e < exchanges - 1:
            final: list[dict[str, Any]] = []
            if thinking and rounds == 0:
                final.append(reply.thinking_block(f"answering {e}"))
            final.append({"type": "text", "text": f"answer {e}"})
            messages.append({"role": "assistant", "content": final})
    return messages


def property_policy(request: Request) -> Any:
    """Stateless: the summary request gets a summary; a history whose last turn answers the probe gets
    the final answer; any other gets a probe call reporting a context far past the trigger."""
    if request.json.get("tool_choice") == {"type": "none"}:
        return sized(reply.text(f"SUMMARY of {len(request.messages)} messages"), 50_000)
    if any(r["tool_use_id"].startswith("toolu_probe") for r in request.tool_results):
        return sized(reply.text("done"), 100)
    out = reply.tool_use("probe", {}, f"toolu_probe{request.index}")
    if request.thinking_enabled and not request.tool_results:  # a new chain starts with thinking; a
        out = reply.with_thinking(out, "probe it")  # turn continuing one may not (no interleaving)
    return sized(out, 1_000_000)


@pytest.fixture
def property_server() -> Iterator[LocalServer]:
    with LocalServer(policy=property_policy) as server:
        yield server


@pytest.mark.parametrize("strategy", ["clear_tool_results", "summarize"])
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), thinking=st.booleans(), keep=st.integers(0, 4), stream=st.booleans())
async def test_every_compacted_history_is_accepted_by_the_api_validation(
    property_server: LocalServer, strategy: str, data: st.DataObject, thinking: bool, keep: int, stream: bool
) -> None:
    history = data.draw(tool_heavy_histories(thinking))
    check_messages(history)  # the generator makes valid histories
    original = copy.deepcopy(history)
    property_server.clear_requests()
    compaction = Compaction(
        trigger_tokens=1000,
        strategy=strategy,  # type: ignore[arg-type]
        keep_tool_results=keep,
        keep_messages=keep + 1,
    )
    client = Client(api_key="sk-test", base_url=property_server.base_url, max_retries=0)
    async with client:
        agent = Agent(
            client,
            model=MODEL,
            tools=[probe],
            compaction=compaction,
            thinking=THINKING if thinking else None,
            max_tokens=2048,
            stream=stream,
        )
        chat = Conversation(history)
        with capture_logs() as logs:
            result = await agent.run(history=chat)
    assert result.text == "done"
    assert [r.status for r in property_server.requests] == [200] * len(property_server.requests)
    compacted = [e for e in logs if e["event"] == "guard.compaction"]
    assert len(compacted) <= 1
    event(f"compacted: {bool(compacted)}")
    last = property_server.requests[-1].messages
    probe_turn = assistant_turns(last)[-1]  # the probe call, answered in the last turn
    # every assistant turn sent after compaction is one of the originals (or the probe), as it was
    for turn in assistant_turns(last):
        assert turn in original or turn == probe_turn
    # server compaction blocks are never dropped or edited
    kept_blocks = [b for m in assistant_turns(last) for b in m["content"] if b["type"] == "compaction"]
    assert kept_blocks == [
        b for m in assistant_turns(original) for b in m["content"] if b["type"] == "compaction"
    ]
    if strategy == "clear_tool_results":
        assert len(last) == len(original) + 2  # nothing dropped
        for sent, was in zip(last, original, strict=False):
            for a, b in zip(sent["content"], was["content"], strict=True) if sent["role"] == "user" else ():
                assert a == b or (a["type"] == "tool_result" and a["content"].startswith("[result cleared"))
    elif compacted:
        assert last[0]["content"][0]["text"].endswith(" messages") and len(last) <= len(original) + 2
    chat.check()
