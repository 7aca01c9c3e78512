"""Run every ```python block of README.md as printed, offline, and report.

    python tools/readme_snippets.py              # README.md at the repository root
    python tools/readme_snippets.py other.md -v  # another file; -v prints each snippet's output

Each block runs in its own subprocess (this interpreter, a fresh temporary directory, no
``ANTHROPIC_*`` variables in the environment), all of them at once. Line numbers in a traceback are the
README's own. A block that is deliberately not runnable is marked by an HTML comment on the line
before its fence, which says why::

    <!-- not run: needs a key -->

The exit status is 1 when a block fails. ``tests/test_readme.py`` runs the same checks under pytest.
This is a maintenance script, not part of the installed package.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 60.0

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced ```python block: where it starts, its code, and why it is not run (if it is not)."""

    path: Path
    line: int  # 1-based line of the first line of code (the one after the opening fence)
    code: str
    not_run: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"


@dataclass(frozen=True)
class Outcome:
    """How a snippet's run ended."""

    snippet: Snippet
    returncode: int | None  # None: not run, or killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.snippet.not_run is not None or self.returncode == 0

    @property
    def status(self) -> str:
        if self.snippet.not_run is not None:
            return f"not run ({self.snippet.not_run})"
        if self.returncode is None:
            return f"TIMED OUT after {self.seconds:.0f} s"
        return "ok" if self.returncode == 0 else f"FAILED (exit {self.returncode})"


def snippets(path: Path = README) -> list[Snippet]:
    """The ```python blocks of a Markdown file, in order (other languages and indented code are skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(fence[0] * len(fence)):
            end += 1
        if opening["info"].lower() in ("python", "py", "python3"):
            marker = _NOT_RUN.match(_previous_text(lines, index))
            indent = len(opening["indent"])
            code = "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[start:end])
            found.append(Snippet(path, start + 1, code + "\n", marker["reason"] if marker else None))
        index = end + 1
    return found


def _previous_text(lines: list[str], index: int) -> str:
    """The nearest non-blank line before ``index`` ("" at the top of the file)."""
    for line in reversed(lines[:index]):
        if line.strip():
            return line
    return ""


def offline_env() -> dict[str, str]:
    """This process's environment without any key or endpoint, so a snippet cannot reach a real API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "POYO_", "TOAPIS_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run(found: Sequence[Snippet], *, timeout: float = TIMEOUT, python: str = sys.executable) -> list[Outcome]:
    """Run every snippet not marked ``not run``, all at once, each in its own subprocess and directory."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="readme-snippets-") as tmp:
        started: list[tuple[Snippet, subprocess.Popen[str] | None, float]] = []
        for number, snippet in enumerate(found):
            if snippet.not_run is not None:
                started.append((snippet, None, time.perf_counter()))
                continue
            workdir = Path(tmp) / f"snippet{number}"
            workdir.mkdir()
            script = workdir / f"{snippet.path.stem}_line{snippet.line}.py"
            # Blank lines first, so a traceback's line numbers are the README's.
            script.write_text("\n" * (snippet.line - 1) + snippet.code, encoding="utf-8")
            process = subprocess.Popen(
                [python, str(script)],
                cwd=workdir,
                env=offline_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
            started.append((snippet, process, time.perf_counter()))
        deadline = time.monotonic() + timeout
        for snippet, child, began in started:
            if child is None:
                outcomes.append(Outcome(snippet, None, "", "", 0.0))
                continue
            try:
                stdout, stderr = child.communicate(timeout=max(0.0, deadline - time.monotonic()))
                code: int | None = child.returncode
            except subprocess.TimeoutExpired:
                child.kill()
                stdout, stderr = child.communicate()
                code = None
            outcomes.append(Outcome(snippet, code, stdout, stderr, time.perf_counter() - began))
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the snippets of a Markdown file and print one line per snippet."""
    parser = argparse.ArgumentParser(description="Run every ```python block of a Markdown file, offline.")
    parser.add_argument("path", nargs="?", type=Path, default=README, help="the Markdown file (README.md)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each snippet's output")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds for all snippets together")
    args = parser.parse_args(argv)
    found = snippets(args.path)
    if not found:
        print(f"{args.path}: no ```python blocks", file=sys.stderr)
        return 1
    outcomes = run(found, timeout=args.timeout)
    for outcome in outcomes:
        print(
            f"{outcome.snippet.name}: {outcome.status}"
            + (f" ({outcome.seconds:.1f} s)" if outcome.returncode is not None else "")
        )
        if args.verbose or not outcome.ok:
            for text in (outcome.stdout, outcome.stderr):
                if text.strip():
                    print("    " + text.rstrip().replace("\n", "\n    "))
    failed = sum(not o.ok for o in outcomes)
    skipped = sum(o.snippet.not_run is not None for o in outcomes)
    print(f"{len(outcomes) - failed - skipped} ok, {failed} failed, {skipped} not run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
