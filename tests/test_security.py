"""The security summary, through public interfaces: secrets never leak; tools cannot be turned on the host.

- The API key appears in no log line (debug level, JSON), repr, exception or output of a full run with
  a tool loop, a retried 529, an auth failure and a failing tool.
- ``redact_secrets`` scrubs auth fields and bearer tokens inside strings.
- ``tools.calculator`` evaluates nothing and stays fast on hostile input; ``tools.http`` refuses a
  public-looking name that resolves to loopback; ``tools.files`` refuses escapes. (Detailed tests live
  in test_tools_*.py; here only the angle an attacker steering the model would try.)
- Tool results are capped: 10 MB of text comes back truncated with a marker.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

import agentkit
import agentkit._client
from agentkit import Agent, AuthenticationError, Client, Conversation, OverloadedError
from agentkit._logging import redact_secrets
from agentkit._tool import DEFAULT_MAX_RESULT_CHARS, tool
from agentkit.testing import FunctionPolicy, LocalServer, Request, reply
from agentkit.tools.calculator import calculate
from agentkit.tools.files import FileTools
from agentkit.tools.http import HttpFetcher

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
SECRET = "sk-ant-api03-SECRETSECRET-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0-LlMmNnOoPp-AA"
WRONG = "sk-ant-api03-WRONGWRONG-Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9Pp0-ZzXxCcVvBb-BB"
# the distinctive middle parts: a partial leak (a prefix, a header dump) is still a leak
NEEDLES = (SECRET, WRONG, "SECRETSECRET", "WRONGWRONG", "Zx9Qw8Er7Ty6", "Qq1Ww2Ee3Rr4")


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``configure_logging(debug, json)`` into a buffer; structlog defaults restored afterwards."""
    monkeypatch.setattr(agentkit._client, "_INITIAL_BACKOFF", 0.001)
    buffer = io.StringIO()
    agentkit.configure_logging(level="debug", format="json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


@tool
def failing_lookup(city: str) -> str:
    """A weather lookup whose backend is down.

    Args:
        city: City name.
    """
    raise ConnectionError(f"weather backend refused the connection for {city}")


@tool
def echo_lookup(city: str) -> str:
    """A weather lookup that works.

    Args:
        city: City name.
    """
    return f"{city}: 21C"


class Scenario:
    """Turn 1: two tool calls (one fails); turn 2: a 529 once, then the final answer."""

    def __init__(self) -> None:
        self.overloaded = False

    def __call__(self, request: Request) -> Any:
        if request.assistant_turns == 0:
            return reply.tool_uses([("failing_lookup", {"city": "Paris"}), ("echo_lookup", {"city": "Oslo"})])
        if not self.overloaded:
            self.overloaded = True
            return reply.error(529)
        return reply.text("Oslo is 21C; Paris is unknown.")


async def test_api_key_never_leaks_into_logs_reprs_exceptions_or_output(
    json_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    artefacts: list[str] = []
    with LocalServer(api_key=SECRET) as server:
        client = Client(api_key=SECRET, base_url=server.base_url, max_retries=2)
        agent = Agent(client, model=MODEL, tools=[failing_lookup, echo_lookup])
        for stream in (False, True):
            server.clear_requests()
            server.policy = Scenario()
            agent.stream_requests = stream
            conversation = Conversation()
            result = await agent.run("Weather in Paris and Oslo?", history=conversation)
            assert result.text == "Oslo is 21C; Paris is unknown."
            assert [r.status for r in server.requests] == [200, 529, 200]  # the 529 was retried
            artefacts += [repr(result), str(result), conversation.to_json(), repr(conversation)]
            artefacts += [json.dumps(m.model_dump(mode="json")) for m in result.messages]

        # an auth failure, with another client holding a wrong key
        bad = Client(api_key=WRONG, base_url=server.base_url, max_retries=2)
        errors: list[BaseException] = []
        with pytest.raises(AuthenticationError) as info:
            await Agent(bad, model=MODEL).run("hi")
        errors.append(info.value)
        with pytest.raises(AuthenticationError) as info:
            async with bad.stream(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}]
            ) as s:
                await s.final_message()
        errors.append(info.value)
        # an error that exhausted its retries, with a cause chain
        server.policy = FunctionPolicy(lambda r: reply.error(529))
        with pytest.raises(OverloadedError) as info:
            await client.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
        errors.append(info.value)
        for client_ in (client, bad):
            artefacts += [repr(client_), str(client_), repr(vars(client_).get("_api_key"))]
            await client_.aclose()
        artefacts += [repr(agent), str(agent), repr(agent.toolset)]

    for exc in errors:
        chain: BaseException | None = exc
        while chain is not None:
            artefacts += [repr(chain), str(chain), repr(getattr(chain, "body", None)), repr(chain.args)]
            chain = chain.__cause__ or chain.__context__
    logs = json_logs.getvalue()
    captured = capsys.readouterr()
    artefacts += [logs, captured.out, captured.err]

    # the run really was logged at debug level: retries, tool errors, auth failure
    events = [json.loads(line)["event"] for line in logs.splitlines()]
    assert {"model.request", "model.retry", "tool.error", "agent.run.end"} <= set(events)
    text = "\n".join(artefacts)
    for needle in NEEDLES:
        assert needle not in text, f"secret fragment {needle!r} leaked"
    # the server did get the keys: the test is not vacuous
    assert any(r.headers.get("x-api-key") == WRONG for r in server.requests)


