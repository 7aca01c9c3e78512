"""What the ``agentkit`` command prints, and how.

Only the CLI writes control characters: model text, tool input and output, header values and error
messages are shown with their C0/C1 controls, DEL and bidirectional overrides as visible escapes
(``\\x1b``), newlines and tabs in streamed text kept. Streamed text goes to stdout and notes and log
lines to stderr; when both reach the same place (a terminal, ``2>&1``), a note or log line always
starts on a fresh line.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, TextIO

from ._events import AgentEvent, RunFinished, TextDelta, ToolCallFinished, ToolCallStarted

__all__ = ["LogStream", "Screen", "escape", "escape_line", "json_text"]

# C0 controls but newline and tab, DEL, C1 controls, and the bidi embeddings/overrides/isolates.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# What json.dumps(ensure_ascii=False) leaves raw although a terminal may act on it.
_JSON_RAW_CONTROLS = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_PREVIEW_CHARS = 300


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str) -> str:
    """``text`` with every control character but newline and tab shown as an escape (``\\x1b``)."""
    return _CONTROLS.sub(_visible, text)


def escape_line(text: str) -> str:
    """``text`` on one line: newlines and tabs are escaped too (``\\n``, ``\\t``)."""
    return _LINE_CONTROLS.sub(_visible, text)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """JSON as usual (non-ASCII kept), with DEL, C1 controls and bidi overrides as ``\\uXXXX``."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    # Outside strings JSON is plain ASCII, so these characters can only be inside strings.
    return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _same_destination(a: TextIO, b: TextIO) -> bool:
    try:
        return os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (AttributeError, OSError, ValueError):  # no file descriptor (e.g. a StringIO)
        return False


class Screen:
    """stdout and stderr as the user sees them: remembers whether stdout is in the middle of a line."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.at_line_start = True
        self.shared = _same_destination(out, err)

    def text(self, text: str) -> None:
        """Streamed model text (escaped), on the current line."""
        if text:
            self.out.write(escape(text))
            self.out.flush()
            self.at_line_start = text.endswith("\n")

    def line(self, text: str) -> None:
        """One line of stdout (written by the CLI), starting on a fresh line."""
        self.end_line()
        self.out.write(text + "\n")
        self.out.flush()

    def end_line(self) -> None:
        """End stdout's partial line, if there is one."""
        if not self.at_line_start:
            self.out.write("\n")
            self.out.flush()
            self.at_line_start = True

    def before_stderr(self) -> None:
        """Called before anything goes to stderr: if it shares stdout's place, start a fresh line."""
        if self.shared:
            self.end_line()
        else:
            self.out.flush()

    def note(self, text: str) -> None:
        """One line of stderr (written by the CLI), starting on a fresh line."""
        self.before_stderr()
        self.err.write(text + "\n")
        self.err.flush()

    def interrupted(self) -> None:
        """Ctrl-C on a terminal echoes ``^C``: the line it is on is no longer empty."""
        if self.shared and self.err.isatty():
            self.at_line_start = False

    def prompt_shown(self) -> None:
        """The user answered a prompt (``input()``): the terminal is at the start of a line."""
        self.at_line_start = True


class LogStream:
    """A file for structlog's lines: each starts on a fresh line and has its control characters escaped.

    ``isatty()`` is false, so the console renderer adds no colour codes of its own.
    """

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self._line_start = True

    def write(self, text: str) -> int:
        if self._line_start and text:
            self.screen.before_stderr()
        self.screen.err.write(escape(text))
        if text:
            self._line_start = text.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.screen.err.flush()

    def isatty(self) -> bool:
        return False


class Renderer:
    """Writes a run as it happens: streamed text, then one line per tool call and per result."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def __call__(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.screen.text(event.text)
        elif isinstance(event, ToolCallStarted):
            call = event.tool_use
            self.screen.line(f"→ {escape_line(call.name)}({json_text(call.input)})")
        elif isinstance(event, ToolCallFinished):
            content = event.result.content
            if isinstance(content, str) or content is None:
                text = content or ""
            else:
                text = json.dumps(
                    [b.model_dump(mode="json", exclude_none=True) for b in content], ensure_ascii=False
                )
            if len(text) > _PREVIEW_CHARS:
                text = text[: _PREVIEW_CHARS - 1] + "…"
            mark = "✗" if event.is_error else "←"
            name = escape_line(event.tool_use.name)
            self.screen.line(f"{mark} {name}: {escape_line(text)}  ({event.duration * 1000:.0f} ms)")
        elif isinstance(event, RunFinished):
            self.screen.end_line()
