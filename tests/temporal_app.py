"""The agent, tools, model policy and worker of ``tests/test_temporal.py``.

Imported by the tests (workers in the test process) and run as a worker process
(``python -m tests.temporal_app ADDRESS TASK_QUEUE BASE_URL [sqlite|postgres LOCATION]``) for the tests
that kill one. Each tool body that finishes appends its ``tool_use_id`` and idempotency key to a file in
``$AGENTKIT_TEST_COUNTS``, outside any worker, so a test can count how often each call really ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client as TemporalClient
from temporalio.common import RetryPolicy

from agentkit import Agent, Client, RunContext, tool
from agentkit.stores import SQLiteStore, Store
from agentkit.temporal import TemporalAgent
from agentkit.testing import Request, reply

MODEL = "claude-sonnet-4-6"
NAME = "durable-test"


def counts_dir() -> Path:
    return Path(os.environ["AGENTKIT_TEST_COUNTS"])


def finished(ctx: RunContext[Any]) -> None:
    line = json.dumps({"id": ctx.tool_use_id, "key": ctx.idempotency_key, "pid": os.getpid()})
    with (counts_dir() / "finished.jsonl").open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def runs() -> list[dict[str, Any]]:
    """Every finished tool body so far (one line each)."""
    path = counts_dir() / "finished.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@tool
def record(label: str, ctx: RunContext[Any]) -> str:
    """Record a label.

    Args:
        label: The label to record.
    """
    finished(ctx)
    return f"recorded {label}"


@tool(
    activity_options={
        "heartbeat_timeout": timedelta(seconds=2),
        "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
    }
)
async def slow_step(ctx: RunContext[Any]) -> str:
    """A step that runs until the test releases it (a file named ``release``)."""
    folder = counts_dir()
    (folder / f"started-{ctx.tool_use_id}-{uuid.uuid4().hex[:8]}").touch()
    while not (folder / "release").exists():  # noqa: ASYNC110 - the test process releases it (a file)
        await asyncio.sleep(0.05)
    finished(ctx)
    return "slow step done"


@tool(requires_approval=True)
def pay(amount: int, ctx: RunContext[Any]) -> str:
    """Pay an amount.

    Args:
        amount: Euros to pay.
    """
    finished(ctx)
    return f"paid {amount} EUR"


@tool(max_result_chars=500_000)
def blob(kb: int) -> str:
    """Return a large text.

    Args:
        kb: Its size in KiB.
    """
    return "x" * (kb * 1024)


@tool(max_result_chars=3_000_000)
def huge(kb: int, ctx: RunContext[Any]) -> str:
    """Return a text too large for one Temporal payload.

    Args:
        kb: Its size in KiB.
    """
    finished(ctx)
    return "x" * (kb * 1024)


def policy(request: Request) -> Any:
    """The model: what to answer, from the prompt and how many turns the run has had (retry-proof)."""
    prompt = request.messages[0]["content"]
    prompt = prompt if isinstance(prompt, str) else prompt[0]["text"]
    turn = request.assistant_turns
    if prompt == "happy":
        plan = [reply.tool_uses([("record", {"label": "x"}), ("record", {"label": "y"})])]
    elif prompt == "kill":
        plan = [
            reply.tool_uses([("record", {"label": "a"}), ("record", {"label": "b"})]),
            reply.tool_use("slow_step", {}),
        ]
    elif prompt == "pay":
        plan = [reply.tool_uses([("pay", {"amount": 5}), ("record", {"label": "receipt"})])]
    elif prompt == "slow":
        plan = [reply.tool_uses([("slow_step", {}), ("record", {"label": "beside"})])]
    elif prompt == "structured":
        plan = [reply.tool_use("final_result", {"amount": 12, "note": "lunch"})]
    elif prompt == "huge":
        plan = [reply.tool_use("huge", {"kb": 2200})]
    elif prompt == "big":  # the inline history grows by ~450 KiB a turn
        plan = [reply.tool_use("blob", {"kb": 450 + i}) for i in range(8)]
    elif prompt.startswith("long"):  # long N: N turns of one call each
        plan = [reply.tool_use("record", {"label": f"turn {i}"}) for i in range(int(prompt.split()[1]))]
    else:
        plan = []
    return plan[turn] if turn < len(plan) else reply.text(f"finished {prompt}")


class Receipt(BaseModel):
    """A receipt."""

    amount: int
    note: str


def make_agent(base_url: str, **options: Any) -> Agent[None, None]:
    options.setdefault("max_turns", 60)
    return Agent(
        Client(base_url=base_url, api_key="sk-test"),
        model=MODEL,
        tools=[record, slow_step, pay, blob, huge],
        name=NAME,
        **options,
    )


def make_durable(base_url: str, **options: Any) -> TemporalAgent:
    fast = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=4)
    return TemporalAgent(make_agent(base_url, **options), model_activity={"retry_policy": fast})


WORKER_OPTIONS: dict[str, Any] = {
    # a killed worker's sticky queue is given up on after 1 s (not the default 5 s)
    "sticky_queue_schedule_to_start_timeout": timedelta(seconds=1),
}


def open_store(kind: str, location: str) -> Store:
    """A store on the test's database: ``sqlite`` (a file) or ``postgres`` (a DSN)."""
    if kind == "sqlite":
        return SQLiteStore(location)
    from agentkit.stores import PostgresStore

    return PostgresStore(location, max_size=4)


async def _serve(address: str, task_queue: str, base_url: str, *store: str) -> None:
    client = await TemporalClient.connect(address)
    durable = make_durable(base_url, store=open_store(*store) if store else None)
    async with durable.worker(client, task_queue=task_queue, **WORKER_OPTIONS):
        print("worker ready", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(_serve(*sys.argv[1:]))
