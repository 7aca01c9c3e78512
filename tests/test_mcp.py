"""agentkit.mcp.MCPToolset against real MCP servers (the official SDK's MCPServer, in tests/data):
in process, over stdio (a subprocess) and over streamable HTTP (uvicorn on 127.0.0.1), with the faults
a client must survive, and end to end through Agent + LocalServer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as mt
import pytest
import structlog
import uvicorn

from agentkit import Agent, Approve, Client, ConfigurationError, ToolDefinitionError, tool
from agentkit.mcp import MCPConnectionError, MCPToolset
from agentkit.testing import LocalServer, Script, reply
from agentkit.types import DocumentBlock, ImageBlock, TextBlock, ToolResultBlock, ToolUseBlock

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from mcp_demo_server import make_server  # noqa: E402

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
STDIO = [sys.executable, str(DATA / "mcp_demo_server.py")]


def call(name: str, input: dict[str, Any] | None = None, id: str = "toolu_1") -> ToolUseBlock:
    return ToolUseBlock(id=id, name=name, input=input or {})


def results(messages: list[Any]) -> dict[str, ToolResultBlock]:
    return {
        b.tool_use_id: b
        for m in messages
        if m.role == "user" and not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolResultBlock)
    }


def agent_for(server: LocalServer, tools: list[Any], **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    return Agent(client, model=MODEL, tools=tools, **kwargs)


@contextmanager
def serve_http(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free port of 127.0.0.1, in a thread; yields its /mcp URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The demo server over streamable HTTP."""
    with serve_http(make_server("http-demo").streamable_http_app()) as url:
        yield url


TOKEN = "mcp-s3cret-token-7Qx9"


@pytest.fixture(scope="module")
def guarded_url() -> Iterator[str]:
    """The demo server over HTTP behind a bearer token (401 without it)."""
    inner = make_server("guarded").streamable_http_app()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"authorization", f"Bearer {TOKEN}".encode()) not in scope["headers"]:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
            return
        await inner(scope, receive, send)

    with serve_http(app) as url:
        yield url


# --- definitions ---------------------------------------------------------------------------------


async def test_definitions_are_claude_safe_and_listed_once() -> None:
    server = make_server()
    async with MCPToolset(server=server) as mcp:
        defs = {d["name"]: d for d in mcp.definitions()}
        assert {"add", "distance", "weather", "hang", "grow"} <= set(defs)
        assert defs["add"] == {
            "name": "add",
            "description": "Add two numbers.",
            "input_schema": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        }
        point = defs["distance"]["input_schema"]["properties"]["p"]  # the $ref is inlined
        assert point["type"] == "object" and point["properties"]["x"]["description"] == "Across."
        assert "$ref" not in str(defs) and "'title'" not in str(defs) and "$defs" not in str(defs)
        # cached: a tool added on the server without a notification is not seen...
        await mcp.execute(call("grow_quietly"))
        await mcp.refresh()
        assert "shout" not in {d["name"] for d in mcp.definitions()}
        # ...a tools/list_changed notification makes the next refresh list again
        await mcp.execute(call("grow"))
        with anyio.fail_after(10):
            while "echo" not in {d["name"] for d in mcp.definitions()}:
                await mcp.refresh()
                await anyio.sleep(0.01)
        assert {"shout", "echo"} <= {d["name"] for d in mcp.definitions()}


async def test_prefix_and_filter() -> None:
    mcp = MCPToolset(server=make_server(), prefix="srv.", tool_filter=["add", "pid"])
    async with mcp:
        assert [d["name"] for d in mcp.definitions()] == ["srv_add", "srv_pid"]
        outcome = await mcp.execute(call("srv_add", {"a": 2, "b": 3}))
        assert outcome.result.content == "5" and not outcome.result.is_error
        outcome = await mcp.execute(call("hang"))
        assert outcome.result.is_error and outcome.status == "unknown_tool"
    picked = MCPToolset(server=make_server(), tool_filter=lambda name: name.startswith("w"))
    async with picked:
        assert [d["name"] for d in picked.definitions()] == ["weather"]


