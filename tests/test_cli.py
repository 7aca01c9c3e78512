"""The ``agentkit`` command as a person meets it: packaging, --version, stdin prompts, finding tools,
chat's Ctrl-C, -v output and what reaches the terminal. Each test runs the real command in a subprocess
(offline, or against a LocalServer in this process); interactive ones run it on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import agentkit
from agentkit.testing import LocalServer, Script, reply

ROOT = Path(__file__).resolve().parents[1]
SLOW_TOOLS = Path(__file__).parent / "data" / "slow_tools.py"
CONSOLE_SCRIPT = Path(sys.executable).with_name("agentkit")
TIMEOUT = 60
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pseudo-terminals")

# What a terminal would act on: C0 controls but newline and tab, DEL, C1 controls, bidi overrides.
TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "POYO_", "TOAPIS_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def agentkit_cmd(*args: str, console: bool = False) -> list[str]:
    if console:
        if not CONSOLE_SCRIPT.exists():
            pytest.skip("the agentkit console script is not installed in this environment")
        return [str(CONSOLE_SCRIPT), *args]
    return [sys.executable, "-m", "agentkit", *args]


def cli(
    *args: str,
    cwd: Path = ROOT,
    stdin: str | None = None,
    console: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        agentkit_cmd(*args, console=console),
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        env=env or offline_env(),
        timeout=TIMEOUT,
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentkit: error:"), done.stderr
    return lines[0]


def tool_names(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [d["name"] for d in json.loads(ok(done).stdout)]


def write_tool(path: Path, name: str, body: str = "return text.upper()") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "from agentkit import tool\n\n\n"
        f"@tool\ndef {name}(text: str) -> str:\n"
        f'    """A tool called {name}.\n\n    Args:\n        text: Some text.\n    """\n'
        f"    {body}\n",
        encoding="utf-8",
    )
    return path


class Terminal:
    """A command on a pseudo-terminal: stdin, stdout and stderr are all the same terminal."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            agentkit_cmd(*args), cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=offline_env()
        )
        os.close(slave)
        self.output = b""

    def read_until(self, pattern: bytes, start: int = 0) -> int:
        """Read until ``pattern`` appears after offset ``start``; returns the offset just after it."""
        deadline = time.monotonic() + TIMEOUT  # a failure bound only, not a timing assertion
        while (found := self.output.find(pattern, start)) < 0:
            if time.monotonic() > deadline or not self._read():
                raise AssertionError(f"{pattern!r} never came; the terminal showed:\n{self.text}")
        return found + len(pattern)

    def read_all(self) -> str:
        while self._read():
            pass
        return self.text

    def _read(self) -> bool:
        ready, _, _ = select.select([self.master], [], [], 1.0)
        if not ready:
            return self.proc.poll() is None
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            return False
        self.output += data
        return bool(data)

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        os.close(self.master)


@contextmanager
def terminal(*args: str, cwd: Path = ROOT) -> Iterator[Terminal]:
    term = Terminal(*args, cwd=cwd)
    try:
        yield term
    finally:
        term.close()


# --- packaging -----------------------------------------------------------------------------------


def test_license_file_matches_the_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 agentkit contributors\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    assert set(project["urls"]) == {"Homepage", "Documentation", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in project["urls"].values())
    assert project["dynamic"] == ["version"]  # the one version is agentkit.__version__


def test_version_prints_the_one_version() -> None:
    done = ok(cli("--version", console=True))
    assert done.stdout.strip() == f"agentkit {agentkit.__version__}"
    assert metadata.version("agentkit") == agentkit.__version__
    assert ok(cli("--version")).stdout == done.stdout


# --- the prompt from stdin -----------------------------------------------------------------------


def test_run_dash_reads_the_prompt_from_stdin() -> None:
    done = ok(cli("run", "-", "--tools", "tools.calculator", stdin="What is 17 * 23?\n"))
    assert '→ calculate({"expression": "17 * 23"})' in done.stdout
    assert "17 * 23 = 391" in done.stdout


