"""A worker process for the store tests: ``python tests/stores_worker.py KIND LOCATION COMMAND ...``.

- ``append SESSION WORKER COUNT``: append COUNT turns, each loaded then appended at its revision,
  retrying on SessionConflictError (as a service would); prints the number of conflicts.
- ``resume SESSION BASE_URL``: approve the session's paused ``pay`` call with an agent on the
  LocalServer at BASE_URL; prints what the tool did and how the run ended.
- ``hang SESSION REVISION``: start an append of three entries, print ``mid`` inside its transaction
  just before the commit, then wait there forever (the test kills the process).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentkit import SessionConflictError
from agentkit.stores import Entry, SQLiteStore, Store


def make(kind: str, location: str, hang: bool) -> Store:
    base: type[Store]
    if kind == "sqlite":
        base = SQLiteStore
    else:
        from agentkit.stores import PostgresStore

        base = PostgresStore

    class Hanging(base):  # type: ignore[valid-type, misc]
        def _before_commit(self) -> None:
            print("mid", flush=True)
            while True:
                time.sleep(60)

    return Hanging(location) if hang else base(location)  # type: ignore[call-arg]


def turn(worker: str, i: int) -> list[dict[str, object]]:
    return [
        {"role": "user", "content": [{"type": "text", "text": f"{worker}:{i}?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": f"{worker}:{i}!"}]},
    ]


async def append(store: Store, session: str, worker: str, count: int) -> None:
    conflicts = 0
    for i in range(count):
        while True:
            loaded = await store.load(session)
            data = {"start": len(loaded.messages), "messages": turn(worker, i), "usage": {}}
            try:
                await store.append(session, [Entry("turns", data)], expected_revision=loaded.revision)
                break
            except SessionConflictError:
                conflicts += 1
    print(conflicts, flush=True)


async def hang(store: Store, session: str, revision: int) -> None:
    entries = [Entry("turns", {"start": 0, "messages": turn("killed", n), "usage": {}}) for n in range(3)]
    await store.append(session, entries, expected_revision=revision)


async def resume(store: Store, session: str, base_url: str) -> None:
    from agentkit import Agent, Approve, Client, tool

    @tool(requires_approval=True)
    def pay(to: str, amount: int) -> str:
        """Send money.

        Args:
            to: Who gets it.
            amount: Euros.
        """
        print(f"paid {amount} EUR to {to}", flush=True)
        return f"paid {amount} EUR to {to}"

    client = Client(api_key="sk-test", base_url=base_url, max_retries=0)
    agent = Agent(client, model="claude-sonnet-4-6", tools=[pay], store=store)
    loaded = await store.load(session)
    pending = [p.tool_use_id for p in loaded.state.pending] if loaded.state is not None else []
    result = await agent.resume(session=session, decisions={i: Approve() for i in pending})
    print(f"{result.status}: {result.text}", flush=True)
    await client.aclose()


async def main(argv: list[str]) -> None:
    kind, location, command, *rest = argv
    store = make(kind, location, hang=command == "hang")
    try:
        if command == "append":
            await append(store, rest[0], rest[1], int(rest[2]))
        elif command == "resume":
            await resume(store, rest[0], rest[1])
        elif command == "hang":
            await hang(store, rest[0], int(rest[1]))
    finally:
        await store.aclose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
