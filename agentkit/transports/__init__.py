"""HTTP transports for :class:`agentkit.Client` beyond httpx2's own.

``AiohttpTransport`` (``pip install 'agentkit[aiohttp]'``) runs requests on aiohttp under the same
``httpx2.AsyncClient``; ``Client(http="aiohttp")`` makes one sized and configured from the Client's
options. Importing this package does not import aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aiohttp import AiohttpTransport

__all__ = ["AiohttpTransport"]


def __getattr__(name: str) -> Any:
    if name == "AiohttpTransport":
        from .aiohttp import AiohttpTransport

        return AiohttpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
