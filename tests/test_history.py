"""History validation (agentkit._history): the API's 400 rules, checked before a request is sent."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit._exceptions import HistoryError
from agentkit._history import INTERRUPTED_RESULT, check_messages, check_thinking_history, repair_history
from agentkit.testing._validation import InvalidRequest, validate_count_tokens, validate_create

from .conftest import load_json, named_over_corpora, over_corpora, request_bodies

REQUESTS = over_corpora(request_bodies)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def call(tid: str, name: str = "get_weather") -> dict[str, Any]:
    return {"type": "tool_use", "id": tid, "name": name, "input": {"city": "Tokyo"}}


def result(tid: str, content: str = "sunny") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tid, "content": content}


def thinking(t: str = "hmm") -> dict[str, Any]:
    return {"type": "thinking", "thinking": t, "signature": "sig"}


# ------------------------------------------------------------------------------------------ valid


@pytest.mark.parametrize("path", REQUESTS)
def test_fixture_requests_pass(path: Any) -> None:
    body = load_json(path)
    check_messages(body["messages"])
    thinking_on = body.get("thinking", {}).get("type") in ("enabled", "adaptive")
    check_thinking_history(body["messages"], thinking_on)
    if "max_tokens" in body:
        validate_create(body)
    else:
        validate_count_tokens(body)


VALID: list[tuple[str, list[dict[str, Any]]]] = [
    ("single string", [user("hi")]),
    ("prefill", [user("hi"), assistant("The answer is")]),
    ("empty final assistant", [user("hi"), assistant([])]),
    ("tool loop", [user("hi"), assistant([text("let me look"), call("t1")]), user([result("t1")])]),
    ("text after results", [user("hi"), assistant([call("t1")]), user([result("t1"), text("and?")])]),
    (
        "parallel any order",
        [user("hi"), assistant([call("t1"), call("t2")]), user([result("t2"), result("t1")])],
    ),
    ("unknown block kept", [user("hi"), assistant([{"type": "server_tool_use", "id": "s1"}, text("x")])]),
    (
        "error result without content",
        [
            user("x"),
            assistant([call("a")]),
            user([{"type": "tool_result", "tool_use_id": "a", "is_error": True}]),
        ],
    ),
    (
        "redacted",
        [
            user("x"),
            assistant([{"type": "redacted_thinking", "data": "abc"}, call("a")]),
            user([result("a")]),
        ],
    ),
]


@pytest.mark.parametrize(("name", "messages"), VALID, ids=[v[0] for v in VALID])
def test_valid_histories(name: str, messages: list[dict[str, Any]]) -> None:
    check_messages(messages)


# ------------------------------------------------------------------------------------------ broken

BROKEN: list[tuple[str, Any, int | None, str]] = [
    ("empty", [], None, "at least one message"),
    ("not a list", {"role": "user"}, None, "valid list"),
    ("first is assistant", [assistant("hi")], 0, "first message must use the `user` role"),
    ("bad role", [user("a"), {"role": "system", "content": "x"}], 1, "'user' or 'assistant'"),
    ("no role", [{"content": "x"}], 0, "messages.0.role: Field required"),
    (
        "result after text, across combined user messages",
        [user("a"), assistant([call("toolu_1")]), user("here"), user([result("toolu_1")])],
        1,
        "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "unanswered call in a combined assistant turn",
        [user("a"), assistant([call("toolu_1")]), assistant("done"), user("thanks")],
        2,
        "immediately after: toolu_1",
    ),
    (
        "empty text inside tool_result content",
        [user("a"), assistant([call("toolu_1")]), user([{**result("toolu_1"), "content": [text("")]}])],
        2,
        "messages.2.content.0.tool_result.content.0.text: text content blocks must be non-empty",
    ),
    ("content int", [user(3)], 0, "valid string or a list"),
    ("no content", [{"role": "user"}], 0, "messages.0.content: Field required"),
    ("empty user content", [user("")], 0, "non-empty content"),
    ("empty user list", [user([]), assistant("x")], 0, "non-empty content"),
    (
        "empty text block",
        [user([text("")])],
        0,
        "messages.0.content.0.text: text content blocks must be non-empty",
    ),
    ("block without type", [user([{"text": "x"}])], 0, "messages.0.content.0.type: Field required"),
    ("block not a dict", [user(["x"])], 0, "messages.0.content.0"),
    (
        "missing tool_result",
        [user("a"), assistant([call("toolu_1")]), user("thanks")],
        1,
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "one of two missing",
        [user("a"), assistant([call("toolu_1"), call("toolu_2")]), user([result("toolu_1")])],
        1,
        "immediately after: toolu_2",
    ),
    (
        "result after text",
        [user("a"), assistant([call("toolu_1")]), user([text("here"), result("toolu_1")])],
        1,
        "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "unexpected id",
        [user("a"), assistant([call("toolu_1")]), user([result("toolu_1"), result("toolu_9")])],
        2,
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
    ),
    ("result without call", [user([result("toolu_9")])], 0, "unexpected `tool_use_id`"),
    (
        "duplicate result",
        [user("a"), assistant([call("toolu_1")]), user([result("toolu_1"), result("toolu_1")])],
        2,
        "duplicate `tool_result`",
    ),
    (
        "duplicate ids in a turn",
        [user("a"), assistant([call("toolu_1"), call("toolu_1")])],
        1,
        "`tool_use` ids must be unique",
    ),
    (
        "duplicate ids across turns",
        [user("a"), assistant([call("toolu_1")]), user([result("toolu_1")]), assistant([call("toolu_1")])],
        3,
        "`tool_use` ids must be unique",
    ),
    (
        "final assistant ends in tool_use",
        [user("a"), assistant([text("calling"), call("toolu_1")])],
        1,
        "without `tool_result` blocks immediately after: toolu_1",
    ),
    ("tool_use in user", [user([call("toolu_1")])], 0, "`tool_use` blocks can only appear in `assistant`"),
    ("tool_result in assistant", [user("a"), assistant([result("x")])], 1, "only appear in `user`"),
    (
        "thinking without signature",
        [user("a"), assistant([{"type": "thinking", "thinking": "hm"}, text("x")])],
        1,
        "messages.1.content.0.thinking.signature: Field required",
    ),
    (
        "redacted without data",
        [user("a"), assistant([{"type": "redacted_thinking"}, text("x")])],
        1,
        "messages.1.content.0.redacted_thinking.data: Field required",
    ),
    ("prefill trailing space", [user("a"), assistant("The answer is ")], 1, "trailing whitespace"),
    (
        "tool_use without input",
        [user("a"), assistant([{"type": "tool_use", "id": "t", "name": "n"}])],
        1,
        "input",
    ),
]


@pytest.mark.parametrize(("name", "messages", "index", "fragment"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_histories(name: str, messages: Any, index: int | None, fragment: str) -> None:
    with pytest.raises(HistoryError) as info:
        check_messages(messages)
    assert fragment in str(info.value)
    assert info.value.index == index


def test_history_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        check_messages([])


# ------------------------------------------------------------------------------------------ thinking


@pytest.mark.parametrize("path", named_over_corpora("thinking_followup"))
def test_thinking_dropped_from_running_tool_loop_is_rejected(path: Any) -> None:
    body = load_json(path)
    messages = copy.deepcopy(body["messages"])
    check_thinking_history(messages, True)
    messages[1]["content"] = [b for b in messages[1]["content"] if b["type"] != "thinking"]
    check_messages(messages)
    check_thinking_history(messages, False)  # thinking off: fine
    with pytest.raises(HistoryError) as info:
        check_thinking_history(messages, True)
    assert "Expected `thinking` or `redacted_thinking`, but found `tool_use`" in str(info.value)
    assert info.value.index == 1


def test_thinking_rules_follow_the_running_turn() -> None:
    chain = [
        user("weather?"),
        assistant([thinking(), call("a")]),
        user([result("a")]),
        assistant([call("b")]),  # same turn continued without interleaved thinking: allowed
        user([result("b")]),
    ]
    check_thinking_history(chain, True)
    # A new user prompt starts a new turn: earlier turns may have lost their thinking.
    old_turn = [user("q"), assistant([call("a")]), user([result("a")]), assistant("done"), user("next")]
    check_thinking_history(old_turn, True)
    # The running turn starting without thinking is refused, pointing at its first message.
    broken = [
        user("q"),
        assistant([text("x"), call("a")]),
        user([result("a")]),
        assistant([call("b")]),
        user([result("b")]),
    ]
    with pytest.raises(HistoryError, match="but found `text`") as info:
        check_thinking_history(broken, True)
    assert info.value.index == 1
    redacted = [
        user("q"),
        assistant([{"type": "redacted_thinking", "data": "d"}, call("a")]),
        user([result("a")]),
    ]
    check_thinking_history(redacted, True)
    with pytest.raises(HistoryError, match="found `text`"):
        check_thinking_history([user("q"), assistant("prefill")], True)


# ------------------------------------------------------------------------------------------ repair

REPAIRABLE = [
    b
    for b in BROKEN
    if b[0]
    in {"missing tool_result", "one of two missing", "result after text", "final assistant ends in tool_use"}
] + [
    ("assistant then assistant", [user("a"), assistant([call("t1")]), assistant("x")], 1, ""),
    ("string after tool turn", [user("a"), assistant([call("t1")]), user("go on")], 1, ""),
]


@pytest.mark.parametrize(
    ("name", "messages", "index", "fragment"), REPAIRABLE, ids=[b[0] for b in REPAIRABLE]
)
def test_repair_makes_history_valid(
    name: str, messages: list[dict[str, Any]], index: int, fragment: str
) -> None:
    before = copy.deepcopy(messages)
    repaired = repair_history(messages)
    assert messages == before  # pure
    check_messages(repaired)
    interrupted = [
        b
        for m in repaired
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result" and b.get("content") == INTERRUPTED_RESULT
    ]
    if name == "result after text":  # the existing result is moved before the text, nothing invented
        assert not interrupted
    else:
        assert interrupted
    assert all(b["is_error"] is True for b in interrupted)


def test_repair_keeps_existing_results_and_text() -> None:
    messages = [user("a"), assistant([call("t1"), call("t2")]), user([text("hurry"), result("t2", "rain")])]
    repaired = repair_history(messages)
    assert repaired[2]["content"] == [
        result("t2", "rain"),
        {"type": "tool_result", "tool_use_id": "t1", "content": INTERRUPTED_RESULT, "is_error": True},
        text("hurry"),
    ]
    assert messages[2]["content"][0] == text("hurry")


@pytest.mark.parametrize("path", REQUESTS)
def test_repair_leaves_valid_history_alone(path: Any) -> None:
    messages = load_json(path)["messages"]
    repaired = repair_history(messages)
    assert repaired == messages
    assert all(a is b for a, b in zip(repaired, messages, strict=True))


@st.composite
def tool_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [user("start")]
    counter = 0
    for _ in range(draw(st.integers(0, 5))):
        n_calls = draw(st.integers(0, 3))
        ids = [f"toolu_{counter + k}" for k in range(n_calls)]
        counter += n_calls
        messages.append(assistant([text("thinking aloud")] + [call(i) for i in ids] if n_calls else "plain"))
        answered = draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []
        blocks: list[dict[str, Any]] = [result(i) for i in answered]
        if draw(st.booleans()) or not blocks:
            blocks.insert(draw(st.integers(0, len(blocks))), text("more"))
        if draw(st.booleans()):
            messages.append(user(blocks))
        elif ids:
            messages.append(user(blocks))
            break
        else:
            messages.append(user("next"))
    if draw(st.booleans()) and messages[-1]["role"] == "user":
        messages.append(assistant([call(f"toolu_{counter}")]))
    return messages


@settings(max_examples=150, deadline=None)
@given(tool_histories())
def test_repair_property(messages: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(messages)
    repaired = repair_history(messages)
    assert messages == before
    check_messages(repaired)
    assert repair_history(repaired) == repaired


def test_long_histories_are_checked_whole() -> None:
    """10,001 messages pass, and a fault at the very end is still found (its speed is measured in
    ``python -m benchmarks.history``, not here)."""
    messages: list[dict[str, Any]] = [user("go")]
    for k in range(5000):
        messages.append(assistant([thinking(), text("calling"), call(f"toolu_{k}a"), call(f"toolu_{k}b")]))
        messages.append(user([result(f"toolu_{k}a"), result(f"toolu_{k}b")]))
    check_messages(messages)
    check_thinking_history(messages, True)
    assert repair_history(messages) == messages
    messages[-1] = user([result("toolu_4999a")])
    with pytest.raises(HistoryError) as info:
        check_messages(messages)
    assert info.value.index == len(messages) - 2


def test_validate_create_wraps_history_errors() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [user("a"), user([text("")])]}
    with pytest.raises(InvalidRequest, match=r"messages\.1\.content\.0\.text: text content blocks"):
        validate_create(body)


# Wire reference §3: "the API merges consecutive same-role turns" (user with user, assistant with
# assistant); the tool-result and thinking rules apply to the combined turns.
COMBINED: list[tuple[str, Any]] = [
    ("two users", [user("a"), user("b")]),
    ("two assistants", [user("a"), assistant("b"), assistant("c")]),
    (
        "results, then text in the next user message",
        [user("a"), assistant([call("t1")]), user([result("t1")]), user("more")],
    ),
    (
        "call in the second assistant message",
        [user("a"), assistant("let me check"), assistant([call("t1")]), user([result("t1")])],
    ),
]


@pytest.mark.parametrize(("name", "messages"), COMBINED, ids=[c[0] for c in COMBINED])
def test_consecutive_same_role_messages_are_one_turn(name: str, messages: Any) -> None:
    check_messages(messages)
    validate_create({"model": "m", "max_tokens": 10, "messages": messages})


def test_thinking_rule_applies_to_the_combined_assistant_turn() -> None:
    running = [user("a"), assistant([thinking()]), assistant([call("t1")]), user([result("t1")])]
    check_messages(running)
    check_thinking_history(running, True)  # the combined turn starts with thinking
    lost = [user("a"), assistant("x"), assistant([thinking(), call("t1")]), user([result("t1")])]
    with pytest.raises(HistoryError, match=r"messages\.1\.content\.0\.type: Expected `thinking`"):
        check_thinking_history(lost, True)
