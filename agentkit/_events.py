"""What a run gives back: typed events while it runs (:meth:`Agent.stream`, enough to drive a chat UI or
a server-sent-events endpoint) and the :class:`RunResult` at the end.

Every event is a frozen dataclass with a ``kind`` string (stable, usable as an SSE event name) and
``to_dict()`` for JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal

from typing_extensions import TypeVar  # PEP 696 defaults; typing_extensions comes with pydantic

from .types import Message, MessageParam, ToolResultBlock, ToolUseBlock, Usage, to_wire

if TYPE_CHECKING:
    from ._state import PendingCall, RunState

__all__ = [
    "AgentEvent",
    "RunFinished",
    "RunResult",
    "TextDelta",
    "ThinkingDelta",
    "ToolApprovalRequested",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolInputDelta",
    "ToolUseStarted",
    "TurnFinished",
]


OutputT = TypeVar("OutputT", default=None)
RunStatus = Literal["completed", "awaiting_approval"]


@dataclass
class RunResult(Generic[OutputT]):
    """What a run returns when it ends or pauses.

    Attributes:
        text: the final assistant turn's text.
        output: the validated structured output when the agent has an ``output_type``, else None.
        messages: the history, valid to send again (every ``tool_use`` answered).
        usage: tokens summed over every request of the run, cache tokens included.
        turns: the number of model requests.
        stop_reason: the last response's stop reason.
        stopped_by_limit: ``"max_turns"`` or ``"token_budget"`` when the run was wrapped up early.
        run_id: the id bound in every log line of the run.
        status: ``"completed"``, or ``"awaiting_approval"`` when calls wait for a decision: ``pending``
            lists them and ``state`` resumes the run (:meth:`Agent.resume`, also from its JSON).
        pending: the calls waiting for a decision (each with ``tool_use_id``, ``name``, ``input``).
        state: the run's :class:`RunState`.
    """

    text: str
    output: OutputT | None
    messages: list[MessageParam]
    usage: Usage
    turns: int
    stop_reason: str | None
    stopped_by_limit: str | None = None
    run_id: str = ""
    last_message: Message | None = field(default=None, repr=False)
    status: RunStatus = "completed"
    pending: list[PendingCall] = field(default_factory=list)
    state: RunState | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """Base of all agent events."""

    kind: ClassVar[str] = "event"
    turn: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"kind": ..., field: value, ...}``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = to_wire(value)
        return out


@dataclass(frozen=True, slots=True)
class TextDelta(AgentEvent):
    """A piece of the assistant's text, as it streams."""

    kind: ClassVar[str] = "text_delta"
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta(AgentEvent):
    """A piece of extended thinking, as it streams."""

    kind: ClassVar[str] = "thinking_delta"
    thinking: str


@dataclass(frozen=True, slots=True)
class ToolUseStarted(AgentEvent):
    """The model began writing a tool call (its input follows as :class:`ToolInputDelta`)."""

    kind: ClassVar[str] = "tool_use_started"
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolInputDelta(AgentEvent):
    """More of a tool call's input JSON; ``partial_json`` is everything received so far."""

    kind: ClassVar[str] = "tool_input_delta"
    id: str
    partial_json: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted(AgentEvent):
    """A tool is about to run with this (complete) input."""

    kind: ClassVar[str] = "tool_call_started"
    tool_use: ToolUseBlock


@dataclass(frozen=True, slots=True)
class ToolApprovalRequested(AgentEvent):
    """A call waits for a decision: the run ends with ``status == "awaiting_approval"`` after the
    turn's other calls (see :meth:`Agent.resume`)."""

    kind: ClassVar[str] = "tool_approval_requested"
    tool_use: ToolUseBlock


@dataclass(frozen=True, slots=True)
class ToolCallFinished(AgentEvent):
    """A tool call ended; ``duration`` in seconds, ``is_error`` for failed calls."""

    kind: ClassVar[str] = "tool_call_finished"
    tool_use: ToolUseBlock
    result: ToolResultBlock
    duration: float
    is_error: bool


@dataclass(frozen=True, slots=True)
class TurnFinished(AgentEvent):
    """A model response arrived: its stop reason and usage."""

    kind: ClassVar[str] = "turn_finished"
    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class RunFinished(AgentEvent):
    """The run ended; ``result`` is the :class:`RunResult`."""

    kind: ClassVar[str] = "run_finished"
    result: RunResult[Any]

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "kind": self.kind,
            "turn": self.turn,
            "text": r.text,
            "stop_reason": r.stop_reason,
            "turns": r.turns,
            "usage": to_wire(r.usage),
            "stopped_by_limit": r.stopped_by_limit,
            "status": r.status,
            "pending": [p.to_dict() for p in r.pending],
        }
