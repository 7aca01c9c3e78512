"""The agent loop against the local Messages API server (which validates every request like the API)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, Field
from structlog.testing import capture_logs

from agentkit import (
    Agent,
    Client,
    Conversation,
    Deny,
    HistoryError,
    Hooks,
    MaxTurnsExceeded,
    OutputValidationError,
    RefusalError,
    TokenBudgetExceeded,
    ToolInputTruncatedError,
    ToolLoopError,
)
from agentkit._context import RunContext
from agentkit._events import RunFinished, TextDelta, ToolCallFinished, ToolCallStarted, TurnFinished
from agentkit._history import check_messages
from agentkit._tool import tool
from agentkit.testing import LocalServer, Script, WeatherWorkload, reply
from agentkit.types import ToolResultBlock, ToolUseBlock, to_wire

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"


def make_agent(server: LocalServer, **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    kwargs.setdefault("tools", [get_weather])
    return Agent(client, model=MODEL, **kwargs)


calls: list[str] = []


@tool
async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Tokyo".
    """
    calls.append(city)
    return {"city": city, "temperature": 21, "condition": "clear sky"}


def assert_valid(messages: list[Any]) -> None:
    """The history passes the same validation the server applies (every tool_use answered)."""
    check_messages([to_wire(m) for m in messages])


def bodies(server: LocalServer) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path == "/v1/messages"]


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


async def test_weather_run_three_turns_of_three_parallel_calls() -> None:
    with LocalServer(policy=WeatherWorkload(tool_turns=3, parallel=3)) as server:
        result = await make_agent(server).run("What's the weather in nine cities?")
    assert result.stop_reason == "end_turn"
    assert result.turns == 4
    assert len(calls) == 9
    assert [r.status for r in server.requests] == [200, 200, 200, 200]  # zero 400s
    assert_valid(result.messages)
    assert result.usage.input_tokens > 0
    # results answer the tool_use blocks in order, in one user turn each
    for assistant, user in zip(result.messages[1::2], result.messages[2::2], strict=False):
        uses = [b.id for b in assistant.content if isinstance(b, ToolUseBlock)]
        answers = [b.tool_use_id for b in user.content if isinstance(b, ToolResultBlock)]
        assert answers == uses


async def test_usage_is_summed_over_requests() -> None:
    script = Script(
        [
            reply.message(
                [reply.tool_use_block("get_weather", {"city": "Oslo"})],
                usage={"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 50},
            ),
            reply.message(
                [{"type": "text", "text": "Cold."}],
                usage={"input_tokens": 200, "output_tokens": 20, "cache_read_input_tokens": 70},
            ),
        ]
    )
    with LocalServer(policy=script) as server:
        result = await make_agent(server).run("Oslo?")
    assert result.usage.input_tokens == 300
    assert result.usage.output_tokens == 30
    assert result.usage.cache_read_input_tokens == 120
    assert result.text == "Cold."


async def test_calls_of_one_turn_run_concurrently() -> None:
    started = 0
    all_started = anyio.Event()

    @tool
    async def slow(n: int) -> str:
        """Wait until every call of the turn has started (impossible if they ran one by one).

        Args:
            n: Call number.
        """
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        with anyio.fail_after(5):
            await all_started.wait()
        return f"done {n}"

    script = Script(
        [reply.tool_uses([("slow", {"n": 1}), ("slow", {"n": 2}), ("slow", {"n": 3})]), reply.text("ok")]
    )
    with LocalServer(policy=script) as server:
        result = await make_agent(server, tools=[slow]).run("go")
    results = [b for b in result.messages[2].content if isinstance(b, ToolResultBlock)]
    assert [r.content for r in results] == ["done 1", "done 2", "done 3"]
    assert not any(r.is_error for r in results)


async def test_disable_parallel_tool_use_runs_calls_one_by_one() -> None:
    active = 0
    peak = 0

    @tool
    async def step(n: int) -> int:
        """One step.

        Args:
            n: Step number.
        """
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.01)
        active -= 1
        return n

    script = Script([reply.tool_uses([("step", {"n": 1}), ("step", {"n": 2})]), reply.text("ok")])
    with LocalServer(policy=script) as server:
        agent = make_agent(
            server, tools=[step], tool_choice={"type": "auto", "disable_parallel_tool_use": True}
        )
        await agent.run("go")
    assert peak == 1


