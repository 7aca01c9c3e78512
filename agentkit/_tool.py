"""``@tool``: Python functions become Claude tool definitions; calls come back validated.

``Tool.run`` turns a ``tool_use`` block into a ``tool_result`` block and never raises for anything the
model or the tool did wrong (bad input, a failing tool, a timeout): those become ``is_error`` results
the model can read and act on. Cancellation always propagates.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Generic, ParamSpec, Self, TypeAlias, TypeVar, cast, overload

import anyio
from pydantic import ValidationError

from . import _validate
from ._context import RunContext
from ._exceptions import ConfigurationError, ToolDefinitionError, ToolError
from ._logging import get_logger
from ._schema import TOOL_NAME_PATTERN, FunctionSchema, format_validation_error, function_schema
from ._tool_result import Image, UnserialisableError, to_content, truncate
from ._tool_run import Collected, ToolOutcome, ToolStatus, collect_async, run_in_thread
from .types import ToolResultBlock, ToolUseBlock

__all__ = ["DEFAULT_MAX_RESULT_CHARS", "Image", "Tool", "ToolOutcome", "ToolStatus", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_MAX_RESULT_CHARS = 100_000
"""Default cap on the characters of a tool result's text."""

CacheControlArg: TypeAlias = bool | Mapping[str, Any]
ApprovalArg: TypeAlias = bool | Callable[[dict[str, Any]], bool]
_EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}
_MAX_EXCEPTION_CHARS = 2_000
_UNBOUND: Any = object()


def _logger() -> Any:
    return get_logger("agentkit.tool")


# --- the decorator -----------------------------------------------------------------------------


