"""No secret in any rendering: API keys of several shapes and a password carried in ``deps``.

What is rendered here is what a user, a log pipeline or an error tracker would render:

- ``repr``/``str``/``format`` of the client, ``vars(client)``, copies; pickling a client refuses;
- ``traceback.TracebackException(..., capture_locals=True)`` (Sentry-style: ``repr`` of every local of
  every frame) of an auth failure, of a connection failure whose cause was raised deep in the HTTP
  stack, and of a tool error;
- the console log (``configure_logging(format="console")`` with ``rich`` installed) of a failing tool;
- ``RunContext`` reprs, agentkit's log events of a run with deps;
- ``LocalServer``'s recorded requests and its repr (and the record is bounded).

A leak is any run of 12 characters of a secret, not just the whole value: truncated renderings
(``rich`` cuts locals at 80 characters) leak prefixes.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import re
import string
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

import agentkit
from agentkit import (
    AgentKitError,
    APIConnectionError,
    AuthenticationError,
    Client,
    RunContext,
    _logging,
    tool,
)
from agentkit._agent import Agent
from agentkit.testing import LocalServer, Request, Script, reply

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
KEYS = {
    "anthropic": "sk-ant-api03-Kq7vB2nX9mZ4pL8wR1tY6uE3oI5aS0dF-gH2jK4lZ6xC8vB0nM_qW3eR5tY7uI9oP-AAA",
    "openai-project": "sk-proj-Vb8Nm3Qw5Er7Ty9Ui1Op3As5Df7Gh9Jk1Lz3Xc5Vb7Nm9Qw1Er3Ty5Ui7Op9As1Df",
    "hex-gateway": "9f3c7a1e5b8d2f4a6c0e9b7d5f3a1c8e6b4d2f0a",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnYXRld2F5LXVzZXItNDIifQ.q7Zr4Tn9Wm2Kx8Vb5Lp3Hs6Dj1Fg0Ya",
}
PASSWORD = "pg-p4ssw0rd-Tr0ub4dor&3-horse"
WINDOW = 12


def leaked(text: str, secret: str) -> str | None:
    """The first run of WINDOW characters of ``secret`` found in ``text`` (None: no leak)."""
    width = min(WINDOW, len(secret))
    for start in range(len(secret) - width + 1):
        if secret[start : start + width] in text:
            return secret[start : start + width]
    return None


def assert_no_leak(text: str, *secrets: str) -> None:
    for secret in secrets:
        part = leaked(text, secret)
        if part is not None:
            at = text.index(part)
            pytest.fail(f"{part!r} (from a secret) appears in: ...{text[max(0, at - 300) : at + 100]!r}...")


def tb_with_locals(exc: BaseException) -> str:
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


async def failure(awaitable: Awaitable[Any]) -> BaseException:
    """The exception ``awaitable`` raises, caught here so that its traceback starts in this frame (the
    test's own locals, which hold the keys, are not part of what is rendered)."""
    try:
        await awaitable
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


@dataclass
class Deps:
    """What a user passes as deps: a database password among ordinary settings."""

    db_password: str
    region: str = "eu-west-1"


@tool
def lookup_account(ctx: RunContext[Deps], account: str) -> str:
    """Look an account up in the database.

    Args:
        account: Account id.
    """
    raise ConnectionRefusedError(f"database in {ctx.deps.region} refused the connection for {account}")


# --- 1. the client holds the key only inside an object that never renders it -----------------


@pytest.mark.parametrize("auth", ["x-api-key", "bearer"])
@pytest.mark.parametrize("shape", sorted(KEYS))
def test_client_state_never_renders_the_key(shape: str, auth: Any) -> None:
    key = KEYS[shape]
    client = Client(api_key=key, base_url="http://127.0.0.1:9", auth=auth)
    renderings = [
        repr(client),
        str(client),
        f"{client}",
        repr(vars(client)),
        str(client.__dict__),
        repr(copy.copy(client).__dict__),
        *(f"{v!r} {v!s} {v}" for v in vars(client).values()),
    ]
    assert_no_leak("\n".join(renderings), key)
    with pytest.raises(TypeError, match="secret"):
        pickle.dumps(client)
    with pytest.raises(TypeError, match="share it") as refused:  # a pool is not copied
        copy.deepcopy(client)
    assert_no_leak(str(refused.value), key)


def test_a_client_that_fails_to_build_leaves_no_key_in_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)

    def build() -> BaseException:
        try:
            Client(api_key=KEYS["hex-gateway"], provider="poyo")  # no base_url: an error inside __init__
        except AgentKitError as exc:
            return exc
        raise AssertionError("no exception")

    rendered = tb_with_locals(build())
    assert "__init__" in rendered and "provider = 'poyo'" in rendered  # the client's frame is rendered
    assert_no_leak(rendered, KEYS["hex-gateway"])