async def test_forced_tool_choice_applies_to_the_first_request_only() -> None:
    script = Script([reply.tool_use("get_weather", {"city": "Tokyo"}), reply.text("Sunny.")])
    with LocalServer(policy=script) as server:
        await make_agent(server, tool_choice={"type": "tool", "name": "get_weather"}).run("Tokyo?")
    first, second = bodies(server)
    assert first["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert second["tool_choice"] == {"type": "auto"}


async def test_thinking_blocks_go_back_unchanged_across_tool_turns() -> None:
    script = Script(
        [
            reply.with_thinking(reply.tool_use("get_weather", {"city": "Lima"}), "I should check Lima."),
            reply.text("Warm in Lima."),
        ]
    )
    with LocalServer(policy=script, verify_signatures=True) as server:
        agent = make_agent(server, thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048)
        result = await agent.run("Lima?")
    first_reply = bodies(server)[1]["messages"][1]["content"]
    assert first_reply[0]["type"] == "thinking"
    assert first_reply[0]["thinking"] == "I should check Lima."
    assert first_reply[0]["signature"]
    assert first_reply[1]["type"] == "tool_use"
    assert result.text == "Warm in Lima."
    assert [r.status for r in server.requests] == [200, 200]


async def test_redacted_thinking_is_kept_too() -> None:
    first = reply.message(
        [
            reply.redacted_thinking_block("EncryptedOpaque=="),
            reply.tool_use_block("get_weather", {"city": "Oslo"}),
        ]
    )
    with LocalServer(policy=Script([first, reply.text("k")])) as server:
        agent = make_agent(server, thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048)
        await agent.run("Oslo?")
    sent = bodies(server)[1]["messages"][1]["content"]
    assert sent[0] == {"type": "redacted_thinking", "data": "EncryptedOpaque=="}
    assert sent[1]["type"] == "tool_use"


async def test_pause_turn_sends_the_turn_back_to_continue() -> None:
    script = Script([reply.pause_turn([{"type": "text", "text": "Searching..."}]), reply.text(" Found it.")])
    with LocalServer(policy=script) as server:
        result = await make_agent(server).run("find it")
    second = bodies(server)[1]["messages"]
    assert second[-1] == {"role": "assistant", "content": [{"type": "text", "text": "Searching..."}]}
    assert result.stop_reason == "end_turn"
    assert len(result.messages) == 2  # the continued turn is merged into one assistant message
    assert result.messages[1].content[-1].text == " Found it."  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_cut_by_max_tokens_is_never_run(stream: bool) -> None:
    script = Script([reply.max_tokens_cut_tool_use("get_weather", '{"city": "Pa')])
    with LocalServer(policy=script) as server:
        agent = make_agent(server, stream=stream)
        with pytest.raises(ToolInputTruncatedError, match="max_tokens") as info:
            await agent.run("Paris?")
    assert calls == []
    assert_valid(info.value.messages)
    last = info.value.messages[-1].content[0]
    assert isinstance(last, ToolResultBlock)
    assert last.is_error


async def test_truncated_tool_use_can_continue_as_configured() -> None:
    script = Script(
        [
            reply.max_tokens_cut_tool_use("get_weather"),
            reply.tool_use("get_weather", {"city": "Paris"}),
            reply.text("ok"),
        ]
    )
    with LocalServer(policy=script) as server:
        result = await make_agent(server, on_truncated_tool_use="continue").run("Paris?")
    assert calls == ["Paris"]
    assert result.text == "ok"
    assert_valid(result.messages)


async def test_refusal_stops_and_reports() -> None:
    with LocalServer(policy=Script([reply.refusal(explanation="Not allowed.")])) as server:
        with pytest.raises(RefusalError, match="Not allowed") as info:
            await make_agent(server).run("bad request")
    assert_valid(info.value.messages)


class Forecast(BaseModel):
    """A short forecast."""

    city: str
    temperature_c: float = Field(ge=-90, le=60)


async def test_structured_output_with_one_invalid_attempt() -> None:
    script = Script(
        [
            reply.tool_use("final_result", {"city": "Tokyo", "temperature_c": 999}),
            reply.tool_use("final_result", {"city": "Tokyo", "temperature_c": 18.5}),
        ]
    )
    with LocalServer(policy=script) as server:
        result = await make_agent(server, output_type=Forecast).run("Forecast for Tokyo")
    assert result.output == Forecast(city="Tokyo", temperature_c=18.5)
    retry_turn = bodies(server)[1]["messages"][-1]["content"][0]
    assert retry_turn["is_error"] is True
    assert "temperature_c" in retry_turn["content"]
    assert_valid(result.messages)
    tool_names = [t["name"] for t in bodies(server)[0]["tools"]]
    assert tool_names == ["get_weather", "final_result"]


async def test_structured_output_gives_up_after_the_retry_limit() -> None:
    bad = [reply.tool_use("final_result", {"city": "Tokyo"}) for _ in range(3)]
    with LocalServer(policy=Script(bad)) as server, pytest.raises(OutputValidationError) as info:
        await make_agent(server, output_type=Forecast, output_retries=2).run("Forecast")
    assert_valid(info.value.messages)


async def test_cancellation_mid_dispatch_leaves_every_tool_use_answered() -> None:
    entered = anyio.Event()

    @tool
    async def hang(n: int) -> str:
        """Never finishes.

        Args:
            n: Anything.
        """
        entered.set()
        await anyio.sleep_forever()
        return "never"

    @tool
    def quick(n: int) -> str:
        """Finishes at once.

        Args:
            n: Anything.
        """
        return "quick"

    script = Script([reply.tool_uses([("quick", {"n": 1}), ("hang", {"n": 2})]), reply.text("resumed")])
    conversation = Conversation()
    with LocalServer(policy=script) as server:
        agent = make_agent(server, tools=[quick, hang])
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await agent.run("go", history=conversation)

            group.start_soon(run)
            await entered.wait()
            await anyio.sleep(0.05)
            group.cancel_scope.cancel()
        messages = conversation.messages
        assert_valid(messages)
        results = {b.tool_use_id: b for b in messages[-1].content if isinstance(b, ToolResultBlock)}
        assert len(results) == 2
        answers = sorted((r.is_error or False, r.content) for r in results.values())
        assert answers[0] == (False, "quick")
        assert answers[1][0] is True
        assert "cancelled" in str(answers[1][1])
        # the conversation continues where it stopped
        hang_free = make_agent(server, tools=[quick, hang])
        result = await hang_free.run("continue", history=conversation)
    assert result.text == "resumed"


async def test_max_turns_raises_with_the_history_when_asked() -> None:
    with LocalServer(policy=WeatherWorkload(tool_turns=10, parallel=1)) as server:
        with pytest.raises(MaxTurnsExceeded) as info:
            await make_agent(server, max_turns=2, on_limit="raise").run("loop")
    assert_valid(info.value.messages)
    assert info.value.usage is not None
    assert info.value.usage.output_tokens > 0
    assert len(server.requests) == 2


async def test_max_turns_wraps_up_with_a_last_toolless_request_by_default() -> None:
    def policy(request: Any) -> Any:
        if request.json.get("tool_choice", {}).get("type") == "none":
            return reply.text("Best so far: mild.")
        return reply.tool_use("get_weather", {"city": f"city{request.assistant_turns}"})

    with LocalServer(policy=policy) as server:
        result = await make_agent(server, max_turns=2).run("loop")
    assert result.stopped_by_limit == "max_turns"
    assert result.text == "Best so far: mild."
    last = bodies(server)[-1]
    assert last["tool_choice"] == {"type": "none"}
    assert "limit" in last["messages"][-1]["content"][-1]["text"]
    assert len(server.requests) == 3
    assert_valid(result.messages)


async def test_token_budget() -> None:
    with LocalServer(policy=WeatherWorkload(tool_turns=10, parallel=1)) as server:
        with pytest.raises(TokenBudgetExceeded):
            await make_agent(server, token_budget=1, on_limit="raise").run("loop")


async def test_same_call_repeated_is_refused_then_stopped() -> None:
    same = [reply.tool_use("get_weather", {"city": "Rome"}) for _ in range(6)]
    with LocalServer(policy=Script(same)) as server, pytest.raises(ToolLoopError) as info:
        await make_agent(server, loop_limit=2).run("Rome?")
    assert_valid(info.value.messages)
    refusals = [
        b
        for m in info.value.messages
        if m.role == "user" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolResultBlock) and b.is_error
    ]
    assert len(refusals) == 2
    assert "same input" in str(refusals[0].content)
    assert calls == ["Rome", "Rome"]


