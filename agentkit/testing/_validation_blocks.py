"""The local server's rules for content blocks, ``cache_control`` and tool schemas, as tables.

Each table entry names where the rule comes from: the official SDK's request types (``anthropic`` 2.12,
``types/*_param.py``: the API's own request schema, generated from its OpenAPI spec), the wire
reference (``messages-api.md`` §N) or the API docs. Error messages follow the API's pydantic-style
wording (``<loc>: Extra inputs are not permitted``, ``Input tag ... does not match any of the expected
tags``). :mod:`._validation` runs these after the body-level rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["check_blocks", "check_cache_controls", "check_input_schema"]


class BlockProblem(Exception):
    """One content-block rule broken; ``str()`` is the API's message."""


# Request content-block types the API knows (SDK ``BetaContentBlockParam``: the standard union plus the
# beta blocks a client sends back, e.g. ``compaction``, which the API accepts under its beta header).
BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "advisor_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "mcp_tool_listing",
    "container_upload",
    "compaction",
    "fallback",
    "tool_addition",
    "tool_removal",
)
# What tool_result.content may hold (SDK ``tool_result_block_param.Content``).
RESULT_CONTENT_TYPES = ("text", "image", "search_result", "document", "tool_reference", "browser_state")

# Closed blocks: every field the SDK's param type has (anything else: "Extra inputs are not permitted").
FIELDS: dict[str, frozenset[str]] = {
    # SDK TextBlockParam: text, type, cache_control, citations
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    # SDK ToolUseBlockParam: id, input, name, type, cache_control, caller, toolset_name (§3: keep `caller`)
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control", "caller", "toolset_name"}),
}
# Blocks that need a source (SDK ImageBlockParam / DocumentBlockParam: source is Required).
NEEDS_SOURCE = ("image", "document")
# §3 and SDK Base64ImageSourceParam.media_type.
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
IMAGE_SOURCES = ("base64", "url", "file")
# §6 and SDK CacheControlEphemeralParam: type "ephemeral", optional ttl "5m" | "1h".
CACHE_FIELDS = frozenset({"type", "ttl"})
CACHE_TTLS = ("5m", "1h")
MAX_CACHE_BREAKPOINTS = 4  # §6 "At most 4 breakpoints per request"


def _quoted(options: tuple[str, ...]) -> str:
    return ", ".join(f"'{o}'" for o in options)


def _one_of(options: tuple[str, ...]) -> str:
    quoted = [f"'{o}'" for o in options]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _tag_error(where: str, tag: Any, options: tuple[str, ...]) -> BlockProblem:
    return BlockProblem(
        f"{where}: Input tag {tag!r} found using 'type' does not match any of the expected tags: "
        f"{_quoted(options)}"
    )


def check_blocks(messages: list[Any]) -> None:
    """Content-block rules over every message (run after the history check, so shapes are sane)."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if isinstance(block, Mapping):
                _check_block(f"messages.{i}.content.{j}", block, BLOCK_TYPES)


def _check_block(where: str, block: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    btype = block.get("type")
    if btype not in allowed:
        raise _tag_error(where, btype, allowed)
    fields = FIELDS.get(btype)
    if fields is not None:
        for key in block:
            if key not in fields:
                raise BlockProblem(f"{where}.{btype}.{key}: Extra inputs are not permitted")
    if btype in NEEDS_SOURCE:
        source = block.get("source")
        if source is None:
            raise BlockProblem(f"{where}.{btype}.source: Field required")
        if btype == "image":
            _check_image_source(f"{where}.image.source", source)
    if btype == "tool_result":
        inner = block.get("content")
        if isinstance(inner, list):
            for n, item in enumerate(inner):
                if isinstance(item, Mapping):
                    _check_block(f"{where}.tool_result.content.{n}", item, RESULT_CONTENT_TYPES)


def _check_image_source(where: str, source: Any) -> None:
    if not isinstance(source, Mapping):
        raise BlockProblem(f"{where}: Input should be a valid dictionary")
    stype = source.get("type")
    if stype not in IMAGE_SOURCES:
        raise _tag_error(where, stype, IMAGE_SOURCES)
    if stype == "base64" and source.get("media_type") not in IMAGE_MEDIA_TYPES:
        raise BlockProblem(f"{where}.base64.media_type: Input should be {_one_of(IMAGE_MEDIA_TYPES)}")


# --- cache_control ------------------------------------------------------------------------------


def _cache_sites(body: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, block type, cache_control) for every breakpoint, in prefix order (§6)."""
    for key in ("tools", "system"):
        items = body.get(key)
        if isinstance(items, list):
            for n, item in enumerate(items):
                if isinstance(item, Mapping) and item.get("cache_control") is not None:
                    kind = "custom" if key == "tools" else "text"
                    yield f"{key}.{n}.{item.get('type') or kind}", item["cache_control"]
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, Mapping) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, Mapping):
                continue
            where = f"messages.{i}.content.{j}.{block.get('type')}"
            inner = block.get("content") if block.get("type") == "tool_result" else None
            for n, item in enumerate(inner if isinstance(inner, list) else []):
                if isinstance(item, Mapping) and item.get("cache_control") is not None:
                    yield f"{where}.content.{n}.{item.get('type')}", item["cache_control"]
            if block.get("cache_control") is not None:
                yield where, block["cache_control"]


