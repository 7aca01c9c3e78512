"""A payment that waits for a person: one process runs the agent until the call needs approval and
saves the run; later, another process (another worker, another request) approves or denies it and the
run finishes there.

    python examples/approval.py                       # the whole story, offline: two processes
    python examples/approval.py start 'Send 40 EUR to "Alice" for the team lunch' --state run.json
    python examples/approval.py decide --state run.json             # approve
    python examples/approval.py decide --state run.json --deny "over budget"

``start`` prints the pending call and writes the run's state (JSON) to ``--state``; ``decide`` loads
it, decides, resumes, and writes the finished state back, so a second ``decide`` finds nothing to
decide. A file is not a store: two workers deciding the same file at once would both run the payment.
Services keep the state in a store that records each decision before the tool runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from agentkit import Agent, AgentKitError, Approve, Client, Deny, RunResult, RunState, configure_logging, tool
from agentkit.testing import demo_client

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
PROMPT = 'Send 40 EUR to "Alice" for the team lunch'


@tool(requires_approval=lambda call: call["amount_eur"] > 0)  # every payment out needs a person
def send_payment(recipient: str, amount_eur: float, memo: str = "") -> str:
    """Send a payment from the company account.

    Args:
        recipient: Who receives the money, e.g. "Alice".
        amount_eur: The amount in euros.
        memo: A note for the bank statement.
    """
    # A real tool calls the bank here, with an idempotency key, so that a retried call pays once.
    return f"sent {amount_eur:.2f} EUR to {recipient}" + (f" ({memo})" if memo else "")


def make_agent(client: Client) -> Agent[None, None]:
    return Agent(
        client,
        model=MODEL,
        system="You are the office assistant. Use send_payment for payments.",
        tools=[send_payment],
        max_turns=4,
    )


def report(result: RunResult[None]) -> None:
    if result.status == "awaiting_approval":
        for call in result.pending:
            print(f"waiting for approval: {call.name}({json.dumps(call.input)})  [{call.tool_use_id}]")
    else:
        print(f"answer: {result.text}")


def start(prompt: str, state_path: Path) -> int:
    """Process 1: run until a call needs approval, then save the run."""
    with demo_client() as env:
        result = make_agent(env.client).run_sync(prompt)
    report(result)
    assert result.state is not None
    state_path.write_text(result.state.to_json(), encoding="utf-8")
    print(f"saved the run to {state_path} ({result.status})")
    return 0


def decide(state_path: Path, deny: str | None) -> int:
    """Process 2: load the saved run, decide every pending call, finish the run."""
    state = RunState.from_json(state_path.read_text(encoding="utf-8"))
    if not state.pending:
        print(f"nothing to decide: the run in {state_path} is {state.step}")
        return 1
    decision = Deny(deny) if deny else Approve()
    for call in state.pending:
        verdict = f"denied ({deny})" if deny else "approved"
        print(f"{verdict}: {call.name}({json.dumps(call.input)})")
    with demo_client() as env:
        result = make_agent(env.client).resume_sync(
            state, decisions={c.tool_use_id: decision for c in state.pending}
        )
    report(result)
    assert result.state is not None
    state_path.write_text(result.state.to_json(), encoding="utf-8")  # decided: not pending any more
    return 0


def story() -> int:
    """Both halves, each in a process of its own, as two workers of a service would run them."""
    state_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"agentkit-approval-{os.getpid()}.json"
    me = [sys.executable, __file__]
    try:
        for step in (["start", PROMPT], ["decide"], ["decide"]):
            print(f"$ approval.py {' '.join(step)} --state {state_path.name}", flush=True)
            done = subprocess.run([*me, *step, "--state", str(state_path)], text=True, capture_output=True)
            sys.stdout.write(done.stdout)
            if done.returncode not in (0, 1) or (step[0] == "start" and done.returncode):
                sys.stderr.write(done.stderr)
                return 1
        final = RunState.from_json(state_path.read_text(encoding="utf-8"))
        print(f"the run is {final.step} after {final.turns} model requests; the second decide found nothing")
        return 0 if final.step == "completed" else 1
    finally:
        state_path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    first = sub.add_parser("start", help="run until a call needs approval; save the run")
    first.add_argument("prompt", nargs="?", default=PROMPT)
    first.add_argument("--state", type=Path, required=True)
    second = sub.add_parser("decide", help="approve (or --deny) the saved run's pending calls; finish it")
    second.add_argument("--state", type=Path, required=True)
    second.add_argument("--deny", metavar="REASON", help="deny with this reason instead of approving")
    args = parser.parse_args()
    configure_logging("warning")
    try:
        if args.command == "start":
            return start(args.prompt, args.state)
        if args.command == "decide":
            return decide(args.state, args.deny)
        return story()
    except AgentKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
