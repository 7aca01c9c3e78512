"""The workflow of a durable run: agentkit's step driver is the workflow logic.

The driver (:func:`agentkit._loop.drive`) runs unchanged on Temporal's workflow event loop; only its
two kinds of I/O go elsewhere, through :class:`_WorkflowExecutor`: each model request is one activity,
each tool call is one activity, a turn's calls are scheduled together (in block order) and awaited
with ``asyncio`` primitives, which Temporal's deterministic loop implements. Approvals are an update
(``decide``): the workflow waits for it, and the decisions are in the workflow's history (and its
state) before any approved call is scheduled.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from .._conversation import Conversation
from .._exceptions import AgentKitError, ApprovalError, HistoryError
from .._loop import _Run, drive
from .._session import SessionLink
from .._state import Decision, RunState, _decision_from_dict
from .._tool_run import ToolOutcome
from ..types import Message, ToolUseBlock, to_wire
from . import _activities, _stored
from ._activities import PAYLOAD_LIMIT, ModelCall, SessionRef, ToolCall, payload_size

if TYPE_CHECKING:
    from ._agent import TemporalAgent
    from ._stored import LoadResult

HISTORY_WARNING_BYTES = 1024 * 1024
"""An inline history beyond this many bytes logs ``temporal.history_large`` once per run."""

DEFAULT_MODEL_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60), maximum_attempts=10
    ),
}
DEFAULT_TOOL_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60), maximum_attempts=10
    ),
}

DEFAULT_STORE_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=1),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10
    ),
}


class _WorkflowLog:
    """A structlog logger for workflow code: silent while Temporal replays history (each event is
    logged once, when it first happens) and stamped with the workflow's time, not the clock's."""

    __slots__ = ("_log",)

    def __init__(self, log: Any) -> None:
        self._log = log

    def bind(self, **fields: Any) -> _WorkflowLog:
        return _WorkflowLog(self._log.bind(**fields))

    def is_enabled_for(self, level: int) -> bool:
        check = getattr(self._log, "is_enabled_for", None)
        return bool(check(level)) if callable(check) else True

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._log, name)
        if not callable(method):
            return method

        def emit(*args: Any, **fields: Any) -> Any:
            if workflow.unsafe.is_replaying():
                return None
            fields.setdefault("timestamp", workflow.now().isoformat())
            return method(*args, **fields)

        return emit


class _WorkflowExecutor:
    """Model requests and tool calls as activities; a turn's calls concurrently, in block order."""

    def __init__(self, durable: TemporalAgent) -> None:
        self.durable = durable
        self.fixed = durable._fixed_body
        self.warned = False

    async def request(self, run: _Run, body: dict[str, Any]) -> Message:
        fixed = self.fixed
        extra = {
            k: v
            for k, v in body.items()
            if k != "messages" and not (k in fixed and (fixed[k] is v or fixed[k] == v))
        }
        messages: list[dict[str, Any]] | None = body["messages"]
        session: SessionRef | None = None
        link = run.session
        if link is not None:  # the history this request is built from goes to the store first
            await link.checkpoint(run.state, force=True)
            rebuilt, _ = self.durable.agent._requests.body(run.transcript.wire, None)
            if rebuilt["messages"] == messages:  # not when a before_request hook edited the messages
                session, messages = {"id": link.session, "revision": link.revision}, None
        call: ModelCall = {
            "run_id": run.state.run_id,
            "turn": run.ctx.turn,
            "messages": messages,
            "session": session,
            "extra": extra,
        }
        size = payload_size(call)
        if size > PAYLOAD_LIMIT:
            raise HistoryError(
                f"the history of run {run.state.run_id} is {size} bytes, over Temporal's payload limit of "
                f"{PAYLOAD_LIMIT} bytes for one activity input; keep durable runs' history in a store"
            )
        if size > HISTORY_WARNING_BYTES and not self.warned:
            self.warned = True
            run.log.warning(
                "temporal.history_large",
                turn=run.ctx.turn,
                bytes=size,
                limit=PAYLOAD_LIMIT,
                hint="every model activity carries the whole history inline; a store keeps it small",
            )
        result = await _activity(self.durable.model_activity_name, call, self.durable.model_activity_options)
        return _activities.message_from_result(result)

    async def call(self, run: _Run, tool_use: ToolUseBlock) -> ToolOutcome:
        call: ToolCall = {
            "run_id": run.state.run_id,
            "turn": run.state.turns,
            "id": tool_use.id,
            "name": tool_use.name,
            "input": to_wire(tool_use.input),
        }
        result = await _activity(
            self.durable.tool_activity_name, call, self.durable.tool_options(tool_use.name)
        )
        return _activities.outcome_from_result(result)

    async def run_calls(self, run: _Run, calls: list[Callable[[], Awaitable[None]]]) -> None:
        width = run.agent.max_concurrent_tool_calls
        limit = asyncio.Semaphore(width) if width is not None and len(calls) > width else None

        async def one(call: Callable[[], Awaitable[None]]) -> None:
            if limit is None:
                await call()
            else:
                async with limit:
                    await call()

        tasks = [asyncio.ensure_future(one(c)) for c in calls]  # scheduled in block order
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


async def _activity(name: str, arg: Any, options: dict[str, Any]) -> Any:
    try:
        return await workflow.execute_activity(name, arg, **options)
    except ActivityError as exc:
        cause = exc.cause
        if isinstance(cause, CancelledError):  # the workflow was cancelled: as a local cancellation
            raise asyncio.CancelledError() from None
        if isinstance(cause, ApplicationError):  # fails the workflow with the agentkit error's type
            raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
        raise