async def test_hooks_can_deny_and_modify_calls() -> None:
    seen: list[str] = []

    def before_tool_call(ctx: RunContext[Any], tool_use: ToolUseBlock) -> Any:
        if tool_use.input.get("city") == "Atlantis":
            return Deny("no such place")
        return tool_use.model_copy(update={"input": {"city": tool_use.input["city"].upper()}})

    async def before_request(ctx: RunContext[Any], body: dict[str, Any]) -> None:
        seen.append(f"request {ctx.turn}")

    script = Script(
        [
            reply.tool_uses([("get_weather", {"city": "Atlantis"}), ("get_weather", {"city": "Oslo"})]),
            reply.text("k"),
        ]
    )
    with LocalServer(policy=script) as server:
        hooks = Hooks(before_tool_call=before_tool_call, before_request=before_request)
        result = await make_agent(server, hooks=hooks).run("go")
    results = [b for b in result.messages[2].content if isinstance(b, ToolResultBlock)]
    assert results[0].is_error
    assert "no such place" in str(results[0].content)
    assert calls == ["OSLO"]
    assert seen == ["request 1", "request 2"]


async def test_conversation_carries_history_across_runs_and_json() -> None:
    script = Script(
        [reply.tool_use("get_weather", {"city": "Oslo"}), reply.text("Cold."), reply.text("Bring a coat.")]
    )
    with LocalServer(policy=script) as server:
        agent = make_agent(server)
        conversation = Conversation()
        await agent.run("Weather in Oslo?", history=conversation)
        restored = Conversation.from_json(conversation.to_json())
        result = await agent.run("What should I wear?", history=restored)
    assert result.text == "Bring a coat."
    assert len(restored) == 6
    assert restored.usage.output_tokens > 0
    last_request = bodies(server)[-1]["messages"]
    assert last_request[-1] == {"role": "user", "content": [{"type": "text", "text": "What should I wear?"}]}


