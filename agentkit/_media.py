"""Images and documents for prompts and tool results, checked before anything is sent.

The API takes images as ``image/jpeg``, ``image/png``, ``image/gif`` or ``image/webp`` (base64 or URL)
and documents as PDF (``application/pdf``), plain text or URL (wire reference §3); a base64 image whose
bytes are another format than its ``media_type`` says is a 400 ("Image does not match the provided
media type"), so the bytes are sniffed here, where the image is made.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import mimetypes
from pathlib import Path
from typing import Any

from ._exceptions import ConfigurationError
from .types import Base64ImageSource, DocumentBlock, ImageBlock, URLImageSource

__all__ = ["IMAGE_MEDIA_TYPES", "Document", "Image"]

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".csv"})


def _sniff(data: bytes) -> str | None:
    """The image media type the bytes' signature says, if it is one of the API's four."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _url(where: str, url: Any) -> str:
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"{where}(url=...): got {url!r}; expected an http(s) URL")
    return url


def _b64decode(where: str, data: Any) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ConfigurationError(f"{where}(data=...): not valid base64 text") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """An image for the model, in a prompt (``agent.run(["What is this?", Image.from_path("cat.png")])``)
    or returned by a tool. ``Image(data, media_type)`` holds bytes; :meth:`from_path`,
    :meth:`from_base64` and :meth:`from_url` make the others. ``media_type`` is one of ``image/jpeg``,
    ``image/png``, ``image/gif``, ``image/webp`` and must match the bytes."""

    data: bytes = b""
    media_type: str = "image/png"
    url: str | None = None

    def __post_init__(self) -> None:
        if self.url is not None:
            _url("Image", self.url)
            if self.data:
                raise ConfigurationError("Image: give either data or url, not both")
            return
        if self.media_type not in IMAGE_MEDIA_TYPES:
            raise ConfigurationError(
                f"Image(media_type=...): unsupported image media type {self.media_type!r}; "
                f"use one of {sorted(IMAGE_MEDIA_TYPES)}"
            )
        if not isinstance(self.data, bytes | bytearray) or not self.data:
            raise ConfigurationError(
                f"Image(data=...): got {type(self.data).__name__}; expected non-empty bytes"
            )
        sniffed = _sniff(bytes(self.data[:16]))
        if sniffed is not None and sniffed != self.media_type:
            raise ConfigurationError(
                f"Image(media_type={self.media_type!r}): the bytes are {sniffed}; pass media_type={sniffed!r}"
            )

    @classmethod
    def from_path(cls, path: str | Path, media_type: str | None = None) -> Image:
        """Read an image file; the media type is guessed from the extension (or the bytes) unless given."""
        path = Path(path)
        data = path.read_bytes()
        kind = media_type or mimetypes.guess_type(path.name)[0] or _sniff(data[:16]) or ""
        return cls(data, kind)

    @classmethod
    def from_base64(cls, data: str, media_type: str) -> Image:
        """An image from base64 text (checked like bytes)."""
        return cls(_b64decode("Image.from_base64", data), media_type)

    @classmethod
    def from_url(cls, url: str) -> Image:
        """An image the API fetches from ``url``."""
        return cls(url=url)

    def to_block(self) -> ImageBlock:
        """The image as an ``image`` content block."""
        if self.url is not None:
            return ImageBlock(source=URLImageSource(url=self.url))
        encoded = base64.b64encode(self.data).decode()
        return ImageBlock(source=Base64ImageSource(media_type=self.media_type, data=encoded))


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """A document for the model: a PDF (``Document(pdf_bytes)``, :meth:`from_path`, :meth:`from_base64`),
    plain text (:meth:`from_text`) or a URL (:meth:`from_url`), with an optional ``title`` and
    ``context``; ``citations=True`` asks for citations into it."""

    data: bytes = b""
    media_type: str = "application/pdf"
    url: str | None = None
    text: str | None = None
    title: str | None = None
    context: str | None = None
    citations: bool = False

    def __post_init__(self) -> None:
        given = sum((bool(self.data), self.url is not None, self.text is not None))
        if given != 1:
            raise ConfigurationError("Document: give exactly one of data (PDF bytes), url or text")
        if self.url is not None:
            _url("Document", self.url)
        elif self.text is not None:
            if not isinstance(self.text, str) or not self.text:
                raise ConfigurationError("Document(text=...): expected a non-empty str")
        else:
            if self.media_type != "application/pdf":
                raise ConfigurationError(
                    f"Document(media_type={self.media_type!r}): bytes must be a PDF ('application/pdf'); "
                    "use Document.from_text(...) for text"
                )
            if not bytes(self.data[:5]) == b"%PDF-":
                raise ConfigurationError("Document(data=...): the bytes are not a PDF (no '%PDF-' header)")

    @classmethod
    def from_path(cls, path: str | Path, *, title: str | None = None, citations: bool = False) -> Document:
        """A PDF file, or a text file (``.txt``, ``.md``...) read as UTF-8."""
        path = Path(path)
        if path.suffix.lower() in _TEXT_SUFFIXES:
            return cls(text=path.read_text(encoding="utf-8"), title=title, citations=citations)
        return cls(path.read_bytes(), title=title, citations=citations)

    @classmethod
    def from_base64(cls, data: str, *, title: str | None = None, citations: bool = False) -> Document:
        """A PDF from base64 text."""
        return cls(_b64decode("Document.from_base64", data), title=title, citations=citations)

    @classmethod
    def from_text(cls, text: str, *, title: str | None = None, citations: bool = False) -> Document:
        """A plain-text document."""
        return cls(text=text, title=title, citations=citations)

    @classmethod
    def from_url(cls, url: str, *, title: str | None = None, citations: bool = False) -> Document:
        """A PDF the API fetches from ``url``."""
        return cls(url=url, title=title, citations=citations)

    def to_block(self) -> DocumentBlock:
        """The document as a ``document`` content block."""
        source: dict[str, Any]
        if self.url is not None:
            source = {"type": "url", "url": self.url}
        elif self.text is not None:
            source = {"type": "text", "media_type": "text/plain", "data": self.text}
        else:
            source = {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(self.data).decode(),
            }
        return DocumentBlock(
            source=source,
            title=self.title,
            context=self.context,
            citations={"enabled": True} if self.citations else None,
        )
