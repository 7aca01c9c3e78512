"""The agent loop's log events: one function per event of the README's table, so names and fields
live in one place. ``log`` is the run's structlog logger (bound to ``run_id`` and ``model``)."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio

from .types import Message, ToolUseBlock, to_wire

_PREVIEW = 300


def info_enabled(log: Any) -> bool:
    """Whether info events of this logger go anywhere (filtering loggers answer; others: assume yes)."""
    check = getattr(log, "is_enabled_for", None)
    if not callable(check):
        return True
    try:
        return bool(check(logging.INFO))
    except Exception:  # a custom logger without level support
        return True


def preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(to_wire(value), ensure_ascii=False, default=str)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + f"…(+{len(text) - _PREVIEW} chars)"


def run_start(log: Any, *, tools: int, max_turns: int, history: int, resumed: str | None) -> None:
    if resumed is None:
        log.info("agent.run.start", tools=tools, max_turns=max_turns, history=history)
    else:
        log.info("agent.run.start", tools=tools, max_turns=max_turns, history=history, resumed_at=resumed)


def run_end(
    log: Any, *, outcome: str, state: Any, duration: float, error: BaseException | None = None
) -> None:
    usage = state.usage
    fields: dict[str, Any] = {
        "outcome": outcome,
        "turns": state.turns,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "duration_ms": round(duration * 1000, 2),
    }
    if error is not None:
        fields["error"] = type(error).__name__
    else:
        fields["stop_reason"] = state.stop_reason
        fields["cache_read_input_tokens"] = usage.cache_read_input_tokens
    log.info("agent.run.end", **fields)


def run_outcome(exc: BaseException) -> str:
    return "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "error"


def model_request(log: Any, turn: int, body: dict[str, Any]) -> None:
    log.info("model.request", turn=turn, messages=len(body["messages"]), tools=len(body.get("tools", ())))


def model_response(log: Any, turn: int, message: Message, latency: float) -> None:
    usage = message.usage
    log.info(
        "model.response",
        turn=turn,
        stop_reason=message.stop_reason,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        latency_ms=round(latency * 1000, 2),
        message_id=message.id,
        request_id=message.request_id,
    )


def tool_call_start(log: Any, turn: int, tool_use: ToolUseBlock) -> None:
    log.info(
        "tool.call.start",
        turn=turn,
        tool=tool_use.name,
        tool_use_id=tool_use.id,
        input=preview(tool_use.input),
    )


def tool_call_end(
    log: Any, turn: int, tool_use: ToolUseBlock, duration: float, is_error: bool, output: Any
) -> None:
    log.info(
        "tool.call.end",
        turn=turn,
        tool=tool_use.name,
        tool_use_id=tool_use.id,
        duration_ms=round(duration * 1000, 2),
        is_error=is_error,
        output=preview(output),
    )


def tool_denied(log: Any, tool_use: ToolUseBlock, reason: str) -> None:
    log.info("tool.call.denied", tool=tool_use.name, tool_use_id=tool_use.id, reason=reason)


def tool_deferred(log: Any, turn: int, tool_use: ToolUseBlock) -> None:
    log.info("tool.call.deferred", turn=turn, tool=tool_use.name, tool_use_id=tool_use.id)


def tool_decided(log: Any, tool_use_id: str, name: str, decision: str) -> None:
    log.info("tool.call.decided", tool=name, tool_use_id=tool_use_id, decision=decision)


def dispatch_interrupted(log: Any, turn: int, answered: int) -> None:
    log.info("tool.dispatch.interrupted", turn=turn, answered=answered)


def limit(log: Any, limit: str, turns: int, tokens: int) -> None:
    log.warning("guard.limit", limit=limit, turns=turns, tokens=tokens)


def truncated_tool_use(log: Any, turn: int, message: Message) -> None:
    log.warning(
        "guard.truncated_tool_use",
        turn=turn,
        tools=[t.name for t in message.tool_uses],
        invalid=[i.id for i in message.invalid_tool_inputs],
    )


def tool_loop(log: Any, turn: int, tool: str, action: str) -> None:
    log.warning("guard.tool_loop", turn=turn, tool=tool, action=action)


def refusal(log: Any, turn: int, explanation: str | None) -> None:
    log.warning("guard.refusal", turn=turn, explanation=explanation)


def tool_retries(log: Any, tool_use: ToolUseBlock, failures: int) -> None:
    log.warning("guard.tool_retries", tool=tool_use.name, tool_use_id=tool_use.id, failures=failures)


def history_error(log: Any, exc: BaseException) -> None:
    log.error("guard.history", error=str(exc), index=getattr(exc, "index", None))


def compaction(
    log: Any,
    *,
    strategy: str,
    turn: int,
    tokens_before: int,
    tokens_after: int,
    messages_before: int,
    messages_after: int,
) -> None:
    log.info(
        "guard.compaction",
        strategy=strategy,
        turn=turn,
        tokens_before=tokens_before,
        tokens_after_estimate=tokens_after,
        messages_before=messages_before,
        messages_after=messages_after,
    )


def tool_calls_capped(log: Any, turn: int, requested: int, limit: int) -> None:
    log.warning("guard.tool_calls", turn=turn, requested=requested, limit=limit)


def duplicate_tool_use_id(log: Any, turn: int, tool_use_id: str) -> None:
    log.warning("guard.duplicate_tool_use_id", turn=turn, tool_use_id=tool_use_id)


def run_timeout(log: Any, turns: int, timeout: float | None) -> None:
    log.warning("guard.run_timeout", turns=turns, run_timeout=timeout)


def cache_breakpoints(log: Any, turn: int, dropped: list[str]) -> None:
    log.warning("guard.cache_breakpoints", turn=turn, dropped=dropped, limit=4)
