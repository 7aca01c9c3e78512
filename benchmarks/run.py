"""agentkit benchmarks: framework overhead, concurrency, streaming, start-up and scale.

Run from the repository root (on demand; this is not part of the pytest suite)::

    python -m benchmarks.run            # full run, ~3-4 minutes on 2 cores
    python -m benchmarks.run --quick    # smoke run for CI, < 1 minute

The local Messages API server (``python -m agentkit.testing serve``, weather workload: T tool turns
of K parallel ``get_weather`` calls, then ``end_turn``) runs in a separate process, so its CPU is not
counted; every measurement runs in a fresh worker process (``benchmarks._worker``) with logging at
"warning" (agentkit's info events filtered by structlog). Scenarios interleave the implementations
(A B A B ...) and report median and min-max over rounds, as ratios against a baseline of the same run.
Results: a markdown table on stdout and ``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from . import _impls

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LATENCY = 0.2
TOOL_SLEEP = 0.05
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes ---------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Server:
    """``python -m agentkit.testing serve`` in its own process; ``url`` is read from its first line."""

    def __init__(self, *, latency: float, tool_turns: int, parallel: int) -> None:
        cmd = [
            sys.executable, "-m", "agentkit.testing", "serve", "--port", "0", "--flavour", "anthropic",
            "--latency", str(latency), "--policy", "weather", "-T", str(tool_turns), "-K", str(parallel),
        ]  # fmt: skip
        self.tool_turns, self.parallel, self.latency = tool_turns, parallel, latency
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError(f"the local server did not start (printed {self.url!r})")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (Linux /proc; 0.0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def server(*, latency: float, tool_turns: int, parallel: int) -> Iterator[Server]:
    srv = Server(latency=latency, tool_turns=tool_turns, parallel=parallel)
    try:
        yield srv
    finally:
        srv.stop()


def worker(spec: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._worker", json.dumps(spec)],
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({spec['mode']}): {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- statistics --------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratios(values: Sequence[float], baseline: Sequence[float]) -> list[float]:
    return [v / b for v, b in zip(values, baseline, strict=True)]


# --- scenarios ---------------------------------------------------------------------------------


def scenario_cpu(impls: list[str], *, stream: bool, rounds: int, runs: int) -> dict[str, Any]:
    """1 (and 3 with stream=True): 0 ms latency, sequential runs, T=3 K=2; client CPU per model turn."""
    with server(latency=0.0, tool_turns=3, parallel=2) as srv:
        spec = {
            "mode": "cpu", "url": srv.url, "stream": stream, "impls": impls, "rounds": rounds,
            "runs": runs, "tool_turns": 3,
        }  # fmt: skip
        raw = worker(spec)
    base = raw["raw"]["cpu_per_turn_us"]
    out: dict[str, Any] = {
        "config": {"latency_s": 0.0, "T": 3, "K": 2, "runs_per_round": runs, "rounds": rounds}
    }
    for name in impls:
        values = raw[name]["cpu_per_turn_us"]
        out[name] = {
            "cpu_per_turn_us": summary(values),
            "wall_per_run_ms": summary(raw[name]["wall_per_run_ms"]),
            "ratio_vs_raw": summary(ratios(values, base)),
            "rounds_us": values,
        }
    return out


def scenario_concurrency(impls: list[str], *, n: int, rounds: int, limit_s: float = 300) -> dict[str, Any]:
    """2 (and 5 for large N): N runs at once, 200 ms latency, T=3 K=3, tools sleep 50 ms. A worker that
    takes longer than ``limit_s`` is stopped and its implementation reported as not finishing."""
    tool_turns, parallel = 3, 3
    ideal = (tool_turns + 1) * LATENCY + tool_turns * TOOL_SLEEP
    per: dict[str, list[dict[str, Any]]] = {name: [] for name in impls}
    with server(latency=LATENCY, tool_turns=tool_turns, parallel=parallel) as srv:
        timed_out: set[str] = set()
        for _ in range(rounds):
            for name in impls:
                if name in timed_out:
                    continue
                spec = {
                    "mode": "concurrent", "url": srv.url, "impl": name, "n": n,
                    "tool_turns": tool_turns, "tool_sleep": TOOL_SLEEP,
                }  # fmt: skip
                cpu0 = srv.cpu_seconds()
                try:
                    result = worker(spec, timeout=limit_s)
                except subprocess.TimeoutExpired:
                    timed_out.add(name)
                    continue
                # the worker made 2N + 1 runs (warm-up, cold batch, warm batch)
                result["server_cpu_ms_per_run"] = (srv.cpu_seconds() - cpu0) * 1e3 / (2 * n + 1)
                per[name].append(result)
    out: dict[str, Any] = {
        "config": {"n": n, "latency_s": LATENCY, "T": tool_turns, "K": parallel, "tool_sleep_s": TOOL_SLEEP,
                   "ideal_s": ideal, "rounds": rounds},
    }  # fmt: skip
    for name, results in per.items():
        if not results:
            out[name] = {"timeout_s": limit_s}
            continue
        walls = [r["wall_s"] for r in results]
        out[name] = {
            "wall_s": summary(walls),
            "ratio_vs_ideal": summary([w / ideal for w in walls]),
            "cold_wall_s": summary([r["cold_wall_s"] for r in results]),
            "peak_rss_mb": summary([r["peak_rss_mb"] for r in results]),
            "rss_per_run_kb": summary([r["rss_per_run_kb"] for r in results]),
            "client_cpu_s": summary([r["cpu_s"] for r in results]),
            "server_cpu_ms_per_run": summary([r["server_cpu_ms_per_run"] for r in results]),
            "errors": sum(r["errors"] for r in results),
            "first_errors": sorted({e for r in results for e in r["first_errors"]})[:3],
        }
    return out


IMPORTS = {
    "agentkit": "import agentkit",
    "agentkit + Agent": "import agentkit, agentkit._agent",
    "anthropic": "from anthropic import AsyncAnthropic, beta_async_tool",
    "pydantic-ai": (
        "from pydantic_ai import Agent; from pydantic_ai.models.anthropic import AnthropicModel; "
        "from pydantic_ai.providers.anthropic import AnthropicProvider"
    ),
}


def _time_python(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=_env())
    return time.perf_counter() - started


def scenario_imports(reps: int) -> dict[str, Any]:
    """4: import time = wall of ``python -c "<import>"`` minus ``python -c pass``, fresh interpreters,
    interleaved, median of ``reps``; plus the top self-time modules of ``-X importtime`` for agentkit."""
    names = ["agentkit", "agentkit + Agent"] + [
        n for n, mod in (("anthropic", "anthropic"), ("pydantic-ai", "pydantic-ai")) if _impls.available(mod)
    ]
    for code in ["pass", *(IMPORTS[n] for n in names)]:  # warm the .pyc caches
        _time_python(code)
    samples: dict[str, list[float]] = {n: [] for n in ["bare", *names]}
    for _ in range(reps):
        samples["bare"].append(_time_python("pass"))
        for name in names:
            samples[name].append(_time_python(IMPORTS[name]))
    bare = statistics.median(samples["bare"])
    out: dict[str, Any] = {"config": {"reps": reps}, "bare_interpreter_ms": bare * 1e3}
    agentkit_net = statistics.median(samples["agentkit + Agent"]) - bare
    for name in names:
        net = [(s - bare) * 1e3 for s in samples[name]]
        out[name] = {
            "import_ms": summary(net),
            "ratio_vs_agentkit_agent": statistics.median(net) / (agentkit_net * 1e3),
        }
    out["agentkit_top_modules"] = _importtime_top("import agentkit, agentkit._agent")
    out["cli"] = _cli_run(reps)
    return out


def scenario_first_request(reps: int, stacks: list[str]) -> dict[str, Any]:
    """4b: in fresh processes, how much longer the first request takes than the next ones (lazy work)."""
    out: dict[str, Any] = {"config": {"reps": reps}}
    with server(latency=0.0, tool_turns=1, parallel=1) as srv:
        runs: dict[str, list[dict[str, Any]]] = {stack: [] for stack in stacks}
        for _ in range(reps):
            for stack in stacks:
                runs[stack].append(worker({"mode": "first", "url": srv.url, "stack": stack}))
    for stack, results in runs.items():
        out[stack] = {key: summary([r[key] for r in results]) for key in results[0]}
    return out


def scenario_http(*, in_flight: list[int], requests: int, rounds: int) -> dict[str, Any]:
    """6: CPU per HTTP round trip, each stack, at each in-flight level (``benchmarks.http_layers``)."""
    with server(latency=0.0, tool_turns=1, parallel=1) as srv:
        spec = {"mode": "http", "url": srv.url, "in_flight": in_flight, "requests": requests}
        result = worker(spec | {"rounds": rounds}, timeout=900)
    return {"config": {"in_flight": in_flight, "requests": requests, "rounds": rounds}, "samples": result}


def _importtime_top(code: str, top: int = 8) -> list[tuple[str, float]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env()
    )
    rows: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        rows.append((parts[2].strip(), int(parts[0].split(":")[1]) / 1e3))
    return sorted(rows, key=lambda r: -r[1])[:top]


def _cli_run(reps: int) -> dict[str, Any]:
    exe = shutil.which("agentkit", path=str(Path(sys.executable).parent)) or shutil.which("agentkit")
    if exe is None:
        return {"skipped": "no `agentkit` executable"}
    probe = subprocess.run([exe, "run", "--help"], capture_output=True, text=True, cwd=ROOT, env=_env())
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return {"skipped": f"`agentkit run --help` failed: {last[:200]}"}
    cmd = [exe, "run", "What's the weather in Tokyo?", "--tools", "tools.weather"]
    offline = "--offline" in probe.stdout
    if offline:
        cmd.append("--offline")
    samples: list[float] = []
    with server(latency=0.0, tool_turns=1, parallel=1) as srv, tempfile.TemporaryDirectory() as home:
        env = _env() | {"HOME": home, "ANTHROPIC_MODEL": _impls.MODEL}
        if not offline:
            env |= {"ANTHROPIC_BASE_URL": srv.url, "ANTHROPIC_API_KEY": _impls.API_KEY}
        for _ in range(reps + 1):
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            samples.append(time.perf_counter() - started)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                return {"skipped": f"`{' '.join(cmd[1:])}` failed: {last[:200]}"}
    wall = [s * 1e3 for s in samples[1:]]
    return {"command": " ".join(["agentkit", *cmd[1:]]), "offline_flag": offline, "wall_ms": summary(wall)}


# --- report ------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "cores": str(os.cpu_count()),
        "platform": platform.platform(),
    }
    for dist in ("agentkit", "httpx2", "pydantic", "structlog", "anyio", "anthropic", "pydantic-ai-slim"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def _fmt(s: dict[str, float], digits: int = 0, unit: str = "") -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}-{f.format(s['max'])})"


def markdown(results: dict[str, Any]) -> str:
    v = results["versions"]
    shown = ("agentkit", "httpx2", "pydantic", "anthropic", "pydantic-ai-slim")
    lines = [
        f"Python {v['python']}, {v['cores']} cores, {v['platform']}; "
        + ", ".join(f"{k} {v[k]}" for k in shown if k in v)
        + f"; mode: {results['mode']}; logging: warning (info events filtered).",
        "",
        "Values: median (min-max) over interleaved rounds; ratios are per-round ratios to the baseline.",
    ]
    cpu_rows = []
    for key, title in (("overhead", "1. JSON"), ("streaming", "3. SSE")):
        for name, r in results.get(key, {}).items():
            if name != "config":
                cpu_rows.append(
                    f"| {title} | {name} | {_fmt(r['cpu_per_turn_us'])} | {_fmt(r['ratio_vs_raw'], 2)} |"
                    f" {_fmt(r['wall_per_run_ms'], 1)} |"
                )
    if cpu_rows:
        lines += [
            "",
            "CPU per model turn (0 ms latency, sequential runs, T=3 K=2; target agentkit <= 1.3x raw):",
            "",
            "| scenario | implementation | CPU/turn (us) | x raw httpx2 | wall/run (ms) |",
            "|---|---|---|---|---|",
            *cpu_rows,
        ]
    for key, title in (("concurrency", "2. Concurrency"), ("scale", "5. Scale")):
        sc = results.get(key)
        if not sc:
            continue
        cfg = sc["config"]
        lines += [
            "",
            f"{title}: {cfg['n']} concurrent runs, {cfg['latency_s'] * 1000:.0f} ms latency, T={cfg['T']} "
            f"K={cfg['K']}, tools sleep {cfg['tool_sleep_s'] * 1000:.0f} ms; ideal {cfg['ideal_s']:.2f} s:",
            "",
            "| implementation | wall (s) | x ideal | cold pool: wall (s) | peak RSS (MB) | RSS/run (KB) "
            "| client CPU (s) | server CPU/run (ms) | errors |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in sc.items():
            if "timeout_s" in r:
                lines.append(f"| {name} | did not finish within {r['timeout_s']:.0f} s | | | | | | | |")
            elif name != "config":
                lines.append(
                    f"| {name} | {_fmt(r['wall_s'], 2)} | {_fmt(r['ratio_vs_ideal'], 2)} |"
                    f" {_fmt(r['cold_wall_s'], 2)} |"
                    f" {_fmt(r['peak_rss_mb'])} | {_fmt(r['rss_per_run_kb'])} |"
                    f" {_fmt(r['client_cpu_s'], 2)} | {_fmt(r['server_cpu_ms_per_run'], 2)} | {r['errors']} |"
                )
        if "floor" in sc:
            lines.append(
                "\n`floor`: the same protocol over bare asyncio sockets, no HTTP library and no error "
                "handling (`benchmarks/_impls.py::Floor`): a lower bound for one Python process on this "
                "machine, not a usable client."
            )
    imp = results.get("imports")
    if imp:
        lines += [
            "",
            f"4. Import time, fresh interpreters, net of the bare interpreter "
            f"({imp['bare_interpreter_ms']:.0f} ms):",
            "",
            "| import | ms | x agentkit + Agent |",
            "|---|---|---|",
        ]
        for name, code in IMPORTS.items():
            if name in imp:
                r = imp[name]
                lines.append(f"| `{code}` | {_fmt(r['import_ms'])} | {r['ratio_vs_agentkit_agent']:.2f} |")
        cli = imp.get("cli", {})
        if "skipped" in cli:
            lines.append(f"\nCLI run: skipped ({cli['skipped']}).")
        else:
            lines.append(f"\nCLI run `{cli['command']}`: {_fmt(cli['wall_ms'])} ms wall.")
    first = results.get("first_request")
    if first:
        lines += [
            "",
            "4b. First request in a fresh process, per stack (import, Client(), first request, and how much "
            "longer it took than the next ones; target <= 20 ms):",
            "",
            "| stack | import agentkit (ms) | Client() (ms) | first request (ms) | first - next (ms) |",
            "|---|---|---|---|---|",
        ]
        for stack, r in first.items():
            if stack != "config":
                lines.append(
                    f"| {stack} | {_fmt(r['import_ms'])} | {_fmt(r['client_ms'], 1)} |"
                    f" {_fmt(r['first_ms'], 1)} | {_fmt(r['stall_ms'], 1)} |"
                )
    http = results.get("http")
    if http:
        from .http_layers import markdown as http_markdown

        lines += [
            "",
            "6. CPU per HTTP round trip (small JSON POST, keep-alive, 0 ms latency), N requests in flight "
            "(target: the aiohttp stack <= 1.3x raw aiohttp):",
            "",
            http_markdown(http["samples"]),
        ]
    skipped = results.get("skipped_peers")
    if skipped:
        lines += ["", "Skipped (install the `bench` extra): " + ", ".join(skipped)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rounds, smaller N (< 1 min)")
    parser.add_argument(
        "--only",
        default="overhead,concurrency,streaming,imports,first_request,http,scale",
        help="comma-separated scenarios",
    )
    parser.add_argument("--no-peers", action="store_true", help="agentkit and the raw baseline only")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="where to write the JSON")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    quick = args.quick
    only = set(args.only.split(","))
    peers = [] if args.no_peers else [p for p in ("anthropic", "pydantic-ai") if _impls.available(p)]
    skipped = [] if args.no_peers else [p for p in ("anthropic", "pydantic-ai") if not _impls.available(p)]
    aiohttp_impls = ["raw aiohttp", "agentkit, aiohttp"] if _impls.available("raw aiohttp") else []
    impls = ["raw", "agentkit", *aiohttp_impls, *peers]
    stacks = ["httpx", "aiohttp"] if aiohttp_impls else ["httpx"]
    results: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "versions": _versions(),
        "skipped_peers": skipped,
        "command": "python -m benchmarks.run" + (" --quick" if quick else ""),
    }
    started = time.perf_counter()
    rounds, runs = (3, 10) if quick else (7, 30)
    steps = [
        ("overhead", lambda: scenario_cpu(impls, stream=False, rounds=rounds, runs=runs)),
        ("streaming", lambda: scenario_cpu(impls, stream=True, rounds=rounds, runs=runs)),
        (
            "concurrency",
            lambda: scenario_concurrency(
                ["floor", *impls, "agentkit, tuned gc"], n=50 if quick else 200, rounds=1 if quick else 3
            ),
        ),
        ("imports", lambda: scenario_imports(2 if quick else 7)),
        ("first_request", lambda: scenario_first_request(2 if quick else 5, stacks)),
        (
            "http",
            lambda: scenario_http(
                in_flight=[1, 64, 256], requests=1024 if quick else 4096, rounds=2 if quick else 3
            ),
        ),
        (
            "scale",
            lambda: scenario_concurrency(
                ["floor", "agentkit", *aiohttp_impls[1:], "agentkit, tuned gc"],
                n=300 if quick else 2000,
                rounds=1 if quick else 2,
                limit_s=240,
            ),
        ),
    ]
    for name, step in steps:
        if name in only:
            t0 = time.perf_counter()
            print(f"[{time.perf_counter() - started:6.1f}s] {name} ...", file=sys.stderr, flush=True)
            results[name] = step()
            results[name].setdefault("config", {})["elapsed_s"] = round(time.perf_counter() - t0, 1)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    table = markdown(results)
    results["markdown"] = table
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table)
    print(f"\n(total {results['elapsed_s']} s; JSON in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
