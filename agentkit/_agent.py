"""The agent loop: request, dispatch every ``tool_use`` of the turn, answer, repeat until done.

One run is an async generator of :mod:`agentkit._events` (``Agent.stream``); ``Agent.run`` consumes it.
Invariants kept at every await point, whatever fails (errors, limits, cancellation):

- the history is valid for the API: roles alternate and every ``tool_use`` is answered by a
  ``tool_result`` at the start of the next user turn;
- assistant turns are kept exactly as received (thinking signatures included);
- each ``tool_use`` id runs at most once.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Literal, Self, cast

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypeVar  # PEP 696 defaults; typing_extensions comes with pydantic

from ._client import Client
from ._context import RunContext
from ._events import (
    AgentEvent,
    RunFinished,
    TextDelta,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolInputDelta,
    ToolUseStarted,
    TurnFinished,
)
from ._exceptions import (
    AgentRunError,
    ConfigurationError,
    DuplicateToolUseIdError,
    HistoryError,
    MaxTurnsExceeded,
    OutputValidationError,
    RefusalError,
    RunTimeoutError,
    TokenBudgetExceeded,
    ToolInputTruncatedError,
    ToolLoopError,
)
from ._history import check_messages, check_thinking_history, repair_history
from ._logging import get_logger
from ._schema import clean_json_schema, format_validation_error
from ._tool import Tool, Toolset
from ._tool_run import ToolOutcome, ToolStatus
from .types import (
    Message,
    MessageParam,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    _message_params_adapter,
    to_wire,
)

__all__ = ["Agent", "AgentStream", "Conversation", "Deny", "Hooks", "RunResult"]

# Defaults (PEP 696) let `Agent(..., output_type=X)` type-check without spelling out the deps type.
DepsT = TypeVar("DepsT", default=None)
OutputT = TypeVar("OutputT", default=None)


_WRAP_UP_PROMPT = (
    "You have reached the limit of steps for this task. Do not call any more tools: answer now with "
    "the best result you have so far, and say briefly what is left undone."
)
_OUTPUT_TOOL = "final_result"
_LOG_PREVIEW = 300


# --- public data -------------------------------------------------------------------------------


@dataclass
class RunResult(Generic[OutputT]):
    """What a finished run returns.

    Attributes:
        text: the final assistant turn's text.
        output: the validated structured output when the agent has an ``output_type``, else None.
        messages: the full history, valid to send again (every ``tool_use`` answered).
        usage: tokens summed over every request of the run, cache tokens included.
        turns: the number of model requests.
        stop_reason: the last response's stop reason.
        stopped_by_limit: ``"max_turns"`` or ``"token_budget"`` when the run was wrapped up early.
        run_id: the id bound in every log line of the run.
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


@dataclass(frozen=True)
class Deny:
    """Returned by a ``before_tool_call`` hook to refuse a call; the model gets ``reason`` as an error."""

    reason: str


ToolCallDecision = None | Deny | ToolUseBlock
_MaybeAwaitable = Any


@dataclass
class Hooks:
    """Callbacks around each model request and each tool call. Each may be sync or async.

    - ``before_request(ctx, body)``: may inspect or modify the JSON body about to be sent.
    - ``after_response(ctx, message)``: sees each Message.
    - ``before_tool_call(ctx, tool_use)``: return ``None`` to run the call, a :class:`Deny` to refuse it
      (the model receives the reason as an error result), or a new ``ToolUseBlock`` to run instead
      (same id, modified input).
    - ``after_tool_call(ctx, tool_use, result)``: may return a replacement ``ToolResultBlock``.
    """

    before_request: Callable[[RunContext[Any], dict[str, Any]], _MaybeAwaitable] | None = None
    after_response: Callable[[RunContext[Any], Message], _MaybeAwaitable] | None = None
    before_tool_call: Callable[[RunContext[Any], ToolUseBlock], _MaybeAwaitable] | None = None
    after_tool_call: Callable[[RunContext[Any], ToolUseBlock, ToolResultBlock], _MaybeAwaitable] | None = None


