"""How the ``agentkit`` command finds the tools named by ``--tools`` (and ``tools show``).

- A ``.py`` file, or any name with a path separator (``./my_tools.py``, ``path/to/file.py``), is loaded
  from that file; its directory goes on ``sys.path`` so it can import its neighbours.
- Anything else is a module name, imported with the current directory first on ``sys.path`` (as
  ``python -m`` does): ``my_tools`` finds ``./my_tools.py``.
- ``tools.NAME`` is the user's own module when one is importable (``./tools/NAME.py``), else the
  bundled ``agentkit.tools.NAME`` (calculator, clock, files, http, weather). The current directory
  goes on ``sys.path`` only when a module other than a bundled one is imported.
- The bundled file tools (``tools.files``) are a ``FileTools`` object, not module-level tools: they get
  read-only access to ``--files-root`` (default: the current directory).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ._exceptions import ToolDefinitionError
from ._tool import Tool
from ._toolset import Toolset

__all__ = ["BUNDLED", "LoadedTools", "load_tools", "mcp_toolsets"]

BUNDLED = ("calculator", "clock", "files", "http", "weather")
_FILES_MODULE = "agentkit.tools.files"

RULE = (
    "MODULE_OR_FILE is a .py file (./my_tools.py, path/to/tools.py) or a module importable from the "
    "current directory (my_tools, pkg.tools). tools.NAME is your own tools/NAME.py when the current "
    f"directory has one, else the bundled agentkit.tools.NAME ({', '.join(BUNDLED)}; agentkit.tools.NAME "
    "always means the bundled one). tools.files gets "
    "read-only access to --files-root (default: the current directory)."
)


class ToolLoadError(Exception):
    """A tools source that cannot be used; the message says which and why."""


class LoadedTools:
    """The tools found, and the directory the file tools may read (``None`` without them)."""

    def __init__(self, toolset: Toolset, files_root: Path | None) -> None:
        self.toolset = toolset
        self.files_root = files_root


def load_tools(sources: Sequence[str], *, files_root: str | None = None) -> LoadedTools:
    """Import every source and collect its tools (see the module docstring for the rules)."""
    collected: list[Tool[..., Any]] = []
    root: Path | None = None
    for index, source in enumerate(sources):
        module = _import_source(source, index)
        if module.__name__ == _FILES_MODULE:
            file_tools = _file_tools(module, files_root)
            root = file_tools.root
            collected.extend(file_tools.tools())
            continue
        found = Toolset.from_module(module)
        if not len(found):
            raise ToolLoadError(f"{source}: no @tool functions found (decorate them with agentkit.tool)")
        collected.extend(found)
    if files_root is not None and root is None:
        raise ToolLoadError(
            f"--files-root {files_root} is only used by the file tools: add --tools tools.files"
        )
    return LoadedTools(Toolset(collected), root)


def _file_tools(module: ModuleType, files_root: str | None) -> Any:
    where = files_root if files_root is not None else os.getcwd()
    try:
        return module.FileTools(where)
    except (OSError, RuntimeError) as exc:  # missing, not a directory, unreadable
        what = f"--files-root {files_root}" if files_root is not None else f"the current directory {where}"
        raise ToolLoadError(f"{what} cannot be used by the file tools: {type(exc).__name__}: {exc}") from None


def _import_source(source: str, index: int) -> ModuleType:
    try:
        if source.endswith(".py") or "/" in source or os.sep in source or Path(source).is_file():
            return _import_file(source, index)
        return _import_module(source)
    except (ToolLoadError, ToolDefinitionError):
        raise
    except Exception as exc:
        raise ToolLoadError(f"cannot import tools module {source!r}: {type(exc).__name__}: {exc}") from exc


def _import_file(source: str, index: int) -> ModuleType:
    path = Path(source)
    if path.is_dir():
        raise ToolLoadError(f"{source} is a directory: name a .py file in it, or a module")
    if not path.is_file():
        raise ToolLoadError(f"tools file not found: {source}")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"agentkit_user_tools_{index}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolLoadError(f"cannot load tools file {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic models look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_module(name: str) -> ModuleType:
    cwd = os.getcwd()
    parent, _, child = name.partition(".")
    if parent == "tools" and child in BUNDLED and not _user_has(parent, child, cwd):
        return importlib.import_module(f"agentkit.tools.{child}")
    # A user module: the current directory goes first on sys.path, as with `python -m` (the console
    # script starts without it). Only now, so a run with bundled tools alone imports nothing from it.
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name != name and not name.startswith(exc.name + "."):
            raise  # the module was found, but something it imports was not
        hint = ""
        if parent == "tools":
            hint = f" (the bundled tools are {', '.join('tools.' + b for b in BUNDLED)})"
        raise ToolLoadError(
            f"cannot import tools module {name!r}: {exc}; looked in the current directory {cwd} "
            f"and the installed packages{hint}"
        ) from exc


def _user_has(package: str, child: str, cwd: str) -> bool:
    """Whether ``package.child`` is importable (the current directory first), found without running
    any of the package's code."""
    module = sys.modules.get(package)
    if module is not None:
        spec = module.__spec__
    else:
        spec = importlib.machinery.PathFinder.find_spec(package, [cwd]) or importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:  # no such package, or a plain module
        return False
    locations = list(spec.submodule_search_locations)
    return importlib.machinery.PathFinder.find_spec(child, locations) is not None


def mcp_toolsets(specs: Sequence[str]) -> list[Any]:
    """An ``MCPToolset`` per ``--mcp``: an ``http(s)://`` URL (streamable HTTP), else a command line."""
    if not specs:
        return []
    try:
        from .mcp import MCPToolset
    except ImportError as exc:
        raise ToolLoadError(f"--mcp needs the MCP SDK: pip install 'agentkit[mcp]' ({exc})") from exc
    for spec in specs:
        scheme = spec.split("://", 1)[0] if "://" in spec.split(" ", 1)[0] else None
        if scheme is not None and scheme not in ("http", "https"):
            raise ToolLoadError(
                f"--mcp {spec}: a URL must be http(s)://... (streamable HTTP); otherwise give a command line"
            )
    is_url = [("://" in spec.split(" ", 1)[0]) for spec in specs]
    return [MCPToolset(url=s) if url else MCPToolset(stdio=s) for s, url in zip(specs, is_url, strict=True)]
