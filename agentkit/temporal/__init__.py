"""Durable runs on Temporal (``pip install 'agentkit[temporal]'``).

Wrap an :class:`~agentkit.Agent` in :class:`TemporalAgent`; register its ``workflow`` and
``activities`` on a worker; start runs with :meth:`TemporalAgent.start`. Each model request is one
activity and each tool call is one activity, so a run survives the worker that started it: a new
worker replays the workflow's history and goes on from the last finished activity.

    durable = TemporalAgent(agent, name="support")
    async with durable.worker(client, task_queue="agents"):
        result = await durable.run(client, "Where is my order?", id="order-42", task_queue="agents")

With ``Agent(..., store=...)`` and ``durable.start(..., session="user-42")`` the run's history lives in
the store: each model activity carries the session id and revision instead of the messages.
"""

from __future__ import annotations

try:
    import temporalio  # noqa: F401
except ImportError:  # pragma: no cover - depends on the installed extras
    raise ImportError("agentkit.temporal needs the Temporal SDK: pip install 'agentkit[temporal]'") from None

from . import _exit  # noqa: F401  (an exit hook: see _exit.py)
from ._activities import NON_RETRYABLE_STATUS, PAYLOAD_LIMIT, ModelCall, ModelResult, SessionRef, ToolCall
from ._agent import DurableResult, TemporalAgent
from ._dev import dev_server, temporal_cli
from ._workflow import HISTORY_WARNING_BYTES

__all__ = [
    "HISTORY_WARNING_BYTES",
    "NON_RETRYABLE_STATUS",
    "PAYLOAD_LIMIT",
    "DurableResult",
    "ModelCall",
    "ModelResult",
    "SessionRef",
    "TemporalAgent",
    "ToolCall",
    "dev_server",
    "temporal_cli",
]
