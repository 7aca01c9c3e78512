"""A durable run's history in the agent's store: the workflow writes it through activities, the model
activity reads it at a revision.

The workflow's :class:`~agentkit.RunState` stays authoritative. A run started with ``session=`` loads
the session once (the ``session_load`` activity), then its :class:`~agentkit._session.SessionLink`
appends the new turns at each step boundary — and before each model request, so the request's history
is stored — through :class:`_ActivityStore`, whose ``append`` is the ``session_append`` activity. The
model activity then gets ``session={"id", "revision"}`` and no messages, and folds the session's
entries up to that revision.

An append is idempotent by revision: a retry of an append that had reached the store (the worker died
before reporting it) finds the same entries at that revision and succeeds, so a killed worker neither
loses nor doubles a turn. Any other entries there are a real conflict and fail the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._exceptions import AgentKitError, AlreadyDecidedError, SessionConflictError
from ..stores._base import Entry, Store, StoredSession, fold, usage_dict
from ..types import Usage

if TYPE_CHECKING:
    from ._activities import SessionRef
    from ._agent import TemporalAgent

__all__ = ["AppendCall", "LoadResult"]


class AppendCall(TypedDict):
    """The input of a ``session_append`` activity: entries to add after ``expected_revision``."""

    session: str
    expected_revision: int
    entries: list[dict[str, Any]]  # {"kind": ..., "data": ...}
    decided: list[str]


class LoadResult(TypedDict):
    """The result of a ``session_load`` activity: the session when the run starts."""

    revision: int
    messages: list[dict[str, Any]]
    usage: dict[str, Any]
    pending: list[str] | None  # the paused run's pending calls, if one waits for approval


class _ActivityStore(Store):
    """The store as workflow code sees it: ``append`` is an activity (the only method a run uses)."""

    def __init__(self, durable: TemporalAgent) -> None:
        self._durable = durable

    async def entries(self, session: str) -> list[Entry]:  # pragma: no cover - never called in a workflow
        raise NotImplementedError("a workflow reads the session in an activity")

    async def append(
        self, session: str, entries: Sequence[Entry], *, expected_revision: int, decided: Sequence[str] = ()
    ) -> int:
        from ._workflow import _activity

        call: AppendCall = {
            "session": session,
            "expected_revision": expected_revision,
            "entries": [{"kind": e.kind, "data": e.data} for e in entries],
            "decided": list(decided),
        }
        durable = self._durable
        return int(await _activity(durable.append_activity_name, call, durable.store_activity_options))

    async def aclose(self) -> None:  # pragma: no cover - nothing to release
        return None


def stored_session(session: str, loaded: LoadResult) -> StoredSession:
    usage = Usage.model_validate(loaded["usage"])
    return StoredSession(session, loaded["revision"], loaded["messages"], usage)


def _store(durable: TemporalAgent) -> Store:
    store = durable.agent.store
    if store is None:
        raise ApplicationError(
            "this durable run names a stored session; this worker's agent has no store to use: "
            "create it with Agent(..., store=...)",
            type="ConfigurationError",
            non_retryable=True,
        )
    return store


def _error(exc: AgentKitError, retryable: bool = False) -> ApplicationError:
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not retryable)


async def history_at(durable: TemporalAgent, ref: SessionRef) -> list[dict[str, Any]]:
    """The session's history at ``ref["revision"]`` (a store behind that revision is refused for good:
    it is not the store the run wrote to, or it lost entries)."""
    store = _store(durable)
    try:
        entries = await store.entries(ref["id"])
    except AgentKitError as exc:  # a StoreError: the database is away for now
        raise _error(exc, retryable=True) from None
    if len(entries) < ref["revision"]:
        raise ApplicationError(
            f"session {ref['id']!r} is at revision {len(entries)} in this worker's store, behind revision "
            f"{ref['revision']} the run wrote: every worker of a durable run needs the same store",
            type="StoreBehind",
            non_retryable=True,
        )
    return fold(ref["id"], entries[: ref["revision"]]).messages


def build(durable: TemporalAgent) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two store activities of ``durable``: load a session, append entries to it."""

    @activity.defn(name=durable.load_activity_name)
    async def session_load(session: str) -> LoadResult:
        store = _store(durable)
        try:
            loaded = await store.load(session)
        except AgentKitError as exc:
            raise _error(exc, retryable=True) from None
        pending = None
        if loaded.paused is not None:
            calls = (loaded.paused.get("open_turn") or {}).get("pending", ())
            pending = [str(p["tool_use_id"]) for p in calls]
        return {
            "revision": loaded.revision,
            "messages": loaded.messages,
            "usage": usage_dict(loaded.usage),
            "pending": pending,
        }

    @activity.defn(name=durable.append_activity_name)
    async def session_append(call: AppendCall) -> int:
        store = _store(durable)
        session, expected = call["session"], call["expected_revision"]
        entries = [Entry(e["kind"], e["data"]) for e in call["entries"]]
        try:
            return await store.append(session, entries, expected_revision=expected, decided=call["decided"])
        except (SessionConflictError, AlreadyDecidedError) as exc:
            try:
                there = (await store.entries(session))[expected : expected + len(entries)]
            except AgentKitError as again:
                raise _error(again, retryable=True) from None
            if there == entries:  # an earlier attempt of this very append reached the store
                return expected + len(entries)
            raise _error(exc) from None
        except AgentKitError as exc:
            raise _error(exc, retryable=True) from None

    return session_load, session_append
