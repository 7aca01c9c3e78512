"""Tools from any Model Context Protocol server: ``MCPToolset`` (install ``agentkit[mcp]``).

    from agentkit import Agent
    from agentkit.mcp import MCPToolset

    files = MCPToolset(stdio=["python", "-m", "my_server"], prefix="fs_")
    agent = Agent(model="claude-sonnet-4-6", tools=[files, my_tool])
"""

from __future__ import annotations

try:
    import mcp as _mcp  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agentkit.mcp needs the official MCP SDK (mcp >= 2): pip install 'agentkit[mcp]'"
    ) from exc

from ._session import MCPConnectionError, MCPProtocolError, MCPTimeoutError, MCPTransportError
from ._session import MCPError_ as MCPToolsetError
from ._toolset import DEFAULT_CALL_TIMEOUT, MCPTool, MCPToolset

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "MCPConnectionError",
    "MCPProtocolError",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolset",
    "MCPToolsetError",
    "MCPTransportError",
]
