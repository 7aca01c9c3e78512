"""The offline demo model and call-every-tool, through a real agent run over the local server."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from agentkit import Agent, Client, tool
from agentkit.testing import CallEveryTool, LocalServer, OfflineModel, example_input
from agentkit.types import ToolUseBlock

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str, units: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: City name.
        units: Temperature units.
    """
    return {
        "city": city,
        "temperature": 21 if units == "celsius" else 70,
        "units": units,
        "condition": "light rain",
    }


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: The expression, e.g. "2 + 2".
    """
    return {"17 * 23": "391"}.get(expression, "?")


@tool
def current_time(timezone: str = "UTC") -> str:
    """Current time in a time zone.

    Args:
        timezone: IANA zone name.
    """
    return f"12:00 in {timezone}"


TOOLS = [get_weather, calculate, current_time]


def calls_of(result: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (b.name, b.input)
        for m in result.messages
        if m.role == "assistant" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolUseBlock)
    ]


def agent_for(server: LocalServer, **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url)
    return Agent(client, model="claude-sonnet-4-6", tools=TOOLS, **kwargs)


@pytest.mark.parametrize("stream", [False, True])
async def test_weather_demo_calls_the_tool_for_the_city_in_the_prompt(stream: bool) -> None:
    with LocalServer(policy=OfflineModel()) as server:
        agent = agent_for(server, stream=stream)
        result = await agent.run("Check the weather in Tokyo and provide a one-sentence travel suggestion")
    assert calls_of(result) == [("get_weather", {"city": "Tokyo"})]
    assert "Tokyo" in result.text
    assert "21°C" in result.text
    assert "umbrella" in result.text  # the suggestion uses the result (light rain)
    assert result.stop_reason == "end_turn"


async def test_several_places_become_parallel_calls_and_enums_are_read() -> None:
    with LocalServer(policy=OfflineModel()) as server:
        result = await agent_for(server).run("Weather in Paris and New York in fahrenheit?")
    assert calls_of(result) == [
        ("get_weather", {"units": "fahrenheit", "city": "Paris"}),
        ("get_weather", {"units": "fahrenheit", "city": "New York"}),
    ]
    assert result.turns == 2
    assert "70°F" in result.text


async def test_expressions_and_time_zones_pick_their_tools() -> None:
    with LocalServer(policy=OfflineModel()) as server:
        math = await agent_for(server).run("What is 17 * 23?")
        clock = await agent_for(server).run("What time is it in Tokyo?")
    assert calls_of(math) == [("calculate", {"expression": "17 * 23"})]
    assert "391" in math.text
    assert calls_of(clock) == [("current_time", {"timezone": "Asia/Tokyo"})]


async def test_no_fitting_tool_gives_an_honest_text_answer() -> None:
    with LocalServer(policy=OfflineModel()) as server:
        result = await agent_for(server).run("Tell me a joke")
    assert calls_of(result) == []
    assert "offline demo model" in result.text


class Advice(BaseModel):
    city: str
    temperature: float
    suggestion: str


async def test_structured_output_is_filled_from_tool_results() -> None:
    with LocalServer(policy=OfflineModel()) as server:
        result = await agent_for(server, output_type=Advice).run("Weather in Oslo, and what should I pack?")
    assert isinstance(result.output, Advice)
    assert result.output.city == "Oslo"
    assert result.output.temperature == 21
    assert result.output.suggestion


async def test_forced_tool_choice_is_honoured() -> None:
    with LocalServer(policy=OfflineModel()) as server:
        agent = agent_for(server, tool_choice={"type": "tool", "name": "current_time"})
        result = await agent.run("Hello there")
    assert calls_of(result)[0][0] == "current_time"


async def test_call_every_tool_smoke_tests_a_toolset() -> None:
    with LocalServer(policy=CallEveryTool()) as server:
        result = await agent_for(server).run("go")
    assert sorted(name for name, _ in calls_of(result)) == ["calculate", "current_time", "get_weather"]
    assert "Called every tool" in result.text
    assert [r.status for r in server.requests] == [200, 200]


def test_example_input_satisfies_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for t in TOOLS:
        value = example_input(t.input_schema)
        jsonschema.validate(value, t.input_schema)
    assert json.dumps(example_input(get_weather.input_schema, "weather in Lima")) == '{"city": "Lima"}'
