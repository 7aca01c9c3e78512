"""Agents with a store: a session per user carried across runs and workers, a paused run resumed by its
session from another worker (its calls run once), and two workers racing on one session (one wins,
the other gets SessionConflictError, the stored history stays valid). Every test runs against SQLite
and a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
import pytest

from agentkit import (
    Agent,
    AlreadyDecidedError,
    ApprovalError,
    Approve,
    Client,
    ConfigurationError,
    Conversation,
    ConversationBusyError,
    Deny,
    RunFinished,
    SessionConflictError,
    tool,
)
from agentkit.stores import Entry, SQLiteStore, Store
from agentkit.testing import LocalServer, Script, reply
from tests.conftest import Held
from tests.stores_support import Backend

pytestmark = pytest.mark.anyio
MODEL = "claude-sonnet-4-6"


def new_session() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


class Ledger:
    def __init__(self) -> None:
        self.paid: list[tuple[str, int]] = []

        @tool(requires_approval=True)
        def pay(to: str, amount: int) -> str:
            """Send money.

            Args:
                to: Who gets it.
                amount: Euros.
            """
            self.paid.append((to, amount))
            return f"paid {amount} EUR to {to}"

        self.tools = [pay]


def agent_for(server: LocalServer, store: Store, tools: Sequence[Any] = (), **kwargs: Any) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    return Agent(client, model=MODEL, tools=list(tools), store=store, **kwargs)


def texts(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for b in blocks:
            result = b.get("content") if b["type"] == "tool_result" else None
            out.append(result if isinstance(result, str) else b.get("text", b["type"]))
    return out


class Gate(Store):
    """Another store (a user's own ``Store`` wraps one): the first ``n`` loads wait for each other, so
    ``n`` workers start from the same revision."""

    def __init__(self, inner: Store, n: int) -> None:
        self.inner, self.waiting, self.open = inner, n, anyio.Event()

    async def entries(self, session: str) -> list[Entry]:
        entries = await self.inner.entries(session)
        if self.waiting > 0:
            self.waiting -= 1
            if self.waiting == 0:
                self.open.set()
            await self.open.wait()
        return entries

    async def append(self, session: str, entries: Sequence[Entry], **kwargs: Any) -> int:
        return await self.inner.append(session, entries, **kwargs)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def worker(self) -> Store:
        """The store object of one worker (each process has its own) over this gate: runs of one
        session on one store object take turns in-process (ConversationBusyError), so two workers
        racing each other need two."""
        return _Via(self)


class _Via(Store):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def entries(self, session: str) -> list[Entry]:
        return await self.gate.entries(session)

    async def append(self, session: str, entries: Sequence[Entry], **kwargs: Any) -> int:
        return await self.gate.append(session, entries, **kwargs)

    async def aclose(self) -> None:
        pass


async def test_a_session_carries_the_conversation_across_runs_and_workers(store_backend: Backend) -> None:
    session = new_session()
    with LocalServer(policy=Script([reply.text("Hello Ada."), reply.text("You are Ada.")])) as server:
        first = await agent_for(server, store_backend.new()).run("I am Ada.", session=session)
        second = await agent_for(server, store_backend.new()).run("Who am I?", session=session)
        sent = server.requests[-1].messages
    assert first.text == "Hello Ada." and second.text == "You are Ada."
    assert texts(sent) == ["I am Ada.", "Hello Ada.", "Who am I?"]  # the other worker's turns were loaded
    loaded = await store_backend.new().load(session)
    assert texts(loaded.messages) == ["I am Ada.", "Hello Ada.", "Who am I?", "You are Ada."]
    assert loaded.usage == first.usage + second.usage and loaded.paused is None
    # another session is untouched
    assert (await store_backend.new().load(new_session())).messages == []


async def test_a_run_failing_before_an_answer_leaves_the_session_as_it_was(store_backend: Backend) -> None:
    session = new_session()
    policy = Script([reply.text("Hello."), reply.error(500)])
    with LocalServer(policy=policy) as server:
        agent = agent_for(server, store_backend.new())
        await agent.run("Hi", session=session)
        with pytest.raises(Exception, match="500"):
            await agent.run("Are you there?", session=session)
    loaded = await store_backend.new().load(session)
    assert texts(loaded.messages) == ["Hi", "Hello."] and loaded.revision == 1


async def test_the_next_prompt_continues_a_stored_turn_of_results(store_backend: Backend) -> None:
    session = new_session()
    policy = Script(
        [reply.tool_use("clock", {}, "toolu_1"), reply.error(500), reply.text("It is noon; both answered.")]
    )

    @tool
    def clock() -> str:
        """The time."""
        return "12:00"

    with LocalServer(policy=policy) as server:
        agent = agent_for(server, store_backend.new(), [clock])
        with pytest.raises(Exception, match="500"):  # fails after a tool turn: stored up to its results
            await agent.run("What time is it?", session=session)
        assert texts((await store_backend.new().load(session)).messages) == [
            "What time is it?",
            "tool_use",
            "12:00",
        ]
        done = await agent.run("And the date?", session=session)
        sent = server.requests[-1].messages
    loaded = await store_backend.new().load(session)
    assert loaded.messages[:-1] == sent  # the stored history is what was sent, no turn twice
    assert texts(loaded.messages) == ["What time is it?", "tool_use", "12:00", "And the date?", done.text]
    Conversation(loaded.messages).check()


async def test_a_paused_turn_continued_by_the_model_is_stored_whole(store_backend: Backend) -> None:
    session = new_session()
    policy = Script([reply.pause_turn([{"type": "text", "text": "Searching..."}]), reply.text(" Found it.")])
    with LocalServer(policy=policy) as server:
        result = await agent_for(server, store_backend.new()).run("Find it", session=session)
    loaded = await store_backend.new().load(session)
    assert [m.model_dump(exclude_none=True) for m in result.messages] == loaded.messages
    assert texts(loaded.messages) == ["Find it", "Searching...", " Found it."]


async def test_a_paused_run_is_resumed_by_its_session_from_another_worker(store_backend: Backend) -> None:
    session, ledger = new_session(), Ledger()
    policy = Script([reply.tool_use("pay", {"to": "alice", "amount": 40}, "toolu_pay"), reply.text("Paid.")])
    with LocalServer(policy=policy) as server:
        paused = await agent_for(server, store_backend.new(), ledger.tools).run("Pay alice", session=session)
        assert paused.status == "awaiting_approval" and ledger.paid == []
        stored = await store_backend.new().load(session)
        assert stored.state is not None and [p.tool_use_id for p in stored.state.pending] == ["toolu_pay"]
        # a new run on the paused session is refused: the pause must be decided first
        with pytest.raises(ApprovalError, match=r"awaiting approval \(pending: \['toolu_pay'\]\)"):
            await agent_for(server, store_backend.new(), ledger.tools).run("Hello?", session=session)
        other = agent_for(server, store_backend.new(), ledger.tools)
        done = await other.resume(session=session, decisions={"toolu_pay": Approve()})
        assert done.status == "completed" and done.text == "Paid."
        assert ledger.paid == [("alice", 40)]
        # a second resume of the same pause (a third worker, same decision) is refused; nothing runs
        with pytest.raises(AlreadyDecidedError) as caught:
            await agent_for(server, store_backend.new(), ledger.tools).resume(
                session=session, decisions={"toolu_pay": Approve()}
            )
        assert caught.value.tool_use_ids == ["toolu_pay"]
    assert ledger.paid == [("alice", 40)]
    loaded = await store_backend.new().load(session)
    Conversation(loaded.messages).check()
    assert texts(loaded.messages) == ["Pay alice", "tool_use", "paid 40 EUR to alice", "Paid."]


async def test_the_decision_is_in_the_store_before_the_call_runs(store_backend: Backend) -> None:
    session, observer = new_session(), store_backend.new()
    seen: list[tuple[bool, frozenset[str]]] = []

    @tool(requires_approval=True)
    async def delete_account(user: str) -> str:
        """Delete an account.

        Args:
            user: Whose.
        """
        loaded = await observer.load(session)  # what any other worker would see now
        seen.append((loaded.paused is None, loaded.decided))
        return f"deleted {user}"

    policy = Script([reply.tool_use("delete_account", {"user": "zed"}, "toolu_del"), reply.text("Gone.")])
    with LocalServer(policy=policy) as server:
        agent = agent_for(server, store_backend.new(), [delete_account])
        await agent.run("Delete zed", session=session)
        await agent.resume(session=session, decisions={"toolu_del": Approve()})
    assert seen == [(True, frozenset({"toolu_del"}))]


async def test_a_paused_run_is_resumed_from_another_process(store_backend: Backend) -> None:
    session, ledger = new_session(), Ledger()
    policy = Script([reply.tool_use("pay", {"to": "carol", "amount": 5}, "toolu_pay"), reply.text("Paid.")])
    with LocalServer(policy=policy) as server:
        await agent_for(server, store_backend.new(), ledger.tools).run("Pay carol", session=session)
        done = await anyio.run_process(store_backend.worker("resume", session, server.base_url))
    assert done.stdout.decode().splitlines() == ["paid 5 EUR to carol", "completed: Paid."]
    assert ledger.paid == []  # it ran in the other process, once
    loaded = await store_backend.new().load(session)
    assert texts(loaded.messages) == ["Pay carol", "tool_use", "paid 5 EUR to carol", "Paid."]


async def test_two_workers_resuming_one_pause_at_once_run_the_call_once(store_backend: Backend) -> None:
    session, ledger = new_session(), Ledger()
    policy = Script([reply.tool_use("pay", {"to": "bob", "amount": 7}, "toolu_pay"), reply.text("Paid.")])
    with LocalServer(policy=policy) as server:
        await agent_for(server, store_backend.new(), ledger.tools).run("Pay bob", session=session)
        gate = Gate(store_backend.new(), 2)  # both workers load the paused run before either decides
        outcomes: list[object] = []

        async def worker(decision: Any) -> None:
            try:
                done = await agent_for(server, gate.worker(), ledger.tools).resume(
                    session=session, decisions={"toolu_pay": decision}
                )
                outcomes.append(done.status)
            except AlreadyDecidedError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(worker, Approve())
            group.start_soon(worker, Approve())
    assert len(outcomes) == 2 and outcomes.count("completed") == 1
    assert sum(isinstance(o, AlreadyDecidedError) for o in outcomes) == 1
    assert ledger.paid == [("bob", 7)]  # once


async def test_two_workers_on_one_session_one_wins_the_other_conflicts(store_backend: Backend) -> None:
    session = new_session()
    policy = Script([reply.text("Answer one."), reply.text("Answer two.")])
    with LocalServer(policy=policy) as server:
        gate = Gate(store_backend.new(), 2)  # both load revision 0
        outcomes: dict[str, object] = {}

        async def worker(prompt: str) -> None:
            try:
                result = await agent_for(server, gate.worker()).run(prompt, session=session)
                outcomes[prompt] = result.messages
            except SessionConflictError as exc:
                outcomes[prompt] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(worker, "Question A")
            group.start_soon(worker, "Question B")
    lost = [p for p, o in outcomes.items() if isinstance(o, SessionConflictError)]
    won = [p for p in outcomes if p not in lost]
    assert len(lost) == 1 and len(won) == 1
    loaded = await store_backend.new().load(session)
    winner = outcomes[won[0]]
    assert isinstance(winner, list)
    assert loaded.messages == [m.model_dump(exclude_none=True) for m in winner]  # the winner's turns only
    assert texts(loaded.messages)[0] == won[0] and lost[0] not in texts(loaded.messages)
    Conversation(loaded.messages).check()


@pytest.mark.parametrize("second", ["run", "stream", "resume"])
async def test_in_one_process_a_second_run_of_a_session_is_refused_before_it_loads_or_sends(
    store_backend: Backend, second: str
) -> None:
    # Two requests of one session at once in one service (a double submit): the second is refused
    # at once, instead of reaching the model and failing later at its first append.
    session, ledger, held = new_session(), Ledger(), Held()
    replies = Script([reply.tool_uses([("hold", {})]), reply.text("first done"), reply.text("later done")])
    store = store_backend.new()
    with LocalServer(policy=replies) as server:
        agent = agent_for(server, store, [held.tool, *ledger.tools])
        async with anyio.create_task_group() as group:
            group.start_soon(partial(agent.run, "first", session=session))
            await held.entered.wait()
            revision = (await store.load(session)).revision
            with pytest.raises(ConversationBusyError, match=f"session '{session}' is being run") as refused:
                if second == "run":
                    await agent.run("second", session=session)
                elif second == "stream":
                    async with agent.stream("second", session=session) as events:
                        async for _ in events:
                            pass
                else:
                    await agent.resume(session=session, decisions={})
            assert refused.value.run_id.startswith("run_")
            assert len([r for r in server.requests if r.path == "/v1/messages"]) == 1  # nothing sent
            assert (await store.load(session)).revision == revision  # nothing stored
            held.release.set()
        assert (await agent.run("later", session=session)).text == "later done"  # free again
    assert texts((await store.load(session)).messages)[-2:] == ["later", "later done"]
    assert "second" not in texts((await store.load(session)).messages)


async def test_stream_and_resume_stream_use_the_session(store_backend: Backend) -> None:
    session, ledger = new_session(), Ledger()
    policy = Script([reply.tool_use("pay", {"to": "eve", "amount": 3}, "toolu_pay"), reply.text("Not paid.")])
    with LocalServer(policy=policy) as server:
        agent = agent_for(server, store_backend.new(), ledger.tools)
        async with agent.stream("Pay eve", session=session) as events:
            kinds = [type(e).__name__ async for e in events]
        assert kinds[-1] == "RunFinished" and events.result is not None
        assert events.result.status == "awaiting_approval"
        other = agent_for(server, store_backend.new(), ledger.tools)
        async with other.resume_stream(session=session, decisions={"toolu_pay": Deny("not today")}) as events:
            last = [e async for e in events][-1]
    assert isinstance(last, RunFinished) and last.result.text == "Not paid."
    assert ledger.paid == []
    loaded = await store_backend.new().load(session)
    assert texts(loaded.messages) == ["Pay eve", "tool_use", "call denied: not today", "Not paid."]


async def test_session_arguments_are_checked_where_given(tmp_path: Any) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    with LocalServer(policy=Script([])) as server:
        client = Client(api_key="sk-test", base_url=server.base_url)
        with pytest.raises(ConfigurationError, match=r"Agent\(store=...\): got 's.db' \(str\)"):
            Agent(client, model=MODEL, store="s.db")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=r"this agent has no store"):
            await Agent(client, model=MODEL).run("hi", session="user-1")
        agent = Agent(client, model=MODEL, store=store)
        with pytest.raises(ConfigurationError, match=r"both session= and history="):
            await agent.run("hi", session="user-1", history=[])
        with pytest.raises(ConfigurationError, match=r"Agent.run\(session=...\): got int"):
            await agent.run("hi", session=42)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=r"Agent.resume: nothing to resume; pass the paused"):
            await agent.resume(decisions={})
        with pytest.raises(ConfigurationError, match=r"both session= and state="):
            await agent.resume("{}", session="user-1")
        with pytest.raises(ApprovalError, match=r"has no run awaiting approval"):
            await agent.resume(session="user-1", decisions={})
        assert server.requests == []
    await store.aclose()


def test_run_sync_and_resume_sync_keep_the_session_across_event_loops(store_backend: Backend) -> None:
    session, ledger = new_session(), Ledger()
    policy = Script(
        [reply.text("Hi."), reply.tool_use("pay", {"to": "dan", "amount": 2}, "toolu_p"), reply.text("Ok.")]
    )
    store = store_backend.new()  # one store object, used by three event loops in turn
    with LocalServer(policy=policy) as server:
        agent = agent_for(server, store, ledger.tools)
        assert agent.run_sync("Hello", session=session).text == "Hi."
        assert agent.run_sync("Pay dan 2", session=session).status == "awaiting_approval"
        assert agent.resume_sync(session=session, decisions={"toolu_p": Approve()}).text == "Ok."
    assert ledger.paid == [("dan", 2)]
    loaded = anyio.run(store_backend.new().load, session)
    assert texts(loaded.messages) == ["Hello", "Hi.", "Pay dan 2", "tool_use", "paid 2 EUR to dan", "Ok."]


def test_postgres_store_never_shows_the_password() -> None:
    pytest.importorskip("psycopg")
    from agentkit import StoreError
    from agentkit.stores import PostgresStore

    secret = "s3cr3t-pw-1234"
    # a port where nothing listens: the pool gives up after the timeout
    store = PostgresStore(f"postgresql://agent:{secret}@127.0.0.1:9/sessions", timeout=0.5)
    assert secret not in repr(store) and "127.0.0.1" in repr(store)
    with pytest.raises(StoreError) as caught:
        anyio.run(store.load, "user-1")
    assert secret not in str(caught.value) and "PostgresStore(host='127.0.0.1'" in str(caught.value)
    assert secret not in str(caught.value.__context__)  # nor in the driver's error kept beneath
    anyio.run(store.aclose)


async def test_a_compacted_history_is_what_the_session_keeps(store_backend: Backend) -> None:
    """Compaction rewrites earlier turns in place; the store keeps the history as compacted (the next
    worker loads exactly what the model was last sent), and it stays valid."""
    from agentkit import Compaction, Conversation

    @tool
    def read_page(n: int) -> str:
        """Read a page.

        Args:
            n: Page number.
        """
        return f"page {n}: " + "lorem ipsum " * 300

    big = reply.tool_use("read_page", {"n": 2})
    big.message["usage"] = {"input_tokens": 150_000, "output_tokens": 20}
    script = Script([reply.tool_use("read_page", {"n": 1}), big, reply.text("Done."), reply.text("Again.")])
    session = new_session()
    compaction = Compaction(trigger_tokens=100_000, keep_tool_results=1)
    with LocalServer(policy=script) as server:
        store = store_backend.new()
        await agent_for(server, store, [read_page], compaction=compaction).run("Sum it up.", session=session)
        sent = server.requests[-1].messages  # the compacted history, as the model last saw it
        loaded = await store.load(session)
        assert [m for m in loaded.messages[: len(sent)]] == sent
        assert "[result cleared to save context" in str(loaded.messages)
        Conversation(loaded.messages).check()
        later = store_backend.new()  # another worker carries on from the compacted session
        await agent_for(server, later, [read_page]).run("And again?", session=session)
        assert server.requests[-1].messages[: len(sent)] == sent
