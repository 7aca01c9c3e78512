"""`agentkit chat`: Ctrl-C cancels the current answer and the conversation goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLOW_TOOLS = Path(__file__).parent / "data" / "slow_tools.py"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_chat_ctrl_c_cancels_the_turn_and_keeps_the_conversation() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkit", "chat", "--tools", str(SLOW_TOOLS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("weather in Paris?\n")
    proc.stdin.flush()
    line = proc.stdout.readline()  # blocks until the tool call is shown
    assert "get_weather" in line
    assert "Paris" in line
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # the 30 s tool is running: cancel this turn only
    proc.stdin.write("\n")
    proc.stdin.close()  # then Ctrl-D
    assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "[cancelled — the conversation keeps every answered step]" in err