def test_bad_arguments_are_refused_where_given() -> None:
    with pytest.raises(ConfigurationError, match="exactly one of stdio"):
        MCPToolset()
    with pytest.raises(ConfigurationError, match="exactly one of stdio"):
        MCPToolset(stdio="x", url="http://127.0.0.1:1/mcp")
    with pytest.raises(ConfigurationError, match=r"url=\.\.\.\): got 'ftp://h/x'"):
        MCPToolset(url="ftp://h/x")
    with pytest.raises(ConfigurationError, match=r"stdio=\.\.\.\): got \[\]"):
        MCPToolset(stdio=[])
    with pytest.raises(ConfigurationError, match=r"timeout=\.\.\.\): got -1"):
        MCPToolset(server=make_server(), timeout=-1)
    with pytest.raises(ConfigurationError, match=r"server=\.\.\.\): got int"):
        MCPToolset(server=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="requires_approval='add'"):
        MCPToolset(server=make_server(), requires_approval="add")


async def test_headers_reach_the_server_and_never_the_logs(guarded_url: str) -> None:
    with pytest.raises(MCPConnectionError):
        async with MCPToolset(url=guarded_url, connect_timeout=10):
            pass
    with structlog.testing.capture_logs() as logs:
        mcp = MCPToolset(url=guarded_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=1)
        async with mcp:
            assert (await mcp.execute(call("add", {"a": 1, "b": 1}))).result.content == "2"
            await mcp.execute(call("hang", {}))  # a timeout: logged, with the server's label
    assert any(e["event"] == "mcp.call.error" for e in logs)
    assert TOKEN not in repr(mcp) and TOKEN not in str(logs)
    with pytest.raises(ConfigurationError, match="headers are for url"):
        MCPToolset(stdio=STDIO, headers={"a": "b"})


# --- results -------------------------------------------------------------------------------------


async def test_results_are_mapped_to_blocks() -> None:
    async with MCPToolset(server=make_server()) as mcp:
        picture = (await mcp.execute(call("picture"))).result
        assert isinstance(picture.content, list)
        image, audio, link = picture.content
        assert isinstance(image, ImageBlock) and image.source.media_type == "image/png"  # type: ignore[union-attr]
        assert isinstance(audio, TextBlock) and "audio/wav" in audio.text and "left out" in audio.text
        assert isinstance(link, TextBlock) and "file:///tmp/report.txt" in link.text
        docs = (await mcp.execute(call("documents"))).result
        assert isinstance(docs.content, list)
        pdf, text = docs.content
        assert isinstance(pdf, DocumentBlock) and pdf.source["media_type"] == "application/pdf"
        assert isinstance(text, TextBlock) and text.text.endswith("some notes")
        # structured content: added when the text does not carry it, not repeated when it does
        assert (await mcp.execute(call("measure"))).result.content == 'measured\n{"cm":12}'
        weather = (await mcp.execute(call("weather", {"city": "Oslo"}))).result.content
        assert isinstance(weather, str) and weather.count("Oslo") == 1
        assert (await mcp.execute(call("add", {"a": 1, "b": 2}))).result.content == "3"
        failed = await mcp.execute(call("fail", {"reason": "no"}))
        assert failed.result.is_error and "refused: no" in str(failed.result.content)
        assert failed.status == "error"
        invalid = await mcp.execute(call("add", {"a": "x"}))
        assert invalid.status == "invalid_input" and "b" in str(invalid.result.content)


# --- end to end through the agent ----------------------------------------------------------------


@tool
def local_double(n: int) -> int:
    """Double a number.

    Args:
        n: The number.
    """
    return 2 * n


def two_calls_script() -> Script:
    return Script(
        [
            reply.tool_uses([("add", {"a": 20, "b": 22}, "toolu_a"), ("local_double", {"n": 4}, "toolu_b")]),
            reply.text("42 and 8"),
        ]
    )