@overload
def tool(fn: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    cache_control: CacheControlArg = False,
    requires_approval: ApprovalArg = False,
    activity_options: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    cache_control: CacheControlArg = False,
    requires_approval: ApprovalArg = False,
    activity_options: Mapping[str, Any] | None = None,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function (``def`` or ``async def``, plain or method) into a :class:`Tool`.

    Use bare (``@tool``) or with options (``@tool(name=..., timeout=10)``). The input schema comes
    from the type hints, the descriptions from the docstring (Google, NumPy, reST or Epydoc style);
    ``Annotated[T, Field(description=...)]`` overrides a docstring entry. A parameter annotated
    ``RunContext`` is not part of the schema and receives the run's context.

    Args:
        name: Tool name (default: the function name); must match ``^[a-zA-Z0-9_-]{1,64}$``.
        description: Tool description (default: the docstring's summary and long description).
        timeout: Seconds before a call is abandoned with an error result (default: no limit).
        max_result_chars: Longer text results are truncated, with a marker saying how much was cut.
        cache_control: Put a prompt-caching breakpoint on this tool's definition
            (``True`` for ``{"type": "ephemeral"}``, or the dict to send).
        requires_approval: ``True`` if every call waits for a person's decision, or a function of the
            call's input (a dict) that says so per call; the run then pauses (see :meth:`Agent.resume`).
        activity_options: In a durable run (:mod:`agentkit.temporal`), the options of this tool's
            activity (``start_to_close_timeout``, ``retry_policy``, ``heartbeat_timeout``, ...).

    Raises:
        ToolDefinitionError: The function cannot be a tool; the message names it and the fix.
    """

    def decorate(func: Callable[P, R]) -> Tool[P, R]:
        return Tool(
            func,
            name=name,
            description=description,
            timeout=timeout,
            max_result_chars=max_result_chars,
            cache_control=cache_control,
            requires_approval=requires_approval,
            activity_options=activity_options,
        )

    return decorate if fn is None else decorate(fn)


class Tool(Generic[P, R]):
    """A function the model can call: its definition, a validator, and :meth:`run`.

    Calling the object calls the function unchanged. Build it with :func:`tool`.
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]
    name: str
    description: str
    timeout: float | None
    max_result_chars: int
    is_async: bool

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        cache_control: CacheControlArg = False,
        requires_approval: ApprovalArg = False,
        activity_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(fn, Tool):
            raise ToolDefinitionError(f"{fn.name}: already a tool; decorate the function once.")
        if isinstance(fn, type):
            raise ToolDefinitionError(
                f"{_where(fn)}: is a class; @tool decorates functions and methods. Decorate a method "
                "and add it with Toolset.from_object(instance), or wrap the class in a function."
            )
        _validate.tool_options(_where(fn), locals())
        func: Callable[..., Any] = fn
        receiver: str | None = None
        if isinstance(fn, staticmethod):
            func = fn.__func__
        elif isinstance(fn, classmethod):
            func = fn.__func__
            receiver = "cls"
        elif _is_method(func):
            receiver = "self"
        if not callable(func):
            raise ToolDefinitionError(f"{fn!r} is not callable; decorate a function.")

        functools.update_wrapper(self, func)
        where = _where(func)
        tool_name = name if name is not None else getattr(func, "__name__", "")
        if not isinstance(tool_name, str) or not TOOL_NAME_PATTERN.match(tool_name):
            raise ToolDefinitionError(
                f"{where}: tool name {tool_name!r} is invalid; names must match ^[a-zA-Z0-9_-]{{1,64}}$ "
                "(letters, digits, '_' and '-', at most 64). Pass a valid one with @tool(name=...)."
            )

        self._fn: Callable[..., Any] = func
        self._receiver = receiver
        self._bound: Any = _UNBOUND
        self._schema: FunctionSchema = function_schema(
            func, tool_name=tool_name, description=description, skip_first=receiver is not None
        )
        self.name = tool_name
        self.description = self._schema.description
        self.timeout = timeout
        self.max_result_chars = max_result_chars
        self.is_async = _is_async(func)
        self._cache_control = _cache_control_dict(cache_control)
        if not (isinstance(requires_approval, bool) or callable(requires_approval)):
            raise ToolDefinitionError(
                f"{where}: requires_approval must be True/False or a function of the call's input, "
                f"not {requires_approval!r}."
            )
        self.requires_approval = requires_approval
        if activity_options is not None and not isinstance(activity_options, Mapping):
            raise ToolDefinitionError(
                f"{where}: activity_options must be a dict of Temporal activity options "
                f"(e.g. {{'start_to_close_timeout': timedelta(minutes=5)}}), not {activity_options!r}."
            )
        self.activity_options = dict(activity_options) if activity_options is not None else None

    # -- approval --------------------------------------------------------------------------------

    def needs_approval(self, input: Mapping[str, Any]) -> bool:
        """Whether a call with this input waits for a person's decision (``requires_approval``)."""
        rule = self.requires_approval
        if isinstance(rule, bool):
            return rule
        return bool(rule(dict(input)))

    def check_input(self, input: Any) -> str | None:
        """Validate a call's input as the model's is validated: None if valid, else the error text."""
        if not isinstance(input, Mapping):
            return f"Invalid input for {self.name}: expected a JSON object, got {_json_type(input)}"
        try:
            self._schema.validate(input)
        except ValidationError as exc:
            return format_validation_error(self.name, exc)
        return None

    # -- definition ------------------------------------------------------------------------------

    @property
    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the input (root ``"type": "object"``). Read-only; do not modify."""
        return self._schema.json_schema

    @property
    def wants_context(self) -> bool:
        """Whether the function takes a ``RunContext`` parameter."""
        return self._schema.wants_context

    def definition(self, cache_control: CacheControlArg = False) -> dict[str, Any]:
        """The wire definition ``{"name", "description"?, "input_schema", "cache_control"?}``.

        ``cache_control`` (``True`` or a dict) adds a prompt-caching breakpoint; without it the
        tool's own ``cache_control`` option applies.
        """
        wire: dict[str, Any] = {"name": self.name}
        if self.description:
            wire["description"] = self.description
        wire["input_schema"] = json.loads(json.dumps(self._schema.json_schema))
        marker = _cache_control_dict(cache_control) or self._cache_control
        if marker:
            wire["cache_control"] = dict(marker)
        return wire

    # -- plain calls and binding -----------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the underlying function unchanged."""
        if self._receiver is not None and self._bound is not _UNBOUND:
            return cast(R, self._fn(self._bound, *args, **kwargs))
        return cast(R, self._fn(*args, **kwargs))

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Tool[..., R]: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Tool[..., R]:
        if self._receiver is None:
            return self
        if self._receiver == "cls":
            target: object = owner if owner is not None else type(instance)
        elif instance is None:
            return self
        else:
            target = instance
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound._bound = target
        return bound

    @property
    def _attr_name(self) -> str:
        return str(getattr(self._fn, "__name__", self.name))

    def __repr__(self) -> str:
        bound = "" if self._bound is _UNBOUND else " (bound)"
        return f"<Tool {self.name!r}{bound}>"

    # -- running ---------------------------------------------------------------------------------

    async def run(
        self,
        tool_use: ToolUseBlock | Mapping[str, Any],
        ctx: RunContext[Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> ToolResultBlock:
        """Validate the call's input, run the function and return its ``tool_result`` block.

        Invalid input, a :class:`ToolError`, any other exception, an unserialisable return value and a
        timeout all become ``is_error`` results (exception tracebacks go to the ``tool.error`` log, not
        to the model). Cancellation, ``KeyboardInterrupt`` and ``SystemExit`` propagate. ``timeout``
        applies when the tool has none of its own. :meth:`execute` also says how the call ended.
        """
        return (await self.execute(tool_use, ctx, timeout=timeout)).result

    async def execute(
        self,
        tool_use: ToolUseBlock | Mapping[str, Any],
        ctx: RunContext[Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> ToolOutcome:
        """:meth:`run`, returning the result with its :class:`ToolStatus` (ok, invalid input, error,
        timed out).

        The timeout (the tool's own, else ``timeout``) covers the whole call: waiting for a worker
        thread, the function, and collecting an iterator it returns. A sync function still running at
        the timeout is abandoned (its thread keeps its :func:`tool_thread_limiter` token until it ends).
        """
        tool_use_id, _, raw_input = _unpack(tool_use)
        if self._receiver == "self" and self._bound is _UNBOUND:
            raise TypeError(
                f"{self.name}: a method tool must be run from an instance (obj.{self._attr_name}.run)"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigurationError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        if not isinstance(raw_input, Mapping):
            return _outcome(
                tool_use_id,
                f"Invalid input for {self.name}: expected a JSON object, got {_json_type(raw_input)}",
                ToolStatus.INVALID_INPUT,
            )
        try:
            validated = self._schema.validate(raw_input)
        except ValidationError as exc:
            return _outcome(tool_use_id, format_validation_error(self.name, exc), ToolStatus.INVALID_INPUT)

        context = self._call_context(ctx, tool_use_id) if self._schema.wants_context else None
        args, kwargs = self._schema.arguments(validated, context)
        log = getattr(ctx, "log", None) or _logger()
        limit = self.timeout if self.timeout is not None else timeout
        value: Any = None
        try:
            if limit is None:  # no cancel scope when there is no deadline: it costs on every call
                value = await self._invoke(args, kwargs)
            else:
                with anyio.move_on_after(limit) as scope:
                    value = await self._invoke(args, kwargs)
                if scope.cancelled_caught:
                    log.warning("tool.timeout", tool=self.name, tool_use_id=tool_use_id, timeout=limit)
                    return _outcome(tool_use_id, f"tool timed out after {limit:g}s", ToolStatus.TIMED_OUT)
        except Exception as exc:
            problem = _single(exc)
            if isinstance(problem, ToolError):
                return _outcome(tool_use_id, problem.message, ToolStatus.ERROR)
            log.error("tool.error", tool=self.name, tool_use_id=tool_use_id, exc_info=exc)
            return _outcome(tool_use_id, _describe_exception(problem), ToolStatus.ERROR)

        try:
            content = to_content(value, self.max_result_chars)
        except UnserialisableError as exc:
            log.error("tool.error", tool=self.name, tool_use_id=tool_use_id, error=str(exc))
            problem_text = (
                "tool returned an iterator with unserialisable items"
                if isinstance(value, Collected)
                else f"tool returned an unserialisable value of type {type(value).__name__}"
            )
            return _outcome(tool_use_id, problem_text, ToolStatus.ERROR)
        return ToolOutcome(ToolResultBlock(tool_use_id=tool_use_id, content=content), ToolStatus.OK)

    async def _invoke(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self._receiver is not None:
            args = [self._bound, *args]
        cap = self.max_result_chars
        if self.is_async:
            value = self._fn(*args, **kwargs)  # an async generator function returns its iterator
        else:
            value = await run_in_thread(functools.partial(self._fn, *args, **kwargs), cap)
        if inspect.isawaitable(value):  # a coroutine, or a sync wrapper around a coroutine function
            value = await value
        if isinstance(value, AsyncIterator):
            return await collect_async(value, cap)
        if isinstance(value, Iterator):  # returned by an async function: collected in a thread too
            iterator = value
            return await run_in_thread(lambda: iterator, cap)
        return value

    def _call_context(self, ctx: RunContext[Any] | None, tool_use_id: str) -> RunContext[Any]:
        if ctx is None:
            ctx = RunContext(deps=None, tool_use_id=tool_use_id)
        else:
            ctx = dataclasses.replace(ctx, tool_use_id=tool_use_id)
        bind = getattr(ctx.log, "bind", None)
        if callable(bind):
            ctx.log = bind(tool=self.name, tool_use_id=tool_use_id)
        return ctx


# --- helpers -----------------------------------------------------------------------------------


def _where(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)


def _is_method(fn: Callable[..., Any]) -> bool:
    """A function defined in a class body whose first parameter is the receiver (``self``)."""
    parts = (getattr(fn, "__qualname__", "") or "").split(".")
    if len(parts) < 2 or parts[-2] == "<locals>":
        return False
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    first = params[0]
    return first.name in ("self", "cls") or first.annotation is inspect.Parameter.empty


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    return (
        not inspect.isfunction(fn)
        and call is not None
        and (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    )


def _cache_control_dict(value: CacheControlArg) -> dict[str, Any] | None:
    if value is True:
        return dict(_EPHEMERAL)
    if not value:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cache_control must be a bool or a dict, not {type(value).__name__}")


def _unpack(tool_use: ToolUseBlock | Mapping[str, Any]) -> tuple[str, str, Any]:
    if isinstance(tool_use, ToolUseBlock):
        return tool_use.id, tool_use.name, tool_use.input
    if isinstance(tool_use, Mapping):
        tool_use_id = tool_use.get("id")
        if not isinstance(tool_use_id, str) or not tool_use_id:
            raise ValueError("tool_use block has no 'id'")
        return tool_use_id, str(tool_use.get("name", "")), tool_use.get("input", {})
    raise TypeError(f"expected a ToolUseBlock or a dict, not {type(tool_use).__name__}")


def _error(tool_use_id: str, text: str) -> ToolResultBlock:
    return ToolResultBlock(tool_use_id=tool_use_id, content=text, is_error=True)


def _outcome(tool_use_id: str, text: str, status: ToolStatus) -> ToolOutcome:
    return ToolOutcome(_error(tool_use_id, text), status)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _describe_exception(exc: BaseException) -> str:
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return truncate(text, _MAX_EXCEPTION_CHARS)
