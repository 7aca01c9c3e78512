"""``TemporalAgent``: an :class:`~agentkit.Agent` wrapped as a Temporal workflow and its activities."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from .._agent import Agent
from .._client import Client
from .._exceptions import ConfigurationError
from .._session import check_arguments
from .._state import Decision, RunState, _decision_to_dict
from . import _activities, _workflow

__all__ = ["DurableResult", "TemporalAgent"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_OPTION_KEYS = frozenset(
    {
        "start_to_close_timeout",
        "schedule_to_close_timeout",
        "schedule_to_start_timeout",
        "heartbeat_timeout",
        "retry_policy",
        "task_queue",
        "cancellation_type",
        "summary",
        "priority",
    }
)


@dataclass(frozen=True)
class DurableResult:
    """The end of a durable run: its status, last text, structured output (as data) and state."""

    status: str
    text: str
    output: Any
    state: RunState

    @property
    def messages(self) -> list[Any]:
        """The run's committed history."""
        return self.state.messages


class TemporalAgent:
    """Run an :class:`~agentkit.Agent` durably on Temporal: each model request and each tool call is an
    activity, the run's steps are the workflow, so a run survives its worker (a deploy, an OOM kill).

    Register ``workflow`` and ``activities`` on a worker (or use :meth:`worker`); start runs with
    :meth:`start` / :meth:`run`, decide calls waiting for approval with :meth:`decide`. Tools are
    unchanged; they run in the worker's activities and see ``ctx.idempotency_key``.

    Args:
        agent: the agent (its tools, prompt, limits and hooks; hooks run in workflow code, so they must
            be deterministic: no I/O, no clock, no randomness).
        name: names the workflow (``agentkit.<name>``) and activities; default ``agent.name``.
        deps: given to the tools as ``ctx.deps`` in this worker's activities (not sent anywhere).
        client: the agentkit client for model requests in activities (default ``agent.client``). Its
            HTTP retries are off there: Temporal's retry policy retries instead.
        model_activity: options of each model-request activity (``start_to_close_timeout``,
            ``retry_policy``, ``heartbeat_timeout``...), merged over the defaults.
        tool_activity: options of each tool activity, merged over the defaults; a tool's own
            ``@tool(activity_options=...)`` are merged over these.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str | None = None,
        deps: Any = None,
        client: Client | None = None,
        model_activity: Mapping[str, Any] | None = None,
        tool_activity: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(agent, Agent):
            raise ConfigurationError(
                f"TemporalAgent(agent=...): expected an Agent, got {type(agent).__name__}"
            )
        resolved = name if name is not None else agent.name
        if not isinstance(resolved, str) or not _NAME.match(resolved):
            raise ConfigurationError(
                f"TemporalAgent(name=...): got {resolved!r}; expected a name of letters, digits, '_', '-' "
                "or '.' (it names the workflow and its activities): pass name= or Agent(name=...)"
            )
        if agent.run_timeout is not None:
            raise ConfigurationError(
                f"TemporalAgent: the agent has run_timeout={agent.run_timeout:g}; a durable run's time limit "
                "is the workflow's (execution_timeout= when starting it): create the Agent without one"
            )
        self.agent = agent
        self.name = resolved
        self.deps = deps
        self.client = client
        self.workflow_name = f"agentkit.{resolved}"
        self.model_activity_name = f"agentkit.{resolved}.model_request"
        self.tool_activity_name = f"agentkit.{resolved}.tools"
        self.load_activity_name = f"agentkit.{resolved}.session_load"
        self.append_activity_name = f"agentkit.{resolved}.session_append"
        self.store_activity_options = dict(_workflow.DEFAULT_STORE_OPTIONS)
        self.model_activity_options = {
            **_workflow.DEFAULT_MODEL_OPTIONS,
            **_options("model_activity", model_activity),
        }
        self._tool_defaults = {**_workflow.DEFAULT_TOOL_OPTIONS, **_options("tool_activity", tool_activity)}
        self._tool_options: dict[str, dict[str, Any]] = {}
        for entry in agent.toolset:
            own = getattr(entry, "activity_options", None)
            options = dict(self._tool_defaults)
            if "start_to_close_timeout" not in (tool_activity or {}):
                limit = entry.timeout if entry.timeout is not None else agent.tool_timeout
                if limit is not None:  # the tool's own timeout answers first; the activity's is a backstop
                    options["start_to_close_timeout"] = timedelta(seconds=limit + 30)
            options.update(_options(f"@tool(activity_options=...) of {entry.name}", own))
            self._tool_options[entry.name] = options
        self._fixed_body, _ = agent._requests.body([], None)
        self.workflow: type = _workflow.build(self)
        self.activities: list[Any] = list(_activities.build(self))

    def tool_options(self, name: str) -> dict[str, Any]:
        """The activity options of the tool called ``name``."""
        return self._tool_options.get(name, self._tool_defaults)

    def worker(self, client: TemporalClient, *, task_queue: str, **options: Any) -> Worker:
        """A :class:`temporalio.worker.Worker` running this agent's workflow and activities."""
        return Worker(
            client, task_queue=task_queue, workflows=[self.workflow], activities=self.activities, **options
        )

    async def start(
        self,
        client: TemporalClient,
        prompt: Any = None,
        *,
        id: str,
        task_queue: str,
        history: Sequence[Any] | None = None,
        state: RunState | None = None,
        session: str | None = None,
        **options: Any,
    ) -> WorkflowHandle[Any, Any]:
        """Start a durable run (workflow ``id``) and return its handle; ``options`` go to
        :meth:`temporalio.client.Client.start_workflow` (``execution_timeout``, ...).

        ``session`` (with the agent's ``store``, the same on every worker): the run continues that
        stored session and appends its turns to it; each model activity then carries the session id
        and revision instead of the history."""
        request: dict[str, Any] = {"prompt": prompt, "history": list(history) if history else None}
        if session is not None:
            other = "history" if history is not None else "state" if state is not None else None
            check_arguments(self.agent, "TemporalAgent.start", session, other)
            request = {"prompt": prompt, "session": session}
        if state is not None:
            request = {"state": state.to_dict()}
        return await client.start_workflow(
            self.workflow_name, request, id=id, task_queue=task_queue, **options
        )

    async def run(self, client: TemporalClient, prompt: Any = None, **kwargs: Any) -> DurableResult:
        """:meth:`start`, then wait for the end (a run waiting for approval waits: see :meth:`decide`)."""
        handle = await self.start(client, prompt, **kwargs)
        return await self.result(handle)

    async def result(self, handle: WorkflowHandle[Any, Any]) -> DurableResult:
        """The end of the run behind ``handle`` (waits for it); ``output`` validated as the agent's
        ``output_type`` again (it crossed the workflow as JSON)."""
        raw = await handle.result()
        output = raw["output"]
        checker = self.agent._output
        if checker is not None and output is not None:
            output = checker._adapter.validate_python(output)
        return DurableResult(raw["status"], raw["text"], output, RunState.from_dict(raw["state"]))

    @staticmethod
    async def pending(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
        """The calls of the run waiting for a decision (``tool_use_id``, ``name``, ``input``, ``reason``)."""
        return list(await handle.query("pending"))

    @staticmethod
    async def decide(handle: WorkflowHandle[Any, Any], decisions: Mapping[str, Decision]) -> list[str]:
        """Decide the waiting calls (``{tool_use_id: Approve() | Deny("why")}``), as a Temporal update:
        checked first (a bad decision is refused and nothing is recorded), then in the workflow's
        history before any approved call runs."""
        wire = {k: _decision_to_dict(v) for k, v in decisions.items()}
        return list(await handle.execute_update("decide", wire))


def _options(where: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{where}: expected a dict of activity options, got {options!r}")
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown activity option(s) {unknown}; accepted: {', '.join(sorted(_OPTION_KEYS))}"
        )
    return dict(options)
