"""Bad arguments are refused where they are given, with a typed error that names the argument, what was
given and what is accepted; and a keyless Client aimed at Anthropic's API fails before any request."""

from __future__ import annotations

import dataclasses
import http.server
import io
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import structlog
from pydantic import BaseModel

from agentkit import (
    Agent,
    AgentKitError,
    Client,
    ConfigurationError,
    Conversation,
    Hooks,
    ToolDefinitionError,
    configure_logging,
    tool,
)
from agentkit.testing import demo_client

from .conftest import load_json, own

KEY = "sk-ant-api03-secretsecretsecret-0123456789"


@tool
def get_weather(city: str, days: int = 1) -> str:
    """Weather for a city.

    Args:
        city: City name.
        days: Days to forecast.
    """
    return f"{city}: sunny for {days} days"


def _client() -> Client:
    return Client(api_key="sk-test", base_url="http://127.0.0.1:9")


def _agent(**kwargs: Any) -> Agent[Any, Any]:
    return Agent(_client(), model="claude-sonnet-4-6", **kwargs)


def _weather_class() -> None:
    class Weather:
        def __init__(self, city: str) -> None:
            self.city = city

    tool(Weather)


def _fn(x: int) -> int:
    """Echo.

    Args:
        x: A number.
    """
    return x


