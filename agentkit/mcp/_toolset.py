"""``MCPToolset``: the tools of one MCP server, usable beside ``@tool`` functions."""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import urlsplit

import anyio
import httpx2
import jsonschema  # type: ignore[import-untyped]  # a dependency of mcp
from anyio.abc import TaskGroup
from mcp import Client, StdioServerParameters
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.mcpserver import MCPServer

from .._context import RunContext
from .._exceptions import ConfigurationError
from .._logging import _register_secret, get_logger
from .._tool import DEFAULT_MAX_RESULT_CHARS
from .._tool_run import ToolOutcome, ToolStatus
from ..types import ToolResultBlock, ToolUseBlock
from ._mapping import MappedTool, map_result, map_tools
from ._session import Job, MCPConnectionError, MCPTimeoutError, Session

__all__ = ["DEFAULT_CALL_TIMEOUT", "MCPToolset"]

DEFAULT_CALL_TIMEOUT = 60.0
"""Seconds a call may take when neither the toolset nor the agent sets a timeout."""

ToolFilter: TypeAlias = Collection[str] | Callable[[str], bool] | None
Approval: TypeAlias = bool | Collection[str] | Callable[[str, dict[str, Any]], bool]


class MCPTool:
    """One tool of an MCP server as the agent sees it (what the approval gate asks about)."""

    def __init__(self, mapped: MappedTool, toolset: MCPToolset) -> None:
        self.name = mapped.wire_name
        self.server_name = mapped.server_name
        self.definition = mapped.definition
        self._toolset = toolset
        self._validator: jsonschema.protocols.Validator | None = None

    def needs_approval(self, input: Mapping[str, Any]) -> bool:
        """Whether a call with this input waits for a person's decision (``requires_approval``)."""
        rule = self._toolset.requires_approval
        if isinstance(rule, bool):
            return rule
        if callable(rule):
            return bool(rule(self.server_name, dict(input)))
        return self.server_name in rule

    def check_input(self, input: Any) -> str | None:
        """None if ``input`` matches the tool's input schema, else the error text for the model."""
        if not isinstance(input, Mapping):
            return f"Invalid input for {self.name}: expected a JSON object"
        if self._validator is None:
            schema = self.definition["input_schema"]
            try:
                cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
                self._validator = cls(schema)
            except jsonschema.SchemaError:
                self._validator = jsonschema.Draft202012Validator({"type": "object"})
        problems = sorted(self._validator.iter_errors(dict(input)), key=lambda e: list(e.absolute_path))
        if not problems:
            return None
        lines = [f"- {_path(e.absolute_path)}: {e.message[:200]}" for e in problems[:8]]
        return f"Invalid input for {self.name}:\n" + "\n".join(lines)

    def __repr__(self) -> str:
        return f"<MCPTool {self.name!r}>"