# --- 4. traceback locals (Sentry-style) of errors raised from a run --------------------------


@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_auth_failure_traceback_locals_render_no_key(shape: str) -> None:
    key = KEYS[shape]
    with LocalServer(api_key="sk-the-server-wants-another-key") as server:
        for auth in ("x-api-key", "bearer"):
            async with Client(api_key=key, base_url=server.base_url, auth=auth) as client:
                exc = await failure(Agent(client, model=MODEL).run("hi"))
                assert isinstance(exc, AuthenticationError)
                rendered = tb_with_locals(exc)
                assert "AuthenticationError" in rendered and "_post_json" in rendered  # not vacuous
                assert_no_leak(rendered, key)


@pytest.mark.parametrize("own_pool", [True, False], ids=["own-pool", "http_client"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_connection_failure_traceback_locals_render_no_key(
    shape: str, stream: bool, own_pool: bool
) -> None:
    key = KEYS[shape]
    with LocalServer(Script([reply.drop()] * 3), api_key=key) as server:
        async with httpx2.AsyncClient() as http:
            client = Client(
                api_key=key, base_url=server.base_url, max_retries=0, http_client=None if own_pool else http
            )
            agent = Agent(client, model=MODEL)
            agent.stream_requests = stream
            exc = await failure(agent.run("hi"))
            await client.aclose()
    assert isinstance(exc, APIConnectionError)
    rendered = tb_with_locals(exc)
    assert "direct cause" in rendered or "During handling" in rendered  # the cause chain is rendered
    # an httpx2 error in the chain may carry its request (httpx2's client sets it): its headers,
    # rendered, show no key either
    attached: list[httpx2.Request] = []
    chain: BaseException | None = exc
    while chain is not None:
        request = getattr(chain, "_request", None)
        if isinstance(request, httpx2.Request):
            attached.append(request)
        chain = chain.__cause__ or chain.__context__
    if not own_pool:
        assert attached and all(r.url.path == "/v1/messages" for r in attached)
    rendered += "".join(f"{r!r} {r.headers!r} {vars(r)!r}" for r in attached)
    assert_no_leak(rendered, key)


async def within(seconds: float, awaitable: Awaitable[Any]) -> Any:
    with anyio.fail_after(seconds):
        return await awaitable


@pytest.mark.parametrize("stream", [False, True])
async def test_a_timeout_around_a_run_renders_no_key(stream: bool) -> None:
    """The application's own deadline cancels a request in flight: the cancellation passed through the
    HTTP stack's frames (the raw request head among their locals) and is the timeout's context."""
    key = KEYS["hex-gateway"]
    with LocalServer(latency=30, api_key=key) as server:
        async with Client(api_key=key, base_url=server.base_url) as client:
            agent = Agent(client, model=MODEL)
            agent.stream_requests = stream
            exc = await failure(within(0.3, agent.run("hi")))
    assert isinstance(exc, TimeoutError)
    rendered = tb_with_locals(exc)
    assert "_send" in rendered  # the frames of the request in flight are rendered
    assert_no_leak(rendered, key)


async def test_tool_error_traceback_locals_render_no_password_or_key() -> None:
    key = KEYS["jwt"]
    with LocalServer(
        Script([reply.tool_use("lookup_account", {"account": "acct_42"}), reply.text("done")]), api_key=key
    ) as server:
        async with Client(api_key=key, base_url=server.base_url) as client:
            agent = Agent(client, model=MODEL, tools=[lookup_account], deps_type=Deps)
            with structlog.testing.capture_logs() as logs:
                result = await agent.run("check acct_42", deps=Deps(db_password=PASSWORD))
    assert result.text == "done"
    (event,) = [e for e in logs if e["event"] == "tool.error"]
    rendered = tb_with_locals(event["exc_info"])
    assert "lookup_account" in rendered and "ConnectionRefusedError" in rendered
    assert "RunContext" in rendered and "Deps" in rendered  # the context is rendered, its deps are not
    assert_no_leak(rendered, key, PASSWORD)


# --- 3. deps are never rendered ---------------------------------------------------------------


def test_run_context_repr_shows_the_deps_type_only() -> None:
    ctx = RunContext(deps=Deps(db_password=PASSWORD), run_id="run_1", turn=2)
    for text in (repr(ctx), str(ctx), f"{ctx}"):
        assert "Deps" in text and "run_1" in text and "turn=2" in text
        assert_no_leak(text, PASSWORD)
        assert "eu-west-1" not in text
    assert "deps=None" in repr(RunContext(deps=None))


async def test_a_run_logs_nothing_of_its_deps() -> None:
    script = Script([reply.tool_use("lookup_account", {"account": "acct_1"}), reply.text("ok")])
    with LocalServer(script) as srv:
        async with Client(api_key="sk-test", base_url=srv.base_url) as client:
            agent = Agent(client, model=MODEL, tools=[lookup_account], deps_type=Deps)
            with structlog.testing.capture_logs() as logs:
                await agent.run("go", deps=Deps(db_password=PASSWORD))
    assert {"agent.run.start", "tool.error", "agent.run.end"} <= {e["event"] for e in logs}
    flat = "\n".join(repr({k: v for k, v in e.items() if k != "exc_info"}) for e in logs)
    assert_no_leak(flat, PASSWORD)
    assert not any("deps" in e for e in logs)


async def test_console_log_of_a_failing_tool_renders_no_secret() -> None:
    """``configure_logging(format="console")`` with rich installed: a real tool.error traceback."""
    pytest.importorskip("rich")
    key = KEYS["hex-gateway"]

    @tool
    def call_gateway(ctx: RunContext[Deps], path: str) -> str:
        """Call an internal gateway.

        Args:
            path: Path to fetch.
        """
        headers = {"x-api-key": key, "accept": "application/json"}  # locals rich would print
        token = key * 3  # longer than rich's 80-character cut: a prefix would be printed
        raise PermissionError(f"gateway rejected {path} (key {token[:20]}..., {len(headers)} headers)")

    buffer = io.StringIO()
    agentkit.configure_logging(level="info", format="console", stream=buffer)
    try:
        with LocalServer(
            Script([reply.tool_use("call_gateway", {"path": "/v1/x"}), reply.text("done")]), api_key=key
        ) as server:
            async with Client(api_key=key, base_url=server.base_url, auth="bearer") as client:
                agent = Agent(client, model=MODEL, tools=[call_gateway], deps_type=Deps)
                await agent.run("go", deps=Deps(db_password=PASSWORD))
    finally:
        structlog.reset_defaults()
    out = buffer.getvalue()
    assert "tool.error" in out and "PermissionError" in out and "call_gateway" in out  # rendered for real
    assert_no_leak(out, key, PASSWORD)


# --- 5. LocalServer records requests without their secrets, and not forever ---------------------


@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_local_server_records_requests_redacted(shape: str) -> None:
    key = KEYS[shape]
    with LocalServer(api_key=key) as server:
        for auth in ("x-api-key", "bearer"):
            async with Client(
                api_key=key, base_url=server.base_url, auth=auth, default_headers={"cookie": f"session={key}"}
            ) as client:
                await client.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
        recorded = server.requests
        renderings = [repr(server), str(server), repr(recorded), json.dumps([r.headers for r in recorded])]
        renderings += [f"{v}" for r in recorded for v in r.headers.values()]
    assert_no_leak("\n".join(renderings), key)
    # what tests need stays: which header carried the key, and whether it was the right one
    x_key, bearer = recorded
    assert x_key.headers["x-api-key"] == key and "authorization" not in x_key.headers
    assert x_key.headers["x-api-key"] != key + "x"
    assert bearer.headers["authorization"] == f"Bearer {key}" and "x-api-key" not in bearer.headers
    assert bearer.headers["authorization"].lower().startswith("bearer ")
    assert x_key.headers["cookie"] == f"session={key}"
    assert x_key.headers["anthropic-version"] == "2023-06-01"  # ordinary headers are kept as they are


async def test_local_server_still_rejects_a_wrong_key() -> None:
    with LocalServer(api_key=KEYS["hex-gateway"]) as server:
        async with Client(api_key=KEYS["hex-gateway"][::-1], base_url=server.base_url) as client:
            with pytest.raises(AuthenticationError):
                await client.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
        assert server.requests[0].headers["x-api-key"] == KEYS["hex-gateway"][::-1]
        assert server.requests[0].headers["x-api-key"] != server.api_key


async def test_local_server_keeps_only_the_last_requests() -> None:
    with LocalServer(max_recorded=3) as server:
        async with Client(api_key="sk-test", base_url=server.base_url) as client:
            for k in range(5):
                messages = [{"role": "user", "content": f"m{k}"}]
                await client.create(model=MODEL, max_tokens=8, messages=messages)
        assert [r.index for r in server.requests] == [2, 3, 4]
        assert [r.last_user_text for r in server.requests] == ["m2", "m3", "m4"]
        assert server.requests_received == 5
        server.clear_requests()
        assert server.requests == [] and server.requests_received == 5
    with pytest.raises(ValueError, match="max_recorded"):
        LocalServer(max_recorded=0)


def test_policies_see_redacted_headers_too() -> None:
    seen: list[Request] = []

    def policy(request: Request) -> Any:
        seen.append(request)
        return reply.text("ok")

    with LocalServer(policy, api_key="sk-test-9f3c7a1e5b8d2f4a6c0e") as server:
        httpx2.post(
            f"{server.base_url}/v1/messages",
            headers={"x-api-key": "sk-test-9f3c7a1e5b8d2f4a6c0e", "anthropic-version": "2023-06-01"},
            json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        ).raise_for_status()
    assert seen[0].headers["x-api-key"] == "sk-test-9f3c7a1e5b8d2f4a6c0e"
    assert_no_leak(repr(seen), "sk-test-9f3c7a1e5b8d2f4a6c0e")



# --- 2. the log scrubber: parts of registered secrets, and credentials of known shapes ------------


@pytest.fixture
def json_logs() -> Any:
    buffer = io.StringIO()
    agentkit.configure_logging(level="debug", format="json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


@pytest.mark.parametrize("shape", sorted(KEYS))
def test_parts_of_a_registered_key_are_redacted(json_logs: io.StringIO, shape: str) -> None:
    key = KEYS[shape]
    Client(api_key=key, base_url="http://127.0.0.1:9")  # registers the key
    log = structlog.get_logger("app")
    log.info("prefix", note=f"key starts {key[:12]}")
    log.info("truncated", local=f"'{key[:70]}'+{len(key) - 70}")
    log.info("middle", note=f"x{key[9:30]}x", nested={"list": [key[-15:]]})
    try:
        raise RuntimeError(f"gateway said no to {key[3:40]}")
    except RuntimeError:
        log.exception("boom")
    logs = json_logs.getvalue()
    assert_no_leak(logs, key)
    assert logs.count("[redacted]") >= 5
    # the rule is runs of 12: shorter fragments of a key are ordinary text (a 6-character run is
    # too common to redact: 'sk-ant' starts every Anthropic key and many a log line)
    log.info("short", note=f"ends {key[-11:]}")
    assert key[-11:] in json_logs.getvalue()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("calling with sk-ant-api03-unregisteredKEY0123456789 now", "unregisteredKEY"),
        ("openai key sk-proj-abcDEF0123456789ghiJKL in env", "abcDEF0123456789"),
        ("a plain sk-0123456789abcdefABCDEF key", "0123456789abcdef"),
        ("Authorization: Bearer tok_0123456789abcdefXYZ sent", "0123456789abcdef"),
        ("{'authorization': 'Bearer ab12cd34ef56gh78'}", "ab12cd34ef56gh78"),
        ("x-api-key: 0f1e2d3c4b5a69788796a5b4c3d2e1f0", "0f1e2d3c4b5a6978"),
        ("{'x-api-key': 'Zm9vYmFyYmF6cXV4LXNlY3JldA'}", "Zm9vYmFyYmF6cXV4"),
        ('"x-api-key":"short-but-sent"', "short-but-sent"),
        ("header b'x-api-key: 9f9f9f9f9f9f9f9f9f9f'", "9f9f9f9f9f9f9f9f"),
        ("proxy-authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl", "eyJzdWIiOiIxMjM0"),
        ("cookie: session=abc123def456; csrftoken=zzz999yyy888", "csrftoken=zzz999"),
        ("connect postgres://app:s3cr3t-pw-here@db.internal:5432/app", "s3cr3t-pw-here"),
        ("login with password=hunter2hunter2&user=bob", "hunter2hunter2"),
    ],
)
def test_credentials_of_known_shapes_are_redacted_unregistered(text: str, secret: str) -> None:
    out = agentkit.redact_secrets(None, "info", {"event": "e", "message": text})["message"]
    assert secret not in out and "[redacted]" in out, out


@pytest.mark.parametrize(
    "text",
    [
        "usage input_tokens=1200 output_tokens=87 max_tokens: 4096",
        "task-runner-configuration-file loaded; disk-space-check passed",
        "tool_use id toolu_01A09q90qw90lq917835lq9 answered; request-id req_011CQ9vPXm4RxF8E",
        "GET https://api.example.test/v1/models?limit=20 -> 200",
        "the key to success is the token budget; authorization pending review",
    ],
)
def test_ordinary_log_text_is_left_alone(text: str) -> None:
    assert agentkit.redact_secrets(None, "info", {"event": "e", "message": text})["message"] == text


@settings(max_examples=60, deadline=None)
@given(
    secret=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=12, max_size=120),
    data=st.data(),
)
def test_any_run_of_twelve_characters_of_a_registered_secret_is_redacted(secret: str, data: Any) -> None:
    saved = _logging._registry  # random secrets (hypothesis likes '000000000000') must not outlive the test
    try:
        Client(api_key=secret, base_url="http://127.0.0.1:9")
        start = data.draw(st.integers(0, len(secret) - 12))
        end = data.draw(st.integers(start + 12, len(secret)))
        around = st.text(alphabet=string.ascii_letters + " :='\"{}", max_size=40)
        text = data.draw(around) + secret[start:end] + data.draw(around)
        out = agentkit.redact_secrets(None, "info", {"event": "e", "message": text})["message"]
    finally:
        _logging._registry = saved
    assert leaked(out, secret) is None, (text, out)


