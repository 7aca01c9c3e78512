"""A fetched body as text: decoding with real text encodings only, HTML to readable text with lxml.

Both run in a worker thread (see ``tools.http``); both are linear in the input. The stdlib
``html.parser`` is not (``<a<a<a...`` is quadratic), and neither are some codecs Python offers as
charsets (``punycode``), so a hostile page could stall the event loop for minutes.
"""

from __future__ import annotations

import codecs
import functools
import importlib
from typing import Any

__all__ = ["decode_body", "html_to_text"]

# Real text encodings (WHATWG's list, as Python names them, plus UTF-32). Anything else a server
# names -- punycode, idna, unicode_escape, utf-7, bytes-to-bytes codecs -- is read as UTF-8.
_TEXT_ENCODINGS = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
        "ascii", "latin-1", "iso8859-2", "iso8859-3", "iso8859-4", "iso8859-5", "iso8859-6", "iso8859-7",
        "iso8859-8", "iso8859-9", "iso8859-10", "iso8859-11", "iso8859-13", "iso8859-14", "iso8859-15",
        "iso8859-16", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257",
        "cp1258", "cp874", "cp866", "cp437", "cp850", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic",
        "tis-620", "gbk", "gb2312", "gb18030", "big5", "big5hkscs", "euc-jp", "euc-kr", "cp949",
        "cp932", "shift_jis", "iso2022-jp", "iso2022-kr",
    )
)  # fmt: skip

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object"})
_BLOCK = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header",
     "footer", "pre", "blockquote", "table", "ul", "ol", "dl", "dt", "dd", "hr", "title", "main", "nav",
     "aside", "figure", "figcaption", "form", "fieldset", "details", "summary", "address", "caption"}
)  # fmt: skip
_CELL = frozenset({"td", "th"})


def text_encoding(label: str | None) -> str:
    """The Python codec for a charset label if it is a real text encoding, else ``utf-8``."""
    if not label:
        return "utf-8"
    try:
        name = codecs.lookup(label.strip()[:40]).name
    except (LookupError, ValueError):
        return "utf-8"
    return name if name in _TEXT_ENCODINGS else "utf-8"


def decode_body(raw: bytes, charset: str | None) -> str:
    """``raw`` decoded with the server's charset if it is a real text encoding, else UTF-8."""
    return raw.decode(text_encoding(charset), errors="replace")


@functools.cache
def _lxml() -> tuple[Any, Any]:
    """``lxml.etree`` and ``lxml.html``, imported on first use (lxml ships no type hints)."""
    return importlib.import_module("lxml.etree"), importlib.import_module("lxml.html")


def html_to_text(markup: str) -> str:
    """Readable text from HTML: drops scripts/styles/head, keeps line structure around block elements.

    The page's ``<title>`` comes first as ``# title`` unless the text already starts with it.
    """
    etree, lxml_html = _lxml()
    parser = lxml_html.HTMLParser(
        encoding="utf-8",  # the text was decoded already; a <meta charset> cannot switch it
        huge_tree=True,  # nesting up to 2048 deep instead of 256 (libxml2 stays linear either way)
        remove_comments=True,
        remove_pis=True,
        no_network=True,
    )
    try:
        root: Any = lxml_html.document_fromstring(markup.encode("utf-8", "replace"), parser=parser)
    except etree.ParserError:  # no element at all: empty, or only comments
        return ""
    parts: list[str] = []
    title = ""
    skipping = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag == "title" and not title:
                title = " ".join(element.text_content().split())
            if tag in _SKIP:
                skipping += 1
            elif not skipping:
                if tag in _BLOCK:
                    parts.append("\n")
                if element.text:
                    parts.append(element.text)
            continue
        if tag in _SKIP:
            skipping -= 1
        elif not skipping:
            if tag in _BLOCK:
                parts.append("\n")
            elif tag in _CELL:
                parts.append(" ")
        if not skipping and element.tail:
            parts.append(element.tail)
    lines = (" ".join(line.split()) for line in "".join(parts).splitlines())
    body = "\n".join(line for line in lines if line)
    return f"# {title}\n\n{body}" if title and not body.startswith(title) else body
