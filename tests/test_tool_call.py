"""Running tools: validation, context injection, error results, timeouts, threads, results, toolsets."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import threading
import types
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import structlog
from pydantic import BaseModel, Field

from agentkit._context import RunContext
from agentkit._exceptions import ConfigurationError, ToolDefinitionError, ToolError
from agentkit._tool import Image, Tool, tool
from agentkit._toolset import Toolset
from agentkit.types import ImageBlock, TextBlock, ToolResultBlock, ToolUseBlock, Usage, to_wire

pytestmark = pytest.mark.anyio


def call(name: str, tool_input: Any, id: str = "toolu_01") -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": tool_input}


@tool
def get_weather(city: str, days: Annotated[int, Field(ge=1, le=16)] = 3) -> str:
    """Get the weather forecast.

    Args:
        city: City name.
        days: Number of days.
    """
    return f"{city}: sunny for {days} days"


@tool
async def get_weather_async(city: str) -> dict[str, Any]:
    """Async weather.

    Args:
        city: City name.
    """
    await anyio.lowlevel.checkpoint()
    return {"city": city, "temp_c": 21.5}


@dataclasses.dataclass
class Deps:
    prefix: str


# --- basic calls -------------------------------------------------------------------------------


async def test_sync_tool() -> None:
    result = await get_weather.run(call("get_weather", {"city": "Paris", "days": 2}))
    assert result == ToolResultBlock(tool_use_id="toolu_01", content="Paris: sunny for 2 days")
    assert to_wire(result) == {
        "type": "tool_result",
        "tool_use_id": "toolu_01",
        "content": "Paris: sunny for 2 days",
    }


async def test_async_tool_and_tool_use_block() -> None:
    block = ToolUseBlock(id="toolu_02", name="get_weather_async", input={"city": "Oslo"})
    result = await get_weather_async.run(block)
    assert result.tool_use_id == "toolu_02"
    assert result.content == '{"city":"Oslo","temp_c":21.5}'
    assert result.is_error is None


async def test_defaults_applied() -> None:
    result = await get_weather.run(call("get_weather", {"city": "Rome"}))
    assert result.content == "Rome: sunny for 3 days"


async def test_an_unknown_key_is_refused_not_run_with_the_default() -> None:
    """A misspelled argument ("dayz") must not run the tool with days' default and no word to the model."""
    ran: list[int] = []

    @tool
    def forecast(city: str, days: int = 1) -> str:
        """Forecast.

        Args:
            city: City name.
            days: Days to forecast.
        """
        ran.append(days)
        return f"{city}: {days} days"

    result = await forecast.run(call("forecast", {"city": "Oslo", "dayz": 5, "unitz": "c"}))
    assert result.is_error is True
    assert isinstance(result.content, str)
    assert "dayz" in result.content and "unitz" in result.content and "unknown parameter" in result.content
    assert ran == []
    assert forecast.input_schema["additionalProperties"] is False


async def test_positional_only_parameters() -> None:
    @tool
    def sub(a: int, /, b: int) -> int:
        """a - b."""
        return a - b

    result = await sub.run(call("sub", {"a": 5, "b": 2}))
    assert result.content == "3"


async def test_methods_bound_to_instance() -> None:
    class Counter:
        def __init__(self) -> None:
            self.total = 0

        @tool
        def add(self, amount: int) -> int:
            """Add to the counter.

            Args:
                amount: How much.
            """
            self.total += amount
            return self.total

        @tool
        async def reset(self) -> str:
            """Reset."""
            self.total = 0
            return "ok"

    counter = Counter()
    assert (await counter.add.run(call("add", {"amount": 2}))).content == "2"
    assert (await counter.add.run(call("add", {"amount": 3}))).content == "5"
    assert counter.total == 5
    assert (await counter.reset.run(call("reset", {}))).content == "ok"
    assert counter.total == 0
    with pytest.raises(TypeError, match="from an instance"):
        await Counter.add.run(call("add", {"amount": 1}))


# --- context injection -------------------------------------------------------------------------


