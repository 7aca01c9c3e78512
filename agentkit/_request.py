"""The agent's request body: the parts fixed for the agent (tools, system, sampling) built once, and the
history and ``tool_choice`` of each turn added per request, with prompt-caching breakpoints.

The API allows at most 4 ``cache_control`` breakpoints per request (wire reference §6; more is a 400).
Every one is counted — the caller's own (on a tool, a system block, a message block or a block inside a
``tool_result``) and the up to 3 that ``cache=True`` adds — and when there are more than 4 the least
useful are dropped from the body (never from the stored history): first agentkit's own on the tools,
then on the system prompt, then on the last turn, then the caller's earliest (a later breakpoint caches
a longer prefix). :func:`body` returns which were dropped, for the ``guard.cache_breakpoints`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from .types import TextBlock, to_wire

_EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # wire reference §6: "At most 4 breakpoints per request"

#: A breakpoint's place in the body: ("tools", i) | ("system", j) | ("messages", m, k[, n]).
_Path = tuple[Any, ...]


class RequestBuilder:
    """Builds each request of an agent's runs."""

    __slots__ = ("_auto", "_dynamic", "_head", "_middle", "_tail", "cache", "has_tools")

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
        self._auto: list[_Path] = []  # breakpoints agentkit added to the fixed part
        self._middle: dict[str, Any] = {}  # between the messages and tool_choice, as the API documents it
        system_wire = _system(system, cache, self._auto)
        if tool_defs:
            if cache and "cache_control" not in tool_defs[-1]:
                tool_defs = [*tool_defs[:-1], {**tool_defs[-1], "cache_control": dict(_EPHEMERAL)}]
                self._auto.insert(0, ("tools", len(tool_defs) - 1))
            self._middle["tools"] = tool_defs
        if system_wire is not None:
            self._middle["system"] = system_wire
        self._tail: dict[str, Any] = {"thinking": thinking} if thinking is not None else {}
        self._tail.update(sampling)

    def body(
        self, messages: list[dict[str, Any]], tool_choice: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[str]]:
        """The JSON body of the next request (the stored history is not modified), and the places of
        the cache breakpoints dropped to keep 4 (``"system.0"``, ``"messages.3.content.1"``...)."""
        model, max_tokens = self._head
        auto = list(self._auto)
        if self.cache:
            messages, last = _with_last_turn_breakpoint(messages)
            if last is not None:
                auto.append(last)
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
        for key in ("system", "tools"):  # the API documents system before tools
            if key in self._middle:
                body[key] = self._middle[key]
        has_tools = self.has_tools
        if self._dynamic is not None:  # tool providers: the list of this request
            tool_defs = self._dynamic()
            has_tools = bool(tool_defs)
            if tool_defs:
                if self.cache and "cache_control" not in tool_defs[-1]:
                    tool_defs = [*tool_defs[:-1], {**tool_defs[-1], "cache_control": dict(_EPHEMERAL)}]
                    auto.insert(0, ("tools", len(tool_defs) - 1))
                body["tools"] = tool_defs
        if has_tools and tool_choice is not None:
            body["tool_choice"] = tool_choice
        if self._tail:
            body.update(self._tail)
        dropped = _limit_breakpoints(body, auto)
        return body, [".".join(str(p) for p in path) for path in dropped]


def _system(
    system: str | Sequence[Mapping[str, Any] | TextBlock] | None, cache: bool, auto: list[_Path]
) -> Any:
    if system is None:
        return None
    if isinstance(system, str):
        if not cache:
            return system
        auto.append(("system", 0))
        return [{"type": "text", "text": system, "cache_control": dict(_EPHEMERAL)}]
    blocks = [cast(dict[str, Any], to_wire(b)) for b in system]
    if cache and blocks and "cache_control" not in blocks[-1]:
        blocks[-1] = {**blocks[-1], "cache_control": dict(_EPHEMERAL)}
        auto.append(("system", len(blocks) - 1))
    return blocks


def _with_last_turn_breakpoint(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], _Path | None]:
    """A copy of the messages whose last block carries a cache breakpoint (the stored turn is untouched),
    and that breakpoint's path (None when the block already had the caller's own)."""
    if not messages:
        return messages, None
    last = messages[-1]
    content = last["content"]
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    )
    for i in range(len(blocks) - 1, -1, -1):
        if blocks[i].get("type") not in ("thinking", "redacted_thinking"):
            if blocks[i].get("cache_control") is not None:
                return messages, None
            blocks[i] = {**blocks[i], "cache_control": dict(_EPHEMERAL)}
            path = ("messages", len(messages) - 1, "content", i)
            return [*messages[:-1], {**last, "content": blocks}], path
    return messages, None


def _breakpoints(body: Mapping[str, Any]) -> list[_Path]:
    """Every ``cache_control`` in the body, in prefix order (tools, system, messages)."""
    found: list[_Path] = []
    for key in ("tools", "system"):
        items = body.get(key)
        if isinstance(items, list):
            found += [(key, i) for i, b in enumerate(items) if isinstance(b, dict) and b.get("cache_control")]
    for m, message in enumerate(body["messages"]):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for k, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            inner = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(inner, list):
                found += [
                    ("messages", m, "content", k, "content", n)
                    for n, b in enumerate(inner)
                    if isinstance(b, dict) and b.get("cache_control")
                ]
            if block.get("cache_control"):
                found.append(("messages", m, "content", k))
    return found


def _limit_breakpoints(body: dict[str, Any], auto: list[_Path]) -> list[_Path]:
    """Drop breakpoints from ``body`` (copying what it changes) until at most 4 are left."""
    found = _breakpoints(body)
    excess = len(found) - MAX_BREAKPOINTS
    if excess <= 0:
        return []
    ours = [p for p in auto if p in found]  # in the order they go: tools, system, last turn
    theirs = [p for p in found if p not in ours]
    dropped = (ours + theirs)[:excess]
    for path in dropped:
        _strip(body, path)
    return sorted(dropped, key=found.index)


def _strip(node: dict[str, Any], path: _Path) -> None:
    """Remove ``cache_control`` at ``path``, copying each container on the way (shared with history)."""
    parent: Any = node
    for part in path[:-1]:
        child = parent[part]
        child = list(child) if isinstance(child, list) else dict(child)
        parent[part] = child
        parent = child
    block = dict(parent[path[-1]])
    block.pop("cache_control", None)
    parent[path[-1]] = block
