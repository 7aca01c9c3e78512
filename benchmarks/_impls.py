"""The implementations under test, each as ``make_impl(name, ...)`` -> object with ``run()`` and ``aclose()``.

- ``raw``: a minimal hand-written httpx2 loop (POST /v1/messages, parse JSON, run the tools concurrently,
  append the tool_result turn, repeat until end_turn); with ``stream=True`` raw httpx2 streaming plus a
  minimal SSE parse.
- ``raw aiohttp``: the same hand-written loop over ``aiohttp.ClientSession`` (the aiohttp baseline).
- ``agentkit``: ``Agent(client, model=..., tools=[get_weather], stream=...).run(prompt)`` on the default
  stack (httpx2's own transport); ``agentkit, aiohttp``: the same with ``Client(http="aiohttp")``.
- ``anthropic``: the official SDK's ``beta.messages.tool_runner`` (``thread=False``, see README).
- ``pydantic-ai``: ``pydantic_ai.Agent`` with ``AnthropicModel`` / ``AnthropicProvider(base_url=...)``.

Every ``run()`` returns the final text so the caller can check the run really went through T tool turns.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any, Protocol

import httpx2

MODEL = "claude-sonnet-4-6"
API_KEY = "sk-test"
PROMPT = "What's the weather in Tokyo, Paris and London?"
MAX_TOKENS = 1024
TOOL_DESCRIPTION = "Get the current weather for a city."

TOOL_SLEEP = 0.0  # set by the worker before any run (seconds each get_weather call sleeps)


async def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: the city name, e.g. Tokyo.
    """
    if TOOL_SLEEP:
        await asyncio.sleep(TOOL_SLEEP)
    return f"{city}: 21°C, sunny"


RAW_TOOLS = [
    {
        "name": "get_weather",
        "description": TOOL_DESCRIPTION,
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city name, e.g. Tokyo."}},
            "required": ["city"],
        },
    }
]


class Impl(Protocol):
    async def run(self) -> str: ...

    async def aclose(self) -> None: ...


def http_client(max_connections: int) -> httpx2.AsyncClient:
    """An httpx2 pool (its stock transport, httpcore2) for ``max_connections``."""
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx2.AsyncClient(timeout=httpx2.Timeout(600.0, connect=60.0), limits=limits)


class Raw:
    """The baseline: what a careful user would write by hand with httpx2 and no framework."""

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        self.http = http_client(max_connections)
        self.url = base_url + "/v1/messages"
        self.stream = stream
        self.headers = {
            "x-api-key": API_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        }

    async def run(self) -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
        while True:
            body = {"model": MODEL, "max_tokens": MAX_TOKENS, "tools": RAW_TOOLS, "messages": messages}
            content = json.dumps(body).encode()
            if self.stream:
                blocks, stop_reason = await self._stream(content)
            else:
                data = await self._post(content)
                blocks, stop_reason = data["content"], data["stop_reason"]
            messages.append({"role": "assistant", "content": blocks})
            if stop_reason != "tool_use":
                return "".join(b["text"] for b in blocks if b["type"] == "text")
            uses = [b for b in blocks if b["type"] == "tool_use"]
            outputs = await asyncio.gather(*(get_weather(**u["input"]) for u in uses))
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": u["id"], "content": out}
                        for u, out in zip(uses, outputs, strict=True)
                    ],
                }
            )

    async def _post(self, content: bytes) -> dict[str, Any]:
        response = await self.http.post(self.url, content=content, headers=self.headers)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def _stream(self, content: bytes) -> tuple[list[dict[str, Any]], str | None]:
        blocks: list[dict[str, Any]] = []
        partial: dict[int, list[str]] = {}
        stop_reason = None
        headers = {**self.headers, "accept": "text/event-stream"}
        body = content[:-1] + b',"stream":true}'
        async with self.http.stream("POST", self.url, content=body, headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                stop_reason = _fold(json.loads(line[5:]), blocks, partial) or stop_reason
        return blocks, stop_reason

    async def aclose(self) -> None:
        await self.http.aclose()


class RawAiohttp(Raw):
    """The raw loop over aiohttp: ``session.post``, ``await response.read()``, ``json.loads``; streaming
    reads ``response.content`` line by line."""

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        super().__init__(base_url, stream=stream, max_connections=max_connections)
        self.max_connections = max_connections
        self.session: Any = None

    def _session(self) -> Any:
        if self.session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
            self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(600))
        return self.session

    async def _post(self, content: bytes) -> dict[str, Any]:
        async with self._session().post(self.url, data=content, headers=self.headers) as response:
            response.raise_for_status()
            data: dict[str, Any] = json.loads(await response.read())
        return data

    async def _stream(self, content: bytes) -> tuple[list[dict[str, Any]], str | None]:
        blocks: list[dict[str, Any]] = []
        partial: dict[int, list[str]] = {}
        stop_reason = None
        headers = {**self.headers, "accept": "text/event-stream"}
        body = content[:-1] + b',"stream":true}'
        async with self._session().post(self.url, data=body, headers=headers) as response:
            response.raise_for_status()
            async for raw_line in response.content:
                if not raw_line.startswith(b"data:"):
                    continue
                stop_reason = _fold(json.loads(raw_line[5:]), blocks, partial) or stop_reason
        return blocks, stop_reason

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.session is not None:
            await self.session.close()


