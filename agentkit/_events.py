"""Typed events of :meth:`Agent.stream`: enough to drive a chat UI or a server-sent-events endpoint.

Every event is a frozen dataclass with a ``kind`` string (stable, usable as an SSE event name) and
``to_dict()`` for JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .types import ToolResultBlock, ToolUseBlock, Usage, to_wire

if TYPE_CHECKING:
    from ._agent import RunResult

__all__ = [
    "AgentEvent",
    "RunFinished",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolInputDelta",
    "ToolUseStarted",
    "TurnFinished",
]


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
        }
