"""Live tool events of ``Agent.stream``: inside ``async with``, each call's ToolCallFinished arrives as
the call ends, not once the whole turn is done. No timing assertions: the tools wait on events that
the consumer sets, so a batched stream deadlocks (caught by ``fail_after``) instead of passing."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from agentkit import Agent, Client, ConfigurationError, Conversation, Hooks, ToolLoopError
from agentkit._context import RunContext
from agentkit._events import (
    AgentEvent,
    RunFinished,
    ToolCallFinished,
    ToolCallStarted,
    ToolUseStarted,
    TurnFinished,
)
from agentkit._tool import tool
from agentkit.testing import LocalServer, Script, reply
from agentkit.types import ToolUseBlock

from .conftest import results_by_id, tool_uses_in

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
CANCELLED = "not run: the run was cancelled"


def make_agent(server: LocalServer, **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    return Agent(client, model=MODEL, **kwargs)


class FastAndSlow:
    """A fast tool and a slow one that waits until the consumer releases it."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.slow_waiting = False
        self.slow_cancelled = False

        @tool
        async def fast(x: int) -> str:
            """Answers at once.

            Args:
                x: Anything.
            """
            return f"fast {x}"

        @tool
        async def slow(x: int) -> str:
            """Answers once released.

            Args:
                x: Anything.
            """
            self.slow_waiting = True
            try:
                await self.release.wait()
            except anyio.get_cancelled_exc_class():
                self.slow_cancelled = True
                raise
            finally:
                self.slow_waiting = False
            return f"slow {x}"

        self.tools = [fast, slow]


def fast_and_slow_script() -> Script:
    # The slow call comes first: in tool_use order its event would come first too.
    return Script([reply.tool_uses([("slow", {"x": 1}), ("fast", {"x": 2})]), reply.text("done")])


async def test_a_fast_call_is_reported_before_a_slow_call_of_the_same_turn_ends() -> None:
    tools = FastAndSlow()
    finished: list[str] = []
    with LocalServer(policy=fast_and_slow_script()) as server:
        with anyio.fail_after(5):  # a batched stream never reports `fast` while `slow` waits: deadlock
            async with make_agent(server, tools=tools.tools).stream("go") as stream:
                async for event in stream:
                    if isinstance(event, ToolCallFinished):
                        finished.append(event.tool_use.name)
                        if event.tool_use.name == "fast":
                            assert tools.slow_waiting  # the slow call is still running
                            assert not tools.release.is_set()
                            tools.release.set()
    assert finished == ["fast", "slow"]
    assert stream.result is not None
    assert stream.result.text == "done"
    results = [r.content for r in results_by_id(stream.result.messages).values()]
    assert results == ["slow 1", "fast 2"]  # the history keeps tool_use order


async def test_sequential_calls_are_reported_one_by_one_too() -> None:
    seen: list[str] = []
    first_seen = anyio.Event()

    @tool
    async def step(n: int) -> str:
        """A step.

        Args:
            n: Step number.
        """
        if n == 2:  # runs after step 1 (sequential); ends once the consumer has seen step 1 end
            await first_seen.wait()
        return f"step {n}"

    script = Script([reply.tool_uses([("step", {"n": 1}), ("step", {"n": 2})]), reply.text("ok")])
    with LocalServer(policy=script) as server, anyio.fail_after(5):
        agent = make_agent(server, tools=[step], parallel_tool_calls=False)
        async with agent.stream("go") as stream:
            async for event in stream:
                if isinstance(event, ToolCallFinished):
                    assert not event.is_error, event.result.content
                    seen.append(f"finished {event.tool_use.input['n']}")
                    first_seen.set()
    assert seen == ["finished 1", "finished 2"]