async def test_context_injected_at_any_position() -> None:
    seen: list[RunContext[Deps]] = []

    @tool
    def greet(name: str, ctx: RunContext[Deps], punctuation: str = "!") -> str:
        """Greet.

        Args:
            name: Who.
            punctuation: End mark.
        """
        seen.append(ctx)
        return f"{ctx.deps.prefix} {name}{punctuation}"

    ctx = RunContext(deps=Deps("Hello"), run_id="run_1", turn=2, usage=Usage(input_tokens=5))
    result = await greet.run(call("greet", {"name": "Ada"}, id="toolu_ctx"), ctx)
    assert result.content == "Hello Ada!"
    assert greet.wants_context
    assert "ctx" not in greet.input_schema["properties"]
    (given,) = seen
    assert given.tool_use_id == "toolu_ctx"
    assert given.run_id == "run_1" and given.turn == 2 and given.usage.input_tokens == 5
    assert ctx.tool_use_id is None  # the caller's context is not mutated


async def test_context_default_when_none_given() -> None:
    @tool
    async def whoami(ctx: RunContext[None]) -> str:
        """Report the call id."""
        return f"{ctx.tool_use_id} {ctx.deps}"

    result = await whoami.run(call("whoami", {}, id="toolu_x"))
    assert result.content == "toolu_x None"


# --- error results -----------------------------------------------------------------------------


async def test_invalid_input_lists_each_field() -> None:
    result = await get_weather.run(call("get_weather", {"days": 30}))
    assert result.is_error is True
    assert result.content == (
        "Invalid input for get_weather: city: Field required; "
        "days: Input should be less than or equal to 16 (got 30)"
    )


async def test_invalid_nested_path_and_trimmed_value() -> None:
    class Item(BaseModel):
        sku: str
        qty: int

    @tool
    def order(items: list[Item], note: str = "") -> str:
        """Order."""
        return "ok"

    result = await order.run(call("order", {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "x"}]}))
    assert result.content == (
        "Invalid input for order: items[1].qty: Input should be a valid integer, unable to parse string "
        "as an integer (got 'x')"
    )
    result = await order.run(call("order", {"items": [], "note": ["n" * 200]}))
    assert isinstance(result.content, str)
    assert result.content.startswith(
        "Invalid input for order: note: Input should be a valid string (got ['nnn"
    )
    assert result.content.endswith("...)")
    assert len(result.content) < 150


@pytest.mark.parametrize(
    ("tool_input", "described"),
    [([1, 2], "an array"), ("Paris", "a string"), (None, "null"), (3, "a number")],
)
async def test_non_object_input(tool_input: Any, described: str) -> None:
    result = await get_weather.run(call("get_weather", tool_input))
    assert result.is_error is True
    assert result.content == f"Invalid input for get_weather: expected a JSON object, got {described}"


async def test_tool_error_message_verbatim() -> None:
    @tool
    def fail(x: int) -> str:
        """Fail."""
        raise ToolError(f"x={x} is not allowed; try an even number")

    with structlog.testing.capture_logs() as logs:
        result = await fail.run(call("fail", {"x": 3}))
    assert result.is_error is True
    assert result.content == "x=3 is not allowed; try an even number"
    assert not [e for e in logs if e["event"] == "tool.error"]


async def test_tool_error_inside_single_exception_group() -> None:
    @tool
    async def grouped() -> str:
        """Group."""
        async with anyio.create_task_group() as tg:

            async def boom() -> None:
                raise ToolError("inner problem")

            tg.start_soon(boom)
        return "unreachable"

    result = await grouped.run(call("grouped", {}))
    assert result.is_error is True
    assert result.content == "inner problem"


async def test_unexpected_exception_short_text_traceback_in_logs() -> None:
    @tool
    def divide(a: int, b: int) -> float:
        """Divide."""
        return a / b

    with structlog.testing.capture_logs() as logs:
        result = await divide.run(call("divide", {"a": 1, "b": 0}, id="toolu_div"))
    assert result.is_error is True
    assert result.content == "ZeroDivisionError: division by zero"
    assert "Traceback" not in result.content
    (entry,) = [e for e in logs if e["event"] == "tool.error"]
    assert entry["tool"] == "divide"
    assert entry["tool_use_id"] == "toolu_div"
    assert isinstance(entry["exc_info"], ZeroDivisionError)
    assert entry["exc_info"].__traceback__ is not None
    assert entry["log_level"] == "error"


async def test_exception_without_message() -> None:
    @tool
    async def silent() -> None:
        """Silent."""
        raise RuntimeError

    with structlog.testing.capture_logs():
        result = await silent.run(call("silent", {}))
    assert result.content == "RuntimeError"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