async def test_agent_opens_the_server_for_the_run() -> None:
    mcp = MCPToolset(server=make_server())
    with LocalServer(policy=two_calls_script()) as api:
        agent = agent_for(api, [local_double, mcp])
        result = await agent.run("add and double")
        assert not mcp.is_open  # the run opened it and closed it
        got = results(result.messages)
        assert got["toolu_a"].content == "42"
        assert got["toolu_b"].content == "8"
        sent = [d["name"] for d in api.requests[0].json["tools"]]
        assert sent[0] == "local_double" and "add" in sent and "hang" in sent


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_agent_over_a_transport(transport: str, request: pytest.FixtureRequest) -> None:
    mcp = (
        MCPToolset(stdio=STDIO)
        if transport == "stdio"
        else MCPToolset(url=request.getfixturevalue("http_url"))
    )
    with LocalServer(policy=two_calls_script()) as api:
        agent = agent_for(api, [local_double, mcp])
        async with mcp:  # one session for both runs
            for _ in range(2):
                result = await agent.run("add and double")
                assert results(result.messages)["toolu_a"].content == "42"
                api.policy = two_calls_script()
            assert mcp.is_open
        assert not mcp.is_open


async def test_concurrent_runs_share_one_session_opened_by_the_agent() -> None:
    mcp = MCPToolset(stdio=STDIO, timeout=20)  # two sessions would be two processes: they never meet
    meet = {"party": 2}
    script = Script(
        [
            reply.tool_use("rendezvous", meet, "toolu_r1"),
            reply.tool_use("rendezvous", meet, "toolu_r2"),
            reply.text("met"),
            reply.text("met"),
        ]
    )
    got: list[str] = []
    with LocalServer(policy=script) as api:
        agent = agent_for(api, [mcp])

        async def one() -> None:
            result = await agent.run("meet")
            got.extend(str(r.content) for r in results(result.messages).values())

        async with anyio.create_task_group() as group:
            group.start_soon(one)
            group.start_soon(one)
    assert got == ["met 2", "met 2"]
    assert not mcp.is_open


async def test_list_changed_reaches_the_next_request() -> None:
    script = Script(
        [
            reply.tool_use("grow", {}, "toolu_g"),
            reply.tool_use("echo", {"text": "hi"}, "toolu_e"),
            reply.text("done"),
        ]
    )
    with LocalServer(policy=script) as api:
        agent = agent_for(api, [MCPToolset(server=make_server())])
        result = await agent.run("grow, then echo")
        first, second = ({d["name"] for d in r.json["tools"]} for r in api.requests[:2])
        assert "echo" not in first and "echo" in second
        assert results(result.messages)["toolu_e"].content == "hi"


async def test_approval_pauses_the_call_and_resume_runs_it() -> None:
    mcp = MCPToolset(server=make_server(), requires_approval=["add"])
    script = Script([reply.tool_use("add", {"a": 1, "b": 1}, "toolu_p"), reply.text("ok")])
    with LocalServer(policy=script) as api:
        agent = agent_for(api, [mcp])
        paused = await agent.run("add")
        assert paused.status == "awaiting_approval" and [p.name for p in paused.pending] == ["add"]
        done = await agent.resume(paused.state, decisions={"toolu_p": Approve(input={"a": 5, "b": 5})})
        assert done.status == "completed" and results(done.messages)["toolu_p"].content == "10"