async def test_coloured_console_tracebacks_are_scrubbed_too() -> None:
    """On a terminal rich colours the traceback: escape codes inside a key must not hide it (rich
    highlights the number in the middle of this key, leaving no run of 12 uncoloured characters)."""
    pytest.importorskip("rich")
    key = "Zq8Lm3Xw7K:4829175563:Rt5Yu7Io9P"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    @tool
    def call_gateway(path: str) -> str:
        """Call an internal gateway.

        Args:
            path: Path to fetch.
        """
        raise PermissionError(f"gateway at {path} rejected token {key} today")

    buffer = Terminal()
    agentkit.configure_logging(level="info", format="console", stream=buffer)
    try:
        script = Script([reply.tool_use("call_gateway", {"path": "/x"}), reply.text("done")])
        with LocalServer(script, api_key=key) as srv:
            async with Client(api_key=key, base_url=srv.base_url) as client:
                await Agent(client, model=MODEL, tools=[call_gateway]).run("go")
    finally:
        structlog.reset_defaults()
    out = buffer.getvalue()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "PermissionError" in plain and "call_gateway" in plain
    assert_no_leak(plain, key)


def test_credential_fields_of_any_spelling_are_redacted_in_the_rendered_line(json_logs: io.StringIO) -> None:
    log = structlog.get_logger("app")
    log.info("oauth", **{"client-secret": "cs_live_51Hx9kQ2", "X-Refresh-Token": "rt_8f7e6d5c4b3a"})
    log.info("gateway", upstream="https://bob:pa55-w0rd-x@gw.internal/v1", status=200)
    logs = json_logs.getvalue()
    for fragment in ("cs_live_51Hx9kQ2", "rt_8f7e6d5c4b3a", "pa55-w0rd-x"):
        assert fragment not in logs, logs
    assert [json.loads(line)["status"] for line in logs.splitlines()[1:]] == [200]  # other fields intact


