"""``python -m agentkit.testing serve``: run the local Messages API server in the foreground.

The first stdout line is the base URL (flushed), so a parent process can read it; the server runs until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._policies import EchoPolicy, Policy, WeatherWorkload
from ._server import LocalServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agentkit.testing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Messages API on 127.0.0.1 until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    serve.add_argument("--flavour", choices=["anthropic", "poyo", "toapis"], default="anthropic")
    serve.add_argument("--api-key", default="sk-test", help="accepted key ('' accepts any key)")
    serve.add_argument(
        "--latency", type=float, default=0.0, help="seconds from each request's arrival to its answer"
    )
    serve.add_argument("--policy", choices=["weather", "echo"], default="weather")
    serve.add_argument("--tool-turns", "-T", type=int, default=2, help="weather: tool turns before answering")
    serve.add_argument("--parallel", "-K", type=int, default=3, help="weather: parallel calls per tool turn")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    policy: Policy = (
        WeatherWorkload(tool_turns=args.tool_turns, parallel=args.parallel)
        if args.policy == "weather"
        else EchoPolicy()
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = LocalServer(
        policy,
        flavour=args.flavour,
        api_key=args.api_key or None,
        latency=args.latency,
        host=args.host,
        port=args.port,
    )
    with server:
        sys.stdout.write(server.base_url + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
