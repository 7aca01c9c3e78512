"""Request-body validation of the local server: the 400s the real API gives, as one table of rules.

:data:`RULES` lists every check in the order the server applies it, each with the endpoints it covers
and, in a comment, its source: the wire reference (``messages-api.md`` §N), the official SDK's request
types (``anthropic`` 2.12 ``types/*_param.py``, generated from the API's schema) or the API docs. The
content-block, ``cache_control`` and tool-schema tables live in :mod:`._validation_blocks`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import HistoryError
from .._history import check_messages, check_thinking_history
from ._validation_blocks import BlockProblem, check_blocks, check_cache_controls, check_input_schema
from ._wire import verify_signature

__all__ = ["InvalidRequest", "validate_count_tokens", "validate_create"]

CREATE_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "output_config",
        "cache_control",
        "container",
        "inference_geo",
        "speed",
        "mcp_servers",
        "diagnostics",  # SDK 2.12 MessageCreateParams
        "user_profile_id",
        "workspace_id",
    }
)
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "cache_control",
        "output_config",
        "mcp_servers",
        "speed",  # SDK 2.12 MessageCountTokensParams
        "user_profile_id",
        "workspace_id",
    }
)
TOOL_FIELDS = frozenset(
    {
        "name",
        "description",
        "input_schema",
        "cache_control",
        "strict",
        "input_examples",
        "defer_loading",
        "eager_input_streaming",
        "type",
    }
)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_DOCS = (
    "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)


class InvalidRequest(Exception):
    """A request the API would answer 400 ``invalid_request_error``; ``str()`` is the message."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_create(body: Any, *, verify_signatures: bool = True) -> None:
    """Raise :class:`InvalidRequest` if ``POST /v1/messages`` would answer 400 for this body."""
    _validate(_Checked(body, CREATE, verify_signatures))


def validate_count_tokens(body: Any) -> None:
    """Raise :class:`InvalidRequest` if ``POST /v1/messages/count_tokens`` would answer 400."""
    _validate(_Checked(body, COUNT, False))


CREATE, COUNT = "create", "count_tokens"
BOTH = frozenset({CREATE, COUNT})


@dataclass
class _Checked:
    """One body going through the rules; earlier rules leave what later ones need."""

    body: Any
    endpoint: str
    verify_signatures: bool
    tool_names: set[str] = field(default_factory=set)
    choice: str | None = None
    thinking_on: bool = False


def _validate(checked: _Checked) -> None:
    if not isinstance(checked.body, dict):
        raise InvalidRequest("body: Input should be a valid dictionary (a JSON object)")
    for rule, endpoints in RULES:
        if checked.endpoint in endpoints:
            try:
                rule(checked)
            except BlockProblem as exc:
                raise InvalidRequest(str(exc)) from None


def _fields(c: _Checked) -> None:
    allowed = CREATE_FIELDS if c.endpoint == CREATE else COUNT_FIELDS
    for key in c.body:
        if key not in allowed:
            raise InvalidRequest(f"{key}: Extra inputs are not permitted")


def _model(c: _Checked) -> None:
    model = c.body.get("model")
    if model is None:
        raise InvalidRequest("model: Field required")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Input should be a valid non-empty string")


def _max_tokens(c: _Checked) -> None:
    if "max_tokens" not in c.body:
        raise InvalidRequest("max_tokens: Field required")
    max_tokens = c.body["max_tokens"]
    if not _is_int(max_tokens):
        raise InvalidRequest("max_tokens: Input should be a valid integer")
    if max_tokens < 0:  # 0 pre-warms the prompt cache without generating (SDK max_tokens docstring)
        raise InvalidRequest("max_tokens: Input should be greater than or equal to 0")


def _messages_required(c: _Checked) -> None:
    if "messages" not in c.body:
        raise InvalidRequest("messages: Field required")


def _history(c: _Checked) -> None:
    try:
        check_messages(c.body["messages"])
        if c.thinking_on:
            check_thinking_history(c.body["messages"], True)
    except HistoryError as exc:
        raise InvalidRequest(str(exc)) from None


def _signatures(c: _Checked) -> None:
    if c.verify_signatures:
        _check_signatures(c.body["messages"])


def _sampling(c: _Checked) -> None:
    _check_sampling(c.body)


