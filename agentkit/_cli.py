"""The ``agentkit`` command: run an agent, chat with one, or show tool definitions.

    agentkit run "What's the weather in Tokyo?" --tools tools.weather
    agentkit chat --tools tools.weather --tools tools.calculator
    agentkit tools show tools.weather
    echo "What is 17 * 23?" | agentkit run - --tools tools.calculator

Without ``ANTHROPIC_API_KEY`` (and without ``--base-url``) it runs the offline demo model on a local
server, and says so. Exit codes: 0 success, 1 the run failed (API or agent error), 2 bad usage or
configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any, TextIO, cast

import anyio

from . import __version__
from ._agent import Agent, Conversation
from ._cli_output import LogStream, Renderer, Screen, escape_line, json_text
from ._cli_tools import RULE, LoadedTools, ToolLoadError, load_tools, mcp_toolsets
from ._client import Client
from ._events import RunFinished
from ._exceptions import AgentKitError, AgentRunError, ConfigurationError, ToolDefinitionError
from ._logging import configure_logging
from ._toolset import Toolset

__all__ = ["main"]

OFFLINE_MODEL = "agentkit-offline"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MCP_HELP = (
    "an MCP server whose tools the agent may call: a command line ('python -m my_server') run over "
    "stdio, or a streamable HTTP URL (http://127.0.0.1:8000/mcp); repeatable (needs agentkit[mcp])"
)


class _UsageError(Exception):
    """A problem with the command line or the environment, reported in one line (exit code 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentkit`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    screen = Screen(sys.stdout, sys.stderr)
    args.screen = screen
    try:
        result: int = args.handler(args)
        return result
    except (_UsageError, ToolLoadError, ConfigurationError, ToolDefinitionError) as exc:
        screen.note(f"agentkit: error: {escape_line(str(exc))}")
        return EXIT_USAGE
    except AgentRunError as exc:
        screen.note(f"agentkit: run stopped: {escape_line(str(exc))}")
        return EXIT_FAILED
    except AgentKitError as exc:
        screen.note(f"agentkit: error: {type(exc).__name__}: {escape_line(str(exc))}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        screen.note("\nagentkit: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `agentkit run ... | head`: stop quietly, like other CLI tools
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at interpreter exit
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentkit",
        description="Run tool-using agents on Claude's Messages API (offline demo model without a key).",
        epilog=RULE,
    )
    parser.add_argument("--version", action="version", version=f"agentkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def agent_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--tools",
            action="append",
            default=[],
            metavar="MODULE_OR_FILE",
            help="a module (tools.weather, my_tools) or .py file whose @tool functions the agent may call; "
            "repeatable",
        )
        sub.add_argument(
            "--files-root",
            metavar="DIR",
            help="the directory tools.files may read (read-only; default: the current directory)",
        )
        sub.add_argument("--mcp", action="append", default=[], metavar="COMMAND_OR_URL", help=MCP_HELP)
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

    run = commands.add_parser("run", help="run one prompt and stream the answer", epilog=RULE)
    run.add_argument("prompt", help="what to ask; - reads it from stdin (echo 'question' | agentkit run -)")
    agent_options(run)
    run.add_argument("--json", action="store_true", help="print one JSON event per line instead of text")
    run.set_defaults(handler=_cmd_run)

    chat = commands.add_parser("chat", help="an interactive multi-turn session", epilog=RULE)
    agent_options(chat)
    chat.set_defaults(handler=_cmd_chat)

    tools = commands.add_parser("tools", help="inspect tools")
    tools_commands = tools.add_subparsers(dest="tools_command", metavar="SUBCOMMAND")
    show = tools_commands.add_parser(
        "show", help="print tool definitions as the model sees them (JSON)", epilog=RULE
    )
    show.add_argument("source", nargs="*", metavar="MODULE_OR_FILE")
    show.add_argument("--files-root", metavar="DIR", help="the directory tools.files may read")
    show.add_argument("--mcp", action="append", default=[], metavar="COMMAND_OR_URL", help=MCP_HELP)
    show.set_defaults(handler=_cmd_tools_show)

    def tools_help(_args: argparse.Namespace) -> int:
        tools.print_help()
        return EXIT_USAGE

    tools.set_defaults(handler=tools_help)
    return parser


# --- commands ------------------------------------------------------------------------------------


def _cmd_tools_show(args: argparse.Namespace) -> int:
    _configure_logs(0, args.screen)  # warnings about the tools (undocumented parameters) are escaped too
    if not args.source and not args.mcp:
        raise _UsageError("tools show: name a MODULE_OR_FILE or an --mcp server")
    loaded = load_tools(args.source, files_root=args.files_root) if args.source else None
    toolset = Toolset([*(loaded.toolset if loaded else ()), *mcp_toolsets(args.mcp)])

    async def definitions() -> list[dict[str, Any]]:
        async with toolset.running():  # MCP servers: opened, listed, closed
            return toolset.definitions()

    print(json_text(anyio.run(definitions), indent=2), flush=True)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    screen: Screen = args.screen
    prompt = _read_prompt(args.prompt)
    _configure_logs(args.verbose, screen)
    with ExitStack() as stack:
        agent, offline = _build_agent(args, stack)
        render = Renderer(screen)
        started = time.perf_counter()

        async def go() -> int:
            try:
                async with agent.toolset.running(), agent.stream(prompt) as events:
                    async for event in events:
                        if args.json:
                            screen.line(json_text(event.to_dict()))
                        else:
                            render(event)
                        if isinstance(event, RunFinished) and not args.json:
                            _summary(screen, event, time.perf_counter() - started, offline)
            finally:
                await agent.client.aclose()
            return EXIT_OK

        return anyio.run(go)
    return EXIT_OK  # pragma: no cover - the with block always returns


def _read_prompt(prompt: str) -> str:
    if prompt == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise _UsageError(
                "run -: reads the prompt from stdin, but stdin is a terminal; pipe it in "
                "(echo 'What is 17 * 23?' | agentkit run -) or give the prompt as an argument"
            )
        prompt = sys.stdin.read()
        if not prompt.strip():
            raise _UsageError("run -: stdin was empty; pipe a prompt in, or give it as an argument")
        return prompt.strip()
    if not prompt.strip():
        raise _UsageError("the prompt is empty; give a question, or - to read it from stdin")
    return prompt


_PROMPT = "you> "


def _cmd_chat(args: argparse.Namespace) -> int:
    screen: Screen = args.screen
    _configure_logs(args.verbose, screen)
    with ExitStack() as stack:
        agent, offline = _build_agent(args, stack)
        conversation = Conversation()
        render = Renderer(screen)
        screen.note("agentkit chat — Ctrl-C cancels the current answer, Ctrl-D quits.")

        async def go() -> int:
            current: list[anyio.CancelScope] = []

            async def watch_interrupts() -> None:
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _ in signals:
                        screen.interrupted()
                        if current:
                            current[-1].cancel()
                        else:  # waiting at the prompt: the terminal dropped the line, ask again
                            screen.note("(Ctrl-D to quit)")
                            _reprompt()

            try:
                async with agent.toolset.running(), anyio.create_task_group() as group:
                    group.start_soon(watch_interrupts)
                    while True:
                        try:
                            line = await anyio.to_thread.run_sync(_read_line, _PROMPT, abandon_on_cancel=True)
                        except EOFError:
                            screen.note("")
                            break
                        screen.prompt_shown()
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
                                            _summary(screen, event, time.perf_counter() - started, offline)
                            except AgentRunError as exc:
                                screen.note(f"[run stopped: {escape_line(str(exc))}]")
                            except AgentKitError as exc:
                                screen.note(f"[error: {type(exc).__name__}: {escape_line(str(exc))}]")
                            finally:
                                current.pop()
                        if scope.cancelled_caught:
                            screen.note("[cancelled — the conversation keeps every answered step]")
                    group.cancel_scope.cancel()
            finally:
                await agent.client.aclose()
            return EXIT_OK

        return anyio.run(go)
    return EXIT_OK  # pragma: no cover


def _read_line(prompt: str) -> str:
    return input(prompt)


def _reprompt() -> None:
    # Where input() writes its prompt: stderr on a terminal (no readline), else stdout.
    interactive = sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    stream = sys.stderr if interactive else sys.stdout
    stream.write(_PROMPT)
    stream.flush()


# --- building the agent --------------------------------------------------------------------------


def _configure_logs(verbose: int, screen: Screen) -> None:
    level = "warning" if verbose == 0 else "info" if verbose == 1 else "debug"
    configure_logging(level, format="console", stream=cast(TextIO, LogStream(screen)))


def _build_agent(args: argparse.Namespace, stack: ExitStack) -> tuple[Agent[Any, Any], bool]:
    screen: Screen = args.screen
    loaded = load_tools(args.tools, files_root=args.files_root) if args.tools or args.files_root else None
    toolset = Toolset([*(loaded.toolset if loaded else ()), *mcp_toolsets(args.mcp)])
    base_url = args.base_url or os.environ.get("ANTHROPIC_BASE_URL")
    key = os.environ.get("ANTHROPIC_API_KEY")
    offline = args.offline or (not key and not base_url)
    if offline:
        from .testing import OFFLINE_NOTICE, LocalServer, OfflineModel

        _use_offline_providers()
        server = stack.enter_context(LocalServer(policy=OfflineModel(), api_key=None))
        screen.note(OFFLINE_NOTICE)
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
    _announce_files(screen, loaded)
    agent: Agent[Any, Any] = Agent(
        client,
        model=model,
        tools=toolset,
        system=args.system,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
    )
    return agent, offline


def _announce_files(screen: Screen, loaded: LoadedTools | None) -> None:
    if loaded is not None and loaded.files_root is not None:
        screen.note(f"file tools: read-only access to {escape_line(str(loaded.files_root))}")


def _use_offline_providers() -> None:
    """Offline means no network: switch the bundled tools that call web APIs to simulated data."""
    weather = sys.modules.get("agentkit.tools.weather")
    if weather is not None and hasattr(weather, "offline"):
        weather.offline()


# --- rendering -----------------------------------------------------------------------------------


def _summary(screen: Screen, event: RunFinished, elapsed: float, offline: bool) -> None:
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
        parts.append(f"stopped by {escape_line(str(result.stopped_by_limit))}")
    if offline:
        parts.append("offline")
    screen.note(f"— {' · '.join(parts)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