async def test_a_name_taken_by_a_tool_is_refused() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Local add.

        Args:
            a: One.
            b: Two.
        """
        return a + b

    with LocalServer(policy=Script([reply.text("never")])) as api:
        agent = agent_for(api, [add, MCPToolset(server=make_server())])
        with pytest.raises(ToolDefinitionError, match=r"duplicate tool name 'add'.*prefix"):
            await agent.run("hi")


@pytest.mark.parametrize("transport", ["inproc", "stdio"])
async def test_calls_run_concurrently(transport: str) -> None:
    server = make_server() if transport == "inproc" else None
    mcp = MCPToolset(server=server, timeout=20) if server else MCPToolset(stdio=STDIO, timeout=20)
    outcomes: list[Any] = []

    async def one(i: int) -> None:
        outcomes.append(await mcp.execute(call("rendezvous", {"party": 3}, id=f"toolu_{i}")))

    async with mcp:
        async with anyio.create_task_group() as group:
            for i in range(3):
                group.start_soon(one, i)
    assert [o.result.content for o in outcomes] == ["met 3"] * 3


# --- faults --------------------------------------------------------------------------------------


async def test_server_dies_mid_call_then_reconnects() -> None:
    with structlog.testing.capture_logs() as logs:
        async with MCPToolset(stdio=STDIO) as mcp:
            before = (await mcp.execute(call("pid"))).result.content
            died = await mcp.execute(call("die"))
            assert died.result.is_error and died.status == "error"
            assert "connection closed" in str(died.result.content)
            after = (await mcp.execute(call("pid"))).result.content  # a new server process
            assert after != before and str(after).isdigit()
    errors = [e for e in logs if e["event"] == "mcp.call.error"]
    assert errors and errors[0]["error_type"] == "MCPTransportError" and errors[0]["tool"] == "die"
    assert any(e["event"] == "mcp.session.lost" for e in logs)


async def test_server_that_cannot_come_back_gives_errors_not_hangs(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    script = tmp_path / "once.py"  # serves the first time only; the reconnect finds a dead command
    script.write_text(
        "import os, sys, pathlib\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "if flag.exists(): sys.exit(1)\n"
        "flag.write_text('x')\n"
        f"sys.path.insert(0, {str(DATA)!r})\n"
        "from mcp_demo_server import make_server\n"
        "make_server().run('stdio')\n"
    )
    with structlog.testing.capture_logs() as logs:
        async with MCPToolset(stdio=[sys.executable, str(script)], connect_timeout=5) as mcp:
            assert (await mcp.execute(call("die"))).result.is_error
            for _ in range(2):
                later = await mcp.execute(call("pid"))
                assert later.result.is_error and "MCP server" in str(later.result.content)
    assert any(e["event"] == "mcp.session.down" for e in logs)


async def test_garbage_instead_of_json_rpc_is_a_connection_error() -> None:
    mcp = MCPToolset(stdio=[sys.executable, str(DATA / "mcp_garbage_server.py")], connect_timeout=1.5)
    with pytest.raises(MCPConnectionError, match=r"connect_timeout=1\.5s"):
        async with mcp:
            pass
    assert not mcp.is_open
    with LocalServer(policy=Script([reply.text("never")])) as api:  # through a run: a typed error
        with pytest.raises(MCPConnectionError):
            await agent_for(api, [mcp]).run("hi")
        assert api.requests == []


async def test_invalid_json_rpc_mid_session_is_survived() -> None:
    """A line of garbage and an answer to no request arrive before the real answer: the call is still
    answered, and the session goes on."""
    async with MCPToolset(stdio=[sys.executable, str(DATA / "mcp_garbling_proxy.py")], timeout=10) as mcp:
        garbled = await mcp.execute(call("garble"))
        assert garbled.result.content == "after garbage" and not garbled.result.is_error
        assert (await mcp.execute(call("add", {"a": 1, "b": 2}))).result.content == "3"


async def test_a_hang_past_the_timeout_leaves_the_session_usable() -> None:
    async with MCPToolset(stdio=STDIO, timeout=0.5) as mcp:
        hung = await mcp.execute(call("hang"))
        assert hung.status == "timed_out" and hung.result.is_error
        assert (await mcp.execute(call("add", {"a": 2, "b": 2}))).result.content == "4"


async def test_cancelled_call_then_the_session_still_works() -> None:
    server = make_server()
    async with MCPToolset(server=server) as mcp:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(mcp.execute, call("hang"))
                await server.hang_started.wait()  # type: ignore[attr-defined]  # the call is under way
                group.cancel_scope.cancel()
            assert (await mcp.execute(call("add", {"a": 1, "b": 2}))).result.content == "3"


@pytest.mark.parametrize("transport", ["inproc", "stdio", "http"])
async def test_cancelling_a_run_closes_the_session_cleanly(
    transport: str, request: pytest.FixtureRequest
) -> None:
    if transport == "http":
        mcp = MCPToolset(url=request.getfixturevalue("http_url"))
    else:
        mcp = MCPToolset(server=make_server()) if transport == "inproc" else MCPToolset(stdio=STDIO)
    script = Script([reply.tool_uses([("hang", {}, "toolu_h"), ("add", {"a": 1, "b": 1}, "toolu_x")])])
    with LocalServer(policy=script) as api:
        agent = agent_for(api, [mcp])
        with anyio.move_on_after(1.0) as scope:  # the hang never ends: the scope cancels the run
            await agent.run("hang")
        assert scope.cancelled_caught
        assert not mcp.is_open
        # the toolset opens again for the next run
        api.policy = Script([reply.tool_use("add", {"a": 3, "b": 4}, "toolu_y"), reply.text("7")])
        result = await agent.run("add")
        assert results(result.messages)["toolu_y"].content == "7"


# --- CLI -----------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return subprocess.run(
        [sys.executable, "-m", "agentkit", *args],
        capture_output=True,
        encoding="utf-8",
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_cli_runs_with_mcp_tools(transport: str, request: pytest.FixtureRequest) -> None:
    stdio = f"python {DATA / 'mcp_demo_server.py'}"
    spec = stdio if transport == "stdio" else request.getfixturevalue("http_url")
    done = cli("run", "What is the weather in Oslo?", "--mcp", spec)
    assert done.returncode == 0, done.stderr
    assert '→ weather({"city": "Oslo"})' in done.stdout
    assert "celsius: 21.5" in done.stdout


def test_cli_tools_show_prints_what_the_model_sees(http_url: str) -> None:
    done = cli("tools", "show", "tools.clock", "--mcp", http_url)
    assert done.returncode == 0, done.stderr
    names = [d["name"] for d in json.loads(done.stdout)]
    assert names[:2] == ["current_time", "convert_time"] and "add" in names and "distance" in names
    refused = cli("tools", "show", "--mcp", "ftp://nowhere/x")
    assert refused.returncode == 2 and "a URL must be http(s)" in refused.stderr


async def test_a_lowlevel_server_with_awkward_tools() -> None:
    """Names the API refuses are made valid, a root anyOf becomes one object, a dangling $ref becomes a
    permissive object; calls reach the server under its own names."""
    from mcp.server import Server

    seen: list[str] = []
    awkward = [
        mt.Tool(
            name="files.read",
            description="Read a file.",
            input_schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        ),
        mt.Tool(
            name="lookup",
            input_schema={
                "type": "object",
                "anyOf": [
                    {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id", "v"]},
                    {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["v"]},
                ]
            },
        ),
        mt.Tool(name="broken", input_schema={"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}}),
    ]

    async def list_tools(ctx: Any, params: Any) -> mt.ListToolsResult:
        return mt.ListToolsResult(tools=awkward)

    async def call_tool(ctx: Any, params: Any) -> mt.CallToolResult:
        seen.append(params.name)
        return mt.CallToolResult(content=[mt.TextContent(type="text", text=f"ran {params.name}")])

    server = Server("awkward", on_list_tools=list_tools, on_call_tool=call_tool)
    async with MCPToolset(server=server) as mcp:
        defs = {d["name"]: d for d in mcp.definitions()}
        assert set(defs) == {"files_read", "lookup", "broken"}
        lookup = defs["lookup"]["input_schema"]
        assert lookup["type"] == "object" and "anyOf" not in lookup
        assert set(lookup["properties"]) == {"id", "email"} and lookup["required"] == ["v"]
        assert defs["broken"]["input_schema"] == {"type": "object", "additionalProperties": True}
        outcome = await mcp.execute(call("files_read", {"path": "/etc/hosts"}))
        assert outcome.result.content == "ran files.read" and seen == ["files.read"]
        assert (await mcp.execute(call("lookup", {"id": 1, "v": 2}))).result.content == "ran lookup"