@pytest.mark.parametrize("given", ["", "  \n\n"])
def test_run_dash_with_empty_stdin_is_a_usage_error(given: str) -> None:
    assert "stdin was empty" in usage_error(cli("run", "-", stdin=given))


@posix_only
def test_run_dash_with_a_terminal_is_a_usage_error() -> None:
    with terminal("run", "-") as term:
        out = term.read_all()
        assert term.proc.wait(TIMEOUT) == 2
    assert "agentkit: error: run -: reads the prompt from stdin, but stdin is a terminal" in out


def test_an_empty_prompt_is_a_usage_error() -> None:
    assert "the prompt is empty" in usage_error(cli("run", " "))


# --- finding tools -------------------------------------------------------------------------------


def test_console_script_imports_a_module_from_the_current_directory(tmp_path: Path) -> None:
    write_tool(tmp_path / "my_tools.py", "shout")
    assert tool_names(cli("tools", "show", "my_tools", cwd=tmp_path, console=True)) == ["shout"]
    done = ok(cli("run", "shout 'hello'", "--tools", "my_tools", cwd=tmp_path, console=True))
    assert "← shout: HELLO" in done.stdout


def test_tools_from_file_paths_import_their_neighbours(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "helpers.py").write_text("SUFFIX = '!'\n", encoding="utf-8")
    write_tool(tmp_path / "pkg" / "more.py", "exclaim", "return text + helpers.SUFFIX")
    source = (tmp_path / "pkg" / "more.py").read_text(encoding="utf-8")
    (tmp_path / "pkg" / "more.py").write_text("import helpers\n" + source, encoding="utf-8")
    write_tool(tmp_path / "weather.py", "shout")  # same stem as another file: both load
    write_tool(tmp_path / "other" / "weather.py", "whisper", "return text.lower()")
    done = cli("tools", "show", "./weather.py", "pkg/more.py", "other/weather.py", cwd=tmp_path, console=True)
    assert tool_names(done) == ["shout", "exclaim", "whisper"]


def test_a_users_own_tools_package_wins_over_the_bundled_one(tmp_path: Path) -> None:
    write_tool(tmp_path / "tools" / "weather.py", "my_weather")
    (tmp_path / "tools" / "__init__.py").write_text("", encoding="utf-8")
    both = cli("tools", "show", "tools.weather", "tools.calculator", cwd=tmp_path, console=True)
    # tools/weather.py is the user's; there is no tools/calculator.py, so that one is the bundled tool.
    assert tool_names(both) == ["my_weather", "calculate"]
    bundled = cli("tools", "show", "agentkit.tools.weather", cwd=tmp_path, console=True)
    assert tool_names(bundled) == ["get_weather"]


