"""What ``agentkit.mcp.MCPToolset`` adds to the ``mcp`` client: per call, and to start a session.

    python -m benchmarks.mcp [--calls 300] [--rounds 7] [--starts 5]

- per call: sequential ``tools/call`` of a tiny tool (``add``), through ``MCPToolset.execute`` (input
  validation, the hand-off to the session task, the result mapping) and through a bare
  ``mcp.Client.call_tool`` on the same server and transport; in process and over stdio. Rounds
  alternate the two; each figure is the best round (the least disturbed on a shared machine), in
  microseconds per call (``time.perf_counter``). The overhead is the difference.
- session start: ``async with MCPToolset(stdio=...)`` (spawn, handshake, tools/list, the session task)
  against ``async with mcp.Client(...)`` + ``list_tools()``, best of ``--starts``, in milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from agentkit.mcp import MCPToolset
from agentkit.types import ToolUseBlock

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
sys.path.insert(0, str(DATA))
from mcp_demo_server import make_server  # noqa: E402

STDIO = [sys.executable, str(DATA / "mcp_demo_server.py")]


async def _per_call(calls: int, rounds: int, transport: str) -> tuple[float, float]:
    """Best µs/call through the bare client and through the toolset (same server, same transport)."""
    server = make_server()
    target = server if transport == "inproc" else StdioServerParameters(command=STDIO[0], args=STDIO[1:])
    toolset = MCPToolset(server=server) if transport == "inproc" else MCPToolset(stdio=STDIO)
    bare_best = wrapped_best = float("inf")
    async with Client(target, cache=None) as client, toolset:
        block = ToolUseBlock(id="toolu_bench", name="add", input={"a": 1, "b": 2})

        async def bare() -> None:
            await client.call_tool("add", {"a": 1, "b": 2})

        async def wrapped() -> None:
            outcome = await toolset.execute(block)
            assert outcome.result.content == "3", outcome

        for fn in (bare, wrapped):  # warm-up
            for _ in range(20):
                await fn()
        for _ in range(rounds):
            bare_best = min(bare_best, await _time(bare, calls))
            wrapped_best = min(wrapped_best, await _time(wrapped, calls))
    return bare_best, wrapped_best


async def _time(fn: Callable[[], Awaitable[None]], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - started) / n * 1e6


async def _starts(starts: int) -> tuple[float, float]:
    """Best ms to open a stdio session and list the tools: bare client, toolset."""
    params = StdioServerParameters(command=STDIO[0], args=STDIO[1:])
    bare_best = wrapped_best = float("inf")
    for _ in range(starts):
        started = time.perf_counter()
        async with Client(params, cache=None) as client:
            await client.list_tools()
            bare_best = min(bare_best, (time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        async with MCPToolset(stdio=STDIO) as toolset:
            assert toolset.definitions()
            wrapped_best = min(wrapped_best, (time.perf_counter() - started) * 1e3)
    return bare_best, wrapped_best


async def main(args: argparse.Namespace) -> None:
    print(f"| per call ({args.calls} calls, best of {args.rounds}) | mcp.Client | MCPToolset | overhead |")
    print("| --- | ---: | ---: | ---: |")
    for transport in ("inproc", "stdio"):
        bare, wrapped = await _per_call(args.calls, args.rounds, transport)
        print(f"| {transport} | {bare:.0f} µs | {wrapped:.0f} µs | {wrapped - bare:+.0f} µs |")
    bare_ms, wrapped_ms = await _starts(args.starts)
    print()
    print(f"| session start, stdio (best of {args.starts}) | mcp.Client + list_tools | MCPToolset |")
    print("| --- | ---: | ---: |")
    print(f"| spawn + handshake + tools/list | {bare_ms:.0f} ms | {wrapped_ms:.0f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--starts", type=int, default=5)
    anyio.run(main, parser.parse_args())
