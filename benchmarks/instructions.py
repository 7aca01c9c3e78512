"""Instructions per model turn, counted by callgrind: scenarios 1 and 3 without the machine's noise.

    python -m benchmarks.instructions [--runs 20] [--impls raw,agentkit,...] [--stream both|json|sse]
    python -m benchmarks.instructions --http 64,256 [--requests 2000]   # scenario 6, per round trip

On a shared machine ``time.process_time()`` per turn moves by 2x between rounds when a neighbour is
busy (``benchmarks.run``'s table shows the spread). Valgrind's callgrind counts the instructions the
client process executes, which repeat for the same binary, inputs and environment whatever else the
machine is doing. Each implementation runs in two fresh processes under callgrind, one doing ``W``
warm-up runs only and one doing ``W + R`` runs (sequential, as in scenarios 1 and 3: T=3 tool turns of
K=2 calls, 0 ms latency); the difference divided by ``R`` runs' turns is the cost of a turn, without
start-up, imports and warm-up. The local server runs in its own process, uncounted. ``--http`` does the
same for scenario 6 (``benchmarks.http_layers``' stacks, N requests in flight): instructions per round
trip.

Instructions are not time: a cache miss costs more than an add. For the same kind of work (CPython
running one client loop against another) their ratio follows the CPU ratio closely, and it is the one
that can be compared across runs and machines of one architecture. Needs ``valgrind`` on PATH; one
implementation takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

WARMUP = 5
TOOL_TURNS, PARALLEL = 3, 2
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


async def _child(spec: dict[str, Any]) -> None:
    from . import _impls, _worker

    _worker._logging_off()
    if "in_flight" in spec:
        await _child_http(spec)
        return
    impl = _impls.make_impl(spec["impl"], spec["url"], stream=spec["stream"])
    try:
        for _ in range(spec["runs"]):
            _worker._check(await impl.run(), TOOL_TURNS)
    finally:
        await impl.aclose()


async def _child_http(spec: dict[str, Any]) -> None:
    from .http_layers import _load, _stacks, close_all

    stacks, closers = await _stacks(spec["url"])
    try:
        await _load(stacks[spec["stack"]], spec["in_flight"], spec["runs"])
    finally:
        await close_all(closers)


def _instructions(spec: dict[str, Any]) -> int:
    """Instructions the client process executed for ``spec`` (callgrind's total)."""
    cmd = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "benchmarks.instructions", "--child", json.dumps(spec),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def _difference(spec: dict[str, Any], warm: int, measured: int) -> int:
    """Instructions of ``measured`` runs (or requests) of ``spec`` beyond ``warm`` ones: two processes,
    side by side, one doing ``warm`` and one ``warm + measured``."""
    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(_instructions, [{**spec, "runs": n} for n in (warm, warm + measured)])
    return long - short


def per_turn(url: str, impl: str, *, stream: bool, runs: int) -> float:
    """Instructions per model turn of ``impl``."""
    spec = {"impl": impl, "url": url, "stream": stream}
    return _difference(spec, WARMUP, runs) / (runs * (TOOL_TURNS + 1))


def per_request(url: str, stack: str, *, in_flight: int, requests: int) -> float:
    """Instructions per HTTP round trip of ``stack`` with ``in_flight`` requests at once (``requests`` is
    rounded down to a multiple of ``in_flight``, as each task sends the same number)."""
    requests -= requests % in_flight
    spec = {"stack": stack, "url": url, "in_flight": in_flight}
    return _difference(spec, 2 * in_flight, requests) / requests


def _http_table(url: str, levels: list[int], requests: int) -> None:
    from .http_layers import FLOOR, IN_MEMORY

    stacks = ["raw aiohttp", "agentkit Client, aiohttp", "agentkit Client, httpx", IN_MEMORY]
    print(f"Instructions per HTTP round trip (callgrind; {requests} requests):\n")
    print("| in flight | stack | instructions/request | x raw aiohttp |")
    print("|---|---|---|---|")
    for n in levels:
        counts = {name: per_request(url, name, in_flight=n, requests=requests) for name in stacks}
        counts[FLOOR] = counts["raw aiohttp"] + counts[IN_MEMORY]
        for name, count in counts.items():
            print(f"| {n} | {name} | {count:,.0f} | {count / counts['raw aiohttp']:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=20, help="measured runs per implementation")
    parser.add_argument("--impls", default="raw,agentkit,raw aiohttp,agentkit, aiohttp")
    parser.add_argument("--stream", choices=["both", "json", "sse"], default="both")
    parser.add_argument("--http", help="scenario 6 instead: requests in flight, e.g. 64,256")
    parser.add_argument("--requests", type=int, default=2048, help="--http: measured requests")
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(json.loads(args.child)))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    from . import _impls
    from .run import Server

    names = [n.strip() for n in re.split(r",(?! )", args.impls) if n.strip()]
    missing = [n for n in names if not _impls.available(n)]
    names = [n for n in names if n not in missing]
    modes = {"both": [False, True], "json": [False], "sse": [True]}[args.stream]
    srv = Server(latency=0.0, tool_turns=TOOL_TURNS, parallel=PARALLEL)
    if args.http:
        try:
            _http_table(srv.url, [int(n) for n in args.http.split(",")], args.requests)
        finally:
            srv.stop()
        return 0
    try:
        print(f"Instructions per model turn (callgrind; {args.runs} runs, T={TOOL_TURNS} K={PARALLEL}):\n")
        print("| scenario | implementation | instructions/turn | x raw httpx2 |")
        print("|---|---|---|---|")
        for stream in modes:
            counts = {name: per_turn(srv.url, name, stream=stream, runs=args.runs) for name in names}
            base = counts.get("raw")
            for name, count in counts.items():
                ratio = f"{count / base:.2f}" if base else ""
                scenario = "3. SSE" if stream else "1. JSON"
                print(f"| {scenario} | {name} | {count:,.0f} | {ratio} |", flush=True)
    finally:
        srv.stop()
    if missing:
        print(f"\nSkipped (not installed): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
