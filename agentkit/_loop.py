"""The agent loop: a small driver over typed steps.

``decide(run, last)`` looks at the run's state and what just happened — nothing yet (a run starts or
resumes), a new model message, or the answers to its calls — and returns the next step as a value:
request the model, run the turn's calls, wait for approval, wrap up at a limit, finish, or fail.
``drive`` carries each step out, in one place each. Invariants kept at every await point, whatever
fails (errors, limits, cancellation):

- the committed history is valid for the API: every ``tool_use`` is answered by a ``tool_result`` at
  the start of the next user turn (an assistant turn enters the history with its answers);
- assistant turns are kept exactly as received (thinking signatures included); compaction (opt-in,
  :mod:`agentkit._compaction`) only shortens ``tool_result`` contents or drops whole early turns;
- each ``tool_use`` id runs at most once.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from . import _compaction, _dispatch, _guards, _trace
from ._context import RunContext
from ._conversation import _Transcript, assistant_blocks
from ._events import (
    AgentEvent,
    RunFinished,
    RunResult,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStarted,
    TurnFinished,
)
from ._exceptions import (
    AgentKitError,
    AgentRunError,
    DuplicateToolUseIdError,
    RefusalError,
    RunTimeoutError,
    ToolInputTruncatedError,
    ToolLoopError,
)
from ._output import NUDGE, OUTPUT_TOOL
from ._state import OpenTurn, RunState
from .types import Message, ToolUseBlock, to_wire

if TYPE_CHECKING:
    from ._agent import Agent
    from ._session import SessionLink
    from ._tool_run import ToolOutcome

Emit = Callable[[AgentEvent], Awaitable[None]]


class Executor(Protocol):
    """Where a run's I/O happens when not in this process's event loop (e.g. as Temporal activities).

    A run without one (``_Run.executor is None``) sends requests with ``agent.client`` and runs tools
    with ``agent.toolset`` in an anyio task group, as always."""

    async def request(self, run: _Run, body: dict[str, Any]) -> Message:
        """Send one model request (after the ``before_request`` hook) and return the whole Message."""
        ...

    async def call(self, run: _Run, tool_use: ToolUseBlock) -> ToolOutcome:
        """Run one tool call (input already gated and replaced) and return how it ended."""
        ...

    async def run_calls(self, run: _Run, calls: list[Callable[[], Awaitable[None]]]) -> None:
        """Run a turn's calls concurrently (each answers itself), at most ``max_concurrent_tool_calls``
        at once; if one raises or the run is cancelled, stop the others before raising."""
        ...


# --- the steps ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestModel:
    """Send the next request."""


@dataclass(frozen=True, slots=True)
class KeepPaused:
    """The model paused its turn (``pause_turn``): keep it and ask again; the answer continues it."""

    message: Message


@dataclass(frozen=True, slots=True)
class RunTools:
    """Open the turn of a new response (``message``) and pass its calls through the gate; or, with
    ``message=None``, run the open turn's calls that are neither answered nor waiting."""

    message: Message | None


@dataclass(frozen=True, slots=True)
class AnswerTruncated:
    """Calls cut by ``max_tokens``: answer them without running them, then fail or go on."""

    message: Message
    error: AgentRunError | None


@dataclass(frozen=True, slots=True)
class RetryOutput:
    """No valid structured output yet: keep the answer (if any), tell the model, ask again."""

    message: Message | None


@dataclass(frozen=True, slots=True)
class WrapUp:
    """A limit was reached: one last request without tools, for the best answer so far."""

    limit: str


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """Calls wait for a person's decision: the run ends here, resumable from its state."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The run is done (``message``: the final answer to keep, if not kept yet)."""

    message: Message | None


@dataclass(frozen=True, slots=True)
class Fail:
    """The run stops with this error."""

    error: AgentKitError


NextStep = (
    RequestModel
    | KeepPaused
    | RunTools
    | AnswerTruncated
    | RetryOutput
    | WrapUp
    | AwaitApproval
    | Finish
    | Fail
)
CALLS_ANSWERED = "calls answered"  # `last` after a turn's calls were answered


# --- one run in progress -----------------------------------------------------------------------


