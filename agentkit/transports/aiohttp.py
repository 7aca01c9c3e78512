"""An ``httpx2.AsyncBaseTransport`` that sends requests with aiohttp (asyncio only).

aiohttp's connection pool and llhttp parser cost less CPU per request than httpcore2 under high
concurrency (see ``benchmarks/README.md``). This transport sits under ``httpx2.AsyncClient``, so
agentkit's client code, timeouts and retry rules are the same on both stacks: aiohttp's errors are
mapped once, here, onto httpx2's exception types. Response bodies are streamed as they arrive and
left encoded (``Content-Encoding`` is undone by httpx2, as on the default stack).

aiohttp has no write timeout: ``httpx2.Timeout(write=...)`` is not enforced on this stack (the read
timeout still ends a request whose server stopped answering). It has one limit for waiting for a
pooled connection and connecting together: ``pool`` + ``connect`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import urllib.request
from collections.abc import AsyncIterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx2

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    import aiohttp as _aiohttp_types

__all__ = ["AiohttpTransport"]


def _import_aiohttp() -> ModuleType:
    try:
        import aiohttp
    except ImportError:
        raise ConfigurationError(
            "the aiohttp stack needs aiohttp: pip install 'agentkit[aiohttp]' (or use http='httpx')"
        ) from None
    return aiohttp


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """Send httpx2 requests through an ``aiohttp.ClientSession`` (made on first use, per event loop).

    Args:
        verify: ``True`` (system CAs, as httpx2), ``False`` (no verification) or an ``ssl.SSLContext``
            (CA bundle, client certificate).
        max_connections: the pool's size over all hosts; requests beyond it wait.
        keepalive_expiry: seconds an idle connection is kept.
        trust_env: honour ``HTTP(S)_PROXY`` / ``NO_PROXY`` from the environment (as httpx2 does).

    Raises :class:`~agentkit.ConfigurationError` when aiohttp is not installed (here) or when used
    outside asyncio, e.g. on trio (at the first request).
    """

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        max_connections: int = 100,
        keepalive_expiry: float | None = 5.0,
        trust_env: bool = True,
    ) -> None:
        self._aiohttp = _import_aiohttp()
        if verify is True:
            verify = httpx2.create_ssl_context()
        self._ssl: ssl.SSLContext | bool = verify
        self._max_connections = max_connections
        self._keepalive = keepalive_expiry if keepalive_expiry is not None else 3600.0
        # Read once, as httpx2 does when a client is made (aiohttp's own trust_env would look the
        # environment and ~/.netrc up in a worker thread on every request).
        self._proxies = urllib.request.getproxies() if trust_env else {}
        self._proxy_by_origin: dict[tuple[str, str, int | None], str | None] = {}
        self._timeouts: dict[tuple[float | None, ...], Any] = {}
        self._session: _aiohttp_types.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def _session_here(self) -> _aiohttp_types.ClientSession:
        if self._closed:
            raise RuntimeError("the transport is closed")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "the aiohttp stack runs on asyncio only (this is another event loop, e.g. trio); "
                "use Client(http='httpx')"
            ) from None
        session = self._session
        if session is None or self._loop is not loop or session.closed:
            aiohttp = self._aiohttp
            connector = _connector_class(aiohttp)(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive,
                ssl=self._ssl,
            )
            # auto_decompress=False: httpx2 decodes Content-Encoding, as it does on its own stack.
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies are httpx2's business
                timeout=None,
            )
            self._session, self._loop = session, loop
        return session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        aiohttp = self._aiohttp
        session = self._session_here()
        phases: dict[str, float | None] = request.extensions.get("timeout", {})
        key = (phases.get("connect"), phases.get("pool"), phases.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, pool, read = key
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=None if connect is None or pool is None else connect + pool,
                sock_connect=connect,
                sock_read=read,
            )
        data: Any
        try:
            data = request.content or None
        except httpx2.RequestNotRead:
            data = request.stream
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                timeout=timeout,
                proxy=self._proxy_for(request.url) if self._proxies else None,
                skip_auto_headers=("Content-Type",),
            )
        except Exception as exc:
            mapped = _mapped(aiohttp, request, exc, reading=False)
            if mapped is exc:
                raise
            raise mapped from exc
        if response.status < 100:  # llhttp takes "000" for a status; h11 and httpx2 refuse it
            response.close()
            raise httpx2.RemoteProtocolError(f"invalid status code {response.status}", request=request)
        return httpx2.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(aiohttp, request, response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    def _proxy_for(self, url: httpx2.URL) -> str | None:
        """The environment's proxy for ``url``'s origin (``HTTP(S)_PROXY``/``ALL_PROXY`` less
        ``NO_PROXY``), looked up once per origin."""
        origin = (url.scheme, url.host, url.port)
        if origin not in self._proxy_by_origin:
            proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
            if proxy and urllib.request.proxy_bypass(url.host):
                proxy = None
            self._proxy_by_origin[origin] = proxy or None
        return self._proxy_by_origin[origin]

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            with contextlib.suppress(RuntimeError):  # made on an event loop that is gone
                if self._loop is asyncio.get_running_loop():
                    await session.close()


@functools.cache
def _connector_class(aiohttp: ModuleType) -> type[_aiohttp_types.TCPConnector]:
    """``aiohttp.TCPConnector`` that never reuses a connection on which bytes arrived while it was idle.

    aiohttp parses whatever comes in on an idle kept-alive connection and would hand it to the next
    request as its answer (a stale or stray response); such a connection is closed at checkout instead.
    """

    class Connector(aiohttp.TCPConnector):  # type: ignore[name-defined,misc]
        async def _get(self, key: Any, traces: Any) -> Any:
            while (connection := await super()._get(key, traces)) is not None:
                protocol = connection.protocol
                if protocol is not None and not protocol.should_close:
                    return connection
                connection.close()
            return None

    return Connector


class _ResponseStream(httpx2.AsyncByteStream):
    """The response body as aiohttp reads it (undecoded); closing it frees or discards the connection."""

    def __init__(
        self, aiohttp: ModuleType, request: httpx2.Request, response: _aiohttp_types.ClientResponse
    ) -> None:
        self._aiohttp = aiohttp
        self._request = request
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            # readany() directly, not iter_any(): one async iterator fewer per chunk.
            while chunk := await content.readany():
                yield chunk
        except Exception as exc:
            mapped = _mapped(self._aiohttp, self._request, exc, reading=True)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        # Back to the pool when the body was read whole; closed when anything is left unread.
        self._response.release()


def _mapped(aiohttp: ModuleType, request: httpx2.Request, exc: Exception, *, reading: bool) -> Exception:
    """aiohttp's exception as httpx2's, so agentkit's retry rules see the same types on both stacks
    (anything else, e.g. a ``ConfigurationError``, is returned as it is)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx2.HTTPError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError):
        return httpx2.ReadTimeout(message, request=request)
    if isinstance(exc, TimeoutError):
        return (httpx2.ReadTimeout if reading else httpx2.PoolTimeout)(message, request=request)
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx2.ProxyError(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(message, request=request)
    protocol = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)
    if isinstance(exc, protocol):
        return httpx2.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx2.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx2.ReadError(message, request=request)
    return exc
