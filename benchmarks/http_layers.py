"""CPU per HTTP round trip, layer by layer: why agentkit has its own transport.

    python -m benchmarks.http_layers [--requests 3000] [--rounds 3]

One small ``POST /v1/messages`` (the local server's echo policy, separate process, 0 ms latency),
sequential, keep-alive, JSON body decoded; ``time.process_time()`` per request in this process.
Stacks, interleaved per round (median over rounds):

- ``httpx2``: ``httpx2.AsyncClient().post`` with its default transport (httpcore);
- ``httpx2 + agentkit transport``: the same client over ``agentkit._transport._Transport``;
- ``agentkit Client._send``: what ``agentkit.Client`` does on its own pool (the transport without
  httpx2's client layer);
- ``httpx2 client layer only``: ``AsyncClient.post`` over ``httpx2.MockTransport`` (no network);
- ``bare asyncio streams``: hand-written HTTP/1.1 over ``asyncio.open_connection`` (a floor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import httpx2

from agentkit import Client
from agentkit._transport import _Transport

from .run import Server

BODY = json.dumps(
    {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]}
).encode()
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"}


async def _stacks(base_url: str) -> dict[str, Callable[[], Awaitable[object]]]:
    url = base_url + "/v1/messages"
    plain = httpx2.AsyncClient()
    ours = httpx2.AsyncClient(transport=_Transport())
    mock = httpx2.AsyncClient(
        transport=httpx2.MockTransport(
            lambda _request: httpx2.Response(
                200, content=b'{"ok":1}', headers={"content-type": "application/json"}
            )
        )
    )
    client = Client(api_key="sk-test", base_url=base_url)
    host, port = base_url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        + f"content-length: {len(BODY)}\r\n\r\n"
    ).encode()

    async def bare() -> object:
        writer.write(head + BODY)
        response_head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in response_head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return json.loads(await reader.readexactly(length))

    async def via(http: httpx2.AsyncClient) -> object:
        return (await http.post(url, content=BODY, headers=HEADERS)).json()

    async def agentkit_send() -> object:
        return (await client._send("/v1/messages", BODY, dict(HEADERS), None, stream=False)).json()

    return {
        "httpx2": lambda: via(plain),
        "httpx2 + agentkit transport": lambda: via(ours),
        "agentkit Client._send": agentkit_send,
        "httpx2 client layer only (MockTransport)": lambda: via(mock),
        "bare asyncio streams": bare,
    }


async def _measure(base_url: str, requests: int, rounds: int) -> dict[str, list[float]]:
    stacks = await _stacks(base_url)
    samples: dict[str, list[float]] = {name: [] for name in stacks}
    for call in stacks.values():  # warm-up: connections, caches
        for _ in range(100):
            await call()
    for _ in range(rounds):
        for name, call in stacks.items():
            started = time.process_time()
            for _ in range(requests):
                await call()
            samples[name].append((time.process_time() - started) / requests * 1e6)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_layers")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    srv = Server(latency=0.0, tool_turns=1, parallel=1)
    try:
        samples = asyncio.run(_measure(srv.url, args.requests, args.rounds))
    finally:
        srv.stop()
    base = statistics.median(samples["httpx2"])
    print("| stack | CPU per request (us) | x httpx2 |\n|---|---|---|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} ({min(values):.0f}-{max(values):.0f}) | {median / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
