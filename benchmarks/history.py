"""The history check on long histories: CPU for 10,001 messages (thinking, text and two parallel calls
per turn), checked whole, as before the first request of a run loaded from a store.

    python -m benchmarks.history
"""

from __future__ import annotations

import time
from typing import Any

from agentkit._history import check_messages, check_thinking_history, repair_history


def history(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for k in range(turns):
        calls = [{"type": "tool_use", "id": f"toolu_{k}{s}", "name": "f", "input": {}} for s in "ab"]
        thinking = {"type": "thinking", "thinking": "hm", "signature": "sig"}
        messages.append(
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "calling"}, *calls]}
        )
        results = [{"type": "tool_result", "tool_use_id": c["id"], "content": "ok"} for c in calls]
        messages.append({"role": "user", "content": results})
    return messages


def main() -> None:
    messages = history(5000)
    best = {name: float("inf") for name in ("check_messages", "check_thinking_history", "repair_history")}
    for _ in range(7):
        for name, step in (
            ("check_messages", lambda: check_messages(messages)),
            ("check_thinking_history", lambda: check_thinking_history(messages, True)),
            ("repair_history", lambda: repair_history(messages)),
        ):
            started = time.process_time()
            step()
            best[name] = min(best[name], time.process_time() - started)
    print(f"{len(messages)} messages, best of 7 (CPU):")
    for name, seconds in best.items():
        print(f"  {name:<24} {seconds * 1000:7.1f} ms  ({seconds / len(messages) * 1e6:.2f} µs/message)")


if __name__ == "__main__":
    main()
