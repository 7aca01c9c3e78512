"""Anthropic's server tools (web search, web fetch, code execution, ...): definitions that go in
``tools=[...]`` beside ``@tool`` functions. They run at Anthropic, so agentkit only sends them: the
model's ``server_tool_use`` and ``*_tool_result`` blocks need no client result and go back verbatim
(wire reference §4, §7; ``pause_turn`` continues the turn)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import ToolDefinitionError
from ._schema import TOOL_NAME_PATTERN

__all__ = ["check_unique", "is_server_tool", "server_tool_definition"]

# Versioned server tool types: "web_search_20250305", "web_fetch_20250910", "code_execution_20250825"...
_VERSIONED_TYPE = re.compile(r"^[a-z][a-z0-9_]*_\d{8}$")
_EXAMPLE = "{'type': 'web_search_20250305', 'name': 'web_search', 'max_uses': 3}"


def is_server_tool(item: Any) -> bool:
    """True for a mapping (a server tool definition) rather than a function or a Tool."""
    return isinstance(item, Mapping)


def check_unique(name: str, taken: Iterable[str]) -> None:
    """Tool names are unique per request, server tools included (wire reference §4)."""
    if name in taken:
        raise ToolDefinitionError(
            f"duplicate tool name {name!r}; tool names must be unique (server tools included)"
        )


def server_tool_definition(item: Mapping[str, Any], taken: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of a server tool definition, checked: a versioned ``type`` and a unique, valid ``name``."""
    ttype = item.get("type")
    if not isinstance(ttype, str) or not _VERSIONED_TYPE.match(ttype):
        raise ToolDefinitionError(
            f"tools: a dict must be a server tool definition with a versioned 'type' such as {_EXAMPLE}; "
            f"got type={ttype!r}. Pass a Python function (or @tool) for your own tools."
        )
    name = item.get("name")
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.match(name):
        raise ToolDefinitionError(
            f"tools: server tool {ttype!r} needs a 'name' matching {TOOL_NAME_PATTERN.pattern} "
            f"(got {name!r}), e.g. {_EXAMPLE}"
        )
    check_unique(name, taken)
    return dict(item)
