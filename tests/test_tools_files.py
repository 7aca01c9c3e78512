"""tools.files: listing, reading and searching stay inside the root; escapes and binaries are refused."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path

import anyio
import pytest

from agentkit._exceptions import ToolError
from agentkit.tools.files import FileTools

pytestmark = pytest.mark.anyio


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / ".git").mkdir()
    (root / "README.md").write_text("# Demo\nThe answer is 42.\n", encoding="utf-8")
    (root / "src" / "main.py").write_text(
        "import pkg\n\ndef main():\n    return 'Answer'\n", encoding="utf-8"
    )
    (root / "src" / "pkg" / "__init__.py").write_text("VALUE = 42\n", encoding="utf-8")
    (root / "docs" / "notes.txt").write_text("café ünïcode answer\n", encoding="utf-8")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / ".git" / "config").write_text("answer hidden in vcs\n", encoding="utf-8")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "passwd.txt").write_text("root:x:0:0 answer\n", encoding="utf-8")
    return root


@pytest.fixture
def files(project: Path) -> FileTools:
    return FileTools(project)


def symlink(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")


def test_list_files_recursive_with_sizes(files: FileTools) -> None:
    listing = files.list_files()
    lines = listing.splitlines()
    assert "README.md (25 bytes)" in lines
    assert any(line.startswith("src/pkg/__init__.py ") for line in lines)
    assert not any(line.startswith(".git/") for line in lines)  # VCS internals skipped


def test_list_files_pattern_and_subdirectory(files: FileTools) -> None:
    assert files.list_files(pattern="*.py").splitlines() == [
        "src/main.py (44 bytes)",
        "src/pkg/__init__.py (11 bytes)",
    ]
    assert files.list_files("src/pkg") == "src/pkg/__init__.py (11 bytes)"
    assert files.list_files(pattern="src/*.py").splitlines()[0].startswith("src/main.py")
    assert "No files matching" in files.list_files(pattern="*.rs")


def test_read_file(files: FileTools) -> None:
    assert files.read_file("README.md") == "# Demo\nThe answer is 42.\n"
    assert files.read_file("./docs/notes.txt") == "café ünïcode answer\n"


def test_read_file_truncates_with_marker(files: FileTools, project: Path) -> None:
    (project / "big.txt").write_text("y" * 1000, encoding="utf-8")
    text = files.read_file("big.txt", max_chars=100)
    assert text.startswith("y" * 100)
    assert "y" * 101 not in text
    assert "[truncated: showing the first 100 characters of a 1000-byte file]" in text


def test_binary_refused_and_skipped(files: FileTools) -> None:
    with pytest.raises(ToolError, match="binary"):
        files.read_file("logo.png")
    assert "logo.png" not in files.search_files("PNG")


def test_search_files(files: FileTools) -> None:
    hits = files.search_files("answer").splitlines()
    assert "README.md:2: The answer is 42." in hits
    assert "src/main.py:4: return 'Answer'" in hits
    assert "docs/notes.txt:1: café ünïcode answer" in hits
    assert not any("vcs" in hit or "root:x" in hit for hit in hits)
    assert files.search_files("42", path="src") == "src/pkg/__init__.py:1: VALUE = 42"
    assert files.search_files("answer", path="README.md") == "README.md:2: The answer is 42."
    assert "No matches" in files.search_files("zebra")
    limited = files.search_files("answer", max_results=1).splitlines()
    assert len(limited) == 2 and "stopped at 1 results" in limited[1]
    with pytest.raises(ToolError, match="empty"):
        files.search_files("  ")


@pytest.mark.parametrize(
    "path",
    ["../secret/passwd.txt", "src/../../secret/passwd.txt", "..", "src/..", "..\\secret\\passwd.txt"],
)
def test_dotdot_refused(files: FileTools, path: str) -> None:
    with pytest.raises(ToolError, match=r"'\.\.'"):
        files.read_file(path)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "\\\\server\\share\\x", "C:\\Windows\\win.ini", "~/.ssh/id_rsa"]
)
def test_absolute_paths_refused(files: FileTools, path: str) -> None:
    with pytest.raises(ToolError, match="absolute"):
        files.read_file(path)


def test_nul_bytes_refused(files: FileTools) -> None:
    with pytest.raises(ToolError, match="NUL"):
        files.read_file("README.md\x00.png")
    with pytest.raises(ToolError, match="NUL"):
        files.list_files("src\x00")
    with pytest.raises(ToolError, match="NUL"):
        files.search_files("a\x00b")


def test_missing_and_wrong_kind(files: FileTools) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        files.read_file("nope.txt")
    with pytest.raises(ToolError, match="not a regular file"):
        files.read_file("src")
    with pytest.raises(ToolError, match="not a directory"):
        files.list_files("README.md")


def test_symlinked_file_outside_refused(files: FileTools, project: Path) -> None:
    symlink(project / "leak.txt", project.parent / "secret" / "passwd.txt")
    with pytest.raises(ToolError, match="outside"):
        files.read_file("leak.txt")
    assert "leak.txt" not in files.list_files()
    assert "root:x" not in files.search_files("root")


def test_symlinked_directory_outside_refused(files: FileTools, project: Path) -> None:
    symlink(project / "docs" / "external", project.parent / "secret")
    with pytest.raises(ToolError, match="outside"):
        files.read_file("docs/external/passwd.txt")
    with pytest.raises(ToolError, match="outside"):
        files.list_files("docs/external")
    with pytest.raises(ToolError, match="outside"):
        files.search_files("root", path="docs/external")
    assert "passwd" not in files.list_files()
    assert "root:x" not in files.search_files("root")


def test_symlink_inside_root_is_fine(files: FileTools, project: Path) -> None:
    symlink(project / "readme-link.md", project / "README.md")
    assert files.read_file("readme-link.md").startswith("# Demo")
    assert "readme-link.md" in files.list_files()


def test_symlink_loop_is_a_tool_error(files: FileTools, project: Path) -> None:
    symlink(project / "loop-a", project / "loop-b")
    symlink(project / "loop-b", project / "loop-a")
    with pytest.raises(ToolError):
        files.read_file("loop-a")
    files.list_files()  # a loop in the tree does not hang or crash listing


def test_root_given_through_symlink(tmp_path: Path, project: Path) -> None:
    symlink(tmp_path / "alias", project)
    tools = FileTools(tmp_path / "alias")
    assert tools.read_file("README.md").startswith("# Demo")
    with pytest.raises(ToolError, match=r"'\.\.'"):
        tools.read_file("../secret/passwd.txt")


def test_root_must_be_a_directory(project: Path) -> None:
    with pytest.raises(NotADirectoryError):
        FileTools(project / "README.md")
    with pytest.raises(FileNotFoundError):
        FileTools(project / "missing")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_read(files: FileTools, project: Path) -> None:
    os.mkfifo(project / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        files.read_file("pipe")
    files.search_files("answer")  # must not block on the FIFO


async def test_tools_run_as_bound_methods(files: FileTools) -> None:
    names = [t.name for t in files.tools()]
    assert names == ["list_files", "read_file", "search_files"]
    ok = await files.read_file.run(
        {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "README.md"}}
    )
    assert not ok.is_error
    bad = await files.read_file.run(
        {"type": "tool_use", "id": "t2", "name": "read_file", "input": {"path": "../secret/passwd.txt"}}
    )
    assert bad.is_error
    schema = files.search_files.input_schema
    assert schema["required"] == ["query"]
    assert "self" not in schema["properties"]


# --- hostile arguments ---------------------------------------------------------------------------


def call(name: str, **input: object) -> dict[str, object]:
    return {"type": "tool_use", "id": "toolu_hostile", "name": name, "input": input}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[" * 50_000, r"pattern is 50000 characters long; at most 256"),  # fnmatch: ~1 minute
        ("*" + "[!a" * 120, r"pattern is 361 characters long; at most 256"),
        ("*a" * 17, r"pattern has 17 wildcards .*; at most 16"),
        ("?" * 40, r"pattern has 40 wildcards .*; at most 16"),
        ("[" * 17, r"pattern has 17 wildcards .*; at most 16"),
    ],
)
async def test_list_files_pattern_is_bounded(files: FileTools, pattern: str, message: str) -> None:
    with anyio.fail_after(20):
        result = await files.list_files.run(call("list_files", pattern=pattern))
    assert result.is_error
    assert re.search(message, str(result.content)), result.content


def test_list_files_pattern_at_the_limits_still_works(files: FileTools) -> None:
    assert files.list_files(pattern="*" * 16 + ".py").splitlines()[0].startswith("src/main.py")
    assert "No files matching" in files.list_files(pattern="x" * 256)


async def test_search_query_is_bounded(files: FileTools) -> None:
    result = await files.search_files.run(call("search_files", query="answer" * 1000))
    assert result.is_error
    assert "query is 6000 characters long; at most 1000" in str(result.content)
    assert "answer" * 200 not in str(result.content)  # the query is not echoed back
    assert files.search_files("z" * 1000).startswith("No matches")  # at the limit: searched


# --- paths swapped while the tools run (another process writing inside the root) -----------------


class Swapper:
    """A thread that keeps swapping ``root/name`` between what is there and ``root/<name>.other``."""

    def __init__(self, root: Path, name: str) -> None:
        self.path, self.other, self.held = root / name, root / f"{name}.other", root / f"{name}.held"
        self.swaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            os.rename(self.path, self.held)
            os.rename(self.other, self.path)  # renames a symlink itself, never its target
            os.rename(self.path, self.other)
            os.rename(self.held, self.path)
            self.swaps += 1

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def racy(tmp_path: Path) -> Path:
    """root/d (a directory) and root/d.other (a symlink to a directory outside the root)."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_text("inside\n", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("OUTSIDE secret\n", encoding="utf-8")
    (outside / "only-outside.txt").write_text("OUTSIDE secret\n", encoding="utf-8")
    symlink(root / "d.other", outside)
    return root