async def test_rich_tracebacks_with_locals_show_agentkit_frames_without_secrets() -> None:
    """An application's own structlog chain, rich tracebacks with ``show_locals=True``: the locals of
    agentkit's frames (the context, the call's arguments, the logger) render no deps and no key."""
    pytest.importorskip("rich")
    key = KEYS["openai-project"]
    buffer = io.StringIO()
    structlog.configure(
        processors=[
            agentkit.redact_secrets,
            structlog.dev.ConsoleRenderer(
                colors=False,
                exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=True, color_system=None),
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
    )
    try:
        script = Script([reply.tool_use("lookup_account", {"account": "acct_7"}), reply.text("done")])
        with LocalServer(script, api_key=key) as server:
            async with Client(api_key=key, base_url=server.base_url) as client:
                agent = Agent(client, model=MODEL, tools=[lookup_account], deps_type=Deps)
                await agent.run("check", deps=Deps(db_password=PASSWORD))
    finally:
        structlog.reset_defaults()
    out = buffer.getvalue()
    assert "tool.error" in out and "ConnectionRefusedError" in out
    assert "deps=<Deps>" in out  # the context was rendered, as its type-only repr
    assert_no_leak(out, key, PASSWORD)


async def test_a_gateway_credential_header_is_guarded_like_the_key(json_logs: io.StringIO) -> None:
    token = "gw-tok-7Hq2Lp9Xv4Zm8Rn3Kd6Ws1Yb"
    with LocalServer(api_key="sk-test") as server:
        async with Client(
            api_key="sk-test",
            base_url=server.base_url,
            default_headers={"X-Gateway-Token": token, "anthropic-beta": "tools-2024"},
        ) as client:
            assert "tools-2024" in repr(vars(client))  # ordinary headers still show
            assert_no_leak(repr(vars(client)), token)
            await client.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
        (request,) = server.requests
    assert request.headers["x-gateway-token"] == token and request.headers["anthropic-beta"] == "tools-2024"
    assert_no_leak(repr(request), token)
    structlog.get_logger("app").info("proxy", note=f"gateway token starts {token[:14]}")
    assert_no_leak(json_logs.getvalue(), token)