def test_logged_secrets_are_scrubbed_even_in_free_text_and_tracebacks(json_logs: io.StringIO) -> None:
    Client(api_key=SECRET, base_url="http://127.0.0.1:9")  # registers the key
    log = structlog.get_logger("app")
    log.info("calling", url="http://x", note=f"key is {SECRET} ok", headers={"X-Api-Key": SECRET})
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.exception("boom")
    log.warning("bearer", line=f"Authorization: Bearer {WRONG}")
    logs = json_logs.getvalue()
    for needle in NEEDLES:
        assert needle not in logs
    assert logs.count("[redacted]") >= 4


def test_redact_secrets_redacts_auth_fields_and_bearer_tokens() -> None:
    event = {
        "event": "request",
        "authorization": "Bearer abc",
        "x-api-key": "anything-at-all",
        "Authorization": "Bearer xyz",
        "headers": {"X-API-Key": "k", "authorization": "Bearer q", "accept": "application/json"},
        "message": "sent Authorization: Bearer tok_0123456789abcdef to the proxy",
        "raw": "key sk-ant-api03-unregistered-0123456789 in text",
        "items": ["Bearer tok_ABCDEFGHIJKLMNOP", 3],
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["authorization"] == out["x-api-key"] == out["Authorization"] == "[redacted]"
    assert out["headers"]["X-API-Key"] == out["headers"]["authorization"] == "[redacted]"
    assert out["headers"]["accept"] == "application/json"
    assert "tok_0123456789abcdef" not in out["message"] and "[redacted]" in out["message"]
    assert "sk-ant-api03-unregistered" not in out["raw"]
    assert "tok_ABCDEFGHIJKLMNOP" not in out["items"][0] and out["items"][1] == 3
    assert out["event"] == "request"


def test_configure_logging_can_be_called_again(monkeypatch: pytest.MonkeyPatch) -> None:
    log = structlog.get_logger("agentkit.client")  # stands in for agentkit._client._log
    first, second = io.StringIO(), io.StringIO()
    try:
        agentkit.configure_logging(level="info", format="json", stream=first)
        log.info("one")
        agentkit.configure_logging(level="info", format="json", stream=second)
        log.info("two")
    finally:
        structlog.reset_defaults()
    assert "two" in second.getvalue() and "two" not in first.getvalue()


# --- tools an attacker steering the model would try ----------------------------------------------


def call(name: str, **input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_sec", "name": name, "input": input}


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo pwned')",
        "().__class__.__base__.__subclasses__()",
        "(lambda: 1)()",
        "open('/etc/passwd').read()",
        "9**9**9**9",
        "factorial(10**6)",
        "2**(2**64)",
        "(" * 400 + "1" + ")" * 400,
        "1+" * 300 + "1",
    ],
)
async def test_calculator_cannot_eval_or_run_long(expression: str) -> None:
    started = time.monotonic()
    result = await calculate.run(call("calculate", expression=expression))
    assert time.monotonic() - started < 5.0  # refused, not evaluated (that would take minutes or forever)
    assert result.is_error, result.content
    assert "pwned" not in str(result.content) and "root:" not in str(result.content)


@pytest.mark.parametrize(
    "answer",
    [
        "127.0.0.1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "64:ff9b::7f00:1",  # NAT64
        "2002:7f00:1::1",  # 6to4
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo (client 127.0.0.1, XOR-ed)
        "2606:4700::5efe:7f00:1",  # ISATAP interface id
    ],
)
async def test_http_tool_refuses_a_public_name_resolving_to_loopback(answer: str) -> None:
    with LocalServer(api_key=None) as internal:  # a real service listening on 127.0.0.1

        async def resolver(host: str, port: int) -> list[str]:
            return [answer] if host == "status.example.com" else ["93.184.215.14"]

        fetcher = HttpFetcher(resolver=resolver, timeout=2.0)
        url = f"http://status.example.com:{internal.port}/v1/models"
        result = await fetcher.fetch.run(call("fetch_url", url=url))
        literal = await fetcher.fetch.run(call("fetch_url", url=f"http://127.0.0.1:{internal.port}/"))
    assert result.is_error and "internal address" in str(result.content)
    assert literal.is_error
    assert internal.requests == [], "the tool reached the internal service"


@pytest.mark.parametrize("path", ["../secret/passwd.txt", "/etc/passwd", "~/.ssh/id_rsa", "src/../../secret"])
async def test_file_tools_refuse_escapes(tmp_path: Path, path: str) -> None:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "passwd.txt").write_text("root:x:0:0\n")
    files = FileTools(root)
    for name, tool_ in (("read_file", files.read_file), ("list_files", files.list_files)):
        result = await tool_.run(call(name, path=path))
        assert result.is_error, (name, result.content)
        assert "root:x" not in str(result.content)


async def test_tool_result_size_is_capped() -> None:
    @tool
    def dump() -> str:
        """Return a huge text."""
        return "x" * 10_000_000

    result = await dump.run(call("dump"))
    assert not result.is_error
    assert isinstance(result.content, str)
    assert len(result.content) < DEFAULT_MAX_RESULT_CHARS + 200
    assert result.content.startswith("x" * 1000)
    assert f"truncated: {10_000_000 - DEFAULT_MAX_RESULT_CHARS} more characters" in result.content
