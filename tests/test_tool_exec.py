"""Tool execution: one timeout, typed outcomes, generators, bounded threads, per-turn limits,
duplicate ids, the run deadline and ``run_sync`` with the caller's client.

Every blocking tool here waits on a ``threading.Event`` the test opens at the end, so a thread left
behind by a bug ends with the test. Concurrency claims are shown with counters and heartbeats, never
with timing bounds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from structlog.testing import capture_logs

from agentkit import Agent, Client, Conversation, Toolset, tool
from agentkit.testing import LocalServer, Script, reply

pytestmark = pytest.mark.anyio

KEY = "sk-test"
MODEL = "claude-sonnet-4-6"


def use(name: str, tool_input: dict[str, Any] | None = None, id: str = "toolu_01") -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": tool_input or {}}


def agent_for(server: LocalServer, tools: Any, **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=10.0)
    return Agent(client, model=MODEL, tools=tools, **kwargs)


def results_sent(server: LocalServer, index: int = 1) -> list[dict[str, Any]]:
    return server.requests[index].tool_results


def text_of(result: dict[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


async def wait_for(predicate: Any, what: str) -> None:
    """Wait (cooperatively) until ``predicate()`` holds; a generous cap only turns a hang into a failure."""
    with anyio.move_on_after(20):
        while not predicate():  # noqa: ASYNC110 - the condition is another thread's doing
            await anyio.sleep(0.01)
    assert predicate(), f"never happened: {what}"


# --- 1. one timeout mechanism, typed outcomes ---------------------------------------------------


async def test_agent_tool_timeout_stops_a_blocking_sync_tool() -> None:
    release = threading.Event()

    @tool
    def blocking() -> str:
        """Blocks until released."""
        release.wait(5)
        return "late"

    script = Script([reply.tool_use("blocking", {}), reply.text("done")])
    try:
        with LocalServer(policy=script) as server, capture_logs() as logs:
            result = await agent_for(server, [blocking], tool_timeout=0.2).run("go")
    finally:
        release.set()
    assert result.text == "done"
    (answer,) = results_sent(server)
    assert answer["is_error"] is True
    assert "timed out after 0.2s" in text_of(answer)
    assert [e["timeout"] for e in logs if e["event"] == "tool.timeout"] == [0.2]


async def test_execute_gives_a_typed_outcome() -> None:
    from agentkit import ToolStatus

    release = threading.Event()

    @tool
    def blocking(n: int) -> str:
        """Blocks until released.

        Args:
            n: A number.
        """
        release.wait(5)
        return "late"

    @tool(timeout=5)
    async def raises_timeout() -> str:
        """Raises TimeoutError itself."""
        raise TimeoutError("upstream")

    try:
        timed_out = await blocking.execute(use("blocking", {"n": 1}), timeout=0.1)
        invalid = await blocking.execute(use("blocking", {"n": "x"}))
        own_error = await raises_timeout.execute(use("raises_timeout"))
        unknown = await Toolset([blocking]).execute(use("nope"))
    finally:
        release.set()
    assert timed_out.status is ToolStatus.TIMED_OUT and timed_out.result.is_error
    assert "timed out after 0.1s" in str(timed_out.result.content)
    assert invalid.status is ToolStatus.INVALID_INPUT
    assert own_error.status is ToolStatus.ERROR  # a TimeoutError raised by the tool is not our timeout
    assert unknown.status is ToolStatus.UNKNOWN_TOOL
    # run() is execute().result
    ok = await Toolset([raises_timeout]).run(use("raises_timeout"))
    assert ok.is_error


async def test_retry_budget_reads_the_outcome_not_the_message_text() -> None:
    from agentkit import ToolError

    @tool
    def picky(city: str) -> str:
        """Fails with a message that looks like a validation error.

        Args:
            city: A city.
        """
        raise ToolError(f"Invalid input for picky: no weather for {city}")

    script = Script([reply.tool_use("picky", {"city": f"c{i}"}) for i in range(2)] + [reply.text("ok")])
    with LocalServer(policy=script) as server, capture_logs() as logs:
        await agent_for(server, [picky], tool_retries=1).run("go")
    assert [e["event"] for e in logs if e["event"].startswith("guard.")] == []
    assert all("disabled" not in text_of(r) for i in (1, 2) for r in results_sent(server, i))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_tool_calls_per_turn", 0),
        ("max_concurrent_tool_calls", -1),
        ("max_tool_calls_per_turn", 2.5),
        ("run_timeout", 0),
        ("run_timeout", "5"),
    ],
)
def test_new_agent_options_reject_bad_values_naming_them(option: str, value: Any) -> None:
    from agentkit import ConfigurationError

    expected = rf"Agent\({option}=\.\.\.\): got {re.escape(repr(value))}; expected a positive"
    with pytest.raises(ConfigurationError, match=expected):
        Agent(Client(api_key=KEY, base_url="http://127.0.0.1:9"), model=MODEL, **{option: value})


async def test_execute_rejects_a_bad_timeout_naming_it() -> None:
    from agentkit import ConfigurationError

    @tool
    def noop() -> str:
        """Does nothing."""
        return ""

    with pytest.raises(
        ConfigurationError, match="timeout must be a positive number of seconds or None, not 0"
    ):
        await noop.execute(use("noop"), timeout=0)


# --- 2. generators ------------------------------------------------------------------------------


async def test_a_blocking_sync_generator_does_not_freeze_the_event_loop() -> None:
    blocked = threading.Event()
    gate = threading.Event()
    ticks = 0

    @tool
    def slow_lines() -> Iterator[str]:
        """Yields lines, waiting between them."""
        yield "a"
        blocked.set()
        gate.wait(5)  # only the heartbeat on the event loop opens it
        yield "b"

    async def heartbeat() -> None:
        nonlocal ticks
        while not gate.is_set():
            if blocked.is_set():
                ticks += 1
                if ticks >= 3:
                    gate.set()
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(heartbeat)
        result = await slow_lines.run(use("slow_lines"))
    gate.set()
    assert ticks >= 3, "the event loop was frozen while the generator blocked"
    assert result.content == "ab" and not result.is_error


async def test_the_tool_timeout_applies_to_a_slow_sync_generator_which_is_then_closed() -> None:
    closed = threading.Event()
    pulled = 0

    @tool(timeout=0.2)
    def endless() -> Iterator[str]:
        """Yields forever, slowly."""
        nonlocal pulled
        try:
            for _ in range(100):
                threading.Event().wait(0.05)
                pulled += 1
                yield "x"
        finally:
            closed.set()

    outcome = await endless.execute(use("endless"))
    assert outcome.result.is_error and "timed out" in str(outcome.result.content)
    assert await anyio.to_thread.run_sync(closed.wait, 10)  # consumption stopped after the timeout
    assert pulled < 100


async def test_a_sync_generator_is_consumed_only_up_to_the_result_cap() -> None:
    pulled = 0

    @tool(max_result_chars=100)
    def chatty() -> Iterator[str]:
        """Yields a lot."""
        nonlocal pulled
        for _ in range(100_000):
            pulled += 1
            yield "0123456789"

    result = await chatty.run(use("chatty"))
    assert isinstance(result.content, str) and result.content.startswith("0123456789" * 10)
    assert "truncated" in result.content
    assert pulled <= 11


async def test_async_generators_are_consumed_capped_and_under_the_timeout() -> None:
    pulled = 0
    closed = anyio.Event()

    @tool
    async def words() -> AsyncIterator[str]:
        """Yields words."""
        for word in ("a", "b", "c"):
            await anyio.lowlevel.checkpoint()
            yield word

    @tool(max_result_chars=50)
    async def chatty() -> AsyncIterator[dict[str, int]]:
        """Yields records forever."""
        nonlocal pulled
        try:
            while True:
                pulled += 1
                yield {"n": pulled}
        finally:
            closed.set()

    @tool(timeout=0.1)
    async def slow() -> AsyncIterator[str]:
        """Never yields."""
        await anyio.sleep_forever()
        yield "never"

    assert (await words.run(use("words"))).content == "abc"
    capped = await chatty.run(use("chatty"))
    assert closed.is_set() and pulled < 10 and "truncated" in str(capped.content)
    timed = await slow.run(use("slow"))
    assert timed.is_error and "timed out after 0.1s" in str(timed.content)


async def test_an_endless_generator_without_timeout_stops_at_an_outer_cancel_scope() -> None:
    produced = threading.Event()
    closed = threading.Event()
    pulled = 0

    @tool
    def endless() -> Iterator[str]:
        """Yields forever."""
        nonlocal pulled
        try:
            for _ in range(200):
                threading.Event().wait(0.02)
                pulled += 1
                if pulled == 3:
                    produced.set()
                yield "x"
        finally:
            closed.set()

    conversation = Conversation()
    script = Script([reply.tool_use("endless", {}), reply.text("done")])
    with LocalServer(policy=script) as server:
        agent = agent_for(server, [endless])
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def cancel_when_running() -> None:
                    await anyio.to_thread.run_sync(produced.wait, 10)
                    scope.cancel()

                group.start_soon(cancel_when_running)
                await agent.run("go", history=conversation)
        assert scope.cancelled_caught
        assert await anyio.to_thread.run_sync(closed.wait, 10)
        assert pulled < 200
        conversation.check()
        assert conversation.to_wire()[-1]["content"][0]["is_error"] is True


# --- 3. bounded threads -------------------------------------------------------------------------


async def test_timed_out_sync_tools_never_exceed_the_thread_bound() -> None:
    from agentkit import tool_thread_limiter

    release = threading.Event()
    lock = threading.Lock()
    inside = 0
    most = 0

    @tool(timeout=1.0)
    def stuck(n: int) -> str:
        """Blocks until released.

        Args:
            n: Call number.
        """
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            release.wait(20)
        finally:
            with lock:
                inside -= 1
        return "late"

    limiter = tool_thread_limiter()
    limiter.total_tokens = 4
    statuses: list[str] = []
    try:
        async with anyio.create_task_group() as group:

            async def one(n: int) -> None:
                statuses.append((await stuck.execute(use("stuck", {"n": n}, id=f"t{n}"))).status.value)

            for n in range(4):
                group.start_soon(one, n)
            # The first four are in their threads (so their timeouts cannot fire before a thread got
            # the call); the twenty more wait for a token, and all 24 time out.
            await wait_for(lambda: inside == 4, "four tool threads running")
            for n in range(4, 24):
                group.start_soon(one, n)
        assert statuses == ["timed_out"] * 24
        assert most <= 4, f"{most} tool threads alive at once"
        assert limiter.borrowed_tokens == 4 == inside  # the abandoned threads still hold their tokens
    finally:
        release.set()
    await wait_for(lambda: limiter.borrowed_tokens == 0, "the ended threads gave their tokens back")
    assert most <= 4


# --- 4. per-turn call cap and concurrency limit -------------------------------------------------


def counting_tool(width: int = 16) -> tuple[Any, dict[str, int]]:
    """A tool counting the calls in flight; each waits (a bounded number of checkpoints) for ``width``
    calls to be in flight together, so that the limit is reached if the agent allows it."""
    seen = {"in_flight": 0, "most": 0, "ran": 0}

    @tool
    async def probe(n: int) -> str:
        """Counts calls in flight.

        Args:
            n: Call number.
        """
        seen["in_flight"] += 1
        seen["ran"] += 1
        seen["most"] = max(seen["most"], seen["in_flight"])
        for _ in range(200):
            if seen["in_flight"] >= width:
                break
            await anyio.lowlevel.checkpoint()
        seen["in_flight"] -= 1
        return f"ok {n}"

    return probe, seen


@pytest.mark.parametrize("stream", [False, True])
async def test_a_huge_turn_is_capped_and_runs_at_most_the_concurrency_limit(stream: bool) -> None:
    probe, seen = counting_tool()
    calls = [("probe", {"n": n}) for n in range(100)]
    script = Script([reply.tool_uses(calls), reply.text("done")])
    with LocalServer(policy=script) as server, capture_logs() as logs:
        agent = agent_for(server, [probe])
        if stream:
            async with agent.stream("go") as events:
                async for _ in events:
                    pass
        else:
            await agent.run("go")
    answers = results_sent(server)
    assert len(answers) == 100  # every tool_use answered, in order
    assert seen["ran"] == 64  # the default cap
    assert seen["most"] == 16  # the default concurrency limit, reached and never passed
    assert all(a["is_error"] and "at most 64 tool calls run per turn" in text_of(a) for a in answers[64:])
    assert not any(a.get("is_error") for a in answers[:64])
    (event,) = [e for e in logs if e["event"] == "guard.tool_calls"]
    assert event["requested"] == 100 and event["limit"] == 64


async def test_call_cap_and_concurrency_are_configurable() -> None:
    probe, seen = counting_tool(width=2)
    calls = [("probe", {"n": n}) for n in range(8)]
    script = Script([reply.tool_uses(calls), reply.text("done")])
    with LocalServer(policy=script) as server:
        await agent_for(server, [probe], max_tool_calls_per_turn=5, max_concurrent_tool_calls=2).run("go")
    assert seen["ran"] == 5 and seen["most"] == 2
    assert [bool(a.get("is_error")) for a in results_sent(server)] == [False] * 5 + [True] * 3


# --- 5. duplicate tool_use ids ------------------------------------------------------------------


async def test_duplicate_tool_use_ids_are_refused_before_anything_runs() -> None:
    from agentkit import DuplicateToolUseIdError, ProtocolError

    probe, seen = counting_tool()
    twice = reply.tool_uses([("probe", {"n": 1}, "toolu_same"), ("probe", {"n": 2}, "toolu_same")])
    script = Script([twice, reply.text("fine now")])
    conversation = Conversation()
    with LocalServer(policy=script) as server:
        agent = agent_for(server, [probe])
        with pytest.raises(DuplicateToolUseIdError, match="toolu_same") as caught:
            await agent.run("go", history=conversation)
        assert isinstance(caught.value, ProtocolError)
        assert caught.value.tool_use_id == "toolu_same"
        assert seen["ran"] == 0
        conversation.check()
        result = await agent.run("again", history=conversation)
    assert result.text == "fine now"
    assert server.requests[-1].status == 200


# --- 6. run deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_trickled_response_is_stopped_by_the_run_deadline(stream: bool) -> None:
    from agentkit import AgentRunError, RunTimeoutError

    probe, _ = counting_tool()
    script = Script(
        [reply.tool_use("probe", {"n": 1}), reply.ping_forever(interval=0.02), reply.text("resumed")]
    )
    conversation = Conversation()
    with LocalServer(policy=script) as server:
        agent = agent_for(server, [probe], run_timeout=0.5, stream=stream)
        with pytest.raises(RunTimeoutError, match=r"run_timeout=0\.5") as caught:
            await agent.run("go", history=conversation)
        assert isinstance(caught.value, AgentRunError)
        conversation.check()
        assert [m.role for m in caught.value.messages] == ["user", "assistant", "user"]
        result = await agent.run("go on", history=conversation)
    assert result.text == "resumed"


async def test_the_run_deadline_answers_every_tool_use_of_a_live_stream() -> None:
    from agentkit import RunTimeoutError

    release = threading.Event()

    @tool
    def stuck(n: int) -> str:
        """Blocks until released.

        Args:
            n: Call number.
        """
        release.wait(20)
        return "late"

    calls = [("stuck", {"n": n}) for n in range(3)]
    script = Script([reply.tool_uses(calls), reply.text("resumed")])
    conversation = Conversation()
    try:
        with LocalServer(policy=script) as server:
            agent = agent_for(server, [stuck], run_timeout=0.5)
            with pytest.raises(RunTimeoutError):
                async with agent.stream("go", history=conversation) as events:
                    async for _ in events:
                        pass
            conversation.check()
            answers = conversation.to_wire()[-1]["content"]
            assert [a["is_error"] for a in answers] == [True] * 3
            assert all("time limit" in a["content"] for a in answers)
            release.set()
            assert (await agent.run("go on", history=conversation)).text == "resumed"
    finally:
        release.set()


# --- 7. run_sync and the caller's client --------------------------------------------------------


def test_run_sync_leaves_the_callers_client_open() -> None:
    import httpx2

    class Recording(httpx2.AsyncBaseTransport):
        """The caller's transport: a connection per request (so any event loop may use it), and a
        record of being closed."""

        def __init__(self) -> None:
            self.closed = 0

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            async with httpx2.AsyncHTTPTransport() as inner:
                response = await inner.handle_async_request(request)
                body = await response.aread()
            return httpx2.Response(response.status_code, headers=response.headers, content=body)

        async def aclose(self) -> None:
            self.closed += 1

    transport = Recording()
    with LocalServer(policy=lambda request: reply.text("ok")) as server:
        client = Client(api_key=KEY, base_url=server.base_url, max_retries=0, transport=transport)
        agent = Agent(client, model=MODEL)
        assert agent.run_sync("one").text == "ok"
        assert agent.run_sync("two").text == "ok"
        assert transport.closed == 0

        async def use_it() -> str:
            message = await client.create(
                model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "three"}]
            )
            return message.text

        assert anyio.run(use_it) == "ok"
    assert transport.closed == 0