def _check_sampling(body: Mapping[str, Any]) -> None:
    for key in ("temperature", "top_p"):
        if key in body:
            value = body[key]
            if not _is_number(value):
                raise InvalidRequest(f"{key}: Input should be a valid number")
            if not 0.0 <= value <= 1.0:
                raise InvalidRequest(f"{key}: Input should be between 0 and 1")
    if "temperature" in body and "top_p" in body:
        raise InvalidRequest(
            "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
        )
    if "top_k" in body and (not _is_int(body["top_k"]) or body["top_k"] < 1):
        raise InvalidRequest("top_k: Input should be a positive integer")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    if "stop_sequences" in body:
        seqs = body["stop_sequences"]
        if not isinstance(seqs, list) or not all(isinstance(s, str) for s in seqs):
            raise InvalidRequest("stop_sequences: Input should be a valid list of strings")
        for n, seq in enumerate(seqs):  # API docs (stop sequences): each must contain non-whitespace
            if not seq.strip():
                raise InvalidRequest(
                    f"stop_sequences.{n}: stop sequences must contain non-whitespace characters (got {seq!r})"
                )


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a valid string or a list of text blocks")
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(
                f"system.{j}: Input should be a text block ({{'type': 'text', 'text': ...}})"
            )
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise InvalidRequest(f"system.{j}.text: text content blocks must be non-empty")


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: Input should be a valid dictionary")
    for key, value in metadata.items():
        if key != "user_id":
            raise InvalidRequest(f"metadata.{key}: Extra inputs are not permitted")
        if value is not None and not isinstance(value, str):
            raise InvalidRequest("metadata.user_id: Input should be a valid string")