def test_directory_swapped_for_a_symlink_never_leaks(racy: Path) -> None:
    files = FileTools(racy)
    inside, leaked, refusals = 0, 0, set()
    with Swapper(racy, "d") as swapper:
        for _ in range(20_000):
            try:
                text = files.read_file("d/f.txt")
            except ToolError as exc:  # nothing but ToolError may leave the tool
                refusals.add(exc.message)
                continue
            leaked += "OUTSIDE" in text
            inside += text == "inside\n"
    assert leaked == 0, f"{leaked} of 20000 reads returned a file outside the root"
    assert swapper.swaps > 0 and inside > 0
    assert not any(str(racy) in message for message in refusals), refusals  # relative paths only


def test_walks_under_a_swapping_directory_never_leak(racy: Path) -> None:
    files = FileTools(racy)
    outputs: list[str] = []
    with Swapper(racy, "d") as swapper:
        for _ in range(2_000):
            outputs += [files.search_files("secret"), files.list_files()]
            for run in (lambda: files.search_files("secret", path="d"), lambda: files.list_files("d")):
                try:
                    outputs.append(run())
                except ToolError as exc:
                    outputs.append(exc.message)
    assert swapper.swaps > 0
    assert not [out for out in outputs if "OUTSIDE" in out or "only-outside" in out or str(racy) in out]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_file_swapped_for_a_fifo_does_not_block(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.txt").write_text("regular\n", encoding="utf-8")
    os.mkfifo(root / "f.txt.other")
    files = FileTools(root)
    failures: list[BaseException] = []
    outcomes: set[str] = set()

    def reads() -> None:
        try:
            for _ in range(5_000):
                try:
                    outcomes.add(files.read_file("f.txt"))
                except ToolError as exc:
                    outcomes.add(exc.message)
                files.search_files("regular")
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=reads, daemon=True)
    with Swapper(root, "f.txt"):
        reader.start()
        reader.join(120)  # a hang guard only: the reads take well under a second when nothing blocks
        blocked = reader.is_alive()
    if blocked:  # release the read stuck on the FIFO, so the thread can end
        for name in ("f.txt", "f.txt.other"):
            with contextlib.suppress(OSError):
                os.close(os.open(root / name, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert not blocked, "a read blocked on a FIFO swapped in for the file"
    assert not failures, failures
    allowed = re.compile(r"regular\n|'f\.txt' (is not a regular file|does not exist)")
    assert all(allowed.match(outcome) for outcome in outcomes), outcomes


def test_symlinks_are_resolved_by_hand_and_kept_inside(files: FileTools, project: Path) -> None:
    symlink(project / "docs" / "up", Path("../src"))  # relative, climbs but stays inside
    symlink(project / "abs.py", project.resolve() / "src" / "main.py")  # absolute, inside
    symlink(project / "docs" / "out", Path("../../secret"))  # relative, climbs out
    symlink(project / "docs" / "chain", Path("up/pkg"))  # a link through a link
    assert files.read_file("docs/up/main.py").startswith("import pkg")
    assert files.read_file("docs/chain/__init__.py") == "VALUE = 42\n"
    assert files.read_file("abs.py").startswith("import pkg")
    assert "abs.py (44 bytes)" in files.list_files().splitlines()
    assert files.list_files("docs/up", pattern="*.py").startswith("src/main.py")  # the real place
    for call_ in (lambda: files.read_file("docs/out/passwd.txt"), lambda: files.list_files("docs/out")):
        with pytest.raises(ToolError, match="outside the project root"):
            call_()
    assert "root:x" not in files.search_files("root")


def test_os_errors_become_tool_errors_with_relative_paths(files: FileTools, project: Path) -> None:
    with pytest.raises(ToolError, match="a part of it is a file") as info:
        files.read_file("README.md/inner.txt")
    with pytest.raises(ToolError, match="does not exist") as missing:
        files.read_file("src/nope/x.py")
    for message in (info.value.message, missing.value.message):
        assert str(project) not in message
