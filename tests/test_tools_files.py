"""tools.files: listing, reading and searching stay inside the root; escapes and binaries are refused."""

from __future__ import annotations

import os
import re
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
