"""Tool providers: tools that come from elsewhere (an MCP server) and may change while a program runs.

A :class:`Toolset` holds providers beside its ``@tool`` functions. When a run starts the agent opens
each provider that is not open yet (for the run's lifetime) and, before each model request, asks the
toolset to :meth:`~ToolProvider.refresh`, so the request carries the current definitions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Protocol, runtime_checkable

from ._context import RunContext
from ._exceptions import ToolDefinitionError
from ._tool_run import ToolOutcome
from .types import ToolUseBlock

__all__ = ["ProvidedTool", "ToolProvider", "open_providers", "refresh_providers"]


@runtime_checkable
class ProvidedTool(Protocol):
    """What the approval gate needs of one provided tool."""

    name: str

    def needs_approval(self, input: Mapping[str, Any]) -> bool:
        """Whether a call with this input waits for a person's decision."""
        ...

    def check_input(self, input: Any) -> str | None:
        """None if the input is valid for the tool, else the error text."""
        ...


@runtime_checkable
class ToolProvider(Protocol):
    """A source of tools whose list is fetched at run start and may change (see the module docstring)."""

    def open_for_run(self) -> AbstractAsyncContextManager[None]:
        """Make the provider usable for one run: open it unless it is open already."""
        ...

    async def refresh(self) -> None:
        """Bring :meth:`definitions` up to date (cheap when nothing changed)."""
        ...

    def definitions(self) -> list[dict[str, Any]]:
        """The current wire definitions of the provided tools."""
        ...

    def get(self, name: str) -> ProvidedTool | None:
        """The provided tool called ``name`` (its wire name), or ``None``."""
        ...

    async def execute(
        self, tool_use: ToolUseBlock, ctx: RunContext[Any] | None = None, *, timeout: float | None = None
    ) -> ToolOutcome:
        """Run one call; never raises for anything the server or the model did wrong."""
        ...


@asynccontextmanager
async def open_providers(
    providers: Sequence[ToolProvider], refresh: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Each provider opened for the block (unless open already), then the definitions refreshed."""
    async with AsyncExitStack() as stack:
        for provider in providers:
            await stack.enter_async_context(provider.open_for_run())
        await refresh()
        yield


async def refresh_providers(providers: Sequence[ToolProvider], taken: Collection[str]) -> None:
    """Refresh each provider; a provided name already taken (by a tool or another provider) raises."""
    seen = set(taken)
    for provider in providers:
        await provider.refresh()
        for definition in provider.definitions():
            name = definition["name"]
            if name in seen:
                raise ToolDefinitionError(
                    f"duplicate tool name {name!r}: {provider!r} provides a tool whose name is already "
                    "taken; give the provider a name prefix (e.g. MCPToolset(..., prefix='srv_'))."
                )
            seen.add(name)
