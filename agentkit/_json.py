"""JSON from the wire: one ``loads`` whose only failure is :class:`ValueError`.

``json.loads`` raises :class:`RecursionError` on deeply nested input (``[[[[...`` 2,000 deep), which
would otherwise escape the library raw; here it becomes a ``ValueError`` like any other invalid JSON,
so every caller that turns ``ValueError`` into a :class:`~agentkit.ProtocolError` covers it. Nesting
deeper than :data:`MAX_JSON_DEPTH` is refused too: pydantic cannot serialise a Message nested past
about 250 levels, so such an answer would parse today and break the conversation's next request.
"""

from __future__ import annotations

import json
from typing import Any

#: The deepest nesting (objects and arrays) accepted in a JSON answer or event.
MAX_JSON_DEPTH = 128


def loads(data: str | bytes) -> Any:
    """Parse JSON; invalid, or nested deeper than :data:`MAX_JSON_DEPTH`, raises :class:`ValueError`."""
    try:
        value = json.loads(data)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply to parse") from exc
    # Depth d needs 2d characters and d opening brackets: only a body with many of them needs the walk.
    if len(data) <= 2 * MAX_JSON_DEPTH:
        return value
    if isinstance(data, str):
        brackets = data.count("{") + data.count("[")
    else:
        brackets = data.count(b"{") + data.count(b"[")
    if brackets > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels (agentkit._json.MAX_JSON_DEPTH)")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False