class _Run:
    """A run in progress: its state and what the driver needs at hand (nothing here is persisted)."""

    __slots__ = (
        "agent",
        "ctx",
        "deadline",
        "emit",
        "executor",
        "log",
        "parallel_disabled",
        "session",
        "state",
        "streaming",
        "transcript",
        "verbose",
    )

    def __init__(
        self,
        agent: Agent[Any, Any],
        state: RunState,
        deps: Any,
        emit: Emit | None,
        streaming: bool,
        session: SessionLink | None = None,
    ) -> None:
        from ._logging import get_logger

        self.agent = agent
        self.state = state
        self.transcript = _Transcript(state.conversation)
        self.log = get_logger("agentkit").bind(run_id=state.run_id, model=agent.model)
        self.ctx: RunContext[Any] = RunContext(
            deps=deps, run_id=state.run_id, log=self.log, messages=state.conversation._messages
        )
        self.emit = emit
        self.streaming = streaming
        self.session = session  # the stored session the run appends to, if any
        self.executor: Executor | None = None  # None: I/O here (client, toolset, anyio task group)
        # anyio clock time when the run must stop (run_timeout); set when the run starts
        self.deadline = math.inf
        self.verbose = _trace.info_enabled(self.log)
        tool_choice = agent.tool_choice
        self.parallel_disabled = bool(tool_choice and tool_choice.get("disable_parallel_tool_use"))

    async def maybe_await(self, value: Any) -> Any:
        return await value if inspect.isawaitable(value) else value


# --- deciding ----------------------------------------------------------------------------------


def decide(run: _Run, last: Message | str | None) -> NextStep:
    """What happens next. ``last`` is what just happened: None (the run starts, resumes or continues a
    paused turn), a new model :class:`Message`, or ``CALLS_ANSWERED``. Updates the guards' counters in
    the state; does no I/O and writes no history."""
    state, agent = run.state, run.agent
    if state.open_turn is not None:
        return AwaitApproval() if state.open_turn.pending else RunTools(None)
    if isinstance(last, Message):
        return _after_response(run, last)
    if last == CALLS_ANSWERED:
        if state.loop.strikes >= 2:
            _trace.tool_loop(run.log, state.turns, state.loop.name, "stop")
            return Fail(
                ToolLoopError(
                    f"the model kept calling {state.loop.name} with the same input; stopped the run",
                    messages=state.messages,
                    usage=state.usage,
                )
            )
        if agent._output is not None:
            if state.output_done:
                return Finish(None)
            if state.output_error is not None:
                error = agent._output.retry(state, agent.output_retries, state.output_error)
                state.output_error = None
                if error is not None:
                    return Fail(error)
        if state.limit_hit is not None:  # the wrap-up answer still asked for tools: they were answered
            return Finish(None)
        if (
            not agent.keep_tool_choice
            and state.tool_choice
            and state.tool_choice.get("type") in ("any", "tool")
        ):
            state.tool_choice = _relaxed(state.tool_choice)
    if state.limit_hit is None:
        limit = _guards.limit_reached(state, agent.max_turns, agent.token_budget)
        if limit is not None:
            _trace.limit(run.log, limit, state.turns, state.usage.total_tokens)
            if agent.on_limit == "raise":
                return Fail(_guards.limit_error(limit, state, agent.max_turns, agent.token_budget))
            return WrapUp(limit)
    return RequestModel()


def _after_response(run: _Run, message: Message) -> NextStep:
    state, agent = run.state, run.agent
    stop = message.stop_reason
    if stop == "pause_turn":
        return KeepPaused(message)
    duplicate = _duplicate_id(message)
    if duplicate is not None:  # refused before anything runs; the turn is not kept
        _trace.duplicate_tool_use_id(run.log, state.turns, duplicate)
        return Fail(
            DuplicateToolUseIdError(
                f"the model's turn used the tool_use id {duplicate!r} more than once; none of its "
                "calls ran and the turn was not kept",
                tool_use_id=duplicate,
                request_id=message.request_id,
            )
        )
    if stop == "refusal":  # the refused turn is not kept: the history ends with the user's turn
        details = getattr(message, "stop_details", None) or {}
        explanation = details.get("explanation") if isinstance(details, dict) else None
        _trace.refusal(run.log, state.turns, explanation)
        text = "the model refused to continue" + (f": {explanation}" if explanation else "")
        return Fail(RefusalError(text, messages=state.messages, usage=state.usage))
    tool_uses = message.tool_uses
    if stop in ("max_tokens", "model_context_window_exceeded") and tool_uses:
        _trace.truncated_tool_use(run.log, state.turns, message)
        error: AgentRunError | None = None
        if agent.on_truncated_tool_use == "raise":
            error = ToolInputTruncatedError(
                f"the model's tool call was cut by {stop}; it was not run. Raise max_tokens "
                f"(now {agent.max_tokens}) or set on_truncated_tool_use='continue'",
                messages=state.messages,
                usage=state.usage,
            )
        return AnswerTruncated(message, error)
    if tool_uses and not (state.limit_hit is not None and stop != "tool_use"):
        return RunTools(message)
    output = agent._output
    if output is not None and not state.output_done and state.limit_hit is None:
        error = output.retry(state, agent.output_retries, f"it answered without calling {OUTPUT_TOOL}")
        return Fail(error) if error is not None else RetryOutput(message)
    return Finish(message)


