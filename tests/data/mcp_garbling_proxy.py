"""A stdio MCP server that sends invalid JSON-RPC mid-session: the demo server behind a proxy that puts
a line of garbage (and a JSON-RPC response to no request) before each answer carrying "after garbage"."""

import subprocess
import sys
import threading
from pathlib import Path

child = subprocess.Popen(
    [sys.executable, str(Path(__file__).with_name("mcp_demo_server.py"))],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
)
assert child.stdin is not None and child.stdout is not None


def upstream() -> None:
    for line in sys.stdin.buffer:
        child.stdin.write(line)
        child.stdin.flush()
    child.stdin.close()


threading.Thread(target=upstream, daemon=True).start()
for line in child.stdout:
    if b"after garbage" in line:
        sys.stdout.buffer.write(b"}{ this is not JSON-RPC\n")
        sys.stdout.buffer.write(b'{"jsonrpc": "2.0", "id": 987654, "result": {}}\n')
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
child.wait()
