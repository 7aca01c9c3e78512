"""Conversation-history validation, shared by the agent loop (before every request) and the local server.

The endpoints are stateless: a history the API rejects fails on *every* later request. These checks
mirror the API's 400s (wire reference §3-§5) on raw JSON dicts, in one linear pass, without pydantic:

- :func:`check_messages` — shape, roles, non-empty text, the tool-result rule, thinking fields.
- :func:`check_thinking_history` — with thinking on, the running tool loop must keep its thinking block.
- :func:`repair_history` — answer every unanswered ``tool_use`` with an error ``tool_result``.

Error messages name ``messages.N`` (and ``.content.M``) like the API does, and say what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._exceptions import HistoryError

__all__ = ["INTERRUPTED_RESULT", "check_messages", "check_thinking_history", "repair_history"]

#: Text of the ``tool_result`` that :func:`repair_history` inserts for an unanswered ``tool_use``.
INTERRUPTED_RESULT = "Tool call not run: conversation was interrupted"

_ROLES = ("user", "assistant")
_THINKING_TYPES = ("thinking", "redacted_thinking")


def _fail(message: str, index: int | None) -> HistoryError:
    return HistoryError(message, index=index)


def _is_map(value: Any) -> bool:
    """``isinstance(value, Mapping)``, with the common case (a dict) first: abc checks are slow."""
    return type(value) is dict or isinstance(value, Mapping)


def _blocks(content: Any) -> Sequence[Any]:
    """The content as a list of blocks (a string is one text block; empty strings count as none)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content  # type: ignore[no-any-return]


