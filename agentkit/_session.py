"""The glue between a run and its stored session: load before, append at checkpoints, record decisions.

A run with ``session=`` gets a :class:`SessionLink`. Before the run it loads the session (its history
becomes the run's, a run awaiting approval is refused); at each step boundary the loop calls
:meth:`SessionLink.checkpoint`, which appends what changed since the last append (the new committed
turns, and the run state when it pauses) at the revision it built on; a resume records the decisions
before any call runs. Another worker appending in between makes the append fail with
:class:`SessionConflictError` and stops the run: the session keeps the other worker's turns, whole.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from ._conversation import Conversation
from ._exceptions import ApprovalError, ConfigurationError, ConversationBusyError
from ._state import Decision, RunState
from .stores._base import Entry, Store, StoredSession, already_decided, check_session, usage_dict

if TYPE_CHECKING:
    from ._agent import Agent


class SessionLink:
    """One run's tie to its stored session: the revision it builds on and the history stored so far."""

    __slots__ = ("revision", "session", "store", "stored", "usage")

    def __init__(self, store: Store, session: str, loaded: StoredSession, conversation: Conversation) -> None:
        self.store = store
        self.session = session
        self.revision = loaded.revision
        # The wire dicts as stored (the very objects the run's transcript holds): what changed since
        # is found by identity, then equality, from the start.
        self.stored: list[dict[str, Any]] = list(conversation._wire_list())
        self.usage = usage_dict(conversation.usage)

    async def checkpoint(self, state: RunState, *, force: bool = False) -> None:
        """Append what changed since the last append: the committed turns (with the usage), and the run
        state when it pauses. Nothing before the model's first answer (a run that fails then leaves the
        session as it was), nor while a model turn paused with ``pause_turn`` continues — unless
        ``force`` (a durable run stores the history each model request is built from)."""
        if not force and (state.pause_pending or (state.step == "request" and state.turns == 0)):
            return
        wire = state.conversation._wire_list()
        stored = self.stored
        start = min(len(wire), len(stored))
        for i in range(start):
            if wire[i] is not stored[i] and wire[i] != stored[i]:
                start = i
                break
        usage = usage_dict(state.conversation.usage)
        entries: list[Entry] = []
        final = state.step in ("awaiting_approval", "completed")
        if start < len(wire) or start < len(stored) or (final and usage != self.usage):
            entries.append(Entry("turns", {"start": start, "messages": wire[start:], "usage": usage}))
        if state.step == "awaiting_approval":
            paused = state.to_dict()
            del paused["messages"]  # the history, stored by the entries before
            entries.append(Entry("paused", {"state": paused}))
        if not entries:
            return
        self.revision = await self.store.append(self.session, entries, expected_revision=self.revision)
        self.stored, self.usage = list(wire), usage


class _Claim:
    """A session being run in this process; ``run_id`` is set once the run has its state."""

    __slots__ = ("run_id",)

    def __init__(self) -> None:
        self.run_id = ""


# The sessions each store has a run going on in this process (stores are compared by identity).
_RUNNING: weakref.WeakKeyDictionary[Store, dict[str, _Claim]] = weakref.WeakKeyDictionary()


@contextmanager
def claimed(agent: Agent[Any, Any], where: str, session: str) -> Iterator[_Claim]:
    """Hold ``session`` for one run of this process, from before its load to its end: a second run,
    stream or resume of it meanwhile raises ConversationBusyError before it loads or sends anything
    (across processes the store's revision check refuses the later append instead)."""
    claims = _RUNNING.setdefault(_store_of(agent, where, session), {})
    other = claims.get(session)
    if other is not None:
        who = f"run {other.run_id}" if other.run_id else "another run"
        raise ConversationBusyError(
            f"{where}: session {session!r} is being run in this process ({who}); runs of one session "
            "take turns. Nothing was loaded or sent.",
            run_id=other.run_id,
        )
    claims[session] = claim = _Claim()
    try:
        yield claim
    finally:
        del claims[session]


def _store_of(agent: Agent[Any, Any], where: str, session: Any) -> Store:
    check_session(where, session)
    if agent.store is None:
        raise ConfigurationError(
            f"{where}(session=...): this agent has no store; create it with "
            "Agent(..., store=SQLiteStore('sessions.db')) (agentkit.stores)"
        )
    return agent.store


def check_arguments(agent: Agent[Any, Any], where: str, session: Any, other: str | None) -> None:
    """Refuse ``session=`` without a store, a bad session id, or together with ``history``/``state``."""
    if session is None:
        return
    _store_of(agent, where, session)
    if other is not None:
        raise ConfigurationError(
            f"{where}: got both session= and {other}=; with a session the store holds the history "
            "(pass one of them)"
        )


def check_target(where: str, state: Any, session: Any) -> None:
    """A resume needs the paused run: its state (or JSON), or the session that holds it."""
    if state is None and session is None:
        raise ConfigurationError(
            f"{where}: nothing to resume; pass the paused run's state (result.state or its JSON) "
            "or session='...' (with the agent's store)"
        )


async def open_run(agent: Agent[Any, Any], where: str, session: str) -> tuple[SessionLink, Conversation]:
    """Load the session for a new run: its history (as a Conversation) and the link to append with."""
    store = _store_of(agent, where, session)
    loaded = await store.load(session)
    if loaded.paused is not None:
        pending = [p["tool_use_id"] for p in (loaded.paused.get("open_turn") or {}).get("pending", ())]
        raise ApprovalError(
            f"session {session!r} has a run awaiting approval (pending: {pending}); resume it first: "
            f"agent.resume(session={session!r}, decisions={{...}})"
        )
    conversation = Conversation(loaded.messages)
    conversation.usage = loaded.usage
    return SessionLink(store, session, loaded, conversation), conversation


async def open_resume(
    agent: Agent[Any, Any], where: str, session: str, decisions: Mapping[str, Decision] | None
) -> tuple[SessionLink, RunState]:
    """Load the session's paused run, check the decisions, record them (before anything runs)."""
    store = _store_of(agent, where, session)
    loaded = await store.load(session)
    state = loaded.state
    if state is None:
        done = sorted(set(decisions or ()) & loaded.decided)
        if done:
            raise already_decided(session, done)
        raise ApprovalError(f"session {session!r} has no run awaiting approval: there is nothing to resume")
    link = SessionLink(store, session, loaded, state.conversation)
    agent._decide(state, decisions)  # ApprovalError here: nothing recorded, nothing ran
    link.revision = await store.record_decisions(
        session, dict(decisions or {}), run_id=state.run_id, expected_revision=loaded.revision
    )
    return link, state


@asynccontextmanager
async def resumed(
    agent: Agent[Any, Any], where: str, session: str, decisions: Mapping[str, Decision] | None
) -> AsyncIterator[tuple[SessionLink, RunState]]:
    """:func:`open_resume` with the session :func:`claimed` for the block (the resumed run's)."""
    with claimed(agent, where, session) as claim:
        link, state = await open_resume(agent, where, session, decisions)
        claim.run_id = state.run_id
        yield link, state
