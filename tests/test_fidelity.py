"""Fidelity to the Messages API (issue 15): agentkit never sends a request the API refuses, and the local
server agrees with the API's rules. Each test runs an ``Agent`` against ``LocalServer`` (a real HTTP
server) and names the rule of the wire reference (``messages-api.md``) it checks."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from structlog.testing import capture_logs

from agentkit import (
    Agent,
    BadRequestError,
    Client,
    ConfigurationError,
    Conversation,
    Document,
    HistoryError,
    Hooks,
    Image,
    ToolDefinitionError,
    tool,
)
from agentkit.testing import LocalServer, OfflineModel, Script, reply
from agentkit.types import TextBlock, ToolResultBlock

from .conftest import OWN

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
EPHEMERAL = {"type": "ephemeral"}


def make_agent(server: LocalServer, **kwargs: Any) -> Agent[Any, Any]:
    return Agent(
        Client(api_key="sk-test", base_url=server.base_url, max_retries=0),
        model="claude-sonnet-4-6",
        **kwargs,
    )


def breakpoints(body: Any) -> list[str]:
    """Where the body carries ``cache_control`` (paths like ``system.0``, ``messages.0.content.1``)."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("cache_control"):
                found.append(path)
            for key, value in node.items():
                if key != "cache_control":
                    walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")

    walk(body, "")
    return found


# --------------------------------------------------------------- 1. requests agentkit never sends


@tool
def snapshot() -> list[Any]:
    """A camera snapshot with an (empty) caption."""
    return [TextBlock(text=""), Image(PNG, "image/png"), ""]


async def test_empty_text_from_a_tool_is_not_forwarded() -> None:
    # §3: "Text blocks must be non-empty" — also nested in tool_result.content (a 400 otherwise).
    script = Script([reply.tool_use("snapshot"), reply.text("A cat.")])
    with LocalServer(policy=script) as server:
        result = await make_agent(server, tools=[snapshot]).run("What does the camera see?")
    assert result.text == "A cat."
    assert [r.status for r in server.requests] == [200, 200]
    sent = server.requests[1].json["messages"][-1]["content"][0]["content"]
    assert [b["type"] for b in sent] == ["image"]


@tool
def blank() -> list[Any]:
    """Nothing to say."""
    return [TextBlock(text="")]


async def test_a_tool_returning_only_empty_text_sends_an_empty_result() -> None:
    script = Script([reply.tool_use("blank"), reply.text("ok")])
    with LocalServer(policy=script) as server:
        await make_agent(server, tools=[blank]).run("go")
    result = server.requests[1].json["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and "content" not in result
    assert server.requests[1].status == 200


async def raw_create(server: LocalServer, body: dict[str, Any]) -> Any:
    async with Client(api_key="sk-test", base_url=server.base_url, max_retries=0) as client:
        return await client.create_raw(body)


def call_then(result_content: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": result_content}],
        },
    ]


async def test_a_hook_returning_empty_text_does_not_poison_the_history() -> None:
    # §3 non-empty text: whatever an after_tool_call hook returns, the stored result stays sendable.
    def replace(ctx: Any, call: Any, result: Any) -> Any:
        return ToolResultBlock(tool_use_id=call.id, content=[TextBlock(text=""), TextBlock(text="edited")])

    script = Script([reply.tool_use("lookup", {"query": "q"}), reply.text("ok")])
    history = Conversation()
    with LocalServer(policy=script) as server:
        await make_agent(server, tools=[lookup], hooks=Hooks(after_tool_call=replace)).run(
            "go", history=history
        )
    assert [r.status for r in server.requests] == [200, 200]
    assert history.to_wire()[2]["content"][0]["content"] == [{"type": "text", "text": "edited"}]


@tool
def bitmap() -> dict[str, Any]:
    """A BMP screenshot."""
    return {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "Qk0="}}


async def test_a_tool_image_with_an_unsupported_media_type_is_an_error_result() -> None:
    # §3 image media types: a BMP would be a 400 on this and every later request; the model gets an error.
    script = Script([reply.tool_use("bitmap"), reply.text("ok")])
    with LocalServer(policy=script) as server:
        await make_agent(server, tools=[bitmap]).run("screenshot")
    assert [r.status for r in server.requests] == [200, 200]
    result = server.requests[1].json["messages"][-1]["content"][0]
    assert result["is_error"] is True and "unserialisable" in result["content"]


async def test_the_server_refuses_empty_text_inside_a_tool_result() -> None:
    # §3 (text blocks must be non-empty) applied to tool_result content: 400 like the API.
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": call_then([{"type": "text", "text": ""}]),
    }
    with LocalServer(policy=Script([reply.text("never")])) as server:
        with pytest.raises(BadRequestError, match=r"content\.0\.text: text content blocks must be"):
            await raw_create(server, body)