class _AgentWorkflowBase:
    """One durable run of an agent (``_durable``): ``run({"prompt": ..., "history": ..., "state": ...})``.
    :func:`build` makes a subclass per agent (Temporal wants the run method on a module-level class)."""

    _durable: ClassVar[TemporalAgent]

    def __init__(self) -> None:
        self.state: RunState | None = None
        self.log: _WorkflowLog | None = None
        self.decided: dict[str, Decision] = {}  # decided since the pause, for the store

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        durable = self._durable
        agent = durable.agent
        info = workflow.info()
        saved = request.get("state")
        link: SessionLink | None = None
        if saved is not None:
            state = RunState.from_dict(saved)
        elif request.get("session") is not None:
            link, state = await _open_session(durable, request["session"], request.get("prompt"))
        else:
            state = agent._new_state(request.get("prompt"), request.get("history"))
        if saved is None:
            state.run_id = request.get("run_id") or info.workflow_id
        self.state = state
        executor = _WorkflowExecutor(durable)  # one per run: it remembers the size warning
        while True:
            run = _Run(agent, state, None, None, False, link)
            run.executor = executor
            log = _WorkflowLog(run.log.bind(workflow_id=info.workflow_id))
            self.log = run.log = run.ctx.log = log
            result = await drive(run)
            if result.status != "awaiting_approval":
                return {
                    "status": result.status,
                    "text": result.text,
                    "output": to_wire(result.output) if result.output is not None else None,
                    "state": state.to_dict(),
                }
            await workflow.wait_condition(lambda: state.step != "awaiting_approval")
            if link is not None:  # the decisions in the store before an approved call runs
                decided, self.decided = self.decided, {}
                link.revision = await link.store.record_decisions(
                    link.session, decided, run_id=state.run_id, expected_revision=link.revision
                )

    @workflow.update(name="decide")
    async def decide(self, decisions: dict[str, dict[str, Any]]) -> list[str]:
        """Decide the calls waiting for approval: ``{tool_use_id: {"approve": true, "input": {...}} |
        {"deny": "why"}}``; returns the ids decided. The run goes on once every call is decided."""
        assert self.state is not None
        parsed = _parse(decisions)
        self._durable.agent._decide(self.state, parsed, log=self.log)
        self.decided.update(parsed)
        return sorted(decisions)

    @decide.validator
    def check_decisions(self, decisions: dict[str, dict[str, Any]]) -> None:
        if self.state is None or self.state.step != "awaiting_approval":
            raise ApplicationError("the run is not waiting for approval", type="ApprovalError")
        trial = RunState.from_dict(self.state.to_dict())
        try:
            self._durable.agent._decide(trial, _parse(decisions), log=_Silent())
        except AgentKitError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__) from None

    @workflow.query(name="state")
    def current_state(self) -> dict[str, Any] | None:
        """The run's :class:`RunState` as data (``RunState.from_dict``), at its last step."""
        return self.state.to_dict() if self.state is not None else None

    @workflow.query(name="pending")
    def pending(self) -> list[dict[str, Any]]:
        """The calls waiting for a decision."""
        return [p.to_dict() for p in self.state.pending] if self.state is not None else []


async def _open_session(durable: TemporalAgent, session: str, prompt: Any) -> tuple[SessionLink, RunState]:
    """Load the stored session (an activity) and start the run on its history, linked to the store."""
    loaded: LoadResult = await _activity(durable.load_activity_name, session, durable.store_activity_options)
    if loaded["pending"] is not None:
        raise ApprovalError(
            f"session {session!r} has a run awaiting approval (pending: {loaded['pending']}); resume it first"
        )
    stored = _stored.stored_session(session, loaded)
    conversation = Conversation(stored.messages)
    conversation.usage = stored.usage
    link = SessionLink(_stored._ActivityStore(durable), session, stored, conversation)
    return link, durable.agent._new_state(prompt, conversation)


def build(durable: TemporalAgent) -> type:
    """The workflow class of ``durable``'s agent (registered under ``durable.workflow_name``)."""
    name = "AgentWorkflow_" + re.sub(r"\W", "_", durable.name)

    async def run(self: _AgentWorkflowBase, request: dict[str, Any]) -> dict[str, Any]:
        return await self._run(request)

    run.__qualname__ = f"{name}.run"
    namespace = {"_durable": durable, "run": workflow.run(run), "__module__": __name__, "__qualname__": name}
    cls = type(name, (_AgentWorkflowBase,), namespace)
    return workflow.defn(
        name=durable.workflow_name, sandboxed=False, failure_exception_types=[AgentKitError]
    )(cls)


def _parse(decisions: Any) -> dict[str, Any]:
    if not isinstance(decisions, dict) or not all(isinstance(v, dict) for v in decisions.values()):
        raise ApplicationError(
            'decisions must be {tool_use_id: {"approve": true} | {"deny": "why"}}, '
            f"got {type(decisions).__name__}",
            type="ApprovalError",
        )
    return {str(k): _decision_from_dict(v) for k, v in decisions.items()}


class _Silent:
    """A logger that drops everything (an update's validator checks decisions without logging them)."""

    def bind(self, **fields: Any) -> _Silent:
        return self

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **fields: None