class Floor(Raw):
    """A lower bound, not a real client: the raw loop's protocol over bare asyncio streams (no HTTP library,
    no error handling beyond a status check, Content-Length bodies only). It shows what one Python
    process on this machine can do at best, so the concurrency ratios can be read against it."""

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        if stream:
            raise ValueError("the floor implementation has no streaming mode")
        self.stream = False
        url = httpx2.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.head = (
            f"POST /v1/messages HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nx-api-key: {API_KEY}\r\n"
            "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
        ).encode()

    async def _post(self, content: bytes) -> dict[str, Any]:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(self.head + b"content-length: %d\r\n\r\n" % len(content) + content)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:200])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await reader.readexactly(length)
        self.idle.append((reader, writer))
        data: dict[str, Any] = json.loads(body)
        return data

    async def aclose(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class AgentKit:
    stack = "httpx"

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        import agentkit

        try:
            from agentkit import Agent  # type: ignore[attr-defined]
        except ImportError:
            from agentkit import Agent
        options: dict[str, Any] = {"max_connections": max_connections}
        if self.stack != "httpx":
            options["http"] = self.stack
        self.client = agentkit.Client(api_key=API_KEY, base_url=base_url, **options)
        self.agent: Any = Agent(
            self.client, model=MODEL, tools=[get_weather], max_tokens=MAX_TOKENS, stream=stream
        )

    async def run(self) -> str:
        result = await self.agent.run(PROMPT)
        return str(result.text)

    async def aclose(self) -> None:
        await self.client.aclose()


class AgentKitAiohttp(AgentKit):
    """agentkit on the aiohttp stack: ``Client(http="aiohttp")``."""

    stack = "aiohttp"


class AgentKitOnePool(AgentKit):
    """agentkit on the default stack with its pool not split (``agentkit._http.POOL_SPLIT_FROM`` out of
    reach): what ``Client()`` was before it spread its requests over several httpx2 pools."""

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        from agentkit import _http

        _http.POOL_SPLIT_FROM = 10**9
        super().__init__(base_url, stream=stream, max_connections=max_connections)


class AgentKitEightPools(AgentKit):
    """agentkit on the default stack split as it was before round 5: ``max_connections // 128`` pools,
    at most 8 (now pools of ``agentkit._http.POOL_SIZE`` connections, up to 64)."""

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        from agentkit import _http

        _http.POOL_SIZE, _http.MAX_POOLS = 128, 8
        super().__init__(base_url, stream=stream, max_connections=max_connections)


class AgentKitTunedGC(AgentKit):
    """agentkit with the GC setting a service would use (``examples/service.py``): what startup built
    frozen, and collections 70x less often. Only the application can choose this."""

    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        super().__init__(base_url, stream=stream, max_connections=max_connections)
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)


