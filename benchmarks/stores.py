"""Conversation stores: append and load latency per turn, the load of a 1,000-message session, and the
CPU per model turn of an agent with a store against one without (same process, same server).

    python -m benchmarks.stores            # starts its own PostgreSQL server (tests/postgres_server.py)
    python -m benchmarks.stores --quick    # fewer rounds
    python -m benchmarks.stores --dsn postgresql://user@host/db   # an existing server instead

PostgreSQL runs with its default durability (fsync on, synchronous_commit on), like SQLite FULL.
The Messages API server (``python -m agentkit.testing serve``, weather workload T=3 K=2) and
PostgreSQL run in processes of their own: the CPU counted is this process's (``time.process_time``,
all threads: the stores work in worker threads). SQLite writes to a file in a temp dir.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from agentkit import Agent, Client, configure_logging
from agentkit.stores import Entry, SQLiteStore, Store

ROOT = Path(__file__).resolve().parents[1]
TOOL_TURNS, PARALLEL = 3, 2


def _turn(i: int) -> list[dict[str, Any]]:
    """A realistic turn: a question, and an answer of a few hundred characters."""
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": f"Question {i}: what is the weather in Oslo?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": f"Answer {i}: " + "It is mild. " * 30}]},
    ]


def _entry(start: int, i: int) -> Entry:
    return Entry("turns", {"start": start, "messages": _turn(i), "usage": {"input_tokens": 10}})


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"{statistics.median(values) * 1e3:.2f} ms (p95 {p95 * 1e3:.2f})"


async def _store_ops(make: Callable[[], Store], appends: int, loads: int) -> dict[str, str]:
    async with make() as store:
        session = f"bench-{uuid.uuid4().hex[:8]}"
        await store.load(session)  # open the pool / the file
        append_times: list[float] = []
        for i in range(appends):
            t0 = time.perf_counter()
            await store.append(session, [_entry(2 * i, i)], expected_revision=i)
            append_times.append(time.perf_counter() - t0)
        small = f"bench-{uuid.uuid4().hex[:8]}"
        for i in range(10):  # a 20-message session
            await store.append(small, [_entry(2 * i, i)], expected_revision=i)
        load_times: list[float] = []
        for _ in range(loads):
            t0 = time.perf_counter()
            loaded = await store.load(small)
            load_times.append(time.perf_counter() - t0)
        assert len(loaded.messages) == 20
        big = f"bench-{uuid.uuid4().hex[:8]}"
        for i in range(500):  # 1,000 messages, as 500 turns
            await store.append(big, [_entry(2 * i, i)], expected_revision=i)
        big_times: list[float] = []
        for _ in range(max(5, loads // 5)):
            t0 = time.perf_counter()
            loaded = await store.load(big)
            big_times.append(time.perf_counter() - t0)
        assert len(loaded.messages) == 1000
    return {
        "append per turn": _ms(append_times),
        "load, 20 messages": _ms(load_times),
        "load, 1,000 messages": _ms(big_times),
    }


async def _tool(city: str) -> str:
    """Weather for a city.

    Args:
        city: The city.
    """
    return f"Sunny in {city}"


async def _cpu(url: str, stores: dict[str, Store | None], runs: int, rounds: int) -> dict[str, list[float]]:
    client = Client(api_key="sk-test", base_url=url, max_retries=0)
    agents = {
        name: Agent(client, model="claude-sonnet-4-6", tools=[_tool], store=store)
        for name, store in stores.items()
    }
    out: dict[str, list[float]] = {name: [] for name in agents}

    async def one(name: str) -> None:
        agent = agents[name]
        session = f"bench-{uuid.uuid4().hex[:12]}" if agent.store is not None else None
        result = await agent.run("Weather in Oslo, Paris and Rome?", session=session)
        if not result.text.startswith(f"Done after {TOOL_TURNS} tool turns"):
            raise RuntimeError(result.text)

    for name in agents:  # warm-up
        for _ in range(3):
            await one(name)
    for _ in range(rounds):
        for name in agents:  # interleaved: none, sqlite, postgres, none, ...
            gc.collect()
            cpu0 = time.process_time()
            for _ in range(runs):
                await one(name)
            out[name].append((time.process_time() - cpu0) / (runs * (TOOL_TURNS + 1)))
    await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dsn", help="an existing PostgreSQL server (default: start a throwaway one)")
    args = parser.parse_args()
    configure_logging(level="warning")
    appends, loads, runs, rounds = (100, 50, 10, 3) if args.quick else (300, 200, 30, 7)
    server = None
    if args.dsn is None:
        sys.path.insert(0, str(ROOT))
        from tests.postgres_server import PostgresServer

        server = PostgresServer(fsync=True).start()
        dsn = server.dsn
    else:
        dsn = args.dsn
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentkit.testing",
            "serve",
            "--policy",
            "weather",
            "-T",
            str(TOOL_TURNS),
            "-K",
            str(PARALLEL),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert api.stdout is not None
        url = api.stdout.readline().strip()
        tmp = Path(tempfile.mkdtemp(prefix="agentkit-bench-"))
        from agentkit.stores import PostgresStore

        makers: dict[str, Callable[[], Store]] = {
            "SQLite (synchronous=FULL)": lambda: SQLiteStore(tmp / "full.db"),
            "SQLite (synchronous=NORMAL)": lambda: SQLiteStore(tmp / "normal.db", synchronous="NORMAL"),
            "PostgreSQL (127.0.0.1)": lambda: PostgresStore(dsn),
        }
        print("## Store operations (wall per operation, median and p95)\n")
        print("| store | append per turn | load, 20 messages | load, 1,000 messages |")
        print("|---|---|---|---|")
        for name, make in makers.items():
            row = anyio.run(_store_ops, make, appends, loads)
            print(f"| {name} | " + " | ".join(row.values()) + " |")

        async def cpu() -> dict[str, list[float]]:
            async with (
                SQLiteStore(tmp / "agent.db") as sqlite,
                SQLiteStore(tmp / "agent-normal.db", synchronous="NORMAL") as normal,
                PostgresStore(dsn) as pg,
            ):
                stores: dict[str, Store | None] = {
                    "no store": None,
                    "SQLiteStore": sqlite,
                    'SQLiteStore(synchronous="NORMAL")': normal,
                    "PostgresStore": pg,
                }
                return await _cpu(url, stores, runs, rounds)

        results = anyio.run(cpu)
        print(
            f"\n## CPU per model turn (weather T={TOOL_TURNS} K={PARALLEL}, {runs} runs x {rounds} rounds)\n"
        )
        print("| agent | CPU per model turn (median of rounds) | vs no store |")
        print("|---|---|---|")
        base = statistics.median(results["no store"])
        for name, values in results.items():
            median = statistics.median(values)
            print(
                f"| {name} | {median * 1e6:.0f} µs | +{(median - base) * 1e6:.0f} µs ({median / base:.2f}x) |"
            )
    finally:
        api.terminate()
        api.wait()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
