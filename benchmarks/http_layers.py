"""CPU per HTTP round trip for each HTTP stack, at 1, 64 and 256 requests in flight.

    python -m benchmarks.http_layers [--requests 3000] [--rounds 3] [--in-flight 1,64,256]

One small ``POST /v1/messages`` (the local server's echo policy in a separate process, 0 ms latency),
keep-alive, JSON body decoded; ``time.process_time()`` per request in this process, with ``N`` tasks
each sending requests one after another (``N`` in flight). Stacks, interleaved per round (median over
rounds):

- ``raw aiohttp``: ``aiohttp.ClientSession.post`` + ``json.loads`` (the baseline);
- ``raw httpx2``: ``httpx2.AsyncClient.post`` + ``.json()`` on httpx2's stock transport (httpcore2);
- ``httpx2 over agentkit's aiohttp transport``: the same client over ``AiohttpTransport``;
- ``agentkit Client, httpx`` / ``agentkit Client, aiohttp``: what ``agentkit.Client`` does per request on
  each stack (build, send, capped decoded read, JSON), without the Message model;
- ``httpx2.AsyncClient.send, in-memory transport``: the same answer replayed by a transport that does no
  I/O: what httpx2's client layer alone costs (request and response objects, auth and redirect flow,
  cookies, stream wrappers). ``raw aiohttp`` plus this row is the least any stack that sends through
  ``AsyncClient.send`` can cost (a lower bound: measured in a hot loop, with warm caches);
- ``bare asyncio streams`` (1 in flight only): hand-written HTTP/1.1 over one connection (a floor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

BODY = json.dumps(
    {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]}
).encode()
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
LIMIT = 1000
IN_MEMORY = "httpx2.AsyncClient.send, in-memory transport (no I/O)"
FLOOR = "floor for any stack through AsyncClient.send (raw aiohttp + the row above)"


async def _stacks(base_url: str) -> tuple[dict[str, Callable[[], Awaitable[object]]], list[Any]]:
    import aiohttp

    from agentkit import Client
    from agentkit.transports import AiohttpTransport

    from .httpx2_send import Replay, send_cheapest, wire_headers

    url = base_url + "/v1/messages"
    limits = httpx2.Limits(max_connections=LIMIT, max_keepalive_connections=LIMIT)
    plain = httpx2.AsyncClient(limits=limits)
    over_aiohttp = httpx2.AsyncClient(transport=AiohttpTransport(max_connections=LIMIT), limits=limits)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=LIMIT, limit_per_host=0))
    ours = Client(api_key="sk-test", base_url=base_url, max_connections=LIMIT)
    ours_aiohttp = Client(api_key="sk-test", base_url=base_url, max_connections=LIMIT, http="aiohttp")

    async def raw_aiohttp() -> object:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            return json.loads(await response.read())

    async def via(http: httpx2.AsyncClient) -> object:
        return (await http.post(url, content=BODY, headers=HEADERS)).json()

    # The same answer, replayed in memory: what httpx2.AsyncClient.send costs with no I/O at all, the
    # least any stack that sends through it (issue 19, item 1) adds to raw aiohttp.
    async with session.post(url, data=BODY, headers=HEADERS) as sample:
        replay_headers, replay_body = list(sample.raw_headers), await sample.read()

    in_memory = httpx2.AsyncClient(transport=Replay(replay_headers, replay_body))
    parsed = httpx2.URL(url)
    wire = wire_headers(parsed, HEADERS, BODY)

    def send_in_memory() -> Awaitable[object]:
        return send_cheapest(in_memory, parsed, wire, BODY)

    def agentkit_send(client: Client) -> Callable[[], Awaitable[object]]:
        body = json.loads(BODY)

        async def call() -> object:
            return (await client._post_json("/v1/messages", body, None, None))[1]

        return call

    stacks: dict[str, Callable[[], Awaitable[object]]] = {
        "raw aiohttp": raw_aiohttp,
        "raw httpx2 (stock transport)": lambda: via(plain),
        "httpx2 over agentkit's AiohttpTransport": lambda: via(over_aiohttp),
        "agentkit Client, httpx": agentkit_send(ours),
        "agentkit Client, aiohttp": agentkit_send(ours_aiohttp),
        IN_MEMORY: send_in_memory,
    }
    return stacks, [plain, over_aiohttp, session, ours, ours_aiohttp, in_memory]


async def _bare(base_url: str, requests: int) -> float:
    host, port = base_url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        + f"content-length: {len(BODY)}\r\n\r\n"
    ).encode()

    async def once() -> object:
        writer.write(head + BODY)
        response_head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in response_head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return json.loads(await reader.readexactly(length))

    for _ in range(50):
        await once()
    started = time.process_time()
    for _ in range(requests):
        await once()
    elapsed = time.process_time() - started
    writer.close()
    return elapsed / requests * 1e6


async def _load(call: Callable[[], Awaitable[object]], in_flight: int, requests: int) -> float:
    """CPU microseconds per request with ``in_flight`` tasks sharing ``requests`` requests."""
    each = max(1, requests // in_flight)

    async def worker() -> None:
        for _ in range(each):
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return (time.process_time() - started) / (each * in_flight) * 1e6


async def measure(base_url: str, in_flight: list[int], requests: int, rounds: int) -> dict[str, Any]:
    """``{str(N): {stack: [us per request, one per round]}}`` plus ``bare`` at 1 in flight."""
    stacks, closers = await _stacks(base_url)
    out: dict[str, Any] = {}
    try:
        for n in in_flight:
            samples: dict[str, list[float]] = {name: [] for name in stacks}
            for call in stacks.values():  # warm-up: fill the pools to N connections, caches
                await _load(call, n, max(2 * n, 100))
            for _ in range(rounds):
                for name, call in stacks.items():
                    samples[name].append(await _load(call, n, requests))
            out[str(n)] = samples
        out["bare"] = [await _bare(base_url, requests) for _ in range(rounds)]
    finally:
        await close_all(closers)
    return out


async def close_all(closers: list[Any]) -> None:
    """Close what ``_stacks`` opened (httpx2 and agentkit clients, the aiohttp session)."""
    for closer in closers:
        close = getattr(closer, "aclose", None) or closer.close
        await close()


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| in flight | stack | CPU per request (us) | x raw aiohttp |",
        "|---|---|---|---|",
    ]
    for n, samples in result.items():
        if n == "bare":
            continue
        base = statistics.median(samples["raw aiohttp"])
        rows = dict(samples)
        if IN_MEMORY in samples:  # per round: raw aiohttp + httpx2's own cost, the floor under item 1
            rows[FLOOR] = [a + b for a, b in zip(samples["raw aiohttp"], samples[IN_MEMORY], strict=True)]
        for name, values in rows.items():
            median = statistics.median(values)
            lines.append(
                f"| {n} | {name} | {median:.0f} ({min(values):.0f}-{max(values):.0f}) | {median / base:.2f} |"
            )
    bare = result.get("bare")
    if bare:
        lines.append(f"| 1 | bare asyncio streams (floor) | {statistics.median(bare):.0f} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .run import Server

    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_layers")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", default="1,64,256")
    args = parser.parse_args(argv)
    in_flight = [int(n) for n in args.in_flight.split(",")]
    srv = Server(latency=0.0, tool_turns=1, parallel=1)
    try:
        result = asyncio.run(measure(srv.url, in_flight, args.requests, args.rounds))
    finally:
        srv.stop()
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