@tool
def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: What to look up.
    """
    return "found"


async def test_cache_counts_the_callers_breakpoints_and_keeps_four() -> None:
    # §6: "At most 4 breakpoints per request". cache=True adds 3 (tools, system, last turn); the
    # caller's system block and document carry 2 more (5 in all): agentkit drops its own on the tools.
    system = [
        {"type": "text", "text": "Policy manual ...", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "You are terse."},
    ]
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "A long contract."},
        "cache_control": EPHEMERAL,
    }
    prompt = [{"role": "user", "content": [doc, {"type": "text", "text": "Summarise it."}]}]
    with LocalServer(policy=Script([reply.text("ok")])) as server, capture_logs() as logs:
        await make_agent(server, tools=[lookup], system=system, cache=True).run(prompt)
    body = server.requests[0].json
    assert server.requests[0].status == 200
    expected = ["messages.0.content.0", "messages.0.content.1", "system.0", "system.1"]
    assert sorted(breakpoints(body)) == expected
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}  # the caller's, as given
    events = [e for e in logs if e["event"] == "guard.cache_breakpoints"]
    assert [e["dropped"] for e in events] == [["tools.0"]]


async def test_too_many_breakpoints_of_the_callers_own_keep_the_latest_four() -> None:
    # §6 again, without cache=True: five of the caller's own; the earliest goes, the history keeps it.
    blocks = [{"type": "text", "text": f"part {n}", "cache_control": EPHEMERAL} for n in range(5)]
    history = Conversation([{"role": "user", "content": blocks}])
    with LocalServer(policy=Script([reply.text("ok")])) as server, capture_logs() as logs:
        await make_agent(server).run(history=history)
    assert server.requests[0].status == 200
    assert breakpoints(server.requests[0].json) == [f"messages.0.content.{n}" for n in range(1, 5)]
    assert [e["dropped"] for e in logs if e["event"] == "guard.cache_breakpoints"] == [
        ["messages.0.content.0"]
    ]
    assert history.to_wire()[0]["content"][0]["cache_control"] == EPHEMERAL  # stored turn untouched


async def test_cache_true_without_caller_breakpoints_fires_no_event() -> None:
    with LocalServer(policy=Script([reply.tool_use("lookup", {"query": "q"}), reply.text("ok")])) as server:
        with capture_logs() as logs:
            await make_agent(server, tools=[lookup], system="Be brief.", cache=True).run("hi")
    assert [len(breakpoints(r.json)) for r in server.requests] == [3, 3]
    assert not [e for e in logs if e["event"] == "guard.cache_breakpoints"]


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    name: str


@tool
def adopt(pet: Annotated[Cat | Dog, Field(discriminator="kind")]) -> str:
    """Adopt a pet.

    Args:
        pet: The pet.
    """
    return f"adopted a {pet.kind}"


def refs(node: Any) -> list[str]:
    """Every string that is a JSON pointer into the document (``#/...``), wherever it sits."""
    if isinstance(node, dict):
        return [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return [node] if isinstance(node, str) and node.startswith("#/") else []


async def test_discriminated_union_schema_has_no_dangling_reference() -> None:
    # §4: inline $defs; a discriminator.mapping still naming #/$defs/Cat would point at nothing.
    schema = adopt.definition()["input_schema"]
    assert "$defs" not in schema
    assert refs(schema) == []
    assert schema["properties"]["pet"]["discriminator"] == {"propertyName": "kind"}
    script = Script([reply.tool_use("adopt", {"pet": {"kind": "cat", "lives": 9}}), reply.text("ok")])
    with LocalServer(policy=script) as server:
        await make_agent(server, tools=[adopt]).run("adopt a cat")
    assert server.requests[1].json["messages"][-1]["content"][0]["content"] == "adopted a cat"


# -------------------------------------------------------- 2. consecutive same-role messages


async def test_consecutive_user_and_assistant_messages_are_accepted() -> None:
    # §3: "the API merges consecutive same-role turns": Conversation, the history check before each
    # request and the local server accept them instead of raising HistoryError / answering 400.
    history = Conversation(
        [
            {"role": "user", "content": "Hello."},
            {"role": "user", "content": "Are you there?"},
            {"role": "assistant", "content": "Yes."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"query": "q"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]},
            {"role": "user", "content": "Thanks."},
        ]
    )
    history.check()
    restored = Conversation.from_json(history.to_json())
    with LocalServer(policy=Script([reply.text("You're welcome.")])) as server:
        result = await make_agent(server, tools=[lookup]).run("Anything else?", history=restored)
    assert result.text == "You're welcome."
    assert server.requests[0].status == 200
    assert len(server.requests[0].json["messages"]) == 6  # the new prompt joined the trailing user turn


async def test_an_unanswered_call_in_a_combined_assistant_turn_is_still_caught() -> None:
    # §4 tool-result rule, on the combined turn: the call in the first assistant message is unanswered.
    history = Conversation(
        [
            {"role": "user", "content": "Hello."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}],
            },
            {"role": "assistant", "content": "Done."},
        ]
    )
    with pytest.raises(HistoryError, match="without `tool_result` blocks immediately after: t1"):
        history.check()


