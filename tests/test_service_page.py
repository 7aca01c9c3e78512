"""The service example's chat page in a real browser (headless Chromium driven by Playwright).

The service runs as a user runs it (``python examples/service.py --port 0``, offline demo model); the
browser loads ``/``, asks a question, and must show the tool call start and finish and the streamed
answer. Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); elsewhere the
test is skipped with the reason, never in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium must not try to reach the network on its own (this machine's network is closed).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed: pip install -e '.[dev,examples]'"
    if CHROMIUM is None:
        return "no Chromium on PATH: apt-get install chromium (.ci/run does)"
    return None


MISSING = _missing()
if MISSING and os.environ.get("CI"):
    raise RuntimeError(f"the browser test must run in CI: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "service.py"), "--port", "0", "--grace", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the offline notice, then "listening on http://127.0.0.1:PORT/"
            seen.append(line)
            if found := re.search(r"http://127\.0\.0\.1:\d+/", line):
                break
        else:
            pytest.fail(f"the service did not start: {''.join(seen)!r}")
        yield found.group(0)
    finally:
        proc.terminate()  # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode in (0, -signal.SIGTERM), out
        assert "Traceback" not in out, out


def test_a_question_gets_its_streamed_answer_and_the_tool_call_shows(service_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(service_url)
            page.fill("#question", "What's the weather in Tokyo?")
            page.click("#send")

            call = page.locator(".tool-call[data-tool='get_weather']")
            expect(call).to_have_count(1, timeout=20_000)
            expect(call).to_have_class(re.compile(r"\bfinished\b"), timeout=20_000)
            expect(call).to_contain_text('→ get_weather({"city":"Tokyo"})')
            expect(call).to_contain_text('← {"city":"Tokyo","country":"Japan"')

            turn = page.locator(".turn[data-finished='true']")
            expect(turn).to_have_count(1, timeout=20_000)
            expect(turn.locator(".answer.done")).to_contain_text(re.compile(r"In Tokyo it is -?\d"))
            expect(page.locator("#send")).to_be_enabled()

            # A follow-up in the same tab continues the same session (the server keeps its history).
            page.fill("#question", "And the weather in Paris?")
            page.click("#send")
            expect(page.locator(".turn[data-finished='true']")).to_have_count(2, timeout=20_000)
            expect(page.locator(".tool-call[data-tool='get_weather']")).to_have_count(2)
            if os.environ.get("AGENTKIT_SCREENSHOT"):
                page.screenshot(path=os.environ["AGENTKIT_SCREENSHOT"], full_page=True)
        finally:
            browser.close()


def test_a_call_needing_approval_shows_a_prompt_and_runs_once_approved(service_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(service_url)
            page.fill("#question", "Subscribe me to weather alerts for Oslo")
            page.click("#send")

            waiting = page.locator(".tool-call[data-tool='subscribe_alerts']")
            expect(waiting).to_have_class(re.compile(r"\bwaiting\b"), timeout=20_000)
            prompt = page.locator(".approval")
            expect(prompt).to_contain_text('Allow subscribe_alerts({"city":"Oslo"})?')
            # the turn's other call already ran while this one waits
            expect(page.locator(".tool-call[data-tool='get_weather']")).to_have_class(re.compile(r"\bfinished\b"))

            prompt.locator("button.approve").click()
            expect(prompt).to_have_count(0)
            expect(waiting).to_have_class(re.compile(r"\bfinished\b"), timeout=20_000)
            expect(waiting).to_contain_text("subscribed to severe-weather alerts for Oslo")
            expect(page.locator(".turn[data-finished='true']")).to_have_count(1, timeout=20_000)
            expect(page.locator("#send")).to_be_enabled()

            page.fill("#question", "Subscribe me to weather alerts for Paris")
            page.click("#send")
            expect(page.locator(".approval")).to_have_count(1, timeout=20_000)
            page.locator(".approval button.deny").click()
            denied = page.locator(".tool-call[data-tool='subscribe_alerts']").nth(1)
            expect(denied).to_have_class(re.compile(r"\bfailed\b"), timeout=20_000)
            expect(denied).to_contain_text("call denied: the user declined")
            if os.environ.get("AGENTKIT_SCREENSHOT"):
                page.screenshot(path=os.environ["AGENTKIT_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
