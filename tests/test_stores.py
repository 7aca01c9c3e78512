"""The store contract, run against every store (SQLite in a temp file, a real PostgreSQL server):
revisions, all-or-nothing appends, one winner per revision, decisions recorded once, a writer killed
mid-append, many processes appending at once, and an event loop that keeps running meanwhile."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import anyio
import pytest

from agentkit import AlreadyDecidedError, Approve, ConfigurationError, Deny, SessionConflictError
from agentkit.stores import Entry, SQLiteStore, Store
from agentkit.types import Usage
from tests.stores_support import Backend

pytestmark = pytest.mark.anyio


def new_session() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def turn(text: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "text", "text": text + "?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": text + "!"}]},
    ]


def turns(start: int, messages: list[dict[str, Any]], output_tokens: int = 0) -> Entry:
    usage = {"input_tokens": 0, "output_tokens": output_tokens}
    return Entry("turns", {"start": start, "messages": messages, "usage": usage})


async def test_a_new_session_is_empty_at_revision_0(store_backend: Backend) -> None:
    loaded = await store_backend.new().load(new_session())
    assert (loaded.revision, loaded.messages, loaded.paused, loaded.decided) == (0, [], None, frozenset())
    assert loaded.state is None


async def test_appends_are_folded_in_order_and_another_worker_sees_them(store_backend: Backend) -> None:
    one, two = store_backend.new(), store_backend.new()
    session = new_session()
    assert await one.append(session, [turns(0, turn("a"), 5)], expected_revision=0) == 1
    # a turn that continues the last stored message (start 1 replaces the assistant turn)
    merged = {"role": "assistant", "content": [{"type": "text", "text": "a! and more"}]}
    assert await two.append(session, [turns(1, [merged, *turn("b")], 9)], expected_revision=1) == 2
    loaded = await one.load(session)
    assert loaded.revision == 2
    assert loaded.messages == [turn("a")[0], merged, *turn("b")]
    assert loaded.usage == Usage(input_tokens=0, output_tokens=9)
    assert [e.kind for e in await two.entries(session)] == ["turns", "turns"]


async def test_an_append_at_a_stale_revision_is_refused_and_writes_nothing(store_backend: Backend) -> None:
    store = store_backend.new()
    session = new_session()
    await store.append(session, [turns(0, turn("a"))], expected_revision=0)
    for stale in (0, 2):
        with pytest.raises(SessionConflictError) as caught:
            await store.append(session, [turns(2, turn("b")), turns(4, turn("c"))], expected_revision=stale)
        assert (caught.value.session, caught.value.expected, caught.value.actual) == (session, stale, 1)
    loaded = await store.load(session)
    assert loaded.revision == 1 and loaded.messages == turn("a")


async def test_two_workers_appending_at_the_same_revision_one_wins(store_backend: Backend) -> None:
    session = new_session()
    workers = [store_backend.new() for _ in range(4)]
    await workers[0].append(session, [turns(0, turn("start"))], expected_revision=0)
    outcomes: dict[int, object] = {}

    async def attempt(n: int) -> None:
        try:
            outcomes[n] = await workers[n].append(
                session, [turns(2, turn(f"w{n}")), turns(4, turn(f"w{n} again"))], expected_revision=1
            )
        except SessionConflictError as exc:
            outcomes[n] = exc

    async with anyio.create_task_group() as group:
        for n in range(len(workers)):
            group.start_soon(attempt, n)
    winners = [n for n, o in outcomes.items() if o == 3]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, SessionConflictError) for n, o in outcomes.items() if n not in winners)
    loaded = await workers[1].load(session)
    w = winners[0]
    assert loaded.revision == 3
    assert loaded.messages == [*turn("start"), *turn(f"w{w}"), *turn(f"w{w} again")]  # never interleaved


async def test_a_decision_is_recorded_once_per_call(store_backend: Backend) -> None:
    one, two = store_backend.new(), store_backend.new()
    session = new_session()
    paused = Entry("paused", {"state": {"run_id": "run_1"}})
    await one.append(session, [turns(0, turn("pay")), paused], expected_revision=0)
    assert (await two.load(session)).paused == {"run_id": "run_1"}
    revision = await one.record_decisions(
        session, {"toolu_1": Approve(), "toolu_2": Deny("no")}, run_id="run_1", expected_revision=2
    )
    assert revision == 3
    for at in (2, 3):  # whether the second worker loaded before or after the first decided
        with pytest.raises(AlreadyDecidedError) as caught:
            await two.record_decisions(session, {"toolu_2": Approve()}, run_id="run_1", expected_revision=at)
        assert caught.value.tool_use_ids == ["toolu_2"] and caught.value.session == session
    loaded = await two.load(session)
    assert loaded.revision == 3 and loaded.paused is None
    assert loaded.decided == {"toolu_1", "toolu_2"}


async def test_a_worker_killed_mid_append_leaves_the_last_complete_revision(store_backend: Backend) -> None:
    store = store_backend.new()
    session = new_session()
    await store.append(session, [turns(0, turn("kept"))], expected_revision=0)
    async with await anyio.open_process(store_backend.worker("hang", session, 1)) as worker:
        assert worker.stdout is not None
        seen = b""
        async for chunk in worker.stdout:  # until it is inside its transaction, about to commit
            seen += chunk
            if b"mid\n" in seen:
                break
        assert b"mid\n" in seen
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    assert worker.returncode == -signal.SIGKILL
    loaded = await store.load(session)
    assert loaded.revision == 1 and loaded.messages == turn("kept")
    # the dead writer's lock and rows are gone: the next append at revision 1 goes through
    assert await store.append(session, [turns(2, turn("next"))], expected_revision=1) == 2
    assert (await store_backend.new().load(session)).messages == [*turn("kept"), *turn("next")]


async def test_processes_appending_at_once_lose_nothing_and_double_nothing(store_backend: Backend) -> None:
    session = new_session()
    processes, count = 3, 8
    outputs: list[bytes] = []

    async def worker(p: int) -> None:
        done = await anyio.run_process(store_backend.worker("append", session, f"p{p}", count))
        outputs.append(done.stdout)

    async with anyio.create_task_group() as group:
        for p in range(processes):
            group.start_soon(worker, p)
    assert len(outputs) == processes
    loaded = await store_backend.new().load(session)
    assert loaded.revision == processes * count
    texts = [m["content"][0]["text"] for m in loaded.messages]
    assert len(texts) == 2 * processes * count
    for p in range(processes):  # each turn once, in its worker's order, question before answer
        mine = [t for t in texts if t.startswith(f"p{p}:")]
        assert mine == [f"p{p}:{i}{end}" for i in range(count) for end in "?!"]
    assert all(texts[i][:-1] == texts[i + 1][:-1] for i in range(0, len(texts), 2))  # never interleaved


async def test_a_waiting_append_does_not_block_the_event_loop(store_backend: Backend) -> None:
    store = store_backend.new()
    session = new_session()
    await store.append(session, [turns(0, turn("a"))], expected_revision=0)
    done, beating = anyio.Event(), anyio.Event()
    ticks = 0
    result: list[int] = []

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            if ticks == 50:
                beating.set()
            await anyio.sleep(0.001)

    async def append() -> None:
        result.append(await store.append(session, [turns(2, turn("b"))], expected_revision=1))
        done.set()

    async with anyio.create_task_group() as group:
        with store_backend.hold_write(session, 1):  # another writer holds the lock for the next revision
            group.start_soon(heartbeat)
            group.start_soon(append)
            await beating.wait()  # the loop keeps turning while the append waits on the lock
            assert result == [] and not done.is_set()
        # the other writer rolled back: the waiting append goes through
    assert result == [2]
    assert (await store.load(session)).messages == [*turn("a"), *turn("b")]


async def test_bad_arguments_are_refused_where_given(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"SQLiteStore\(path=...\): got ':memory:'"):
        SQLiteStore(":memory:")
    with pytest.raises(ConfigurationError, match=r"timeout=...\): got -1"):
        SQLiteStore(tmp_path / "x.db", timeout=-1)
    store: Store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(ConfigurationError, match=r"session=...\): got ''; expected a non-empty str"):
        await store.load("")
    with pytest.raises(ConfigurationError, match=r"expected_revision=...\): got -1"):
        await store.append("s", [turns(0, turn("a"))], expected_revision=-1)
    with pytest.raises(ConfigurationError, match=r"entries=...\): got no entries"):
        await store.append("s", [], expected_revision=0)
    await store.aclose()
    with pytest.raises(ConfigurationError, match="is closed"):
        await store.load("s")


async def test_postgres_workers_starting_together_on_a_new_database_create_the_tables_once(
    postgres_dsn: str,
) -> None:
    import psycopg

    from agentkit.stores import PostgresStore

    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/" + name
    workers = [PostgresStore(dsn, max_size=2) for _ in range(4)]
    revisions: list[int] = []

    async def start(store: PostgresStore) -> None:  # each creates the schema on first use, at once
        revisions.append((await store.load("user-1")).revision)

    async with anyio.create_task_group() as group:
        for store in workers:
            group.start_soon(start, store)
    assert revisions == [0, 0, 0, 0]
    assert await workers[0].append("user-1", [turns(0, turn("a"))], expected_revision=0) == 1
    assert (await workers[3].load("user-1")).messages == turn("a")
    for store in workers:
        await store.aclose()