# id -> (call, fragments its message must contain: the argument's name, the value given, what is
# accepted). Every call raises ConfigurationError, except the "tool-" rows: @tool raises
# ToolDefinitionError, like every other decoration error.
CASES: dict[str, tuple[Callable[[], object], list[str]]] = {
    # Agent(...)
    "agent-key-as-client": (
        lambda: Agent(KEY, model="m"),
        ["client=", "a str (not shown)", "Client(api_key="],
    ),
    "agent-client-int": (lambda: Agent(3, model="m"), ["client=", "3", "a Client"]),  # type: ignore[arg-type]
    "agent-model-int": (lambda: Agent(_client(), model=4), ["model=", "4", "model id"]),  # type: ignore[arg-type]
    "agent-on-limit": (lambda: _agent(on_limit="stop"), ["on_limit=", "'stop'", "'wrap_up' or 'raise'"]),
    "agent-on-truncated": (
        lambda: _agent(on_truncated_tool_use="retry"),
        ["on_truncated_tool_use=", "'retry'", "'raise' or 'continue'"],
    ),
    "agent-single-tool": (lambda: _agent(tools=get_weather), ["tools=", "get_weather", "tools=[my_tool]"]),
    "agent-single-function": (lambda: _agent(tools=_fn), ["tools=", "_fn", "a list of tools"]),
    "agent-tools-dict": (lambda: _agent(tools={"w": get_weather}), ["tools=", "dict", "values()"]),
    "agent-tools-str": (lambda: _agent(tools="get_weather"), ["tools=", "'get_weather'", "a list of tools"]),
    "agent-tools-item": (
        lambda: _agent(tools=[get_weather, 5]),
        ["tools=", "5", "a function, a Tool or a server tool definition"],
    ),
    "agent-hooks-dict": (
        lambda: _agent(hooks={"before_request": print}),
        ["hooks=", "dict", "a Hooks object", "Hooks(before_request="],
    ),
    "agent-hook-not-callable": (
        lambda: _agent(hooks=Hooks(before_request="log")),  # type: ignore[arg-type]
        ["hooks.before_request=", "'log'", "a function"],
    ),
    "agent-system-int": (lambda: _agent(system=123), ["system=", "123", "a str, a list of text blocks"]),
    "agent-system-list-of-int": (lambda: _agent(system=[1]), ["system=", "[1]", "text blocks"]),
    "agent-output-type-str": (
        lambda: _agent(output_type="Weather"),
        ["output_type=", "'Weather'", "a type", "output_type=Weather"],
    ),
    "agent-output-type-object": (lambda: _agent(output_type=object), ["output_type=", "object", "structure"]),
    "agent-output-type-instance": (
        lambda: _agent(output_type=get_weather),
        ["output_type=", "get_weather", "not an instance"],
    ),
    "agent-output-type-unschemable": (
        lambda: _agent(output_type=Callable[[int], int]),
        ["output_type=", "pydantic can validate"],
    ),
    "agent-max-tokens": (lambda: _agent(max_tokens=0), ["max_tokens=", "0", "an int >= 1"]),
    "agent-max-tokens-str": (lambda: _agent(max_tokens="4096"), ["max_tokens=", "'4096'", "an int >= 1"]),
    "agent-max-turns": (lambda: _agent(max_turns=0), ["max_turns=", "0", "an int >= 1"]),
    "agent-token-budget": (lambda: _agent(token_budget=-5), ["token_budget=", "-5", "an int >= 1 or None"]),
    "agent-output-retries": (lambda: _agent(output_retries=-1), ["output_retries=", "-1", "an int >= 0"]),
    "agent-tool-timeout": (lambda: _agent(tool_timeout=0), ["tool_timeout=", "0", "a positive number"]),
    "agent-tool-timeout-str": (
        lambda: _agent(tool_timeout="5"),
        ["tool_timeout=", "'5'", "a positive number"],
    ),
    "agent-loop-limit": (lambda: _agent(loop_limit=1), ["loop_limit=", "1", "an int >= 2 or None"]),
    "agent-tool-retries": (lambda: _agent(tool_retries=0), ["tool_retries=", "0", "an int >= 1 or None"]),
    "agent-temperature": (lambda: _agent(temperature=1.5), ["temperature=", "1.5", "from 0 to 1"]),
    "agent-top-p": (lambda: _agent(top_p=-0.1), ["top_p=", "-0.1", "from 0 to 1"]),
    "agent-top-k": (lambda: _agent(top_k=0), ["top_k=", "0", "an int >= 1"]),
    "agent-stop-sequences-str": (
        lambda: _agent(stop_sequences="END"),
        ["stop_sequences=", "'END'", "a list of strings", "stop_sequences=[...]"],
    ),
    "agent-metadata": (lambda: _agent(metadata="user-1"), ["metadata=", "'user-1'", "a dict"]),
    "agent-tool-choice-str": (
        lambda: _agent(tools=[get_weather], tool_choice="auto"),
        ["tool_choice=", "'auto'", "{'type': 'auto'}"],
    ),
    "agent-tool-choice-type": (
        lambda: _agent(tools=[get_weather], tool_choice={"type": "sometimes"}),
        ["tool_choice=", "sometimes", "'auto' or 'any' or 'tool' or 'none'"],
    ),
    "agent-thinking-int": (lambda: _agent(thinking=2048), ["thinking=", "2048", "budget_tokens"]),
    "agent-parallel-str": (
        lambda: _agent(parallel_tool_calls="no"),
        ["parallel_tool_calls=", "'no'", "True or False"],
    ),
    "agent-cache-str": (lambda: _agent(cache="yes"), ["cache=", "'yes'", "True or False"]),
    "agent-stream-int": (lambda: _agent(stream=1), ["stream=", "1", "True or False"]),
    "agent-keep-tool-choice": (
        lambda: _agent(keep_tool_choice=None),
        ["keep_tool_choice=", "None", "True or False"],
    ),
    "agent-deps-type-str": (lambda: _agent(deps_type="MyDeps"), ["deps_type=", "'MyDeps'", "a type"]),
    "agent-name-int": (lambda: _agent(name=1), ["name=", "1", "a str"]),
    # Client(...)
    "client-api-key-int": (
        lambda: Client(api_key=123, base_url="http://127.0.0.1:9"),
        ["api_key=", "an int (not shown)"],
    ),
    "client-base-url-int": (lambda: Client(api_key="k", base_url=123), ["base_url=", "123", "a URL string"]),
    "client-base-url-port": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:99999"),
        ["base_url", "99999", "1-65535"],
    ),
    "client-max-retries-str": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", max_retries="3"),
        ["max_retries=", "'3'", "an int >= 0"],
    ),
    "client-max-retries-negative": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", max_retries=-1),
        ["max_retries=", "-1", "an int >= 0"],
    ),
    "client-default-headers-list": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", default_headers=["a"]),
        ["default_headers=", "['a']", "a dict of header names"],
    ),
    "client-default-headers-int-value": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", default_headers={"x-n": 1}),
        ["default_headers=", "a dict (not shown)", "string values"],
    ),
    "client-timeout-negative": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", timeout=-1),
        ["timeout=", "-1", "a positive number"],
    ),
    "client-timeout-str": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", timeout="30"),
        ["timeout=", "'30'", "a positive number"],
    ),
    "client-http-client-str": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", http_client="x"),
        ["http_client=", "'x'", "httpx2.AsyncClient"],
    ),
    "client-transport-str": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", transport="x"),
        ["transport=", "'x'", "httpx2.AsyncBaseTransport"],
    ),
    "client-provider": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", provider="openai"),
        ["provider=", "'openai'", "'anthropic' or 'poyo' or 'toapis'"],
    ),
    "client-provider-unhashable": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", provider=["poyo"]),
        ["provider=", "['poyo']", "'anthropic'"],
    ),
    "client-auth": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", auth="basic"),
        ["auth=", "'basic'", "'x-api-key' or 'bearer'"],
    ),
    "client-version-int": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", anthropic_version=2023),
        ["anthropic_version=", "2023", "'2023-06-01'"],
    ),
    "client-max-connections": (
        lambda: Client(api_key="k", base_url="http://127.0.0.1:9", max_connections=0),
        ["max_connections=", "0", "an int >= 1"],
    ),
    # runs
    "run-sync-prompt-int": (lambda: _agent().run_sync(123), ["prompt=", "123", "a str, a list of messages"]),
    "run-sync-prompt-dict": (
        lambda: _agent().run_sync({"role": "user", "content": "hi"}),
        ["prompt=", "'role'", "a list of messages", "Wrap a single message in a list"],
    ),
    "run-sync-history-str": (
        lambda: _agent().run_sync("hi", history="x"),
        ["history=", "'x'", "a Conversation", "Conversation.from_json"],
    ),
    "run-sync-history-dict": (
        lambda: _agent().run_sync("hi", history={"role": "user", "content": "hi"}),
        ["history=", "'role'", "a Conversation", "history=[message]"],
    ),
    "run-sync-history-bad-message": (
        lambda: _agent().run_sync("hi", history=[{"role": "robot", "content": "hi"}]),
        ["history", "[0]", "role", "'user' | 'assistant'"],
    ),
    "run-sync-prompt-bad-message": (
        lambda: _agent().run_sync([{"role": "user"}]),
        ["prompt", "[0]", "content", "Field required"],
    ),
    "stream-prompt-int": (lambda: _agent().stream(123), ["Agent.stream(prompt=", "123"]),
    "conversation-dict": (
        lambda: Conversation({"role": "user", "content": "hi"}),
        ["messages=", "[message]"],
    ),
    "conversation-items-str": (lambda: Conversation(["hello"]), ["messages", "[0]", "'role': 'user'"]),
    # saved conversations
    "from-json-invalid": (lambda: Conversation.from_json("{not json"), ["from_json(data=", "not valid JSON"]),
    "from-json-shape": (
        lambda: Conversation.from_json('{"turns": []}'),
        ["from_json(data=", "keys ['turns']", "{'messages': [...]"],
    ),
    "from-json-scalar": (lambda: Conversation.from_json("42"), ["from_json(data=", "JSON int", "'messages'"]),
    "from-json-bad-usage": (
        lambda: Conversation.from_json('{"messages": [], "usage": {"input_tokens": "many"}}'),
        ["from_json(data=", "'usage' is not valid"],
    ),
    "from-json-bad-message": (
        lambda: Conversation.from_json('[{"role": "user", "content": 5}]'),
        ["messages", "[0].content"],
    ),
    "from-json-not-text": (lambda: Conversation.from_json(None), ["from_json(data=", "None", "JSON string"]),
    # configure_logging(...)
    "logging-level-name": (lambda: configure_logging("verbose"), ["level=", "'verbose'", "'debug', 'info'"]),
    "logging-level-number": (lambda: configure_logging(level=5), ["level=", "5", "logging.DEBUG"]),
    "logging-level-bool": (lambda: configure_logging(level=True), ["level=", "True", "'info'"]),
    "logging-format": (
        lambda: configure_logging(format="xml"),
        ["format=", "'xml'", "'auto' or 'console' or 'json'"],
    ),
    "logging-stream": (lambda: configure_logging(stream="stderr"), ["stream=", "'stderr'", ".write"]),
    # @tool(...)
    "tool-timeout-str": (lambda: tool(timeout="5")(_fn), ["_fn", "timeout=", "'5'", "a positive number"]),
    "tool-timeout-nan": (lambda: tool(timeout=float("nan"))(_fn), ["_fn", "timeout=", "nan"]),
    "tool-max-result-chars": (
        lambda: tool(max_result_chars="1000")(_fn),
        ["_fn", "max_result_chars=", "'1000'", "an int >= 1"],
    ),
    "tool-description-int": (lambda: tool(description=5)(_fn), ["_fn", "description=", "5", "a str"]),
    "tool-cache-control-str": (
        lambda: tool(cache_control="ephemeral")(_fn),
        ["_fn", "cache_control=", "'ephemeral'", "{'type': 'ephemeral'}"],
    ),
    "tool-on-class": (_weather_class, ["Weather", "is a class", "functions and methods"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_argument_is_refused_where_it_is_given(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    call, fragments = CASES[case]
    with pytest.raises(AgentKitError) as info:
        call()
    error = info.value
    expected = ToolDefinitionError if case.startswith("tool-") else ConfigurationError
    assert type(error) is expected, f"{type(error).__name__}: {error}"
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert KEY not in message and "sk-ant" not in message


# --- what must keep working ----------------------------------------------------------------------


@dataclasses.dataclass
class Deps:
    n: int


class Weather(BaseModel):
    city: str


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tools": (get_weather,)},
        {"tools": iter([get_weather])},
        {"tools": [get_weather], "tool_choice": {"type": "tool", "name": "get_weather"}},
        {"system": [{"type": "text", "text": "Be brief."}]},
        {"output_type": Weather, "deps_type": Deps},
        {"output_type": list[Weather]},
        {"output_type": str},
        {"temperature": 0, "top_k": 5, "stop_sequences": ["END"], "metadata": {"user_id": "u1"}},
        {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096},
        {"tool_timeout": 1.5, "token_budget": 1000, "loop_limit": None, "tool_retries": None},
        {"hooks": Hooks(before_request=lambda ctx, body: None)},
    ],
    ids=lambda kwargs: ",".join(kwargs),
)
def test_good_agent_arguments_are_accepted(kwargs: dict[str, Any]) -> None:
    agent = _agent(**kwargs)
    assert agent.model == "claude-sonnet-4-6"


def test_good_logging_levels_are_accepted() -> None:
    try:
        for level in ("debug", "INFO", "Warning", "error", "critical", "notset", logging.INFO, 0):
            configure_logging(level, format="json", stream=io.StringIO())
    finally:
        structlog.reset_defaults()


# --- no key, no surprise -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [None, "https://api.anthropic.com", "https://api.anthropic.com/v1/", "https://eu.api.anthropic.com"],
)
def test_a_keyless_client_for_anthropic_fails_at_construction(
    base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError) as info:
        Client(base_url=base_url)
    message = str(info.value)
    assert "ANTHROPIC_API_KEY" in message
    assert "agentkit.testing.demo_client()" in message


