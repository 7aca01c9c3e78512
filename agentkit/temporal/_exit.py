"""At interpreter exit, let the Temporal SDK's threads leave Python before it is finalized.

The SDK's Rust runtime completes each awaited call from one of its own threads, through
``loop.call_soon_threadsafe``. That call gives up the GIL while it wakes the loop, so the main thread can
run on, finish the program and begin finalization while the SDK's thread still waits to take the GIL back.
A thread that takes the GIL during finalization is ended by CPython, and ending a Rust thread that way
aborts the process: ``Fatal Python error: PyGILState_Release: thread state ... must be current`` after the
program's work is done (temporalio/sdk-python#300). ``atexit`` handlers run before finalization begins, so
this one waits, with the GIL released, until no thread that Python did not start is inside Python code.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time

__all__: list[str] = []

#: Longest the exit waits for foreign threads; one normally leaves within a millisecond.
EXIT_WAIT_SECONDS = 2.0


def _foreign_threads_in_python() -> list[int]:
    """Idents of threads inside Python code that neither this process's ``threading`` started nor is the
    caller: the SDK's Rust threads (a foreign thread that asked ``threading`` who it is counts as foreign)."""
    started = {t.ident for t in threading.enumerate() if not isinstance(t, threading._DummyThread)}
    return [ident for ident in sys._current_frames() if ident not in started]


def _let_foreign_threads_leave(limit: float = EXIT_WAIT_SECONDS) -> None:
    end = time.monotonic() + limit
    while _foreign_threads_in_python() and time.monotonic() < end:
        time.sleep(0.001)  # releases the GIL: the waiting thread takes it, finishes its call, lets go


atexit.register(_let_foreign_threads_leave)
