"""``Conversation``, the history kept across runs, and ``_Transcript``, the only writer of a run's history.

Turns are kept as models (for the user) and as wire dicts (sent with every request, built once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from pydantic import ValidationError

from . import _validate
from ._exceptions import ConversationBusyError
from ._history import check_messages, repair_history
from ._prompt import is_content, prompt_blocks
from .types import Message, MessageParam, TextBlock, ToolResultBlock, _message_params_adapter, to_wire

__all__ = ["Conversation"]

Prompt = str | Sequence[MessageParam | Mapping[str, Any]] | Sequence[Any] | None


class Conversation:
    """History carried across runs (multi-turn bots). Runs append to it in place, so even a run that
    fails or is cancelled leaves it valid to continue (and an agent with ``compaction=`` compacts it in
    place). One run writes it at a time: another run given it meanwhile raises
    :class:`ConversationBusyError`. Serialises to and from JSON. ``usage`` sums the tokens of its
    requests; ``context_tokens`` is the input size (cache included) of the last one."""

    def __init__(self, messages: Iterable[MessageParam | Mapping[str, Any]] = ()) -> None:
        self._messages: list[MessageParam] = _as_params(messages)
        self._wire: list[dict[str, Any]] | None = None  # built on first use, then kept in step
        from .types import Usage

        self.usage = Usage()
        #: input tokens (cache reads and writes included) of the last request made with this history:
        #: what ``Compaction.trigger_tokens`` is compared with
        self.context_tokens = 0
        self._writer: str | None = None  # the run_id of the run writing it, if one is

    def __getstate__(self) -> dict[str, Any]:
        # A copy (copy, deepcopy, pickle) is a history of its own: no run is writing it.
        return {**self.__dict__, "_writer": None}

    def _check_free(self) -> None:
        """Raise :class:`ConversationBusyError` if a run is writing this conversation."""
        if self._writer is not None:
            raise ConversationBusyError(
                f"another run ({self._writer}) is still writing this Conversation; runs of one "
                "conversation take turns (await the first, or serialise the requests of one "
                "conversation). Nothing of this run was sent or added.",
                run_id=self._writer,
            )

    @contextmanager
    def _written_by(self, run_id: str) -> Iterator[None]:
        """Claim the conversation for one run, for the block."""
        self._check_free()
        self._writer = run_id
        try:
            yield
        finally:
            self._writer = None

    @property
    def messages(self) -> list[MessageParam]:
        """The turns so far (a copy)."""
        return list(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __repr__(self) -> str:
        return f"Conversation({len(self._messages)} messages)"

    def to_wire(self) -> list[dict[str, Any]]:
        """The history as JSON-ready dicts."""
        return list(self._wire_list())

    def _wire_list(self) -> list[dict[str, Any]]:
        if self._wire is None or len(self._wire) != len(self._messages):
            self._wire = [cast(dict[str, Any], to_wire(m)) for m in self._messages]
        return self._wire

    def to_json(self) -> str:
        """Serialise the history (and usage) to a JSON string."""
        data = {
            "messages": self.to_wire(),
            "usage": to_wire(self.usage),
            "context_tokens": self.context_tokens,
        }
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Conversation:
        """Load a conversation saved with :meth:`to_json` (or a bare list of messages). It is checked
        like any history: a broken one raises :class:`HistoryError` (see :meth:`repair`); text that is
        not such JSON raises :class:`ConfigurationError`."""
        messages, usage, context_tokens = _validate.saved_conversation(data)
        conversation = cls(messages)
        if usage is not None:
            conversation.usage = usage
        conversation.context_tokens = context_tokens
        conversation.check()
        return conversation

    def check(self) -> None:
        """Raise :class:`HistoryError` (with the message index) if the API would reject this history
        when the next user turn is added to it."""
        _check_stored(self.to_wire())

    def repair(self) -> int:
        """Answer every orphaned ``tool_use`` with an error result; returns how many were answered."""
        before = self.to_wire()
        after = repair_history(before)
        self._messages = _as_params(after)
        self._wire = None
        return sum(_count_results(m) for m in after) - sum(_count_results(m) for m in before)

    def clear(self) -> None:
        """Forget every turn."""
        self._messages.clear()
        self._wire = None
        self.context_tokens = 0


class _Transcript:
    """Appends to a run's :class:`Conversation`, keeping its models and wire dicts in step."""

    __slots__ = ("checked", "conversation", "wire")

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.wire = conversation._wire_list()
        self.checked = 0  # how many messages the last history check covered

    def _push(self, param: MessageParam, wire: dict[str, Any]) -> None:
        self.conversation._messages.append(param)
        self.wire.append(wire)

    def replace(self, wire: list[dict[str, Any]]) -> None:
        """Replace the committed history (compaction) in place: messages that are the very same dicts
        as before keep their models, the others are parsed; the next history check is a full one."""
        models = {id(w): m for w, m in zip(self.wire, self.conversation._messages, strict=True)}
        params = [models.get(id(w)) or MessageParam.model_validate(w) for w in wire]
        self.conversation._messages[:] = params
        self.wire[:] = wire
        self.checked = 0

    def _replace_last(self, param: MessageParam, wire: dict[str, Any]) -> None:
        self.conversation._messages[-1] = param
        self.wire[-1] = wire

    def add_prompt(self, prompt: Prompt) -> None:
        if prompt is None:
            return
        if isinstance(prompt, str):
            self.append_user_blocks([TextBlock(text=prompt)])
            return
        if is_content(prompt):
            self.append_user_blocks(prompt_blocks(prompt))
            return
        for param in _as_params(cast(Sequence[MessageParam | Mapping[str, Any]], prompt), "prompt"):
            if param.role == "user" and self.wire and self.wire[-1]["role"] == "user":
                blocks = [TextBlock(text=param.content)] if isinstance(param.content, str) else param.content
                self.append_user_blocks(list(blocks))
            else:
                self._push(param, cast(dict[str, Any], to_wire(param)))

    def append_user_blocks(self, blocks: list[Any]) -> None:
        """Add user content: a new user turn, or appended to a trailing user turn (after its results)."""
        if self.wire and self.wire[-1]["role"] == "user":
            last = self.conversation._messages[-1]
            content = [TextBlock(text=last.content)] if isinstance(last.content, str) else list(last.content)
            param = MessageParam(role="user", content=content + blocks)
            self._replace_last(param, cast(dict[str, Any], to_wire(param)))
        else:
            param = MessageParam(role="user", content=blocks)
            self._push(param, cast(dict[str, Any], to_wire(param)))

    def append_user_text(self, text: str) -> None:
        self.append_user_blocks([TextBlock(text=text)])

    def append_assistant(self, blocks: list[Any], content: list[dict[str, Any]], *, merge: bool) -> None:
        """Add an assistant turn (its blocks as models and as wire dicts, as received); ``merge``
        continues a paused turn."""
        if not content:
            return
        if merge and self.wire and self.wire[-1]["role"] == "assistant":
            previous = self.conversation._messages[-1]
            old = (
                [TextBlock(text=previous.content)] if isinstance(previous.content, str) else previous.content
            )
            param = MessageParam(role="assistant", content=[*old, *blocks])
            self._replace_last(param, {"role": "assistant", "content": [*self.wire[-1]["content"], *content]})
        else:
            self._push(
                MessageParam(role="assistant", content=list(blocks)),
                {"role": "assistant", "content": content},
            )

    def commit_turn(
        self, blocks: list[Any], content: list[dict[str, Any]], results: list[ToolResultBlock], *, merge: bool
    ) -> None:
        """Add an assistant turn together with the answer to each of its calls (a user turn of results)."""
        self.append_assistant(blocks, content, merge=merge)
        results = [_sendable(r) for r in results]
        if results:
            param = MessageParam(role="user", content=list(results))
            self._push(param, {"role": "user", "content": [to_wire(r) for r in results]})


