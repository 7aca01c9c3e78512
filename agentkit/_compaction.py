"""Compaction for long runs: keep a growing history under the context window, never breaking it.

Opt-in with ``Agent(compaction=Compaction(trigger_tokens=...))``. Before a model request, when the last
request's input (cache reads and writes included) reached ``trigger_tokens``, the committed history is
compacted by one strategy:

- ``"clear_tool_results"``: the content of each old ``tool_result`` is replaced by a short placeholder.
  The pair stays (the ``tool_use`` and its answer, same ids); the ``keep_tool_results`` most recent
  results and every result of the last user turn stay intact.
- ``"summarize"``: one model request (through the agent's client; its usage counts in the run's usage)
  summarises the older part of the history, which is then replaced by one user turn carrying the
  summary. The cut is only made before an assistant turn (so every ``tool_use`` before it is answered
  and no turn is split from its results), keeps at least ``keep_messages`` recent messages, and never
  drops a turn holding a server-side ``compaction`` block.

Both only ever edit ``tool_result`` content or drop whole early turns: assistant turns that stay are
sent back exactly as received (thinking signatures, ``compaction`` blocks), and each compacted history
passes the same checks as any history (:mod:`agentkit._history`) before it replaces the run's history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import _trace
from ._exceptions import ConfigurationError, HistoryError
from ._history import check_messages, check_thinking_history

if TYPE_CHECKING:
    from ._loop import _Run

__all__ = ["Compaction"]

Strategy = Literal["clear_tool_results", "summarize"]
_STRATEGIES = ("clear_tool_results", "summarize")
_CHARS_PER_TOKEN = 4  # the estimate of tokens saved, from characters removed

SUMMARY_PROMPT = (
    "The conversation above is getting too long for the context window. Write a summary of it that "
    "lets you continue the task without it: the user's requests and constraints, what has been done "
    "so far (tool calls made and the facts their results established, with exact names, numbers and "
    "identifiers you will need), decisions taken, and what is left to do. Write only the summary; do "
    "not call tools."
)
SUMMARY_HEADER = "[Summary of the earlier conversation, compacted to save context]"


@dataclass(frozen=True, slots=True)
class Compaction:
    """Compaction for long runs: pass as ``Agent(compaction=Compaction(trigger_tokens=...))``.

    Before a model request, when the previous request's input tokens (``input_tokens`` plus cache reads
    and writes, from its usage) reached ``trigger_tokens``, the run's history is compacted in place (a
    :class:`Conversation` passed as ``history=`` included). Every ``tool_use`` stays answered; assistant
    turns that stay are sent back as received (thinking signatures, server ``compaction`` blocks).

    Args:
        trigger_tokens: compact once the last request's input reached this many tokens.
        strategy: ``"clear_tool_results"`` (old results' content becomes a placeholder, no request) or
            ``"summarize"`` (one extra model request summarises the older turns into one user turn).
        keep_tool_results: ``clear_tool_results`` keeps this many most recent results intact (the last
            user turn's results are always kept).
        keep_messages: ``summarize`` keeps at least this many most recent messages verbatim.
        summary_prompt: ``summarize``'s instruction to the model (default: :data:`SUMMARY_PROMPT`).
        summary_max_tokens: ``summarize``'s ``max_tokens`` for the summary request.
    """

    trigger_tokens: int
    strategy: Strategy = "clear_tool_results"
    keep_tool_results: int = 3
    keep_messages: int = 4
    summary_prompt: str = SUMMARY_PROMPT
    summary_max_tokens: int = 2048

    def __post_init__(self) -> None:
        for name, minimum in (
            ("trigger_tokens", 1),
            ("keep_tool_results", 0),
            ("keep_messages", 1),
            ("summary_max_tokens", 1),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigurationError(
                    f"Compaction({name}=...): got {value!r}; expected an int >= {minimum}"
                )
        if self.strategy not in _STRATEGIES:
            raise ConfigurationError(
                f"Compaction(strategy=...): got {self.strategy!r}; expected one of "
                + ", ".join(repr(s) for s in _STRATEGIES)
            )
        if not isinstance(self.summary_prompt, str) or not self.summary_prompt.strip():
            raise ConfigurationError(
                f"Compaction(summary_prompt=...): got {self.summary_prompt!r}; expected a non-empty str"
            )


# --- the step ----------------------------------------------------------------------------------


async def maybe_compact(run: _Run) -> None:
    """Compact the run's committed history if the agent asks for it and the last request was large."""
    config: Compaction | None = run.agent.compaction
    if config is None:
        return
    conversation = run.state.conversation
    tokens_before = conversation.context_tokens
    if tokens_before < config.trigger_tokens:
        return
    wire = run.transcript.wire
    if config.strategy == "clear_tool_results":
        compacted = clear_tool_results(wire, config.keep_tool_results)
    else:
        compacted = await _summarize(run, config, wire)
    if compacted is None:
        return
    saved = _size(wire) - _size(compacted)
    tokens_after = max(0, tokens_before - saved // _CHARS_PER_TOKEN)
    _trace.compaction(
        run.log,
        strategy=config.strategy,
        turn=run.state.turns,
        tokens_before=tokens_before,
        tokens_after=tokens_after,
        messages_before=len(wire),
        messages_after=len(compacted),
    )
    run.transcript.replace(compacted)
    conversation.context_tokens = tokens_after


# --- clearing old tool results -----------------------------------------------------------------


def placeholder(chars: int) -> str:
    """The text that replaces a cleared result of ``chars`` characters."""
    return f"[result cleared to save context: {chars:,} chars]"


def clear_tool_results(wire: list[dict[str, Any]], keep: int) -> list[dict[str, Any]] | None:
    """A copy of ``wire`` whose old ``tool_result`` contents are placeholders, or None if nothing is
    worth clearing. Changed messages are new dicts; the others (every assistant turn) are the same."""
    last_user = max((i for i, m in enumerate(wire) if m.get("role") == "user"), default=-1)
    positions = [
        (i, j)
        for i, message in enumerate(wire)
        if message.get("role") == "user" and i != last_user
        for j, block in enumerate(_content(message))
        if isinstance(block, Mapping) and block.get("type") == "tool_result"
    ]
    recent = (
        sum(1 for b in _content(wire[last_user]) if isinstance(b, Mapping) and b.get("type") == "tool_result")
        if last_user >= 0
        else 0
    )
    old = positions[: max(0, len(positions) - max(0, keep - recent))]
    changes: dict[int, dict[int, dict[str, Any]]] = {}
    for i, j in old:
        block = wire[i]["content"][j]
        chars = _result_chars(block.get("content"))
        text = placeholder(chars)
        if chars <= len(text) or block.get("content") == text:
            continue
        changes.setdefault(i, {})[j] = {**block, "content": text}
    if not changes:
        return None
    out = list(wire)
    for i, blocks in changes.items():
        content = [blocks.get(j, b) for j, b in enumerate(wire[i]["content"])]
        out[i] = {**wire[i], "content": content}
    return out


def _result_chars(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "text":
                total += len(str(block.get("text", "")))
            else:
                total += len(json.dumps(block, ensure_ascii=False, default=str))
        return total
    return len(str(content))


# --- summarising older turns -------------------------------------------------------------------


def summary_turn(summary: str) -> dict[str, Any]:
    """The user turn that replaces the summarised part of the history."""
    return {"role": "user", "content": [{"type": "text", "text": f"{SUMMARY_HEADER}\n\n{summary}"}]}


def cut_point(wire: list[dict[str, Any]], keep_messages: int, thinking: bool) -> int | None:
    """Where to cut: the latest index ``k`` such that ``wire[:k]`` can be replaced by one summary turn
    (``wire[k]`` is an assistant turn, so every ``tool_use`` before it is answered and no turn is split
    from its results; at least ``keep_messages`` messages stay; no turn with a server ``compaction``
    block is dropped; the result passes the history checks), or None."""
    last = len(wire) - keep_messages
    for i, message in enumerate(wire):
        if message.get("role") == "assistant" and any(
            isinstance(b, Mapping) and b.get("type") == "compaction" for b in _content(message)
        ):
            last = min(last, i)
            break
    probe = summary_turn("(summary)")
    for k in range(min(last, len(wire) - 1), 0, -1):
        if wire[k].get("role") != "assistant":
            continue
        candidate = [probe, *wire[k:]]
        try:
            check_messages(candidate)
            check_thinking_history(candidate, thinking)
        except HistoryError:
            continue
        return k
    return None


async def _summarize(
    run: _Run, config: Compaction, wire: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    agent, state = run.agent, run.state
    k = cut_point(wire, config.keep_messages, agent._thinking_on)
    if k is None:
        return None
    older = wire[:k]
    body, dropped = agent._requests.body(_with_instruction(older, config.summary_prompt), {"type": "none"})
    if dropped:
        _trace.cache_breakpoints(run.log, state.turns + 1, dropped)
    body.pop("thinking", None)  # a summary needs no thinking (and its budget may exceed max_tokens)
    body["max_tokens"] = config.summary_max_tokens
    message = await agent.client.create_raw(body)
    state.usage = state.usage + message.usage
    state.conversation.usage = state.conversation.usage + message.usage
    summary = message.text.strip()
    if not summary:  # nothing to replace the turns with: keep them
        return None
    compacted = [summary_turn(summary), *wire[k:]]
    check_messages(compacted)  # cut_point checked the same shape: a bug if this fails
    return compacted


def _with_instruction(older: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """``older`` (ending with a user turn) with the summary instruction appended to its last turn."""
    last = older[-1]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    return [*older[:-1], {**last, "content": [*blocks, {"type": "text", "text": prompt}]}]


def _content(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def _size(wire: list[dict[str, Any]]) -> int:
    return len(json.dumps(wire, ensure_ascii=False, default=str))