# --- driving -----------------------------------------------------------------------------------


async def drive(run: _Run) -> RunResult[Any]:
    """Run until the run finishes, pauses for approval or fails, within the agent's ``run_timeout``."""
    state, agent = run.state, run.agent
    started = time.perf_counter()
    history = len(run.transcript.wire) - 1
    resumed = None if state.turns == 0 else state.step
    _trace.run_start(
        run.log, tools=len(agent.toolset), max_turns=agent.max_turns, history=history, resumed=resumed
    )
    try:
        if agent.run_timeout is None:  # no cancel scope without a deadline: it costs on every await
            result = await _steps(run)
        else:
            run.deadline = anyio.current_time() + agent.run_timeout
            with anyio.move_on_at(run.deadline) as scope:
                result = await _steps(run)
            if scope.cancelled_caught:
                _trace.run_timeout(run.log, state.turns, agent.run_timeout)
                raise RunTimeoutError(
                    f"the run went past its run_timeout={agent.run_timeout:g}s",
                    messages=state.messages,
                    usage=state.usage,
                )
    except BaseException as exc:
        _trace.run_end(
            run.log,
            outcome=_trace.run_outcome(exc),
            state=state,
            duration=time.perf_counter() - started,
            error=exc,
        )
        raise
    outcome = result.status if result.status != "completed" else "limit" if state.limit_hit else "completed"
    _trace.run_end(run.log, outcome=outcome, state=state, duration=time.perf_counter() - started)
    if run.emit is not None:
        await run.emit(RunFinished(turn=state.turns, result=result))
    return result


async def _steps(run: _Run) -> RunResult[Any]:
    """:func:`_carry_out`, the only run writing its conversation (else ConversationBusyError), with the
    toolset's providers (MCP servers) open for the run's lifetime."""
    with run.transcript.conversation._written_by(run.state.run_id):
        if not run.agent.toolset.providers:
            return await _carry_out(run)
        async with run.agent.toolset.running():
            return await _carry_out(run)


async def _carry_out(run: _Run) -> RunResult[Any]:
    """Carry out steps, each in one place, until the run finishes or pauses (errors raise)."""
    state, agent, transcript = run.state, run.agent, run.transcript
    last: Message | str | None = None
    step = decide(run, None)
    while True:
        match step:
            case RequestModel():
                await _compaction.maybe_compact(run)  # opt-in; before the checkpoint, which keeps it
                await _checkpoint(run, "request")
                last = await _request(run)
                step = decide(run, last)
            case RunTools(None):
                assert state.open_turn is not None  # decide() returns RunTools(None) for it
                await _checkpoint(run, "tools")
                await _dispatch.dispatch(run, state.open_turn)
                step = decide(run, CALLS_ANSWERED)
            case RunTools(Message() as message):
                invalid = {i.id: i.raw for i in message.invalid_tool_inputs}
                turn = OpenTurn(assistant_blocks(message), _content(message), _take_pause(state), invalid)
                state.open_turn = turn
                await _dispatch.gate(run, turn)
                step = RunTools(None)
            case KeepPaused(message):
                transcript.append_assistant(assistant_blocks(message), _content(message), merge=True)
                state.pause_pending = True
                step = decide(run, None)
            case AnswerTruncated(message, error):
                reason = (
                    f"not run: the response hit {message.stop_reason} while writing this call, so its "
                    "input may be incomplete. Call it again with a shorter input, or split the work."
                )
                results = [_dispatch.error_result(t.id, reason) for t in message.tool_uses]
                transcript.commit_turn(
                    assistant_blocks(message), _content(message), results, merge=_take_pause(state)
                )
                step = Fail(error) if error is not None else decide(run, None)
            case RetryOutput(message):
                if message is not None:
                    transcript.append_assistant(
                        assistant_blocks(message), _content(message), merge=_take_pause(state)
                    )
                transcript.append_user_text(NUDGE)
                if not agent._thinking_on:
                    state.tool_choice = {"type": "tool", "name": OUTPUT_TOOL}
                step = decide(run, None)
            case WrapUp(limit):
                state.limit_hit = limit
                transcript.append_user_text(_guards.WRAP_UP_PROMPT)
                state.tool_choice = {"type": "none"}
                step = RequestModel()
            case AwaitApproval():
                await _checkpoint(run, "awaiting_approval")
                return _result(run, "awaiting_approval", last)
            case Finish(message):
                if message is not None:
                    transcript.append_assistant(
                        assistant_blocks(message), _content(message), merge=_take_pause(state)
                    )
                await _checkpoint(run, "completed")
                return _result(run, "completed", last)
            case Fail(error):
                if isinstance(error, AgentRunError):  # the history as it ends
                    error.messages, error.usage = state.messages, state.usage
                raise error


