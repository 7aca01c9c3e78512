"""Structured output: the run ends with a validated pydantic object instead of free text.

    python examples/structured_output.py [CITY]

``output_type=TripAdvice`` gives the model a ``final_result`` tool whose schema is TripAdvice's; its
input is validated by pydantic and, if invalid, the errors go back to the model to fix (up to
``output_retries`` times). ``result.output`` is then a real ``TripAdvice``.
"""

from __future__ import annotations

import os
import sys

from pydantic import BaseModel, Field

from agentkit import Agent, configure_logging
from agentkit.testing import demo_client
from agentkit.tools import weather

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")


class TripAdvice(BaseModel):
    """Travel advice for one city, based on its current weather."""

    city: str = Field(description="The city, as the user named it")
    temperature_c: float = Field(ge=-90, le=60, description="Current temperature in °C")
    condition: str = Field(min_length=2, description="Current conditions, e.g. 'light rain'")
    suggestion: str = Field(min_length=10, description="One sentence of travel advice")


def main() -> None:
    city = sys.argv[1] if len(sys.argv) > 1 else "Tokyo"
    configure_logging("warning")
    with demo_client() as env:
        if env.offline:
            weather.offline()
        agent: Agent[None, TripAdvice] = Agent(
            env.client,
            model=MODEL,
            tools=[weather.get_weather],
            output_type=TripAdvice,
            max_turns=5,
        )
        # run_sync() starts an event loop, runs to the end and closes the client's connections.
        result = agent.run_sync(f"Check the weather in {city} and give me travel advice for today.")

    advice = result.output
    assert isinstance(advice, TripAdvice)  # set whenever the run succeeds with an output_type
    print(repr(advice))
    print(advice.model_dump_json(indent=2))
    print(f"{advice.city}: {advice.temperature_c:.1f} °C, {advice.condition}. {advice.suggestion}")


if __name__ == "__main__":
    main()