def _check_tools(tools: Any) -> set[str]:
    names: set[str] = set()
    if tools is None:
        return names
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    for n, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{n}: Input should be a valid dictionary")
        name = tool.get("name")
        ttype = tool.get("type")
        if ttype not in (None, "custom"):  # a server tool (web_search_…): its own schema, not checked here
            if not isinstance(name, str):
                raise InvalidRequest(f"tools.{n}.name: Field required")
        else:
            where = f"tools.{n}.custom"
            for key in tool:
                if key not in TOOL_FIELDS:
                    raise InvalidRequest(f"{where}.{key}: Extra inputs are not permitted")
            if name is None:
                raise InvalidRequest(f"{where}.name: Field required")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise InvalidRequest(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if "description" in tool and not isinstance(tool["description"], str):
                raise InvalidRequest(f"{where}.description: Input should be a valid string")
            schema = tool.get("input_schema")
            if schema is None:
                raise InvalidRequest(f"{where}.input_schema: Field required")
            if not isinstance(schema, dict):
                raise InvalidRequest(f"{where}.input_schema: Input should be a valid dictionary")
            if schema.get("type") != "object":
                raise InvalidRequest(f"{where}.input_schema.type: Input should be 'object'")
            for combinator in ("anyOf", "oneOf", "allOf"):
                if combinator in schema:
                    raise InvalidRequest(
                        f"{where}.input_schema: input_schema does not support oneOf, allOf, or anyOf at the "
                        "top level"
                    )
            check_input_schema(where, schema)
        if name in names:
            raise InvalidRequest(f"tools: Tool names must be unique (duplicate: {name})")
        names.add(name)
    return names


def _check_tool_choice(choice: Any, tool_names: set[str]) -> str | None:
    if choice is None:
        return None
    if not isinstance(choice, dict):
        raise InvalidRequest(
            "tool_choice: Input should be an object such as {'type': 'auto'}, not "
            f"{type(choice).__name__} {choice!r}"
        )
    ctype = choice.get("type")
    if ctype not in _TOOL_CHOICES:
        raise InvalidRequest(
            f"tool_choice: Input tag {ctype!r} found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    # SDK ToolChoice*Param: auto/any/tool take `disable_parallel_tool_use`, none has only `type`
    allowed = {"type"} if ctype == "none" else {"type", "disable_parallel_tool_use"}
    if ctype == "tool":
        allowed.add("name")
    for key in choice:
        if key not in allowed:
            raise InvalidRequest(f"tool_choice.{ctype}.{key}: Extra inputs are not permitted")
    if "disable_parallel_tool_use" in choice and not isinstance(choice["disable_parallel_tool_use"], bool):
        raise InvalidRequest(
            f"tool_choice.{ctype}.disable_parallel_tool_use: Input should be a valid boolean"
        )
    if ctype in ("any", "tool") and not tool_names:
        raise InvalidRequest(f"tool_choice: `{ctype}` may only be specified while providing tools")
    if ctype == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice.tool.name: Field required")
        if name not in tool_names:
            raise InvalidRequest(f"tool_choice.tool.name: tool {name!r} was not found in `tools`")
    return str(ctype)


def _check_thinking(
    thinking: Any, max_tokens: int | None, choice: str | None, body: Mapping[str, Any]
) -> bool:
    if thinking is None:
        return False
    if not isinstance(thinking, dict):
        raise InvalidRequest("thinking: Input should be a valid dictionary")
    ttype = thinking.get("type")
    if ttype == "disabled":
        return False
    if ttype == "enabled":
        budget = thinking.get("budget_tokens")
        if budget is None:
            raise InvalidRequest("thinking.enabled.budget_tokens: Field required")
        if not _is_int(budget):
            raise InvalidRequest("thinking.enabled.budget_tokens: Input should be a valid integer")
        if budget < 1024:
            raise InvalidRequest(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if max_tokens is not None and max_tokens <= budget:
            raise InvalidRequest(f"`max_tokens` must be greater than `thinking.budget_tokens`. {_DOCS}")
        if thinking.get("display", "summarized") not in ("summarized", "omitted"):
            raise InvalidRequest("thinking.enabled.display: Input should be 'summarized' or 'omitted'")
    elif ttype == "adaptive":
        if thinking.get("display", "summarized") not in ("summarized", "omitted"):
            raise InvalidRequest("thinking.adaptive.display: Input should be 'summarized' or 'omitted'")
    else:
        raise InvalidRequest(
            f"thinking: Input tag {ttype!r} found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'"
        )
    if choice in ("any", "tool"):
        raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
    if "temperature" in body and body["temperature"] != 1:
        raise InvalidRequest(f"`temperature` may only be set to 1 when thinking is enabled. {_DOCS}")
    if "top_k" in body:
        raise InvalidRequest(f"`top_k` cannot be set when thinking is enabled. {_DOCS}")
    if "top_p" in body and not 0.95 <= body["top_p"] <= 1:
        raise InvalidRequest(f"`top_p` must be between 0.95 and 1 when thinking is enabled. {_DOCS}")
    return True


def _check_signatures(messages: list[dict[str, Any]]) -> None:
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant" or not isinstance(msg.get("content"), list):
            continue
        for j, block in enumerate(msg["content"]):
            if block.get("type") == "thinking" and not verify_signature(
                block["thinking"], block["signature"]
            ):
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block (send thinking "
                    "blocks back exactly as received)"
                )


def _system_rule(c: _Checked) -> None:
    _check_system(c.body.get("system"))


def _metadata_rule(c: _Checked) -> None:
    if "metadata" in c.body:
        _check_metadata(c.body["metadata"])


def _tools_rule(c: _Checked) -> None:
    c.tool_names = _check_tools(c.body.get("tools"))


def _tool_choice_rule(c: _Checked) -> None:
    c.choice = _check_tool_choice(c.body.get("tool_choice"), c.tool_names)


def _thinking_rule(c: _Checked) -> None:
    max_tokens = c.body.get("max_tokens") if c.endpoint == CREATE else None
    c.thinking_on = _check_thinking(c.body.get("thinking"), max_tokens, c.choice, c.body)


def _blocks_rule(c: _Checked) -> None:
    check_blocks(c.body["messages"])


def _cache_rule(c: _Checked) -> None:
    check_cache_controls(c.body)


# Every rule, in the order the server applies it, with the endpoints it covers.
RULES: tuple[tuple[Callable[[_Checked], None], frozenset[str]], ...] = (
    # §2 "Unknown fields are rejected ... `<field>: Extra inputs are not permitted`"; the field lists
    # are SDK 2.12 MessageCreateParams / MessageCountTokensParams plus the documented sampling fields.
    (_fields, BOTH),
    # §2 `model`: string, required.
    (_model, BOTH),
    # §2 `max_tokens`: int, required; 0 allowed for cache pre-warming (SDK docstring). §10: not on count.
    (_max_tokens, frozenset({CREATE})),
    # §2 sampling ranges, temperature xor top_p, stop_sequences (+ API docs: non-whitespace sequences).
    (_sampling, frozenset({CREATE})),
    # §2 `messages` required.
    (_messages_required, BOTH),
    # §2 `system`: a string or text blocks (non-empty text, §3).
    (_system_rule, BOTH),
    # §2 `metadata`: `user_id` is the only field.
    (_metadata_rule, frozenset({CREATE})),
    # §4 tool definitions: name pattern, unique names, root type object, no root combinators, and
    # tool-use docs: input_schema must be valid JSON Schema draft 2020-12.
    (_tools_rule, BOTH),
    # §4 tool_choice tags; SDK ToolChoiceNoneParam has no `disable_parallel_tool_use`.
    (_tool_choice_rule, BOTH),
    # §5 thinking configs (SDK ThinkingConfig*Param: `display` summarized | omitted) and their limits.
    (_thinking_rule, BOTH),
    # §3-§5 the history: roles, non-empty text (also in tool_result content), the tool-result rule,
    # thinking preservation; consecutive same-role messages are one turn.
    (_history, BOTH),
    # §3 + SDK content-block params: known block types, closed text/tool_use blocks, image/document
    # sources, what tool_result.content may hold.
    (_blocks_rule, BOTH),
    # §6 + SDK CacheControlEphemeralParam: well-formed cache_control, at most 4 breakpoints.
    (_cache_rule, BOTH),
    # §5 "altered text gives 'Invalid `signature` in `thinking` block'".
    (_signatures, frozenset({CREATE})),
)