async def test_broken_history_is_refused_before_any_request() -> None:
    broken = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": "and?"},
    ]
    with LocalServer(policy=Script([reply.text("never")])) as server:
        with pytest.raises(HistoryError) as info:
            await make_agent(server).run(history=broken)
        assert server.requests == []
        assert info.value.index == 1  # the assistant turn whose tool_use is unanswered, as the API reports it
        conversation = Conversation(broken)
        assert conversation.repair() == 1
        result = await make_agent(server).run(history=conversation)
    assert result.text == "never"


async def test_stream_yields_text_tool_and_turn_events() -> None:
    script = Script(
        [
            reply.tool_use("get_weather", {"city": "Tokyo"}, text="Let me check."),
            reply.text("Sunny in Tokyo."),
        ]
    )
    with LocalServer(policy=script) as server:
        events = []
        async with make_agent(server).stream("Tokyo?") as stream:
            async for event in stream:
                events.append(event)
    kinds = [e.kind for e in events]
    assert kinds[0] == "text_delta"
    assert "tool_use_started" in kinds
    assert "tool_input_delta" in kinds
    assert kinds.index("tool_call_started") < kinds.index("tool_call_finished")
    assert kinds[-1] == "run_finished"
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Let me check.Sunny in Tokyo."
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    assert finished.duration >= 0
    assert not finished.is_error
    assert isinstance(events[-1], RunFinished)
    assert stream.result is not None
    assert stream.result.text == "Sunny in Tokyo."
    assert all(json.dumps(e.to_dict()) for e in events)
    assert sum(isinstance(e, TurnFinished) for e in events) == 2
    assert sum(isinstance(e, ToolCallStarted) for e in events) == 1


