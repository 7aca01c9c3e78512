"""The local server rejects what the API rejects, with its error type and wording, and accepts what it
accepts (issue 15, item 3). Each case names its rule's source: the wire reference (§N of
``messages-api.md``), the official SDK's request types (``anthropic`` 2.12, generated from the API's
schema) or the API docs. The official SDK is also used as a client of the server (skipped without it)."""

from __future__ import annotations

import copy
from typing import Any

import httpx2
import pytest

from agentkit.testing import LocalServer, Script, reply

KEY = "sk-test"
MODEL = "claude-sonnet-4-6"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
EPH = {"type": "ephemeral"}
TOOL = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}
PNG_B64 = "iVBORw0KGgo="


def body(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    out.update(changes)
    return out


def user(*blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


def answered(*content: Any) -> list[dict[str, Any]]:
    """A history whose tool call is answered with ``content``."""
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [CALL]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": list(content)}],
        },
    ]


def text(t: str = "x", **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": t, **extra}


def post(server: LocalServer, path: str, payload: Any) -> httpx2.Response:
    with httpx2.Client(base_url=server.base_url, headers=HEADERS, timeout=10) as c:
        return c.post(path, json=payload)


FIVE_BREAKPOINTS = user(*[text(f"part {n}", cache_control=EPH) for n in range(5)])

REJECTED: list[tuple[str, dict[str, Any], str]] = [
    # §6 "At most 4 breakpoints per request" (the API's own message)
    (
        "five cache breakpoints",
        body(messages=FIVE_BREAKPOINTS),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ),
    (
        "five across tools, system and messages",
        body(
            tools=[{**TOOL, "cache_control": EPH}],
            system=[text("a", cache_control=EPH), text("b", cache_control=EPH)],
            messages=user(text("c", cache_control=EPH), text("d", cache_control=EPH)),
        ),
        "Found 5.",
    ),
    # SDK CacheControlEphemeralParam: type, ttl only; ttl "5m" | "1h"
    (
        "cache_control unknown key",
        body(messages=user(text(cache_control={"type": "ephemeral", "scope": "org"}))),
        "messages.0.content.0.text.cache_control.ephemeral.scope: Extra inputs are not permitted",
    ),
    (
        "cache_control bad ttl",
        body(messages=user(text(cache_control={"type": "ephemeral", "ttl": "10m"}))),
        "messages.0.content.0.text.cache_control.ephemeral.ttl: Input should be '5m' or '1h'",
    ),
    (
        "cache_control bad type",
        body(system=[text(cache_control={"type": "persistent"})]),
        "system.0.text.cache_control: Input tag 'persistent' found using 'type' does not match any of the "
        "expected tags: 'ephemeral'",
    ),
    # SDK ToolChoiceNoneParam has only `type`
    (
        "tool_choice none with disable_parallel_tool_use",
        body(tools=[TOOL], tool_choice={"type": "none", "disable_parallel_tool_use": True}),
        "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted",
    ),
    # SDK content-block params: a discriminated union on `type`
    (
        "unknown content-block type",
        body(messages=user({"type": "video", "url": "https://example.org/v.mp4"})),
        "messages.0.content.0: Input tag 'video' found using 'type' does not match any of the expected tags: "
        "'text', 'image', 'document'",
    ),
    # SDK TextBlockParam / ToolUseBlockParam are closed
    (
        "extra field on text",
        body(messages=user(text(style="bold"))),
        "messages.0.content.0.text.style: Extra inputs are not permitted",
    ),
    (
        "extra field on tool_use",
        body(
            messages=[
                *answered(text("ok"))[:1],
                {"role": "assistant", "content": [{**CALL, "note": 1}]},
                *answered(text("ok"))[2:],
            ]
        ),
        "messages.1.content.0.tool_use.note: Extra inputs are not permitted",
    ),
    # §3 image media types; SDK ImageBlockParam.source / DocumentBlockParam.source are Required
    (
        "image/bmp",
        body(
            messages=user(
                {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG_B64}}
            )
        ),
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
        "'image/gif' or 'image/webp'",
    ),
    (
        "image without source",
        body(messages=user({"type": "image"})),
        "messages.0.content.0.image.source: Field required",
    ),
    (
        "document without source",
        body(messages=user({"type": "document", "title": "x"})),
        "messages.0.content.0.document.source: Field required",
    ),
    # SDK tool_result_block_param.Content: text | image | search_result | document | tool_reference | …
    (
        "tool_use inside tool_result",
        body(messages=answered(CALL)),
        "messages.2.content.0.tool_result.content.0: Input tag 'tool_use' found using 'type' does not match "
        "any of the expected tags: 'text', 'image', 'search_result', 'document'",
    ),
    # §3 "Text blocks must be non-empty", inside tool_result content too
    (
        "empty text in tool_result",
        body(messages=answered(text(""))),
        "messages.2.content.0.tool_result.content.0.text: text content blocks must be non-empty",
    ),
    # API docs (stop sequences): each must contain non-whitespace
    (
        "empty stop sequence",
        body(stop_sequences=["END", ""]),
        "stop_sequences.1: stop sequences must contain",
    ),
    (
        "whitespace stop sequence",
        body(stop_sequences=[" \n"]),
        "stop_sequences.0: stop sequences must contain",
    ),
    # tool-use docs: input_schema must be valid JSON Schema draft 2020-12
    (
        "schema with a bad type",
        body(
            tools=[{"name": "t", "input_schema": {"type": "object", "properties": {"a": {"type": "text"}}}}]
        ),
        "tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12",
    ),
    (
        "schema with a dangling $ref",
        body(
            tools=[
                {"name": "t", "input_schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}}
            ]
        ),
        "JSON schema is invalid",
    ),
    (
        "schema with a dangling discriminator mapping",
        body(
            tools=[
                {
                    "name": "t",
                    "input_schema": {
                        "type": "object",
                        "properties": {
                            "a": {
                                "oneOf": [{"type": "object"}],
                                "discriminator": {"propertyName": "k", "mapping": {"x": "#/$defs/X"}},
                            }
                        },
                    },
                }
            ]
        ),
        "JSON schema is invalid",
    ),
    # SDK ThinkingConfigAdaptiveParam.display: "summarized" | "omitted"
    (
        "adaptive display",
        body(thinking={"type": "adaptive", "display": "full"}),
        "thinking.adaptive.display: Input should be 'summarized' or 'omitted'",
    ),
]


@pytest.mark.parametrize(("name", "payload", "message"), REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected_like_the_api(name: str, payload: dict[str, Any], message: str) -> None:
    with LocalServer(policy=Script([reply.text("never")])) as server:
        r = post(server, "/v1/messages", payload)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]


def test_count_tokens_counts_cache_breakpoints_too() -> None:
    payload = body(messages=FIVE_BREAKPOINTS)
    del payload["max_tokens"]
    with LocalServer() as server:
        r = post(server, "/v1/messages/count_tokens", payload)
    assert r.status_code == 400
    assert (
        "A maximum of 4 blocks with cache_control may be provided. Found 5." in r.json()["error"]["message"]
    )


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("four breakpoints", body(messages=user(*[text(f"p{n}", cache_control=EPH) for n in range(4)]))),
    ("ttl 1h", body(system=[text(cache_control={"type": "ephemeral", "ttl": "1h"})])),
    # §3 keep unknown fields such as `caller` on tool_use and send them back
    (
        "tool_use with caller",
        body(
            messages=[
                answered(text("ok"))[0],
                {"role": "assistant", "content": [{**CALL, "caller": {"type": "direct"}}]},
                answered(text("ok"))[2],
            ]
        ),
    ),
    (
        "image url",
        body(messages=user({"type": "image", "source": {"type": "url", "url": "https://example.org/a.png"}})),
    ),
    ("tool_choice none", body(tools=[TOOL], tool_choice={"type": "none"})),
    ("adaptive summarized", body(thinking={"type": "adaptive", "display": "omitted"})),
    # SDK 2.12 MessageCreateParams: newer documented fields
    (
        "newer fields",
        body(service_tier="auto", speed="standard", inference_geo="us", workspace_id="wrkspc_1"),
    ),
    (
        "compaction block sent back",
        body(
            messages=[
                {"role": "user", "content": "a"},
                {
                    "role": "assistant",
                    "content": [{"type": "compaction", "content": "s", "encrypted_content": "e"}],
                },
                {"role": "user", "content": "b"},
            ]
        ),
    ),
]