def check_cache_controls(body: Mapping[str, Any]) -> None:
    """Each ``cache_control`` well formed, and at most 4 of them (§6; the API's own wording)."""
    count = 0
    sites = list(_cache_sites(body))
    if body.get("cache_control") is not None:  # top-level (automatic) caching: shape only
        sites.append(("", body["cache_control"]))
    for where, value in sites:
        loc = f"{where}.cache_control" if where else "cache_control"
        if not isinstance(value, Mapping):
            raise BlockProblem(f"{loc}: Input should be a valid dictionary")
        if value.get("type") != "ephemeral":
            raise _tag_error(loc, value.get("type"), ("ephemeral",))
        for key in value:
            if key not in CACHE_FIELDS:
                raise BlockProblem(f"{loc}.ephemeral.{key}: Extra inputs are not permitted")
        if "ttl" in value and value["ttl"] not in CACHE_TTLS:
            raise BlockProblem(f"{loc}.ephemeral.ttl: Input should be {_one_of(CACHE_TTLS)}")
        count += bool(where)
    if count > MAX_CACHE_BREAKPOINTS:
        raise BlockProblem(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {count}."
        )


# --- input_schema: JSON Schema draft 2020-12 ----------------------------------------------------

SCHEMA_INVALID = (
    "JSON schema is invalid. It must match JSON Schema draft 2020-12 "
    "(https://json-schema.org/draft/2020-12). Learn more about tool use at "
    "https://docs.claude.com/en/docs/tool-use."
)
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _pointer(root: Any, ref: str) -> bool:
    """Does the local JSON pointer ``ref`` (``#/...``) name something in ``root``?"""
    node = root
    for raw in ref[2:].split("/") if ref != "#" else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"\d+", part) and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _schema_problem(root: Any, node: Any) -> bool:
    """True if ``node`` (a schema position) breaks draft 2020-12's meta-schema or names a missing $ref."""
    if isinstance(node, bool):
        return False
    if not isinstance(node, Mapping):
        return True
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if any(k not in _TYPES for k in kinds):
        return True
    required = node.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(r, str) for r in required)
    ):
        return True
    if "enum" in node and not isinstance(node["enum"], list):
        return True
    refs = [node.get("$ref")]
    discriminator = node.get("discriminator")  # OpenAPI's; a mapping must still point somewhere
    if isinstance(discriminator, Mapping) and isinstance(discriminator.get("mapping"), Mapping):
        refs += list(discriminator["mapping"].values())
    for ref in refs:
        if isinstance(ref, str) and ref.startswith("#") and not _pointer(root, ref):
            return True
    for key in _ONE:
        if key in node and _schema_problem(root, node[key]):
            return True
    for key in _MANY:
        if key in node and (
            not isinstance(node[key], list) or any(_schema_problem(root, s) for s in node[key])
        ):
            return True
    for key in _MAP:
        if key in node and (
            not isinstance(node[key], Mapping) or any(_schema_problem(root, s) for s in node[key].values())
        ):
            return True
    return False


def check_input_schema(where: str, schema: Mapping[str, Any]) -> None:
    """A tool's ``input_schema`` must be valid JSON Schema draft 2020-12 (tool-use docs); with
    ``jsonschema`` installed its meta-schema check runs too."""
    bad = _schema_problem(schema, schema)
    if not bad:
        try:
            import jsonschema  # type: ignore[import-untyped,unused-ignore]
        except ImportError:  # pragma: no cover - a dev dependency
            pass
        else:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError:
                bad = True
    if bad:
        raise BlockProblem(f"{where}.input_schema: {SCHEMA_INVALID}")
