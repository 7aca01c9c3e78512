"""What ``httpx2.AsyncClient.send`` costs by itself: a standalone reproduction for httpx2's maintainers.

    python -m benchmarks.httpx2_send [--requests 20000] [--top 25]

Only httpx2 is used (no agentkit, no network): a transport hands back a prepared 200 answer, so every
microsecond measured is httpx2's client layer (request and response models, headers, the auth and
redirect flow, cookies, timeouts, the stream wrappers and the decoding read). Two ways of building the
request are timed, best of 5 rounds:

- ``client.post(url, content=..., headers=...)``: the everyday call;
- ``client.send(Request(parsed_url, headers=... with Host and Content-Length, stream=ByteStream(...)))``:
  the cheapest request httpx2 accepts (what agentkit builds).

Then a cProfile of the cheap path, by own time. Raw aiohttp's whole round trip against a local server is
about 90-120 us of CPU per request at 64 in flight on the same machine (``benchmarks.http_layers``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from typing import Any

import httpx2

URL = "http://127.0.0.1:8000/v1/messages"
BODY = json.dumps({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}).encode()
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
ANSWER = json.dumps({"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "hi"}]}).encode()
ANSWER_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def send_cheapest(
    client: httpx2.AsyncClient, url: httpx2.URL, headers: dict[str, str], body: bytes
) -> Any:
    """POST ``body`` as the cheapest request httpx2 accepts (a parsed URL, ``headers`` holding Host and
    Content-Length, ``stream=``; agentkit builds its requests so) and return the answer's JSON."""
    request = httpx2.Request("POST", url, headers=headers, stream=httpx2.ByteStream(body))
    request.read()
    response = await client.send(request, stream=True)
    try:
        return json.loads(await response.aread())
    finally:
        await response.aclose()


def wire_headers(url: httpx2.URL, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """``headers`` with Host and Content-Length, as agentkit sends them (httpx2 then adds none)."""
    return {"host": url.netloc.decode(), **headers, "content-length": str(len(body))}


class Replay(httpx2.AsyncBaseTransport):
    """Answers every request with the same 200 response from memory: httpx2's client layer, no I/O."""

    def __init__(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._headers, self._body = headers, body

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=self._headers, stream=httpx2.ByteStream(self._body))


async def _main(requests: int, top: int) -> None:
    client = httpx2.AsyncClient(transport=Replay(ANSWER_HEADERS, ANSWER))
    parsed = httpx2.URL(URL)
    wire = wire_headers(parsed, HEADERS, BODY)

    async def everyday() -> None:
        response = await client.post(URL, content=BODY, headers=HEADERS)
        response.json()

    async def cheapest() -> None:
        await send_cheapest(client, parsed, wire, BODY)

    print(f"httpx2 {httpx2.__version__}, Python {sys.version.split()[0]}; CPU per request, best of 5:\n")
    for name, call in (("client.post", everyday), ("client.send, cheapest request", cheapest)):
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(requests):
                await call()
            best = min(best, (time.process_time() - started) / requests * 1e6)
        print(f"  {name:32s} {best:6.1f} us")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        await cheapest()
    profile.disable()
    print(f"\nWhere the cheapest path's time goes (cProfile, {requests} requests, by own time):\n")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(top)
    await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.httpx2_send")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    asyncio.run(_main(args.requests, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
