"""The agent's request body: the parts fixed for the agent (tools, system, sampling) built once, and the
history and ``tool_choice`` of each turn added per request, with prompt-caching breakpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from .types import TextBlock, to_wire

_EPHEMERAL = {"type": "ephemeral"}


class RequestBuilder:
    """Builds each request of an agent's runs."""

    __slots__ = ("_dynamic", "_head", "_middle", "_tail", "cache", "has_tools")

    def __init__(
        self,
        *,
        model: str,
        max_tokens: int,
        tool_defs: list[dict[str, Any]],
        system: str | Sequence[Mapping[str, Any] | TextBlock] | None,
        thinking: dict[str, Any] | None,
        sampling: dict[str, Any],
        cache: bool,
        dynamic_tools: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        """``dynamic_tools``, when given, returns the tool definitions of each request (tool providers'
        lists may change between requests); ``tool_defs`` is then unused."""
        self.cache = cache
        self._dynamic = dynamic_tools
        self.has_tools = bool(tool_defs)
        self._head = (model, max_tokens)
        self._middle: dict[str, Any] = {}  # between the messages and tool_choice, as the API documents it
        system_wire = _system(system, cache)
        if system_wire is not None:
            self._middle["system"] = system_wire
        if tool_defs:
            if cache:
                tool_defs = [*tool_defs[:-1], {**tool_defs[-1], "cache_control": dict(_EPHEMERAL)}]
            self._middle["tools"] = tool_defs
        self._tail: dict[str, Any] = {"thinking": thinking} if thinking is not None else {}
        self._tail.update(sampling)

    def body(self, messages: list[dict[str, Any]], tool_choice: dict[str, Any] | None) -> dict[str, Any]:
        """The JSON body of the next request (the stored history is not modified)."""
        model, max_tokens = self._head
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": _with_last_turn_breakpoint(messages) if self.cache else messages,
            **self._middle,
        }
        has_tools = self.has_tools
        if self._dynamic is not None:
            tool_defs = self._dynamic()
            has_tools = bool(tool_defs)
            if tool_defs:
                if self.cache:
                    tool_defs = [*tool_defs[:-1], {**tool_defs[-1], "cache_control": dict(_EPHEMERAL)}]
                body["tools"] = tool_defs
        if has_tools and tool_choice is not None:
            body["tool_choice"] = tool_choice
        if self._tail:
            body.update(self._tail)
        return body


def _system(system: str | Sequence[Mapping[str, Any] | TextBlock] | None, cache: bool) -> Any:
    if system is None:
        return None
    if isinstance(system, str):
        return [{"type": "text", "text": system, "cache_control": dict(_EPHEMERAL)}] if cache else system
    blocks = [cast(dict[str, Any], to_wire(b)) for b in system]
    if cache and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": dict(_EPHEMERAL)}
    return blocks


def _with_last_turn_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of the messages whose last block carries a cache breakpoint (the stored turn is untouched)."""
    last = messages[-1]
    content = last["content"]
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    )
    for i in range(len(blocks) - 1, -1, -1):
        if blocks[i].get("type") not in ("thinking", "redacted_thinking"):
            blocks[i] = {**blocks[i], "cache_control": dict(_EPHEMERAL)}
            break
    return [*messages[:-1], {**last, "content": blocks}]