# ------------------------------------------------------------------------- 6. beta blocks


COMPACTION = {
    "type": "compaction",
    "content": "Earlier: the user asked for the weather in Lyon.",
    "encrypted_content": "b3BhcXVlLWNvbXBhY3Rpb24tcGF5bG9hZA",
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_compaction_block_goes_back_unchanged(stream: bool) -> None:
    # SDK beta accumulator: compaction_delta fills content and encrypted_content; the block must go
    # back to the API as received (beta/README). Streamed, the server sends the start with nulls.
    first = reply.message([COMPACTION, reply.tool_use_block("lookup", {"query": "Lyon"}, id="toolu_c1")])
    with LocalServer(policy=Script([first, reply.text("Sunny.")])) as server:
        result = await make_agent(server, tools=[lookup], stream=stream).run("Weather in Lyon?")
    assert result.text == "Sunny."
    sent = server.requests[1].json["messages"][1]["content"]
    assert sent[0] == COMPACTION


async def test_a_fallback_block_relabels_the_model_of_an_agent_run() -> None:
    # SDK beta accumulator: "the final hop's fallback block names the model that served the response".
    sse = (OWN / "beta" / "fallback_model.sse").read_bytes()  # message_start says claude-opus-4-7
    script = Script([reply.raw(body=sse, content_type="text/event-stream; charset=utf-8")])
    with LocalServer(policy=script) as server:
        result = await make_agent(server, stream=True).run("Bonjour ?")
    assert result.text == "Bonjour !"
    assert result.last_message is not None and result.last_message.model == "claude-haiku-4-5"
    assert result.messages[-1].content[0].type == "fallback"  # kept in the history as received
    assert server.requests[0].status == 200


# ------------------------------------------------------------------------- 4. server tools

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
SEARCH_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_01",
    "name": "web_search",
    "input": {"query": "Lyon"},
}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_01",
    "content": [
        {
            "type": "web_search_result",
            "url": "https://example.org/lyon",
            "title": "Lyon weather",
            "encrypted_content": "RW5jcnlwdGVk",
            "page_age": None,
        }
    ],
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_server_tools_go_beside_tool_functions_and_their_blocks_come_back(stream: bool) -> None:
    # §4: server tools run at Anthropic; their blocks need no client result and go back verbatim;
    # §7 pause_turn: "resend the conversation including this turn unchanged".
    script = Script(
        [
            reply.pause_turn([SEARCH_USE]),
            reply.message([SEARCH_RESULT, reply.tool_use_block("lookup", {"query": "Lyon"}, id="toolu_s1")]),
            reply.text("Sunny in Lyon."),
        ]
    )
    with LocalServer(policy=script) as server:
        agent = make_agent(server, tools=[lookup, WEB_SEARCH], stream=stream)
        result = await agent.run("Weather in Lyon?")
    assert result.text == "Sunny in Lyon."
    assert [r.status for r in server.requests] == [200, 200, 200]
    assert server.requests[0].json["tools"][1] == WEB_SEARCH
    assert server.requests[1].json["messages"][-1] == {"role": "assistant", "content": [SEARCH_USE]}
    final = server.requests[2].json["messages"]
    assert final[1]["content"][:2] == [SEARCH_USE, SEARCH_RESULT]  # verbatim, nested nulls included
    assert [b["type"] for b in final[2]["content"]] == ["tool_result"]  # only the client tool answered


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({"name": "web_search"}, "versioned 'type'"),
        ({"type": "web_search", "name": "web_search"}, "versioned 'type'"),
        ({"type": "web_fetch_20250910", "name": "web fetch"}, "needs a 'name'"),
        ({"type": "web_fetch_20250910", "name": "lookup"}, "duplicate tool name 'lookup'"),
    ],
)
async def test_a_bad_server_tool_definition_is_refused_where_given(definition: Any, fragment: str) -> None:
    with pytest.raises(ToolDefinitionError, match=fragment):
        Agent(Client(api_key="sk-test", base_url="http://127.0.0.1:1"), model="m", tools=[lookup, definition])


