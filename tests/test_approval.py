"""Approval: a run pauses at calls that need a person's decision and resumes later — from the same
state object, or from its JSON in a fresh interpreter. The history is valid at every point."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentkit import (
    Agent,
    ApprovalError,
    Approve,
    Client,
    Conversation,
    Defer,
    Deny,
    Hooks,
    RunContext,
    RunFinished,
    RunState,
    ToolApprovalRequested,
    ToolCallFinished,
    tool,
)
from agentkit.testing import LocalServer, Script, reply
from agentkit.types import ToolUseBlock

from .conftest import results_by_id, tool_use_ids

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"
ROOT = Path(__file__).resolve().parents[1]


class Ledger:
    """Tools with side effects, counted: a payment that needs approval and a lookup that does not."""

    def __init__(self) -> None:
        self.paid: list[tuple[str, int]] = []
        self.lookups = 0

        @tool(requires_approval=True)
        def pay(to: str, amount: int) -> str:
            """Send money.

            Args:
                to: Who gets it.
                amount: Euros.
            """
            self.paid.append((to, amount))
            return f"paid {amount} EUR to {to}"

        @tool
        def balance() -> str:
            """The account balance."""
            self.lookups += 1
            return "1000 EUR"

        self.tools = [pay, balance]


def script() -> Script:
    return Script(
        [
            reply.tool_uses(
                [("pay", {"to": "alice", "amount": 40}, "toolu_pay"), ("balance", {}, "toolu_bal")]
            ),
            reply.text("Done: paid alice."),
        ]
    )


def agent_for(server: LocalServer, tools: list[Any], **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    return Agent(client, model=MODEL, tools=tools, **kwargs)


async def test_a_call_needing_approval_pauses_the_run_after_the_turns_other_calls() -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        result = await agent_for(server, ledger.tools).run("Pay alice 40 EUR")
    assert result.status == "awaiting_approval"
    assert [(p.tool_use_id, p.name, p.input) for p in result.pending] == [
        ("toolu_pay", "pay", {"to": "alice", "amount": 40})
    ]
    assert ledger.lookups == 1 and ledger.paid == []  # the other call ran; the payment waits
    assert result.state is not None and result.state.step == "awaiting_approval"
    # The history is valid as it is: the paused turn enters it once every call is answered.
    Conversation(result.messages).check()
    assert tool_use_ids(result.messages) == []


async def test_resume_with_approve_runs_the_call_once_and_finishes() -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools)
        paused = await agent.run("Pay alice 40 EUR")
        assert paused.state is not None
        done = await agent.resume(paused.state, decisions={"toolu_pay": Approve()})
        assert done.status == "completed" and done.text == "Done: paid alice."
        assert ledger.paid == [("alice", 40)] and ledger.lookups == 1
        results = results_by_id(done.messages)
        assert results["toolu_pay"].content == "paid 40 EUR to alice" and not results["toolu_pay"].is_error
        assert results["toolu_bal"].content == "1000 EUR"
        Conversation(done.messages).check()
        # the second request carried both answers, in tool_use order
        second = server.requests[-1].messages
        assert [b["tool_use_id"] for b in second[-1]["content"]] == ["toolu_pay", "toolu_bal"]
        # the same state cannot be decided again: its call is no longer pending
        with pytest.raises(ApprovalError, match=r"not waiting for approval|completed"):
            await agent.resume(paused.state, decisions={"toolu_pay": Approve()})
    assert ledger.paid == [("alice", 40)]


async def test_deny_answers_the_call_with_the_reason_and_never_runs_it() -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools)
        paused = await agent.run("Pay alice 40 EUR")
        assert paused.state is not None
        done = await agent.resume(paused.state, decisions={"toolu_pay": Deny("over the weekly limit")})
    assert ledger.paid == []
    answer = results_by_id(done.messages)["toolu_pay"]
    assert answer.is_error and "over the weekly limit" in str(answer.content)
    Conversation(done.messages).check()


async def test_approval_may_edit_the_input_and_the_edit_is_validated() -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools)
        paused = await agent.run("Pay alice 40 EUR")
        assert paused.state is not None
        with pytest.raises(ApprovalError, match=r"toolu_pay.*amount"):
            await agent.resume(
                paused.state, decisions={"toolu_pay": Approve(input={"to": "alice", "amount": "x"})}
            )
        assert ledger.paid == [] and paused.state.pending  # nothing ran, still resumable
        done = await agent.resume(
            paused.state, decisions={"toolu_pay": Approve(input={"to": "alice", "amount": 25})}
        )
    assert ledger.paid == [("alice", 25)]
    assert results_by_id(done.messages)["toolu_pay"].content == "paid 25 EUR to alice"
    # the history keeps the model's own call; the edit is what ran
    calls = [
        b for m in done.messages if m.role == "assistant" for b in m.content if isinstance(b, ToolUseBlock)
    ]
    assert calls[0].input == {"to": "alice", "amount": 40}


@pytest.mark.parametrize(
    ("decisions", "match"),
    [
        ({}, r"no decision for pending call\(s\) toolu_pay \(pay\)"),
        ({"toolu_pay": Approve(), "toolu_bal": Approve()}, r"not pending: \['toolu_bal'\]"),
        ({"toolu_pay": "yes"}, r"must be Approve\(\) or Deny\(reason\)"),
    ],
)
async def test_decisions_that_do_not_fit_are_refused_before_anything_runs(decisions: Any, match: str) -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools)
        paused = await agent.run("Pay alice 40 EUR")
        assert paused.state is not None
        requests = len(server.requests)
        with pytest.raises(ApprovalError, match=match):
            await agent.resume(paused.state, decisions=decisions)
        assert len(server.requests) == requests and ledger.paid == []
        Conversation(paused.state.messages).check()
        assert [p.tool_use_id for p in paused.state.pending] == ["toolu_pay"]


async def test_requires_approval_can_decide_per_input() -> None:
    paid: list[int] = []

    @tool(requires_approval=lambda call: call["amount"] > 100)
    def pay(amount: int) -> str:
        """Send money.

        Args:
            amount: Euros.
        """
        paid.append(amount)
        return "ok"

    calls = [("pay", {"amount": 10}, "toolu_small"), ("pay", {"amount": 500}, "toolu_big")]
    with LocalServer(policy=Script([reply.tool_uses(calls), reply.text("done")])) as server:
        result = await agent_for(server, [pay]).run("pay")
    assert paid == [10]
    assert [p.tool_use_id for p in result.pending] == ["toolu_big"]


async def test_a_before_tool_call_hook_may_defer_any_call() -> None:
    ledger = Ledger()

    def hook(ctx: RunContext[Any], call: ToolUseBlock) -> Defer | None:
        return Defer("balance lookups need a supervisor") if call.name == "balance" else None

    replies = Script([reply.tool_use("balance", {}, "toolu_bal"), reply.text("1000 EUR")])
    with LocalServer(policy=replies) as server:
        agent = agent_for(server, ledger.tools, hooks=Hooks(before_tool_call=hook))
        paused = await agent.run("balance?")
        assert [(p.name, p.reason) for p in paused.pending] == [
            ("balance", "balance lookups need a supervisor")
        ]
        assert ledger.lookups == 0 and paused.state is not None
        done = await agent.resume(paused.state, decisions={"toolu_bal": Approve()})
    assert ledger.lookups == 1 and done.text == "1000 EUR"


async def test_resume_stream_reports_the_decided_calls_and_the_end() -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools)
        events: list[Any] = []
        async with agent.stream("Pay alice 40 EUR") as stream:
            async for event in stream:
                events.append(event)
        requested = [e.tool_use.id for e in events if isinstance(e, ToolApprovalRequested)]
        assert requested == ["toolu_pay"]
        assert stream.result is not None and stream.result.status == "awaiting_approval"
        assert stream.result.state is not None
        resumed: list[Any] = []
        async with agent.resume_stream(stream.result.state, decisions={"toolu_pay": Approve()}) as more:
            async for event in more:
                resumed.append(event)
    finished = [e.tool_use.id for e in resumed if isinstance(e, ToolCallFinished)]
    assert finished == ["toolu_pay"]
    assert isinstance(resumed[-1], RunFinished) and resumed[-1].result.status == "completed"
    assert ledger.paid == [("alice", 40)]


def test_resume_sync_continues_a_paused_run() -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools)
        paused = agent.run_sync("Pay alice 40 EUR")
        assert paused.state is not None
        done = agent.resume_sync(paused.state.to_json(), decisions={"toolu_pay": Approve()})
    assert done.status == "completed" and ledger.paid == [("alice", 40)]


# --- the state as JSON, in another process ----------------------------------------------------------

RESUMER = textwrap.dedent(
    """
    import json, sys
    from agentkit import Agent, Approve, Client, RunState, tool

    runs = []

    @tool(requires_approval=True)
    def pay(to: str, amount: int) -> str:
        '''Send money.

        Args:
            to: Who gets it.
            amount: Euros.
        '''
        runs.append(amount)
        return f"paid {amount} EUR to {to}"

    @tool
    def balance() -> str:
        '''The account balance.'''
        return "1000 EUR"

    base_url, path = sys.argv[1], sys.argv[2]
    state = RunState.from_json(open(path, encoding="utf-8").read())
    client = Client(api_key="sk-test", base_url=base_url)
    agent = Agent(client, model="claude-sonnet-4-6", tools=[pay, balance])
    result = agent.resume_sync(state, decisions={p.tool_use_id: Approve() for p in state.pending})
    print(json.dumps({"status": result.status, "text": result.text, "runs": runs,
                      "messages": [m.model_dump(mode="json", exclude_none=True) for m in result.messages]}))
    """
)


async def test_a_paused_run_resumes_from_its_json_in_a_fresh_interpreter(tmp_path: Path) -> None:
    ledger = Ledger()
    with LocalServer(policy=script()) as server:
        paused = await agent_for(server, ledger.tools).run("Pay alice 40 EUR")
        assert paused.state is not None
        saved = tmp_path / "state.json"
        saved.write_text(paused.state.to_json(), encoding="utf-8")
        worker = tmp_path / "worker.py"
        worker.write_text(RESUMER, encoding="utf-8")
        done = await anyio.run_process(
            [sys.executable, str(worker), server.base_url, str(saved)], check=False, cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout.decode().splitlines()[-1])
    assert out["status"] == "completed" and out["text"] == "Done: paid alice." and out["runs"] == [40]
    assert ledger.paid == []  # it ran in the other process, once
    Conversation(out["messages"]).check()


LOADER = textwrap.dedent(
    """
    import json, sys
    from agentkit import RunState
    states = json.load(sys.stdin)
    print(json.dumps([RunState.from_json(s).to_json() for s in states]))
    """
)


async def test_the_state_round_trips_at_every_step_boundary_in_a_fresh_interpreter() -> None:
    ledger = Ledger()
    checkpoints: list[tuple[str, str]] = []

    def on_step(ctx: RunContext[Any], state: RunState) -> None:
        checkpoints.append((state.step, state.to_json()))

    with LocalServer(policy=script()) as server:
        agent = agent_for(server, ledger.tools, hooks=Hooks(on_step=on_step))
        paused = await agent.run("Pay alice 40 EUR")
        assert paused.state is not None
        await agent.resume(paused.state.to_json(), decisions={"toolu_pay": Approve()})
    steps = [step for step, _ in checkpoints]
    assert steps == ["request", "tools", "awaiting_approval", "tools", "request", "completed"]
    loaded = await anyio.run_process(
        [sys.executable, "-c", LOADER], input=json.dumps([s for _, s in checkpoints]).encode()
    )
    assert [json.loads(s) for s in json.loads(loaded.stdout)] == [json.loads(s) for _, s in checkpoints]
    for _, saved in checkpoints:  # every checkpoint's committed history is valid as it stands
        Conversation(RunState.from_json(saved).messages).check()


async def test_a_run_saved_before_its_calls_ran_continues_from_there() -> None:
    """A crash between the model's answer and its calls: the checkpoint at ``tools`` resumes, and the
    model is not asked again."""
    ledger = Ledger()
    saved: list[str] = []

    def on_step(ctx: RunContext[Any], state: RunState) -> None:
        if state.step == "tools" and not saved:
            saved.append(state.to_json())
            raise KeyboardInterrupt  # the process dies here

    replies = Script([reply.tool_use("balance", {}, "toolu_bal"), reply.text("1000 EUR")])
    with LocalServer(policy=replies) as server:
        with pytest.raises(KeyboardInterrupt):
            await agent_for(server, ledger.tools, hooks=Hooks(on_step=on_step)).run("balance?")
        assert ledger.lookups == 0
        done = await agent_for(server, ledger.tools).resume(saved[0])
        assert len(server.requests) == 2  # one answer before the crash, one after the call
    assert ledger.lookups == 1 and done.text == "1000 EUR"
    assert results_by_id(done.messages)["toolu_bal"].content == "1000 EUR"


async def test_bad_states_are_refused_with_a_clear_error() -> None:
    from agentkit import ConfigurationError

    with LocalServer(policy=script()) as server:
        agent = agent_for(server, Ledger().tools)
        with pytest.raises(ConfigurationError, match="not valid JSON"):
            await agent.resume("{not json")
        with pytest.raises(ConfigurationError, match="not a saved run state"):
            await agent.resume('{"messages": []}')
        with pytest.raises(ConfigurationError, match="takes a RunState"):
            await agent.resume(42)  # type: ignore[arg-type]
