"""Runs of one Conversation take turns: a run given a Conversation that another run is still writing
is refused with ConversationBusyError, and nothing of it is sent or added (a chat's double submit would
otherwise merge two runs' turns into one history). No timing: the first run's tool waits until the
test has seen the second refused."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import anyio
import pytest

from agentkit import Agent, BadRequestError, Client, Conversation, ConversationBusyError, RunState
from agentkit.testing import LocalServer, Script, reply

from .conftest import Held, results_by_id

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"


def agent_for(server: LocalServer, gate: Held) -> Agent[Any, Any]:
    client = Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
    return Agent(client, model=MODEL, tools=[gate.tool])


def model_requests(server: LocalServer) -> int:
    return len([r for r in server.requests if r.path == "/v1/messages"])


@pytest.mark.parametrize("second", ["run", "stream", "resume"])
async def test_a_second_run_on_a_conversation_being_written_is_refused_and_adds_nothing(second: str) -> None:
    gate = Held()
    conversation = Conversation()
    replies = Script([reply.tool_uses([("hold", {})]), reply.text("first done"), reply.text("later done")])
    with LocalServer(policy=replies) as server, anyio.fail_after(10):
        agent = agent_for(server, gate)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(agent.run, "first", history=conversation))
            await gate.entered.wait()  # the first run is in its tool call: it is writing the conversation
            before = conversation.to_wire()
            with pytest.raises(ConversationBusyError, match="still writing this Conversation") as refused:
                if second == "run":
                    await agent.run("second", history=conversation)
                elif second == "stream":
                    agent.stream("second", history=conversation)  # refused where it is given
                else:  # a state that shares the conversation, resumed while its run goes on
                    await agent.resume(RunState(conversation=conversation))
            assert conversation.to_wire() == before  # nothing of the refused run went in
            assert model_requests(server) == 1  # and nothing of it was sent
            copied = copy.deepcopy(conversation)  # a copy is a history of its own, free to run
            agent.stream("on the copy", history=copied)  # (not iterated: nothing is sent)
            gate.release.set()
        assert refused.value.run_id.startswith("run_")
        assert "second" not in conversation.to_json()
        # once the first run is over, the conversation takes the next one
        assert (await agent.run("later", history=conversation)).text == "later done"
    conversation.check()
    assert [m["role"] for m in conversation.to_wire()] == ["user", "assistant"] * 3  # two runs' turns only


async def test_a_cancelled_or_failed_run_lets_the_conversation_go() -> None:
    gate = Held()
    conversation = Conversation()
    replies = Script([reply.tool_uses([("hold", {})]), reply.error(400), reply.text("after the error")])
    with LocalServer(policy=replies) as server, anyio.fail_after(10):
        agent = agent_for(server, gate)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(agent.run, "cancelled", history=conversation))
            await gate.entered.wait()
            tg.cancel_scope.cancel()
        conversation.check()  # the cancelled call is answered
        with pytest.raises(BadRequestError):
            await agent.run("fails", history=conversation)
        assert (await agent.run("works", history=conversation)).text == "after the error"
    assert [r.is_error for r in results_by_id(conversation.messages).values()] == [True]


async def test_runs_of_different_conversations_still_run_at_once() -> None:
    gates = [Held(), Held()]
    replies = Script(
        [reply.tool_uses([("hold", {})]), reply.tool_uses([("hold", {})]), reply.text("a"), reply.text("b")]
    )
    conversations = [Conversation(), Conversation()]
    with LocalServer(policy=replies) as server, anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for gate, conversation in zip(gates, conversations, strict=True):
                tg.start_soon(partial(agent_for(server, gate).run, "go", history=conversation))
            for gate in gates:  # both runs are inside their tool call at the same time
                await gate.entered.wait()
            for gate in gates:
                gate.release.set()
    for conversation in conversations:
        conversation.check()
        assert len(conversation) == 4
