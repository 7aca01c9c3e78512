"""tools.http: SSRF refusals (before and after DNS, on redirects), pinning, limits. No real network:
an injected resolver plus httpx2.MockTransport, and one local server on 127.0.0.1."""

from __future__ import annotations

import gzip
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx2
import pytest

from agentkit._exceptions import ToolError
from agentkit.tools.http import HttpFetcher, fetch_url, is_internal_address

pytestmark = pytest.mark.anyio

DNS = {
    "example.com": ["93.184.216.34"],
    "dual.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example": ["127.0.0.1"],
    "mixed.example": ["93.184.216.34", "10.1.2.3"],
    "intranet.example": ["192.168.1.1"],
    "v6loop.example": ["::1"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "sixtofour.example": ["2002:7f00:1::1"],
    "isatap.example": ["2606:4700::5efe:c0a8:1"],
    "redirector.example": ["93.184.216.35"],
}


def resolver(table: dict[str, list[str]] | None = None) -> Callable[[str, int], Awaitable[Sequence[str]]]:
    table = DNS if table is None else table

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve


Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]


def fetcher(handler: Handler, **options: object) -> HttpFetcher:
    return HttpFetcher(transport=httpx2.MockTransport(handler), resolver=resolver(), **options)  # type: ignore[arg-type]


def page(text: str = "hello world", content_type: str = "text/plain; charset=utf-8") -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text=text, headers={"content-type": content_type})

    return handler


def never_called(request: httpx2.Request) -> httpx2.Response:
    raise AssertionError(f"no request may be sent, got {request.url}")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/admin",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the cloud metadata address
        "http://[64:ff9b:1::7f00:1]/",  # local-use NAT64 prefix (RFC 8215)
        "http://[2002:7f00:1::1]/",  # 6to4 embedding 127.0.0.1
        "http://[2002:a00:1::]/",  # 6to4 embedding 10.0.0.1
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 embedding 169.254.169.254
        "http://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
        "http://[::ffff:0:7f00:1]/",  # IPv4-translated (SIIT) 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1 (XOR-ed)
        "http://[2001:0:4136:e378:8000:63bf:a247:27dd]/",  # Teredo, any client: never fetched
        "http://[2606:4700::5efe:7f00:1]/",  # ISATAP interface id embedding 127.0.0.1
        "http://[2606:4700::200:5efe:a00:1]/",  # ISATAP (universal bit) embedding 10.0.0.1
        "http://0.0.0.0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://100.64.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://rebind.example/",
        "http://mixed.example/",
        "http://intranet.example/",
        "http://v6loop.example/",
        "http://mapped.example/",
        "http://sixtofour.example/",
        "http://isatap.example/",
    ],
)
async def test_internal_destinations_refused(url: str) -> None:
    with pytest.raises(ToolError, match=r"(?i)internal|local"):
        await fetcher(never_called).fetch(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Only http"),
        ("ftp://example.com/x", "Only http"),
        ("gopher://example.com/", "Only http"),
        ("example.com/page", "Only http"),
        ("", "absolute URL"),
        ("http://user:pass@example.com/", "user name"),
        ("http://example.com/\r\nX-Injected: 1", "control characters"),
        ("http://no-such-host.invalid/", "resolve"),
    ],
)
async def test_bad_urls_refused(url: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        await fetcher(never_called).fetch(url)


async def test_allowed_fetch_is_pinned_to_checked_address() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, text="public page", headers={"content-type": "text/plain"})

    text = await fetcher(handler).fetch("https://example.com/docs?q=1")
    assert text == "public page"
    (request,) = seen
    assert request.url.host == "93.184.216.34"  # connected to the checked IP ...
    assert request.url.scheme == "https"
    assert request.url.raw_path == b"/docs?q=1"
    assert request.headers["host"] == "example.com"  # ... speaking to the original name
    assert request.extensions["sni_hostname"] == "example.com"  # TLS name checks use the name too


async def test_explicit_port_kept_in_host_header() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, text="ok", headers={"content-type": "text/plain"})

    await fetcher(handler).fetch("http://example.com:8080/")
    assert seen[0].url.port == 8080
    assert seen[0].headers["host"] == "example.com:8080"
    assert "sni_hostname" not in seen[0].extensions


