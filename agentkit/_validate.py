"""Argument checks for the public constructors and entry points: a bad argument is refused where it is given.

Every check raises :class:`ConfigurationError` naming the call and the argument, what was given and what
is accepted (``@tool`` options raise :class:`ToolDefinitionError`, like every other decoration error).
Checks are plain ``isinstance`` and range tests, run once per call (never per turn). Values that may be
secrets (an API key, a string given where a Client goes, headers) are never shown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import math
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx2
from pydantic import BaseModel, ValidationError

from ._exceptions import ConfigurationError, ToolDefinitionError
from ._logging import _scrub
from ._provider import ToolProvider
from .types import TextBlock, Usage

__all__: list[str] = []

_SHOWN = 80
# The standard levels structlog's filtering loggers know (a custom number would fail on first use).
_LEVELS = {
    "notset": 0,
    "debug": 10,
    "info": 20,
    "warn": 30,
    "warning": 30,
    "error": 40,
    "critical": 50,
    "fatal": 50,
}


def describe(value: Any, *, secret: bool = False) -> str:
    """``value`` for an error message: a short repr and its type, or only its type when it may be a secret."""
    kind = type(value).__name__
    if secret:
        return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} (not shown)"
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    try:
        text = repr(value)
    except Exception:
        text = f"<{kind}>"
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 3] + "..."
    text = _scrub(text)
    return text if isinstance(value, int | float) else f"{text} ({kind})"


def refuse(
    where: str, name: str, value: Any, accepted: str, *, secret: bool = False, hint: str = ""
) -> ConfigurationError:
    """The error for argument ``name`` of ``where``: what was given, what is accepted, and a hint."""
    text = f"{where}({name}=...): got {describe(value, secret=secret)}; expected {accepted}"
    return ConfigurationError(f"{text}. {hint}" if hint else text)


def check_type(
    where: str, name: str, value: Any, types: type | tuple[type, ...], accepted: str, *, none: bool = True
) -> None:
    """``value`` is an instance of ``types`` (or ``None`` when ``none``)."""
    if value is None and none:
        return
    if not isinstance(value, types):
        raise refuse(where, name, value, accepted + (" or None" if none else ""))


def check_bool(where: str, name: str, value: Any) -> None:
    """``value`` is ``True`` or ``False`` (a truthy string like ``"no"`` is refused)."""
    if not isinstance(value, bool):
        raise refuse(where, name, value, "True or False")


def check_int(where: str, name: str, value: Any, *, minimum: int, none: bool = False) -> None:
    """``value`` is an int (not a bool) ``>= minimum`` (or ``None`` when ``none``)."""
    if value is None and none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        accepted = f"an int >= {minimum}" + (" or None" if none else "")
        raise refuse(where, name, value, accepted)


def check_number(
    where: str,
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = math.inf,
    seconds: bool = False,
    none: bool = True,
) -> None:
    """``value`` is a real number in ``[low, high]``, or ``None``; with ``seconds``, a duration ``> 0``."""
    if value is None and none:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (value > low if seconds else value >= low) and value <= high
    if not ok:
        if seconds:
            accepted = "a positive number of seconds"
        elif high < math.inf:
            accepted = f"a number from {low:g} to {high:g}"
        else:
            accepted = f"a number >= {low:g}"
        raise refuse(where, name, value, accepted + (" or None" if none else ""))


def check_choice(where: str, name: str, value: Any, choices: Sequence[str], *, none: bool = False) -> None:
    """``value`` is one of the strings ``choices`` (or ``None`` when ``none``)."""
    if value is None and none:
        return
    if not isinstance(value, str) or value not in choices:
        accepted = " or ".join(repr(c) for c in choices) + (" or None" if none else "")
        raise refuse(where, name, value, accepted)


def check_str_list(where: str, name: str, value: Any) -> None:
    """``value`` is ``None`` or a list/tuple of strings (a bare string is refused)."""
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise refuse(where, name, value, "a list of strings or None", hint=_wrap_hint(name, value))
    for item in value:
        if not isinstance(item, str):
            raise refuse(where, name, value, "a list of strings or None")


def check_type_form(where: str, name: str, value: Any, *, structured: bool) -> None:
    """``value`` is a type pydantic can work with: a class or a typing form (``list[int]``, ``Literal``, ...).

    ``structured`` refuses ``object`` and ``Any``, which describe nothing the model could fill in.
    """
    if value is None:
        return
    if isinstance(value, str):
        raise refuse(
            where,
            name,
            value,
            "a type such as a pydantic model",
            hint=f"Pass the class itself, not its name: {name}={value}",
        )
    if structured and (value is object or value is typing.Any):
        raise refuse(
            where, name, value, "a type with structure, such as a pydantic model, a dataclass or list[str]"
        )
    if not (isinstance(value, type) or typing.get_origin(value) is not None or value is typing.Any):
        raise refuse(where, name, value, "a type such as a pydantic model (the class, not an instance)")


def _wrap_hint(name: str, value: Any) -> str:
    return f"Wrap a single value in a list: {name}=[...]" if isinstance(value, str | Mapping) else ""


# --- Client ------------------------------------------------------------------------------------


def client_arguments(args: Mapping[str, Any]) -> None:
    """Check ``Client.__init__``'s arguments (its ``locals()`` on entry)."""
    where = "Client"
    if args["api_key"] is not None and not isinstance(args["api_key"], str):
        raise refuse(where, "api_key", args["api_key"], "a str or None", secret=True)
    check_type(where, "base_url", args["base_url"], str, "a URL string such as 'https://api.anthropic.com'")
    check_choice(where, "provider", args["provider"], ("anthropic", "poyo", "toapis"), none=True)
    check_choice(where, "auth", args["auth"], ("x-api-key", "bearer"), none=True)
    version = args["anthropic_version"]
    if not isinstance(version, str) or not version:
        raise refuse(where, "anthropic_version", version, "a version string such as '2023-06-01'")
    headers = args["default_headers"]
    if headers is not None and (
        not isinstance(headers, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise refuse(
            where,
            "default_headers",
            headers,
            "a dict of header names to string values or None",
            secret=isinstance(headers, Mapping),
        )
    timeout = args["timeout"]
    if not isinstance(timeout, httpx2.Timeout):
        check_number(where, "timeout", timeout, seconds=True)
    check_int(where, "max_retries", args["max_retries"], minimum=0)
    check_type(where, "http_client", args["http_client"], httpx2.AsyncClient, "an httpx2.AsyncClient")
    check_type(
        where, "transport", args["transport"], httpx2.AsyncBaseTransport, "an httpx2.AsyncBaseTransport"
    )
    if args["http_client"] is not None and args["transport"] is not None:
        raise ConfigurationError(
            "Client(http_client=..., transport=...): give one, not both (the transport of your own "
            "http_client is the one it was built with)"
        )
    check_int(where, "max_connections", args["max_connections"], minimum=1)


def anthropic_host(base_url: str) -> bool:
    """Whether ``base_url`` is Anthropic's API (``api.anthropic.com`` or any ``*.anthropic.com`` host)."""
    host = httpx2.URL(base_url).host.lower().rstrip(".")
    return host == "anthropic.com" or host.endswith(".anthropic.com")


def missing_key(base_url: str) -> ConfigurationError:
    """The error for a keyless Client aimed at Anthropic's API (raised before any request)."""
    return ConfigurationError(
        f"no API key for {base_url}: set ANTHROPIC_API_KEY (export ANTHROPIC_API_KEY=sk-ant-...) or pass "
        "Client(api_key=...). To run without a key, use the offline demo model: "
        "`with agentkit.testing.demo_client() as env: Agent(env.client, ...)`"
    )


# --- Agent -------------------------------------------------------------------------------------


def agent_arguments(args: Mapping[str, Any], client_type: type, tool_types: tuple[type, ...]) -> None:
    """Check ``Agent.__init__``'s arguments (its ``locals()`` on entry).

    ``client_type`` is :class:`Client`; ``tool_types`` are ``(Tool, Toolset)`` (passed in, so this module
    imports neither the client nor the tools).
    """
    where = "Agent"
    client = args["client"]
    if client is not None and not isinstance(client, client_type):
        secret = isinstance(client, str | bytes)
        hint = (
            "A key goes into the client: Agent(Client(api_key=...)), or Agent() reads ANTHROPIC_API_KEY"
            if secret
            else ""
        )
        raise refuse(where, "client", client, "a Client or None", secret=secret, hint=hint)
    check_type(where, "model", args["model"], str, "a model id such as 'claude-sonnet-4-6'")
    _check_tools(where, args["tools"], tool_types)
    _check_system(where, args["system"])
    check_int(where, "max_tokens", args["max_tokens"], minimum=1)
    _check_config(where, "tool_choice", args["tool_choice"], ("auto", "any", "tool", "none"))
    _check_config(where, "thinking", args["thinking"], None)
    check_bool(where, "keep_tool_choice", args["keep_tool_choice"])
    check_number(where, "temperature", args["temperature"], high=1.0)
    check_number(where, "top_p", args["top_p"], high=1.0)
    check_int(where, "top_k", args["top_k"], minimum=1, none=True)
    check_str_list(where, "stop_sequences", args["stop_sequences"])
    check_type(where, "metadata", args["metadata"], Mapping, "a dict such as {'user_id': '...'}")
    check_int(where, "max_turns", args["max_turns"], minimum=1)
    check_int(where, "token_budget", args["token_budget"], minimum=1, none=True)
    check_choice(where, "on_limit", args["on_limit"], ("wrap_up", "raise"))
    check_choice(where, "on_truncated_tool_use", args["on_truncated_tool_use"], ("raise", "continue"))
    check_type_form(where, "output_type", args["output_type"], structured=True)
    check_int(where, "output_retries", args["output_retries"], minimum=0)
    check_number(where, "tool_timeout", args["tool_timeout"], seconds=True)
    check_bool(where, "parallel_tool_calls", args["parallel_tool_calls"])
    check_int(where, "loop_limit", args["loop_limit"], minimum=2, none=True)
    check_int(where, "tool_retries", args["tool_retries"], minimum=1, none=True)
    check_bool(where, "cache", args["cache"])
    check_bool(where, "stream", args["stream"])
    _check_hooks(where, args["hooks"])
    check_type_form(where, "deps_type", args["deps_type"], structured=False)
    check_type(where, "name", args["name"], str, "a str")


def _check_tools(where: str, tools: Any, tool_types: tuple[type, ...]) -> None:
    accepted = (
        "a list of tools (@tool functions, plain typed functions, server tool dicts such as "
        "{'type': 'web_search_20250305', 'name': 'web_search'}) or a Toolset"
    )
    if isinstance(tools, tool_types[1]):
        return
    if isinstance(tools, tool_types[0]) or callable(tools):
        raise refuse(where, "tools", tools, accepted, hint="Wrap a single tool in a list: tools=[my_tool]")
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        hint = "Pass the tools themselves: tools=list(mapping.values())" if isinstance(tools, Mapping) else ""
        raise refuse(where, "tools", tools, accepted, hint=hint)
    if isinstance(tools, list | tuple):  # never consume a one-shot iterable here
        for item in tools:
            if isinstance(item, Mapping) or _is_provider(item):  # server tool dicts: checked by Toolset
                continue
            if not (isinstance(item, tool_types) or callable(item)) or isinstance(item, type):
                raise refuse(
                    where,
                    "tools",
                    item,
                    accepted,
                    hint="Every item must be a function, a Tool or a server tool definition (a dict)",
                )


def _is_provider(item: Any) -> bool:
    return isinstance(item, ToolProvider) and not isinstance(item, type)


def _check_system(where: str, system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    accepted = "a str, a list of text blocks ({'type': 'text', 'text': ...}) or None"
    if not isinstance(system, list | tuple):
        raise refuse(where, "system", system, accepted)
    for block in system:
        if not isinstance(block, Mapping | TextBlock):
            raise refuse(where, "system", system, accepted)


def _check_config(where: str, name: str, value: Any, types: Sequence[str] | None) -> None:
    """A dict-like API setting (``tool_choice``, ``thinking``) with a ``type`` key."""
    if value is None or isinstance(value, BaseModel):
        return
    example = "{'type': 'auto'}" if name == "tool_choice" else "{'type': 'enabled', 'budget_tokens': 2048}"
    hint = f"Use the API's object form, e.g. {name}={{'type': {value!r}}}" if isinstance(value, str) else ""
    if not isinstance(value, Mapping):
        raise refuse(where, name, value, f"a dict such as {example} or None", hint=hint)
    kind = value.get("type")
    if not isinstance(kind, str) or (types is not None and kind not in types):
        accepted = " or ".join(repr(t) for t in types) if types else "a string"
        raise refuse(where, name, value, f"a dict whose 'type' is {accepted}")


def _check_hooks(where: str, hooks: Any) -> None:
    if hooks is None:
        return
    fields = ("before_request", "after_response", "before_tool_call", "after_tool_call")
    if isinstance(hooks, Mapping) or not all(hasattr(hooks, f) for f in fields):
        raise refuse(
            where,
            "hooks",
            hooks,
            "a Hooks object or None",
            hint="Build one with Hooks(before_request=..., ...)",
        )
    for field in fields:
        value = getattr(hooks, field)
        if value is not None and not callable(value):
            raise refuse(where, f"hooks.{field}", value, "a function (sync or async) or None")


# --- runs and conversations --------------------------------------------------------------------


def run_arguments(where: str, prompt: Any, history: Any, conversation_type: type) -> None:
    """Check ``prompt`` and ``history`` of ``Agent.run``/``run_sync``/``stream`` (containers only: cheap)."""
    accepted = (
        "a str, a list of messages ({'role': ..., 'content': ...}), a list of content "
        "(str, Image, Document, content blocks) or None"
    )
    if prompt is not None and not isinstance(prompt, str):
        hint = "Wrap a single message in a list: [message]" if isinstance(prompt, Mapping) else ""
        if not isinstance(prompt, list | tuple):
            raise refuse(where, "prompt", prompt, accepted, hint=hint)
    if history is not None and not isinstance(history, conversation_type):
        hint = "Wrap a single message in a list: history=[message]" if isinstance(history, Mapping) else ""
        if isinstance(history, str):
            hint = "To continue a saved conversation use history=Conversation.from_json(saved)"
        if not isinstance(history, list | tuple):
            raise refuse(where, "history", history, "a Conversation, a list of messages or None", hint=hint)


def outside_event_loop(where: str, instead: str) -> None:
    """Refuse a ``*_sync`` call made inside a running event loop (an async function, Jupyter, an async
    web handler): it would have to start a second loop in the thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")
        if trio is None or not trio.lowlevel.in_trio_run():
            return
    raise ConfigurationError(
        f"{where}() starts an event loop of its own, but this thread is running one already (an "
        f"async function, Jupyter, an async web framework): use `await {instead}(...)` there"
    )


def bad_messages(name: str, exc: ValidationError) -> ConfigurationError:
    """The error for a list of messages pydantic refused: the first few problems, by location."""
    problems = "; ".join(
        f"{_location(e.get('loc', ()))}: {e['msg']}" for e in exc.errors(include_url=False)[:4]
    )
    return ConfigurationError(
        f"{name}: not a valid list of messages ({problems}); each message is "
        "{'role': 'user' | 'assistant', 'content': a str or a list of content blocks}"
    )


def check_messages(name: str, value: Any) -> None:
    """``value`` is an iterable of messages (not a string, not a single message dict)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        hint = f"Wrap a single message in a list: {name}=[message]" if isinstance(value, Mapping) else ""
        raise refuse(
            "Conversation", name, value, "a list of messages ({'role': ..., 'content': ...})", hint=hint
        )


def saved_conversation(data: Any) -> tuple[Any, Usage | None, int]:
    """The messages, usage and context tokens of ``Conversation.to_json()`` output (or a JSON list of
    messages)."""
    where = "Conversation.from_json"
    if not isinstance(data, str | bytes | bytearray):
        raise refuse(where, "data", data, "the JSON string Conversation.to_json() returned")
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ConfigurationError(
            f"{where}(data=...): not valid JSON ({exc}); expected the string Conversation.to_json() returned"
        ) from None
    accepted = "a JSON object {'messages': [...], 'usage': {...}} or a JSON list of messages"
    if isinstance(raw, list):
        return raw, None, 0
    if not isinstance(raw, dict) or not isinstance(raw.get("messages"), list):
        shape = (
            f"a JSON object with keys {sorted(raw)[:8]}"
            if isinstance(raw, dict)
            else f"JSON {type(raw).__name__}"
        )
        raise ConfigurationError(f"{where}(data=...): got {shape}; expected {accepted}")
    context_tokens = raw.get("context_tokens", 0)
    if not isinstance(context_tokens, int) or isinstance(context_tokens, bool) or context_tokens < 0:
        raise ConfigurationError(
            f"{where}(data=...): 'context_tokens' is {context_tokens!r}; expected an int >= 0"
        )
    usage = raw.get("usage")
    if not usage:
        return raw["messages"], None, context_tokens
    try:
        return raw["messages"], Usage.model_validate(usage), context_tokens
    except ValidationError as exc:
        raise ConfigurationError(
            f"{where}(data=...): 'usage' is not valid ({exc.error_count()} errors)"
        ) from None


def _location(loc: Iterable[int | str]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "message"


# --- logging and tools -------------------------------------------------------------------------


def log_level(level: Any) -> int:
    """The numeric level of ``configure_logging(level=...)``: a standard name or number."""
    if isinstance(level, str) and level.lower() in _LEVELS:
        return _LEVELS[level.lower()]
    if isinstance(level, int) and not isinstance(level, bool) and level in _LEVELS.values():
        return level
    raise refuse(
        "configure_logging",
        "level",
        level,
        "'debug', 'info', 'warning', 'error' or 'critical' (or logging.DEBUG ... logging.CRITICAL)",
    )


def logging_options(format: Any, stream: Any) -> None:
    """Check ``configure_logging``'s ``format`` and ``stream``."""
    check_choice("configure_logging", "format", format, ("auto", "console", "json"))
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise refuse(
            "configure_logging", "stream", stream, "a text stream (with .write), e.g. sys.stdout, or None"
        )


def tool_options(where: str, args: Mapping[str, Any]) -> None:
    """Check the options of ``@tool(...)``; ``where`` names the function when there is one."""
    call = f"{where}: @tool" if where else "@tool"
    try:
        check_type(call, "name", args["name"], str, "a tool name matching ^[a-zA-Z0-9_-]{1,64}$")
        check_type(call, "description", args["description"], str, "a str")
        check_number(call, "timeout", args["timeout"], seconds=True)
        check_int(call, "max_result_chars", args["max_result_chars"], minimum=1)
        marker = args["cache_control"]
        if not isinstance(marker, bool | Mapping):
            raise refuse(call, "cache_control", marker, "True, False or a dict such as {'type': 'ephemeral'}")
    except ConfigurationError as exc:
        raise ToolDefinitionError(str(exc)) from None


def own_docstring(cls: Any) -> str:
    """The docstring the user wrote on ``cls`` itself: never one inherited (pydantic's ``BaseModel``
    has a long one) and never the signature ``dataclass`` puts there; ``""`` when there is none."""
    if not isinstance(cls, type):
        return ""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return ""
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        try:
            generated = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
        except (TypeError, ValueError):
            generated = doc
        if doc == generated:
            return ""
    return inspect.cleandoc(doc)
