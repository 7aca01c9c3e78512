"""Ready-made tools for agentkit agents. Import the module you need; importing ``agentkit.tools`` is cheap.

- ``weather``: ``get_weather(city, units="celsius")``, the current weather (Open-Meteo, or a
  deterministic simulated provider: ``weather.offline()``)
- ``calculator``: ``calculate(expression)``, safe arithmetic on a whitelisted AST
- ``clock``: ``current_time(timezone="UTC")``, ``convert_time(time, from_timezone, to_timezone)``;
  IANA time zones, "now" is injectable (``use_clock``)
- ``http``: ``fetch_url(url, max_chars=20000)`` and ``HttpFetcher(...).fetch``, page text with SSRF
  protection, size and time limits
- ``files``: ``FileTools(root)`` with ``list_files``, ``read_file``, ``search_files``, read-only
  access confined to one directory

On the command line, ``--tools tools.weather`` is short for ``--tools agentkit.tools.weather``.

:func:`default_tools` returns the ready-to-use tool objects in one list.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    from agentkit._tool import Tool

__all__ = ["calculator", "clock", "default_tools", "files", "http", "weather"]

_SUBMODULES = frozenset({"calculator", "clock", "files", "http", "weather"})


def __getattr__(name: str) -> ModuleType:
    # Submodules load on first use, so `import agentkit.tools` pulls in neither httpx2 nor pydantic.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_tools(*, files_root: str | Path | None = None, web: bool = True) -> list[Tool[..., Any]]:
    """The standard tools: weather, calculator, clock (and ``fetch_url`` if ``web``), plus the file
    tools over ``files_root`` when given."""
    from . import calculator, clock, weather

    selected: list[Tool[..., Any]] = [
        weather.get_weather,
        calculator.calculate,
        clock.current_time,
        clock.convert_time,
    ]
    if web:
        from . import http

        selected.append(http.fetch_url)
    if files_root is not None:
        from .files import FileTools

        selected.extend(FileTools(files_root).tools())
    return selected
