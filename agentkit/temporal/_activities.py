"""The activities of a durable run: one model request, one tool call — and how their errors map onto
Temporal's retries.

Payloads are plain JSON data:

- a model request (:class:`ModelCall`) carries the turn's history inline (``messages``), or — once a
  store holds the run's history — ``session`` (``{"id": ..., "revision": n}``) and no messages, so each
  activity's input stays small however long the run; ``extra`` holds only the body keys that differ
  from what the agent builds itself (``tool_choice``, a ``before_request`` hook's edits): the tools and
  the system prompt are rebuilt from the agent on the worker, never sent;
- its result (:class:`ModelResult`) is the whole Message as received (the stream, if any, is consumed
  inside the activity);
- a tool call (:class:`ToolCall`) carries the tool name, the call's id and input; its result
  (:class:`ToolCallResult`) the ``tool_result`` block and how the call ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

import pydantic_core
from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._context import RunContext
from .._exceptions import AgentKitError, APIConnectionError, APIStatusError, ProtocolError
from .._logging import get_logger
from .._tool_run import ToolOutcome
from ..types import InvalidToolInput, Message, ToolResultBlock, to_wire
from . import _stored

if TYPE_CHECKING:
    from .._client import Client
    from ._agent import TemporalAgent

NON_RETRYABLE_STATUS = frozenset({400, 401, 403, 404, 413})
"""HTTP statuses a model activity never retries (nor any other non-retryable API error)."""

PAYLOAD_LIMIT = 2 * 1024 * 1024
"""Temporal's default limit on one payload (bytes): a bigger result fails at once instead of retrying."""


class SessionRef(TypedDict):
    """A run's history in a store: its session id and the revision the request is built from."""

    id: str
    revision: int


class ModelCall(TypedDict):
    """The input of a model-request activity."""

    run_id: str
    turn: int
    messages: list[dict[str, Any]] | None  # inline history (no store)
    session: SessionRef | None  # with a store: where the history is (messages is then None)
    extra: dict[str, Any]  # body keys that differ from the agent's own


class ModelResult(TypedDict):
    """The result of a model-request activity: the Message, its request id, calls with broken input."""

    message: dict[str, Any]
    request_id: str | None
    invalid: list[dict[str, Any]]


class ToolCall(TypedDict):
    """The input of a tool activity (one activity type per toolset; the tool is named here)."""

    run_id: str
    turn: int
    id: str
    name: str
    input: dict[str, Any]


class ToolCallResult(TypedDict):
    """The result of a tool activity."""

    result: dict[str, Any]
    status: str


def message_to_result(message: Message) -> ModelResult:
    return {
        "message": to_wire(message),
        "request_id": message.request_id,
        "invalid": [to_wire(i) for i in message.invalid_tool_inputs],
    }


def message_from_result(result: ModelResult) -> Message:
    message = Message.model_validate(result["message"])
    message._request_id = result.get("request_id")
    message._invalid_tool_inputs = [InvalidToolInput.model_validate(i) for i in result.get("invalid", ())]
    return message


def outcome_from_result(result: ToolCallResult) -> ToolOutcome:
    from .._tool_run import ToolStatus

    return ToolOutcome(ToolResultBlock.model_validate(result["result"]), ToolStatus(result["status"]))


def payload_size(value: Any) -> int:
    """The size of ``value`` as JSON (what Temporal's default converter sends), in bytes."""
    return len(pydantic_core.to_json(value, inf_nan_mode="strings"))


def _check_size(value: Any, what: str) -> None:
    size = payload_size(value)
    if size > PAYLOAD_LIMIT:
        raise ApplicationError(
            f"{what} is {size} bytes, over Temporal's payload limit of {PAYLOAD_LIMIT} bytes",
            type="PayloadTooLarge",
            non_retryable=True,
        )


def as_application_error(exc: AgentKitError) -> ApplicationError:
    """An agentkit error as Temporal sees it: retryable (rate limits, overload, 5xx, connection
    errors, malformed answers) or not (400/401/403/404/413 and every other terminal error)."""
    if isinstance(exc, APIStatusError):
        retryable = exc.retryable and exc.status_code not in NON_RETRYABLE_STATUS
    else:
        retryable = isinstance(exc, APIConnectionError | ProtocolError)
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not retryable)


def no_retry_client(client: Client) -> Client:
    """A client sharing ``client``'s settings and pool, without HTTP retries (Temporal retries)."""
    quiet = copy.copy(client)
    quiet.max_retries = 0
    return quiet


@contextlib.asynccontextmanager
async def _heartbeats() -> Any:
    """Heartbeat while the activity runs, if it has a heartbeat timeout (a lost worker is noticed then,
    not only at the start-to-close timeout)."""
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        yield
        return
    interval = max(timeout.total_seconds() / 3, 0.05)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build(durable: TemporalAgent) -> tuple[Callable[..., Any], ...]:
    """The activities of ``durable``'s agent: the model request, its toolset's calls and, with a store,
    loading and appending to a session."""
    agent = durable.agent
    fixed, _ = agent._requests.body([], None)
    log = get_logger("agentkit").bind(model=agent.model)
    client_box: list[Client] = []

    def client() -> Client:
        if not client_box:
            client_box.append(no_retry_client(durable.client or agent.client))
        return client_box[0]

    @activity.defn(name=durable.model_activity_name)
    async def model_request(call: ModelCall) -> ModelResult:
        messages = call["messages"]
        ref = call["session"]
        if messages is None and ref is not None:  # the history is in the store, at that revision
            stored, _ = agent._requests.body(await _stored.history_at(durable, ref), None)
            body = {**stored, **call["extra"]}
        elif messages is not None:
            body = {**fixed, "messages": messages, **call["extra"]}
        else:
            raise ApplicationError(
                f"the model request of turn {call['turn']} has neither messages nor a session",
                type="ConfigurationError",
                non_retryable=True,
            )
        try:
            async with _heartbeats():
                if agent.stream_requests:
                    async with client().stream_raw(body) as stream:
                        async for _ in stream.raw_events():
                            activity.heartbeat()
                        message = await stream.final_message()
                else:
                    message = await client().create_raw(body)
        except AgentKitError as exc:
            raise as_application_error(exc) from None
        result = message_to_result(message)
        _check_size(result, f"the answer to turn {call['turn']}")
        return result

    @activity.defn(name=durable.tool_activity_name)
    async def call_tool(call: ToolCall) -> ToolCallResult:
        info = activity.info()
        key = f"{info.workflow_id}:{call['id']}"
        ctx: RunContext[Any] = RunContext(
            deps=durable.deps,
            run_id=call["run_id"],
            turn=call["turn"],
            log=log.bind(run_id=call["run_id"], workflow_id=info.workflow_id, attempt=info.attempt),
            idempotency_key=key,
        )
        tool_use = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"]}
        try:
            async with _heartbeats():
                outcome = await agent.toolset.execute(tool_use, ctx, timeout=agent.tool_timeout)
        except AgentKitError as exc:
            raise as_application_error(exc) from None
        result: ToolCallResult = {"result": to_wire(outcome.result), "status": str(outcome.status)}
        _check_size(result, f"the result of {call['name']} ({call['id']})")
        return result

    if agent.store is None:
        return model_request, call_tool
    return model_request, call_tool, *_stored.build(durable)