async def test_ordering_over_two_turns_of_three_parallel_calls() -> None:
    # Call n of a turn waits until the consumer has seen call n+1 finish, so the calls end in
    # reverse tool_use order (3, 2, 1): only a live stream can report them like that.
    released = {(turn, n): anyio.Event() for turn in (1, 2) for n in (1, 2)}

    @tool
    async def job(turn: int, n: int) -> str:
        """A job.

        Args:
            turn: Turn number.
            n: Call number.
        """
        if n < 3:
            await released[(turn, n)].wait()
        return f"job {turn}.{n}"

    script = Script(
        [
            reply.tool_uses([("job", {"turn": t, "n": n}) for n in (1, 2, 3)], text=f"Turn {t}.")
            for t in (1, 2)
        ]
        + [reply.text("All done.")]
    )
    events: list[AgentEvent] = []
    with LocalServer(policy=script) as server, anyio.fail_after(5):
        async with make_agent(server, tools=[job]).stream("go") as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, ToolCallFinished):
                    turn, n = event.tool_use.input["turn"], event.tool_use.input["n"]
                    if n > 1:
                        released[(turn, n - 1)].set()

    def positions(kind: type[AgentEvent], turn: int) -> list[int]:
        return [i for i, e in enumerate(events) if isinstance(e, kind) and e.turn == turn]

    assert isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, RunFinished) for e in events) == 1
    assert stream.result is not None
    assert stream.result is events[-1].result
    assert stream.result.text == "All done."
    assert stream.result.turns == 3
    for turn in (1, 2):
        started, finished = positions(ToolCallStarted, turn), positions(ToolCallFinished, turn)
        assert len(started) == len(finished) == 3
        assert max(started) < min(finished)  # every start of the turn before any of its ends
        order = [events[i].tool_use.input["n"] for i in finished]  # type: ignore[attr-defined]
        assert order == [3, 2, 1]  # as the calls ended, not in tool_use order
        assert all(events[i].turn == turn for i in finished)
        assert positions(TurnFinished, turn)[0] < min(started)
        # the next turn's events (its text, tool_use blocks, TurnFinished) all come after
        later = [i for i, e in enumerate(events) if e.turn > turn]
        assert later
        assert max(finished) < min(later)
        assert max(finished) < positions(TurnFinished, turn + 1)[0]
    conversation = Conversation(stream.result.messages)
    conversation.check()
    assert [r.content for r in results_by_id(conversation.messages).values()] == [
        f"job {t}.{n}" for t in (1, 2) for n in (1, 2, 3)
    ]


async def test_leaving_the_block_at_a_tool_call_started_answers_every_tool_use() -> None:
    ran: list[int] = []

    @tool
    def work(x: int) -> int:
        """Work.

        Args:
            x: Anything.
        """
        ran.append(x)
        return x

    script = Script([reply.tool_uses([("work", {"x": 1}), ("work", {"x": 2})]), reply.text("never")])
    conversation = Conversation()
    with LocalServer(policy=script) as server:
        async with make_agent(server, tools=[work]).stream("go", history=conversation) as stream:
            async for event in stream:
                if isinstance(event, ToolCallStarted):
                    break
        assert len([r for r in server.requests if r.path == "/v1/messages"]) == 1
    assert stream.result is None
    assert ran == []
    conversation.check()  # every tool_use answered: the history can be sent again
    results = results_by_id(conversation.messages)
    assert [t.id for t in tool_uses_in(conversation.messages)] == list(results)
    assert all(r.is_error and r.content == CANCELLED for r in results.values())


async def test_leaving_the_block_while_a_call_runs_cancels_it_and_keeps_the_history_valid() -> None:
    tools = FastAndSlow()
    conversation = Conversation()
    with LocalServer(policy=fast_and_slow_script()) as server, anyio.fail_after(5):
        async with make_agent(server, tools=tools.tools).stream("go", history=conversation) as stream:
            async for event in stream:
                if isinstance(event, ToolCallFinished):
                    assert event.tool_use.name == "fast"
                    assert tools.slow_waiting
                    break
    assert tools.slow_cancelled  # closing the stream cancelled the call still running
    assert not tools.slow_waiting
    assert stream.result is None
    conversation.check()
    slow_use, fast_use = tool_uses_in(conversation.messages)
    results = results_by_id(conversation.messages)
    assert results[fast_use.id].content == "fast 2"
    assert results[slow_use.id].is_error
    assert results[slow_use.id].content == CANCELLED