async def test_next_checked_address_tried_when_first_refuses() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.host)
        if request.url.host == "93.184.216.34":
            raise httpx2.ConnectError("connection refused", request=request)
        return httpx2.Response(200, text="via v6", headers={"content-type": "text/plain"})

    assert await fetcher(handler).fetch("http://dual.example/") == "via v6"
    assert seen == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


async def test_public_ipv6_is_allowed() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, text="v6", headers={"content-type": "text/plain"})

    assert await fetcher(handler).fetch("http://[2606:4700:4700::1111]/") == "v6"
    assert seen[0].url.host == "2606:4700:4700::1111"


def redirecting(location: str, then: Handler | None = None) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response | Awaitable[httpx2.Response]:
        if request.headers["host"] == "redirector.example":
            return httpx2.Response(302, headers={"location": location})
        if then is None:
            raise AssertionError(f"redirect target must not be fetched: {request.url}")
        return then(request)

    return handler


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1/",
        "http://intranet.example/admin",
        "http://[::ffff:127.0.0.1]:8000/",
        "http://169.254.169.254/latest/meta-data/",
        "http://rebind.example/",
    ],
)
async def test_redirect_to_internal_refused(location: str) -> None:
    with pytest.raises(ToolError, match=r"(?i)internal|local"):
        await fetcher(redirecting(location)).fetch("http://redirector.example/start")


async def test_redirect_to_other_scheme_refused() -> None:
    with pytest.raises(ToolError, match=r"Refused redirect.*Only http"):
        await fetcher(redirecting("file:///etc/passwd")).fetch("http://redirector.example/")


async def test_allowed_redirect_is_followed_and_relative_locations_work() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.headers['host']}{request.url.raw_path.decode()}")
        if request.headers["host"] == "redirector.example":
            if request.url.path == "/start":
                return httpx2.Response(301, headers={"location": "/moved"})
            return httpx2.Response(307, headers={"location": "https://example.com/final"})
        return httpx2.Response(200, text="arrived", headers={"content-type": "text/plain"})

    assert await fetcher(handler).fetch("http://redirector.example/start") == "arrived"
    assert seen == ["redirector.example/start", "redirector.example/moved", "example.com/final"]


async def test_redirect_loop_stops() -> None:
    count = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal count
        count += 1
        return httpx2.Response(302, headers={"location": f"/again{count}"})

    with pytest.raises(ToolError, match="Too many redirects"):
        await fetcher(handler).fetch("http://example.com/")
    assert count == 6  # the first request and 5 redirects


