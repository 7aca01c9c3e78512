"""Profile agentkit on scenario 1 (JSON) or 3 (``--stream``): sequential runs against the local server
(separate process, 0 ms latency, T=3 K=2), logging at "warning"; or with ``--concurrent N`` on
scenario 2's workload (N concurrent runs, 200 ms latency, T=3 K=3, tools sleeping 50 ms), repeated
``--runs // N`` times (at least once).

    python -m benchmarks.profile [--stream] [--runs 300] [--concurrent 200] [--cprofile]

Uses pyinstrument when installed (``bench`` extra), else cProfile (top functions by self time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys

from . import _impls, _worker
from .run import Server


async def _runs(impl: _impls.Impl, runs: int, concurrent: int = 0) -> None:
    if not concurrent:
        for _ in range(runs):
            await impl.run()
        return
    for _ in range(max(1, runs // concurrent)):
        await asyncio.gather(*(impl.run() for _ in range(concurrent)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=0, help="N concurrent runs (scenario 2)")
    parser.add_argument("--impl", default="agentkit")
    parser.add_argument("--cprofile", action="store_true", help="use cProfile even if pyinstrument is there")
    args = parser.parse_args(argv)
    _worker._logging_off()
    concurrent = args.concurrent
    if concurrent:
        _impls.TOOL_SLEEP = 0.05
    srv = Server(latency=0.2 if concurrent else 0.0, tool_turns=3, parallel=3 if concurrent else 2)
    try:

        async def go() -> None:
            impl = _impls.make_impl(args.impl, srv.url, stream=args.stream)
            await _runs(impl, concurrent or 5, concurrent)
            try:
                if args.cprofile:
                    raise ImportError
                from pyinstrument import Profiler
            except ImportError:
                profile = cProfile.Profile()
                profile.enable()
                await _runs(impl, args.runs, concurrent)
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(30)
            else:
                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
                await _runs(impl, args.runs, concurrent)
                profiler.stop()
                sys.stdout.write(profiler.output_text(unicode=True, color=False, show_all=False))
            await impl.aclose()

        asyncio.run(go())
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