class Conversation:
    """History carried across runs (multi-turn bots). Runs append to it in place, so even a run that
    fails or is cancelled leaves it valid to continue. Serialises to and from JSON."""

    def __init__(self, messages: Iterable[MessageParam | Mapping[str, Any]] = ()) -> None:
        self._messages: list[MessageParam] = _as_params(messages)
        self.usage = Usage()

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
        return [cast(dict[str, Any], to_wire(m)) for m in self._messages]

    def to_json(self) -> str:
        """Serialise the history (and usage) to a JSON string."""
        return json.dumps({"messages": self.to_wire(), "usage": to_wire(self.usage)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Conversation:
        """Load a conversation saved with :meth:`to_json` (or a bare list of messages). It is checked
        like any history: a broken one raises :class:`HistoryError` (see :meth:`repair`)."""
        raw = json.loads(data)
        messages = raw["messages"] if isinstance(raw, dict) else raw
        conversation = cls(messages)
        if isinstance(raw, dict) and raw.get("usage"):
            conversation.usage = Usage.model_validate(raw["usage"])
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
        return sum(_count_results(m) for m in after) - sum(_count_results(m) for m in before)

    def clear(self) -> None:
        """Forget every turn."""
        self._messages.clear()


# --- the agent ---------------------------------------------------------------------------------


class Agent(Generic[DepsT, OutputT]):
    """A model, a system prompt and tools, run in a loop until the model is done.

    Args:
        client: the :class:`Client` (default: ``Client()`` from the environment).
        model: the model id; defaults to ``ANTHROPIC_MODEL``. Required one way or the other.
        tools: tools (``@tool`` functions, plain typed functions, or a :class:`Toolset`).
        system: the system prompt (string or text blocks).
        max_tokens: output cap per request.
        tool_choice: ``{"type": "auto"|"any"|"tool"|"none", ...}``. A forced choice (``any``/``tool``)
            applies to the first request only (then ``auto``) unless ``keep_tool_choice=True``.
        thinking: extended thinking config, e.g. ``{"type": "enabled", "budget_tokens": 2048}``.
        max_turns: maximum model requests per run.
        token_budget: maximum tokens (input incl. cache + output) per run.
        on_limit: what reaching ``max_turns``/``token_budget`` does: ``"wrap_up"`` (one last request with
            ``tool_choice: none`` asking for the best answer so far; ``RunResult.stopped_by_limit`` says
            so) or ``"raise"`` (:class:`MaxTurnsExceeded` / :class:`TokenBudgetExceeded`).
        on_truncated_tool_use: a ``tool_use`` cut by ``max_tokens`` is never run; ``"raise"``
            (:class:`ToolInputTruncatedError`) or ``"continue"`` (the model gets an error result and
            tries again).
        output_type: a pydantic model (or any type pydantic validates) the run must end with, via a
            ``final_result`` tool; invalid output is sent back to the model up to ``output_retries``.
        tool_timeout: default per-call timeout (seconds) for tools without their own.
        parallel_tool_calls: run a turn's calls concurrently (default); sequential when False or when
            ``tool_choice`` has ``disable_parallel_tool_use``.
        loop_limit: the same tool with the same input this many times in a row is refused; a second
            strike stops the run with :class:`ToolLoopError`. ``None`` disables the guard.
        tool_retries: a tool whose input fails validation this many times in a row is disabled for the
            rest of the run; the last error result says so (``None``: no limit).
        cache: add prompt-caching breakpoints on the tools, the system prompt and the latest turn.
        stream: use streaming requests in :meth:`run` too (``stream()`` always streams).
        hooks: :class:`Hooks` around requests and tool calls.
        deps_type: the type of ``deps`` given to tools via ``RunContext`` (for type checkers).
        max_tool_calls_per_turn: calls of one turn beyond this many are not run; each is answered with
            an error result saying why (``None``: no cap).
        max_concurrent_tool_calls: at most this many calls of a turn run at once (``None``: no limit).
        run_timeout: seconds for the whole run; past it the request or the calls under way are stopped,
            every ``tool_use`` is answered and :class:`RunTimeoutError` is raised (``None``: no limit).
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        model: str | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] | Toolset = (),
        system: str | Sequence[Mapping[str, Any] | TextBlock] | None = None,
        max_tokens: int = 4096,
        tool_choice: Mapping[str, Any] | BaseModel | None = None,
        keep_tool_choice: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        stop_sequences: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        thinking: Mapping[str, Any] | BaseModel | None = None,
        max_turns: int = 20,
        token_budget: int | None = None,
        on_limit: Literal["wrap_up", "raise"] = "wrap_up",
        on_truncated_tool_use: Literal["raise", "continue"] = "raise",
        output_type: type[OutputT] | None = None,
        output_retries: int = 2,
        tool_timeout: float | None = None,
        parallel_tool_calls: bool = True,
        loop_limit: int | None = 3,
        tool_retries: int | None = 3,
        cache: bool = False,
        stream: bool = False,
        hooks: Hooks | None = None,
        deps_type: type[DepsT] | None = None,
        name: str | None = None,
        max_tool_calls_per_turn: int | None = 64,
        max_concurrent_tool_calls: int | None = 16,
        run_timeout: float | None = None,
    ) -> None:
        resolved_model = model or os.environ.get("ANTHROPIC_MODEL")
        if not resolved_model:
            raise ConfigurationError(
                "Agent needs a model: pass model='claude-sonnet-4-6' (for example) or set ANTHROPIC_MODEL"
            )
        if max_turns < 1:
            raise ConfigurationError("max_turns must be at least 1")
        if loop_limit is not None and loop_limit < 2:
            raise ConfigurationError("loop_limit must be at least 2 (or None to disable the guard)")
        self.model = resolved_model
        self._client = client
        self.toolset = tools if isinstance(tools, Toolset) else Toolset(tools)
        self.system = system
        self.max_tokens = max_tokens
        self.tool_choice: dict[str, Any] | None = to_wire(tool_choice) if tool_choice is not None else None
        self.keep_tool_choice = keep_tool_choice
        self.thinking: dict[str, Any] | None = to_wire(thinking) if thinking is not None else None
        thinking_on = self.thinking is not None and self.thinking.get("type") in ("enabled", "adaptive")
        self._thinking_on = thinking_on
        if thinking_on and self.tool_choice and self.tool_choice.get("type") in ("any", "tool"):
            raise ConfigurationError(
                "with extended thinking the API accepts only tool_choice auto or none; drop the forced choice"
            )
        self.max_turns = max_turns
        self.token_budget = token_budget
        self.on_limit = on_limit
        self.on_truncated_tool_use = on_truncated_tool_use
        self.output_type = output_type
        self.output_retries = output_retries
        self.tool_timeout = tool_timeout
        self.parallel_tool_calls = parallel_tool_calls
        self.loop_limit = loop_limit
        self.tool_retries = tool_retries
        self.cache = cache
        self.stream_requests = stream
        self.hooks = hooks or Hooks()
        self.name = name
        self._sampling = {
            k: v
            for k, v in {
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
                "stop_sequences": stop_sequences,
                "metadata": dict(metadata) if metadata is not None else None,
            }.items()
            if v is not None
        }
        self._output = _OutputTool(output_type) if output_type is not None else None
        if self._output is not None and self._output.name in self.toolset:
            raise ConfigurationError(f"a tool named {_OUTPUT_TOOL!r} clashes with the structured-output tool")
        self._tool_defs = self._build_tool_defs()
        self._system_wire = self._build_system()
        self._owns_client = client is None  # run_sync closes only a client it created
        self.max_tool_calls_per_turn = _positive("max_tool_calls_per_turn", max_tool_calls_per_turn, int)
        self.max_concurrent_tool_calls = _positive(
            "max_concurrent_tool_calls", max_concurrent_tool_calls, int
        )
        self.run_timeout = _positive("run_timeout", run_timeout, float)

    @property
    def client(self) -> Client:
        """The client (created from the environment on first use if none was given)."""
        if self._client is None:
            self._client = Client()
        return self._client

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, tools={self.toolset.names!r})"

    # --- public entry points -----------------------------------------------------------------

    async def run(
        self,
        prompt: str | Sequence[MessageParam | Mapping[str, Any]] | None = None,
        *,
        deps: DepsT | None = None,
        history: Conversation | Sequence[MessageParam | Mapping[str, Any]] | None = None,
    ) -> RunResult[OutputT]:
        """Run until the model is done and return the :class:`RunResult`.

        ``prompt`` is a user string or a list of messages; ``history`` earlier turns (a
        :class:`Conversation` is appended to in place, so it stays valid even if the run fails).
        """
        async with aclosing(self._run(prompt, deps, history, stream=self.stream_requests)) as events:
            async for event in events:
                if isinstance(event, RunFinished):
                    return cast(RunResult[OutputT], event.result)
        raise RuntimeError("the run ended without a result")  # pragma: no cover - loop always finishes

    def run_sync(
        self,
        prompt: str | Sequence[MessageParam | Mapping[str, Any]] | None = None,
        *,
        deps: DepsT | None = None,
        history: Conversation | Sequence[MessageParam | Mapping[str, Any]] | None = None,
    ) -> RunResult[OutputT]:
        """:meth:`run` for scripts: starts an event loop, runs, returns the result.

        A client the agent created itself has its connection pool closed before the loop ends (it
        reopens on the next call); a client you passed in is left as it is.
        """

        async def main() -> RunResult[OutputT]:
            try:
                return await self.run(prompt, deps=deps, history=history)
            finally:
                if self._owns_client and self._client is not None:
                    await self._client.aclose()

        return anyio.run(main)

    def stream(
        self,
        prompt: str | Sequence[MessageParam | Mapping[str, Any]] | None = None,
        *,
        deps: DepsT | None = None,
        history: Conversation | Sequence[MessageParam | Mapping[str, Any]] | None = None,
    ) -> AgentStream[OutputT]:
        """Run with streaming requests, yielding typed events (text deltas, tool calls, turns, the end).

        Use ``async with agent.stream(...) as events: async for event in events: ...``: leaving the
        block early cancels the run (calls still running are cancelled and every ``tool_use`` is
        answered). ``.result`` holds the RunResult once ``RunFinished`` has been yielded.

        Text and tool-input deltas arrive live. The ``ToolCallStarted`` events of a turn all come
        before its calls run; inside ``async with``, each call's ``ToolCallFinished`` (with its own
        duration) is yielded as soon as that call ends, in the order the calls end. All of a turn's
        ``ToolCallFinished`` events come before the next turn's events, and ``RunFinished`` is last.
        A plain ``async for`` over ``agent.stream(...)`` (no ``async with``) yields the same events, but
        a turn's ``ToolCallFinished`` events arrive together once all of its calls are done, in
        ``tool_use`` order.

        Inside ``async with`` the calls of a turn run in a task group that the block opens, so don't
        yield from an async generator inside the block unless that generator is always fully iterated
        or closed by the task that iterates it. If that can't be guaranteed, use a plain ``async for``.
        """
        live = _LiveGroup()
        return AgentStream(self._run(prompt, deps, history, stream=True, live=live), live)

    # --- the loop ----------------------------------------------------------------------------

    async def _run(
        self,
        prompt: str | Sequence[MessageParam | Mapping[str, Any]] | None,
        deps: Any,
        history: Conversation | Sequence[MessageParam | Mapping[str, Any]] | None,
        *,
        stream: bool,
        live: _LiveGroup | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        run_id = f"run_{uuid.uuid4().hex[:16]}"
        log = get_logger("agentkit").bind(run_id=run_id, model=self.model)
        conversation = history if isinstance(history, Conversation) else Conversation(history or ())
        state = _RunState(conversation)
        if self.run_timeout is not None:
            state.deadline = anyio.current_time() + self.run_timeout
        state.add_prompt(prompt)
        if not state.wire:
            raise ConfigurationError("nothing to send: give a prompt or a history ending in a user turn")
        state.log = log
        ctx: RunContext[Any] = RunContext(deps=deps, run_id=run_id, log=log, messages=conversation._messages)
        started = time.perf_counter()
        log.info(
            "agent.run.start",
            tools=len(self.toolset),
            max_turns=self.max_turns,
            history=len(state.wire) - 1,
        )
        tool_choice = self.tool_choice
        limit_hit: str | None = None
        output: Any = None
        output_attempts = 0
        loop_guard = _LoopGuard(self.loop_limit)
        message: Message | None = None
        try:
            while True:
                if limit_hit is None:
                    limit_hit = self._limit_reached(state)
                    if limit_hit is not None:
                        log.warning(
                            "guard.limit", limit=limit_hit, turns=state.turns, tokens=state.usage.total_tokens
                        )
                        if self.on_limit == "raise":
                            raise self._limit_error(limit_hit, state)
                        state.append_user_text(_WRAP_UP_PROMPT)
                        tool_choice = {"type": "none"}

                body = self._body(state, tool_choice)
                ctx.turn = state.turns + 1
                ctx.usage = state.usage
                if self.hooks.before_request is not None:
                    await _maybe_await(self.hooks.before_request(ctx, body))
                self._check_history(body["messages"], log, state)
                log.info(
                    "model.request",
                    turn=ctx.turn,
                    messages=len(body["messages"]),
                    tools=len(body.get("tools", ())),
                )
                request_started = time.perf_counter()
                if stream:
                    holder: list[Message] = []
                    events = self._until_deadline(self._stream_request(body, ctx.turn, holder), state)
                    async with aclosing(events):
                        async for event in events:
                            yield event
                    message = holder[0]
                else:
                    received: Message | None = None
                    with anyio.move_on_at(state.deadline):
                        received = await self.client.create_raw(body)
                    if received is None:
                        raise self._deadline_error(state)
                    message = received
                state.turns += 1
                state.usage = state.usage + message.usage
                conversation.usage = conversation.usage + message.usage
                log.info(
                    "model.response",
                    turn=state.turns,
                    stop_reason=message.stop_reason,
                    input_tokens=message.usage.input_tokens,
                    output_tokens=message.usage.output_tokens,
                    cache_read_input_tokens=message.usage.cache_read_input_tokens,
                    cache_creation_input_tokens=message.usage.cache_creation_input_tokens,
                    latency_ms=round((time.perf_counter() - request_started) * 1000, 2),
                    message_id=message.id,
                    request_id=message.request_id,
                )
                if self.hooks.after_response is not None:
                    await _maybe_await(self.hooks.after_response(ctx, message))
                yield TurnFinished(turn=state.turns, stop_reason=message.stop_reason, usage=message.usage)

                stop = message.stop_reason
                if stop == "pause_turn":
                    state.append_assistant(message, merge=True)
                    continue
                tool_uses = message.tool_uses
                duplicate = _duplicate_id(tool_uses)
                if duplicate is not None:
                    # Refused before anything runs; the turn is not kept, so the history stays valid.
                    log.warning("guard.duplicate_tool_use_id", turn=state.turns, tool_use_id=duplicate)
                    raise DuplicateToolUseIdError(
                        f"the model's turn used the tool_use id {duplicate!r} more than once; none of its "
                        "calls ran and the turn was not kept",
                        tool_use_id=duplicate,
                        request_id=message.request_id,
                    )
                if stop == "refusal":
                    # The refused turn is not kept: the history ends with the user's turn, ready to retry.
                    details = getattr(message, "stop_details", None) or {}
                    explanation = details.get("explanation") if isinstance(details, dict) else None
                    log.warning("guard.refusal", turn=state.turns, explanation=explanation)
                    raise RefusalError(
                        "the model refused to continue" + (f": {explanation}" if explanation else ""),
                        messages=conversation.messages,
                        usage=state.usage,
                    )
                state.append_assistant(message, merge=state.pending_pause)
                if stop in ("max_tokens", "model_context_window_exceeded") and tool_uses:
                    log.warning(
                        "guard.truncated_tool_use",
                        turn=state.turns,
                        tools=[t.name for t in tool_uses],
                        invalid=[i.id for i in message.invalid_tool_inputs],
                    )
                    state.answer_all(
                        tool_uses,
                        f"not run: the response hit {stop} while writing this call, so its input may be "
                        "incomplete. Call it again with a shorter input, or split the work.",
                    )
                    if self.on_truncated_tool_use == "raise":
                        raise ToolInputTruncatedError(
                            f"the model's tool call was cut by {stop}; it was not run. Raise max_tokens "
                            f"(now {self.max_tokens}) or set on_truncated_tool_use='continue'",
                            messages=conversation.messages,
                            usage=state.usage,
                        )
                    continue
                if not tool_uses or (limit_hit is not None and stop != "tool_use"):
                    if self._output is not None and output is None and limit_hit is None:
                        output_attempts += 1
                        if output_attempts > self.output_retries:
                            raise OutputValidationError(
                                f"the model did not produce a valid {self._output.type_name} "
                                f"after {self.output_retries} retries",
                                messages=conversation.messages,
                                usage=state.usage,
                            )
                        state.append_user_text(
                            f"Give your final answer by calling the {_OUTPUT_TOOL} tool with valid input."
                        )
                        if not self._thinking_on:
                            tool_choice = {"type": "tool", "name": _OUTPUT_TOOL}
                        continue
                    break

                # --- dispatch every tool_use of the turn ---
                try:
                    for tool_use in tool_uses:
                        yield ToolCallStarted(turn=state.turns, tool_use=tool_use)
                except BaseException as exc:  # the consumer stopped here: answer the calls never run
                    state.answer_all(tool_uses, _not_run_reason(exc))
                    raise
                group = live.group if live is not None else None
                if group is not None and len(tool_uses) > 1:
                    # Inside `async with agent.stream()`: the calls run in the stream's task group (this
                    # generator must not yield inside one) and each ToolCallFinished comes as it ends.
                    calls = _LiveCalls(len(tool_uses))
                    calls.scope.deadline = state.deadline
                    group.start_soon(self._dispatch_live, calls, message, state, ctx, log, loop_guard)
                    with calls.receive:
                        try:
                            async for finished_event in calls.receive:
                                yield finished_event
                        except BaseException:  # consumer gone or cancelled: stop the calls, answer all
                            await calls.stop()
                            raise
                    if calls.failure is not None:
                        raise calls.failure
                    if calls.scope.cancelled_caught:  # only the deadline cancels it without an error
                        raise self._deadline_error(state)
                else:
                    finished_events: list[ToolCallFinished] | None = None
                    with anyio.move_on_at(state.deadline):
                        finished_events = await self._dispatch(message, state, ctx, log, loop_guard)
                    if finished_events is None:
                        raise self._deadline_error(state)
                    for finished_event in finished_events:
                        yield finished_event
                if loop_guard.strikes >= 2:
                    log.warning("guard.tool_loop", turn=state.turns, tool=loop_guard.last_name, action="stop")
                    raise ToolLoopError(
                        f"the model kept calling {loop_guard.last_name} with the same input; stopped the run",
                        messages=conversation.messages,
                        usage=state.usage,
                    )
                if self._output is not None:
                    outcome = state.output_outcome
                    if outcome is not None:
                        ok, value = outcome
                        state.output_outcome = None
                        if ok:
                            output = value
                            break
                        output_attempts += 1
                        if output_attempts > self.output_retries:
                            raise OutputValidationError(
                                f"the structured output failed validation {output_attempts} times: {value}",
                                messages=conversation.messages,
                                usage=state.usage,
                            )
                if limit_hit is not None:
                    # The wrap-up answer still asked for tools: they were answered; stop here.
                    break
                if not self.keep_tool_choice and tool_choice and tool_choice.get("type") in ("any", "tool"):
                    tool_choice = _relaxed(tool_choice)
        except BaseException as exc:
            log.info(
                "agent.run.end",
                outcome="cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "error",
                error=type(exc).__name__,
                turns=state.turns,
                input_tokens=state.usage.input_tokens,
                output_tokens=state.usage.output_tokens,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            raise
        result: RunResult[Any] = RunResult(
            text=message.text if message is not None else "",
            output=output,
            messages=conversation.messages,
            usage=state.usage,
            turns=state.turns,
            stop_reason=message.stop_reason if message is not None else None,
            stopped_by_limit=limit_hit,
            run_id=run_id,
            last_message=message,
        )
        log.info(
            "agent.run.end",
            outcome="limit" if limit_hit else "completed",
            stop_reason=result.stop_reason,
            turns=result.turns,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cache_read_input_tokens=result.usage.cache_read_input_tokens,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        yield RunFinished(turn=state.turns, result=result)

    # --- steps -------------------------------------------------------------------------------

    def _limit_reached(self, state: _RunState) -> str | None:
        if state.turns >= self.max_turns:
            return "max_turns"
        if self.token_budget is not None and state.usage.total_tokens >= self.token_budget:
            return "token_budget"
        return None

    def _limit_error(self, limit: str, state: _RunState) -> AgentRunError:
        if limit == "token_budget":
            return TokenBudgetExceeded(
                f"the run spent {state.usage.total_tokens} tokens, over its budget of {self.token_budget}",
                messages=state.conversation.messages,
                usage=state.usage,
            )
        return MaxTurnsExceeded(
            f"the run reached max_turns={self.max_turns} without a final answer",
            messages=state.conversation.messages,
            usage=state.usage,
        )

    def _deadline_error(self, state: _RunState) -> RunTimeoutError:
        state.log.warning("guard.run_timeout", turns=state.turns, run_timeout=self.run_timeout)
        return RunTimeoutError(
            f"the run went past its run_timeout={self.run_timeout:g}s",
            messages=state.conversation.messages,
            usage=state.usage,
        )

    async def _until_deadline(
        self, events: AsyncGenerator[AgentEvent, None], state: _RunState
    ) -> AsyncGenerator[AgentEvent, None]:
        """``events``, each awaited within the run's deadline (never yielding inside a cancel scope)."""
        async with aclosing(events):
            while True:
                got: list[AgentEvent] = []
                with anyio.move_on_at(state.deadline):
                    try:
                        got.append(await anext(events))
                    except StopAsyncIteration:
                        return
                if not got:
                    raise self._deadline_error(state)
                yield got[0]

    def _check_history(self, wire: list[dict[str, Any]], log: Any, state: _RunState) -> None:
        # The whole history is checked before the first request; after that only the part that may
        # have changed (from the last user turn already checked), so a long run does not re-walk it.
        start = 0
        if state.checked:
            start = min(state.checked, len(wire)) - 1
            while start > 0 and wire[start].get("role") != "user":
                start -= 1
        try:
            try:
                check_messages(wire[start:] if start else wire)
            except HistoryError:
                if not start:
                    raise
                check_messages(wire)  # report the error with indexes of the whole history
            if self._thinking_on:
                check_thinking_history(wire, True)
            state.checked = len(wire)
        except Exception as exc:
            log.error("guard.history", error=str(exc), index=getattr(exc, "index", None))
            raise

    def _build_tool_defs(self) -> list[dict[str, Any]]:
        defs = list(self.toolset.definitions())
        if self._output is not None:
            defs.append(self._output.definition)
        if self.cache and defs:
            defs[-1] = {**defs[-1], "cache_control": {"type": "ephemeral"}}
        return defs

    def _build_system(self) -> Any:
        if self.system is None:
            return None
        if isinstance(self.system, str):
            if not self.cache:
                return self.system
            return [{"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}]
        blocks = [cast(dict[str, Any], to_wire(b)) for b in self.system]
        if self.cache and blocks:
            blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
        return blocks

    def _body(self, state: _RunState, tool_choice: dict[str, Any] | None) -> dict[str, Any]:
        messages = state.wire
        if self.cache:
            messages = _with_last_turn_breakpoint(messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": messages}
        if self._system_wire is not None:
            body["system"] = self._system_wire
        if self._tool_defs:
            body["tools"] = self._tool_defs
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if self.thinking is not None:
            body["thinking"] = self.thinking
        if self._sampling:
            body.update(self._sampling)
        return body

    async def _stream_request(
        self, body: dict[str, Any], turn: int, holder: list[Message]
    ) -> AsyncGenerator[AgentEvent, None]:
        async with self.client.stream_raw(body) as stream:
            accumulator = stream.accumulator
            tool_ids: dict[int, str] = {}
            async for payload in stream.raw_events():
                kind = payload.get("type")
                if kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    dkind = delta.get("type")
                    if dkind == "text_delta":
                        yield TextDelta(turn=turn, text=delta.get("text", ""))
                    elif dkind == "input_json_delta":
                        index = payload["index"]
                        if index in tool_ids and delta.get("partial_json"):
                            yield ToolInputDelta(
                                turn=turn, id=tool_ids[index], partial_json=accumulator.partial_json(index)
                            )
                    elif dkind == "thinking_delta" and delta.get("thinking"):
                        yield ThinkingDelta(turn=turn, thinking=delta["thinking"])
                elif kind == "content_block_start":
                    block = payload.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        tool_ids[payload["index"]] = str(block.get("id"))
                        yield ToolUseStarted(turn=turn, id=str(block.get("id")), name=str(block.get("name")))
            holder.append(await stream.final_message())

    async def _dispatch(
        self,
        message: Message,
        state: _RunState,
        ctx: RunContext[Any],
        log: Any,
        loop_guard: _LoopGuard,
        emit: Callable[[ToolCallFinished], None] | None = None,
    ) -> list[ToolCallFinished]:
        """Run every tool_use of the turn and append one user turn with the results, in order.

        Whatever happens (cancellation included) every tool_use gets a result before this returns
        or raises, so the history stays valid. ``emit`` (if given) is called as each call ends; the
        return value is every call's event in ``tool_use`` order.
        """
        tool_uses = message.tool_uses
        finished: list[ToolCallFinished | None] = [None] * len(tool_uses)
        blocked = loop_guard.check(tool_uses)
        names = {t.id: t.name for t in tool_uses}
        for bad in message.invalid_tool_inputs:  # input that is not a JSON object: never run
            blocked[bad.id] = (
                f"not run: the input for {names.get(bad.id, 'this tool')} was not a valid JSON object "
                f"(got {bad.raw[:80]!r}). Call it again with an object matching its schema."
            )
        if blocked:
            log.warning("guard.tool_loop", turn=state.turns, tool=loop_guard.last_name, action="refuse")
        cap = self.max_tool_calls_per_turn
        if cap is not None and len(tool_uses) > cap:
            log.warning("guard.tool_calls", turn=state.turns, requested=len(tool_uses), limit=cap)
            for extra in tool_uses[cap:]:
                blocked.setdefault(
                    extra.id,
                    f"not run: at most {cap} tool calls run per turn and this turn asked for "
                    f"{len(tool_uses)}. Ask for the rest in the next turn.",
                )
        parallel = self.parallel_tool_calls and not _parallel_disabled(self.tool_choice)
        width = self.max_concurrent_tool_calls
        gate = anyio.Semaphore(width) if parallel and width is not None and len(tool_uses) > width else None

        verbose = _info_enabled(log)

        async def call(index: int, tool_use: ToolUseBlock) -> None:
            started = time.perf_counter()
            if verbose:
                log.info(
                    "tool.call.start",
                    turn=state.turns,
                    tool=tool_use.name,
                    tool_use_id=tool_use.id,
                    input=_preview(tool_use.input),
                )
            if gate is None or tool_use.id in blocked:
                result = await self._call_tool(tool_use, ctx, state, blocked.get(tool_use.id))
            else:
                async with gate:
                    result = await self._call_tool(tool_use, ctx, state, None)
            duration = time.perf_counter() - started
            event = finished[index] = ToolCallFinished(
                turn=state.turns,
                tool_use=tool_use,
                result=result,
                duration=duration,
                is_error=bool(result.is_error),
            )
            if verbose:
                log.info(
                    "tool.call.end",
                    turn=state.turns,
                    tool=tool_use.name,
                    tool_use_id=tool_use.id,
                    duration_ms=round(duration * 1000, 2),
                    is_error=bool(result.is_error),
                    output=_preview(result.content),
                )
            if emit is not None:
                emit(event)

        try:
            if parallel and len(tool_uses) > 1:
                async with anyio.create_task_group() as group:
                    for index, tool_use in enumerate(tool_uses):
                        group.start_soon(call, index, tool_use)
            else:
                for index, tool_use in enumerate(tool_uses):
                    await call(index, tool_use)
        except BaseException as exc:
            reason = _not_run_reason(exc)
            if anyio.current_time() >= state.deadline:
                reason = f"not run: the run's time limit (run_timeout={self.run_timeout:g}s) ran out"
            state.append_results(
                [
                    e.result if e else _error_result(t.id, reason)
                    for t, e in zip(tool_uses, finished, strict=True)
                ]
            )
            log.info(
                "tool.dispatch.interrupted", turn=state.turns, answered=sum(e is not None for e in finished)
            )
            raise
        done = [e for e in finished if e is not None]  # all of them: every call() returned
        state.append_results([e.result for e in done])
        return done

    async def _dispatch_live(
        self,
        calls: _LiveCalls,
        message: Message,
        state: _RunState,
        ctx: RunContext[Any],
        log: Any,
        loop_guard: _LoopGuard,
    ) -> None:
        """``_dispatch`` in a task of the stream's group; its error goes to the run's generator, which
        raises it in the consumer's task (so the group never sees it and nothing gets wrapped)."""
        with calls.send:  # closing it ends the generator's loop over the events
            try:
                with calls.scope:
                    await self._dispatch(message, state, ctx, log, loop_guard, calls.emit)
            except Exception as exc:
                calls.failure = exc
            finally:
                calls.done.set()

    async def _call_tool(
        self, tool_use: ToolUseBlock, ctx: RunContext[Any], state: _RunState, blocked: str | None
    ) -> ToolResultBlock:
        if blocked is not None:
            return _error_result(tool_use.id, blocked)
        if tool_use.name in state.disabled_tools:
            return _error_result(
                tool_use.id,
                f"refused: {tool_use.name} is disabled for the rest of this run after "
                f"{self.tool_retries} invalid inputs in a row. Answer without it.",
            )
        if self.hooks.before_tool_call is not None:
            decision = await _maybe_await(self.hooks.before_tool_call(ctx, tool_use))
            if isinstance(decision, Deny):
                ctx.log.info(
                    "tool.call.denied", tool=tool_use.name, tool_use_id=tool_use.id, reason=decision.reason
                )
                return _error_result(tool_use.id, f"call denied: {decision.reason}")
            if isinstance(decision, ToolUseBlock):
                tool_use = decision
        if self._output is not None and tool_use.name == self._output.name:
            ok, value = self._output.validate(tool_use.input)
            state.output_outcome = (ok, value)
            if ok:
                result = ToolResultBlock(tool_use_id=tool_use.id, content="Final result accepted.")
            else:
                result = _error_result(tool_use.id, str(value))
        else:
            outcome = await self.toolset.execute(tool_use, ctx, timeout=self.tool_timeout)
            result = self._retry_budget(tool_use, outcome, state, ctx)
        if self.hooks.after_tool_call is not None:
            replaced = await _maybe_await(self.hooks.after_tool_call(ctx, tool_use, result))
            if isinstance(replaced, ToolResultBlock):
                result = replaced
        return result

    def _retry_budget(
        self, tool_use: ToolUseBlock, outcome: ToolOutcome, state: _RunState, ctx: RunContext[Any]
    ) -> ToolResultBlock:
        """Count invalid inputs per tool; the last allowed failure says the tool is now disabled."""
        result = outcome.result
        if self.tool_retries is None:
            return result
        content = result.content
        if outcome.status is not ToolStatus.INVALID_INPUT:
            state.invalid_inputs.pop(tool_use.name, None)
            return result
        count = state.invalid_inputs.get(tool_use.name, 0) + 1
        state.invalid_inputs[tool_use.name] = count
        if count < self.tool_retries:
            return result
        state.disabled_tools.add(tool_use.name)
        ctx.log.warning("guard.tool_retries", tool=tool_use.name, tool_use_id=tool_use.id, failures=count)
        final = (
            f"{content}\nThis was the last attempt allowed ({count} invalid inputs in a row): "
            f"{tool_use.name} is now disabled for the rest of this run. Answer without it."
        )
        return result.model_copy(update={"content": final})


class AgentStream(Generic[OutputT]):
    """The events of a streaming run; ``result`` is set once the run finished.

    Entered with ``async with``, it opens the task group in which a turn's tool calls run, so that each
    ``ToolCallFinished`` is yielded as its call ends; leaving the block closes the run first (cancelling
    calls still running, every ``tool_use`` answered), then the group. See :meth:`Agent.stream`.
    """

    def __init__(self, events: AsyncGenerator[AgentEvent, None], live: _LiveGroup | None = None) -> None:
        self._events = events
        self._live = live
        self.result: RunResult[OutputT] | None = None

    def __aiter__(self) -> AsyncIterator[AgentEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AgentEvent]:
        async for event in self._events:
            if isinstance(event, RunFinished):
                self.result = cast(RunResult[OutputT], event.result)
            yield event

    async def __aenter__(self) -> Self:
        live = self._live
        if live is not None and live.group is None:
            group = anyio.create_task_group()
            await group.__aenter__()
            live.group = group
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._events.aclose()  # waits for the calls of the current turn (see _LiveCalls.stop)
        finally:
            live = self._live
            if live is not None and live.group is not None:
                group, live.group = live.group, None
                # No task is left in the group. Exit it as a clean block: the exception leaving the
                # `async with` (a run error, or the consumer's own) propagates unchanged, never wrapped
                # in an ExceptionGroup.
                await group.__aexit__(None, None, None)


# --- internals ---------------------------------------------------------------------------------


class _RunState:
    """The history of one run, as models (for the user) and as wire dicts (sent every turn, built once)."""

    __slots__ = (
        "checked",
        "conversation",
        "deadline",
        "disabled_tools",
        "invalid_inputs",
        "log",
        "output_outcome",
        "pending_pause",
        "turns",
        "usage",
        "wire",
    )

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.wire: list[dict[str, Any]] = conversation.to_wire()
        self.turns = 0
        self.usage = Usage()
        self.pending_pause = False
        self.output_outcome: tuple[bool, Any] | None = None
        self.invalid_inputs: dict[str, int] = {}
        self.checked = 0  # how many messages the last history check covered
        self.disabled_tools: set[str] = set()
        self.deadline = math.inf  # anyio clock time when the run must stop (run_timeout)
        self.log: Any = None

    def _push(self, param: MessageParam, wire: dict[str, Any]) -> None:
        self.conversation._messages.append(param)
        self.wire.append(wire)

    def _replace_last(self, param: MessageParam, wire: dict[str, Any]) -> None:
        self.conversation._messages[-1] = param
        self.wire[-1] = wire

    def add_prompt(self, prompt: str | Sequence[MessageParam | Mapping[str, Any]] | None) -> None:
        if prompt is None:
            return
        if isinstance(prompt, str):
            self.append_user_blocks([TextBlock(text=prompt)])
            return
        for param in _as_params(prompt):
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

    def append_assistant(self, message: Message, *, merge: bool) -> None:
        """Add the assistant's turn as received, minus empty text blocks (the API returns them, e.g. on
        refusal, but rejects them in a request). ``merge`` continues a paused turn."""
        blocks = [b for b in message.content if not (isinstance(b, TextBlock) and not b.text)]
        self.pending_pause = message.stop_reason == "pause_turn"
        if not blocks:
            return
        content_wire = cast(list[dict[str, Any]], to_wire(blocks))
        if merge and self.wire and self.wire[-1]["role"] == "assistant":
            previous = self.conversation._messages[-1]
            old = (
                [TextBlock(text=previous.content)] if isinstance(previous.content, str) else previous.content
            )
            param = MessageParam(role="assistant", content=[*old, *blocks])
            merged = [*self.wire[-1]["content"], *content_wire]
            self._replace_last(param, {"role": "assistant", "content": merged})
        else:
            self._push(
                MessageParam(role="assistant", content=blocks), {"role": "assistant", "content": content_wire}
            )

    def append_results(self, results: list[ToolResultBlock]) -> None:
        param = MessageParam(role="user", content=list(results))
        self._push(param, {"role": "user", "content": [to_wire(r) for r in results]})

    def answer_all(self, tool_uses: list[ToolUseBlock], reason: str) -> None:
        if tool_uses:
            self.append_results([_error_result(t.id, reason) for t in tool_uses])


class _LiveGroup:
    """The task group of an ``async with agent.stream(...)`` block, once entered (else None)."""

    __slots__ = ("group",)

    def __init__(self) -> None:
        self.group: TaskGroup | None = None


class _LiveCalls:
    """One turn's tool calls running in the stream's task group, seen from the run's generator.

    The generator cannot yield inside a task group or cancel scope, so ``_dispatch`` runs in a task of
    the group opened by ``AgentStream.__aenter__``. Each finished call is sent here as a
    ``ToolCallFinished``. The channel holds one event per call, so a slow consumer never blocks a call.
    It closes once every result has been appended to the history.
    """

    __slots__ = ("done", "failure", "receive", "scope", "send")

    def __init__(self, calls: int) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[ToolCallFinished](calls)
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.failure: Exception | None = None

    def emit(self, event: ToolCallFinished) -> None:
        # If nobody reads any more, drop the event: the result is in the history all the same.
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.send.send_nowait(event)

    async def stop(self) -> None:
        """Cancel the calls still running and wait until ``_dispatch`` has answered every tool_use."""
        self.scope.cancel()
        with anyio.CancelScope(shield=True):
            await self.done.wait()


class _LoopGuard:
    """Spots the same tool called with the same input ``limit`` times in a row."""

    __slots__ = ("last_key", "last_name", "limit", "repeats", "strikes")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.last_key: tuple[str, dict[str, Any]] | None = None
        self.last_name = ""
        self.repeats = 0
        self.strikes = 0

    def check(self, tool_uses: list[ToolUseBlock]) -> dict[str, str]:
        """Returns ``{tool_use_id: error text}`` for the calls to refuse."""
        blocked: dict[str, str] = {}
        if self.limit is None:
            return blocked
        for tool_use in tool_uses:
            if tool_use.name == _OUTPUT_TOOL:  # bounded by output_retries instead
                continue
            key = (tool_use.name, tool_use.input)
            if key == self.last_key:
                self.repeats += 1
            else:
                self.last_key, self.last_name, self.repeats = key, tool_use.name, 1
            if self.repeats >= self.limit:
                self.strikes += 1
                self.repeats = 0
                blocked[tool_use.id] = (
                    f"refused: {tool_use.name} was called with the same input {self.limit} times in a row "
                    "and would give the same result. Use the results you already have, change the input, "
                    "or answer the user."
                )
        return blocked


class _OutputTool:
    """The ``final_result`` tool that carries structured output."""

    def __init__(self, output_type: type[Any]) -> None:
        self.name = _OUTPUT_TOOL
        self.type_name = getattr(output_type, "__name__", str(output_type))
        self._adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        schema = clean_json_schema(self._adapter.json_schema())
        self._wrapped = schema.get("type") != "object" or any(
            k in schema for k in ("anyOf", "oneOf", "allOf")
        )
        if self._wrapped:
            schema = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
        description = (inspect.getdoc(output_type) or "").strip() if isinstance(output_type, type) else ""
        self.definition: dict[str, Any] = {
            "name": self.name,
            "description": "Give the final answer with this tool, once, when you are done."
            + (f" The answer: {description}" if description else ""),
            "input_schema": schema,
        }

    def validate(self, data: dict[str, Any]) -> tuple[bool, Any]:
        try:
            value = self._adapter.validate_python(
                data["result"] if self._wrapped and "result" in data else data
            )
        except ValidationError as exc:
            return False, format_validation_error(self.name, exc)
        return True, value


def _as_params(messages: Iterable[MessageParam | Mapping[str, Any]]) -> list[MessageParam]:
    items = list(messages)
    if all(isinstance(m, MessageParam) for m in items):
        return cast(list[MessageParam], items)
    return _message_params_adapter.validate_python(
        [m if isinstance(m, MessageParam) else dict(m) for m in items]
    )


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


def _duplicate_id(tool_uses: list[ToolUseBlock]) -> str | None:
    """The first ``tool_use`` id that appears twice, else None."""
    seen: set[str] = set()
    for tool_use in tool_uses:
        if tool_use.id in seen:
            return tool_use.id
        seen.add(tool_use.id)
    return None


def _positive(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` if it is None or a positive ``kind`` (an int is a float here), else ConfigurationError."""
    if value is None:
        return None
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or not value > 0:
        accepted = "a positive number of seconds" if kind is float else "a positive integer"
        raise ConfigurationError(f"{name} must be {accepted} or None, not {value!r}")
    return value


def _error_result(tool_use_id: str, text: str) -> ToolResultBlock:
    return ToolResultBlock(tool_use_id=tool_use_id, content=text, is_error=True)


def _not_run_reason(exc: BaseException) -> str:
    """The error result for a call that was never run because the run ended with ``exc``."""
    if isinstance(exc, GeneratorExit | anyio.get_cancelled_exc_class()):
        return "not run: the run was cancelled"
    return f"not run: the run stopped ({type(exc).__name__})"


def _relaxed(tool_choice: dict[str, Any]) -> dict[str, Any]:
    relaxed: dict[str, Any] = {"type": "auto"}
    if tool_choice.get("disable_parallel_tool_use"):
        relaxed["disable_parallel_tool_use"] = True
    return relaxed


def _parallel_disabled(tool_choice: dict[str, Any] | None) -> bool:
    return bool(tool_choice and tool_choice.get("disable_parallel_tool_use"))


def _with_last_turn_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of the messages whose last block carries a cache breakpoint (the stored turn is untouched)."""
    last = messages[-1]
    content = last["content"]
    if isinstance(content, str):
        blocks: list[dict[str, Any]] = [{"type": "text", "text": content}]
    else:
        blocks = list(content)
    for i in range(len(blocks) - 1, -1, -1):
        if blocks[i].get("type") not in ("thinking", "redacted_thinking"):
            blocks[i] = {**blocks[i], "cache_control": {"type": "ephemeral"}}
            break
    return [*messages[:-1], {**last, "content": blocks}]


def _info_enabled(log: Any) -> bool:
    """Whether info events of this logger go anywhere (filtering loggers answer; others: assume yes)."""
    check = getattr(log, "is_enabled_for", None)
    if not callable(check):
        return True
    try:
        return bool(check(logging.INFO))
    except Exception:  # a custom logger without level support
        return True


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(to_wire(value), ensure_ascii=False, default=str)
    return (
        text if len(text) <= _LOG_PREVIEW else text[:_LOG_PREVIEW] + f"…(+{len(text) - _LOG_PREVIEW} chars)"
    )


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