async def test_keyboard_interrupt_and_system_exit_propagate(exc_type: type[BaseException]) -> None:
    @tool
    async def stop() -> None:
        """Stop."""
        raise exc_type

    with pytest.raises(exc_type):
        await stop.run(call("stop", {}))


# --- timeouts, threads, cancellation -----------------------------------------------------------


async def test_sync_tool_timeout() -> None:
    release = threading.Event()

    @tool(timeout=0.1)
    def slow() -> str:
        """Slow."""
        release.wait(10)
        return "late"

    try:
        with structlog.testing.capture_logs() as logs:
            with anyio.fail_after(5):
                result = await slow.run(call("slow", {}))
    finally:
        release.set()
    assert result.is_error is True
    assert result.content == "tool timed out after 0.1s"
    assert [e["event"] for e in logs] == ["tool.timeout"]


async def test_async_tool_timeout() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(10)
        return "late"

    with structlog.testing.capture_logs(), anyio.fail_after(5):
        result = await slow.run(call("slow", {}))
    assert result.is_error is True
    assert result.content == "tool timed out after 0.05s"


async def test_timeout_error_raised_by_the_tool_is_not_a_timeout() -> None:
    @tool(timeout=5)
    async def raises_timeout() -> str:
        """Raises."""
        raise TimeoutError("upstream took too long")

    with structlog.testing.capture_logs():
        result = await raises_timeout.run(call("raises_timeout", {}))
    assert result.content == "TimeoutError: upstream took too long"


async def test_sync_tool_does_not_block_the_loop() -> None:
    release = threading.Event()
    ticks = 0

    @tool
    def blocking() -> str:
        """Blocks its thread until released."""
        if not release.wait(5):
            return "never released"
        return "released"

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await anyio.sleep(0.01)
            ticks += 1
        release.set()

    results: list[ToolResultBlock] = []

    async def runner() -> None:
        results.append(await blocking.run(call("blocking", {})))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            tg.start_soon(ticker)
    assert ticks == 5
    assert results[0].content == "released"


async def test_cancellation_propagates() -> None:
    started = anyio.Event()
    finished = False

    @tool
    async def forever() -> str:
        """Never returns."""
        started.set()
        await anyio.sleep_forever()
        return "unreachable"

    async def runner() -> None:
        nonlocal finished
        await forever.run(call("forever", {}))
        finished = True

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            await started.wait()
            tg.cancel_scope.cancel()
    assert tg.cancel_scope.cancelled_caught
    assert not finished


async def test_cancellation_propagates_from_timed_sync_tool() -> None:
    release = threading.Event()
    started = threading.Event()

    @tool(timeout=30)
    def stuck() -> str:
        """Waits."""
        started.set()
        release.wait(10)
        return "late"

    outcome: list[ToolResultBlock] = []
    try:
        with anyio.fail_after(5):
            with anyio.CancelScope() as scope:

                async def cancel_soon() -> None:
                    await anyio.to_thread.run_sync(started.wait, 5)
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_soon)
                    outcome.append(await stuck.run(call("stuck", {})))
    finally:
        release.set()
    assert scope.cancelled_caught
    assert outcome == []


# --- return values -----------------------------------------------------------------------------


class Forecast(BaseModel):
    city: str
    temps: list[float]


@dataclasses.dataclass
class Reading:
    when: dt.date
    value: float


PNG = b"\x89PNG\r\n\x1a\nfake"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ({"a": 1, "b": [True, None], "c": "é"}, '{"a":1,"b":[true,null],"c":"é"}'),
        ([1, 2, 3], "[1,2,3]"),
        ((1, "x"), '[1,"x"]'),
        (["a", "b"], '["a","b"]'),
        ([], "[]"),
        ({}, "{}"),
        (42, "42"),
        (2.5, "2.5"),
        (True, "true"),
        (Forecast(city="Oslo", temps=[1.0, 2.5]), '{"city":"Oslo","temps":[1.0,2.5]}'),
        (Reading(dt.date(2025, 1, 2), 3.0), '{"when":"2025-01-02","value":3.0}'),
        ({"when": dt.datetime(2025, 1, 2, 3, 4, 5)}, '{"when":"2025-01-02T03:04:05"}'),
        ({1, 2}, "[1,2]"),
        ([{"type": "fruit", "name": "apple"}], '[{"type":"fruit","name":"apple"}]'),
        ([{"type": "text", "value": 1}], '[{"type":"text","value":1}]'),
        (None, None),
    ],
    ids=lambda v: type(v).__name__,
)
async def test_return_value_conversion(value: Any, expected: Any) -> None:
    @tool
    def give() -> Any:
        """Give."""
        return value

    result = await give.run(call("give", {}))
    assert result.is_error is None
    assert result.content == expected


