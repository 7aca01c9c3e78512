"""``Agent``: a model, a system prompt and tools, and the ways to run it — ``run``, ``run_sync``,
``stream`` and ``resume`` — all carried out by the one driver in :mod:`agentkit._loop`."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, cast

import anyio
from pydantic import BaseModel
from typing_extensions import TypeVar  # PEP 696 defaults; typing_extensions comes with pydantic

from . import _session, _trace, _validate
from ._agent_stream import AgentStream
from ._client import Client
from ._compaction import Compaction
from ._context import RunContext
from ._conversation import Conversation, Prompt, _as_params, _Transcript
from ._events import RunResult
from ._exceptions import ApprovalError, ConfigurationError
from ._logging import get_logger
from ._loop import Emit, _Run, drive
from ._output import OUTPUT_TOOL, OutputTool
from ._provider import ToolProvider
from ._request import RequestBuilder
from ._state import Approve, Decision, Defer, Deny, RunState
from ._tool import Tool
from ._toolset import Toolset
from .stores._base import Store
from .types import Message, MessageParam, TextBlock, ToolResultBlock, ToolUseBlock, to_wire

__all__ = [
    "Agent",
    "AgentStream",
    "Approve",
    "Conversation",
    "Defer",
    "Deny",
    "Hooks",
    "RunResult",
    "RunState",
]

# Defaults (PEP 696) let `Agent(..., output_type=X)` type-check without spelling out the deps type.
DepsT = TypeVar("DepsT", default=None)
OutputT = TypeVar("OutputT", default=None)
History = Conversation | Sequence[MessageParam | Mapping[str, Any]] | None
_MaybeAwaitable = Any


@dataclass
class Hooks:
    """Callbacks around each model request and each tool call. Each may be sync or async.

    - ``before_request(ctx, body)``: may inspect or modify the JSON body about to be sent.
    - ``after_response(ctx, message)``: sees each Message.
    - ``before_tool_call(ctx, tool_use)``: return ``None`` to run the call, a :class:`Deny` to refuse it
      (the model receives the reason as an error result), a :class:`Defer` to make it wait for a
      decision (the run pauses; see :meth:`Agent.resume`), or a new ``ToolUseBlock`` to run instead
      (same id, modified input). It is called for each call of a turn in order, before any of them runs.
    - ``after_tool_call(ctx, tool_use, result)``: may return a replacement ``ToolResultBlock``.
    - ``on_step(ctx, state)``: at each step boundary (before a model request, before a turn's calls
      run, when the run pauses or completes), with the :class:`RunState` complete: a checkpoint from
      which :meth:`Agent.resume` continues, in this process or another.
    """

    before_request: Callable[[RunContext[Any], dict[str, Any]], _MaybeAwaitable] | None = None
    after_response: Callable[[RunContext[Any], Message], _MaybeAwaitable] | None = None
    before_tool_call: Callable[[RunContext[Any], ToolUseBlock], _MaybeAwaitable] | None = None
    after_tool_call: Callable[[RunContext[Any], ToolUseBlock, ToolResultBlock], _MaybeAwaitable] | None = None
    on_step: Callable[[RunContext[Any], RunState], _MaybeAwaitable] | None = None


class Agent(Generic[DepsT, OutputT]):
    """A model, a system prompt and tools, run in a loop until the model is done.

    Args:
        client: the :class:`Client` (default: ``Client()`` from the environment).
        model: the model id; defaults to ``ANTHROPIC_MODEL``. Required one way or the other.
        tools: tools (``@tool`` functions, plain typed functions, tool providers such as
            ``agentkit.mcp.MCPToolset``, or a :class:`Toolset`).
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
        run_timeout: seconds for the whole run (each :meth:`run` or :meth:`resume`); past it the request
            or the calls under way are stopped, every ``tool_use`` is answered and
            :class:`RunTimeoutError` is raised (``None``: no limit).
        compaction: a :class:`Compaction` to keep long runs under the context window: past its
            ``trigger_tokens`` the history is compacted before the next request — in place, so a
            :class:`Conversation` passed as ``history=`` is compacted too (``None``: never).
        store: where sessions are kept (:mod:`agentkit.stores`): ``run(prompt, session="user-42")``
            loads that session's history, runs, and appends the new turns; a run paused for approval
            is saved with it and ``resume(session=..., decisions=...)`` continues it from any worker.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        model: str | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolProvider] | Toolset = (),
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
        compaction: Compaction | None = None,
        store: Store | None = None,
    ) -> None:
        _validate.agent_arguments(locals(), Client, (Tool, Toolset))  # first: it reads locals()
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
        self._output = OutputTool(output_type) if output_type is not None else None
        if self._output is not None and self._output.name in self.toolset:
            raise ConfigurationError(f"a tool named {OUTPUT_TOOL!r} clashes with the structured-output tool")
        tool_defs = list(self.toolset.definitions())
        if self._output is not None:
            tool_defs.append(self._output.definition)
        self._log = get_logger("agentkit").bind(model=self.model)
        self._owns_client = client is None  # run_sync closes only a client it created
        self.max_tool_calls_per_turn = _positive("max_tool_calls_per_turn", max_tool_calls_per_turn, int)
        self.max_concurrent_tool_calls = _positive(
            "max_concurrent_tool_calls", max_concurrent_tool_calls, int
        )
        self.run_timeout = _positive("run_timeout", run_timeout, float)
        _validate.check_type("Agent", "compaction", compaction, Compaction, "Compaction(trigger_tokens=...)")
        self.compaction = compaction
        if store is not None and not isinstance(store, Store):
            raise _validate.refuse(
                "Agent", "store", store, "an agentkit.stores store (e.g. SQLiteStore('sessions.db')) or None"
            )
        self.store = store
        self._requests = RequestBuilder(
            model=self.model,
            max_tokens=max_tokens,
            tool_defs=tool_defs,
            system=system,
            thinking=self.thinking,
            sampling=self._sampling,
            cache=cache,
            dynamic_tools=self._tool_definitions if self.toolset.providers else None,
        )

    def _tool_definitions(self) -> list[dict[str, Any]]:
        """The tools of the next request: the toolset's current ones, then the output tool if any."""
        defs = self.toolset.definitions()
        return [*defs, self._output.definition] if self._output is not None else defs

    @property
    def client(self) -> Client:
        """The client (created from the environment on first use if none was given)."""
        if self._client is None:
            self._client = Client()
        return self._client

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, tools={self.toolset.names!r})"

    # --- running -----------------------------------------------------------------------------

    async def run(
        self,
        prompt: Prompt = None,
        *,
        deps: DepsT | None = None,
        history: History = None,
        session: str | None = None,
    ) -> RunResult[OutputT]:
        """Run until the model is done (or calls wait for approval) and return the :class:`RunResult`.

        ``prompt`` is a user string or a list of messages; ``history`` earlier turns (a
        :class:`Conversation` is appended to in place, so it stays valid even if the run fails).
        ``session`` (with the agent's ``store``) takes the history from the store instead, and appends
        the run's turns to it at each step (:class:`SessionConflictError` if another worker appended
        to the session meanwhile).
        """
        _validate.run_arguments("Agent.run", prompt, history, Conversation)
        _session.check_arguments(self, "Agent.run", session, "history" if history is not None else None)
        started = self._start(prompt, history, session, deps, None, self.stream_requests)
        del deps  # held by the run's context only, whose repr never shows it (tracebacks render locals)
        return cast(RunResult[OutputT], await started)

    def run_sync(
        self,
        prompt: Prompt = None,
        *,
        deps: DepsT | None = None,
        history: History = None,
        session: str | None = None,
    ) -> RunResult[OutputT]:
        """:meth:`run` for scripts: starts an event loop, runs, returns the result.

        The connection pool the run used belongs to that loop, so it is closed before the loop ends
        (the client opens another on its next call); a transport or HTTP client you gave the Client is
        never closed.
        """
        _validate.outside_event_loop("Agent.run_sync", "agent.run")
        _validate.run_arguments("Agent.run_sync", prompt, history, Conversation)
        _session.check_arguments(self, "Agent.run_sync", session, "history" if history is not None else None)
        return self._sync(self.run(prompt, deps=deps, history=history, session=session))

    def stream(
        self,
        prompt: Prompt = None,
        *,
        deps: DepsT | None = None,
        history: History = None,
        session: str | None = None,
    ) -> AgentStream[OutputT]:
        """Run with streaming requests, yielding typed events (text deltas, tool calls, turns, the end).

        Use ``async with agent.stream(...) as events: async for event in events: ...``: leaving the
        block early cancels the run (calls still running are cancelled and every ``tool_use`` is
        answered). ``.result`` holds the RunResult once ``RunFinished`` has been yielded.

        Events come in the order things happen: text and tool-input deltas live; a turn's
        ``ToolCallStarted`` events before its calls run; each ``ToolCallFinished`` as soon as its call
        ends; all of a turn's events before the next turn's; ``RunFinished`` last. :meth:`run` and
        :meth:`resume` go through the same steps. A plain ``async for`` over ``agent.stream(...)``
        (without ``async with``) gives the same events; leaving it early stops the run once Python
        closes the iteration (at once inside ``contextlib.aclosing(aiter(stream))``, else soon after).
        """
        _validate.run_arguments("Agent.stream", prompt, history, Conversation)
        _session.check_arguments(self, "Agent.stream", session, "history" if history is not None else None)
        if session is not None:  # loaded when the stream starts
            return AgentStream(lambda emit: self._start(prompt, None, session, deps, emit, True))
        # Checked now, added when the stream starts: a stream never iterated leaves the history as it was.
        conversation = self._check_new_state(prompt, history)

        def start(emit: Emit) -> Awaitable[RunResult[Any]]:
            return drive(_Run(self, self._new_state(prompt, conversation), deps, emit, True))

        return AgentStream(start)

    async def resume(
        self,
        state: RunState | str | None = None,
        *,
        decisions: Mapping[str, Decision] | None = None,
        deps: DepsT | None = None,
        session: str | None = None,
    ) -> RunResult[OutputT]:
        """Continue a run from its :class:`RunState` (or the JSON of one), in this process or another.

        A run paused with ``status == "awaiting_approval"`` needs a decision for each pending call:
        ``decisions={tool_use_id: Approve() | Approve(input={...}) | Deny("why")}``. Approved calls run
        (edited input is validated first), denied ones are answered with the reason as an error, then
        the run goes on. Decisions that don't fit raise :class:`ApprovalError` before anything runs.
        A state stopped at another step (e.g. saved before a crash) continues from that step.

        ``session=`` (instead of a state) resumes the session's paused run from the agent's store, in
        any worker: the decisions are recorded in the store before a call runs, so a second resume of
        the same pause (here or in another worker) raises :class:`AlreadyDecidedError` and each call
        runs once. Without a store, nothing stops the same saved JSON from being resumed twice: each
        resume runs the approved calls again. Resume a given paused state once.
        """
        if session is not None or state is None:
            _session.check_arguments(self, "Agent.resume", session, "state" if state is not None else None)
            _session.check_target("Agent.resume", state, session)
            resumed = _session.resumed(self, "Agent.resume", cast(str, session), decisions)
            async with resumed as (link, run_state):
                run = _Run(self, run_state, deps, None, self.stream_requests, link)
                del deps  # as in run()
                return cast(RunResult[OutputT], await drive(run))
        run = _Run(self, self._decide(state, decisions), deps, None, self.stream_requests)
        del deps  # as in run()
        return cast(RunResult[OutputT], await drive(run))

    def resume_sync(
        self,
        state: RunState | str | None = None,
        *,
        decisions: Mapping[str, Decision] | None = None,
        deps: DepsT | None = None,
        session: str | None = None,
    ) -> RunResult[OutputT]:
        """:meth:`resume` for scripts (an event loop of its own, like :meth:`run_sync`)."""
        _validate.outside_event_loop("Agent.resume_sync", "agent.resume")
        return self._sync(self.resume(state, decisions=decisions, deps=deps, session=session))

    def resume_stream(
        self,
        state: RunState | str | None = None,
        *,
        decisions: Mapping[str, Decision] | None = None,
        deps: DepsT | None = None,
        session: str | None = None,
    ) -> AgentStream[OutputT]:
        """:meth:`resume` as a stream of events, like :meth:`stream`."""
        if session is not None or state is None:
            other = "state" if state is not None else None
            _session.check_arguments(self, "Agent.resume_stream", session, other)
            _session.check_target("Agent.resume_stream", state, session)

            async def start(emit: Emit) -> RunResult[Any]:
                where = "Agent.resume_stream"
                async with _session.resumed(self, where, cast(str, session), decisions) as (link, run_state):
                    return await drive(_Run(self, run_state, deps, emit, True, link))

            return AgentStream(start)
        run_state = self._decide(state, decisions)
        return AgentStream(lambda emit: drive(_Run(self, run_state, deps, emit, True)))

    # --- internals ---------------------------------------------------------------------------

    async def _start(
        self,
        prompt: Prompt,
        history: History,
        session: str | None,
        deps: Any,
        emit: Emit | None,
        streaming: bool,
    ) -> RunResult[Any]:
        """A new run (from ``history``, or the stored ``session``'s), driven to its end."""
        if session is None:
            run = _Run(self, self._new_state(prompt, history), deps, emit, streaming)
            del deps  # held by the run's context only, whose repr never shows it (tracebacks render locals)
            return await drive(run)
        with _session.claimed(self, "Agent.run", session) as claim:
            link, history = await _session.open_run(self, "Agent.run", session)
            run = _Run(self, self._new_state(prompt, history), deps, emit, streaming, link)
            del deps
            claim.run_id = run.state.run_id
            return await drive(run)

    def _sync(self, coro: Awaitable[RunResult[OutputT]]) -> RunResult[OutputT]:
        async def main() -> RunResult[OutputT]:
            try:
                return await coro
            finally:
                client = self._client
                if client is not None:  # a client passed in stays usable: only this loop's pools close
                    await (client.aclose() if self._owns_client else client._close_loop_pools())

        return anyio.run(main)

    @staticmethod
    def _conversation(history: History) -> Conversation:
        if isinstance(history, Conversation):
            return history
        return Conversation(_as_params(history or (), "history"))

    def _check_new_state(self, prompt: Prompt, history: History) -> Conversation:
        """What :meth:`_new_state` would refuse (a bad prompt or history, nothing to send, a
        conversation another run is writing), refused without adding anything; the run's Conversation."""
        conversation = self._conversation(history)
        conversation._check_free()
        probe = _Transcript(Conversation())
        probe.add_prompt(prompt)
        if not probe.wire and not conversation._messages:
            raise _nothing_to_send()
        return conversation

    def _new_state(self, prompt: Prompt, history: History) -> RunState:
        conversation = self._conversation(history)
        conversation._check_free()  # before the prompt goes in
        state = RunState(conversation=conversation, tool_choice=self.tool_choice)
        transcript = _Transcript(conversation)
        transcript.add_prompt(prompt)
        if not transcript.wire:
            raise _nothing_to_send()
        return state

    def _decide(
        self, state: RunState | str, decisions: Mapping[str, Decision] | None, log: Any = None
    ) -> RunState:
        """Check the decisions against the paused calls and record them in the state; nothing runs yet
        (``log``: where ``tool.decided`` goes, default the agent's logger bound to the run)."""
        if isinstance(state, str | bytes):
            state = RunState.from_json(state)
        elif not isinstance(state, RunState):
            raise ConfigurationError(
                f"resume() takes a RunState or its JSON (result.state / result.state.to_json()), "
                f"not {type(state).__name__}"
            )
        state.conversation._check_free()  # a run resuming this very state still going
        given = dict(decisions or {})
        turn = state.open_turn
        if state.step == "completed":
            raise ApprovalError(f"run {state.run_id} is completed: there is nothing to resume")
        if turn is None or not turn.pending:
            if given:
                raise ApprovalError(
                    f"run {state.run_id} is not waiting for approval (it stopped at {state.step!r}); "
                    f"no decisions apply, got them for {sorted(given)}"
                )
            return state
        pending = {p.tool_use_id: p for p in turn.pending}
        unknown = sorted(set(given) - set(pending))
        if unknown:
            raise ApprovalError(
                f"decisions for calls that are not pending: {unknown}; pending: {sorted(pending)}"
                " (a call already decided cannot be decided again)"
            )
        missing = [i for i in pending if i not in given]
        if missing:
            names = ", ".join(f"{i} ({pending[i].name})" for i in missing)
            raise ApprovalError(
                f"no decision for pending call(s) {names}: give Approve() or Deny(reason) for each"
            )
        refused: dict[str, ToolResultBlock] = {}
        replaced: dict[str, dict[str, Any]] = {}
        for tool_use_id, decision in given.items():
            call = pending[tool_use_id]
            if isinstance(decision, Deny):
                refused[tool_use_id] = ToolResultBlock(
                    tool_use_id=tool_use_id, content=f"call denied: {decision.reason}", is_error=True
                )
            elif isinstance(decision, Approve):
                if decision.input is not None:
                    found = self.toolset.lookup(call.name)
                    problem = found.check_input(decision.input) if found is not None else None
                    if problem is not None:
                        raise ApprovalError(
                            f"the edited input for {tool_use_id} ({call.name}) is invalid: {problem}"
                        )
                    replaced[tool_use_id] = dict(decision.input)
            else:
                raise ApprovalError(
                    f"the decision for {tool_use_id} must be Approve() or Deny(reason), not {decision!r}"
                )
        decided_log = log if log is not None else self._log.bind(run_id=state.run_id)
        for tool_use_id, decision in given.items():
            _trace.tool_decided(
                decided_log,
                tool_use_id,
                pending[tool_use_id].name,
                type(decision).__name__.lower(),
            )
        turn.decisions.update(given)
        turn.refused.update(refused)
        turn.replaced.update(replaced)
        turn.pending.clear()
        state.step = "tools"
        return state


def _nothing_to_send() -> ConfigurationError:
    return ConfigurationError("nothing to send: give a prompt or a history ending in a user turn")


def _positive(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` if it is None or a positive ``kind`` (an int is a float here), else ConfigurationError."""
    if value is None:
        return None
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or not value > 0:
        accepted = "a positive number of seconds" if kind is float else "a positive integer"
        raise ConfigurationError(f"Agent({name}=...): got {value!r}; expected {accepted} or None")
    return value
