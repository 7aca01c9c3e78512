"""The store interface: a session is an append-only list of entries, numbered by revision.

A backend implements three things — :meth:`Store.entries` (read a session's entries in order),
:meth:`Store.append` (add entries at an expected revision, atomically, or refuse) and
:meth:`Store.aclose` — and gets :meth:`Store.load` (the entries folded into history, usage and the
paused run) and :meth:`Store.record_decisions` from this class.

Entries (``Entry.kind``):

- ``"turns"``: ``{"start": i, "messages": [...], "usage": {...}}`` — the history becomes its first
  ``i`` messages followed by ``messages`` (a run appends only its new turns; ``start`` lets a turn
  continue the last stored one); ``usage`` is the session's total after it. Ends any pause.
- ``"paused"``: ``{"state": ...}`` — a run waits for approval: its :meth:`RunState.to_dict` without the
  messages (they are the history so far).
- ``"decided"``: ``{"run_id": ..., "decisions": {tool_use_id: ...}}`` — a person decided the paused
  calls; ends the pause. Recorded (with each ``tool_use_id`` unique per session) *before* a call runs.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from .._exceptions import (
    AgentKitError,
    AlreadyDecidedError,
    ConfigurationError,
    SessionConflictError,
    StoreError,
)
from .._state import Approve, Decision, Deny, RunState
from ..types import Usage, to_wire

__all__ = ["Entry", "EntryKind", "Store", "StoredSession"]

EntryKind = Literal["turns", "paused", "decided"]
_KINDS = ("turns", "paused", "decided")
MAX_SESSION_ID = 256


@dataclass(frozen=True)
class Entry:
    """One entry of a session: ``kind`` and JSON-ready ``data`` (see the module docs)."""

    kind: EntryKind
    data: dict[str, Any]


@dataclass(frozen=True)
class StoredSession:
    """A session as loaded: its history (wire dicts), usage, the paused run if any, and revision.

    ``revision`` is the number of entries so far (0: a new session); append at it to add to this
    version. ``decided`` holds every ``tool_use_id`` ever decided in the session.
    """

    session: str
    revision: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    paused: dict[str, Any] | None = None
    decided: frozenset[str] = frozenset()

    @property
    def state(self) -> RunState | None:
        """The paused run's :class:`RunState` (``None`` when no run waits for approval)."""
        if self.paused is None:
            return None
        state = RunState.from_dict({**self.paused, "messages": self.messages})
        state.conversation.usage = self.usage
        return state