async def test_none_result_wire_form() -> None:
    @tool
    async def nothing() -> None:
        """Nothing."""

    result = await nothing.run(call("nothing", {}))
    assert to_wire(result) == {"type": "tool_result", "tool_use_id": "toolu_01"}


async def test_image_results() -> None:
    @tool
    def snapshot() -> Image:
        """Snapshot."""
        return Image(PNG, "image/png")

    @tool
    def captioned() -> list[Any]:
        """Captioned."""
        return ["A chart:", Image(PNG, "image/png"), {"type": "text", "text": "(fake)"}]

    encoded = base64.b64encode(PNG).decode()
    image_wire = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}}

    result = await snapshot.run(call("snapshot", {}))
    assert to_wire(result)["content"] == [image_wire]

    result = await captioned.run(call("captioned", {}))
    assert to_wire(result)["content"] == [
        {"type": "text", "text": "A chart:"},
        image_wire,
        {"type": "text", "text": "(fake)"},
    ]


async def test_content_blocks_pass_through() -> None:
    block = ImageBlock(source={"type": "url", "url": "https://example.com/a.png"})

    @tool
    def blocks() -> list[Any]:
        """Blocks."""
        return [TextBlock(text="hi"), block]

    result = await blocks.run(call("blocks", {}))
    assert result.content == [TextBlock(text="hi"), block]


def test_image_media_type_checked(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="unsupported image media type"):
        Image(b"x", "image/bmp")
    path = tmp_path / "pic.jpg"
    path.write_bytes(b"jpeg")
    image = Image.from_path(path)
    assert image.media_type == "image/jpeg" and image.data == b"jpeg"


async def test_truncation() -> None:
    @tool(max_result_chars=10)
    def long() -> str:
        """Long."""
        return "x" * 25

    @tool(max_result_chars=10)
    def long_json() -> list[int]:
        """Long JSON."""
        return list(range(20))

    result = await long.run(call("long", {}))
    assert result.content == "x" * 10 + "\n…[truncated: 15 more characters]"
    result = await long_json.run(call("long_json", {}))
    assert isinstance(result.content, str)
    assert result.content.startswith("[0,1,2,3,4")
    assert "[truncated: " in result.content


async def test_default_truncation_limit() -> None:
    @tool
    def huge() -> str:
        """Huge."""
        return "y" * 100_005

    result = await huge.run(call("huge", {}))
    assert result.content == "y" * 100_000 + "\n…[truncated: 5 more characters]"


async def test_unserialisable_return() -> None:
    class Opaque:
        pass

    @tool
    def opaque() -> Any:
        """Opaque."""
        return {"handle": Opaque()}

    with structlog.testing.capture_logs() as logs:
        result = await opaque.run(call("opaque", {}))
    assert result.is_error is True
    assert result.content == "tool returned an unserialisable value of type dict"
    assert [e["event"] for e in logs] == ["tool.error"]


async def test_sync_wrapper_returning_coroutine_is_awaited() -> None:
    async def inner(x: int) -> int:
        return x + 1

    def wrapper(x: int) -> Any:
        """Wraps."""
        return inner(x)

    result = await tool(wrapper).run(call("wrapper", {"x": 1}))
    assert result.content == "2"


# --- toolsets ----------------------------------------------------------------------------------


def plain_echo(text: str) -> str:
    """Echo the text.

    Args:
        text: Anything.
    """
    return text


async def test_toolset_basics_and_dispatch() -> None:
    toolset = Toolset([get_weather, get_weather_async, plain_echo])
    assert toolset.names == ["get_weather", "get_weather_async", "plain_echo"]
    assert len(toolset) == 3
    assert [t.name for t in toolset] == toolset.names
    assert isinstance(toolset.get("plain_echo"), Tool)
    assert toolset.get("nope") is None
    assert "get_weather" in toolset
    assert toolset["get_weather"] is get_weather

    result = await toolset.run(call("plain_echo", {"text": "hi"}))
    assert result.content == "hi"
    result = await toolset.run(ToolUseBlock(id="toolu_9", name="get_weather", input={"city": "Lima"}))
    assert result.content == "Lima: sunny for 3 days"

    result = await toolset.run(call("teleport", {}))
    assert result.is_error is True
    assert result.content == (
        "Unknown tool 'teleport'. Available tools: get_weather, get_weather_async, plain_echo"
    )


