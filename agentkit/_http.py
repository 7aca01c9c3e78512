"""How a :class:`~agentkit.Client` gets its ``httpx2.AsyncClient``: the stack, TLS, limits, body caps.

Every request goes through ``httpx2.AsyncClient.send``. The default stack is httpx2's own transport
(httpcore2: proxies from the environment, ``verify=``, HTTP/2 when asked for and ``h2`` is installed);
``http="aiohttp"`` puts :class:`agentkit.transports.AiohttpTransport` under the same client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import os
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from typing import Literal, TypeAlias

import httpx2

from ._deadline import _Deadline
from ._exceptions import ConfigurationError, ProtocolError

HTTPStack: TypeAlias = Literal["httpx", "aiohttp"]
"""Which HTTP stack a Client we create runs on."""

Verify: TypeAlias = "bool | str | os.PathLike[str] | ssl.SSLContext"
"""``True`` (system CAs), ``False`` (no verification), a CA bundle file or directory, or a context."""

Cert: TypeAlias = "str | os.PathLike[str] | tuple[str | os.PathLike[str], str | os.PathLike[str]]"
"""A client certificate: one PEM file holding certificate and key, or ``(certificate, key)``."""

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_STACKS = ("httpx", "aiohttp")


def check_options(
    *,
    http: str,
    verify: object,
    cert: object,
    http2: bool,
    transport: object,
    http_client: object,
    max_response_bytes: int,
) -> None:
    """Refuse contradictory or malformed HTTP options where they are given (the constructor)."""
    if http not in _STACKS:
        raise ConfigurationError(f"http={http!r} is not a stack; use 'httpx' (the default) or 'aiohttp'")
    if not isinstance(verify, bool | str | os.PathLike | ssl.SSLContext):
        raise ConfigurationError(
            f"verify={type(verify).__name__} is not accepted; use True, False, a CA bundle path "
            "or an ssl.SSLContext"
        )
    if isinstance(verify, str | os.PathLike) and not os.path.exists(verify):
        raise ConfigurationError(f"verify={os.fspath(verify)!r}: no such CA bundle file or directory")
    if cert is not None and isinstance(verify, ssl.SSLContext):
        raise ConfigurationError("cert= cannot go with verify=<SSLContext>: load it into the context")
    if not isinstance(max_response_bytes, int) or max_response_bytes < 1:
        raise ConfigurationError(f"max_response_bytes must be a positive int, got {max_response_bytes!r}")
    own = {
        "http": http != "httpx",
        "verify": verify is not True,
        "cert": cert is not None,
        "http2": bool(http2),
    }
    given = [name for name, set_ in own.items() if set_]
    if http_client is not None and transport is not None:
        raise ConfigurationError("pass http_client= or transport=, not both")
    if http_client is not None and given:
        raise ConfigurationError(
            f"{', '.join(n + '=' for n in given)} configure the client agentkit creates; "
            "with http_client= set them on your own httpx2.AsyncClient"
        )
    if transport is not None and given:
        raise ConfigurationError(
            f"{', '.join(n + '=' for n in given)} configure the transport agentkit creates; "
            "with transport= set them on your own transport"
        )
    if http == "aiohttp" and http2:
        raise ConfigurationError("http2=True needs the httpx stack: aiohttp speaks HTTP/1.1 only")
    if http2 and importlib.util.find_spec("h2") is None:
        raise ConfigurationError("http2=True needs the h2 package: pip install 'agentkit[http2]'")


def ssl_context(verify: Verify, cert: Cert | None) -> ssl.SSLContext:
    """The TLS context for ``verify`` (and a client ``cert``), built once per Client."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True and cert is None:
        return _default_context()
    if verify is True or verify is False:
        context = httpx2.create_ssl_context(verify=verify)
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=os.fspath(verify))
    else:
        context = ssl.create_default_context(cafile=os.fspath(verify))
    if cert is not None:
        try:
            if isinstance(cert, tuple):
                context.load_cert_chain(cert[0], cert[1])
            else:
                context.load_cert_chain(cert)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cert={cert!r} could not be loaded: {exc}") from exc
    return context


@functools.cache
def _default_context() -> ssl.SSLContext:
    """The system-CA context (httpx2's default), loaded once per process and shared by every Client."""
    return httpx2.create_ssl_context()


