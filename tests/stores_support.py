"""Store backends for the parametrised store tests: each gives new store objects ("workers") on one
database, the arguments for a worker in a subprocess (``tests/stores_worker.py``), and a way to hold
a session's write lock from outside (another connection mid-transaction)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from agentkit.stores import SQLiteStore, Store

ROOT = Path(__file__).resolve().parents[1]


class Backend:
    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind
        self.location = location  # the SQLite file or the PostgreSQL DSN
        self._made: list[Store] = []

    def new(self) -> Store:
        """A new store object on the same database: another worker."""
        store: Store
        if self.kind == "sqlite":
            store = SQLiteStore(self.location)
        else:
            from agentkit.stores import PostgresStore

            store = PostgresStore(self.location, max_size=4)
        self._made.append(store)
        return store

    def worker(self, *args: Any) -> list[str]:
        """The command line of a worker subprocess (``tests/stores_worker.py``) on this database."""
        script = str(ROOT / "tests" / "stores_worker.py")
        return [sys.executable, script, self.kind, self.location, *map(str, args)]

    @contextmanager
    def hold_write(self, session: str, revision: int) -> Iterator[None]:
        """Another connection, mid-transaction, about to write the session's next revision: an append at
        ``revision`` waits until the block ends (the transaction is then rolled back)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.location, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as pg, pg.transaction(force_rollback=True):
            pg.execute(
                "INSERT INTO agentkit_entries (session, revision, kind, data) VALUES (%s, %s, 'turns', '{}')",
                (session, revision + 1),
            )
            yield

    def close(self) -> None:
        async def close_all() -> None:
            for store in self._made:
                await store.aclose()

        anyio.run(close_all)