@pytest.mark.parametrize(("name", "payload"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_like_the_api(name: str, payload: dict[str, Any]) -> None:
    with LocalServer(policy=Script([reply.text("ok")])) as server:
        r = post(server, "/v1/messages", copy.deepcopy(payload))
    assert r.status_code == 200, r.text


def test_max_tokens_zero_pre_warms_the_cache() -> None:
    # SDK max_tokens docstring: "Set to `0` to populate the prompt cache without generating a response."
    with LocalServer(policy=Script([])) as server:  # the policy is never asked
        r = post(server, "/v1/messages", body(max_tokens=0))
    assert r.status_code == 200, r.text
    message = r.json()
    assert message["content"] == [] and message["stop_reason"] == "max_tokens"
    assert message["usage"]["output_tokens"] == 0


# ----------------------------------------------------------------- the official SDK as the client

CITATION = {
    "type": "char_location",
    "cited_text": "The sky is blue.",
    "document_index": 0,
    "document_title": "Facts",
    "start_char_index": 0,
    "end_char_index": 16,
}


def test_the_official_sdk_talks_to_the_local_server() -> None:
    # Its anthropic-version header (2026-10-21 in SDK 2.x), its Bearer auth, its Message, stream, count
    # and models types: every field it requires is there, and a streamed Message equals the JSON one
    # (citations arrive as citations_delta events, §9).
    anthropic = pytest.importorskip("anthropic")
    answer = reply.message([{"type": "text", "text": "It is blue.", "citations": [CITATION]}])
    with LocalServer(policy=Script([answer, answer])) as server:
        client = anthropic.Anthropic(api_key=KEY, base_url=server.base_url, max_retries=0)
        messages = [{"role": "user", "content": "What colour is the sky?"}]
        plain = client.messages.create(model=MODEL, max_tokens=64, messages=messages)
        with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:
            streamed = stream.get_final_message()
        count = client.messages.count_tokens(model=MODEL, messages=messages)
        models = client.models.list()
        one = client.models.retrieve(MODEL)
        versions = {r.headers.get("anthropic-version") for r in server.requests}
    assert versions == {anthropic._constants.ANTHROPIC_API_VERSION}
    drop = {"id", "usage"}
    assert streamed.model_dump(exclude=drop) == plain.model_dump(exclude=drop)
    assert plain.content[0].citations[0].cited_text == "The sky is blue."
    assert count.input_tokens > 0
    assert [m.id for m in models.data] == ["claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5"]
    assert one.id == MODEL and one.lifecycle == "active"
