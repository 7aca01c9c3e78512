"""One agent, three endpoints: Anthropic, PoYo and ToAPIs differ only in the Client's settings.

    python examples/providers.py

``Client(provider=...)`` picks how the key is sent: ``anthropic`` and ``poyo`` use ``x-api-key``,
``toapis`` uses ``Authorization: Bearer``. PoYo wraps JSON answers in ``{"code": 200, "data": ...}``;
the client unwraps that envelope by itself (and turns a non-200 ``code`` into a typed error).

A provider runs against its real endpoint when configured (``ANTHROPIC_API_KEY``;
``POYO_API_KEY`` + ``POYO_BASE_URL``; ``TOAPIS_API_KEY`` + ``TOAPIS_BASE_URL``). Otherwise it runs
offline against a LocalServer of that flavour (its auth rules, its envelope) answering with the
offline demo model, and simulated weather: no key, no network.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
import httpx2

from agentkit import Agent, AgentKitError, Client, Provider, configure_logging
from agentkit.testing import LocalServer, OfflineModel
from agentkit.tools import weather

PROMPT = "What's the weather in Tokyo?"
MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6")
PROVIDERS: tuple[Provider, ...] = ("anthropic", "poyo", "toapis")


class EnvelopeSpy:
    """An httpx2 response hook noting whether each JSON answer came wrapped in PoYo's envelope."""

    def __init__(self) -> None:
        self.enveloped: list[bool] = []

    async def __call__(self, response: httpx2.Response) -> None:
        if response.headers.get("content-type", "").startswith("application/json"):
            body = json.loads(await response.aread())
            self.enveloped.append(isinstance(body, dict) and "code" in body and "data" in body)


def make_agent(client: Client) -> Agent[None, None]:
    """The same agent for every provider: only the client changes."""
    return Agent(client, model=MODEL, tools=[weather.get_weather], max_turns=4)


def auth_header(headers: dict[str, str]) -> str:
    if "x-api-key" in headers:
        return "x-api-key"
    if headers.get("authorization", "").lower().startswith("bearer "):
        return "Authorization: Bearer"
    return "none"


async def run_offline(provider: Provider) -> dict[str, Any]:
    # A local endpoint of this flavour that accepts only this key (sent the provider's way).
    key = f"sk-demo-{provider}"
    with (
        LocalServer(policy=OfflineModel(), flavour=provider, api_key=key) as server,
        weather.use_weather_provider(weather.SimulatedWeatherProvider()),  # no network
    ):
        spy = EnvelopeSpy()
        async with (
            httpx2.AsyncClient(event_hooks={"response": [spy]}) as http,
            Client(api_key=key, base_url=server.base_url, provider=provider, http_client=http) as client,
        ):
            result = await make_agent(client).run(PROMPT)  # non-streaming: JSON answers
        sent = server.requests[-1].headers
    return {
        "auth": auth_header(sent),
        "enveloped": all(spy.enveloped) if spy.enveloped else False,
        "text": result.text,
        "turns": result.turns,
    }


def online_settings(provider: Provider) -> tuple[str, str | None] | None:
    """``(api_key, base_url)`` from the environment, or None when this provider is not configured."""
    if provider == "anthropic":
        key = os.environ.get("ANTHROPIC_API_KEY")
        return (key, os.environ.get("ANTHROPIC_BASE_URL")) if key else None
    key, base_url = (
        os.environ.get(f"{provider.upper()}_API_KEY"),
        os.environ.get(f"{provider.upper()}_BASE_URL"),
    )
    return (key, base_url) if key and base_url else None  # agentkit never guesses a proxy's URL


async def run_online(provider: Provider, key: str, base_url: str | None) -> dict[str, Any]:
    spy = EnvelopeSpy()
    async with (
        httpx2.AsyncClient(event_hooks={"response": [spy]}, timeout=600) as http,
        Client(api_key=key, base_url=base_url, provider=provider, http_client=http) as client,
    ):
        result = await make_agent(client).run(PROMPT)
    return {"auth": client.auth, "enveloped": any(spy.enveloped), "text": result.text, "turns": result.turns}


async def main_async() -> int:
    failures = 0
    for provider in PROVIDERS:
        settings = online_settings(provider)
        where = "online" if settings else "offline"
        try:
            if settings:
                outcome = await run_online(provider, *settings)
            else:
                outcome = await run_offline(provider)
        except AgentKitError as exc:
            failures += 1
            print(f"{provider:<9} {where:<7} FAILED {type(exc).__name__}: {exc}")
            continue
        envelope = "envelope unwrapped" if outcome["enveloped"] else "plain JSON"
        print(
            f"{provider:<9} {where:<7} ok  auth: {outcome['auth']:<21}  "
            f"answer: {envelope:<18}  {outcome['turns']} turns"
        )
        print(f"          {outcome['text']}")
    return failures


def main() -> int:
    configure_logging("warning")
    print(f"the same agent and prompt ({PROMPT!r}) against each provider:")
    return 1 if anyio.run(main_async) else 0


if __name__ == "__main__":
    raise SystemExit(main())