async def test_html_becomes_text() -> None:
    markup = (
        "<!doctype html><html><head><title>Demo page</title><style>p{color:red}</style>"
        "<script>alert('x')</script></head><body><h1>Hello</h1><p>First &amp; second.</p>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    text = await fetcher(page(markup, "text/html; charset=utf-8")).fetch("http://example.com/")
    assert text.startswith("# Demo page")
    assert "First & second." in text
    assert "one\ntwo" in text
    assert "alert" not in text
    assert "color:red" not in text


async def test_html_text_keeps_structure_and_entities() -> None:
    markup = (
        "<html><head><title>T &amp; U</title><meta charset='punycode'></head><body>"
        "<nav>Home</nav><!-- a comment --><div>caf&eacute; <b>bold</b>&nbsp;end</div>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"
        "<noscript>no script</noscript><template>tpl</template><svg><text>svg text</text></svg>"
        "<p>tail</p></body></html>"
    )
    text = await fetcher(page(markup, "text/html; charset=utf-8")).fetch("http://example.com/")
    assert text.splitlines() == ["# T & U", "", "Home", "caf\u00e9 bold end", "a b", "c", "tail"]


async def test_unlabelled_html_is_detected_and_empty_html_is_empty() -> None:
    text = await fetcher(page("  <!DOCTYPE html><p>x &lt; y</p>", "")).fetch("http://example.com/")
    assert text == "x < y"
    assert await fetcher(page("<!-- only a comment -->", "text/html")).fetch("http://example.com/") == ""


async def _hold_all_worker_threads() -> tuple[anyio.CapacityLimiter, list[object]]:
    limiter = anyio.to_thread.current_default_thread_limiter()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    return limiter, holders


@pytest.mark.parametrize(
    ("hostile", "content_type"),
    [
        ("<p>intro</p>" + "<a" * 50_000, "text/html"),  # html.parser: 4.7 s on the loop
        # punycode decoding is quadratic too: 0.5 s for these 100 KB, minutes for 2 MB
        ("<p>intro</p>" + "a" * 50_000 + "-" + "a" * 50_000, "text/html; charset=punycode"),
    ],
)
async def test_hostile_html_is_converted_off_the_event_loop(hostile: str, content_type: str) -> None:
    # Every worker thread is taken, so the conversion has to wait for one: the heartbeat keeps
    # ticking meanwhile (the loop is not frozen); a conversion on the loop would finish (after
    # seconds of freeze) without ever waiting, and the heartbeat would count nothing.
    limiter, holders = await _hold_all_worker_threads()
    results: list[str] = []
    ticks = 0

    async def fetch() -> None:
        results.append(await fetcher(page(hostile, content_type)).fetch("http://example.com/"))

    async def heartbeat() -> None:
        nonlocal ticks
        try:
            while not results and ticks < 50:
                await anyio.lowlevel.checkpoint()
                if limiter.statistics().tasks_waiting:
                    ticks += 1
        finally:
            for holder in holders:
                limiter.release_on_behalf_of(holder)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            tg.start_soon(heartbeat)
    assert ticks == 50
    assert results[0].startswith("intro")


async def test_conversion_is_under_the_fetch_deadline() -> None:
    limiter, holders = await _hold_all_worker_threads()
    try:
        with anyio.fail_after(10), pytest.raises(ToolError, match=r"timed out after 0\.3 s"):
            await fetcher(page("<p>never converted</p>", "text/html"), timeout=0.3).fetch(
                "http://example.com/"
            )
    finally:
        for holder in holders:
            limiter.release_on_behalf_of(holder)


@pytest.mark.parametrize(
    "charset",
    ["punycode", "idna", "unicode_escape", "raw_unicode_escape", "utf-7", "rot13", "base64", "hex", "x" * 99],
)
async def test_exotic_charsets_fall_back_to_utf8(charset: str) -> None:
    body = "caf\u00e9 +AEE- \\u0041 xn--abc"
    text = await fetcher(page(body, f"text/plain; charset={charset}")).fetch("http://example.com/")
    assert text == body


@pytest.mark.parametrize(
    ("charset", "encoded"),
    [
        ("iso-8859-1", "caf\u00e9".encode("latin-1")),
        ("windows-1251", "\u043c\u0438\u0440".encode("cp1251")),
        ("shift_jis", "\u65e5\u672c".encode("shift_jis")),
        ("UTF-16", "hi \u00e9".encode("utf-16")),
    ],
)
async def test_real_text_encodings_are_honoured(charset: str, encoded: bytes) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": f"text/plain; charset={charset}"}
        return httpx2.Response(200, content=encoded, headers=headers)

    assert await fetcher(handler).fetch("http://example.com/") == encoded.decode(charset)


async def test_json_is_returned_as_text() -> None:
    text = await fetcher(page('{"a": 1}', "application/json")).fetch("http://example.com/api")
    assert text == '{"a": 1}'


@pytest.mark.parametrize(
    "content_type", ["image/png", "application/octet-stream", "application/pdf", "video/mp4"]
)
async def test_non_text_content_refused(content_type: str) -> None:
    with pytest.raises(ToolError, match="not text"):
        await fetcher(page("\x89PNG", content_type)).fetch("http://example.com/file")


async def test_unlabelled_binary_refused() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"\x00\x01\x02binary")

    with pytest.raises(ToolError, match="binary"):
        await fetcher(handler).fetch("http://example.com/blob")


async def test_http_error_status() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, text="nope", headers={"content-type": "text/plain"})

    with pytest.raises(ToolError, match="HTTP 404"):
        await fetcher(handler).fetch("http://example.com/missing")


