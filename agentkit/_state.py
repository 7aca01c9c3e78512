"""``RunState``: everything a run needs to continue, as data — in memory, or as JSON in another process.

A run stops between steps in one of four places (``RunState.step``): before a model request
(``"request"``), before the calls of the open turn (``"tools"``), waiting for a person to decide some
calls (``"awaiting_approval"``), or done (``"completed"``). ``to_json()`` works at each of them and
``RunState.from_json()`` loads it in a fresh interpreter; :meth:`Agent.resume` continues from there.

The committed history (``messages``) is valid for the API at every point: an assistant turn enters it
together with an answer for each of its ``tool_use`` blocks. Until then the turn is the *open turn*:
its blocks, the results so far, the calls waiting for approval and the decisions taken.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ._conversation import Conversation
from ._exceptions import ConfigurationError
from .types import MessageParam, ToolResultBlock, ToolUseBlock, Usage, to_wire

__all__ = ["Approve", "Decision", "Defer", "Deny", "PendingCall", "RunState", "Step"]

Step = Literal["request", "tools", "awaiting_approval", "completed"]
_FORMAT = 1


@dataclass(frozen=True)
class Deny:
    """Refuse a call: from a ``before_tool_call`` hook, or as a decision for a pending call. The model
    receives ``reason`` as an error result."""

    reason: str


@dataclass(frozen=True)
class Approve:
    """Run a pending call; ``input`` (optional) replaces the model's input and is validated like it."""

    input: dict[str, Any] | None = None


@dataclass(frozen=True)
class Defer:
    """Returned by a ``before_tool_call`` hook: the call waits for a decision (see :meth:`Agent.resume`)."""

    reason: str | None = None


Decision = Approve | Deny


@dataclass(frozen=True)
class PendingCall:
    """A tool call waiting for approval."""

    tool_use_id: str
    name: str
    input: dict[str, Any]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool_use_id": self.tool_use_id,
            "name": self.name,
            "input": self.input,
            "reason": self.reason,
        }


@dataclass
class OpenTurn:
    """An assistant turn whose calls are not all answered yet (not part of the committed history)."""

    blocks: list[Any]  # the assistant's blocks as received: models, and the same as wire dicts
    content: list[dict[str, Any]]
    merge: bool  # continues the previous assistant turn (after ``pause_turn``)
    invalid: dict[str, str] = field(default_factory=dict)  # calls whose input was not a JSON object
    gated: bool = False  # the gate (guards, hook, approval rules) has seen every call
    refused: dict[str, ToolResultBlock] = field(default_factory=dict)  # answers decided without running
    replaced: dict[str, dict[str, Any]] = field(default_factory=dict)  # input to run instead (hook, approver)
    results: dict[str, ToolResultBlock] = field(default_factory=dict)
    pending: list[PendingCall] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.blocks if isinstance(b, ToolUseBlock)]


@dataclass
class LoopGuardState:
    """The loop guard's memory: the last call's name and input, how often it repeated, strikes so far."""

    name: str = ""
    input: Any = None
    repeats: int = 0
    strikes: int = 0


