"""A measuring process, started by ``benchmarks.run`` (one JSON spec in argv[1], one JSON line out).

Runs in its own interpreter so peak RSS (``ru_maxrss``, a high-water mark) and CPU time belong to the
code under test only; the server is yet another process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from typing import Any

from . import _impls


def _logging_off() -> None:
    """Logging at "warning" for the measured code: agentkit's info events are filtered by structlog's
    level-filtering bound logger (the cheapest path, as in a production app logging warnings only)."""
    try:
        from agentkit import configure_logging  # type: ignore[attr-defined]
    except ImportError:
        from agentkit._logging import configure_logging
    configure_logging(level="warning")
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # peers log through stdlib logging


def _check(text: str, tool_turns: int) -> None:
    if not text.startswith(f"Done after {tool_turns} tool turns"):
        raise RuntimeError(f"unexpected final text: {text[:200]!r}")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def cpu(spec: dict[str, Any]) -> dict[str, Any]:
    """Sequential runs, impls interleaved per round: CPU seconds per model turn for each round."""
    tool_turns, runs, rounds = spec["tool_turns"], spec["runs"], spec["rounds"]
    impls = {name: _impls.make_impl(name, spec["url"], stream=spec["stream"]) for name in spec["impls"]}
    turns = runs * (tool_turns + 1)
    out: dict[str, Any] = {name: {"cpu_per_turn_us": [], "wall_per_run_ms": []} for name in impls}
    try:
        for impl in impls.values():  # warm-up: connections, caches, lazy imports
            for _ in range(spec.get("warmup", 5)):
                _check(await impl.run(), tool_turns)
        for _ in range(rounds):
            for name, impl in impls.items():
                gc.collect()
                wall0, cpu0 = time.perf_counter(), time.process_time()
                for _ in range(runs):
                    _check(await impl.run(), tool_turns)
                cpu1, wall1 = time.process_time(), time.perf_counter()
                out[name]["cpu_per_turn_us"].append((cpu1 - cpu0) / turns * 1e6)
                out[name]["wall_per_run_ms"].append((wall1 - wall0) / runs * 1e3)
    finally:
        for impl in impls.values():
            await impl.aclose()
    return out


async def _batch(impl: _impls.Impl, n: int, tool_turns: int) -> tuple[float, float, list[str]]:
    """N runs at once: (wall s, CPU s, errors)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(impl.run() for _ in range(n)), return_exceptions=True)
    wall, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    errors: list[str] = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(f"{type(result).__name__}: {result}"[:300])
        else:
            try:
                _check(result, tool_turns)
            except RuntimeError as exc:
                errors.append(str(exc))
    return wall, cpu_s, errors


async def concurrent(spec: dict[str, Any]) -> dict[str, Any]:
    """N runs at once, twice: a cold batch (the pool opens N connections; its peak-RSS growth over a
    single warm-up run gives memory per run), then a warm batch on those kept-alive connections, as in
    a service that has been running for a while (wall, CPU and the ratio to the ideal come from it)."""
    n, tool_turns = spec["n"], spec["tool_turns"]
    impl = _impls.make_impl(spec["impl"], spec["url"], stream=False, max_connections=n + 100)
    try:
        _check(await impl.run(), tool_turns)  # imports, caches, first connection
        gc.collect()
        rss_before = _maxrss_mb()
        cold_wall, _, cold_errors = await _batch(impl, n, tool_turns)
        rss_after = _maxrss_mb()
        gc.collect()
        wall, cpu_s, errors = await _batch(impl, n, tool_turns)
    finally:
        await impl.aclose()
    errors += cold_errors
    return {
        "wall_s": wall,
        "cold_wall_s": cold_wall,
        "cpu_s": cpu_s,
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "peak_rss_mb": _maxrss_mb(),
        "baseline_rss_mb": rss_before,
        "rss_per_run_kb": (rss_after - rss_before) * 1024.0 / n,
    }


async def http(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU per HTTP round trip for each stack at each in-flight level (``benchmarks.http_layers``)."""
    from .http_layers import measure

    return await measure(spec["url"], spec["in_flight"], spec["requests"], spec["rounds"])


async def first_request(spec: dict[str, Any]) -> dict[str, Any]:
    """A fresh process: ``import agentkit``, a Client, then 21 requests; how much longer the first took
    than the median of the others (what lazy imports and set-up add to it; the first also connects,
    about 0.2 ms on loopback)."""
    started = time.perf_counter()
    import agentkit

    imported = time.perf_counter()
    options = {"http": spec["stack"]} if spec["stack"] != "httpx" else {}
    client = agentkit.Client(api_key=_impls.API_KEY, base_url=spec["url"], **options)
    constructed = time.perf_counter()
    times: list[float] = []
    messages = [{"role": "user", "content": "hi"}]
    try:
        for _ in range(21):
            t0 = time.perf_counter()
            await client.create(model=_impls.MODEL, max_tokens=8, messages=messages)
            times.append(time.perf_counter() - t0)
    finally:
        await client.aclose()
    rest = sorted(times[1:])
    return {
        "import_ms": (imported - started) * 1e3,
        "client_ms": (constructed - imported) * 1e3,
        "first_ms": times[0] * 1e3,
        "stall_ms": (times[0] - rest[len(rest) // 2]) * 1e3,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    _impls.TOOL_SLEEP = spec.get("tool_sleep", 0.0)
    if spec["mode"] != "first":  # that one times `import agentkit` itself (httpx2 is imported already)
        _logging_off()
    mode = {"cpu": cpu, "concurrent": concurrent, "http": http, "first": first_request}[spec["mode"]]
    result = asyncio.run(mode(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
