"""A Client with a large ``max_connections`` spreads its requests over several stock httpx2 pools.

httpcore2's pool does work proportional to its size on every request; ``Client`` therefore splits a
large pool into a few ``httpx2.AsyncClient`` s (``agentkit._http.Pools``): a request goes to the first
pool with fewer than ``SPILL_AT`` requests in flight. What must hold: many concurrent requests really
land on different pools, connections are reused within each, sequential requests (from one task or
several) keep one connection, and the total stays ``max_connections``.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest

from agentkit import Client
from agentkit.testing import LocalServer

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"


def _open_connections(http: httpx2.AsyncClient) -> int:
    pool = http._transport._pool  # type: ignore[attr-defined]  # httpx2's own httpcore2 pool
    return len(pool.connections)


async def _create(client: Client) -> str:
    message = await client.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hello"}])
    return message.text


def _client(server: LocalServer, **options: Any) -> Client:
    return Client(api_key="sk-test", base_url=server.base_url, max_retries=0, **options)


async def test_concurrent_requests_spread_over_the_pools_and_each_reuses_its_connections() -> None:
    tasks, each = 80, 3  # 80 in flight at once (200 ms latency) > 2 x SPILL_AT
    with LocalServer(latency=0.2) as server:
        async with _client(server, max_connections=1024) as client:
            pools = client._pools.peek() if client._pools else None
            assert pools is not None and len(pools.clients) > 1
            shares = [c._transport._pool._max_connections for c in pools.clients]  # type: ignore[attr-defined]
            assert sum(shares) == 1024
            texts: list[str] = []

            async def run() -> None:
                for _ in range(each):
                    texts.append(await _create(client))

            async with anyio.create_task_group() as tg:
                for _ in range(tasks):
                    tg.start_soon(run)
            used = [_open_connections(c) for c in pools.clients]
            assert pools._busy == [0] * len(pools.clients)  # every response closed counted done
    assert len(texts) == tasks * each
    assert server.requests_received == tasks * each
    assert sum(1 for n in used if n) >= 3, used  # spread: several pools hold connections
    # reused: far from one connection per request (a task's next request may go to another pool as the
    # load shifts, so a few more than the peak in flight)
    assert server.connections_accepted == sum(used) <= 2 * tasks < tasks * each


async def test_sequential_requests_keep_one_connection_on_a_split_pool() -> None:
    with LocalServer() as server:
        async with _client(server, max_connections=1024) as client:
            for _ in range(4):
                await _create(client)
            for _ in range(3):  # each from a task of its own, one after the other
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_create, client)
            async with client.stream(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hello"}]
            ) as stream:
                await stream.final_message()
    assert (server.requests_received, server.connections_accepted) == (8, 1)


async def test_a_small_pool_or_a_given_transport_is_not_split() -> None:
    with LocalServer() as server:
        async with _client(server, max_connections=100) as small:
            await _create(small)
            pools = small._pools.peek() if small._pools else None
            assert pools is not None and len(pools.clients) == 1
        transport = httpx2.AsyncHTTPTransport()
        async with _client(server, max_connections=1024, transport=transport) as given:
            await _create(given)
            pools = given._pools.peek() if given._pools else None
            assert pools is not None and len(pools.clients) == 1
            assert given._http._transport is transport  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("max_connections", "pools", "largest"), [(256, 8, 32), (1000, 31, 33), (2100, 64, 33)]
)
async def test_a_split_pool_is_pools_of_about_32_connections(
    max_connections: int, pools: int, largest: int
) -> None:
    """Small pools: httpcore2's per-request cost grows with a pool's size (2,000 concurrent runs: 38 s on
    8 pools of 262, 21 s on 64 of 33; benchmarks/README.md, round 5)."""
    async with Client(
        api_key="sk-test", base_url="http://127.0.0.1:9", max_connections=max_connections
    ) as client:
        split = client._pools.peek() if client._pools else None
        assert split is not None
        shares = [c._transport._pool._max_connections for c in split.clients]  # type: ignore[attr-defined]
    assert (len(shares), max(shares), sum(shares)) == (pools, largest, max_connections)
