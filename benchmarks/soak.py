"""Soak test (on demand, not part of pytest): many concurrent agent runs against a faulty local server.

Run from the repository root::

    python -m benchmarks.soak                                   # 10,000 runs, 1,000 concurrent, 5% faults
    python -m benchmarks.soak --runs 2000 --concurrency 200     # a quicker check
    python -m benchmarks.soak --help

The Messages API server runs in a child process (``python -m benchmarks.soak serve ...``: a
:class:`agentkit.testing.LocalServer` with a fault-injecting policy), so the parent's RSS is the agent
side only. The policy plays a weather workload (``--tool-turns`` turns of ``--parallel`` parallel
``get_weather`` calls, then an answer) and replaces ``--fault-rate`` of the answers with a fault picked
by a seeded RNG from the request index: 429 (retry-after-ms), 529, 500, 503, connection closed before
the status line, TCP reset, body cut mid-way, SSE stream cut before ``message_stop``, an ``error`` event
mid-stream, invalid JSON. Half of the runs use streaming requests.

Checked for every run:
- it ends completed or with a typed ``AgentKitError`` (anything else, or a run still going after
  ``--run-timeout`` seconds, fails the soak);
- its history (the ``Conversation`` passed as ``history=``) passes ``check_messages``;
- no tool call is duplicated (run twice for one ``tool_use`` id) or lost (answered as a success
  without running, or run but missing from the history).
RSS is sampled every ``--sample-every`` finished runs; the growth from the first sample to the last is
reported. The soak is bounded: it stops launching runs after ``--max-seconds`` and always ends. Exit
status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

MODEL = "claude-sonnet-4-6"
KEY = "sk-test"
ROOT = Path(__file__).resolve().parents[1]
FAULTS = (
    "429",
    "529",
    "500",
    "503",
    "drop",
    "reset",
    "drop_mid_body",
    "cut_stream",
    "error_event",
    "malformed",
)


# --- the server (child process) ------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    from agentkit.testing import CITIES, LocalServer, Request, reply

    stats: Counter[str] = Counter()
    lock = threading.Lock()

    def fault(kind: str) -> Any:
        final = reply.text("Partial answer that never arrives in full.")
        return {
            "429": lambda: reply.error(429, retry_after_ms=20),
            "529": lambda: reply.error(529),
            "500": lambda: reply.error(500),
            "503": lambda: reply.error(503),
            "drop": reply.drop,
            "reset": reply.reset,
            "drop_mid_body": lambda: reply.drop_mid_body(final),
            "cut_stream": lambda: reply.cut_stream(3, final),
            "error_event": lambda: reply.error_event(3, inner=final),
            "malformed": reply.malformed,
        }[kind]()

    def policy(request: Request) -> Any:
        rng = random.Random(args.seed * 1_000_003 + request.index)
        if rng.random() < args.fault_rate:
            kind = rng.choice(FAULTS)
            with lock:
                stats[kind] += 1
            return fault(kind)
        with lock:
            stats["ok"] += 1
        turn = request.assistant_turns
        if turn < args.tool_turns:
            calls = [
                ("get_weather", {"city": CITIES[(turn * args.parallel + k) % len(CITIES)]})
                for k in range(args.parallel)
            ]
            return reply.tool_uses(calls)
        return reply.text(f"Done after {turn} tool turns.")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _raise_fd_limit()
    with LocalServer(policy, api_key=KEY, backlog=8192) as server:
        sys.stdout.write(server.base_url + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
        requests = server.requests_received
        statuses = Counter(str(r.status) for r in server.requests)  # of the last max_recorded
    sys.stdout.write(json.dumps({"faults": dict(stats), "requests": requests, "statuses": statuses}) + "\n")
    sys.stdout.flush()
    return 0


# --- the load (parent process) -------------------------------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # a high-water mark elsewhere


class Soak:
    def __init__(self, args: argparse.Namespace, base_url: str) -> None:
        from agentkit import Agent, Client
        from agentkit._context import RunContext
        from agentkit._tool import tool

        @tool
        async def get_weather(city: str, ctx: RunContext[Counter[str]]) -> str:
            """Current weather for a city.

            Args:
                city: City name.
            """
            assert ctx.tool_use_id is not None
            ctx.deps[ctx.tool_use_id] += 1
            return f"{city}: 21C, clear"

        self.args = args
        self.client = Client(api_key=KEY, base_url=base_url, max_retries=args.max_retries, timeout=30.0)
        self.agents = [
            Agent(self.client, model=MODEL, tools=[get_weather], stream=stream, max_turns=10)
            for stream in (False, True)
        ]
        self.outcomes: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.started = 0
        self.finished = 0
        self.samples: list[tuple[int, float]] = []
        self.examples: list[str] = []

    async def one_run(self, index: int) -> None:
        from agentkit import AgentKitError, Conversation
        from agentkit._history import check_messages

        executions: Counter[str] = Counter()
        conversation = Conversation()
        agent = self.agents[index % 2]
        outcome = "completed"
        with anyio.move_on_after(self.args.run_timeout) as scope:
            try:
                await agent.run(f"Weather for run {index}?", deps=executions, history=conversation)
            except AgentKitError as exc:
                outcome = type(exc).__name__
            except Exception as exc:  # an untyped error escaping a run fails the soak
                outcome = f"UNTYPED {type(exc).__name__}"
                self._example(f"run {index}: {type(exc).__name__}: {exc}")
        if scope.cancelled_caught:
            outcome = "HUNG (run timeout)"
        self.outcomes[outcome] += 1

        history = conversation.to_wire()
        try:
            check_messages(history)
        except Exception as exc:
            self.checks["invalid history"] += 1
            self._example(f"run {index}: invalid history: {exc}")
        uses: list[str] = []
        results: dict[str, dict[str, Any]] = {}
        for message in history:
            for block in message["content"] if isinstance(message["content"], list) else ():
                if block.get("type") == "tool_use":
                    uses.append(block["id"])
                elif block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = block
        self.checks["tool calls in histories"] += len(uses)
        self.checks["tool executions"] += sum(executions.values())
        duplicated = sum(1 for n in executions.values() if n > 1)
        ran_unrecorded = len(set(executions) - set(uses))
        success_not_run = sum(
            1 for u in uses if u in results and not results[u].get("is_error") and executions[u] != 1
        )
        self.checks["duplicated tool calls"] += duplicated
        self.checks["lost tool calls"] += ran_unrecorded + success_not_run
        if duplicated or ran_unrecorded or success_not_run:
            self._example(f"run {index}: dup={duplicated} orphan={ran_unrecorded} unrun={success_not_run}")

        self.finished += 1
        if self.finished % self.args.sample_every == 0:
            gc.collect()
            self.samples.append((self.finished, _rss_mb()))
            print(
                f"  {self.finished:>7} runs  rss {self.samples[-1][1]:8.1f} MB  "
                f"{dict(self.outcomes.most_common(4))}",
                flush=True,
            )

    def _example(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)

    async def main(self) -> float:
        deadline = time.monotonic() + self.args.max_seconds
        started = time.monotonic()

        async def worker() -> None:
            while self.started < self.args.runs and time.monotonic() < deadline:
                index = self.started
                self.started += 1
                await self.one_run(index)

        async with anyio.create_task_group() as group:
            for _ in range(min(self.args.concurrency, self.args.runs)):
                group.start_soon(worker)
        await self.client.aclose()
        return time.monotonic() - started


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.soak",
        "serve",
        f"--seed={args.seed}",
        f"--fault-rate={args.fault_rate}",
        f"--tool-turns={args.tool_turns}",
        f"--parallel={args.parallel}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    base_url = child.stdout.readline().strip()
    if not base_url.startswith("http"):
        child.kill()
        raise SystemExit(f"the server did not start (got {base_url!r})")
    return child, base_url


def _stop_server(child: subprocess.Popen[str]) -> dict[str, Any]:
    child.send_signal(signal.SIGTERM)
    try:
        out, _ = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        return {}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    return {}


def run(args: argparse.Namespace) -> int:
    import structlog

    _raise_fd_limit()
    # warnings only (retries and tool errors are expected here and would flood the output)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    child, base_url = _start_server(args)
    try:
        soak = Soak(args, base_url)
        rss_start = _rss_mb()
        elapsed = anyio.run(soak.main, backend=args.backend)
    finally:
        server = _stop_server(child)

    print()
    print(
        f"soak: {soak.finished} runs in {elapsed:.1f} s ({soak.finished / max(elapsed, 1e-9):.0f} runs/s), "
        f"concurrency {args.concurrency}, fault rate {args.fault_rate:.0%}, seed {args.seed}, "
        f"backend {args.backend}"
    )
    rows: list[tuple[str, Any]] = [("runs finished", soak.finished)]
    rows += [(f"  outcome: {k}", v) for k, v in sorted(soak.outcomes.items(), key=lambda kv: -kv[1])]
    rows += [
        ("requests served", server.get("requests", "?")),
        ("faults injected", sum(v for k, v in server.get("faults", {}).items() if k != "ok")),
    ]
    rows += [(f"  fault: {k}", v) for k, v in sorted(server.get("faults", {}).items()) if k != "ok"]
    for key in (
        "tool calls in histories",
        "tool executions",
        "duplicated tool calls",
        "lost tool calls",
        "invalid history",
    ):
        rows.append((key, soak.checks.get(key, 0)))
    first = soak.samples[0][1] if soak.samples else rss_start
    last = soak.samples[-1][1] if soak.samples else _rss_mb()
    rows += [
        ("rss at start (MB)", f"{rss_start:.1f}"),
        ("rss samples (runs: MB)", ", ".join(f"{n}: {mb:.0f}" for n, mb in soak.samples) or "-"),
        ("rss growth first→last sample", f"{last - first:+.1f} MB ({(last - first) / first:+.1%})"),
    ]
    width = max(len(k) for k, _ in rows)
    print("-" * (width + 24))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 24))
    untyped = sum(v for k, v in soak.outcomes.items() if k.startswith(("UNTYPED", "HUNG")))
    failed = untyped + soak.checks["duplicated tool calls"] + soak.checks["lost tool calls"]
    failed += soak.checks["invalid history"]
    growth_ok = len(soak.samples) < 2 or (last - first) <= max(args.max_growth_mb, 0.0)
    for example in soak.examples:
        print("  e.g.", example)
    verdict = "PASS" if not failed and growth_ok else "FAIL"
    print(
        f"{verdict}: untyped/hung={untyped}, duplicated={soak.checks['duplicated tool calls']}, "
        f"lost={soak.checks['lost tool calls']}, invalid histories={soak.checks['invalid history']}, "
        f"rss growth {last - first:+.1f} MB (limit {args.max_growth_mb} MB)"
    )
    return 0 if verdict == "PASS" else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", choices=["soak", "serve"], default="soak")
    parser.add_argument("--runs", type=int, default=10_000, help="total runs (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=1_000, help="runs in flight (default 1,000)")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of answers replaced by a fault")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fault RNG")
    parser.add_argument("--tool-turns", type=int, default=2, help="tool turns per run before the answer")
    parser.add_argument("--parallel", type=int, default=3, help="parallel tool calls per tool turn")
    parser.add_argument("--max-retries", type=int, default=2, help="Client(max_retries=...)")
    parser.add_argument("--sample-every", type=int, default=1_000, help="RSS sample period (runs)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop launching runs after this")
    parser.add_argument("--run-timeout", type=float, default=60.0, help="a run longer than this is hung")
    parser.add_argument("--max-growth-mb", type=float, default=50.0, help="allowed RSS growth")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
