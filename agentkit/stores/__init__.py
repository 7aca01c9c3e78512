"""Conversation stores: each user's conversation kept between requests and across workers.

``Agent(..., store=SQLiteStore("agent.db"))`` and ``agent.run(prompt, session="user-42")`` load the
session's history, run, and append the new turns; a run that pauses for approval is saved with the
session and ``agent.resume(session="user-42", decisions=...)`` continues it from any worker sharing
the store.

- :class:`SQLiteStore`: one file, no server; several processes on one machine.
- :class:`PostgresStore`: many workers on many machines (``pip install 'agentkit[postgres]'``).
- :class:`Store`: the interface, to keep sessions elsewhere (three methods to implement).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Entry, EntryKind, Store, StoredSession

if TYPE_CHECKING:
    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

__all__ = ["Entry", "EntryKind", "PostgresStore", "SQLiteStore", "Store", "StoredSession"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import agentkit` stays free of sqlite3, and psycopg is optional.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'agentkit.stores' has no attribute {name!r}")
