"""Read-only file tools confined to one directory: list, read and search text files.

Every path the model gives is relative to ``root``; it is resolved (symlinks followed) and must stay
inside the resolved root. ``..`` components, absolute paths, NUL bytes and symlinks (files or
directories) that lead outside are refused with a ToolError. Binary files are skipped when listing
contents and searching, and refused when read.

Residual risk: a path is checked, then opened. Another process able to write inside ``root`` could
swap a checked directory for a symlink in between (a TOCTOU race); the file is re-checked after
opening (``os.fstat`` against the resolved path) to narrow that window, not close it.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from pydantic import Field

from agentkit._exceptions import ToolError
from agentkit._tool import Tool, tool

__all__ = ["FileTools"]

_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".mypy_cache", ".tox"})
_SNIFF_BYTES = 8192
_MAX_LIST = 1000
_MAX_SCAN_FILES = 5000
_MAX_LINE_CHARS = 200
# fnmatch's translation is quadratic in unclosed '[' (50,000 of them: about a minute, in a worker
# thread that cannot be cancelled); a real glob is short and has few wildcards.
_MAX_PATTERN_CHARS = 256
_MAX_PATTERN_WILDCARDS = 16
_MAX_QUERY_CHARS = 1000


class FileTools:
    """Tools over the text files under ``root``: ``list_files``, ``read_file``, ``search_files``.

    Args:
        root: The directory the tools may see; nothing outside it is reachable.
        max_file_bytes: Files larger than this are not searched, and only this much of one is read.
    """

    def __init__(self, root: str | Path, *, max_file_bytes: int = 2_000_000) -> None:
        resolved = Path(root).expanduser().resolve(strict=True)
        if not resolved.is_dir():
            raise NotADirectoryError(f"FileTools root is not a directory: {resolved}")
        self.root = resolved
        self.max_file_bytes = max_file_bytes

    def tools(self) -> list[Tool[..., Any]]:
        """The bound tools, ready to hand to an agent."""
        return [self.list_files, self.read_file, self.search_files]

    # -- path safety -----------------------------------------------------------------------------

    def _resolve(self, path: str, *, kind: str = "any") -> Path:
        """Resolve a model-given relative path to a real path under root, or raise ToolError."""
        if not isinstance(path, str):
            raise ToolError("path must be a string.")
        if "\x00" in path:
            raise ToolError("The path contains a NUL byte.")
        text = path.strip() or "."
        if (
            PurePosixPath(text).is_absolute()
            or PureWindowsPath(text).is_absolute()
            or PureWindowsPath(text).drive
            or text.startswith(("~", "\\"))
        ):
            raise ToolError(
                f"{path!r} is absolute; give a path relative to the project root, like 'src/main.py'."
            )
        parts = text.replace("\\", "/").split("/")
        if ".." in parts:
            raise ToolError(f"{path!r} uses '..'; paths must stay inside the project root.")
        try:
            resolved = (self.root / text).resolve(strict=True)
        except FileNotFoundError:
            raise ToolError(f"{path!r} does not exist. Use list_files to see what is there.") from None
        except (OSError, RuntimeError) as exc:  # symlink loops, permissions, name too long
            raise ToolError(f"{path!r} cannot be opened ({type(exc).__name__}).") from None
        if not self._inside(resolved):
            raise ToolError(
                f"{path!r} leads outside the project root (through a symlink); it is not accessible."
            )
        if kind == "file" and not resolved.is_file():
            raise ToolError(
                f"{path!r} is not a regular file."
                + (" Use list_files for directories." if resolved.is_dir() else "")
            )
        if kind == "dir" and not resolved.is_dir():
            raise ToolError(f"{path!r} is not a directory.")
        return resolved

    def _inside(self, resolved: Path) -> bool:
        return resolved == self.root or resolved.is_relative_to(self.root)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def _walk(self, start: Path) -> Any:
        """Yield (display path, real path) of files under ``start``, never leaving root.

        Symlinked directories are not descended into (no loops, no escapes); symlinked files are
        included only when their target is inside root.
        """
        for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                candidate = Path(dirpath) / name
                display = candidate.relative_to(self.root).as_posix()
                if candidate.is_symlink():
                    try:
                        target = candidate.resolve(strict=True)
                    except (OSError, RuntimeError):
                        continue
                    if not self._inside(target) or not target.is_file():
                        continue
                    yield display, target
                elif candidate.is_file():
                    yield display, candidate

    # -- tools -----------------------------------------------------------------------------------

    @tool
    def list_files(self, path: str = ".", pattern: str = "*") -> str:
        """List the files under a directory of the project, recursively, with their sizes.

        Args:
            path: Directory relative to the project root; "." is the root itself.
            pattern: Glob to filter by, e.g. "*.py". Matched against the file name, or against the
                relative path when it contains "/" (e.g. "src/*.py"). At most 256 characters and 16
                wildcards.
        """
        pattern = _checked_pattern(pattern)
        start = self._resolve(path, kind="dir")
        lines: list[str] = []
        extra = 0
        for display, real in self._walk(start):
            target = display if "/" in pattern else display.rsplit("/", 1)[-1]
            if not fnmatch.fnmatchcase(target, pattern):
                continue
            if len(lines) >= _MAX_LIST:
                extra += 1
                continue
            try:
                size = real.stat().st_size
            except OSError:
                continue
            lines.append(f"{display} ({size} bytes)")
        if not lines:
            return f"No files matching {pattern!r} under {self._relative(start)!r}."
        if extra:
            lines.append(f"... and {extra} more; narrow the path or pattern.")
        return "\n".join(lines)

    @tool
    def read_file(
        self,
        path: str,
        max_chars: Annotated[int, Field(ge=100, le=200_000)] = 20_000,
    ) -> str:
        """Read a text file of the project.

        Args:
            path: File path relative to the project root, e.g. "README.md".
            max_chars: Maximum number of characters to return; longer files are truncated.
        """
        resolved = self._resolve(path, kind="file")
        max_chars = max(1, int(max_chars))
        data = self._read_bytes(resolved, min(self.max_file_bytes, max_chars * 4 + 4))
        if _is_binary(data[:_SNIFF_BYTES]):
            raise ToolError(f"{path!r} is a binary file; only text files can be read.")
        text = data.decode("utf-8", errors="replace")
        size = resolved.stat().st_size
        if len(text) > max_chars or len(data) < size:
            shown = text[:max_chars]
            return shown + f"\n\n[truncated: showing the first {len(shown)} characters of a {size}-byte file]"
        return text

    @tool
    def search_files(
        self,
        query: str,
        path: str = ".",
        max_results: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> str:
        """Search the project's text files for a string (case-insensitive) and list matching lines.

        Args:
            query: The text to look for (plain text, not a regular expression).
            path: Directory (or single file) relative to the project root to search in.
            max_results: Maximum number of matching lines to return.
        """
        if not isinstance(query, str) or not query.strip():
            raise ToolError("The search query is empty; give some text to look for.")
        if "\x00" in query:
            raise ToolError("The query contains a NUL byte.")
        if len(query) > _MAX_QUERY_CHARS:
            raise ToolError(
                f"query is {len(query)} characters long; at most {_MAX_QUERY_CHARS} are accepted "
                "(search for a distinctive part of the line)."
            )
        needle = query.casefold()
        start = self._resolve(path)
        max_results = max(1, int(max_results))
        if start.is_file():
            files: Any = [(self._relative(start), start)]
        else:
            files = self._walk(start)
        hits: list[str] = []
        scanned = 0
        for display, real in files:
            scanned += 1
            if scanned > _MAX_SCAN_FILES:
                hits.append(f"[stopped after scanning {_MAX_SCAN_FILES} files; narrow the path]")
                break
            try:
                if real.stat().st_size > self.max_file_bytes:
                    continue
                data = self._read_bytes(real, self.max_file_bytes)
            except (OSError, ToolError):
                continue
            if _is_binary(data[:_SNIFF_BYTES]):
                continue
            for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                if needle in line.casefold():
                    snippet = line.strip()
                    if len(snippet) > _MAX_LINE_CHARS:
                        snippet = snippet[:_MAX_LINE_CHARS] + "..."
                    hits.append(f"{display}:{number}: {snippet}")
                    if len(hits) >= max_results:
                        hits.append(f"[stopped at {max_results} results; narrow the query or path]")
                        return "\n".join(hits)
        if not hits:
            return f"No matches for {query!r} under {self._relative(start)!r}."
        return "\n".join(hits)

    def _read_bytes(self, resolved: Path, limit: int) -> bytes:
        """Open a checked path without following a final symlink and read at most ``limit`` bytes."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(resolved, flags)
        except OSError as exc:
            raise ToolError(f"{self._relative(resolved)!r} cannot be opened ({exc.strerror}).") from None
        with os.fdopen(fd, "rb") as handle:
            opened = os.fstat(handle.fileno())
            expected = resolved.stat()
            if (opened.st_dev, opened.st_ino) != (expected.st_dev, expected.st_ino):
                raise ToolError("The file changed while it was being opened; try again.")
            return handle.read(limit)


def _checked_pattern(pattern: str) -> str:
    """The glob, stripped, or a ToolError naming the limit it breaks."""
    if not isinstance(pattern, str):
        raise ToolError("pattern must be a string.")
    if "\x00" in pattern:
        raise ToolError("The pattern contains a NUL byte.")
    pattern = pattern.strip() or "*"
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise ToolError(
            f"pattern is {len(pattern)} characters long; at most {_MAX_PATTERN_CHARS} are accepted "
            "(a glob such as '*.py' or 'src/*.md')."
        )
    wildcards = sum(pattern.count(ch) for ch in "*?[")
    if wildcards > _MAX_PATTERN_WILDCARDS:
        raise ToolError(
            f"pattern has {wildcards} wildcards ('*', '?' or '['); at most {_MAX_PATTERN_WILDCARDS} "
            "are accepted (a glob such as '*.py' or 'src/*.md')."
        )
    return pattern


def _is_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is fine; anything else is not UTF-8.
        if exc.start < len(sample) - 4:
            control = sum(1 for b in sample if b < 9 or 13 < b < 32)
            return control > len(sample) // 10
    return False