def _leading_results(blocks: Sequence[Any]) -> int:
    """How many blocks at the start of ``blocks`` are ``tool_result`` blocks."""
    n = 0
    for block in blocks:
        if _is_map(block) and block.get("type") == "tool_result":
            n += 1
        else:
            break
    return n


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Consecutive same-role messages as one turn each: (role, message indexes).

    The API combines consecutive ``user`` messages, and consecutive ``assistant`` messages, into one
    turn (wire reference §3, "the API merges consecutive same-role turns"); the tool-result rule and
    the thinking rule apply to those combined turns. Assumes every message has a valid role."""
    turns: list[tuple[str, list[int]]] = []
    for i, msg in enumerate(messages):
        role = msg["role"]
        if turns and turns[-1][0] == role:
            turns[-1][1].append(i)
        else:
            turns.append((role, [i]))
    return turns


def _first_block(messages: list[dict[str, Any]], indexes: list[int]) -> tuple[int, int, Any] | None:
    """The first block of a (combined) turn, with where it sits: (message index, block index, block)."""
    for i in indexes:
        blocks = _blocks(messages[i].get("content"))
        if blocks:
            return i, 0, blocks[0]
    return None


def check_messages(messages: list[dict[str, Any]]) -> None:
    """Raise :class:`~agentkit.HistoryError` (with ``index``) if the API would reject ``messages``.

    Checks, in one pass: a non-empty list; roles ``user``/``assistant`` only, starting with ``user``;
    content a non-empty string or a non-empty list of blocks with a string ``type`` (a final
    ``assistant`` message — a prefill — may be empty); text blocks non-empty, also inside
    ``tool_result`` content; ``tool_use`` only in assistant turns with unique ids; every ``tool_use``
    answered by exactly one ``tool_result`` at the start of the next user turn (text may follow, never
    precede), and no ``tool_result`` without its ``tool_use``; thinking blocks with string ``thinking``
    and ``signature``; redacted thinking with ``data``. Consecutive messages of one role are one turn,
    as the API combines them. A final assistant message is a prefill: allowed unless it has ``tool_use``
    blocks (they cannot be answered) or ends in whitespace.
    """
    if not isinstance(messages, list):
        raise _fail("messages: Input should be a valid list", None)
    if not messages:
        raise _fail("messages: at least one message is required", None)
    last = len(messages) - 1
    for i, msg in enumerate(messages):
        if not _is_map(msg):
            raise _fail(f"messages.{i}: Input should be a valid dictionary", i)
        role = msg.get("role")
        if role not in _ROLES:
            if role is None:
                raise _fail(f"messages.{i}.role: Field required", i)
            raise _fail(f"messages.{i}.role: Input should be 'user' or 'assistant' (got {role!r})", i)
        if i == 0 and role != "user":
            raise _fail(
                "messages.0.role: the first message must use the `user` role; "
                "start the conversation with a user message",
                0,
            )
        if "content" not in msg:
            raise _fail(f"messages.{i}.content: Field required", i)
        content = msg["content"]
        if not isinstance(content, str | list):
            raise _fail(f"messages.{i}.content: Input should be a valid string or a list of blocks", i)
        if not _blocks(content) and not (role == "assistant" and i == last):
            raise _fail(
                f"messages.{i}: all messages must have non-empty content except for the optional final "
                "assistant message",
                i,
            )
    seen_tool_ids: set[str] = set()
    pending: list[str] = []  # tool_use ids of the previous assistant turn, awaiting results
    pending_at = 0
    for role, indexes in _turns(messages):
        if role == "user":
            _check_user(messages, indexes, pending, pending_at)
            pending = []
        else:
            pending = _check_assistant(messages, indexes, seen_tool_ids)
            pending_at = indexes[-1]
    if messages[last]["role"] == "assistant":
        if pending:
            raise _missing_results(last, pending)
        blocks = _blocks(messages[last]["content"])
        if blocks:
            tail = blocks[-1]
            if (
                _is_map(tail)
                and tail.get("type") == "text"
                and isinstance(tail.get("text"), str)
                and tail["text"] != tail["text"].rstrip()
            ):
                raise _fail(
                    f"messages.{last}: final assistant content cannot end with trailing whitespace "
                    "(this message is a prefill); strip it",
                    last,
                )


def _missing_results(index: int, ids: Sequence[str]) -> HistoryError:
    return _fail(
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the next "
        "message.",
        index,
    )


def _check_text(where: str, i: int, block: Mapping[str, Any]) -> None:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{where}.text: Input should be a valid string", i)
    if not text:
        raise _fail(f"{where}.text: text content blocks must be non-empty", i)


def _check_block_common(i: int, j: int, block: Any) -> str:
    if not _is_map(block):
        raise _fail(f"messages.{i}.content.{j}: Input should be a valid dictionary (a content block)", i)
    btype = block.get("type")
    if not isinstance(btype, str):
        raise _fail(f"messages.{i}.content.{j}.type: Field required (every content block needs a `type`)", i)
    if btype == "text":
        _check_text(f"messages.{i}.content.{j}", i, block)
    return btype


def _check_result_content(i: int, j: int, content: Any) -> None:
    where = f"messages.{i}.content.{j}.tool_result.content"
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(f"{where}: Input should be a valid string or list", i)
    for k, inner in enumerate(content):
        if _is_map(inner) and inner.get("type") == "text":
            _check_text(f"{where}.{k}", i, inner)


def _check_user(
    messages: list[dict[str, Any]], indexes: list[int], pending: list[str], pending_at: int
) -> None:
    answered: set[str] = set()
    after_other = False  # a block that is not a tool_result came first: results must lead the turn
    for i in indexes:
        for j, block in enumerate(_blocks(messages[i]["content"])):
            after_other = _check_user_block(i, j, block, pending, pending_at, answered, after_other)
    if len(answered) != len(pending):
        raise _missing_results(pending_at, [tid for tid in pending if tid not in answered])


def _check_user_block(
    i: int, j: int, block: Any, pending: list[str], pending_at: int, answered: set[str], after_other: bool
) -> bool:
    """Check one block of a user turn; returns whether a non-result block has come by now."""
    btype = _check_block_common(i, j, block)
    if btype == "tool_result":
        tid = block.get("tool_use_id")
        if not isinstance(tid, str):
            raise _fail(f"messages.{i}.content.{j}.tool_result.tool_use_id: Field required", i)
        if tid not in pending:
            raise _fail(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{tid}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
                "message.",
                i,
            )
        if tid in answered:
            raise _fail(
                f"messages.{i}.content.{j}: duplicate `tool_result` for `tool_use_id` {tid}; "
                "answer each `tool_use` exactly once",
                i,
            )
        if after_other:
            err = _missing_results(pending_at, [tid])
            raise _fail(
                f"{err} (messages.{i}.content.{j}: `tool_result` blocks must come first in the user "
                "message, before any other content)",
                pending_at,
            )
        answered.add(tid)
        _check_result_content(i, j, block.get("content"))
        return after_other
    if btype in ("tool_use", "thinking", "redacted_thinking"):
        raise _fail(f"messages.{i}.content.{j}: `{btype}` blocks can only appear in `assistant` messages", i)
    return True


def _check_assistant(messages: list[dict[str, Any]], indexes: list[int], seen: set[str]) -> list[str]:
    ids: list[str] = []
    placed = ((m, j, b) for m in indexes for j, b in enumerate(_blocks(messages[m]["content"])))
    for i, j, block in placed:
        btype = _check_block_common(i, j, block)
        if btype == "tool_use":
            tid = block.get("id")
            if not isinstance(tid, str) or not tid:
                raise _fail(f"messages.{i}.content.{j}.tool_use.id: Field required", i)
            if not isinstance(block.get("name"), str):
                raise _fail(f"messages.{i}.content.{j}.tool_use.name: Field required", i)
            if not isinstance(block.get("input"), Mapping):
                raise _fail(f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary", i)
            if tid in seen:
                raise _fail(f"messages.{i}.content.{j}: `tool_use` ids must be unique (duplicate: {tid})", i)
            seen.add(tid)
            ids.append(tid)
        elif btype == "thinking":
            if not isinstance(block.get("signature"), str):
                raise _fail(
                    f"messages.{i}.content.{j}.thinking.signature: Field required (send thinking blocks "
                    "back exactly as received)",
                    i,
                )
            if not isinstance(block.get("thinking"), str):
                raise _fail(f"messages.{i}.content.{j}.thinking.thinking: Field required", i)
        elif btype == "redacted_thinking":
            if not isinstance(block.get("data"), str):
                raise _fail(
                    f"messages.{i}.content.{j}.redacted_thinking.data: Field required (send redacted "
                    "thinking blocks back exactly as received)",
                    i,
                )
        elif btype == "tool_result":
            raise _fail(
                f"messages.{i}.content.{j}: `tool_result` blocks can only appear in `user` messages", i
            )
    return ids


def _starts_with(messages: list[dict[str, Any]], indexes: list[int], types: tuple[str, ...]) -> bool:
    first = _first_block(messages, indexes)
    return first is not None and _is_map(first[2]) and first[2].get("type") in types


def check_thinking_history(messages: list[dict[str, Any]], thinking_enabled: bool) -> None:
    """With thinking on, raise :class:`~agentkit.HistoryError` if the running turn lost its thinking.

    The running turn is the chain of assistant turns linked by user turns that start with
    ``tool_result`` blocks (consecutive same-role messages are one turn, as the API combines them). If
    the conversation is mid tool loop (the last user turn starts with ``tool_result`` blocks) or ends
    with an assistant turn, that running turn must start with a ``thinking`` or ``redacted_thinking``
    block (wire reference §5); the last assistant turn starting with one also passes. Assumes
    :func:`check_messages` passed.
    """
    if not thinking_enabled or not messages:
        return
    turns = _turns(messages)
    newest = len(turns) - 1
    if turns[newest][0] == "user":
        if not _starts_with(messages, turns[newest][1], ("tool_result",)) or newest < 1:
            return  # a fresh user prompt: no running turn
        newest -= 1
    start = newest
    while start >= 2 and _starts_with(messages, turns[start - 1][1], ("tool_result",)):
        start -= 2
    if _starts_with(messages, turns[start][1], _THINKING_TYPES) or _starts_with(
        messages, turns[newest][1], _THINKING_TYPES
    ):
        return
    placed = _first_block(messages, turns[start][1])
    first = placed[2] if placed else None
    found = first.get("type") if isinstance(first, Mapping) else "no content"
    index = placed[0] if placed else turns[start][1][0]
    block = placed[1] if placed else 0
    raise _fail(
        f"messages.{index}.content.{block}.type: Expected `thinking` or `redacted_thinking`, but found "
        f"`{found}`. "
        "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
        "(preceding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
        "thinking blocks from previous turns: send assistant turns back verbatim. To avoid this "
        "requirement, disable `thinking`.",
        index,
    )


def repair_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return a copy of ``messages`` where every ``tool_use`` has its ``tool_result``; nothing else changes.

    A missing result is added as ``{"type": "tool_result", "tool_use_id": id, "content":
    INTERRUPTED_RESULT, "is_error": True}`` at the start of the following user message (results already
    there for that turn are moved to the front, before any text), or in a new user message when the
    assistant message is the last one or is followed by another assistant message. The input is never
    mutated: changed messages are new dicts, unchanged ones are shared.
    """
    out: list[dict[str, Any]] = []
    n = len(messages)
    i = 0
    while i < n:
        msg = messages[i]
        out.append(msg)
        i += 1
        if msg.get("role") != "assistant":
            continue
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        ids = [
            b["id"]
            for b in content
            if _is_map(b) and b.get("type") == "tool_use" and isinstance(b.get("id"), str)
        ]
        if not ids:
            continue
        nxt = messages[i] if i < n else None
        if nxt is None or nxt.get("role") != "user":
            out.append({"role": "user", "content": [_interrupted(tid) for tid in dict.fromkeys(ids)]})
            continue
        out.append(_answer(nxt, ids))
        i += 1
    return out


def _interrupted(tool_use_id: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": INTERRUPTED_RESULT,
        "is_error": True,
    }


def _answer(user_msg: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    content = user_msg.get("content")
    blocks: list[Any]
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}] if content else []
    elif isinstance(content, list):
        blocks = content
    else:
        blocks = []
    wanted = set(ids)
    results: list[Any] = []
    rest: list[Any] = []
    answered: set[str] = set()
    for block in blocks:
        if (
            _is_map(block)
            and block.get("type") == "tool_result"
            and block.get("tool_use_id") in wanted
            and block.get("tool_use_id") not in answered
        ):
            answered.add(block["tool_use_id"])
            results.append(block)
        else:
            rest.append(block)
    if len(answered) == len(wanted) and blocks[: len(results)] == results and content is not None:
        return user_msg  # already valid: keep the very same dict
    results.extend(_interrupted(tid) for tid in dict.fromkeys(ids) if tid not in answered)
    return {**user_msg, "content": results + rest}