def test_toolset_definitions_cached_and_cache_control_on_last() -> None:
    toolset = Toolset([get_weather, plain_echo])
    first = toolset.definitions()
    second = toolset.definitions()
    assert first == second
    assert all(a is b for a, b in zip(first, second, strict=True))  # computed once
    assert [d["name"] for d in first] == ["get_weather", "plain_echo"]
    assert all("cache_control" not in d for d in first)

    cached = toolset.definitions(cache_control=True)
    assert "cache_control" not in cached[0]
    assert cached[-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in toolset.definitions()[-1]
    assert toolset.definitions(cache_control={"type": "ephemeral", "ttl": "1h"})[-1]["cache_control"] == {
        "type": "ephemeral",
        "ttl": "1h",
    }
    assert Toolset().definitions(cache_control=True) == []


def test_toolset_duplicate_names() -> None:
    @tool(name="get_weather")
    def other(city: str) -> str:
        """Other."""
        return city

    with pytest.raises(ToolDefinitionError, match="duplicate tool name 'get_weather'"):
        Toolset([get_weather, other])
    assert len(Toolset([get_weather, get_weather])) == 1  # the same tool twice is harmless


def test_toolset_from_module() -> None:
    module = types.ModuleType("fake_tools")
    exec(
        "from agentkit._tool import tool\n"
        "@tool\n"
        "def alpha(x: int) -> int:\n"
        "    '''Alpha.'''\n"
        "    return x\n"
        "@tool\n"
        "def beta() -> str:\n"
        "    '''Beta.'''\n"
        "    return 'b'\n"
        "alias = alpha\n"
        "def not_a_tool() -> None: ...\n",
        module.__dict__,
    )
    toolset = Toolset.from_module(module)
    assert toolset.names == ["alpha", "beta"]


async def test_toolset_from_object() -> None:
    class Bank:
        def __init__(self) -> None:
            self.balance = 100

        @tool
        def deposit(self, amount: int) -> int:
            """Deposit.

            Args:
                amount: Money in.
            """
            self.balance += amount
            return self.balance

        @tool
        async def balance_of(self) -> int:
            """Balance."""
            return self.balance

        def helper(self) -> None:
            pass

    bank = Bank()
    toolset = Toolset.from_object(bank)
    assert toolset.names == ["deposit", "balance_of"]
    assert (await toolset.run(call("deposit", {"amount": 5}))).content == "105"
    assert (await toolset.run(call("balance_of", {}))).content == "105"
    assert bank.balance == 105
    assert toolset.definitions()[0]["input_schema"] == {
        "type": "object",
        "properties": {"amount": {"type": "integer", "description": "Money in."}},
        "required": ["amount"],
        "additionalProperties": False,
    }

    with pytest.raises(ToolDefinitionError, match="is a method"):
        Toolset([Bank.deposit])


async def test_parallel_calls_get_their_own_context() -> None:
    ids: list[str | None] = []

    @tool
    async def record(ctx: RunContext[None], delay: float) -> str:
        """Record."""
        await anyio.sleep(delay)
        ids.append(ctx.tool_use_id)
        return str(ctx.tool_use_id)

    ctx = RunContext(deps=None)
    results: dict[str, Any] = {}

    async def one(tool_use_id: str, delay: float) -> None:
        results[tool_use_id] = (
            await record.run(call("record", {"delay": delay}, id=tool_use_id), ctx)
        ).content

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "a", 0.02)
        tg.start_soon(one, "b", 0.0)
    assert results == {"a": "a", "b": "b"}
    assert sorted(i for i in ids if i) == ["a", "b"]


async def test_awkward_parameter_names_round_trip() -> None:
    @tool
    def awkward(title: str, model_config: int, _hidden: int = 0) -> str:
        """Awkward."""
        return f"{title}/{model_config}/{_hidden}"

    result = await awkward.run(call("awkward", {"title": "t", "model_config": 2, "_hidden": 3}))
    assert result.content == "t/2/3"


def test_toolsets_can_be_combined() -> None:
    inner = Toolset([get_weather])
    combined = Toolset([inner, plain_echo])
    assert combined.names == ["get_weather", "plain_echo"]