async def test_max_chars_truncates_with_marker() -> None:
    text = await fetcher(page("x" * 5000)).fetch("http://example.com/", max_chars=100)
    assert text.startswith("x" * 100)
    assert "x" * 101 not in text
    assert "[truncated: showing the first 100 of 5000 characters]" in text


async def test_byte_cap_stops_streaming() -> None:
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1024
            yield b"a" * 1024

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=endless(), headers={"content-type": "text/plain"})

    text = await fetcher(handler, max_bytes=10_000).fetch("http://example.com/stream", max_chars=200_000)
    assert text.startswith("a" * 10_000)
    assert "a" * 10_001 not in text
    assert "10000-byte limit" in text
    assert produced <= 20 * 1024  # reading stopped soon after the cap


async def chunked(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_gzip_bomb_is_bounded() -> None:
    bomb = gzip.compress(b"z" * 50_000_000)

    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/plain", "content-encoding": "gzip"}
        return httpx2.Response(200, content=chunked(bomb), headers=headers)

    text = await fetcher(handler, max_bytes=50_000).fetch("http://example.com/bomb", max_chars=200_000)
    assert text.startswith("z" * 50_000)
    assert "50000-byte limit" in text


async def test_gzip_body_decoded() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/plain; charset=utf-8", "content-encoding": "gzip"}
        return httpx2.Response(200, content=chunked(gzip.compress("déjà vu".encode()), 3), headers=headers)

    assert await fetcher(handler).fetch("http://example.com/") == "déjà vu"


async def test_transport_timeout_is_tool_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("read timed out", request=request)

    with pytest.raises(ToolError, match="timed out"):
        await fetcher(handler).fetch("http://example.com/slow")


async def test_overall_deadline_is_tool_error() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(30)
        return httpx2.Response(200, text="too late")

    with anyio.fail_after(10):  # the fetcher's own 0.2 s deadline must fire long before this
        with pytest.raises(ToolError, match=r"timed out after 0\.2 s"):
            await fetcher(handler, timeout=0.2).fetch("http://example.com/slow")


async def test_connection_error_is_tool_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(ToolError, match="Could not fetch"):
        await fetcher(handler).fetch("http://example.com/")


async def test_tool_run_reports_refusal_as_error_result() -> None:
    tool = fetcher(never_called).fetch
    result = await tool.run(
        {"type": "tool_use", "id": "t1", "name": "fetch_url", "input": {"url": "http://10.0.0.1/"}}
    )
    assert result.is_error
    assert tool.name == fetch_url.name == "fetch_url"


async def test_module_tool_refuses_loopback_without_network() -> None:
    with pytest.raises(ToolError, match="internal"):
        await fetch_url("http://127.0.0.1:1/")
    with pytest.raises(ToolError, match="local address"):
        await fetch_url("http://localhost:1/")


def test_is_internal_address_table() -> None:
    assert not is_internal_address("93.184.216.34")
    assert not is_internal_address("2606:4700:4700::1111")
    assert not is_internal_address("64:ff9b::5db8:d822")  # NAT64 of a public address
    assert not is_internal_address("2002:5db8:d822::1")  # 6to4 of a public address
    assert not is_internal_address("2606:4700::5efe:5db8:d822")  # ISATAP id of a public address
    for address in [
        "127.0.0.1",
        "10.0.0.1",
        "::1",
        "::ffff:192.168.0.1",
        "fe80::1%eth0",
        "2002:7f00:1::1",
        "2002:c0a8:101::",
        "2002:6440:1::1",  # 6to4 of 100.64.0.1 (shared address space)
        "::a00:1",
        "64:ff9b:1::5db8:d822",
        "2001::1",
        "2606:4700::5efe:7f00:1",
        "2606:4700::300:5efe:a9fe:a9fe",
        "ff02::1",
        "not-an-ip",
    ]:
        assert is_internal_address(address), address


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body><p>local server says hi</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_real_local_fetch_needs_allow_private(local_server: str) -> None:
    with pytest.raises(ToolError, match="internal"):
        await HttpFetcher().fetch(local_server)
    text = await HttpFetcher(allow_private=True, timeout=5).fetch(local_server)
    assert text == "local server says hi"