def build_client(
    *,
    http: HTTPStack,
    transport: httpx2.AsyncBaseTransport | None,
    timeout: httpx2.Timeout,
    max_connections: int,
    context: ssl.SSLContext | None,
    http2: bool,
) -> httpx2.AsyncClient:
    """A fresh ``httpx2.AsyncClient`` for a Client that owns its pool."""
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    if transport is None and http == "aiohttp":
        from .transports.aiohttp import AiohttpTransport

        transport = AiohttpTransport(
            verify=context if context is not None else True,
            max_connections=max_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )
    if transport is not None:
        return httpx2.AsyncClient(transport=transport, timeout=timeout, limits=limits)
    return httpx2.AsyncClient(
        timeout=timeout, limits=limits, verify=context if context is not None else True, http2=http2
    )


POOL_SPLIT_FROM = 256
"""From this ``max_connections`` on, a Client we create splits its pool (see :class:`Pools`)."""
POOL_SIZE = 32
"""Connections per pool of a split pool."""
MAX_POOLS = 64


def pool_count(max_connections: int) -> int:
    """How many stock pools a Client we create spreads its requests over (1 below POOL_SPLIT_FROM)."""
    if max_connections < POOL_SPLIT_FROM:
        return 1
    return max(1, min(MAX_POOLS, max_connections // POOL_SIZE))


SPILL_AT = POOL_SIZE
"""A split pool's requests go to the first pool with fewer than this many in flight (else the least
busy): a pool takes requests until each of its connections has one."""


class Pools:
    """Several stock ``httpx2.AsyncClient`` s sharing ``max_connections``.

    httpcore2's pool does work proportional to its size on every request, which makes thousands of
    concurrent requests on one pool quadratic; N pools of ``max_connections / N`` divide that by N
    (pools of ``POOL_SIZE``: 2,000 concurrent runs took 38 s on 8 pools of 262, 21 s on 64 of 33).
    Each is a complete httpx2 client (its own transport, env proxies, TLS, limits). A request goes to
    the first pool with fewer than ``SPILL_AT`` requests in flight (the least busy one if none has),
    so at low concurrency everything stays on the first pool and reuses its kept-alive connections.
    """

    __slots__ = ("_busy", "_clients", "_n")

    def __init__(self, clients: list[httpx2.AsyncClient]) -> None:
        self._clients = clients
        self._n = len(clients)
        self._busy = [0] * self._n

    def pick(self) -> httpx2.AsyncClient:
        """The pool the next request would go to."""
        return self._clients[self._index()]

    def _index(self) -> int:
        busy = self._busy
        for index, in_flight in enumerate(busy):
            if in_flight < SPILL_AT:
                return index
        return busy.index(min(busy))

    async def send(self, request: httpx2.Request) -> httpx2.Response:
        """``AsyncClient.send(request, stream=True)`` on the chosen pool; the request counts as in
        flight until its response is closed."""
        if self._n == 1:
            return await self._clients[0].send(request, stream=True)
        index = self._index()
        self._busy[index] += 1
        try:
            response = await self._clients[index].send(request, stream=True)
        except BaseException:
            self._busy[index] -= 1
            raise
        response.stream = _Counted(response.stream, self._busy, index)  # type: ignore[arg-type]
        return response

    @property
    def clients(self) -> list[httpx2.AsyncClient]:
        return self._clients

    @property
    def is_closed(self) -> bool:
        return self._clients[0].is_closed

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


class _Counted(httpx2.AsyncByteStream):
    """A response's stream that marks its request done (in ``Pools``) when it is closed."""

    __slots__ = ("_busy", "_index", "_inner", "_open")

    def __init__(self, inner: httpx2.AsyncByteStream, busy: list[int], index: int) -> None:
        self._inner = inner
        self._busy = busy
        self._index = index
        self._open = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inner.__aiter__()

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._busy[self._index] -= 1
        await self._inner.aclose()


def build_pools(
    *,
    http: HTTPStack,
    transport: httpx2.AsyncBaseTransport | None,
    timeout: httpx2.Timeout,
    max_connections: int,
    context: ssl.SSLContext | None,
    http2: bool,
) -> Pools:
    """The pool(s) of a Client that owns its pool: on the httpx stack, one ``build_client`` per share of
    ``max_connections``; the aiohttp stack (whose pool does not grow dearer) and a user's
    ``transport=`` are one pool, as given."""
    n = pool_count(max_connections) if transport is None and http == "httpx" else 1
    shares = [max_connections // n + (1 if i < max_connections % n else 0) for i in range(n)]
    return Pools(
        [
            build_client(
                http=http,
                transport=transport,
                timeout=timeout,
                max_connections=share,
                context=context,
                http2=http2,
            )
            for share in shares
        ]
    )


async def read_capped(response: httpx2.Response, limit: int) -> bytes:
    """The decoded body (``Content-Encoding`` undone), refused past ``limit`` bytes; always closed."""
    parts: list[bytes] = []
    total = 0
    try:
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise too_large(response, limit)
            parts.append(chunk)
    finally:
        await response.aclose()
    return b"".join(parts)


def decoded_chunks(
    response: httpx2.Response, limit: int, deadline: _Deadline, request_id: str | None
) -> _DecodedChunks:
    """The decoded body as it arrives, refused once more than ``limit`` bytes came in all; each read
    under the request's total deadline (if it has one)."""
    return _DecodedChunks(response, limit, deadline, request_id)


class _DecodedChunks:
    """An async iterator, not an async generator: nothing is left for the garbage collector to finalise
    when a stream is abandoned."""

    __slots__ = ("_chunks", "_deadline", "_limit", "_request_id", "_response", "_total")

    def __init__(
        self, response: httpx2.Response, limit: int, deadline: _Deadline, request_id: str | None
    ) -> None:
        self._response = response
        self._chunks = response.aiter_bytes()
        self._limit = limit
        self._deadline = deadline
        self._request_id = request_id
        self._total = 0

    def __aiter__(self) -> _DecodedChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._deadline.active:
            with self._deadline.guard("the stream", self._request_id):
                chunk = await anext(self._chunks)
        else:
            chunk = await anext(self._chunks)
        self._total += len(chunk)
        if self._total > self._limit:
            raise too_large(self._response, self._limit)
        return chunk


def too_large(response: httpx2.Response, limit: int) -> ProtocolError:
    return ProtocolError(
        f"the answer decodes to more than max_response_bytes={limit} bytes "
        f"(content-encoding: {response.headers.get('content-encoding', 'none')}); refused",
        request_id=response.headers.get("request-id"),
    )


@functools.cache
def warm_up_imports() -> None:
    """Import what the first request would import lazily (anyio's asyncio backend, ~40 ms), once."""
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")


def event_loop() -> object:
    """The running event loop (asyncio's loop, or trio's token): what a connection pool belongs to."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        import anyio.lowlevel  # trio (or no loop): imported here, not with agentkit

        return anyio.lowlevel.current_token().native_token


def loop_ended(loop: object) -> bool:
    """Whether an event loop from :func:`event_loop` is over (its pools can never be used or closed)."""
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop.is_closed()
    try:
        loop.run_sync_soon(_nothing)  # type: ignore[attr-defined]  # trio's token refuses a finished run
    except Exception:
        return True
    return False


def _nothing() -> None:
    pass


class LoopPools:
    """One Client's connection pools, per event loop: connections belong to the loop that opened them,
    and one Client may serve several loops (``Agent.run_sync`` in each thread of a threaded server).
    The loop that sent last is one atomic read away; the pools of other loops still running are kept
    for them, and those of loops that ended are dropped (nothing can close them any more)."""

    __slots__ = ("_bound", "_build", "_lock", "_parked", "_spare")

    def __init__(self, build: Callable[[], Pools]) -> None:
        self._build = build
        # Built now, not at the first request: the stack's imports and the TLS context cost ~100-200 ms
        # once, which would otherwise stall the first request. The first loop to send takes it.
        self._spare: Pools | None = build()
        self._bound: tuple[object, Pools] | None = None  # (the loop that sent last, its pools)
        self._parked: dict[object, Pools] = {}
        self._lock = threading.Lock()

    def current(self) -> Pools:
        """The running loop's pools (built if it has none, or closed them)."""
        loop = event_loop()
        bound = self._bound
        if bound is not None and bound[0] is loop and not bound[1].is_closed:
            return bound[1]
        with self._lock:
            if bound is not None and bound[0] is not loop and not bound[1].is_closed:
                self._parked[bound[0]] = bound[1]
            pools = self._parked.pop(loop, None)
            if pools is None or pools.is_closed:
                pools, self._spare = self._spare or self._build(), None
                # A loop new to this client: the time to drop the pools of loops that have ended.
                self._parked = {other: p for other, p in self._parked.items() if not loop_ended(other)}
            self._bound = (loop, pools)
            return pools

    def peek(self) -> Pools | None:
        """The pools the running loop would use next, without building any (for inspection)."""
        loop, bound = event_loop(), self._bound
        if bound is not None and bound[0] is loop:
            return bound[1]
        return self._parked.get(loop) or self._spare

    async def aclose(self) -> None:
        """Close the running loop's pools (and a spare no loop used); a later request builds new ones."""
        loop = event_loop()
        with self._lock:
            closing = [self._parked.pop(loop, None), self._spare]
            self._spare = None
            bound = self._bound
            if bound is not None and bound[0] is loop:
                closing.append(bound[1])
                self._bound = None
        for pools in closing:
            if pools is not None:
                await pools.aclose()