@dataclass
class RunState:
    """Everything a run needs to continue. Public and JSON-serialisable (``to_json`` / ``from_json``).

    Attributes:
        run_id: the id bound in every log line of the run.
        conversation: the committed history (``messages`` is a copy of its turns).
        step: where the run stopped: ``"request"``, ``"tools"``, ``"awaiting_approval"``, ``"completed"``.
        turns: model requests so far; ``usage``: tokens summed over them.
        pending: calls waiting for a decision (when ``step == "awaiting_approval"``).
    """

    run_id: str = field(default_factory=lambda: f"run_{uuid.uuid4().hex[:16]}")
    conversation: Conversation = field(default_factory=Conversation)
    step: Step = "request"
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    tool_choice: dict[str, Any] | None = None
    limit_hit: str | None = None
    output_attempts: int = 0
    output_error: str | None = None  # the last invalid structured output, still to be answered
    output: Any = None  # the validated structured output (in memory only: read it from the RunResult)
    output_done: bool = False
    pause_pending: bool = False  # the last response was ``pause_turn``: the next one continues it
    text: str = ""  # the last response's text and stop reason
    stop_reason: str | None = None
    loop: LoopGuardState = field(default_factory=LoopGuardState)
    invalid_inputs: dict[str, int] = field(default_factory=dict)
    disabled_tools: set[str] = field(default_factory=set)
    open_turn: OpenTurn | None = None

    @property
    def messages(self) -> list[Any]:
        """The committed history (a copy)."""
        return self.conversation.messages

    @property
    def pending(self) -> list[PendingCall]:
        """The calls waiting for a decision."""
        return list(self.open_turn.pending) if self.open_turn is not None else []

    # --- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready data (see :meth:`to_json`)."""
        turn = self.open_turn
        return {
            "format": _FORMAT,
            "run_id": self.run_id,
            "step": self.step,
            "turns": self.turns,
            "usage": to_wire(self.usage),
            "messages": self.conversation.to_wire(),
            "context_tokens": self.conversation.context_tokens,
            "tool_choice": self.tool_choice,
            "limit_hit": self.limit_hit,
            "output_attempts": self.output_attempts,
            "output_error": self.output_error,
            "pause_pending": self.pause_pending,
            "text": self.text,
            "stop_reason": self.stop_reason,
            "loop": {
                "name": self.loop.name,
                "input": self.loop.input,
                "repeats": self.loop.repeats,
                "strikes": self.loop.strikes,
            },
            "invalid_inputs": dict(self.invalid_inputs),
            "disabled_tools": sorted(self.disabled_tools),
            "open_turn": None
            if turn is None
            else {
                "content": turn.content,
                "merge": turn.merge,
                "invalid": turn.invalid,
                "gated": turn.gated,
                "refused": [to_wire(r) for r in turn.refused.values()],
                "replaced": turn.replaced,
                "results": [to_wire(r) for r in turn.results.values()],
                "pending": [p.to_dict() for p in turn.pending],
                "decisions": {k: _decision_to_dict(d) for k, d in turn.decisions.items()},
            },
        }

    def to_json(self) -> str:
        """Serialise the state; load it with :meth:`RunState.from_json` (in any process)."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> RunState:
        """Load a state saved with :meth:`to_json`. Raises :class:`ConfigurationError` if it is not one."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ConfigurationError(f"RunState.from_json: not valid JSON ({exc})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> RunState:
        """Load a state from :meth:`to_dict` data."""
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise ConfigurationError(
                "RunState.from_json: not a saved run state (expected an object with "
                f'"format": {_FORMAT}, as written by RunState.to_json())'
            )
        try:
            conversation = Conversation(raw["messages"])
            conversation.context_tokens = int(raw.get("context_tokens", 0))
            loop = raw.get("loop") or {}
            turn_raw = raw.get("open_turn")
            turn = None
            if turn_raw is not None:
                results = [ToolResultBlock.model_validate(r) for r in turn_raw.get("results", ())]
                refused = [ToolResultBlock.model_validate(r) for r in turn_raw.get("refused", ())]
                content = list(turn_raw["content"])
                turn = OpenTurn(
                    blocks=list(
                        MessageParam.model_validate({"role": "assistant", "content": content}).content
                    ),
                    content=content,
                    merge=bool(turn_raw.get("merge")),
                    invalid={str(k): str(v) for k, v in (turn_raw.get("invalid") or {}).items()},
                    gated=bool(turn_raw.get("gated")),
                    refused={r.tool_use_id: r for r in refused},
                    replaced={str(k): dict(v) for k, v in (turn_raw.get("replaced") or {}).items()},
                    results={r.tool_use_id: r for r in results},
                    pending=[
                        PendingCall(p["tool_use_id"], p["name"], dict(p["input"]), p.get("reason"))
                        for p in turn_raw.get("pending", ())
                    ],
                    decisions={
                        k: _decision_from_dict(v) for k, v in (turn_raw.get("decisions") or {}).items()
                    },
                )
            step = raw["step"]
            if step not in ("request", "tools", "awaiting_approval", "completed"):
                raise ValueError(f"unknown step {step!r}")
            return cls(
                run_id=str(raw["run_id"]),
                conversation=conversation,
                step=cast(Step, step),
                turns=int(raw["turns"]),
                usage=Usage.model_validate(raw.get("usage") or {}),
                tool_choice=raw.get("tool_choice"),
                limit_hit=raw.get("limit_hit"),
                output_attempts=int(raw.get("output_attempts", 0)),
                output_error=raw.get("output_error"),
                pause_pending=bool(raw.get("pause_pending")),
                text=str(raw.get("text", "")),
                stop_reason=raw.get("stop_reason"),
                loop=LoopGuardState(
                    name=str(loop.get("name", "")),
                    input=loop.get("input"),
                    repeats=int(loop.get("repeats", 0)),
                    strikes=int(loop.get("strikes", 0)),
                ),
                invalid_inputs={str(k): int(v) for k, v in (raw.get("invalid_inputs") or {}).items()},
                disabled_tools=set(raw.get("disabled_tools") or ()),
                open_turn=turn,
            )
        except ConfigurationError:
            raise
        except Exception as exc:  # a wrong shape: say what, not where in our code
            raise ConfigurationError(
                f"RunState.from_json: the saved state is malformed ({type(exc).__name__}: {exc})"
            ) from None


def _decision_to_dict(decision: Decision) -> dict[str, Any]:
    if isinstance(decision, Deny):
        return {"deny": decision.reason}
    return {"approve": True, "input": decision.input}


def _decision_from_dict(raw: dict[str, Any]) -> Decision:
    if "deny" in raw:
        return Deny(str(raw["deny"]))
    return Approve(input=raw.get("input"))
