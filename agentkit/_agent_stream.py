"""``AgentStream``: the events of a streaming run, read in ``async with`` or in a plain ``async for``.

Either way the run has a task of its own and hands each event over through an unbuffered channel, so it
waits at every event until the consumer takes it. In ``async with`` that task lives in a task group the
block owns. A plain ``async for`` has no block: a task group held across the ``yield`` of an async
generator would be exited by whichever task closes the generator, and on ``break`` or an error in the
loop's body Python closes it later from a task of its own (PEP 789). So there the run's task belongs to no
task group, and closing the iteration, whoever does it, cancels the run and waits until it has stopped.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, Literal, Self, cast

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from typing_extensions import TypeVar

from ._events import AgentEvent, RunFinished, RunResult
from ._exceptions import ConfigurationError
from ._loop import Emit

__all__ = ["AgentStream"]

OutputT = TypeVar("OutputT", default=str)

_HOSTS: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to running tasks


class AgentStream(Generic[OutputT]):
    """The events of a streaming run; ``result`` is set once the run finished.

    Entered with ``async with``, it runs the agent in a task of its own and hands over each event as it
    happens; leaving the block stops the run first (cancelling calls still running, every ``tool_use``
    answered). Errors of the run are raised by the ``async for``, as :meth:`Agent.run` raises them.
    A plain ``async for`` (no ``async with``) gives the same events; leaving it early (``break``, an
    error) stops the run too, once Python closes the iteration: at once inside
    ``contextlib.aclosing(aiter(stream))``, else soon after. A stream runs once. See :meth:`Agent.stream`.
    """

    def __init__(self, start: Callable[[Emit], Awaitable[RunResult[Any]]]) -> None:
        self._start = start
        self._phase: Literal["new", "entered", "hosted", "done"] = "new"
        self._group: TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[AgentEvent] | None = None
        self._error: BaseException | None = None
        self.result: RunResult[OutputT] | None = None

    def _begin(self, phase: Literal["entered", "hosted"]) -> MemoryObjectSendStream[AgentEvent]:
        if self._phase != "new":
            raise ConfigurationError("this stream is running or has run: iterate it once")
        self._phase = phase
        # No buffer: the run waits at each event until the consumer takes it (as a generator would).
        send, self._receive = anyio.create_memory_object_stream[AgentEvent](0)
        return send

    async def __aenter__(self) -> Self:
        send = self._begin("entered")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._drive, send)
        return self

    async def _drive(self, send: MemoryObjectSendStream[AgentEvent]) -> None:
        async with send:  # closing it ends the consumer's `async for`
            try:
                await self._start(send.send)
            except Exception as exc:  # handed to the consumer's task, unwrapped
                self._error = exc

    def __aiter__(self) -> AsyncIterator[AgentEvent]:
        return self._events() if self._phase == "entered" else self._hosted()

    async def _hosted(self) -> AsyncIterator[AgentEvent]:
        send = self._begin("hosted")
        stop = anyio.CancelScope()
        stopped = anyio.Event()

        async def host() -> None:
            try:
                with stop:
                    await self._drive(send)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: the consumer's to raise
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise  # the event loop is shutting down
                self._error = exc
            finally:
                stopped.set()

        _spawn(host)
        try:
            async for event in self._events():
                yield event
        finally:
            stop.cancel()  # a run still going stops here; its cancellation answers every call
            with anyio.CancelScope(shield=True):
                await stopped.wait()
            self._finish()

    async def _events(self) -> AsyncIterator[AgentEvent]:
        assert self._receive is not None
        async for event in self._receive:
            if isinstance(event, RunFinished):
                self.result = cast(RunResult[OutputT], event.result)
            yield event
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group = self._group
        if group is None:
            return
        group.cancel_scope.cancel()  # a run still going stops here; its cancellation answers every call
        try:
            # No task is left in the group once it exits: exit it as a clean block, so the exception
            # leaving the `async with` (a run error, or the consumer's own) propagates unchanged.
            await group.__aexit__(None, None, None)
        finally:
            self._group = None
            self._finish()

    def _finish(self) -> None:
        self._phase = "done"
        if self._receive is not None:
            self._receive.close()


def _spawn(host: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start ``host`` in a task of no task group, carrying the caller's context variables (the run's
    log context). ``host`` must not raise: on trio it is a system task."""
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_task():
        trio.lowlevel.spawn_system_task(host, context=contextvars.copy_context())
        return
    task = asyncio.get_running_loop().create_task(host())  # copies the context itself
    _HOSTS.add(task)
    task.add_done_callback(_HOSTS.discard)
