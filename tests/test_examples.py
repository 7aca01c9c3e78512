"""Smoke tests: every example and the main CLI commands, run as users run them (offline, no key).

The commands start together (one subprocess each) so the whole file stays fast; each test then
waits for its own command and checks what it printed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import anyio
import httpx2
import pytest

from agentkit import Client, Conversation
from agentkit.testing import LocalServer, OfflineModel
from agentkit.tools import weather

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 60
OFFLINE_NOTICE = "offline demo model"
DEMO_PROMPTS = [
    "What's the weather in Paris?",
    "And the weather in Tokyo? Which of the two cities is warmer?",
    "What time is it in Tokyo now?",
]


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "POYO_", "TOAPIS_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


class Command:
    """A subprocess started now; ``.done()`` waits for it (once) and returns its output."""

    def __init__(self, *args: str, stdin: str | None = None) -> None:
        self.args = [sys.executable, *args]
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=offline_env(),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        self._stdin = stdin
        self._done: Done | None = None

    def done(self) -> Done:
        if self._done is None:
            try:
                out, err = self.proc.communicate(self._stdin, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
                pytest.fail(f"{self.args} timed out after {TIMEOUT} s\nstdout:\n{out}\nstderr:\n{err}")
            self._done = Done(self.proc.returncode, out, err)
        return self._done


@pytest.fixture(scope="module")
def chat_save(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chat") / "conversation.json"


@pytest.fixture(scope="module")
def runs(chat_save: Path) -> Iterator[dict[str, Command]]:
    weather = "What's the weather in Tokyo?"
    commands = {
        "weather_bot": Command(str(EXAMPLES / "weather_bot.py")),
        "chat": Command(str(EXAMPLES / "chat.py"), "--demo", "--save", str(chat_save)),
        "structured": Command(str(EXAMPLES / "structured_output.py")),
        "service": Command(str(EXAMPLES / "service.py"), "--self-test", "20"),
        "providers": Command(str(EXAMPLES / "providers.py")),
        "approval": Command(str(EXAMPLES / "approval.py")),
        "mcp_server": Command(str(EXAMPLES / "mcp_server.py")),
        "durable": Command(str(EXAMPLES / "durable.py"), "--self-test"),
        "cli_run": Command("-m", "agentkit", "run", weather, "--tools", "tools.weather"),
        "cli_json": Command("-m", "agentkit", "run", weather, "--tools", "tools.weather", "--json"),
        "cli_show": Command("-m", "agentkit", "tools", "show", "tools.weather"),
        "cli_bad_tools": Command("-m", "agentkit", "run", "hi", "--tools", "no_such_module.tools"),
        "cli_bad_url": Command("-m", "agentkit", "run", "hi", "--base-url", "https://x.invalid"),
    }
    yield commands
    for command in commands.values():
        if command.proc.poll() is None:
            command.proc.kill()
            command.proc.communicate()


def ok(done: Done) -> Done:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- examples ------------------------------------------------------------------------------------


def test_weather_bot_streams_a_tool_call_and_an_answer(runs: dict[str, Command]) -> None:
    done = ok(runs["weather_bot"].done())
    assert OFFLINE_NOTICE in done.stderr
    lines = done.stdout.splitlines()
    assert '→ get_weather({"city": "Tokyo"})' in lines
    assert any(line.startswith("← get_weather:") and '"source":"simulated"' in line for line in lines)
    answer = next(line for line in lines if line.startswith("In Tokyo"))
    assert re.search(r"-?\d+(\.\d+)?°C", answer)
    assert "travel tip" in answer.lower()  # the one-sentence suggestion
    assert re.search(r"— 2 model requests, \d+ input \+ \d+ output tokens", done.stdout)


def test_chat_demo_carries_the_conversation_across_turns(runs: dict[str, Command], chat_save: Path) -> None:
    done = ok(runs["chat"].done())
    for prompt in DEMO_PROMPTS:
        assert f"you> {prompt}" in done.stdout
    assert '→ get_weather({"city": "Paris"})' in done.stdout
    assert '→ get_weather({"city": "Tokyo"})' in done.stdout
    assert '→ current_time({"timezone": "Asia/Tokyo"})' in done.stdout
    sizes = [int(n) for n in re.findall(r"\[history: (\d+) messages", done.stdout)]
    assert sizes == [4, 8, 12]  # each turn is sent on top of the previous ones

    saved = Conversation.from_json(chat_save.read_text(encoding="utf-8"))
    assert len(saved) == 12
    assert all(prompt in saved.to_json() for prompt in DEMO_PROMPTS)

    # A new process picks the conversation up from --save and continues it (from stdin, to EOF).
    more = ok(
        Command(str(EXAMPLES / "chat.py"), "--save", str(chat_save), stdin="What is 12 * 7 + 6?\n").done()
    )
    assert "[loaded 12 messages" in more.stdout
    assert "12 * 7 + 6 = 90" in more.stdout
    assert "[history: 16 messages" in more.stdout
    assert len(Conversation.from_json(chat_save.read_text(encoding="utf-8"))) == 16


def test_structured_output_prints_a_validated_object(runs: dict[str, Command]) -> None:
    done = ok(runs["structured"].done())
    assert done.stdout.startswith("TripAdvice(city='Tokyo', temperature_c=")
    block = re.search(r"^\{$.*?^\}$", done.stdout, re.MULTILINE | re.DOTALL)
    assert block is not None, done.stdout
    advice = load_example("structured_output").TripAdvice.model_validate_json(block.group(0))
    assert advice.city == "Tokyo"
    assert -90 <= advice.temperature_c <= 60
    assert advice.condition and len(advice.suggestion) >= 10


def test_service_self_test_serves_concurrent_streams(runs: dict[str, Command]) -> None:
    done = ok(runs["service"].done())
    assert "20/20 concurrent streams ended with run_finished" in done.stdout
    assert "FAIL" not in done.stdout
    assert "0 stream(s) left in flight" in done.stdout


def test_providers_runs_the_same_agent_on_three_flavours(runs: dict[str, Command]) -> None:
    done = ok(runs["providers"].done())
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if " offline ok " in line}
    assert set(rows) == {"anthropic", "poyo", "toapis"}
    assert "auth: x-api-key" in rows["anthropic"] and "plain JSON" in rows["anthropic"]
    assert "auth: x-api-key" in rows["poyo"] and "envelope unwrapped" in rows["poyo"]
    assert "auth: Authorization: Bearer" in rows["toapis"] and "plain JSON" in rows["toapis"]
    assert done.stdout.count("In Tokyo it is") == 3


def test_approval_pauses_in_one_process_and_finishes_in_another(runs: dict[str, Command]) -> None:
    done = ok(runs["approval"].done())
    lines = done.stdout.splitlines()
    assert any(line.startswith('waiting for approval: send_payment({"recipient": "Alice"') for line in lines)
    assert any(line.startswith("approved: send_payment(") for line in lines)
    assert any(line.startswith("answer: ") and "sent 40.00 EUR to Alice" in line for line in lines)
    assert "nothing to decide: the run in" in done.stdout  # the decided run is not decided twice
    assert lines[-1].startswith("the run is completed after 2 model requests")


def test_mcp_example_calls_the_server_beside_a_local_tool(runs: dict[str, Command]) -> None:
    done = ok(runs["mcp_server"].done())
    lines = done.stdout.splitlines()
    assert lines[0] == "tools: word_length, units_celsius_to_fahrenheit, units_kilometres_to_miles"
    assert "→ units_celsius_to_fahrenheit({'celsius': 21.5})" in lines
    assert "← 70.7" in lines and "← 11" in lines
    assert lines[-1].startswith("answer: ") and "70.7" in lines[-1]


def test_durable_run_survives_a_killed_worker_and_runs_finished_calls_once(runs: dict[str, Command]) -> None:
    done = ok(runs["durable"].done())
    lines = done.stdout.splitlines()
    assert "killed the worker while ship_order ran; starting another" in lines
    assert any(line.startswith("answer: Order 42 is charged") for line in lines)
    report = json.loads(lines[-1])
    assert report["completed"] is True and report["worker_killed"] is True
    assert len(report["tool_runs"]) == 3 and set(report["tool_runs"].values()) == {1}
    assert report["duplicates"] == 0


def test_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES.glob("*.py"):
        assert f"python examples/{path.name}" in readme


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_run_streams_a_tool_call(runs: dict[str, Command]) -> None:
    done = ok(runs["cli_run"].done())
    assert OFFLINE_NOTICE in done.stderr
    assert '→ get_weather({"city": "Tokyo"})' in done.stdout
    assert re.search(r"In Tokyo it is -?\d+(\.\d+)?°C", done.stdout)


def test_cli_run_json_prints_one_event_per_line(runs: dict[str, Command]) -> None:
    done = ok(runs["cli_json"].done())
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "run_finished"
    assert "tool_call_started" in kinds and "tool_call_finished" in kinds and "text_delta" in kinds
    assert "Tokyo" in events[-1]["text"]


def test_cli_tools_show_prints_definitions(runs: dict[str, Command]) -> None:
    done = ok(runs["cli_show"].done())
    definitions = json.loads(done.stdout)
    weather = next(d for d in definitions if d["name"] == "get_weather")
    assert weather["input_schema"]["required"] == ["city"]
    assert weather["description"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cli_bad_tools", "no_such_module.tools"), ("cli_bad_url", "ANTHROPIC_API_KEY")],
)
def test_cli_usage_errors_exit_2_with_one_line(runs: dict[str, Command], name: str, expected: str) -> None:
    done = runs[name].done()
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agentkit: error:") and expected in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("grace", "finished"), [(5.0, True), (0.3, False)])
def test_service_shutdown_lets_in_flight_streams_finish_within_grace(grace: float, finished: bool) -> None:
    service_module = load_example("service")
    events: list[tuple[str, object]] = []
    errors: list[BaseException] = []

    async def main(base_url: str) -> None:
        async with Client(api_key="sk", base_url=base_url, http_client=httpx2.AsyncClient()) as client:
            app = service_module.create_app(service_module.make_agent(client))
            sock = service_module.bind(0)
            port = sock.getsockname()[1]
            server = service_module.server_for(app, grace=grace)
            async with httpx2.AsyncClient(timeout=10) as http, anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                # The socket is listening already: requests wait in its backlog until uvicorn accepts.

                async def request() -> None:
                    url = f"http://127.0.0.1:{port}/chat"
                    try:
                        events.extend(await service_module.read_stream(http, url, "Weather in Tokyo?"))
                    except httpx2.HTTPError as exc:  # cut off when the grace period ran out
                        errors.append(exc)

                tg.start_soon(request)
                await anyio.sleep(0.2)  # the run is waiting for its first (0.4 s) model answer
                server.should_exit = True
                await anyio.sleep(0.1)
                with pytest.raises(OSError, match="connection attempts failed"):  # the port is closed
                    await anyio.connect_tcp("127.0.0.1", port)
            assert app.state.stats["in_flight"] == 0

    with (
        LocalServer(policy=OfflineModel(), api_key=None, latency=0.4) as server,
        weather.use_weather_provider(weather.SimulatedWeatherProvider()),
    ):
        anyio.run(main, server.base_url)
    if finished:
        assert events and events[-1][0] == "run_finished" and not errors
    else:
        assert not any(name == "run_finished" for name, _ in events)
