"""A program that used Temporal exits cleanly (agentkit/temporal/_exit.py, temporalio/sdk-python#300).

The SDK completes an awaited call from its own Rust thread through ``loop.call_soon_threadsafe``, which
gives up the GIL while it wakes the loop. If that thread is slow to take the GIL back (the OS preempted
it), the main thread finishes the program and CPython ends the thread during finalization, which aborts
the process after all its work is done. The script below widens that moment to 50 ms after the last
call (the dev server's shutdown), the way a busy machine does; without the exit hook the process dies
with SIGABRT or SIGSEGV on nearly every run, with it it exits 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.temporal

SCRIPT = textwrap.dedent(
    """
    import asyncio, threading, time
    from asyncio import selector_events

    slow = False
    wake = selector_events.BaseSelectorEventLoop._write_to_self

    def preempted_after_waking(self):
        wake(self)
        if slow and threading.current_thread() is not threading.main_thread():
            time.sleep(0.05)  # the SDK's thread, off the GIL, just after it woke the loop

    selector_events.BaseSelectorEventLoop._write_to_self = preempted_after_waking

    from agentkit.temporal import dev_server

    async def main():
        global slow
        async with dev_server() as env:
            print("workflows:", await env.client.count_workflows())
            slow = True  # from here on: the dev server's shutdown
        print("done", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_the_process_exits_cleanly_when_the_sdk_thread_is_late_to_leave(attempt: int) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-2000:]}"
    assert "workflows: WorkflowExecutionCount(count=0" in done.stdout
    assert done.stdout.rstrip().endswith("done")
    assert "Fatal Python error" not in done.stderr