def assistant_blocks(message: Message) -> list[Any]:
    """The blocks of a response as they go back to the API: as received, minus empty text blocks (the
    API returns them, e.g. on refusal, but rejects them in a request)."""
    return [b for b in message.content if not (isinstance(b, TextBlock) and not b.text)]


def _sendable(result: ToolResultBlock) -> ToolResultBlock:
    """A result without empty text blocks in its content (the API rejects them, also nested there; a
    hook may have returned one), so the stored history stays sendable."""
    content = result.content
    if not isinstance(content, list) or not any(isinstance(b, TextBlock) and not b.text for b in content):
        return result
    kept = [b for b in content if not (isinstance(b, TextBlock) and not b.text)]
    return result.model_copy(update={"content": kept or None})


def _as_params(
    messages: Iterable[MessageParam | Mapping[str, Any]], name: str = "messages"
) -> list[MessageParam]:
    _validate.check_messages(name, messages)
    items = list(messages)
    if all(isinstance(m, MessageParam) for m in items):
        return cast(list[MessageParam], items)
    try:
        return _message_params_adapter.validate_python(
            [dict(m) if isinstance(m, Mapping) and not isinstance(m, MessageParam) else m for m in items]
        )
    except ValidationError as exc:
        raise _validate.bad_messages(name, exc) from None


def _check_stored(wire: list[dict[str, Any]]) -> None:
    """Check a stored history. A final assistant turn is a finished answer, not a prefill: check it as
    the API will see it, with the next user turn after it (so an unanswered tool_use still fails)."""
    if not wire:
        return
    if wire[-1].get("role") == "assistant":
        wire = [*wire, {"role": "user", "content": "(next turn)"}]
    check_messages(wire)


def _count_results(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