async def _checkpoint(run: _Run, step: Any) -> None:
    """A step boundary: the state is complete here (``on_step`` may save it; resume continues from it)."""
    run.state.step = step
    if run.session is not None:  # stored first: a conflict stops the run before the hook sees it
        await run.session.checkpoint(run.state)
    hook = run.agent.hooks.on_step
    if hook is not None:
        await run.maybe_await(hook(run.ctx, run.state))


async def _request(run: _Run) -> Message:
    """One model request: hooks, the history check, the request (streamed or not), usage, tracing."""
    state, agent, ctx = run.state, run.agent, run.ctx
    if agent.toolset.providers:  # a provider's tool list may have changed (e.g. MCP list_changed)
        await agent.toolset.refresh()
    body, dropped = agent._requests.body(run.transcript.wire, state.tool_choice)
    ctx.turn = state.turns + 1
    if dropped:
        _trace.cache_breakpoints(run.log, ctx.turn, dropped)
    ctx.usage = state.usage
    if agent.hooks.before_request is not None:
        await run.maybe_await(agent.hooks.before_request(ctx, body))
    _guards.check_history(run.transcript, body["messages"], agent._thinking_on, run.log)
    _trace.model_request(run.log, ctx.turn, body)
    started = time.perf_counter()
    if run.executor is not None:
        message = await run.executor.request(run, body)
    elif run.streaming:
        message = await _stream(run, body, ctx.turn)
    else:
        message = await agent.client.create_raw(body)
    state.turns += 1
    state.usage = state.usage + message.usage
    state.conversation.usage = state.conversation.usage + message.usage
    state.conversation.context_tokens = message.usage.total_input_tokens
    state.text, state.stop_reason = message.text, message.stop_reason
    _trace.model_response(run.log, state.turns, message, time.perf_counter() - started)
    if agent.hooks.after_response is not None:
        await run.maybe_await(agent.hooks.after_response(ctx, message))
    if run.emit is not None:
        await run.emit(TurnFinished(turn=state.turns, stop_reason=message.stop_reason, usage=message.usage))
    return message


async def _stream(run: _Run, body: dict[str, Any], turn: int) -> Message:
    """A streaming request, emitting text, thinking and tool-input deltas as they arrive."""
    emit = run.emit
    async with run.agent.client.stream_raw(body) as stream:
        accumulator = stream.accumulator
        tool_ids: dict[int, str] = {}
        async for payload in stream.raw_events():
            if emit is None:
                continue
            kind = payload.get("type")
            if kind == "content_block_delta":
                delta = payload.get("delta") or {}
                dkind = delta.get("type")
                if dkind == "text_delta":
                    await emit(TextDelta(turn=turn, text=delta.get("text", "")))
                elif dkind == "input_json_delta":
                    index = payload["index"]
                    if index in tool_ids and delta.get("partial_json"):
                        await emit(
                            ToolInputDelta(
                                turn=turn, id=tool_ids[index], partial_json=accumulator.partial_json(index)
                            )
                        )
                elif dkind == "thinking_delta" and delta.get("thinking"):
                    await emit(ThinkingDelta(turn=turn, thinking=delta["thinking"]))
            elif kind == "content_block_start":
                block = payload.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tool_ids[payload["index"]] = str(block.get("id"))
                    await emit(
                        ToolUseStarted(turn=turn, id=str(block.get("id")), name=str(block.get("name")))
                    )
        return await stream.final_message()


def _result(run: _Run, status: Any, last: Message | str | None) -> RunResult[Any]:
    state = run.state
    return RunResult(
        text=state.text,
        output=state.output,
        messages=state.messages,
        usage=state.usage,
        turns=state.turns,
        stop_reason=state.stop_reason,
        stopped_by_limit=state.limit_hit,
        run_id=state.run_id,
        last_message=last if isinstance(last, Message) else None,
        status=status,
        pending=state.pending,
        state=state,
    )


def _content(message: Message) -> list[dict[str, Any]]:
    return [to_wire(b) for b in assistant_blocks(message)]


def _duplicate_id(message: Message) -> str | None:
    """The first ``tool_use`` id that appears twice in the message, else None."""
    seen: set[str] = set()
    for tool_use in message.tool_uses:
        if tool_use.id in seen:
            return tool_use.id
        seen.add(tool_use.id)
    return None


def _take_pause(state: RunState) -> bool:
    merge, state.pause_pending = state.pause_pending, False
    return merge


def _relaxed(tool_choice: dict[str, Any]) -> dict[str, Any]:
    relaxed: dict[str, Any] = {"type": "auto"}
    if tool_choice.get("disable_parallel_tool_use"):
        relaxed["disable_parallel_tool_use"] = True
    return relaxed
