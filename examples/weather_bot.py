"""Weather bot: one prompt, one tool, the answer streamed as it is written.

    python examples/weather_bot.py

With ANTHROPIC_API_KEY set it talks to Claude (model: $ANTHROPIC_MODEL, default claude-sonnet-4-6)
and fetches real weather from Open-Meteo. Without a key it runs the offline demo model on a local
server and simulated weather: no key, no network, same code path (HTTP, SSE, the agent loop).
"""

from __future__ import annotations

import json
import os

import anyio

from agentkit import (
    Agent,
    RunFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    configure_logging,
)
from agentkit.testing import demo_client
from agentkit.tools import weather

PROMPT = "Check the weather in Tokyo and provide a one-sentence travel suggestion"
MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")


async def chat(agent: Agent[None, None]) -> None:
    # agent.stream() yields typed events while the run happens: text as it is generated, each tool
    # call before and after it runs, and finally RunFinished carrying the whole RunResult.
    async with agent.stream(PROMPT) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, ToolCallStarted):
                print(f"→ {event.tool_use.name}({json.dumps(event.tool_use.input)})")
            elif isinstance(event, ToolCallFinished):
                mark = "✗" if event.is_error else "←"
                print(f"{mark} {event.tool_use.name}: {event.result.content}")
            elif isinstance(event, RunFinished):
                usage = event.result.usage
                print(
                    f"\n— {event.result.turns} model requests, "
                    f"{usage.input_tokens} input + {usage.output_tokens} output tokens"
                )


def main() -> None:
    configure_logging("warning")  # the agent traces every step; show only warnings here

    # demo_client() gives a Client for Claude when ANTHROPIC_API_KEY is set, else one for the
    # offline demo model (it prints a notice on stderr saying so).
    with demo_client() as env:
        if env.offline:
            weather.offline()  # offline means no network: simulated weather data

        agent: Agent[None, None] = Agent(
            env.client,
            model=MODEL,
            system="You are a concise travel assistant. Use the tools for facts; never guess the weather.",
            # @tool functions: the signature and docstring become the schema the model sees
            tools=[weather.get_weather],
            tool_choice={"type": "auto"},  # the model decides whether to call a tool
            max_turns=5,
        )

        async def run() -> None:
            async with env.client:  # closes the client's connections at the end
                await chat(agent)

        anyio.run(run)


if __name__ == "__main__":
    main()
