"""The Messages API client: auth, providers, envelope unwrapping, retries, JSON and SSE calls."""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import anyio
import httpx2

from . import _validate
from ._deadline import _Deadline, check_total_timeout
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    ConfigurationError,
    ProtocolError,
)
from ._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Cert,
    HTTPStack,
    LoopPools,
    Pools,
    Verify,
    build_pools,
    check_options,
    read_capped,
    ssl_context,
    warm_up_imports,
)
from ._json import loads
from ._logging import _register_secret, get_logger
from ._response import (
    _encode,
    _parse_message,
    _request_id,
    _status_error,
    _transport_errors,
    _unwrap_envelope,
)
from ._retry import retry_delay
from ._secrets import _Headers, _is_secret_header, _Secret
from ._stream import MessageStream
from .types import (
    Message,
    MessageParam,
    _message_params_adapter,
    to_wire,
)

__all__ = ["Client", "MessageStream", "Provider"]

Provider = Literal["anthropic", "poyo", "toapis"]
AuthStyle = Literal["x-api-key", "bearer"]


DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_TIMEOUT = httpx2.Timeout(600.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
_INITIAL_BACKOFF = 0.5
_MAX_BACKOFF = 8.0

# Provider presets: how each endpoint wants the key. The envelope is detected in any case.
_PROVIDER_AUTH: dict[str, AuthStyle] = {"anthropic": "x-api-key", "poyo": "x-api-key", "toapis": "bearer"}
_PROVIDER_BASE_URL: dict[str, str | None] = {"anthropic": DEFAULT_BASE_URL, "poyo": None, "toapis": None}

_T = TypeVar("_T")


class Client:
    """Async client for ``POST /v1/messages`` on Anthropic and compatible endpoints.

    Args:
        api_key: the key; defaults to ``ANTHROPIC_API_KEY``. May be omitted only for endpoints that
            need none (a local test server started without a key); Anthropic's API without a key is a
            :class:`ConfigurationError` at once.
        base_url: the endpoint, with or without a trailing ``/v1``; defaults to ``ANTHROPIC_BASE_URL``,
            then the provider's URL, then ``https://api.anthropic.com``.
        provider: a preset for the auth header: ``"anthropic"`` and ``"poyo"`` send ``x-api-key``,
            ``"toapis"`` sends ``Authorization: Bearer``.
        auth: override the auth header style: ``"x-api-key"`` or ``"bearer"``.
        anthropic_version: the ``anthropic-version`` header (default ``2023-06-01``).
        default_headers: extra headers sent with every request (e.g. ``anthropic-beta``).
        timeout: seconds (connect capped at 5 s) or an ``httpx2.Timeout`` with a limit per phase
            (connect, read, write, pool; default 600 s, connect 5 s): a bound on each network step, so
            a server that keeps sending keeps it from firing.
        total_timeout: seconds for one whole attempt, from sending to the last byte of the body or
            stream (default ``None``: no total bound). On expiry: ``APITimeoutError``, retried like a
            timeout if it expired before the response (or stream) began, never once a stream is open.
            Per call, ``total_timeout=`` overrides it.
        max_retries: retries after the first attempt for retryable failures (default 2).
        http_client: your own ``httpx2.AsyncClient`` (transport, proxies, limits); not closed by us.
        transport: an ``httpx2.AsyncBaseTransport`` for the client we create (tests, offline mode).
        max_connections: the connection pool's size; requests beyond it wait for a free connection.
        http: the HTTP stack of the client we create: ``"httpx"`` (httpx2's own; proxies from the
            environment, HTTP/2) or ``"aiohttp"`` (asyncio only, ``pip install 'agentkit[aiohttp]'``;
            less CPU per request under high concurrency).
        verify: TLS verification: ``True`` (system CAs), ``False``, a CA bundle path, or an
            ``ssl.SSLContext``.
        cert: a client certificate: a PEM file with certificate and key, or ``(cert_file, key_file)``.
        http2: negotiate HTTP/2 (httpx stack, needs the ``h2`` package).
        max_response_bytes: refuse an answer that decodes (``Content-Encoding`` undone) to more than
            this many bytes, with a :class:`ProtocolError` (default 64 MiB).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        provider: Provider | None = None,
        auth: AuthStyle | None = None,
        anthropic_version: str = DEFAULT_VERSION,
        default_headers: Mapping[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
        total_timeout: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        max_connections: int = 1000,
        http: HTTPStack = "httpx",
        verify: Verify = True,
        cert: Cert | None = None,
        http2: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        _validate.client_arguments(locals())  # first: it reads the arguments from locals()
        # Wrapped at once, and no plain local left: a traceback of a failing __init__ may render its locals.
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        del api_key
        self._api_key = _Secret(key) if key else None
        if key:
            _register_secret(key)
        del key
        self.provider: Provider = provider or "anthropic"
        self.auth: AuthStyle = auth or _PROVIDER_AUTH[self.provider]
        url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or _PROVIDER_BASE_URL[self.provider]
        if not url:
            raise ConfigurationError(
                f"provider {self.provider!r} needs base_url= (or ANTHROPIC_BASE_URL): agentkit does not "
                "guess a proxy's address"
            )
        self.base_url = _normalise_base_url(url)
        if self._api_key is None and _validate.anthropic_host(self.base_url):
            raise _validate.missing_key(self.base_url)  # fail now, not with an unauthenticated request
        self._urls: dict[str, httpx2.URL] = {}
        self.anthropic_version = anthropic_version
        self.max_retries = max_retries
        self.timeout = _as_timeout(timeout)
        self.total_timeout = check_total_timeout(total_timeout)
        self._headers = self._build_headers(default_headers)
        self._transport = transport
        self._http_client = http_client
        self._pools: LoopPools | None = None  # our own pools, one set per event loop
        self._max_connections = max_connections
        check_options(
            http=http,
            verify=verify,
            cert=cert,
            http2=http2,
            transport=transport,
            http_client=http_client,
            max_response_bytes=max_response_bytes,
        )
        if http == "aiohttp":
            from .transports.aiohttp import _import_aiohttp

            _import_aiohttp()  # a missing extra is reported here, not at the first request
        self.http: HTTPStack = http
        self._tls = (verify, cert)
        self._ssl_context: ssl.SSLContext | None = None
        self._http2 = http2
        self.max_response_bytes = max_response_bytes
        if http_client is None:
            self._pools = LoopPools(self._new_pool)
            warm_up_imports()

    @property
    def _http(self) -> httpx2.AsyncClient:
        # Our own pools are per event loop and (re)built on demand, so a client closed at the end of
        # one loop (``Agent.run_sync``) works again in the next one.
        if self._pools is None:
            assert self._http_client is not None
            return self._http_client
        return self._pools.current().pick()

    def _new_pool(self) -> Pools:
        if self._transport is None and self._ssl_context is None:
            self._ssl_context = ssl_context(*self._tls)
        return build_pools(
            http=self.http,
            transport=self._transport,
            timeout=self.timeout,
            max_connections=self._max_connections,
            context=self._ssl_context,
            http2=self._http2,
        )

    async def _send(
        self, path: str, content: bytes, headers: dict[str, str], timeout: float | httpx2.Timeout | None
    ) -> httpx2.Response:
        """POST ``content`` to ``base_url + path`` through ``httpx2.AsyncClient.send``; the response
        comes back unread (the caller reads it with a size cap, or streams it).

        On our own pool the request is built directly (it has no default headers, cookies or params to
        merge: ``build_request`` would only cost time); a user's ``http_client=`` gets ``build_request``.
        """
        phases = (self.timeout if timeout is None else _as_timeout(timeout)).as_dict()
        if self._pools is not None:
            pools = self._pools.current()
            # stream= with Host and Content-Length given: httpx2 skips encoding the body again and
            # looking the headers up (a third of the cost of building a request); read() keeps
            # request.content available to every transport.
            headers["content-length"] = str(len(content))
            request = httpx2.Request(
                "POST",
                self._url(path),
                headers=headers,
                stream=httpx2.ByteStream(content),
                extensions={"timeout": phases},
            )
            request.read()
            return await pools.send(request)
        http = self._http
        request = http.build_request(
            "POST", self._url(path), content=content, headers=headers, extensions={"timeout": phases}
        )
        return await http.send(request, stream=True)

    # --- public calls ------------------------------------------------------------------------

    async def create(
        self,
        *,
        model: str,
        messages: Iterable[MessageParam | Mapping[str, Any]],
        max_tokens: int,
        system: str | Iterable[Any] | None = None,
        tools: Iterable[Any] | None = None,
        tool_choice: Any = None,
        thinking: Any = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        stop_sequences: list[str] | None = None,
        metadata: Any = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
        total_timeout: float | None = None,
    ) -> Message:
        """Send one request and return the assistant's :class:`Message` (envelopes unwrapped).

        Every argument accepts models or plain dicts as in the API docs. Retries retryable failures.
        """
        body = _build_body(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            system=system,
            tools=tools,
            tool_choice=tool_choice,
            thinking=thinking,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            stop_sequences=stop_sequences,
            metadata=metadata,
            extra_body=extra_body,
        )
        return await self.create_raw(
            body, extra_headers=extra_headers, timeout=timeout, total_timeout=total_timeout
        )

    async def create_raw(
        self,
        body: Mapping[str, Any],
        *,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
        total_timeout: float | None = None,
    ) -> Message:
        """Send an already-serialised request body (JSON-ready dict) and return the Message."""
        response, data = await self._post_json(
            "/v1/messages", body, extra_headers, timeout, self._total(total_timeout)
        )
        return _parse_message(data, response)

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[MessageParam | Mapping[str, Any]],
        max_tokens: int,
        system: str | Iterable[Any] | None = None,
        tools: Iterable[Any] | None = None,
        tool_choice: Any = None,
        thinking: Any = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        stop_sequences: list[str] | None = None,
        metadata: Any = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
        total_timeout: float | None = None,
    ) -> MessageStream:
        """Open a streaming request. Use as ``async with client.stream(...) as s: async for ev in s``;
        then ``s.message`` (or ``await s.final_message()``) is the accumulated :class:`Message`."""
        body = _build_body(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            system=system,
            tools=tools,
            tool_choice=tool_choice,
            thinking=thinking,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            stop_sequences=stop_sequences,
            metadata=metadata,
            extra_body=extra_body,
        )
        return self.stream_raw(
            body, extra_headers=extra_headers, timeout=timeout, total_timeout=total_timeout
        )

    def stream_raw(
        self,
        body: Mapping[str, Any],
        *,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx2.Timeout | None = None,
        total_timeout: float | None = None,
    ) -> MessageStream:
        """Stream an already-serialised request body (``"stream": true`` is added)."""
        return MessageStream(
            self, {**body, "stream": True}, extra_headers, timeout, total_timeout=self._total(total_timeout)
        )

    async def count_tokens(
        self,
        *,
        model: str,
        messages: Iterable[MessageParam | Mapping[str, Any]],
        system: str | Iterable[Any] | None = None,
        tools: Iterable[Any] | None = None,
        tool_choice: Any = None,
        thinking: Any = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> int:
        """``POST /v1/messages/count_tokens``: the input tokens the request would use."""
        body = _build_body(
            model=model,
            messages=messages,
            max_tokens=None,
            system=system,
            tools=tools,
            tool_choice=tool_choice,
            thinking=thinking,
            extra_body=extra_body,
        )
        response, data = await self._post_json(
            "/v1/messages/count_tokens", body, None, None, self.total_timeout
        )
        data = _unwrap_envelope(data, response)
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise ProtocolError(
                "count_tokens answer has no integer input_tokens", request_id=_request_id(response)
            )
        return int(data["input_tokens"])

    async def aclose(self) -> None:
        """Close the connection pool we created for the running event loop (a later call opens a new
        one); a pool of another loop is closed from that loop."""
        if self._pools is not None:
            await self._pools.aclose()

    async def _close_loop_pools(self) -> None:
        """Close the running loop's pools unless a transport of the caller's is inside them: they
        cannot serve another loop (``Agent.run_sync`` calls this before its loop ends)."""
        if self._transport is None:
            await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __deepcopy__(self, memo: dict[int, Any]) -> Client:
        raise TypeError("a Client holds a connection pool (and a secret): share it, or build another one")

    def __repr__(self) -> str:
        # getattr: a half-built client (an error inside __init__) is rendered in tracebacks too
        key = "set" if getattr(self, "_api_key", None) else "none"
        fields = ", ".join(f"{n}={getattr(self, n, None)!r}" for n in ("base_url", "provider", "auth"))
        return f"Client({fields}, key={key})"

    # --- internals ---------------------------------------------------------------------------

    def _url(self, path: str) -> httpx2.URL:
        """``base_url + path``, parsed once (httpx2 parses a string URL on every request)."""
        text = self.base_url + path
        url = self._urls.get(text)
        if url is None:
            url = self._urls[text] = httpx2.URL(text)
        return url

    def _build_headers(self, extra: Mapping[str, str] | None) -> _Headers:
        headers = _Headers(
            {
                "host": httpx2.URL(self.base_url).netloc.decode("ascii"),
                "anthropic-version": self.anthropic_version,
                "content-type": "application/json",
                "accept": "application/json",
                "accept-encoding": "gzip, deflate",
                "user-agent": "agentkit/0.1",
            }
        )
        if self._api_key is not None:
            if self.auth == "bearer":
                headers["authorization"] = f"Bearer {self._api_key.get()}"
            else:
                headers["x-api-key"] = self._api_key.get()
        for name, value in (extra or {}).items():
            headers[name.lower()] = value
            if _is_secret_header(name):  # a gateway's own credential header: scrubbed from logs too
                _register_secret(value)
        return headers

    def _total(self, total_timeout: float | None) -> float | None:
        """A call's ``total_timeout=`` (checked), else the client's."""
        if total_timeout is None:
            return self.total_timeout
        return check_total_timeout(total_timeout)

    def _headers_for(self, attempt: int, extra: Mapping[str, str] | None) -> _Headers:
        headers = _Headers(self._headers)
        if attempt:
            headers["x-stainless-retry-count"] = str(attempt)
        if extra:
            headers.update({k.lower(): v for k, v in extra.items()})
        return headers

    async def _post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None,
        timeout: float | httpx2.Timeout | None,
        total_timeout: float | None = None,
    ) -> tuple[httpx2.Response, Any]:
        content = _encode(body)
        url = self.base_url + path

        async def attempt(number: int) -> tuple[httpx2.Response, Any]:
            with _Deadline(total_timeout).guard(f"the request to {url}"):
                async with _transport_errors(url):
                    response = await self._send(
                        path, content, self._headers_for(number, extra_headers), timeout
                    )
                    raw = await read_capped(response, self.max_response_bytes)
            if response.status_code >= 400:
                raise _status_error(response, raw)
            try:
                data = loads(raw)
            except ValueError as exc:
                raise ProtocolError(
                    f"invalid JSON in the answer from {url} (HTTP {response.status_code}): {exc}",
                    request_id=_request_id(response),
                ) from exc
            return response, _unwrap_envelope(data, response)

        return await self._with_retries(attempt)

    async def _with_retries(self, attempt: Callable[[int], Awaitable[_T]], *, stream: bool = False) -> _T:
        """Run ``attempt(n)`` until it returns, retrying the errors :meth:`_retry_delay` allows."""
        number = 0
        while True:
            try:
                return await attempt(number)
            except (APIStatusError, APIConnectionError) as error:
                delay = self._retry_delay(error, number)
                if delay is None:
                    raise
                get_logger("agentkit.client").info(
                    "model.retry",
                    attempt=number + 1,
                    delay=round(delay, 3),
                    error=type(error).__name__,
                    status=getattr(error, "status_code", None),
                    stream=stream,
                )
            await anyio.sleep(delay)
            number += 1

    def _retry_delay(self, error: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying ``error``, or None when it must not be retried."""
        return retry_delay(error, attempt, self.max_retries, initial=_INITIAL_BACKOFF, maximum=_MAX_BACKOFF)


# --- helpers ---------------------------------------------------------------------------------


def _normalise_base_url(url: str) -> str:
    url = url.strip()
    try:
        parsed = httpx2.URL(url)
    except Exception as exc:
        raise ConfigurationError(f"base_url {url!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"base_url {url!r} must be an http(s) URL with a host, e.g. https://api.anthropic.com"
        )
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigurationError(f"base_url {url!r}: port {parsed.port} is out of range (1-65535)")
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def _as_timeout(timeout: float | httpx2.Timeout | None) -> httpx2.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx2.Timeout):
        return timeout
    return httpx2.Timeout(float(timeout), connect=min(5.0, float(timeout)))


