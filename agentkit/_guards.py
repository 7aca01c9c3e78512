"""The guards of a run: limits and wrap-up, the loop guard, the per-tool retry budget and the history
check before every request. Each reads and writes :class:`RunState`, so a resumed run keeps them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _trace
from ._exceptions import AgentRunError, HistoryError, MaxTurnsExceeded, TokenBudgetExceeded
from ._history import check_messages, check_thinking_history
from ._output import OUTPUT_TOOL
from ._state import RunState
from .types import ToolResultBlock, ToolUseBlock

if TYPE_CHECKING:
    from ._conversation import _Transcript

WRAP_UP_PROMPT = (
    "You have reached the limit of steps for this task. Do not call any more tools: answer now with "
    "the best result you have so far, and say briefly what is left undone."
)


def limit_reached(state: RunState, max_turns: int, token_budget: int | None) -> str | None:
    """``"max_turns"`` or ``"token_budget"`` once the run has used it up, else None."""
    if state.turns >= max_turns:
        return "max_turns"
    if token_budget is not None and state.usage.total_tokens >= token_budget:
        return "token_budget"
    return None


def limit_error(limit: str, state: RunState, max_turns: int, token_budget: int | None) -> AgentRunError:
    if limit == "token_budget":
        return TokenBudgetExceeded(
            f"the run spent {state.usage.total_tokens} tokens, over its budget of {token_budget}",
            messages=state.messages,
            usage=state.usage,
        )
    return MaxTurnsExceeded(
        f"the run reached max_turns={max_turns} without a final answer",
        messages=state.messages,
        usage=state.usage,
    )


def loop_check(state: RunState, limit: int | None, tool_uses: list[ToolUseBlock]) -> dict[str, str]:
    """The loop guard: ``{tool_use_id: error text}`` for calls repeating the same tool with the same
    input ``limit`` times in a row. Each such refusal is a strike; the run stops at the second."""
    blocked: dict[str, str] = {}
    if limit is None:
        return blocked
    memory = state.loop
    for tool_use in tool_uses:
        if tool_use.name == OUTPUT_TOOL:  # bounded by output_retries instead
            continue
        if tool_use.name == memory.name and tool_use.input == memory.input:
            memory.repeats += 1
        else:
            memory.name, memory.input, memory.repeats = tool_use.name, tool_use.input, 1
        if memory.repeats >= limit:
            memory.strikes += 1
            memory.repeats = 0
            blocked[tool_use.id] = (
                f"refused: {tool_use.name} was called with the same input {limit} times in a row "
                "and would give the same result. Use the results you already have, change the input, "
                "or answer the user."
            )
    return blocked


def retry_budget(
    state: RunState,
    retries: int | None,
    tool_use: ToolUseBlock,
    result: ToolResultBlock,
    invalid: bool,
    log: Any,
) -> ToolResultBlock:
    """Count invalid inputs per tool in a row; the last allowed failure says the tool is now disabled."""
    if retries is None or tool_use.name == OUTPUT_TOOL:
        return result
    if not invalid:
        state.invalid_inputs.pop(tool_use.name, None)
        return result
    count = state.invalid_inputs.get(tool_use.name, 0) + 1
    state.invalid_inputs[tool_use.name] = count
    if count < retries:
        return result
    state.disabled_tools.add(tool_use.name)
    _trace.tool_retries(log, tool_use, count)
    final = (
        f"{result.content}\nThis was the last attempt allowed ({count} invalid inputs in a row): "
        f"{tool_use.name} is now disabled for the rest of this run. Answer without it."
    )
    return result.model_copy(update={"content": final})


def disabled_reason(tool_name: str, retries: int | None) -> str:
    return (
        f"refused: {tool_name} is disabled for the rest of this run after "
        f"{retries} invalid inputs in a row. Answer without it."
    )


def check_history(transcript: _Transcript, wire: list[dict[str, Any]], thinking: bool, log: Any) -> None:
    """The history check before a request. The whole history is checked before the first request;
    after that only the part that may have changed (from the last user turn already checked)."""
    start = 0
    if transcript.checked:
        start = min(transcript.checked, len(wire)) - 1
        # back to the first message of a user turn (consecutive user messages are one turn)
        while start > 0 and (wire[start].get("role") != "user" or wire[start - 1].get("role") == "user"):
            start -= 1
    try:
        try:
            check_messages(wire[start:] if start else wire)
        except HistoryError:
            if not start:
                raise
            check_messages(wire)  # report the error with indexes of the whole history
        if thinking:
            check_thinking_history(wire, True)
        transcript.checked = len(wire)
    except Exception as exc:
        _trace.history_error(log, exc)
        raise