async def test_cancelling_the_consumer_while_calls_run_keeps_the_history_valid() -> None:
    # What the CLI's chat does on Ctrl-C: cancel a scope around `async with agent.stream(...)`.
    tools = FastAndSlow()
    conversation = Conversation()
    with LocalServer(policy=fast_and_slow_script()) as server, anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with make_agent(server, tools=tools.tools).stream("go", history=conversation) as stream:
                async for event in stream:
                    if isinstance(event, ToolCallFinished):
                        scope.cancel()  # the consumer is cancelled in its next `__anext__`
    assert scope.cancelled_caught
    assert tools.slow_cancelled
    assert stream.result is None
    conversation.check()
    assert [r.content for r in results_by_id(conversation.messages).values()] == [CANCELLED, "fast 2"]


async def _error_of(agent: Agent[Any, Any], mode: str, history: Conversation) -> BaseException:
    """What the run raised: from ``run``; caught around the stream's ``async for`` itself; or caught
    around the whole ``async with`` block (so it went through the block's exit)."""
    with anyio.fail_after(5):
        try:
            if mode == "run":
                await agent.run("go", history=history)
            else:
                async with agent.stream("go", history=history) as events:
                    try:
                        async for _ in events:
                            pass
                    except BaseException as exc:
                        if mode == "async_for":
                            return exc
                        raise
                    if mode == "async_for":
                        raise AssertionError("the `async for` ended without the error")
        except BaseException as exc:
            return exc
    raise AssertionError("the run did not fail")


def _shape(exc: BaseException) -> Any:
    """The exception's type, and for a group the shape of what it holds (to spot extra wrapping)."""
    if isinstance(exc, BaseExceptionGroup):
        return (type(exc), [_shape(e) for e in exc.exceptions])
    return type(exc)


def _hook_that_fails(ctx: RunContext[Any], tool_use: ToolUseBlock) -> None:
    if tool_use.input.get("x") == 2:
        raise RuntimeError("hook failed")


@tool
def echo(x: int) -> int:
    """Echo.

    Args:
        x: Anything.
    """
    return x


CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "api_error_after_a_parallel_turn": (
        lambda: Script([reply.tool_uses([("echo", {"x": 1}), ("echo", {"x": 2})]), reply.error(400)]),
        {},
    ),
    "tool_loop_in_a_parallel_turn": (
        lambda: Script([reply.tool_uses([("echo", {"x": 1})] * 4), reply.text("never")]),
        {"loop_limit": 2},
    ),
    "hook_error_in_a_parallel_call": (
        lambda: Script([reply.tool_uses([("echo", {"x": 1}), ("echo", {"x": 2})]), reply.text("never")]),
        {"hooks": Hooks(before_tool_call=_hook_that_fails)},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_run_errors_leave_the_async_for_as_agent_run_raises_them(case: str) -> None:
    make_script, options = CASES[case]
    raised: dict[str, BaseException] = {}
    for mode in ("run", "async_for", "block"):
        history = Conversation()
        with LocalServer(policy=make_script()) as server:
            agent = make_agent(server, tools=[echo], **options)
            raised[mode] = await _error_of(agent, mode, history)
        history.check()  # valid to continue, whichever way the run failed
    expected = raised["run"]
    for mode in ("async_for", "block"):
        assert _shape(raised[mode]) == _shape(expected), mode
        assert str(raised[mode]).replace(_request_id(raised[mode]), "") == str(expected).replace(
            _request_id(expected), ""
        )
    if case == "tool_loop_in_a_parallel_turn":
        assert isinstance(raised["block"], ToolLoopError)
    if case != "hook_error_in_a_parallel_call":  # that one is an ExceptionGroup with `run` too
        assert not isinstance(raised["block"], BaseExceptionGroup)


def _request_id(exc: BaseException) -> str:
    return str(getattr(exc, "request_id", None) or "")


async def test_plain_async_for_yields_the_same_events() -> None:
    def script() -> Script:
        return Script(
            [
                reply.tool_uses([("echo", {"x": n}) for n in (1, 2, 3)], text="Checking."),
                reply.tool_uses([("echo", {"x": n}) for n in (4, 5)]),
                reply.text("Done."),
            ]
        )

    def summary(events: list[AgentEvent]) -> Counter[tuple[Any, ...]]:
        out: Counter[tuple[Any, ...]] = Counter()
        for e in events:
            if isinstance(e, ToolCallStarted | ToolCallFinished):
                out[(e.kind, e.turn, e.tool_use.input["x"])] += 1
            elif isinstance(e, ToolUseStarted):
                out[(e.kind, e.turn, e.name)] += 1
            else:
                out[(e.kind, e.turn)] += 1
        return out

    live: list[AgentEvent] = []
    with LocalServer(policy=script()) as server:
        async with make_agent(server, tools=[echo]).stream("go") as stream:
            async for event in stream:
                live.append(event)
    plain: list[AgentEvent] = []
    with LocalServer(policy=script()) as server:
        plain_stream = make_agent(server, tools=[echo]).stream("go")
        async for event in plain_stream:
            plain.append(event)
    assert summary(plain) == summary(live)
    assert isinstance(plain[-1], RunFinished)
    assert plain_stream.result is not None
    assert plain_stream.result.text == "Done." == (stream.result.text if stream.result else None)
    # one event order in both forms: every turn's events before the next turn's
    turns = [e.turn for e in plain]
    assert turns == sorted(turns)


async def test_plain_async_for_reports_a_fast_call_before_a_slow_one_ends_too() -> None:
    tools = FastAndSlow()
    finished: list[str] = []
    with LocalServer(policy=fast_and_slow_script()) as server:
        with anyio.fail_after(5):  # a batched stream never reports `fast` while `slow` waits: deadlock
            async for event in make_agent(server, tools=tools.tools).stream("go"):
                if isinstance(event, ToolCallFinished):
                    finished.append(event.tool_use.name)
                    if event.tool_use.name == "fast":
                        assert tools.slow_waiting
                        tools.release.set()
    assert finished == ["fast", "slow"]


class LoopErrors:
    """Errors the event loop reports (asyncio's exception handler): a generator closed from the wrong
    task lands there. Trio raises them in the run instead, which fails the test by itself."""

    def __init__(self, backend: str) -> None:
        self.seen: list[str] = []
        if backend == "asyncio":
            import asyncio

            asyncio.get_running_loop().set_exception_handler(lambda _, ctx: self.seen.append(str(ctx)))


async def _until_answered(conversation: Conversation) -> None:
    """Wait (bounded by the caller's fail_after) until the history holds tool calls, all answered:
    Python closes an abandoned iteration from a task of its own, so there is nothing else to wait on."""
    while not (tool_uses_in(conversation.messages) and _valid(conversation)):  # noqa: ASYNC110
        await anyio.sleep(0.001)


def _valid(conversation: Conversation) -> bool:
    try:
        conversation.check()
    except Exception:
        return False
    return True


@pytest.mark.filterwarnings("ignore:Async generator .* was garbage collected:ResourceWarning")  # trio's
@pytest.mark.parametrize("how", ["break", "error", "aclosing"])
async def test_leaving_a_plain_async_for_stops_the_run_and_leaves_the_consumer_alone(
    how: str, anyio_backend: str
) -> None:
    # No `async with`: Python closes the abandoned iteration later, from a task of its own (at once
    # inside `aclosing`). The run must stop there (the call still running cancelled, every tool_use
    # answered), and the consumer's own task must go on untouched: no cancellation leaking into it, no
    # error from a cancel scope left in the wrong task.
    errors = LoopErrors(anyio_backend)
    tools = FastAndSlow()
    conversation = Conversation()
    with LocalServer(policy=fast_and_slow_script()) as server, anyio.fail_after(5):
        stream = make_agent(server, tools=tools.tools).stream("go", history=conversation)
        if how == "aclosing":
            async with contextlib.aclosing(aiter(stream)) as events:
                async for event in events:
                    if isinstance(event, ToolCallFinished):
                        break
            assert tools.slow_cancelled  # closed here: the run stopped before `aclosing` returned
            conversation.check()
        else:
            with pytest.raises(ValueError, match="the consumer's own") if how == "error" else _nothing():
                async for event in stream:
                    if isinstance(event, ToolCallFinished):
                        assert tools.slow_waiting
                        if how == "error":
                            raise ValueError("the consumer's own error")
                        break
            await _until_answered(conversation)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()  # the consumer's task is not cancelled at its next ones
        assert tools.slow_cancelled
        assert not tools.slow_waiting
    assert stream.result is None
    assert [r.content for r in results_by_id(conversation.messages).values()] == [CANCELLED, "fast 2"]
    assert len([r for r in server.requests if r.path == "/v1/messages"]) == 1
    assert errors.seen == []


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


async def test_a_plain_async_for_cancelled_from_outside_stops_the_run_before_it_leaves(
    anyio_backend: str,
) -> None:
    errors = LoopErrors(anyio_backend)
    tools = FastAndSlow()
    conversation = Conversation()
    with LocalServer(policy=fast_and_slow_script()) as server, anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async for event in make_agent(server, tools=tools.tools).stream("go", history=conversation):
                if isinstance(event, ToolCallFinished):
                    scope.cancel()  # the consumer is cancelled in its next `__anext__`
        assert scope.cancelled_caught
        # cancelled inside the iteration, it waited there for the run to stop: nothing left to wait for
        assert tools.slow_cancelled
        conversation.check()
    assert [r.content for r in results_by_id(conversation.messages).values()] == [CANCELLED, "fast 2"]
    assert errors.seen == []


async def test_a_stream_is_iterated_once(anyio_backend: str) -> None:
    with LocalServer(policy=Script([reply.text("one"), reply.text("two")])) as server:
        stream = make_agent(server).stream("go")
        events = [e async for e in stream]
        assert isinstance(events[-1], RunFinished)
        with pytest.raises(ConfigurationError, match="iterate it once"):
            async for _ in stream:
                pass
        with pytest.raises(ConfigurationError, match="iterate it once"):
            async with stream:
                pass
        assert len([r for r in server.requests if r.path == "/v1/messages"]) == 1


async def test_run_and_stream_take_the_same_steps() -> None:
    """``run()`` goes through the same driver: the same requests, results and history as a stream."""
    script = Script([reply.tool_uses([("echo", {"x": 1}), ("echo", {"x": 2})]), reply.text("Done.")])
    with LocalServer(policy=script) as server:
        result = await make_agent(server, tools=[echo]).run("go")
    script = Script([reply.tool_uses([("echo", {"x": 1}), ("echo", {"x": 2})]), reply.text("Done.")])
    with LocalServer(policy=script) as server:
        async with make_agent(server, tools=[echo]).stream("go") as stream:
            async for _ in stream:
                pass
    assert stream.result is not None
    streamed = stream.result
    assert [m.model_dump(exclude={"content"}) for m in result.messages] == [
        m.model_dump(exclude={"content"}) for m in streamed.messages
    ]
    assert (result.text, result.turns, result.status) == (streamed.text, streamed.turns, "completed")


async def test_a_stream_adds_its_prompt_when_it_starts_and_refuses_bad_input_at_once() -> None:
    conversation = Conversation()
    with LocalServer(policy=Script([reply.text("first"), reply.text("second")])) as server:
        agent = make_agent(server)
        with pytest.raises(ConfigurationError, match="nothing to send"):
            agent.stream(None, history=conversation)  # refused where it is given, not at iteration
        never = agent.stream("never iterated", history=conversation)
        later = agent.stream("second", history=conversation)
        assert len(conversation) == 0  # created, not started: the conversation is as it was
        await agent.run("first", history=conversation)  # another run goes first
        async with later as events:
            async for _ in events:
                pass
        del never
    assert [(m["role"], m["content"][0]["text"]) for m in conversation.to_wire()] == [
        ("user", "first"),
        ("assistant", "first"),
        ("user", "second"),
        ("assistant", "second"),
    ]