class MCPToolset:
    """The tools of one MCP server (the official ``mcp`` package, ≥ 2), for ``Agent(tools=[...])``.

    Give exactly one of ``stdio`` (a command line, run as a subprocess: ``["python", "-m", "srv"]`` or a
    string split like a shell would), ``url`` (a streamable HTTP endpoint) or ``server`` (an
    ``mcp.server.mcpserver.MCPServer`` or lowlevel ``Server`` object, run in process).

    Use it as ``async with MCPToolset(...) as mcp:`` (one session for everything inside), or let the
    agent open it for each run that finds it closed. The session lives in a background task of the
    toolset; the tool list is fetched when it opens and again after the server says it changed
    (``notifications/tools/list_changed``). Every request has a timeout; a broken connection is
    reopened once; a call that fails for any reason is an ``is_error`` result, never an exception.

    Args:
        prefix: put before each tool's name (``prefix="fs_"``: ``fs_read_file``); names are made valid
            for the API (other characters become ``_``, at most 64).
        tool_filter: the server tool names to offer, or a function of the name (default: all).
        requires_approval: ``True``, a collection of server tool names, or a function
            ``(name, input) -> bool``: matching calls pause the run for a decision, like ``@tool``.
        timeout: seconds per call (default: the agent's ``tool_timeout``, else 60).
        connect_timeout: seconds to start the session and to list the tools.
        max_result_chars: longer text results are cut, with a marker.
        env, cwd: the subprocess's extra environment variables and working directory (``stdio``).
        headers: HTTP headers sent with every request to ``url`` (e.g. ``authorization``); their values
            are scrubbed from every log line and never shown in a repr.
    """

    def __init__(
        self,
        *,
        stdio: str | Sequence[str] | None = None,
        url: str | None = None,
        server: MCPServer | Server[Any] | None = None,
        prefix: str = "",
        tool_filter: ToolFilter = None,
        requires_approval: Approval = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        given = [k for k, v in (("stdio", stdio), ("url", url), ("server", server)) if v is not None]
        if len(given) != 1:
            raise ConfigurationError(
                f"MCPToolset: give exactly one of stdio=[command, ...], url='http://.../mcp' or "
                f"server=<MCPServer>; got {', '.join(given) or 'none'}"
            )
        self._target, self.label = _target(stdio, url, server, env, cwd)
        self._headers = _headers(headers, url)
        if not isinstance(prefix, str):
            raise ConfigurationError(f"MCPToolset(prefix=...): got {prefix!r}; expected a str")
        self.prefix = prefix
        self._keep = _filter(tool_filter)
        if not (isinstance(requires_approval, bool | Collection) or callable(requires_approval)):
            raise ConfigurationError(
                f"MCPToolset(requires_approval=...): got {requires_approval!r}; expected True/False, a "
                "collection of tool names or a function (name, input) -> bool"
            )
        if isinstance(requires_approval, str):
            raise ConfigurationError(
                f"MCPToolset(requires_approval={requires_approval!r}): give a list of names, not one string"
            )
        self.requires_approval = requires_approval
        self.timeout = _seconds("timeout", timeout, optional=True)
        self.connect_timeout = _seconds("connect_timeout", connect_timeout)
        chars = max_result_chars
        if isinstance(chars, bool) or not isinstance(chars, int) or chars < 1:
            raise ConfigurationError(
                f"MCPToolset(max_result_chars=...): got {max_result_chars!r}; expected a positive integer"
            )
        self.max_result_chars = max_result_chars
        self._log = get_logger("agentkit.mcp").bind(mcp_server=self.label)
        self._session: Session | None = None
        self._group: TaskGroup | None = None
        self._tools: dict[str, MCPTool] = {}
        self._definitions: list[dict[str, Any]] = []
        self._stale = False
        self._users = 0
        self._idle = anyio.Event()
        self._opening: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"MCPToolset({self.label!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the session task is running."""
        return self._group is not None

    async def __aenter__(self) -> Self:
        if self._group is not None or self._opening is not None:
            raise ConfigurationError(f"{self!r} is open already; enter it once (runs share the session)")
        self._opening = opening = anyio.Event()
        try:
            return await self._open()
        finally:
            self._opening = None
            opening.set()

    async def _open(self) -> Self:
        started = time.perf_counter()
        session = Session(
            self._client,
            connect_timeout=self.connect_timeout,
            log=self._log,
            on_tools_changed=self._mark_stale,
        )
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            failure = await group.start(session.run)
        except BaseException:
            session.close()
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
            raise
        if failure is not None:
            await group.__aexit__(None, None, None)  # the task has returned
            self._log.error("mcp.session.error", error_type=type(failure).__name__, error=str(failure))
            raise MCPConnectionError(f"{self!r}: {failure}")
        self._session, self._group = session, group
        self._publish(session.tools)
        self._log.info("mcp.session.open", tools=len(self._tools), duration=time.perf_counter() - started)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, group = self._session, self._group
        if session is None or group is None:
            return
        self._session = self._group = None
        session.close()
        with anyio.CancelScope(shield=True):  # close cleanly even when the caller is being cancelled
            with anyio.move_on_after(self.connect_timeout):
                await session.finished.wait()
        group.cancel_scope.cancel()  # the task has ended (or overran the close time: stop it)
        await group.__aexit__(None, None, None)
        self._log.info("mcp.session.closed")

    def _client(self, on_message: MessageHandlerFnT) -> Client:
        target = self._target if self._headers is None else _http_with_headers(self._target, self._headers)
        return Client(target, message_handler=on_message, cache=None)

    @asynccontextmanager
    async def open_for_run(self) -> AsyncIterator[None]:
        """Open the session for one run unless it is open already (then the run shares it). The run
        that opened it closes it at its end, once other runs sharing it are done."""
        if self._opening is not None:  # another run is opening it: share that session
            await self._opening.wait()
        if self._group is not None:
            async with self._lease():
                yield
            return
        async with self:
            async with self._lease():
                yield
            while self._users > 0:  # other runs share the session: close it when they are done
                await self._idle.wait()

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[None]:
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0:
                self._idle.set()
                self._idle = anyio.Event()

    # -- the provider interface ----------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-list the tools if the server said they changed (a failed re-list keeps the old list)."""
        session = self._session
        if session is None or not self._stale:
            return
        self._stale = False
        job = await session.submit(Job("list", self.connect_timeout))
        if job.error is not None:
            self._stale = True
            self._log.warning("mcp.tools.refresh", error_type=type(job.error).__name__, error=str(job.error))
            return
        self._publish(job.result)
        self._log.info("mcp.tools.changed", tools=len(self._tools))

    def definitions(self) -> list[dict[str, Any]]:
        """The current wire definitions (empty until the session is open)."""
        return self._definitions

    def get(self, name: str) -> MCPTool | None:
        """The tool the model knows as ``name``, or ``None``."""
        return self._tools.get(name)

    async def execute(
        self, tool_use: ToolUseBlock, ctx: RunContext[Any] | None = None, *, timeout: float | None = None
    ) -> ToolOutcome:
        """Call the tool on the server: its result, or an ``is_error`` result saying what went wrong."""
        found = self._tools.get(tool_use.name)
        if found is None:
            return _error(tool_use.id, f"Unknown tool {tool_use.name!r}", ToolStatus.UNKNOWN_TOOL)
        problem = found.check_input(tool_use.input)
        if problem is not None:
            return _error(tool_use.id, problem, ToolStatus.INVALID_INPUT)
        session = self._session
        if session is None:
            return _error(tool_use.id, f"the MCP server {self.label} is not connected", ToolStatus.ERROR)
        limit = self.timeout or timeout or DEFAULT_CALL_TIMEOUT
        job = await session.submit(Job("call", limit, found.server_name, dict(tool_use.input)))
        if job.error is not None:
            log = getattr(ctx, "log", None) or self._log
            log.warning(
                "mcp.call.error",
                mcp_server=self.label,
                tool=found.name,
                tool_use_id=tool_use.id,
                error_type=type(job.error).__name__,
                error=str(job.error),
            )
            status = ToolStatus.TIMED_OUT if isinstance(job.error, MCPTimeoutError) else ToolStatus.ERROR
            text = f"MCP server {self.label}: {job.error}"
            if status is ToolStatus.TIMED_OUT:
                text = f"tool timed out after {limit:g}s (MCP server {self.label})"
            return _error(tool_use.id, text, status)
        content, is_error = map_result(job.result, self.max_result_chars)
        block = ToolResultBlock(tool_use_id=tool_use.id, content=content, is_error=True if is_error else None)
        return ToolOutcome(block, ToolStatus.ERROR if is_error else ToolStatus.OK)

    # -- tool list -----------------------------------------------------------------------------

    def _mark_stale(self) -> None:
        self._stale = True

    def _publish(self, tools: Any) -> None:
        mapped = map_tools(list(tools), self.prefix, self._keep, self._log.warning)
        self._tools = {m.wire_name: MCPTool(m, self) for m in mapped}
        self._definitions = [m.definition for m in mapped]

    async def list_definitions(self) -> list[dict[str, Any]]:
        """Open the session if needed and return the wire definitions the model will see."""
        if self._session is not None:
            await self.refresh()
            return self.definitions()
        async with self:
            return self.definitions()


def _headers(headers: Mapping[str, str] | None, url: str | None) -> dict[str, str] | None:
    if headers is None:
        return None
    if url is None:
        raise ConfigurationError("MCPToolset(headers=...): headers are for url=...; stdio servers get env=")
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigurationError("MCPToolset(headers=...): expected a dict of str to str")
    for value in headers.values():
        _register_secret(value.split(" ", 1)[-1])  # "Bearer <token>": the token itself
        _register_secret(value)
    return dict(headers)


@asynccontextmanager
async def _http_with_headers(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """A streamable HTTP transport whose requests carry ``headers`` (a fresh client per connection)."""
    timeout = httpx2.Timeout(30.0, read=300.0)  # the SDK's own: a server may hold a stream open
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def _path(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(input)"


def _error(tool_use_id: str, text: str, status: ToolStatus) -> ToolOutcome:
    return ToolOutcome(ToolResultBlock(tool_use_id=tool_use_id, content=text, is_error=True), status)


def _filter(rule: ToolFilter) -> Callable[[str], bool]:
    if rule is None:
        return lambda _name: True
    if callable(rule):
        return lambda name: bool(rule(name))
    if isinstance(rule, str) or not isinstance(rule, Collection):
        raise ConfigurationError(
            f"MCPToolset(tool_filter=...): got {rule!r}; expected a collection of tool names or a "
            "function of the name"
        )
    names = frozenset(rule)
    return names.__contains__


def _seconds(name: str, value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        extra = " or None" if optional else ""
        raise ConfigurationError(f"MCPToolset({name}=...): got {value!r}; expected a positive number{extra}")
    return float(value)


def _target(
    stdio: str | Sequence[str] | None,
    url: str | None,
    server: Any,
    env: Mapping[str, str] | None,
    cwd: Any,
) -> tuple[Any, str]:
    """What ``mcp.Client`` connects to, and a label for logs (no arguments, query or credentials)."""
    if stdio is not None:
        argv = shlex.split(stdio) if isinstance(stdio, str) else list(stdio)
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ConfigurationError(
                f"MCPToolset(stdio=...): got {stdio!r}; expected a command line such as "
                "['python', '-m', 'my_server'] or 'python -m my_server'"
            )
        command = sys.executable if argv[0] in ("python", "python3") else argv[0]
        params = StdioServerParameters(
            command=command, args=argv[1:], env=dict(env) if env else None, cwd=cwd
        )
        module = f" -m {argv[2]}" if argv[1:2] == ["-m"] and len(argv) > 2 else ""
        label = os.path.basename(argv[0]) + module
        return params, label
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"MCPToolset(url=...): got {url!r}; expected an http(s) URL such as http://127.0.0.1:8000/mcp"
            )
        label = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        return url, label
    if not isinstance(server, MCPServer | Server):
        raise ConfigurationError(
            f"MCPToolset(server=...): got {type(server).__name__}; expected an mcp MCPServer or Server object"
        )
    name = getattr(server, "name", None) or getattr(getattr(server, "_lowlevel_server", None), "name", "")
    return server, f"in-process {name or 'server'}"
