"""``Toolset``: an ordered set of tools (``@tool`` functions, server tools, tool providers) and its
dispatcher."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import ModuleType
from typing import Any, cast

from ._context import RunContext
from ._exceptions import ToolDefinitionError
from ._provider import ProvidedTool, ToolProvider, open_providers, refresh_providers
from ._server_tools import check_unique, is_server_tool, server_tool_definition
from ._tool import (
    _UNBOUND,
    CacheControlArg,
    Tool,
    _cache_control_dict,
    _json_type,
    _outcome,
    _unpack,
    _where,
    tool,
)
from ._tool_run import ToolOutcome, ToolStatus
from .types import ToolResultBlock, ToolUseBlock

__all__ = ["Toolset"]


class Toolset:
    """An ordered set of tools with unique names: their definitions and a dispatcher.

    ``Toolset([get_weather, search])`` (plain callables are decorated on the fly),
    :meth:`from_module`, :meth:`from_object`. Tool providers (``agentkit.mcp.MCPToolset``) may stand
    beside the tools: their definitions are fetched when a run starts and kept current per request.
    """

    def __init__(
        self,
        tools: Iterable[
            Tool[..., Any] | Callable[..., Any] | Toolset | ToolProvider | Mapping[str, Any]
        ] = (),
    ) -> None:
        self._tools: dict[str, Tool[..., Any]] = {}
        self._server: dict[str, dict[str, Any]] = {}  # server tool definitions, by name
        self._order: list[str] = []  # every name, as given
        self._definitions: dict[str, list[dict[str, Any]]] = {}
        self._providers: list[ToolProvider] = []
        for item in tools:
            if isinstance(item, ToolProvider) and not isinstance(item, Tool):
                self._providers.append(item)
                continue
            if isinstance(item, Toolset):
                self._providers.extend(p for p in item._providers if p not in self._providers)
            for entry in [*item, *item.server_tools] if isinstance(item, Toolset) else (item,):
                self._add(entry)

    @property
    def server_tools(self) -> list[dict[str, Any]]:
        """The server tool definitions (``{"type": "web_search_20250305", "name": ...}``), in order."""
        return [dict(d) for d in self._server.values()]

    def _add(self, item: Tool[..., Any] | Callable[..., Any] | Mapping[str, Any]) -> None:
        if is_server_tool(item):
            definition = server_tool_definition(cast(Mapping[str, Any], item), (*self._tools, *self._server))
            self._server[definition["name"]] = definition
            self._order.append(definition["name"])
            return
        entry = item if isinstance(item, Tool) else tool(cast(Callable[..., Any], item))
        check_unique(entry.name, self._server)
        if entry._receiver == "self" and entry._bound is _UNBOUND:
            raise ToolDefinitionError(
                f"{_where(entry._fn)}: is a method; add it from an instance (obj.{entry._attr_name}) "
                "or use Toolset.from_object(obj)."
            )
        existing = self._tools.get(entry.name)
        if existing is not None and existing is not entry:
            raise ToolDefinitionError(
                f"duplicate tool name {entry.name!r} ({_where(existing._fn)} and {_where(entry._fn)}); "
                "tool names must be unique, rename one with @tool(name=...)."
            )
        if entry.name not in self._tools:
            self._order.append(entry.name)
        self._tools[entry.name] = entry

    @classmethod
    def from_module(cls, module: ModuleType) -> Toolset:
        """All :class:`Tool` objects defined at the top level of ``module``, in definition order."""
        found: list[Tool[..., Any]] = []
        for value in vars(module).values():
            if isinstance(value, Tool) and value._receiver is None and not any(value is t for t in found):
                found.append(value)
        return cls(found)

    @classmethod
    def from_object(cls, obj: object) -> Toolset:
        """The decorated methods of ``obj`` (bound to it), plus tools stored on the instance."""
        names: dict[str, None] = {}
        for klass in reversed(type(obj).__mro__):
            for attr, value in vars(klass).items():
                inner = value.__func__ if isinstance(value, staticmethod | classmethod) else value
                if isinstance(inner, Tool):
                    names[attr] = None
        found: list[Tool[..., Any]] = [getattr(obj, attr) for attr in names]
        instance_vars = getattr(obj, "__dict__", {})
        found += [v for k, v in instance_vars.items() if isinstance(v, Tool) and k not in names]
        return cls(found)

    def get(self, name: str) -> Tool[..., Any] | None:
        """The ``@tool`` called ``name``, or ``None`` (see :meth:`lookup` for provided tools too)."""
        return self._tools.get(name)

    def lookup(self, name: str) -> Tool[..., Any] | ProvidedTool | None:
        """The tool called ``name``, a ``@tool`` or one of a provider's, or ``None``."""
        found = self._tools.get(name)
        if found is not None or not self._providers:
            return found
        return next((t for p in self._providers if (t := p.get(name)) is not None), None)

    @property
    def providers(self) -> list[ToolProvider]:
        """The tool providers (e.g. MCP servers), in order."""
        return list(self._providers)

    def running(self) -> AbstractAsyncContextManager[None]:
        """Open every provider not open yet, for the block's lifetime (the agent does this per run)."""
        return open_providers(self._providers, self.refresh)

    async def refresh(self) -> None:
        """Bring the providers' definitions up to date; a name given twice raises ToolDefinitionError."""
        await refresh_providers(self._providers, self._tools)

    def __getitem__(self, name: str) -> Tool[..., Any]:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    @property
    def names(self) -> list[str]:
        """Tool names, in order (the providers' current ones last)."""
        return [*self._tools, *(d["name"] for p in self._providers for d in p.definitions())]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool[..., Any]]:
        return iter(self._tools.values())

    def __repr__(self) -> str:
        return f"Toolset({self.names!r})"

    def definitions(self, cache_control: CacheControlArg = False) -> list[dict[str, Any]]:
        """The wire definitions of all tools (computed once, then cached).

        ``cache_control`` (``True`` or a dict) puts a prompt-caching breakpoint on the LAST definition,
        so the whole tool list is cached. Treat the returned dicts as read-only.
        """
        marker = _cache_control_dict(cache_control)
        key = json.dumps(marker, sort_keys=True)
        cached = self._definitions.get(key)
        if cached is None:
            tools, server = self._tools, self._server
            cached = [tools[n].definition() if n in tools else dict(server[n]) for n in self._order]
            if marker and cached and not self._providers:
                cached[-1] = {**cached[-1], "cache_control": dict(marker)}
            self._definitions[key] = cached
        if not self._providers:
            return list(cached)
        every = [*cached, *(d for p in self._providers for d in p.definitions())]
        if marker and every:
            every[-1] = {**every[-1], "cache_control": dict(marker)}
        return every

    async def run(
        self,
        tool_use: ToolUseBlock | Mapping[str, Any],
        ctx: RunContext[Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> ToolResultBlock:
        """Run the tool the call names; an unknown name gives an error result listing the available tools.
        ``timeout`` applies to tools without a timeout of their own."""
        return (await self.execute(tool_use, ctx, timeout=timeout)).result

    async def execute(
        self,
        tool_use: ToolUseBlock | Mapping[str, Any],
        ctx: RunContext[Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> ToolOutcome:
        """:meth:`run`, returning the result with its :class:`ToolStatus` (see :meth:`Tool.execute`)."""
        tool_use_id, name, raw_input = _unpack(tool_use)
        found = self._tools.get(name)
        if found is None:
            for provider in self._providers:
                if provider.get(name) is not None:
                    if not isinstance(raw_input, Mapping):
                        got = _json_type(raw_input)
                        text = f"Invalid input for {name}: expected a JSON object, got {got}"
                        return _outcome(tool_use_id, text, ToolStatus.INVALID_INPUT)
                    call = tool_use if isinstance(tool_use, ToolUseBlock) else None
                    call = call or ToolUseBlock(id=tool_use_id, name=name, input=raw_input)
                    return await provider.execute(call, ctx, timeout=timeout)
            available = ", ".join(self.names) or "(none)"
            return _outcome(
                tool_use_id, f"Unknown tool {name!r}. Available tools: {available}", ToolStatus.UNKNOWN_TOOL
            )
        return await found.execute(tool_use, ctx, timeout=timeout)
