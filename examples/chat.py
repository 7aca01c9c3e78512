"""A multi-turn chat bot with several tools, keeping its history in a Conversation.

    python examples/chat.py                     # type messages; Ctrl-D (EOF) quits
    python examples/chat.py --demo              # a scripted three-turn conversation
    python examples/chat.py --save chat.json    # load chat.json if it exists, save after each turn

Each run appends its turns (tool calls and results included) to the Conversation, so the next
question can refer to earlier answers ("which of the two is warmer?"). Offline (no ANTHROPIC_API_KEY)
it uses the demo model, which only answers from tools but still receives the whole history.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from agentkit import (
    Agent,
    AgentRunError,
    Conversation,
    RunFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    configure_logging,
)
from agentkit.testing import demo_client
from agentkit.tools import calculator, clock, weather

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
SYSTEM = (
    "You are a friendly assistant for travellers. Use get_weather for weather, calculate for any "
    "arithmetic and the clock tools for times; keep answers short and refer back to earlier turns."
)
DEMO_SCRIPT = [
    "What's the weather in Paris?",
    "And the weather in Tokyo? Which of the two cities is warmer?",
    "What time is it in Tokyo now?",
]


async def scripted(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        print(f"you> {line}")
        yield line


async def from_stdin() -> AsyncIterator[str]:
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        # Read in a worker thread so the event loop stays free (input() would block it).
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not line:  # EOF
            return
        if line.strip():
            yield line.strip()


async def answer(agent: Agent[None, None], prompt: str, conversation: Conversation) -> None:
    """One turn: stream the answer; the run appends its messages to ``conversation``."""
    try:
        async with agent.stream(prompt, history=conversation) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, ToolCallStarted):
                    print(f"  → {event.tool_use.name}({json.dumps(event.tool_use.input)})")
                elif isinstance(event, ToolCallFinished):
                    print(f"  {'✗' if event.is_error else '←'} {event.tool_use.name} done")
                elif isinstance(event, RunFinished):
                    print()
    except AgentRunError as exc:  # a limit or a refusal: the conversation is still valid
        print(f"\n[run stopped: {exc}]")
    total = conversation.usage
    print(
        f"[history: {len(conversation)} messages · "
        f"{total.input_tokens} in / {total.output_tokens} out tokens so far]"
    )


async def chat(agent: Agent[None, None], lines: AsyncIterator[str], save: Path | None) -> None:
    conversation = Conversation()
    path = anyio.Path(save) if save is not None else None
    if path is not None and await path.exists():
        conversation = Conversation.from_json(await path.read_text(encoding="utf-8"))
        print(f"[loaded {len(conversation)} messages from {save}]")
    async for line in lines:
        await answer(agent, line, conversation)
        if path is not None:  # after every turn, so an interrupted chat keeps what it had
            await path.write_text(conversation.to_json(), encoding="utf-8")
    if save is not None:
        print(f"[saved {len(conversation)} messages to {save}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="run a scripted three-turn conversation")
    parser.add_argument("--save", type=Path, metavar="PATH", help="load/save the conversation as JSON")
    args = parser.parse_args()
    configure_logging("warning")

    with demo_client() as env:
        if env.offline:
            weather.offline()
        agent: Agent[None, None] = Agent(
            env.client,
            model=MODEL,
            system=SYSTEM,
            tools=[
                weather.get_weather,
                calculator.calculate,
                clock.current_time,
                clock.convert_time,
            ],
            max_turns=8,
        )
        lines = scripted(DEMO_SCRIPT) if args.demo else from_stdin()

        async def run() -> None:
            async with env.client:
                await chat(agent, lines, args.save)

        anyio.run(run)


if __name__ == "__main__":
    main()