class Store(ABC):
    """Where sessions are kept between requests and across workers. See :mod:`agentkit.stores`.

    Use one store object per process (it holds a connection pool) and ``await store.aclose()`` (or
    ``async with store:``) when done. Every method is safe to call from many tasks at once, on
    asyncio and trio.
    """

    @abstractmethod
    async def entries(self, session: str) -> list[Entry]:
        """The session's entries, oldest first (entry ``i`` has revision ``i + 1``); ``[]`` if new."""

    @abstractmethod
    async def append(
        self,
        session: str,
        entries: Sequence[Entry],
        *,
        expected_revision: int,
        decided: Sequence[str] = (),
    ) -> int:
        """Add ``entries`` after revision ``expected_revision``, all or nothing, and return the new
        revision. ``decided`` are ``tool_use_id``\\ s decided by these entries: each may be recorded
        once per session.

        Raises :class:`SessionConflictError` if the session is no longer at ``expected_revision``
        (another worker appended first), :class:`AlreadyDecidedError` if one of ``decided`` was
        recorded before; nothing is written then.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections (the store can't be used afterwards)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def load(self, session: str) -> StoredSession:
        """The session folded from its entries: history, usage, the paused run, revision."""
        check_session(type(self).__name__ + ".load", session)
        return fold(session, await self.entries(session))

    async def record_decisions(
        self, session: str, decisions: Mapping[str, Decision], *, run_id: str, expected_revision: int
    ) -> int:
        """Record a person's decisions for the paused run at ``expected_revision`` (ending the pause)
        and return the new revision. A call decided before raises :class:`AlreadyDecidedError`."""
        data = {"run_id": run_id, "decisions": {k: decision_to_dict(d) for k, d in decisions.items()}}
        return await self.append(
            session, [Entry("decided", data)], expected_revision=expected_revision, decided=list(decisions)
        )


# --- helpers shared by the backends ----------------------------------------------------------------


def check_session(where: str, session: Any) -> str:
    """A session id is a non-empty str of at most 256 characters (a user id, a chat id, ...)."""
    if not isinstance(session, str) or not session or len(session) > MAX_SESSION_ID:
        shown = repr(session) if isinstance(session, str) and len(session) <= 40 else type(session).__name__
        raise ConfigurationError(
            f"{where}(session=...): got {shown}; expected a non-empty str of at most "
            f"{MAX_SESSION_ID} characters (e.g. 'user-42')"
        )
    return session


def check_revision(where: str, revision: Any) -> int:
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise ConfigurationError(
            f"{where}(expected_revision=...): got {revision!r}; expected an int >= 0 (StoredSession.revision)"
        )
    return revision


def check_entries(where: str, entries: Sequence[Entry]) -> list[Entry]:
    items = list(entries)
    for entry in items:
        if not isinstance(entry, Entry) or entry.kind not in _KINDS:
            raise ConfigurationError(
                f"{where}(entries=...): got {entry!r:.80}; expected Entry(kind, data) with kind in {_KINDS}"
            )
    if not items:
        raise ConfigurationError(f"{where}(entries=...): got no entries; expected at least one")
    return items


def append_rows(
    where: str, session: Any, entries: Sequence[Entry], expected_revision: Any, decided: Sequence[str]
) -> tuple[int, list[tuple[EntryKind, str]], list[str]]:
    """``append()``'s arguments checked where they were given (``where`` names the call): the expected
    revision, the entries as ``(kind, JSON)`` rows, and the decided ids as strings."""
    check_session(where, session)
    expected = check_revision(where, expected_revision)
    rows = [(e.kind, encode(e)) for e in check_entries(where, entries)]
    return expected, rows, [str(i) for i in decided]


def encode(entry: Entry) -> str:
    return json.dumps(entry.data, ensure_ascii=False, separators=(",", ":"))


def decode(kind: str, data: str, session: str, revision: int) -> Entry:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise StoreError(
            f"session {session!r}, revision {revision}: the stored entry is not JSON ({exc})"
        ) from None
    if kind not in _KINDS or not isinstance(value, dict):
        raise StoreError(f"session {session!r}, revision {revision}: not an agentkit entry (kind {kind!r})")
    return Entry(kind, value)  # type: ignore[arg-type]


def fold(session: str, entries: Sequence[Entry]) -> StoredSession:
    """Fold a session's entries (oldest first) into what a run needs."""
    messages: list[dict[str, Any]] = []
    usage = Usage()
    paused: dict[str, Any] | None = None
    decided: set[str] = set()
    for revision, entry in enumerate(entries, 1):
        data = entry.data
        try:
            if entry.kind == "turns":
                start = int(data["start"])
                if not 0 <= start <= len(messages):
                    raise ValueError(f"start {start} is past the {len(messages)} messages so far")
                messages = [*messages[:start], *data["messages"]]
                usage = Usage.model_validate(data.get("usage") or {})
                paused = None
            elif entry.kind == "paused":
                paused = dict(data["state"])
            elif entry.kind == "decided":
                decided.update(data["decisions"])
                paused = None
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"session {session!r}, revision {revision}: malformed {entry.kind!r} entry ({exc})"
            ) from None
    return StoredSession(session, len(entries), messages, usage, paused, frozenset(decided))


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    if isinstance(decision, Deny):
        return {"deny": decision.reason}
    if isinstance(decision, Approve):
        return {"approve": True, "input": decision.input}
    raise ConfigurationError(f"a decision must be Approve() or Deny(reason), not {decision!r}")


def usage_dict(usage: Usage) -> dict[str, Any]:
    return dict(to_wire(usage))


def store_error(where: str, exc: BaseException, secret: str | None = None) -> AgentKitError:
    """A driver's exception as a :class:`StoreError` (a ``secret`` such as a password masked)."""
    text = str(exc).strip() or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return StoreError(f"{where}: {type(exc).__name__}: {text}")


def already_decided(session: str, ids: list[str]) -> AlreadyDecidedError:
    return AlreadyDecidedError(
        f"session {session!r}: call(s) {ids} were decided already (another worker resumed this pause); "
        "nothing ran here",
        session=session,
        tool_use_ids=ids,
    )


def conflict(session: str, expected: int, actual: int) -> SessionConflictError:
    return SessionConflictError(
        f"session {session!r} is at revision {actual}, not {expected}: another worker appended first; "
        "nothing was stored (load the session again to go on from there)",
        session=session,
        expected=expected,
        actual=actual,
    )
