"""Fetch a web page's text, refusing internal addresses (SSRF protection).

Rules applied by :class:`HttpFetcher` (and the module-level :func:`fetch_url` tool):

* only ``http`` and ``https`` URLs, without user info;
* the host name is resolved first (``anyio.getaddrinfo`` or an injected resolver) and the request is
  refused if ANY resolved address is loopback, private, link-local, multicast, reserved, unspecified,
  shared (CGNAT) or otherwise not globally routable -- IPv4 and IPv6, including IPv6 addresses that
  embed an internal IPv4 address (IPv4-mapped, NAT64, 6to4, ISATAP; Teredo and IPv4-compatible
  addresses are always refused);
* the connection is pinned to a checked address: the request goes to that IP with the original
  ``Host`` header, and for ``https`` the original name is used for SNI and certificate verification
  (httpcore's ``sni_hostname`` extension), so a DNS answer that changes between check and connect
  (DNS rebinding) cannot redirect the connection;
* redirects are followed by hand (at most 5), each hop checked and pinned the same way;
* the body is streamed and reading stops at ``max_bytes`` (compressed bodies are inflated with a
  bounded decompressor); the whole fetch has a deadline; only textual content types are returned;
* the body is decoded with the server's charset only if it is a real text encoding (UTF-8 with
  replacement otherwise: ``punycode``, ``idna``, ``utf-7``, ... are not), and HTML is turned into text
  with lxml (linear time) in a worker thread, under the same deadline.

Residual risks: the environment's HTTP proxy settings are ignored (``trust_env=False``) on purpose;
a fetch of a public address can still reach services that trust the caller's public IP; with an
injected ``transport`` the pinning depends on that transport honouring the request URL.
"""

from __future__ import annotations

import ipaddress
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Annotated

import anyio
import anyio.to_thread
import httpx2
from pydantic import Field

from agentkit._exceptions import ToolError
from agentkit._tool import tool

from ._page_text import decode_body, html_to_text

__all__ = ["HttpFetcher", "Resolver", "fetch_url", "is_internal_address"]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [ip, ...]``: how host names are turned into addresses."""

_MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/xhtml+xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/rss+xml",
        "application/atom+xml",
        "application/ld+json",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/x-www-form-urlencoded",
        "application/sql",
        "application/graphql",
        "image/svg+xml",
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: the IPv4 position varies
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_TEREDO = ipaddress.ip_network("2001::/32")
_ISATAP_ID = 0x00005EFE  # interface id 0000:5efe:a.b.c.d (u/g bits masked off)
_BLOCKED_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _translated_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a translated IPv6 address (mapped, NAT64, 6to4) really goes to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour  # 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD


def _isatap_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address in an ISATAP interface id (``...:0:5efe:a.b.c.d``, any /64 prefix)."""
    if (int(ip) >> 32) & 0xFCFFFFFF == _ISATAP_ID:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_internal_address(address: str) -> bool:
    """Whether ``address`` (an IP string) is anything but a public unicast address.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4
    ``2002::/16``, ISATAP interface ids) are judged by that IPv4 address; IPv4-compatible ``::/96``,
    Teredo ``2001::/32`` and local-use NAT64 ``64:ff9b:1::/48`` are always internal.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True  # not an IP we understand: treat as unsafe
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _IPV4_COMPATIBLE or ip in _TEREDO or ip in _NAT64_LOCAL or ip.is_site_local:
            return True
        translated = _translated_ipv4(ip)
        if translated is not None:  # the IPv4 address is where the packets really go
            return is_internal_address(str(translated))
        isatap = _isatap_ipv4(ip)
        if isatap is not None and is_internal_address(str(isatap)):
            return True  # the tunnel endpoint is internal (the IPv6 prefix is checked below too)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = str(sockaddr[0]).split("%", 1)[0]
        if ip not in addresses:
            addresses.append(ip)
    return addresses


class _BoundedDecoder:
    """Undo gzip/deflate content-encoding without ever producing more than ``limit`` bytes."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise ToolError(f"The server used an unsupported content encoding {encoding!r}.")

    def decode(self, chunk: bytes, limit: int) -> tuple[bytes, bool]:
        """Decoded bytes (at most ``limit``) and whether output was cut at the limit."""
        if self._inflater is None:
            return chunk[:limit], len(chunk) > limit
        try:
            out = self._inflater.decompress(chunk, limit)
        except zlib.error:
            raise ToolError("The server sent a corrupt compressed body.") from None
        return out, bool(self._inflater.unconsumed_tail)


