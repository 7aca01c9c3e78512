"""One MCP client session, owned by one background task.

The task enters the ``mcp`` client (its transport and session context managers, whose cancel scopes
must be left by the task that entered them) and serves jobs that callers put on a memory stream: no
caller ever enters or leaves a transport scope, so cancelling a caller, or closing from another task,
cannot "exit a cancel scope in a different task". Each job runs in a child task of the session with
its own deadline; a caller that stops waiting cancels its job. A transport failure answers the jobs in
flight with :class:`MCPTransportError`, and the task reconnects once; if that fails too the session is
down and every later job is answered at once with the error (never a hang).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as mt
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client, MCPError
from mcp.client.session import MessageHandlerFnT
from pydantic import ValidationError

from .._exceptions import AgentKitError

__all__ = [
    "MCPConnectionError",
    "MCPError_",
    "MCPProtocolError",
    "MCPTimeoutError",
    "MCPTransportError",
]


class MCPError_(AgentKitError):
    """Base of the errors of an MCP toolset (exported as ``agentkit.mcp.MCPToolsetError``)."""


class MCPConnectionError(MCPError_):
    """The server could not be started or reached, or did not complete the handshake in time."""


class MCPTransportError(MCPError_):
    """The connection broke (the server exited, the pipe or the HTTP stream closed)."""


class MCPTimeoutError(MCPError_):
    """A request got no answer within its timeout."""


class MCPProtocolError(MCPError_):
    """The server answered with a JSON-RPC error, or with something that is not a valid answer."""


_CLOSE_TIMEOUT = 5.0  # seconds for the mcp client to shut a session down before it is cancelled

Connect = Callable[[MessageHandlerFnT], Client]


@dataclass(eq=False)
class Job:
    """One request for the session task: list the tools, or call one."""

    kind: str  # "list" | "call"
    timeout: float
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: MCPError_ | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope | None = None
    abandoned: bool = False

    def finish(self, error: MCPError_ | None = None) -> None:
        if not self.done.is_set():
            if error is not None and self.result is None and self.error is None:
                self.error = error
            self.done.set()


class Session:
    """The session task and its inbox (see the module docstring)."""

    def __init__(
        self, connect: Connect, *, connect_timeout: float, log: Any, on_tools_changed: Callable[[], None]
    ) -> None:
        self._connect = connect
        self._connect_timeout = connect_timeout
        self._log = log
        self._on_tools_changed = on_tools_changed
        self._send: MemoryObjectSendStream[Job]
        self._receive: MemoryObjectReceiveStream[Job]
        self._send, self._receive = anyio.create_memory_object_stream[Job](math.inf)
        self.tools: list[mt.Tool] = []
        self.down: MCPError_ | None = None
        self.connects = 0
        self._closing = False
        self.finished = anyio.Event()
        self._subscription: Any = None
        self._start: Callable[[Job], None] | None = None

    # -- the caller's side ---------------------------------------------------------------------

    async def submit(self, job: Job) -> Job:
        """Hand ``job`` to the session task and wait for it; cancelling the wait cancels the job."""
        if self.down is not None:
            job.finish(self.down)
            return job
        start = self._start
        try:
            if start is not None:  # connected: the job runs in the session's task group
                start(job)
            else:
                self._send.send_nowait(job)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            job.finish(MCPTransportError("the MCP session is closed"))
            return job
        try:
            await job.done.wait()
        finally:
            if not job.done.is_set():  # the caller was cancelled: stop the request
                job.abandoned = True
                if job.scope is not None:
                    job.scope.cancel()
        return job

    def close(self) -> None:
        """Stop taking jobs; the task cancels those in flight, closes the session and returns."""
        self._closing = True
        self._start = None
        self._send.close()

    # -- the session task ----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[MCPError_ | None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve jobs until closed, reconnect once after each transport failure."""
        try:
            failure = await self._connection(task_status)
            if isinstance(failure, MCPConnectionError):  # reported to the opener by started()
                self.down = failure
                return
            while failure is not None and not self._closing:
                self._log.warning("mcp.session.lost", error_type=type(failure).__name__, error=str(failure))
                failure = await self._connection(None, reconnect=True)
                if isinstance(failure, MCPConnectionError):
                    self.down = failure
                    self._log.error("mcp.session.down", error_type=type(failure).__name__, error=str(failure))
                    async for job in self._receive:
                        job.finish(failure)
                    return
        finally:  # nothing queued is left waiting, and later jobs are answered at once
            self.down = self.down or MCPTransportError("the MCP session is closed")
            while True:
                try:
                    self._receive.receive_nowait().finish(self.down)
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            self._receive.close()
            self.finished.set()

    async def _connection(
        self, task_status: TaskStatus[MCPError_ | None] | None, *, reconnect: bool = False
    ) -> MCPError_ | None:
        """One connection's lifetime: None once closed, an :class:`MCPConnectionError` if it could not
        be opened, else the failure that broke it."""
        connected = False
        failure: MCPError_ | None = None
        with anyio.CancelScope(deadline=anyio.current_time() + self._connect_timeout) as scope:
            try:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(self._connect(self._on_message))
                    self.tools = await _list_tools(client)
                    await self._watch_tool_changes(client, stack)
                    scope.deadline = math.inf
                    connected = True
                    self.connects += 1
                    if reconnect:
                        self._on_tools_changed()
                        self._log.info("mcp.session.reconnected")
                    if task_status is not None:
                        task_status.started(None)
                    failure = await self._serve(client)
                    scope.deadline = anyio.current_time() + _CLOSE_TIMEOUT  # a bounded close
            except Exception as exc:
                failure = failure or _as_error(exc, connected)
        if not connected:
            if scope.cancelled_caught:
                limit = self._connect_timeout
                failure = MCPConnectionError(f"no MCP session within connect_timeout={limit:g}s")
            elif not isinstance(failure, MCPConnectionError):
                failure = MCPConnectionError(str(failure))
            if task_status is not None:
                task_status.started(failure)
            return failure
        return None if self._closing else failure

    async def _watch_tool_changes(self, client: Client, stack: AsyncExitStack) -> None:
        """On 2026-07-28 connections, listen for tools/list_changed (older servers just send it)."""
        caps = client.server_capabilities.tools
        if caps is None or not caps.list_changed:
            return
        try:
            subscription = await stack.enter_async_context(client.listen(tools_list_changed=True))
        except (RuntimeError, MCPError, TimeoutError) as exc:  # ListenNotSupportedError is a RuntimeError
            self._log.debug("mcp.session.listen", supported=False, reason=str(exc))
            return
        self._subscription = subscription

    async def _serve(self, client: Client) -> MCPError_ | None:
        failure: list[MCPError_] = []
        async with anyio.create_task_group() as group:
            subscription = self._subscription
            if subscription is not None:
                self._subscription = None
                group.start_soon(self._drain_events, subscription)

            def start(job: Job) -> None:
                group.start_soon(self._do, client, job, failure, group.cancel_scope)

            self._start = start  # callers start their jobs in this group directly (one hop less)
            try:
                async for job in self._receive:  # jobs queued while (re)connecting
                    if not job.abandoned:
                        start(job)
                    if failure:
                        break
            finally:
                self._start = None
            group.cancel_scope.cancel()  # closed (or broken): stop the listener and calls in flight
        return failure[0] if failure else None

    async def _drain_events(self, subscription: Any) -> None:
        try:
            async for _event in subscription:
                self._on_tools_changed()
        except Exception as exc:  # a lost subscription: the next transport error will say more
            self._log.debug("mcp.session.listen", lost=True, reason=str(exc))

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mt.ToolListChangedNotification):
            self._on_tools_changed()
        await anyio.lowlevel.checkpoint()

    async def _do(self, client: Client, job: Job, failure: list[MCPError_], scope: anyio.CancelScope) -> None:
        try:
            with anyio.CancelScope() as job.scope:
                if job.abandoned:
                    job.scope.cancel()
                with anyio.move_on_after(job.timeout) as timer:
                    try:
                        if job.kind == "list":
                            job.result = await _list_tools(client)
                        else:
                            job.result = await client.call_tool(job.name, job.arguments)
                    except Exception as exc:
                        job.error = _as_error(exc, True)
                        if isinstance(job.error, MCPTransportError):
                            failure.append(job.error)
                            self._start = None  # later jobs wait for the reconnect
                            scope.cancel()
                if timer.cancelled_caught:
                    job.error = MCPTimeoutError(f"no answer within {job.timeout:g}s")
        finally:
            if failure:
                job.finish(failure[0])
            else:
                job.finish(MCPTransportError("the MCP session closed during the request"))


async def _list_tools(client: Client) -> list[mt.Tool]:
    tools: list[mt.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a server that pages forever cannot hang the toolset
        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _as_error(exc: BaseException, connected: bool) -> MCPError_:
    """The typed error for an exception from the ``mcp`` client."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError_):
        return exc
    if isinstance(exc, MCPError):
        if exc.code == mt.CONNECTION_CLOSED:
            return MCPTransportError(f"the connection closed ({exc.message})")
        if exc.code == mt.REQUEST_TIMEOUT:
            return MCPTimeoutError(exc.message)
        return MCPProtocolError(f"JSON-RPC error {exc.code}: {exc.message}")
    if isinstance(exc, ValidationError):
        return MCPProtocolError(f"the server's answer is not valid MCP ({exc.error_count()} errors)")
    kind = MCPTransportError if connected else MCPConnectionError
    text = str(exc).strip()
    return kind(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