def test_bundled_tools_import_nothing_from_the_current_directory(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    # A stray module named like one the bundled clock imports (the console script must not pick it up).
    (tmp_path / "difflib.py").write_text("raise RuntimeError('the current directory shadowed difflib')\n")
    assert tool_names(cli("tools", "show", "tools.clock", cwd=tmp_path, console=True)) == [
        "current_time",
        "convert_time",
    ]
    assert not marker.exists()  # the user's tools package was looked at, not run


def test_a_users_tools_module_is_importable_by_its_name(tmp_path: Path) -> None:
    write_tool(tmp_path / "tools.py", "mine")
    assert tool_names(cli("tools", "show", "tools", cwd=tmp_path, console=True)) == ["mine"]
    # A plain module is not a package: tools.weather still means the bundled one.
    assert tool_names(cli("tools", "show", "tools.weather", cwd=tmp_path, console=True)) == ["get_weather"]


def test_missing_tools_name_where_they_were_looked_for(tmp_path: Path) -> None:
    line = usage_error(cli("tools", "show", "tools", cwd=tmp_path))
    assert "cannot import tools module 'tools'" in line and str(tmp_path) in line
    assert "tools.weather" in line  # the bundled ones are named
    assert "is a directory" in usage_error(cli("tools", "show", str(tmp_path), cwd=tmp_path))


def test_help_states_the_rule_for_finding_tools() -> None:
    text = " ".join(ok(cli("run", "--help")).stdout.split())
    assert "tools.NAME is your own tools/NAME.py when the current directory has one" in text
    assert "--files-root" in text and "- reads it from stdin" in text


def test_files_tools_read_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the secret word is marmalade\n", encoding="utf-8")
    done = ok(cli("run", "read the file notes.txt", "--tools", "tools.files", cwd=tmp_path))
    assert '→ read_file({"path": "notes.txt"})' in done.stdout
    assert "marmalade" in done.stdout
    assert f"file tools: read-only access to {tmp_path.resolve()}" in done.stderr
    names = tool_names(cli("tools", "show", "tools.files", cwd=tmp_path))
    assert names == ["list_files", "read_file", "search_files"]  # nothing that writes


def test_files_root_chooses_the_directory(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("inside docs\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("outside docs\n", encoding="utf-8")
    done = ok(
        cli("run", "read the file notes.txt", "--tools", "tools.files", "--files-root", "docs", cwd=tmp_path)
    )
    assert "inside docs" in done.stdout and "outside docs" not in done.stdout
    missing = cli("run", "hi", "--tools", "tools.files", "--files-root", "nowhere", cwd=tmp_path)
    assert "--files-root nowhere cannot be used" in usage_error(missing)
    assert "add --tools tools.files" in usage_error(cli("run", "hi", "--files-root", "docs", cwd=tmp_path))


# --- chat ----------------------------------------------------------------------------------------


@posix_only
def test_chat_ctrl_c_cancels_the_turn_and_keeps_the_conversation() -> None:
    proc = subprocess.Popen(
        agentkit_cmd("chat", "--tools", str(SLOW_TOOLS)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(),
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("weather in Paris?\n")
    proc.stdin.flush()
    line = proc.stdout.readline()  # blocks until the tool call is shown
    assert "get_weather" in line
    assert "Paris" in line
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # the 30 s tool is running: cancel this turn only
    proc.stdin.write("\n")
    proc.stdin.close()  # then Ctrl-D
    assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "[cancelled — the conversation keeps every answered step]" in err


@posix_only
def test_chat_shows_its_prompt_again_after_ctrl_c() -> None:
    with terminal("chat", "--tools", str(SLOW_TOOLS)) as term:
        at = term.read_until(b"you> ")
        term.write(b"weather in Paris?\n")
        at = term.read_until(b"get_weather", at)
        term.proc.send_signal(signal.SIGINT)  # a turn is running: cancel it
        at = term.read_until(b"[cancelled", at)
        at = term.read_until(b"\nyou> ", at)  # asked again, on a line of its own
        term.proc.send_signal(signal.SIGINT)  # at the prompt: say how to quit, and ask again
        at = term.read_until(b"(Ctrl-D to quit)", at)
        at = term.read_until(b"\nyou> ", at)
        term.write(b"\x04")
        assert term.proc.wait(TIMEOUT) == 0


# --- what reaches the terminal -------------------------------------------------------------------

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(info|debug|warning)")


@posix_only
def test_verbose_log_lines_start_on_their_own_line() -> None:
    prompt = "What's the weather in Tokyo and in Paris?"
    with terminal("run", "-v", prompt, "--tools", "tools.weather") as term:
        out = term.read_all()
        assert term.proc.wait(TIMEOUT) == 0
    lines = out.replace("\r\n", "\n").split("\n")
    log_lines = [line for line in lines if LOG_LINE.search(line)]
    assert any("model.response" in line for line in log_lines)
    assert all(LOG_LINE.match(line) for line in log_lines), [
        line for line in log_lines if not LOG_LINE.match(line)
    ]
    answer = next(line for line in lines if line.startswith("In Tokyo it is"))
    assert answer.rstrip().endswith(".")  # the streamed text ended its own line before the next log line


def test_verbose_output_to_separate_files_is_left_as_streamed() -> None:
    done = ok(cli("run", "-v", "What's the weather in Tokyo?", "--tools", "tools.weather"))
    assert LOG_LINE.search(done.stderr)
    assert not LOG_LINE.search(done.stdout)
    assert re.search(r"^In Tokyo it is .*\.\n$", done.stdout, re.MULTILINE)


HOSTILE_TOOL = "return '\\x1b]0;pwned\\x07' + text + '\\x1b[2J\\x9b2J'"
HOSTILE_INPUT = "in\x1b[31mput\x9b31m\u202egnp.exe"
HOSTILE_TEXT = "Hello\x1b[2J \x1b]8;;http://x\x07link\x1b]8;;\x07\r\nline two\twith a tab\x07\x00\x7f\x85!"


def hostile_env(server: LocalServer) -> dict[str, str]:
    return offline_env(ANTHROPIC_API_KEY="sk-test", ANTHROPIC_BASE_URL=server.base_url)


@pytest.fixture
def hostile_tools(tmp_path: Path) -> Path:
    return write_tool(tmp_path / "hostile.py", "echo", HOSTILE_TOOL)


def hostile_script() -> Script:
    return Script([reply.tool_use("echo", {"text": HOSTILE_INPUT}), reply.text(HOSTILE_TEXT)])


def test_model_and_tool_text_reach_the_terminal_escaped(hostile_tools: Path) -> None:
    with LocalServer(policy=hostile_script()) as server:
        done = cli(
            "run",
            "go",
            "--tools",
            str(hostile_tools),
            "--model",
            "claude-sonnet-4-6",
            env=hostile_env(server),
        )
    out = ok(done).stdout
    assert not TERMINAL_CONTROLS.search(out), repr(out)
    assert not TERMINAL_CONTROLS.search(done.stderr), repr(done.stderr)
    assert '→ echo({"text": "in\\u001b[31mput\\u009b31m\\u202egnp.exe"})' in out
    assert "← echo: \\x1b]0;pwned\\x07in\\x1b[31mput\\x9b31m\\u202egnp.exe\\x1b[2J\\x9b2J  (" in out
    # Model text keeps its newlines and tabs; everything else a terminal would act on is shown.
    assert (
        "Hello\\x1b[2J \\x1b]8;;http://x\\x07link\\x1b]8;;\\x07\\r\nline two\twith a tab\\x07\\x00\\x7f\\x85!"
        in out
    )


def test_json_output_is_escaped_json_that_keeps_the_text(hostile_tools: Path) -> None:
    with LocalServer(policy=hostile_script()) as server:
        done = cli(
            "run",
            "go",
            "--json",
            "--tools",
            str(hostile_tools),
            "--model",
            "claude-sonnet-4-6",
            env=hostile_env(server),
        )
    out = ok(done).stdout
    assert not TERMINAL_CONTROLS.search(out), repr(out)
    events: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["kind"] == "run_finished" and events[-1]["text"] == HOSTILE_TEXT
    started = next(e for e in events if e["kind"] == "tool_call_started")
    assert started["tool_use"]["input"] == {"text": HOSTILE_INPUT}


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_hostile_request_id_and_error_message_are_escaped(verbose: list[str]) -> None:
    request_id = "req_\x1b[2J\x1b]0;pwned\x07"
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad\r\nagentkit: fake line\x1b[31m"},
        "request_id": "req_body\r\n\x1b[2J",
    }
    script = Script([reply.raw(400, json.dumps(body).encode(), headers={"request-id": request_id})])
    with LocalServer(policy=script) as server:
        done = cli("run", "hi", *verbose, "--model", "claude-sonnet-4-6", env=hostile_env(server))
    assert done.returncode == 1, done
    assert not TERMINAL_CONTROLS.search(done.stderr), repr(done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("agentkit:")]
    assert len(errors) == 1, done.stderr  # the CR/LF in the message did not start a fake line
    assert "bad\\r\\nagentkit: fake line\\x1b[31m" in errors[0]
    assert "req_\\x1b[2J\\x1b]0;pwned\\x07" in errors[0]


def test_every_command_in_the_readme_cli_section_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = (
        readme.split("The CLI does the same from a shell", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    )
    commands = [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) >= 6 and any(" run - " in c for c in commands)
    for command in commands:
        shell = command.replace(".venv/bin/agentkit", f"{sys.executable} -m agentkit")
        done = subprocess.run(
            ["bash", "-c", shell],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            env=offline_env(),
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
