"""``SQLiteStore``: sessions in one SQLite file — no server, safe for several processes on one machine.

Every operation runs the stdlib ``sqlite3`` module in a worker thread (``anyio.to_thread``), so the
event loop never waits on the disk or on another process's lock, on asyncio and trio alike, with no
dependency. The file is in WAL mode (readers never block the writer), each append is one
``BEGIN IMMEDIATE`` transaction (it takes the write lock first, then checks the revision: no two
appends interleave, a killed writer leaves nothing behind), and a busy file is waited on for
``timeout`` seconds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import anyio.to_thread

from .._exceptions import AgentKitError, ConfigurationError
from ._base import (
    Entry,
    Store,
    already_decided,
    append_rows,
    check_session,
    conflict,
    decode,
    store_error,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agentkit_entries (
    session TEXT NOT NULL,
    revision INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session, revision)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agentkit_decisions (
    session TEXT NOT NULL,
    tool_use_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (session, tool_use_id)
) WITHOUT ROWID;
"""
_INSERT_ENTRY = (
    "INSERT INTO agentkit_entries (session, revision, kind, data, created_at) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_DECISION = "INSERT INTO agentkit_decisions (session, tool_use_id, revision) VALUES (?, ?, ?)"


class SQLiteStore(Store):
    """Sessions kept in the SQLite file at ``path`` (created if missing, with its tables).

    Args:
        path: the database file. Several processes may share it (on one machine: SQLite's locks do
            not work over network file systems).
        timeout: seconds to wait for another process's write lock before failing with ``StoreError``.
        synchronous: ``"FULL"`` (default: a committed append survives power loss) or ``"NORMAL"``
            (faster; survives a crash of the process, may lose the last appends on power loss).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        if not isinstance(path, str | os.PathLike) or str(path) in ("", ":memory:"):
            raise ConfigurationError(
                f"SQLiteStore(path=...): got {path!r}; expected the path of a database file "
                "(':memory:' would give each connection a database of its own)"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigurationError(f"SQLiteStore(timeout=...): got {timeout!r}; expected seconds > 0")
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigurationError(
                f"SQLiteStore(synchronous=...): got {synchronous!r}; expected 'FULL' or 'NORMAL'"
            )
        self.path = Path(path)
        self._timeout = float(timeout)
        self._synchronous = synchronous
        self._idle: list[
            sqlite3.Connection
        ] = []  # connections not in use (each used by one thread at a time)
        self._lock = threading.Lock()
        self._setup = threading.Lock()
        self._ready = False
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # --- the interface ---------------------------------------------------------------------------

    async def entries(self, session: str) -> list[Entry]:
        check_session("SQLiteStore.entries", session)

        def read(conn: sqlite3.Connection) -> list[Entry]:
            rows = conn.execute(
                "SELECT revision, kind, data FROM agentkit_entries WHERE session = ? ORDER BY revision",
                (session,),
            ).fetchall()
            return [decode(kind, data, session, revision) for revision, kind, data in rows]

        return await self._run("load", read)

    async def append(
        self,
        session: str,
        entries: Sequence[Entry],
        *,
        expected_revision: int,
        decided: Sequence[str] = (),
    ) -> int:
        expected, rows, ids = append_rows("SQLiteStore.append", session, entries, expected_revision, decided)

        def write(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: the check below stays true
            try:
                (current,) = conn.execute(
                    "SELECT COALESCE(MAX(revision), 0) FROM agentkit_entries WHERE session = ?", (session,)
                ).fetchone()
                done = _decided(conn, session, ids)
                if done:
                    raise already_decided(session, done)
                if current != expected:
                    raise conflict(session, expected, current)
                now = time.time()
                conn.executemany(
                    _INSERT_ENTRY,
                    [(session, expected + n, kind, data, now) for n, (kind, data) in enumerate(rows, 1)],
                )
                new = expected + len(rows)
                conn.executemany(
                    _INSERT_DECISION,
                    [(session, i, new) for i in ids],
                )
                self._before_commit()
                conn.execute("COMMIT")
                return new
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self._run("append", write)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- internals -------------------------------------------------------------------------------

    def _before_commit(self) -> None:
        """Called inside each append's transaction, just before it commits (tests kill a process here)."""

    async def _run(self, what: str, operation: Callable[[sqlite3.Connection], T]) -> T:
        # Not abandoned on cancellation: an append under way finishes (committed or not) before the
        # caller's cancellation is delivered, so the caller never loses track of what was written.
        return await anyio.to_thread.run_sync(self._call, what, operation)

    def _call(self, what: str, operation: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._take()
        try:
            result = operation(conn)
        except AgentKitError:
            self._give_back(conn)
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(f"SQLiteStore({str(self.path)!r}) {what}", exc) from None
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)
        return result

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise ConfigurationError(f"{self!r} is closed")
            if self._idle:
                return self._idle.pop()
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            if not self._ready:
                with self._setup:  # one thread of this process sets the file up
                    if not self._ready:
                        self._create(conn)
        except sqlite3.Error as exc:
            raise store_error(f"SQLiteStore({str(self.path)!r}) open", exc) from None
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._timeout
        while True:  # switching to WAL takes an exclusive lock without waiting: another process may hold it
            try:
                (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()  # kept in the file
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not switch the file to WAL mode (it is in {mode!r})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._ready = True

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()


def _decided(conn: sqlite3.Connection, session: str, ids: list[str]) -> list[str]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT tool_use_id FROM agentkit_decisions WHERE session = ? AND tool_use_id IN ({marks})",
        (session, *ids),
    ).fetchall()
    return sorted(r[0] for r in rows)
