"""SSE decoding cost: one long line (linear, not quadratic) and ordinary streams (no regression).

    python -m benchmarks.sse_decoder [--old PATH_TO_AN_OLDER_agentkit/_sse.py]

- ``long line``: ``data: `` plus N MB of one unterminated line fed in 64 KiB chunks, then ``\\n\\n``
  (the decoder must not re-scan the pending line for every chunk: time grows with N, not N²);
- ``fixtures``: every wire fixture decoded and accumulated into a Message, 200 times (CPU per stream).

``--old`` loads another version of the module (e.g. ``git show REV:agentkit/_sse.py > /tmp/old.py``)
and measures it side by side.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import agentkit._sse

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "spec" / "fixtures"


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("agentkit._sse_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def long_line(module: ModuleType, megabytes: int) -> str:
    decoder = module.SSEDecoder()
    piece = b"x" * 65536
    start = time.perf_counter()
    try:
        list(decoder.feed(b"data: "))
        for _ in range(megabytes * 2**20 // len(piece)):
            list(decoder.feed(piece))
        list(decoder.feed(b"\n\n"))
    except agentkit.AgentKitError as exc:  # past the line cap: say so
        return f"{time.perf_counter() - start:.3f} s ({type(exc).__name__})"
    return f"{time.perf_counter() - start:.3f} s"


def fixtures(module: ModuleType, rounds: int = 200) -> str:
    streams = [p.read_bytes() for p in sorted(FIXTURES.glob("*.sse"))]
    start = time.process_time()
    for _ in range(rounds):
        for data in streams:
            decoder = module.SSEDecoder()
            accumulator = module.MessageAccumulator()
            try:
                for event, payload in decoder.feed(data):
                    accumulator.feed_sse(event, payload)
                accumulator.message()
            except agentkit.AgentKitError:
                pass
    per = (time.process_time() - start) / (rounds * len(streams))
    return f"{per * 1e6:.1f} µs/stream"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", help="another version of agentkit/_sse.py to compare")
    args = parser.parse_args()
    versions = {"current": agentkit._sse}
    if args.old:
        versions["old"] = load(args.old)
    print("| case | " + " | ".join(versions) + " |")
    print("|---|" + "---|" * len(versions))
    for megabytes in (4, 8, 15):
        row = [long_line(m, megabytes) for m in versions.values()]
        print(f"| {megabytes} MB line, 64 KiB chunks | " + " | ".join(row) + " |")
    print("| fixtures, decode + accumulate | " + " | ".join(fixtures(m) for m in versions.values()) + " |")


if __name__ == "__main__":
    main()
