"""One turn's tool calls → results, in ``tool_use`` order.

First every call passes the gate, in order: refused by a guard, denied or deferred by the
``before_tool_call`` hook, or waiting for approval (``@tool(requires_approval=...)``). Then the calls
that may run, run (concurrently unless parallel calls are off), each ``ToolCallFinished`` emitted as its
call ends. When no call is left waiting, the assistant turn and all its results enter the history
together. Whatever happens — an error, cancellation, a consumer that stops listening — every
``tool_use`` is answered before this returns or raises, so the history stays valid.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

import anyio

from . import _guards, _trace
from ._events import ToolApprovalRequested, ToolCallFinished, ToolCallStarted
from ._output import OUTPUT_TOOL
from ._state import Defer, Deny, OpenTurn, PendingCall
from ._tool_run import ToolStatus
from .types import ToolResultBlock, ToolUseBlock

if TYPE_CHECKING:
    from ._loop import _Run


def error_result(tool_use_id: str, text: str) -> ToolResultBlock:
    return ToolResultBlock(tool_use_id=tool_use_id, content=text, is_error=True)


def not_run_reason(exc: BaseException) -> str:
    """The error result for a call that was never run because the run ended with ``exc``."""
    if isinstance(exc, GeneratorExit | anyio.get_cancelled_exc_class()):
        return "not run: the run was cancelled"
    return f"not run: the run stopped ({type(exc).__name__})"


async def gate(run: _Run, turn: OpenTurn) -> None:
    """Decide, in ``tool_use`` order, which calls of a new turn are refused (``turn.refused``), which
    run with other input (``turn.replaced``) and which wait for a decision (``turn.pending``)."""
    state, agent = run.state, run.agent
    tool_uses = turn.tool_uses
    blocked = _guards.loop_check(state, agent.loop_limit, tool_uses)
    if blocked:
        _trace.tool_loop(run.log, state.turns, state.loop.name, "refuse")
    names = {t.id: t.name for t in tool_uses}
    for bad_id, raw in turn.invalid.items():  # input that is not a JSON object: never run
        blocked[bad_id] = (
            f"not run: the input for {names.get(bad_id, 'this tool')} was not a valid JSON object "
            f"(got {raw[:80]!r}). Call it again with an object matching its schema."
        )
    cap = agent.max_tool_calls_per_turn
    if cap is not None and len(tool_uses) > cap:
        _trace.tool_calls_capped(run.log, state.turns, len(tool_uses), cap)
        for extra in tool_uses[cap:]:
            blocked.setdefault(
                extra.id,
                f"not run: at most {cap} tool calls run per turn and this turn asked for "
                f"{len(tool_uses)}. Ask for the rest in the next turn.",
            )
    hook = agent.hooks.before_tool_call
    for tool_use in tool_uses:
        refusal = blocked.get(tool_use.id)
        if refusal is None and tool_use.name in state.disabled_tools:
            refusal = _guards.disabled_reason(tool_use.name, agent.tool_retries)
        if refusal is None and hook is not None:
            decision = await run.maybe_await(hook(run.ctx, tool_use))
            if isinstance(decision, Deny):
                _trace.tool_denied(run.log, tool_use, decision.reason)
                refusal = f"call denied: {decision.reason}"
            elif isinstance(decision, Defer):
                _defer(run, turn, tool_use, decision.reason)
                continue
            elif isinstance(decision, ToolUseBlock):
                turn.replaced[tool_use.id] = dict(decision.input)
        if refusal is not None:
            turn.refused[tool_use.id] = error_result(tool_use.id, refusal)
            continue
        found = agent.toolset.lookup(tool_use.name)
        if found is not None and found.needs_approval(tool_use.input):
            _defer(run, turn, tool_use, None)
    turn.gated = True


def _defer(run: _Run, turn: OpenTurn, tool_use: ToolUseBlock, reason: str | None) -> None:
    turn.pending.append(PendingCall(tool_use.id, tool_use.name, dict(tool_use.input), reason))
    _trace.tool_deferred(run.log, run.state.turns, tool_use)


async def dispatch(run: _Run, turn: OpenTurn) -> None:
    """Answer every gated call of the turn that has no result and is not waiting (running those not
    refused); then, if no call is waiting for a decision, commit the turn with all its results."""
    state = run.state
    waiting = {p.tool_use_id for p in turn.pending}
    calls = [t for t in turn.tool_uses if t.id not in turn.results and t.id not in waiting]
    try:
        if run.emit is not None:
            for tool_use in turn.tool_uses:
                if tool_use.id in waiting:
                    await run.emit(ToolApprovalRequested(turn=state.turns, tool_use=tool_use))
            for tool_use in calls:
                await run.emit(ToolCallStarted(turn=state.turns, tool_use=tool_use))
        parallel = run.agent.parallel_tool_calls and not run.parallel_disabled
        if parallel and len(calls) > 1 and run.executor is not None:
            await run.executor.run_calls(run, [partial(_call, run, turn, t) for t in calls])
        elif parallel and len(calls) > 1:
            width = run.agent.max_concurrent_tool_calls
            limit = anyio.Semaphore(width) if width is not None and len(calls) > width else None
            async with anyio.create_task_group() as group:
                for tool_use in calls:
                    group.start_soon(_call, run, turn, tool_use, limit)
        else:
            for tool_use in calls:
                await _call(run, turn, tool_use)
    except BaseException as exc:
        reason = not_run_reason(exc)
        if anyio.current_time() >= run.deadline:
            reason = f"not run: the run's time limit (run_timeout={run.agent.run_timeout:g}s) ran out"
        answered = len(turn.results)
        for tool_use in turn.tool_uses:
            turn.results.setdefault(tool_use.id, error_result(tool_use.id, reason))
        turn.pending.clear()
        _commit(run, turn)
        _trace.dispatch_interrupted(run.log, state.turns, answered)
        raise
    if not turn.pending:
        _commit(run, turn)


def _commit(run: _Run, turn: OpenTurn) -> None:
    results = [turn.results[t.id] for t in turn.tool_uses]
    run.transcript.commit_turn(turn.blocks, turn.content, results, merge=turn.merge)
    run.state.open_turn = None


async def _call(
    run: _Run, turn: OpenTurn, tool_use: ToolUseBlock, limit: anyio.Semaphore | None = None
) -> None:
    if limit is not None and tool_use.id not in turn.refused:  # at most max_concurrent_tool_calls at once
        async with limit:
            await _call(run, turn, tool_use)
        return
    started = time.perf_counter()
    verbose = run.verbose
    if verbose:
        _trace.tool_call_start(run.log, run.state.turns, tool_use)
    result = turn.refused.get(tool_use.id)
    if result is None:
        replaced = turn.replaced.get(tool_use.id)
        call = tool_use if replaced is None else tool_use.model_copy(update={"input": replaced})
        result = await _run_one(run, call)
    turn.results[tool_use.id] = result
    duration = time.perf_counter() - started
    if verbose:
        _trace.tool_call_end(
            run.log, run.state.turns, tool_use, duration, bool(result.is_error), result.content
        )
    await _finished(run, tool_use, result, duration)


async def _finished(run: _Run, tool_use: ToolUseBlock, result: ToolResultBlock, duration: float) -> None:
    if run.emit is not None:
        event = ToolCallFinished(
            turn=run.state.turns,
            tool_use=tool_use,
            result=result,
            duration=duration,
            is_error=bool(result.is_error),
        )
        await run.emit(event)


async def _run_one(run: _Run, tool_use: ToolUseBlock) -> ToolResultBlock:
    agent, state = run.agent, run.state
    output = agent._output
    if output is not None and tool_use.name == OUTPUT_TOOL:
        ok, value = output.validate(tool_use.input)
        if ok:
            state.output, state.output_done = value, True
            result = ToolResultBlock(tool_use_id=tool_use.id, content="Final result accepted.")
        else:
            state.output_error = str(value)
            result = error_result(tool_use.id, str(value))
    else:
        if run.executor is None:
            outcome = await agent.toolset.execute(tool_use, run.ctx, timeout=agent.tool_timeout)
        else:
            outcome = await run.executor.call(run, tool_use)
        result = outcome.result
        invalid = outcome.status is ToolStatus.INVALID_INPUT
        result = _guards.retry_budget(state, agent.tool_retries, tool_use, result, invalid, run.log)
    hook = agent.hooks.after_tool_call
    if hook is not None:
        replaced = await run.maybe_await(hook(run.ctx, tool_use, result))
        if isinstance(replaced, ToolResultBlock):
            result = replaced
    return result
