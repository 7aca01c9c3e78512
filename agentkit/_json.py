"""JSON from the wire: one ``loads`` whose only failure is :class:`ValueError`.

``json.loads`` raises :class:`RecursionError` on deeply nested input (``[[[[...`` 2,000 deep), which
would otherwise escape the library raw; here it becomes a ``ValueError`` like any other invalid JSON,
so every caller that turns ``ValueError`` into a :class:`~agentkit.ProtocolError` covers it.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes) -> Any:
    """Parse JSON; invalid *or too deeply nested* input raises :class:`ValueError`."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply to parse") from exc