async def test_the_offline_models_leave_server_tools_alone() -> None:
    from agentkit.testing import CallEveryTool

    fetch = {"type": "web_fetch_20250910", "name": "web_fetch"}
    with LocalServer(policy=CallEveryTool()) as server:
        result = await make_agent(server, tools=[lookup, WEB_SEARCH, fetch]).run("go")
    assert result.text.splitlines() == ["Called every tool.", "lookup: found"]
    with LocalServer(policy=OfflineModel()) as server:
        result = await make_agent(server, tools=[WEB_SEARCH]).run("search the web for Lyon")
    assert result.turns == 1 and result.text


# ------------------------------------------------------------- 5. images and documents in prompts

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


async def test_a_prompt_with_an_image_from_a_path(tmp_path: Any) -> None:
    # §3: image blocks with a base64 source and one of four media types.
    (tmp_path / "cat.png").write_bytes(PNG)
    with LocalServer(policy=Script([reply.text("A cat.")])) as server:
        agent = make_agent(server)
        result = await agent.run(["What is in this picture?", Image.from_path(tmp_path / "cat.png")])
    assert result.text == "A cat."
    sent = server.requests[0].json["messages"]
    assert sent == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(PNG).decode(),
                    },
                },
            ],
        }
    ]
    assert server.requests[0].status == 200


async def test_images_from_bytes_base64_and_url_and_documents_in_one_prompt() -> None:
    # §3: image sources base64 | url; document sources base64 PDF | text | url.
    prompt = [
        "Compare these.",
        Image(JPEG, "image/jpeg"),
        Image.from_base64(base64.b64encode(PNG).decode(), "image/png"),
        Image.from_url("https://example.org/dog.webp"),
        Document(PDF, title="Contract"),
        Document.from_text("Plain notes.", citations=True),
        Document.from_url("https://example.org/terms.pdf"),
    ]
    with LocalServer(policy=Script([reply.text("Done.")])) as server:
        await make_agent(server).run(prompt)
    assert server.requests[0].status == 200
    content = server.requests[0].json["messages"][0]["content"]
    assert [b["type"] for b in content] == [
        "text",
        "image",
        "image",
        "image",
        "document",
        "document",
        "document",
    ]
    assert [b["source"]["type"] for b in content[1:]] == ["base64", "base64", "url", "base64", "text", "url"]
    assert content[1]["source"]["media_type"] == "image/jpeg"
    assert content[4] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(PDF).decode()},
        "title": "Contract",
    }
    assert content[5]["citations"] == {"enabled": True}


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: Image(PNG, "image/bmp"), "unsupported image media type 'image/bmp'"),
        (lambda: Image(JPEG, "image/png"), "the bytes are image/jpeg"),
        (lambda: Image(b"", "image/png"), "expected non-empty bytes"),
        (lambda: Image.from_base64("not base64!", "image/png"), "not valid base64"),
        (lambda: Image.from_url("file:///etc/passwd"), "expected an http(s) URL"),
        (lambda: Document(b"hello"), "not a PDF"),
        (lambda: Document(), "exactly one of"),
    ],
)
def test_media_is_checked_where_it_is_made(make: Any, fragment: str) -> None:
    # §3 media types: image/jpeg|png|gif|webp; documents: PDF, text or URL.
    with pytest.raises(ConfigurationError) as info:
        make()
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        (["Look:", ""], "prompt[1]: an empty str"),
        (["Look:", 42], "prompt[1]: got int"),
        ([{"type": "image"}], "prompt[0].source: Field required"),
        (
            [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="}}],
            "image/bmp",
        ),
    ],
)
async def test_bad_prompt_content_is_refused_before_any_request(prompt: Any, fragment: str) -> None:
    with LocalServer(policy=Script([reply.text("never")])) as server:
        with pytest.raises(ConfigurationError) as info:
            await make_agent(server).run(prompt)
    assert fragment in str(info.value)
    assert server.requests == []


async def test_the_offline_model_reads_calls_from_a_combined_assistant_turn() -> None:
    # §3 combined turns: the call sits in the first of two assistant messages.
    history = Conversation(
        [
            {"role": "user", "content": "Look up Lyon."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"query": "Lyon"}}],
            },
            {"role": "assistant", "content": "One moment."},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]},
        ]
    )
    with LocalServer(policy=OfflineModel()) as server:
        result = await make_agent(server, tools=[lookup]).run(history=history)
    assert server.requests[0].status == 200
    assert result.text == "lookup(query=Lyon) gave found."  # the call was found in the combined turn
