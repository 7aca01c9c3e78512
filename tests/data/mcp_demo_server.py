"""A real MCP server for the tests (the official SDK's MCPServer), run in process, over stdio
(``python mcp_demo_server.py``) or over streamable HTTP (``make_server().streamable_http_app()``).

Its tools cover what a result can hold (text, structured content, images, audio, resource links,
embedded text and PDF resources, tool errors) and the faults a client must survive (a hang, a crash).
"""

from __future__ import annotations

import base64
import os
import sys

import anyio
import mcp_types as mt
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPgPAAEDAQAIicLsAAAAAElFTkSuQmCC"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class Point(BaseModel):
    """A point."""

    x: int = Field(description="Across.")
    y: int = Field(description="Up.")


class Weather(BaseModel):
    city: str
    celsius: float


def make_server(name: str = "demo") -> MCPServer:
    server = MCPServer(name)
    started = anyio.Event()

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def distance(p: Point, q: Point) -> float:
        """Manhattan distance between two points."""
        return float(abs(p.x - q.x) + abs(p.y - q.y))

    @server.tool()
    def weather(city: str) -> Weather:
        """Structured weather."""
        return Weather(city=city, celsius=21.5)

    @server.tool(structured_output=False)
    def picture() -> list[mt.ContentBlock]:
        """An image, a sound and a link."""
        return [
            mt.ImageContent(type="image", data=base64.b64encode(PNG).decode(), mime_type="image/png"),
            mt.AudioContent(type="audio", data=base64.b64encode(b"RIFF....").decode(), mime_type="audio/wav"),
            mt.ResourceLink(type="resource_link", name="report", uri="file:///tmp/report.txt"),
        ]

    @server.tool(structured_output=False)
    def documents() -> list[mt.ContentBlock]:
        """An embedded PDF and an embedded text resource."""
        pdf = mt.BlobResourceContents(
            uri="file:///tmp/a.pdf", mime_type="application/pdf", blob=base64.b64encode(PDF).decode()
        )
        text = mt.TextResourceContents(uri="file:///tmp/notes.txt", mime_type="text/plain", text="some notes")
        return [
            mt.EmbeddedResource(type="resource", resource=pdf),
            mt.EmbeddedResource(type="resource", resource=text),
        ]

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails."""
        raise ToolError(f"refused: {reason}")

    @server.tool()
    def measure() -> mt.CallToolResult:
        """Text that does not repeat the structured content."""
        return mt.CallToolResult(
            content=[mt.TextContent(type="text", text="measured")], structured_content={"cm": 12}
        )

    @server.tool()
    async def hang() -> str:
        """Never answers."""
        started.set()
        await anyio.sleep(3600)
        return "late"

    arrived: list[None] = []
    everyone = anyio.Event()

    @server.tool()
    async def rendezvous(party: int) -> str:
        """Answers once `party` calls are waiting at once (calls made one after another never meet)."""
        arrived.append(None)
        if len(arrived) >= party:
            everyone.set()
        await everyone.wait()
        return f"met {len(arrived)}"

    @server.tool()
    def garble() -> str:
        """Answers "after garbage" (mcp_garbling_proxy.py puts invalid JSON-RPC before this answer)."""
        return "after garbage"

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def die() -> str:
        """Kills the server process mid-call."""
        sys.stdout.flush()
        os._exit(3)

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Adds the tool `echo` and says the tool list changed."""
        server.add_tool(lambda text: text, name="echo", description="Echo the text.")
        await ctx.notify_tools_changed()
        return "added echo"

    @server.tool()
    def grow_quietly() -> str:
        """Adds the tool `shout` without telling anyone."""
        server.add_tool(lambda text: text.upper(), name="shout", description="Shout the text.")
        return "added shout"

    server.hang_started = started  # type: ignore[attr-defined]
    return server


if __name__ == "__main__":
    make_server().run("stdio")