async def test_prompt_caching_breakpoints() -> None:
    script = Script([reply.tool_use("get_weather", {"city": "Oslo"}), reply.text("k")])
    with LocalServer(policy=script) as server:
        result = await make_agent(server, cache=True, system="You are terse.").run("Oslo?")
    for body in bodies(server):
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert body["system"] == [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ]
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
        markers = json.dumps(body).count('"cache_control"')
        assert markers == 3  # at most 4 allowed; older turns carry none
    # the stored history carries no breakpoints
    assert "cache_control" not in json.dumps([to_wire(m) for m in result.messages])


async def test_trace_can_be_rebuilt_from_captured_events() -> None:
    with LocalServer(policy=WeatherWorkload(tool_turns=2, parallel=2)) as server, capture_logs() as logs:
        result = await make_agent(server).run("weather")
    steps = [
        (e["event"], e.get("turn"), e.get("tool_use_id"))
        for e in logs
        if e["event"].startswith(("agent.", "model.", "tool."))
    ]
    names = [s[0] for s in steps]
    assert names[0] == "agent.run.start"
    assert names[-1] == "agent.run.end"
    # rebuild: request -> response -> tool calls, turn by turn
    rebuilt: list[Any] = []
    for event in logs:
        if event["event"] == "model.response":
            rebuilt.append(("turn", event["turn"], event["stop_reason"]))
        elif event["event"] == "tool.call.end":
            rebuilt.append(("tool", event["turn"], event["tool"], event["tool_use_id"], event["is_error"]))
    expected: list[Any] = []
    turn = 0
    for message in result.messages:
        if message.role == "assistant":
            turn += 1
            expected.append(("turn", turn, "tool_use" if turn <= 2 else "end_turn"))
            uses = [b for b in message.content if isinstance(b, ToolUseBlock)]
            expected.extend(sorted((("tool", turn, u.name, u.id, False) for u in uses), key=str))
    assert _sorted_within_turns(rebuilt) == _sorted_within_turns(expected)
    assert all(e["request_id"].startswith("req_") for e in logs if e["event"] == "model.response")
    run_ids = {e["run_id"] for e in logs if "run_id" in e}
    assert run_ids == {result.run_id}


def _sorted_within_turns(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda i: (i[1], i[0] != "turn", str(i)))


async def test_tool_errors_go_to_the_model_not_up_the_stack() -> None:
    @tool
    def explode(x: int) -> int:
        """Always fails.

        Args:
            x: Anything.
        """
        raise RuntimeError("kaboom")

    script = Script(
        [
            reply.tool_uses([("explode", {"x": 1}), ("explode", {"x": "nope"}), ("missing", {})]),
            reply.text("sorry"),
        ]
    )
    with LocalServer(policy=script) as server:
        result = await make_agent(server, tools=[explode]).run("go")
    results = [b for b in result.messages[2].content if isinstance(b, ToolResultBlock)]
    assert all(r.is_error for r in results)
    assert "kaboom" in str(results[0].content)
    assert "x" in str(results[1].content)
    assert "Unknown tool" in str(results[2].content)
    assert result.text == "sorry"


def test_run_sync() -> None:
    with LocalServer(policy=Script([reply.text("hello")])) as server:
        result = make_agent(server).run_sync("hi")
    assert result.text == "hello"


async def test_per_tool_retry_budget_disables_a_tool_after_repeated_invalid_input() -> None:
    bad = [reply.tool_use("get_weather", {"town": f"x{i}"}) for i in range(4)]
    with LocalServer(policy=Script([*bad, reply.text("gave up")])) as server:
        result = await make_agent(server, tool_retries=2).run("weather?")
    results = [
        b
        for m in result.messages
        if m.role == "user" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    ]
    texts = [str(r.content) for r in results]
    assert all(r.is_error for r in results)
    assert "city" in texts[0]
    assert "last attempt" not in texts[0]  # a retryable failure...
    assert "last attempt allowed" in texts[1]  # ...is distinguishable from the final one
    assert texts[2].startswith("refused: get_weather is disabled")
    assert calls == []
    assert result.text == "gave up"