class HttpFetcher:
    """Fetches URLs as text with SSRF protection, size and time limits. ``fetch`` is the tool.

    Args:
        allow_private: Allow internal addresses (loopback, private networks, ...). Only for trusted use.
        max_bytes: Stop reading the (decoded) body after this many bytes.
        timeout: Deadline in seconds for the whole fetch, redirects included.
        transport: An ``httpx2`` transport (tests: ``httpx2.MockTransport``).
        resolver: ``async (host, port) -> [ip, ...]``; defaults to ``anyio.getaddrinfo``.
        user_agent: The ``User-Agent`` header sent.
    """

    def __init__(
        self,
        allow_private: bool = False,
        max_bytes: int = 2_000_000,
        timeout: float = 15.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        *,
        user_agent: str = "agentkit-fetch/0.1 (+https://github.com/agentkit)",
    ) -> None:
        if max_bytes <= 0 or timeout <= 0:
            raise ValueError("max_bytes and timeout must be positive")
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._transport = transport
        self._resolver: Resolver = resolver or _system_resolver
        self._user_agent = user_agent

    @tool(name="fetch_url")
    async def fetch(
        self,
        url: str,
        max_chars: Annotated[int, Field(ge=100, le=200_000)] = 20_000,
    ) -> str:
        """Fetch a web page or text document over HTTP(S) and return its text (HTML is converted to text).

        Args:
            url: The absolute http:// or https:// URL to fetch.
            max_chars: Maximum number of characters of text to return; longer text is truncated.
        """
        return await self.fetch_text(url, max_chars)

    async def fetch_text(self, url: str, max_chars: int = 20_000) -> str:
        """The implementation of :meth:`fetch` (a plain coroutine method, for use outside agents)."""
        max_chars = max(1, min(int(max_chars), 1_000_000))
        result: str | None = None
        with anyio.move_on_after(self.timeout) as scope:
            result = await self._fetch(url, max_chars)
        if scope.cancelled_caught or result is None:
            raise ToolError(f"Fetching {url} timed out after {self.timeout:g} s; try again or another URL.")
        return result

    async def _fetch(self, url: str, max_chars: int) -> str:
        current = self._parse(url)
        async with httpx2.AsyncClient(
            transport=self._transport,
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
        ) as client:
            for _hop in range(_MAX_REDIRECTS + 1):
                requests = await self._pinned_requests(client, current)
                try:
                    response = await self._send(client, requests)
                    try:
                        if response.status_code not in _REDIRECT_CODES:
                            return await self._read(response, current, max_chars)
                        location = response.headers.get("location")
                    finally:
                        await response.aclose()
                except httpx2.TimeoutException:
                    raise ToolError(f"Fetching {current} timed out; try again or another URL.") from None
                except httpx2.HTTPError as exc:
                    raise ToolError(
                        f"Could not fetch {current}: {type(exc).__name__} {exc}".strip()
                    ) from None
                if not location:
                    raise ToolError(f"{current} answered a redirect without a Location header.")
                try:
                    current = self._parse(str(current.join(location)))
                except ToolError as exc:
                    raise ToolError(f"Refused redirect from {current}: {exc.message}") from None
        raise ToolError(f"Too many redirects (more than {_MAX_REDIRECTS}) starting from {url}.")

    def _parse(self, url: str) -> httpx2.URL:
        if not isinstance(url, str) or not url.strip():
            raise ToolError("Give an absolute URL such as 'https://example.com/page'.")
        if any(ch in url for ch in "\x00\r\n\t"):
            raise ToolError("The URL contains control characters.")
        try:
            parsed = httpx2.URL(url.strip())
        except (httpx2.InvalidURL, ValueError, TypeError):
            raise ToolError(f"{url!r} is not a valid URL.") from None
        if parsed.scheme not in ("http", "https"):
            raise ToolError(
                f"Only http:// and https:// URLs can be fetched, not {parsed.scheme or 'relative'} URLs."
            )
        if not parsed.host:
            raise ToolError(f"{url!r} has no host name.")
        if parsed.userinfo:
            raise ToolError("URLs with a user name or password are not allowed.")
        return parsed

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, every one checked (unless ``allow_private``)."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            name = host.rstrip(".").lower()
            if not self.allow_private and (name in _BLOCKED_NAMES or name.endswith(".localhost")):
                raise ToolError(f"{host} is a local address; only public internet addresses can be fetched.")
            try:
                addresses = [str(a) for a in await self._resolver(name, port)]
            except (OSError, UnicodeError) as exc:
                raise ToolError(f"Could not resolve the host name {host!r} ({exc}); check the URL.") from None
            if not addresses:
                raise ToolError(f"The host name {host!r} did not resolve to any address; check the URL.")
        if not self.allow_private:
            for address in addresses:
                if is_internal_address(address):
                    raise ToolError(
                        f"{host} resolves to an internal address ({address}); only public internet "
                        "addresses can be fetched."
                    )
        return addresses

    async def _pinned_requests(self, client: httpx2.AsyncClient, url: httpx2.URL) -> list[httpx2.Request]:
        """One request per checked address (at most 3), each sent to the IP, not the name."""
        port = url.port or (443 if url.scheme == "https" else 80)
        host = url.raw_host.decode("ascii")  # IDNA-encoded name, or the bare IP literal
        addresses = await self._addresses(host, port)
        # Connect to the checked IP; keep the name for the Host header, SNI and certificate checks.
        host_header = url.netloc.decode("ascii")
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        headers = {
            "Host": host_header,
            "User-Agent": self._user_agent,
            "Accept": "text/html,text/plain,application/json,application/xml;q=0.9,text/*;q=0.8",
            "Accept-Encoding": "gzip, deflate, identity",
        }
        return [
            client.build_request("GET", url.copy_with(host=address), headers=headers, extensions=extensions)
            for address in addresses[:3]
        ]

    @staticmethod
    async def _send(client: httpx2.AsyncClient, requests: list[httpx2.Request]) -> httpx2.Response:
        """Send to the first address that accepts a connection (all of them were checked)."""
        for request in requests[:-1]:
            try:
                return await client.send(request, stream=True)
            except httpx2.ConnectError:
                continue
        return await client.send(requests[-1], stream=True)

    async def _read(self, response: httpx2.Response, url: httpx2.URL, max_chars: int) -> str:
        if response.status_code >= 400:
            raise ToolError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}.")
        content_type = response.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type and not _is_text(media_type):
            raise ToolError(
                f"{url} returned {media_type}, which is not text; this tool only reads text, HTML, "
                "JSON or XML documents."
            )
        body = bytearray()
        truncated = False
        try:
            decoder = _BoundedDecoder(response.headers.get("content-encoding", ""))
            chunks: AsyncIterator[bytes] = response.aiter_raw()
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        except httpx2.StreamConsumed:
            # An in-memory response (e.g. from a MockTransport) that httpx2 already read and decoded.
            decoder, first = _BoundedDecoder("identity"), response.content
            chunks = _no_more_chunks()
        piece, truncated = decoder.decode(first, self.max_bytes)
        body += piece
        if not truncated:
            async for chunk in chunks:
                piece, cut = decoder.decode(chunk, self.max_bytes - len(body))
                body += piece
                if cut or len(body) >= self.max_bytes:
                    truncated = True
                    break
        raw = bytes(body)
        if not media_type and b"\x00" in raw[:4096]:
            raise ToolError(f"{url} returned binary data; this tool only reads text documents.")
        # In a worker thread, under the fetch's deadline: decoding and parsing are linear (a 2 MB
        # body takes milliseconds), and even those milliseconds stay off the event loop.
        text = await anyio.to_thread.run_sync(
            _body_text, raw, response.charset_encoding, media_type, abandon_on_cancel=True
        )
        notes: list[str] = []
        if truncated:
            notes.append(f"the download stopped at the {self.max_bytes}-byte limit")
        if len(text) > max_chars:
            notes.append(f"showing the first {max_chars} of {len(text)} characters")
            text = text[:max_chars]
        if notes:
            text += f"\n\n[truncated: {'; '.join(notes)}]"
        return text


def _body_text(raw: bytes, charset: str | None, media_type: str) -> str:
    text = decode_body(raw, charset)
    if media_type in ("text/html", "application/xhtml+xml") or (
        not media_type and text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))
    ):
        return html_to_text(text)
    return text


async def _no_more_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an (empty) async generator


def _is_text(media_type: str) -> bool:
    return (
        media_type.startswith("text/") or media_type in _TEXT_TYPES or media_type.endswith(("+json", "+xml"))
    )


_default_fetcher = HttpFetcher()


@tool
async def fetch_url(
    url: str,
    max_chars: Annotated[int, Field(ge=100, le=200_000)] = 20_000,
) -> str:
    """Fetch a public web page or text document over HTTP(S) and return its text (HTML is converted to text).

    Args:
        url: The absolute http:// or https:// URL to fetch.
        max_chars: Maximum number of characters of text to return; longer text is truncated.
    """
    return await _default_fetcher.fetch_text(url, max_chars)
