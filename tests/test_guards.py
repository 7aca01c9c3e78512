"""The guard rails, each against the local server, and the trace event each one fires."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from agentkit import Agent, Client, Conversation, HistoryError, Toolset, tool
from agentkit.testing import LocalServer, Script, WeatherWorkload, reply
from agentkit.types import ToolResultBlock

from .test_tool_schema import SCHEMA_TABLE

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str) -> str:
    """Weather for a city.

    Args:
        city: City name.
    """
    return f"mild in {city}"


def make_agent(server: LocalServer, **kwargs: Any) -> Agent[Any, Any]:
    kwargs.setdefault("tools", [get_weather])
    return Agent(
        Client(api_key="sk-test", base_url=server.base_url, max_retries=0),
        model="claude-sonnet-4-6",
        **kwargs,
    )


def guard_events(logs: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in logs if e["event"].startswith("guard.")]


async def test_every_schema_in_the_table_is_accepted_by_the_api_validation() -> None:
    # All the table's tools in one request, as the API would receive them: zero 400s.
    tools = Toolset([fn for fn, _ in SCHEMA_TABLE])
    with LocalServer(policy=Script([reply.text("ok")])) as server:
        result = await make_agent(server, tools=tools).run("hi")
    assert result.text == "ok"
    sent = server.requests[0].json["tools"]
    assert len(sent) == len(SCHEMA_TABLE)
    assert server.requests[0].status == 200


async def test_history_guard_fires_before_any_request() -> None:
    broken = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": "well?"},
    ]
    with LocalServer(policy=Script([reply.text("never")])) as server, capture_logs() as logs:
        with pytest.raises(HistoryError, match=r"messages\.1"):
            await make_agent(server).run(history=broken)
    assert server.requests == []
    assert guard_events(logs) == ["guard.history"]
    repaired = Conversation(broken)
    repaired.repair()
    repaired.check()


async def test_loop_guard_events() -> None:
    same = [reply.tool_use("get_weather", {"city": "Rome"}) for _ in range(3)] + [reply.text("done")]
    with LocalServer(policy=Script(same)) as server, capture_logs() as logs:
        result = await make_agent(server, loop_limit=3).run("Rome?")
    assert result.text == "done"
    assert guard_events(logs) == ["guard.tool_loop"]
    refused = [b for b in result.messages[-2].content if isinstance(b, ToolResultBlock)]
    assert refused[0].is_error


async def test_limit_guard_wraps_up_and_is_traced() -> None:
    def policy(request: Any) -> Any:
        if request.json.get("tool_choice", {}).get("type") == "none":
            return reply.text("best so far")
        return reply.tool_use("get_weather", {"city": f"c{request.assistant_turns}"})

    with LocalServer(policy=policy) as server, capture_logs() as logs:
        result = await make_agent(server, max_turns=2).run("go")
    assert result.stopped_by_limit == "max_turns"
    assert "guard.limit" in guard_events(logs)
    end = next(e for e in logs if e["event"] == "agent.run.end")
    assert end["outcome"] == "limit"


async def test_token_budget_wraps_up_too() -> None:
    with LocalServer(policy=WeatherWorkload(tool_turns=5, parallel=1)) as server, capture_logs() as logs:
        result = await make_agent(server, token_budget=1).run("go")
    assert result.stopped_by_limit == "token_budget"
    assert [e["limit"] for e in logs if e["event"] == "guard.limit"] == ["token_budget"]
    assert server.requests[-1].json["tool_choice"] == {"type": "none"}


async def test_retry_budget_and_truncation_guards_are_traced() -> None:
    script = Script(
        [
            reply.tool_use("get_weather", {"town": "x"}),
            reply.max_tokens_cut_tool_use("get_weather"),
            reply.text("ok"),
        ]
    )
    with LocalServer(policy=script) as server, capture_logs() as logs:
        await make_agent(server, tool_retries=1, on_truncated_tool_use="continue").run("go")
    assert guard_events(logs) == ["guard.tool_retries", "guard.truncated_tool_use"]


async def test_call_cap_duplicate_id_and_run_deadline_guards_are_traced() -> None:
    from agentkit import DuplicateToolUseIdError, RunTimeoutError

    many = reply.tool_uses([("get_weather", {"city": f"c{n}"}) for n in range(3)])
    twice = reply.tool_uses(
        [("get_weather", {"city": "a"}, "toolu_x"), ("get_weather", {"city": "b"}, "toolu_x")]
    )
    with LocalServer(policy=Script([many, reply.text("ok")])) as server, capture_logs() as logs:
        await make_agent(server, max_tool_calls_per_turn=2).run("go")
    assert guard_events(logs) == ["guard.tool_calls"]
    with LocalServer(policy=Script([twice])) as server, capture_logs() as logs:
        with pytest.raises(DuplicateToolUseIdError):
            await make_agent(server).run("go")
    assert guard_events(logs) == ["guard.duplicate_tool_use_id"]
    with LocalServer(policy=Script([reply.ping_forever()])) as server, capture_logs() as logs:
        with pytest.raises(RunTimeoutError):
            await make_agent(server, run_timeout=0.3).run("go")
    assert guard_events(logs) == ["guard.run_timeout"]


async def test_cache_breakpoint_guard_is_traced() -> None:
    # wire reference §6: at most 4 breakpoints; cache=True's own 3 plus the caller's 2 make 5.
    marked = [{"type": "text", "text": t, "cache_control": {"type": "ephemeral"}} for t in ("a", "b")]
    with LocalServer(policy=Script([reply.text("ok")])) as server, capture_logs() as logs:
        await make_agent(server, system=marked, cache=True).run([{"role": "user", "content": marked}])
    assert guard_events(logs) == ["guard.cache_breakpoints"]
    assert server.requests[0].status == 200