def _build_body(
    *,
    model: str,
    messages: Iterable[MessageParam | Mapping[str, Any]],
    max_tokens: int | None,
    system: str | Iterable[Any] | None = None,
    tools: Iterable[Any] | None = None,
    tool_choice: Any = None,
    thinking: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stop_sequences: list[str] | None = None,
    metadata: Any = None,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate user input (models or dicts) and build the JSON request body."""
    if not model:
        raise ConfigurationError("model is required: pass model=... or set ANTHROPIC_MODEL")
    params = _message_params_adapter.validate_python(
        [m if isinstance(m, MessageParam) else dict(m) for m in messages]
    )
    body: dict[str, Any] = {"model": model}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body["messages"] = to_wire(params)
    if system is not None:
        body["system"] = system if isinstance(system, str) else to_wire(list(system))
    if tools is not None:
        body["tools"] = [_tool_definition(t) for t in tools]
    if tool_choice is not None:
        body["tool_choice"] = to_wire(tool_choice)
    if thinking is not None:
        body["thinking"] = to_wire(thinking)
    for name, value in (
        ("temperature", temperature),
        ("top_p", top_p),
        ("top_k", top_k),
        ("stop_sequences", stop_sequences),
        ("metadata", metadata),
    ):
        if value is not None:
            body[name] = to_wire(value)
    if extra_body:
        body.update(extra_body)
    return body


def _tool_definition(tool: Any) -> Any:
    definition = getattr(tool, "definition", None)
    if callable(definition):
        return definition()
    return to_wire(tool)
