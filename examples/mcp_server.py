"""Tools from an MCP server: this file is both a small MCP server (the official SDK's ``MCPServer``) and an
agent that uses it through ``agentkit.mcp.MCPToolset``, beside an ordinary ``@tool`` function.

    python examples/mcp_server.py                   # the agent, starting the server over stdio
    python examples/mcp_server.py --serve           # just the MCP server, on stdin/stdout
    agentkit run "Convert 21.5 celsius to fahrenheit" --mcp "python examples/mcp_server.py --serve"
    agentkit tools show --mcp "python examples/mcp_server.py --serve"

Needs the ``mcp`` extra (``pip install -e '.[mcp]'``). Offline (no key) it runs against the demo model.
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer

from agentkit import Agent, tool
from agentkit.mcp import MCPToolset
from agentkit.testing import demo_client

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
PROMPT = "Convert 21.5 celsius to fahrenheit, and what is the length of the word 'temperature'?"

server = MCPServer("units")


@server.tool()
def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees celsius to fahrenheit."""
    return round(celsius * 9 / 5 + 32, 2)


@server.tool()
def kilometres_to_miles(kilometres: float) -> float:
    """Convert a distance from kilometres to miles."""
    return round(kilometres / 1.609344, 3)


@tool
def word_length(word: str) -> int:
    """The length of a word, in characters.

    Args:
        word: The word to measure.
    """
    return len(word)


HERE = os.path.abspath(__file__)


async def main() -> None:
    units = MCPToolset(stdio=[sys.executable, HERE, "--serve"], prefix="units_")
    with demo_client() as demo:
        agent = Agent(demo.client, model=MODEL, tools=[word_length, units], max_tokens=1024)
        async with units:  # one server process for every run inside the block
            print("tools:", ", ".join(agent.toolset.names))
            result = await agent.run(PROMPT)
        for message in result.messages:
            for block in message.content if isinstance(message.content, list) else ():
                if block.type == "tool_use":
                    print(f"→ {block.name}({block.input})")
                elif block.type == "tool_result":
                    print(f"← {block.content}")
        print("answer:", result.text)
        await demo.client.aclose()


if __name__ == "__main__":
    if "--serve" in sys.argv[1:]:
        server.run("stdio")
    else:
        anyio.run(main)
