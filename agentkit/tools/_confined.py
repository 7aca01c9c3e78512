"""Open paths under a root directory so that no component can be swapped for a symlink that leads out.

Every component is opened relative to its parent's file descriptor (``openat``) with ``O_NOFOLLOW``
(and ``O_DIRECTORY`` for directories), so what was checked is what gets opened. A symlink met on the
way is read (``readlinkat``) and resolved by hand, against the root, and refused if it leads outside.
Everything is opened ``O_NONBLOCK``, so a FIFO swapped in cannot block the open; callers ``fstat`` the
descriptor and refuse anything that is not a regular file or directory.

POSIX only (``dir_fd`` support and ``O_NOFOLLOW``/``O_DIRECTORY``): see :func:`supported`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "Entry",
    "Escape",
    "Special",
    "TooManyLinks",
    "open_entry",
    "open_under",
    "read_fd",
    "supported",
    "walk",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_ANY_FLAGS = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC
_DIR_FLAGS = _ANY_FLAGS | _O_DIRECTORY
# What openat gives for a symlink under O_NOFOLLOW: ELOOP (Linux, macOS), EMLINK (FreeBSD), and
# ENOTDIR when O_DIRECTORY is also set (Linux).
_MAYBE_LINK = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})
_MAX_LINKS = 40  # as the kernel's own limit
_MAX_DEPTH = 64  # directories deeper than this are not walked (one descriptor per level)


class Escape(Exception):
    """The path leads outside the root (``..`` above it, or a symlink pointing out)."""


class TooManyLinks(Exception):
    """More than 40 symlinks on the way: a loop, most likely."""


class Special(Exception):
    """The path names a FIFO, socket or device: never opened (opening one can block or act)."""


def supported() -> bool:
    """Whether this platform can open relative to a directory descriptor without following links."""
    fd_calls = os.open in os.supports_dir_fd and os.scandir in os.supports_fd
    return bool(_O_NOFOLLOW and _O_DIRECTORY and fd_calls)


def open_under(root: Path, parts: Sequence[str]) -> tuple[int, tuple[str, ...]]:
    """Open ``root/parts...`` (read-only, non-blocking) without ever leaving ``root``.

    Returns the descriptor (the caller closes it) and the canonical parts relative to the root (after
    symlinks). Raises :class:`Escape`, :class:`TooManyLinks` or ``OSError`` (``ENOENT``, ``ENOTDIR``,
    ``EACCES``, ...).
    """
    root_fd = os.open(root, _DIR_FLAGS & ~_O_NOFOLLOW)  # the root itself is the operator's choice
    stack: list[int] = [root_fd]  # descriptors of the directories walked so far
    names: list[str] = []  # their names, relative to the root
    todo = [p for p in reversed(parts)]
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not names:
                    raise Escape
                os.close(stack.pop())
                names.pop()
                continue
            last = not any(p not in ("", ".") for p in todo)
            try:
                if last and _is_special(os.stat(name, dir_fd=stack[-1], follow_symlinks=False)):
                    raise Special  # if one is swapped in after this look, O_NONBLOCK + fstat catch it
                fd = os.open(name, _ANY_FLAGS if last else _DIR_FLAGS, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno not in _MAYBE_LINK:
                    raise
                try:
                    target = os.readlink(name, dir_fd=stack[-1])
                except OSError as link_exc:
                    if link_exc.errno == errno.EINVAL:  # not a symlink after all: a file on the way
                        raise exc from None
                    raise
                links += 1
                if links > _MAX_LINKS:
                    raise TooManyLinks from None
                if os.path.isabs(target):
                    inside = _inside_parts(root, target)
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                    todo.extend(reversed(inside))
                else:
                    todo.extend(reversed(target.split("/")))
                continue
            if last:
                return fd, (*names, name)
            stack.append(fd)
            names.append(name)
        return os.dup(stack[-1]), tuple(names)
    finally:
        for fd in stack:
            os.close(fd)


def _is_special(info: os.stat_result) -> bool:
    return not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode))


def _inside_parts(root: Path, target: str) -> list[str]:
    """The parts of an absolute symlink target relative to ``root``, or :class:`Escape`."""
    base = str(root).rstrip("/") + "/"
    if target.rstrip("/") == base.rstrip("/"):
        return []
    if not target.startswith(base):
        raise Escape
    return target[len(base) :].split("/")


Entry = tuple[tuple[str, ...], int, str]
"""A walked entry: its parts relative to the root, its parent directory's descriptor, its name."""


def walk(dir_fd: int, prefix: tuple[str, ...], skip: frozenset[str]) -> Iterator[Entry]:
    """Every non-directory entry under the directory ``dir_fd``, depth first, sorted by name.

    Yields ``(parts relative to the root, parent directory descriptor, name)``; the descriptor is valid
    until the next item is requested. Subdirectories are opened ``O_NOFOLLOW | O_DIRECTORY``: symlinked
    directories are not descended into, and one swapped in for a directory is skipped. Directories
    named in ``skip`` and levels deeper than 64 are not walked.
    """
    if len(prefix) > _MAX_DEPTH:
        return
    try:
        with os.scandir(dir_fd) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        return
    subdirs: list[str] = []
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            if entry.name not in skip:
                subdirs.append(entry.name)
        else:
            yield (*prefix, entry.name), dir_fd, entry.name
    for name in subdirs:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # gone, or swapped for a symlink or a file since the listing
        try:
            yield from walk(child, (*prefix, name), skip)
        finally:
            os.close(child)


def open_entry(
    root: Path, parts: tuple[str, ...], dir_fd: int, name: str
) -> tuple[int, os.stat_result] | None:
    """A walked entry opened as a regular file (a symlink followed only inside the root), or None.

    FIFOs, sockets and devices are never opened: the entry is looked at (``lstat``) first.
    """
    try:
        seen = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(seen.st_mode):
            fd, _ = open_under(root, parts)  # resolved by hand, refused if it leads out
        elif stat.S_ISREG(seen.st_mode):
            fd = os.open(name, _ANY_FLAGS, dir_fd=dir_fd)
        else:
            return None
    except (OSError, Escape, TooManyLinks, Special):
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode):  # swapped since the look
        os.close(fd)
        return None
    return fd, info


def read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of an open regular file."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
