"""A worker process for the store tests: ``python tests/stores_worker.py KIND LOCATION COMMAND ...``.

- ``append SESSION WORKER COUNT``: append COUNT turns, each loaded then appended at its revision,
  retrying on SessionConflictError (as a service would); prints the number of conflicts.
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


async def main(argv: list[str]) -> None:
    kind, location, command, *rest = argv
    store = make(kind, location, hang=command == "hang")
    try:
        if command == "append":
            await append(store, rest[0], rest[1], int(rest[2]))
        elif command == "hang":
            await hang(store, rest[0], int(rest[1]))
    finally:
        await store.aclose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