class AnthropicSDK:
    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        from anthropic import AsyncAnthropic, beta_async_tool

        self.http = http_client(max_connections)
        self.client = AsyncAnthropic(api_key=API_KEY, base_url=base_url, http_client=self.http)
        self.tool = beta_async_tool(get_weather)
        self.stream = stream

    async def run(self) -> str:
        # thread=False: the runner's default ``thread: {"type": "create"}`` (message-threads beta) is
        # rejected by the local server with a 400 "thread: Extra inputs are not permitted".
        runner: Any = self.client.beta.messages.tool_runner(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": PROMPT}],
            tools=[self.tool],
            thread=False,
            stream=self.stream,
        )
        if self.stream:
            async for stream in runner:
                async for _event in stream:
                    pass
        message = await runner.until_done()
        return "".join(getattr(b, "text", "") for b in message.content)

    async def aclose(self) -> None:
        await self.client.close()
        await self.http.aclose()


class PydanticAI:
    def __init__(self, base_url: str, *, stream: bool, max_connections: int) -> None:
        from pydantic_ai import Agent
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        self.http = http_client(max_connections)
        provider = AnthropicProvider(api_key=API_KEY, base_url=base_url, http_client=self.http)
        model = AnthropicModel(MODEL, provider=provider)
        self.agent: Any = Agent(model, tools=[get_weather], model_settings={"max_tokens": MAX_TOKENS})
        self.stream = stream

    async def run(self) -> str:
        if self.stream:
            async with self.agent.run_stream(PROMPT) as result:
                return str(await result.get_output())
        result = await self.agent.run(PROMPT)
        return str(result.output)

    async def aclose(self) -> None:
        await self.http.aclose()


IMPLS: dict[str, type[Any]] = {
    "raw": Raw,
    "raw aiohttp": RawAiohttp,
    "floor": Floor,
    "agentkit": AgentKit,
    "agentkit, aiohttp": AgentKitAiohttp,
    "agentkit, tuned gc": AgentKitTunedGC,
    "agentkit, one pool": AgentKitOnePool,
    "agentkit, 8 pools": AgentKitEightPools,
    "anthropic": AnthropicSDK,
    "pydantic-ai": PydanticAI,
}
PEERS = {"anthropic": "anthropic", "pydantic-ai": "pydantic_ai", "raw aiohttp": "aiohttp",
         "agentkit, aiohttp": "aiohttp"}  # fmt: skip


def available(name: str) -> bool:
    """True when the implementation's package is importable (peers come with the ``bench`` extra)."""
    module = PEERS.get(name)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def make_impl(name: str, base_url: str, *, stream: bool, max_connections: int = 1000) -> Impl:
    impl: Impl = IMPLS[name](base_url, stream=stream, max_connections=max_connections)
    return impl


def _fold(event: dict[str, Any], blocks: list[dict[str, Any]], partial: dict[int, list[str]]) -> str | None:
    """The raw loops' hand-written accumulator: fold one SSE event in; a ``message_delta``'s stop reason
    is returned (one copy, so both raw loops do exactly the same work)."""
    kind = event["type"]
    if kind == "content_block_delta":
        delta = event["delta"]
        if delta["type"] == "text_delta":
            blocks[event["index"]]["text"] += delta["text"]
        elif delta["type"] == "input_json_delta":
            partial.setdefault(event["index"], []).append(delta["partial_json"])
    elif kind == "content_block_start":
        blocks.append(dict(event["content_block"]))
    elif kind == "content_block_stop":
        parts = partial.pop(event["index"], None)
        if parts:
            blocks[event["index"]]["input"] = json.loads("".join(parts))
    elif kind == "message_delta":
        stop_reason: str | None = event["delta"].get("stop_reason")
        return stop_reason
    elif kind == "error":
        raise RuntimeError(event)
    return None