def test_the_environments_anthropic_url_without_a_key_fails_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com/v1")
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        Client()


def test_an_agent_without_client_or_key_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's old snippet: ``Agent(Client(), ...)`` / ``Agent()`` with no key. The error comes
    from building the client, so no request (and no connection attempt) is ever made."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    agent = Agent(model="claude-sonnet-4-6", tools=[get_weather])
    with pytest.raises(ConfigurationError, match="demo_client") as info:
        agent.run_sync("Weather in Tokyo?")
    assert info.value.__context__ is None  # one clear error, not the same one again while cleaning up


class _NoAuthEndpoint(http.server.BaseHTTPRequestHandler):
    """A local Messages endpoint that needs no key: answers every POST with a finished Message."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps(load_json(own("end_turn"))).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.anyio
async def test_a_keyless_client_for_a_local_server_that_needs_no_key_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoAuthEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _NoAuthEndpoint.seen.clear()
    try:
        async with Client(base_url=f"http://127.0.0.1:{server.server_address[1]}") as client:
            result = await Agent(client, model="claude-sonnet-4-6").run("Hello")
    finally:
        server.shutdown()
        server.server_close()
    assert result.text
    assert len(_NoAuthEndpoint.seen) == 1
    assert "x-api-key" not in _NoAuthEndpoint.seen[0] and "authorization" not in _NoAuthEndpoint.seen[0]


def test_demo_client_runs_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with demo_client(notice=None) as env:
        result = Agent(env.client, model="claude-sonnet-4-6", tools=[get_weather]).run_sync(
            "Weather in Oslo?"
        )
    assert env.offline
    assert "Oslo" in result.text


@pytest.mark.anyio
@pytest.mark.parametrize("call", ["run_sync", "resume_sync"])
async def test_a_sync_call_inside_a_running_event_loop_is_refused_with_what_to_use(
    call: str, recwarn: pytest.WarningsRecorder
) -> None:
    # Jupyter and async web handlers run a loop in the thread: a second one cannot start there.
    agent = _agent()
    instead = rf"use `await agent\.{call.removesuffix('_sync')}\(\.\.\.\)`"
    with pytest.raises(ConfigurationError, match=rf"Agent\.{call}\(\) .* {instead}"):
        if call == "run_sync":
            agent.run_sync("hi")
        else:
            agent.resume_sync("{}")
    assert not [w for w in recwarn if "never awaited" in str(w.message)]  # no coroutine was left behind
