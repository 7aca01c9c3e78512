"""HTML to text and charset decoding in ``tools.http``: the old way (stdlib ``html.parser``, any codec
Python knows) against the new (lxml, an allow-list of text encodings), on hostile and normal pages.

    python -m benchmarks.html_text            # ~1 minute (the old parser on 2 MB is capped, see --cap)
    python -m benchmarks.html_text --cap 5    # give up on a slow case after 5 s

Each case runs in a fresh process, best of 3 (one run for cases slower than 5 s); a case still running
after ``--cap`` seconds is stopped and reported as "> cap", with a quadratic estimate from the 100 KB
and 200 KB times. On demand only: not part of the pytest suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser

KB = 1000


class _OldExtractor(HTMLParser):
    """What ``tools.http`` did before: the stdlib parser, collecting the text outside skipped tags."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in self._SKIP

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in self._SKIP and self.skip > 0

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _old_html(markup: str) -> str:
    parser = _OldExtractor()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _new_html(markup: str) -> str:
    from agentkit.tools._page_text import html_to_text

    return html_to_text(markup)


def _old_decode(raw: bytes) -> str:
    return raw.decode("punycode", errors="replace")


def _new_decode(raw: bytes) -> str:
    from agentkit.tools._page_text import decode_body

    return decode_body(raw, "punycode")


def _normal_page(size: int) -> str:
    """A plausible article page: head with styles and scripts, nav, headings, paragraphs, lists, tables."""
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>A normal page</title>"
        "<style>body{font:16px/1.5 sans-serif}.nav a{margin:0 1em}</style>"
        "<script>window.dataLayer=[];function track(e){dataLayer.push(e)}</script></head><body>"
        "<nav class='nav'><a href='/'>Home</a><a href='/docs'>Docs</a><a href='/blog'>Blog</a></nav><main>"
    )
    section = (
        "<section><h2 id='s{n}'>Section {n}</h2><p>Lorem ipsum <b>dolor</b> sit amet, "
        "<a href='/x?a=1&amp;b=2'>"
        "consectetur</a> adipiscing elit &mdash; sed do eiusmod tempor incididunt ut labore et dolore magna "
        "aliqua. Caf&eacute; &amp; cr&egrave;me.</p><ul><li>first point</li><li>second <i>point</i></li>"
        "<li>third point</li></ul><table><tr><th>key</th><th>value</th></tr><tr><td>alpha</td><td>1</td>"
        "</tr><tr><td>beta</td><td>2</td></tr></table><pre><code>def f(x):\n    return x &lt; 2</code></pre>"
        "<!-- tracking pixel --><img src='/p.gif' alt=''></section>"
    )
    parts = [head]
    n = 0
    while sum(map(len, parts)) < size:
        n += 1
        parts.append(section.format(n=n))
    parts.append("</main><footer>&copy; 2026</footer></body></html>")
    return "".join(parts)


def _inputs() -> dict[str, tuple[Callable[[], object], Callable[[object], str], Callable[[object], str]]]:
    def angle(size: int) -> Callable[[], object]:
        return lambda: "<a" * (size // 2)

    def puny(size: int) -> Callable[[], object]:
        return lambda: b"a" * (size // 2) + b"-" + b"a" * (size // 2)

    html = (_old_html, _new_html)
    dec = (_old_decode, _new_decode)
    return {
        "'<a<a<a...' 100 KB": (angle(100 * KB), *html),
        "'<a<a<a...' 200 KB": (angle(200 * KB), *html),
        "'<a<a<a...' 2 MB": (angle(2000 * KB), *html),
        "normal page 250 KB": (lambda: _normal_page(250 * KB), *html),
        "normal page 2 MB": (lambda: _normal_page(2000 * KB), *html),
        "'<b>x</b>' x 250,000 (2 MB)": (lambda: "<b>x</b>" * 250_000, *html),
        "charset=punycode 100 KB": (puny(100 * KB), *dec),
        "charset=punycode 200 KB": (puny(200 * KB), *dec),
        "charset=punycode 2 MB": (puny(2000 * KB), *dec),
    }  # type: ignore[dict-item]


def _measure_one(case: str, which: str) -> float:
    make, old, new = _inputs()[case]
    data = make()
    func = old if which == "old" else new
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        func(data)
        best = min(best, time.perf_counter() - started)
        if best > 5.0:
            break
    return best


def _run(case: str, which: str, cap: float) -> float | None:
    """Seconds for one case in a fresh process, or None if it did not finish within ``cap``."""
    command = [sys.executable, "-m", "benchmarks.html_text", "--one", case, which]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=cap, check=True)
    except subprocess.TimeoutExpired:
        return None
    return float(done.stdout.strip())


def _fmt(seconds: float | None, cap: float, estimate: float | None) -> str:
    if seconds is None:
        guess = f" (quadratic estimate {estimate:,.0f} s)" if estimate else ""
        return f"> {cap:g} s{guess}"
    if seconds < 0.001:
        return f"{seconds * 1e6:,.0f} µs"
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=30.0, help="seconds before a case is given up")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "WHICH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(_measure_one(*args.one))
        return
    print("| input | old (html.parser / any codec) | new (lxml / text encodings only) |")
    print("| --- | ---: | ---: |")
    times: dict[tuple[str, str], float | None] = {}
    for case in _inputs():
        row = []
        for which in ("old", "new"):
            seconds = _run(case, which, args.cap)
            times[case, which] = seconds
            estimate = None
            if seconds is None and case.endswith("2 MB"):
                small = times.get((case.replace("2 MB", "200 KB"), which))
                estimate = small * 100 if small else None  # 10x the size, 100x the time
            row.append(_fmt(seconds, args.cap, estimate))
        print(f"| {case} | {row[0]} | {row[1]} |", flush=True)


if __name__ == "__main__":
    main()
