"""Read-only file tools confined to one directory: list, read and search text files.

Every path the model gives is relative to ``root``. ``..`` components, absolute paths and NUL bytes
are refused with a ToolError; symlinks are followed only while they stay inside the root. Paths are
opened component by component relative to a directory descriptor with ``O_NOFOLLOW`` (see
``_confined``), so another process writing inside ``root`` cannot swap a checked directory for a
symlink that leads out; everything is opened non-blocking and anything but a regular file (a FIFO, a
device) is refused after ``fstat``. Binary files are skipped when listing contents and searching, and
refused when read. Errors name the path relative to the root, never the host path. POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from pydantic import Field

from agentkit._exceptions import ConfigurationError, ToolError
from agentkit._tool import Tool, tool

from . import _confined

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
        if not _confined.supported():
            raise ConfigurationError(
                "FileTools needs a POSIX system (open relative to a directory descriptor, O_NOFOLLOW)."
            )
        resolved = Path(root).expanduser().resolve(strict=True)
        if not resolved.is_dir():
            raise NotADirectoryError(f"FileTools root is not a directory: {resolved}")
        self.root = resolved
        self.max_file_bytes = max_file_bytes

    def tools(self) -> list[Tool[..., Any]]:
        """The bound tools, ready to hand to an agent."""
        return [self.list_files, self.read_file, self.search_files]

    # -- path safety -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _open(self, path: str, *, kind: str = "any") -> Iterator[tuple[int, os.stat_result, str]]:
        """Open a model-given relative path under root: ``(fd, fstat, relative display path)``.

        ``kind`` "file" or "dir" refuses anything else; "any" still refuses FIFOs, devices, sockets.
        """
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
            fd, canonical = _confined.open_under(self.root, parts)
        except _confined.Escape:
            raise ToolError(
                f"{path!r} leads outside the project root (through a symlink); it is not accessible."
            ) from None
        except _confined.Special:
            kind_name = "directory" if kind == "dir" else "regular file"
            raise ToolError(f"{path!r} is not a {kind_name} (a FIFO, socket or device).") from None
        except _confined.TooManyLinks:
            raise ToolError(f"{path!r} cannot be opened (too many levels of symbolic links).") from None
        except OSError as exc:
            raise ToolError(_os_error_message(path, exc)) from None
        try:
            info = os.fstat(fd)
            if kind == "file" and not stat.S_ISREG(info.st_mode):
                raise ToolError(
                    f"{path!r} is not a regular file."
                    + (" Use list_files for directories." if stat.S_ISDIR(info.st_mode) else "")
                )
            if kind == "dir" and not stat.S_ISDIR(info.st_mode):
                raise ToolError(f"{path!r} is not a directory.")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise ToolError(f"{path!r} is not a regular file or directory.")
            yield fd, info, "/".join(canonical) or "."
        finally:
            os.close(fd)

    def _files_under(self, dir_fd: int, display: str) -> Iterator[tuple[str, tuple[str, ...], int, str]]:
        """``(display path, parts, parent fd, name)`` of the entries under an open directory."""
        prefix = () if display == "." else tuple(display.split("/"))
        for parts, parent, name in _confined.walk(dir_fd, prefix, _SKIP_DIRS):
            yield "/".join(parts), parts, parent, name

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
        lines: list[str] = []
        extra = 0
        with self._open(path, kind="dir") as (dir_fd, _info, where):
            for display, parts, parent, name in self._files_under(dir_fd, where):
                target = display if "/" in pattern else name
                if not fnmatch.fnmatchcase(target, pattern):
                    continue
                if len(lines) >= _MAX_LIST:
                    extra += 1
                    continue
                opened = _confined.open_entry(self.root, parts, parent, name)
                if opened is None:
                    continue  # not a regular file, or a symlink leading out
                os.close(opened[0])
                lines.append(f"{display} ({opened[1].st_size} bytes)")
        if not lines:
            return f"No files matching {pattern!r} under {where!r}."
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
        max_chars = max(1, int(max_chars))
        with self._open(path, kind="file") as (fd, info, _where):
            data = self._read(fd, path, min(self.max_file_bytes, max_chars * 4 + 4))
        if _is_binary(data[:_SNIFF_BYTES]):
            raise ToolError(f"{path!r} is a binary file; only text files can be read.")
        text = data.decode("utf-8", errors="replace")
        size = info.st_size
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
        max_results = max(1, int(max_results))
        hits: list[str] = []
        note = ""
        with self._open(path) as (fd, info, where):
            if stat.S_ISREG(info.st_mode):
                if info.st_size <= self.max_file_bytes:
                    data = self._read(fd, path, self.max_file_bytes)
                    self._search_one(data, where, needle, hits, max_results)
            else:
                scanned = 0
                for display, parts, parent, name in self._files_under(fd, where):
                    if len(hits) >= max_results:
                        break
                    scanned += 1
                    if scanned > _MAX_SCAN_FILES:
                        note = f"[stopped after scanning {_MAX_SCAN_FILES} files; narrow the path]"
                        break
                    opened = _confined.open_entry(self.root, parts, parent, name)
                    if opened is None:
                        continue
                    entry_fd, entry_info = opened
                    try:
                        if entry_info.st_size > self.max_file_bytes:
                            continue
                        data = _confined.read_fd(entry_fd, self.max_file_bytes)
                    except OSError:
                        continue
                    finally:
                        os.close(entry_fd)
                    self._search_one(data, display, needle, hits, max_results)
        if len(hits) >= max_results:
            note = f"[stopped at {max_results} results; narrow the query or path]"
        if note:
            hits.append(note)
        if not hits:
            return f"No matches for {query!r} under {where!r}."
        return "\n".join(hits)

    @staticmethod
    def _search_one(data: bytes, display: str, needle: str, hits: list[str], max_results: int) -> None:
        """Append ``display:line: text`` for each matching line of one file, up to ``max_results``."""
        if _is_binary(data[:_SNIFF_BYTES]):
            return
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if needle in line.casefold():
                snippet = line.strip()
                if len(snippet) > _MAX_LINE_CHARS:
                    snippet = snippet[:_MAX_LINE_CHARS] + "..."
                hits.append(f"{display}:{number}: {snippet}")
                if len(hits) >= max_results:
                    return

    @staticmethod
    def _read(fd: int, path: str, limit: int) -> bytes:
        try:
            return _confined.read_fd(fd, limit)
        except OSError as exc:
            raise ToolError(_os_error_message(path, exc)) from None


def _os_error_message(path: str, exc: OSError) -> str:
    """A ToolError message for an OSError: the model's own (relative) path, never the host path."""
    if exc.errno == errno.ENOENT:
        return f"{path!r} does not exist. Use list_files to see what is there."
    if exc.errno == errno.ENOTDIR:
        return f"{path!r} does not exist: a part of it is a file, not a directory."
    return f"{path!r} cannot be opened ({exc.strerror or type(exc).__name__})."


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
