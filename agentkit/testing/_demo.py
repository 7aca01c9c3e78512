"""``demo_client()``: Claude when a key is configured, the offline demo model otherwise."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from .._client import Client, Provider
from ._offline import OfflineModel
from ._policies import Policy
from ._server import LocalServer

__all__ = ["OFFLINE_NOTICE", "DemoSetup", "demo_client"]

OFFLINE_NOTICE = "offline demo model — set ANTHROPIC_API_KEY to use Claude"


@dataclass(frozen=True)
class DemoSetup:
    """What :func:`demo_client` chose: the client to use and whether it is the offline model."""

    client: Client
    offline: bool


@contextmanager
def demo_client(
    *,
    provider: Provider | None = None,
    base_url: str | None = None,
    policy: Policy | None = None,
    notice: TextIO | None = sys.stderr,
) -> Iterator[DemoSetup]:
    """A :class:`Client` for examples and the CLI.

    With ``ANTHROPIC_API_KEY`` set (or an explicit ``base_url``) it talks to that endpoint. Otherwise
    it starts a :class:`LocalServer` on 127.0.0.1 answering with the offline demo model (or
    ``policy``) and says so on ``notice`` — the whole stack (HTTP, SSE, the loop) still runs for real.
    """
    if os.environ.get("ANTHROPIC_API_KEY") or base_url:
        yield DemoSetup(Client(base_url=base_url, provider=provider), offline=False)
        return
    with LocalServer(
        policy=policy or OfflineModel(), api_key=None, flavour=provider or "anthropic"
    ) as server:
        if notice is not None:
            print(OFFLINE_NOTICE, file=notice, flush=True)
        yield DemoSetup(
            Client(api_key="offline-demo", base_url=server.base_url, provider=provider), offline=True
        )
