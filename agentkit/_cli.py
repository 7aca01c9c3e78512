"""The ``agentkit`` command: run an agent, chat with one, or show tool definitions.

    agentkit run "What's the weather in Tokyo?" --tools tools.weather
    agentkit chat --tools tools.weather --tools tools.calculator
    agentkit tools show tools.weather

Without ``ANTHROPIC_API_KEY`` (and without ``--base-url``) it runs the offline demo model on a local
server, and says so. Exit codes: 0 success, 1 the run failed (API or agent error), 2 bad usage or
configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import anyio

from ._agent import Agent, Conversation
from ._client import Client
from ._events import (
    AgentEvent,
    RunFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from ._exceptions import AgentKitError, AgentRunError, ConfigurationError, ToolDefinitionError
from ._logging import configure_logging
from ._tool import Tool, Toolset

__all__ = ["main"]

OFFLINE_MODEL = "agentkit-offline"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A problem with the command line or the environment, reported in one line (exit code 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentkit`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.handler(args)
        return result
    except _UsageError as exc:
        print(f"agentkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigurationError, ToolDefinitionError) as exc:
        print(f"agentkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AgentRunError as exc:
        print(f"agentkit: run stopped: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AgentKitError as exc:
        print(f"agentkit: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nagentkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `agentkit run ... | head`: stop quietly, like other CLI tools
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at interpreter exit
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentkit",
        description="Run tool-using agents on Claude's Messages API (offline demo model without a key).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def agent_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--tools",
            action="append",
            default=[],
            metavar="MODULE_OR_FILE",
            help="a module (tools.weather) or .py file whose @tool functions the agent may call; repeatable",
        )
        sub.add_argument("--model", help="model id (default: $ANTHROPIC_MODEL; offline: agentkit-offline)")
        sub.add_argument("--system", help="system prompt")
        sub.add_argument(
            "--provider", choices=["anthropic", "poyo", "toapis"], help="endpoint preset (auth style)"
        )
        sub.add_argument("--base-url", help="Messages API endpoint (default: $ANTHROPIC_BASE_URL)")
        sub.add_argument(
            "--max-turns", type=int, default=10, help="maximum model requests per run (default 10)"
        )
        sub.add_argument(
            "--max-tokens", type=int, default=1024, help="output tokens per request (default 1024)"
        )
        sub.add_argument(
            "--offline", action="store_true", help="use the offline demo model even if a key is set"
        )
        sub.add_argument("-v", "--verbose", action="count", default=0, help="show the trace (-vv: debug)")

    run = commands.add_parser("run", help="run one prompt and stream the answer")
    run.add_argument("prompt", help="what to ask")
    agent_options(run)
    run.add_argument("--json", action="store_true", help="print one JSON event per line instead of text")
    run.set_defaults(handler=_cmd_run)

    chat = commands.add_parser("chat", help="an interactive multi-turn session")
    agent_options(chat)
    chat.set_defaults(handler=_cmd_chat)

    tools = commands.add_parser("tools", help="inspect tools")
    tools_commands = tools.add_subparsers(dest="tools_command", metavar="SUBCOMMAND")
    show = tools_commands.add_parser("show", help="print tool definitions as the model sees them (JSON)")
    show.add_argument("source", nargs="+", metavar="MODULE_OR_FILE")
    show.set_defaults(handler=_cmd_tools_show)

    def tools_help(_args: argparse.Namespace) -> int:
        tools.print_help()
        return EXIT_USAGE

    tools.set_defaults(handler=tools_help)
    return parser


# --- commands ------------------------------------------------------------------------------------


def _cmd_tools_show(args: argparse.Namespace) -> int:
    toolset = _load_tools(args.source)
    print(json.dumps(toolset.definitions(), indent=2, ensure_ascii=False))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    _configure_logs(args.verbose)
    with ExitStack() as stack:
        agent, offline = _build_agent(args, stack)
        out = sys.stdout
        render = _Renderer(out)
        started = time.perf_counter()

        async def go() -> int:
            try:
                async with agent.stream(args.prompt) as events:
                    async for event in events:
                        if args.json:
                            print(json.dumps(event.to_dict(), ensure_ascii=False), file=out, flush=True)
                        else:
                            render(event)
                        if isinstance(event, RunFinished) and not args.json:
                            _summary(event, time.perf_counter() - started, offline)
            finally:
                await agent.client.aclose()
            return EXIT_OK

        return anyio.run(go)
    return EXIT_OK  # pragma: no cover - the with block always returns


def _cmd_chat(args: argparse.Namespace) -> int:
    _configure_logs(args.verbose)
    with ExitStack() as stack:
        agent, offline = _build_agent(args, stack)
        conversation = Conversation()
        render = _Renderer(sys.stdout)
        print("agentkit chat — Ctrl-C cancels the current answer, Ctrl-D quits.", file=sys.stderr)

        async def go() -> int:
            current: list[anyio.CancelScope] = []

            async def watch_interrupts() -> None:
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _ in signals:
                        if current:
                            current[-1].cancel()
                        else:
                            print("\n(Ctrl-D to quit)", file=sys.stderr, flush=True)

            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(watch_interrupts)
                    while True:
                        try:
                            line = await anyio.to_thread.run_sync(_read_line, "you> ", abandon_on_cancel=True)
                        except EOFError:
                            print(file=sys.stderr)
                            break
                        if not line.strip():
                            continue
                        started = time.perf_counter()
                        with anyio.CancelScope() as scope:
                            current.append(scope)
                            try:
                                async with agent.stream(line, history=conversation) as events:
                                    async for event in events:
                                        render(event)
                                        if isinstance(event, RunFinished):
                                            _summary(event, time.perf_counter() - started, offline)
                            except AgentRunError as exc:
                                print(f"\n[run stopped: {exc}]", file=sys.stderr)
                            except AgentKitError as exc:
                                print(f"\n[error: {type(exc).__name__}: {exc}]", file=sys.stderr)
                            finally:
                                current.pop()
                        if scope.cancelled_caught:
                            print(
                                "\n[cancelled — the conversation keeps every answered step]", file=sys.stderr
                            )
                    group.cancel_scope.cancel()
            finally:
                await agent.client.aclose()
            return EXIT_OK

        return anyio.run(go)
    return EXIT_OK  # pragma: no cover


def _read_line(prompt: str) -> str:
    return input(prompt)


# --- building the agent --------------------------------------------------------------------------


def _configure_logs(verbose: int) -> None:
    level = "warning" if verbose == 0 else "info" if verbose == 1 else "debug"
    configure_logging(level, format="console", stream=sys.stderr)


def _build_agent(args: argparse.Namespace, stack: ExitStack) -> tuple[Agent[Any, Any], bool]:
    toolset = _load_tools(args.tools) if args.tools else Toolset()
    base_url = args.base_url or os.environ.get("ANTHROPIC_BASE_URL")
    key = os.environ.get("ANTHROPIC_API_KEY")
    offline = args.offline or (not key and not base_url)
    if offline:
        from .testing import OFFLINE_NOTICE, LocalServer, OfflineModel

        _use_offline_providers()
        server = stack.enter_context(LocalServer(policy=OfflineModel(), api_key=None))
        print(OFFLINE_NOTICE, file=sys.stderr, flush=True)
        client = Client(api_key="offline-demo", base_url=server.base_url, max_retries=0)
        model = args.model or OFFLINE_MODEL
    else:
        if not key:
            raise _UsageError(
                f"no API key for {base_url}: set ANTHROPIC_API_KEY (or drop --base-url for the offline model)"
            )
        model = args.model or os.environ.get("ANTHROPIC_MODEL")
        if not model:
            raise _UsageError("no model: pass --model (e.g. claude-sonnet-4-6) or set ANTHROPIC_MODEL")
        client = Client(base_url=base_url, provider=args.provider)
    agent: Agent[Any, Any] = Agent(
        client,
        model=model,
        tools=toolset,
        system=args.system,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
    )
    return agent, offline


def _use_offline_providers() -> None:
    """Offline means no network: switch the bundled tools that call web APIs to simulated data."""
    weather = sys.modules.get("agentkit.tools.weather")
    if weather is not None and hasattr(weather, "offline"):
        weather.offline()


def _load_tools(sources: Sequence[str]) -> Toolset:
    collected: list[Tool[..., Any]] = []
    for source in sources:
        module = _import_source(source)
        found = Toolset.from_module(module)
        if not len(found):
            raise _UsageError(f"{source}: no @tool functions found (decorate them with agentkit.tool)")
        collected.extend(found)
    return Toolset(collected)


# The ready-made tools live in agentkit.tools; "tools.weather" on the command line still means them.
_BUNDLED_ALIASES = {
    f"tools.{name}": f"agentkit.tools.{name}" for name in ("calculator", "clock", "files", "http", "weather")
}


def _import_source(source: str) -> ModuleType:
    path = Path(source)
    try:
        if source.endswith(".py") or path.is_file():
            if not path.is_file():
                raise _UsageError(f"tools file not found: {source}")
            spec = importlib.util.spec_from_file_location(f"agentkit_user_tools_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise _UsageError(f"cannot load tools file {source}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(_BUNDLED_ALIASES.get(source, source))
    except (_UsageError, ToolDefinitionError):
        raise
    except Exception as exc:
        raise _UsageError(f"cannot import tools module {source!r}: {type(exc).__name__}: {exc}") from exc


# --- rendering -----------------------------------------------------------------------------------


class _Renderer:
    """Writes a run as it happens: streamed text, then one line per tool call and per result."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.at_line_start = True

    def _line(self, text: str) -> None:
        if not self.at_line_start:
            self.out.write("\n")
        self.out.write(text + "\n")
        self.out.flush()
        self.at_line_start = True

    def __call__(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta) and event.text:
            self.out.write(event.text)
            self.out.flush()
            self.at_line_start = event.text.endswith("\n")
        elif isinstance(event, ToolCallStarted):
            self._line(f"→ {event.tool_use.name}({json.dumps(event.tool_use.input, ensure_ascii=False)})")
        elif isinstance(event, ToolCallFinished):
            content = event.result.content
            if isinstance(content, str) or content is None:
                text = content or ""
            else:
                text = json.dumps(
                    [b.model_dump(mode="json", exclude_none=True) for b in content], ensure_ascii=False
                )
            if len(text) > 300:
                text = text[:299] + "…"
            mark = "✗" if event.is_error else "←"
            self._line(f"{mark} {event.tool_use.name}: {text}  ({event.duration * 1000:.0f} ms)")
        elif isinstance(event, RunFinished) and not self.at_line_start:
            self._line("")


def _summary(event: RunFinished, elapsed: float, offline: bool) -> None:
    result = event.result
    usage = result.usage
    parts = [
        f"{result.turns} turn{'s' if result.turns != 1 else ''}",
        f"{usage.input_tokens} in / {usage.output_tokens} out tokens",
    ]
    if usage.cache_read_input_tokens:
        parts.append(f"{usage.cache_read_input_tokens} cached")
    parts.append(f"{elapsed:.2f} s")
    if result.stopped_by_limit:
        parts.append(f"stopped by {result.stopped_by_limit}")
    if offline:
        parts.append("offline")
    print(f"— {' · '.join(parts)}", file=sys.stderr, flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
