"""``PostgresStore``: sessions in PostgreSQL, for many workers on many machines.

The driver is psycopg 3 with ``psycopg_pool``; ``pip install 'agentkit[postgres]'``. Its blocking API
runs in worker threads (``anyio.to_thread``), one operation per thread hop: psycopg's async API (like
asyncpg) runs on asyncio only, and agentkit runs on asyncio and trio alike. A thread hop costs
microseconds next to a network round trip and a model turn (see ``benchmarks/stores.py``).

Each append is one transaction: it checks the session's revision and inserts the entries with their
revision numbers under a primary key ``(session, revision)``, so of two workers appending at the same
revision exactly one commits and the other gets :class:`SessionConflictError`; a worker killed
mid-append leaves nothing (PostgreSQL rolls back a transaction whose connection dies). The tables are
created on first use (idempotent, under an advisory lock so workers starting together don't race).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresStore"]

T = TypeVar("T")

_SCHEMA = [
    "SELECT pg_advisory_xact_lock(7420331151)",  # serialises concurrent first starts
    """CREATE TABLE IF NOT EXISTS agentkit_entries (
        session TEXT NOT NULL,
        revision BIGINT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (session, revision)
    )""",
    """CREATE TABLE IF NOT EXISTS agentkit_decisions (
        session TEXT NOT NULL,
        tool_use_id TEXT NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (session, tool_use_id)
    )""",
]
_INSERT_ENTRY = "INSERT INTO agentkit_entries (session, revision, kind, data) VALUES (%s, %s, %s, %s)"
_INSERT_DECISION = "INSERT INTO agentkit_decisions (session, tool_use_id, revision) VALUES (%s, %s, %s)"


class PostgresStore(Store):
    """Sessions kept in the PostgreSQL database at ``dsn`` (``"postgresql://user:pw@host/db"`` or
    ``"host=... dbname=..."``); the tables ``agentkit_entries`` and ``agentkit_decisions`` are created
    on first use.

    Args:
        dsn: the connection string (its password never appears in reprs or errors).
        min_size, max_size: connections kept open / at most (per process).
        timeout: seconds to wait for a connection from the pool before failing with ``StoreError``.
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0) -> None:
        try:
            import psycopg
            import psycopg_pool
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "PostgresStore needs psycopg 3 and psycopg-pool: pip install 'agentkit[postgres]'"
            ) from None
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigurationError(
                f"PostgresStore(dsn=...): got {type(dsn).__name__}; expected a connection string "
                "such as 'postgresql://user@host/dbname'"
            )
        try:
            info = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            raise ConfigurationError(
                "PostgresStore(dsn=...): not a valid connection string; expected e.g. "
                "'postgresql://user@host:5432/dbname' or 'host=... dbname=...'"
            ) from None
        for name, value in (("min_size", min_size), ("max_size", max_size)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (0 if name == "min_size" else 1)
            ):
                raise ConfigurationError(f"PostgresStore({name}=...): got {value!r}; expected a positive int")
        if min_size > max_size:
            raise ConfigurationError(f"PostgresStore: min_size={min_size} is above max_size={max_size}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigurationError(f"PostgresStore(timeout=...): got {timeout!r}; expected seconds > 0")
        self._password = str(info.get("password") or "") or None
        self._where = (
            f"PostgresStore(host={info.get('host') or 'localhost'!r}, dbname={info.get('dbname')!r})"
        )
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error, psycopg_pool.PoolTimeout)
        self._unique = psycopg.errors.UniqueViolation
        self._pool: ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=float(timeout),
            open=False,
            kwargs={"autocommit": True},  # explicit transactions only: reads leave nothing open
            name="agentkit",
        )
        self._lock = threading.Lock()  # the closed flag (held briefly: aclose takes it on the event loop)
        self._setup = threading.Lock()  # opening the pool and creating the tables, once
        self._ready = False
        self._closed = False

    def __repr__(self) -> str:
        return self._where

    # --- the interface ---------------------------------------------------------------------------

    async def entries(self, session: str) -> list[Entry]:
        check_session("PostgresStore.entries", session)

        def read(conn: psycopg.Connection[Any]) -> list[Entry]:
            rows = conn.execute(
                "SELECT revision, kind, data FROM agentkit_entries WHERE session = %s ORDER BY revision",
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
        expected, rows, ids = append_rows(
            "PostgresStore.append", session, entries, expected_revision, decided
        )
        new = expected + len(rows)

        def write(conn: psycopg.Connection[Any]) -> int:
            try:
                with conn.transaction():
                    current = _revision(conn, session)
                    done = _decided(conn, session, ids)
                    if done:
                        raise already_decided(session, done)
                    if current != expected:
                        raise conflict(session, expected, current)
                    # A concurrent append at the same revision waits here on the primary key, then
                    # fails with a unique violation once the other one commits.
                    for n, (kind, data) in enumerate(rows, 1):
                        conn.execute(_INSERT_ENTRY, (session, expected + n, kind, data), prepare=True)
                    for i in ids:
                        conn.execute(_INSERT_DECISION, (session, i, new), prepare=True)
                    self._before_commit()
            except self._unique:  # lost the race: say to whom
                done = _decided(conn, session, ids)
                if done:
                    raise already_decided(session, done) from None
                raise conflict(session, expected, _revision(conn, session)) from None
            return new

        return await self._run("append", write)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
        await anyio.to_thread.run_sync(self._pool.close)

    # --- internals -------------------------------------------------------------------------------

    def _before_commit(self) -> None:
        """Called inside each append's transaction, just before it commits (tests kill a process here)."""

    async def _run(self, what: str, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        # Not abandoned on cancellation: an operation under way finishes before the caller's
        # cancellation is delivered (an append is then known committed or not).
        return await anyio.to_thread.run_sync(self._call, what, operation)

    def _call(self, what: str, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            self._open()
            with self._pool.connection() as conn:
                return operation(conn)
        except AgentKitError:
            raise
        except self._errors as exc:
            raise store_error(f"{self._where} {what}", exc, self._password) from None

    def _open(self) -> None:
        with self._lock:
            if self._closed:
                raise ConfigurationError(f"{self!r} is closed")
        if self._ready:
            return
        with self._setup:
            if self._ready:
                return
            self._pool.open(wait=False)
            with self._pool.connection() as conn, conn.transaction():
                for statement in _SCHEMA:
                    conn.execute(statement)
            self._ready = True


def _revision(conn: psycopg.Connection[Any], session: str) -> int:
    row = conn.execute(
        "SELECT COALESCE(MAX(revision), 0) FROM agentkit_entries WHERE session = %s", (session,)
    ).fetchone()
    return int(row[0]) if row is not None else 0


def _decided(conn: psycopg.Connection[Any], session: str, ids: list[str]) -> list[str]:
    if not ids:
        return []
    rows = conn.execute(
        "SELECT tool_use_id FROM agentkit_decisions WHERE session = %s AND tool_use_id = ANY(%s)",
        (session, ids),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)
