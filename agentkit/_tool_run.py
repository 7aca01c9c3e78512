"""How a tool's function runs: the typed outcome of a call, bounded worker threads, iterators collected.

- Sync functions run in a worker thread. A call holds a token of :func:`tool_thread_limiter` from
  before its thread starts until the thread really ends, also when a timeout or a cancellation
  abandoned it (Python cannot stop a thread): so at most ``total_tokens`` tool threads exist per event
  loop, and a call that finds none free waits for one (within its timeout).
- An iterator a sync tool returns is consumed in its thread; an async iterator on the event loop (with a
  checkpoint per item). Both stop at the result-size cap, and a thread stops consuming once its call
  was abandoned.
"""

from __future__ import annotations

import contextlib
import enum
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pydantic_core

if TYPE_CHECKING:
    from .types import ToolResultBlock

__all__ = ["DEFAULT_TOOL_THREADS", "ToolOutcome", "ToolStatus", "tool_thread_limiter"]

DEFAULT_TOOL_THREADS = 32
"""Default bound on the worker threads of sync tools, per event loop (see :func:`tool_thread_limiter`)."""

_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("agentkit_tool_threads")
_unbounded: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("agentkit_tool_threads_pass")


class ToolStatus(enum.StrEnum):
    """How a tool call ended (:attr:`ToolOutcome.status`)."""

    OK = "ok"
    INVALID_INPUT = "invalid_input"  # the input failed validation; the function did not run
    ERROR = "error"  # the function raised (a ToolError included) or returned something unserialisable
    TIMED_OUT = "timed_out"
    UNKNOWN_TOOL = "unknown_tool"


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A finished tool call: the ``tool_result`` block to send and how the call ended."""

    result: ToolResultBlock
    status: ToolStatus


def tool_thread_limiter() -> anyio.CapacityLimiter:
    """The limiter of sync tools' worker threads in the current event loop (``DEFAULT_TOOL_THREADS``).

    A call takes a token before its thread starts and gives it back only when the thread has ended,
    even after the call timed out or was cancelled, so at most ``total_tokens`` tool threads exist. A
    call that finds no free token waits for one; its timeout counts the wait. Change the bound with
    ``tool_thread_limiter().total_tokens = n`` (inside the event loop); ``.statistics()`` shows its use.
    """
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(DEFAULT_TOOL_THREADS)
        _limiter.set(limiter)
        return limiter


def _pass_limiter() -> anyio.CapacityLimiter:
    # anyio's own limiter gives its token back when a call is abandoned; ours does the bounding.
    try:
        return _unbounded.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(math.inf)
        _unbounded.set(limiter)
        return limiter


@dataclass(slots=True)
class Collected:
    """What an iterator a tool returned yielded, up to the result cap (``cut``: stopped at the cap)."""

    items: list[Any]
    cut: bool


async def run_in_thread(fn: Callable[[], Any], cap: int) -> Any:
    """``fn()`` in a bounded worker thread (an iterator it returns is collected there, up to ``cap``).

    Cancellation (a timeout included) abandons the thread at once; its token is given back when the
    thread ends, and a thread collecting an iterator stops at the next item.
    """
    limiter = tool_thread_limiter()
    borrower = object()
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)  # no extra trip through the loop when one is free
    except anyio.WouldBlock:
        await limiter.acquire_on_behalf_of(borrower)
    lock = threading.Lock()
    stop = threading.Event()
    state = ["pending"]  # pending -> running -> done | abandoned -> done; pending -> dropped
    tokens: list[anyio.lowlevel.EventLoopToken] = []  # set when the call abandons its thread

    def work() -> tuple[Any] | None:
        with lock:
            if state[0] == "dropped":
                return None
            state[0] = "running"
        try:
            # Boxed, so a sync wrapper that returns a coroutine works on trio too (trio refuses those).
            return (collect_sync(fn(), cap, stop),)
        finally:
            with lock:
                hand_back = state[0] == "abandoned"
                state[0] = "done"
            if hand_back:  # without waiting: the event loop may be gone, and its limiter with it
                (token,) = tokens
                with contextlib.suppress(Exception):
                    backend = token.backend_class
                    backend.run_sync_soon(limiter.release_on_behalf_of, (borrower,), token.native_token)

    try:
        boxed = await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=_pass_limiter())
    finally:
        stop.set()
        with lock:
            if state[0] == "running":
                tokens.append(anyio.lowlevel.current_token())
                state[0] = "abandoned"  # the thread gives the token back when it ends
                release = False
            else:
                if state[0] == "pending":
                    state[0] = "dropped"
                release = True
        if release:
            limiter.release_on_behalf_of(borrower)
    assert boxed is not None  # only a dropped call returns None, and then we were cancelled
    return boxed[0]


def _size(item: Any) -> int:
    if isinstance(item, str):
        return max(1, len(item))
    try:
        return max(1, len(pydantic_core.to_json(item, inf_nan_mode="strings")))
    except Exception:  # unserialisable: reported when the result is built
        return 1


def collect_sync(value: Any, cap: int, stop: threading.Event | None = None) -> Any:
    """The items of an iterator (up to ``cap`` characters, or until ``stop`` is set); others unchanged."""
    if not isinstance(value, Iterator):
        return value
    items: list[Any] = []
    size = 0
    cut = False
    try:
        while stop is None or not stop.is_set():
            try:
                item = next(value)
            except StopIteration:
                break
            items.append(item)
            size += _size(item)
            if size > cap:
                cut = True
                break
    finally:
        close = getattr(value, "close", None)
        if callable(close):
            close()
    return Collected(items, cut)


async def collect_async(value: AsyncIterator[Any], cap: int) -> Collected:
    """The items of an async iterator, up to ``cap`` characters (a checkpoint per item)."""
    items: list[Any] = []
    size = 0
    cut = False
    try:
        async for item in value:
            items.append(item)
            size += _size(item)
            if size > cap:
                cut = True
                break
            await anyio.lowlevel.checkpoint()  # an iterator that never awaits cannot freeze the loop
    finally:
        aclose = getattr(value, "aclose", None)
        if callable(aclose):
            await aclose()
    return Collected(items, cut)
