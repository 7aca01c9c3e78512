"""MCP ↔ Messages API: tool definitions in (Claude-safe schemas, valid names), results out (blocks).

Nothing here raises for what a server sends: a schema that cannot be cleaned becomes a permissive object
schema (logged), content the model cannot take (audio, resource links, unknown blobs) becomes a short
text note.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as mt

from .._schema import TOOL_NAME_PATTERN, clean_json_schema
from .._tool_result import truncate
from ..types import Base64ImageSource, Base64PDFSource, DocumentBlock, ImageBlock, TextBlock

__all__ = ["MappedTool", "map_result", "map_tools"]

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/yaml")
_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_PERMISSIVE: dict[str, Any] = {"type": "object", "additionalProperties": True}


@dataclass(frozen=True, slots=True)
class MappedTool:
    """One server tool as the model sees it: its wire name, the server's name, and the definition."""

    wire_name: str
    server_name: str
    definition: dict[str, Any]


def wire_name(prefix: str, name: str) -> str:
    """``prefix + name`` made valid for the API (``^[a-zA-Z0-9_-]{1,64}$``): other characters become
    ``_`` and the name is cut to 64 characters."""
    candidate = _BAD_NAME_CHARS.sub("_", prefix + name)[:64]
    return candidate or "_"


def map_tools(
    tools: list[mt.Tool], prefix: str, keep: Callable[[str], bool], warn: Callable[..., None]
) -> list[MappedTool]:
    """The definitions of the tools ``keep`` accepts, in the server's order (clashes after renaming are
    dropped with a warning: the first tool keeps the name)."""
    mapped: list[MappedTool] = []
    taken: set[str] = set()
    for item in tools:
        if not keep(item.name):
            continue
        name = wire_name(prefix, item.name)
        if name in taken:
            warn("mcp.tool.skipped", tool=item.name, reason=f"its API name {name!r} is taken")
            continue
        taken.add(name)
        assert TOOL_NAME_PATTERN.match(name)
        definition: dict[str, Any] = {"name": name}
        description = item.description or item.title or ""
        if description:
            definition["description"] = description
        definition["input_schema"] = input_schema(item.input_schema, item.name, warn)
        mapped.append(MappedTool(name, item.name, definition))
    return mapped


def input_schema(schema: Mapping[str, Any] | None, tool: str, warn: Callable[..., None]) -> dict[str, Any]:
    """A Claude-safe input schema: titles stripped, ``$ref`` inlined, an object at the root (a root
    ``anyOf``/``oneOf`` of objects is merged into one object whose common fields stay required)."""
    if not schema:
        return dict(_PERMISSIVE)
    try:
        cleaned = clean_json_schema(schema)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        warn("mcp.tool.schema", tool=tool, reason=f"schema not usable ({exc}); any object is accepted")
        return dict(_PERMISSIVE)
    cleaned.pop("$schema", None)
    branches = cleaned.get("anyOf") or cleaned.get("oneOf")
    if isinstance(branches, list) and branches:
        cleaned = _merge_branches(cleaned, branches)
    if cleaned.get("type") != "object":
        if "type" in cleaned or "properties" not in cleaned:
            warn("mcp.tool.schema", tool=tool, reason="the root is not an object; any object is accepted")
            return dict(_PERMISSIVE)
        cleaned["type"] = "object"
    return cleaned


def _merge_branches(root: dict[str, Any], branches: list[Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: set[str] | None = None
    for branch in branches:
        if not isinstance(branch, Mapping):
            continue
        for key, value in (branch.get("properties") or {}).items():
            properties.setdefault(key, value)
        names = set(branch.get("required") or ())
        required = names if required is None else required & names
    merged = {k: v for k, v in root.items() if k not in ("anyOf", "oneOf")}
    merged["type"] = "object"
    merged["properties"] = {**properties, **(root.get("properties") or {})}
    common = sorted(required or set()) + [r for r in root.get("required") or () if r not in (required or ())]
    if common:
        merged["required"] = common
    note = "Accepts one of several input shapes; the server checks which."
    merged["description"] = f"{merged['description']} {note}" if merged.get("description") else note
    return merged


# --- results -----------------------------------------------------------------------------------


def map_result(result: mt.CallToolResult, limit: int) -> tuple[str | list[Any] | None, bool]:
    """The ``tool_result`` content of a call's result, and whether it is an error."""
    blocks: list[Any] = []
    texts: list[str] = []
    for item in result.content:
        block = _block(item, limit)
        if isinstance(block, TextBlock):
            texts.append(block.text)
        blocks.append(block)
    structured = result.structured_content
    if structured is not None and not _carries(texts, structured):
        text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"), default=str)
        blocks.append(TextBlock(text=truncate(text, limit)))
    error = bool(result.is_error)
    if not blocks:
        return ("the tool returned no content" if error else None), error
    if all(isinstance(b, TextBlock) for b in blocks):
        return truncate("\n".join(b.text for b in blocks), limit), error
    return blocks, error


def _carries(texts: list[str], structured: Any) -> bool:
    """Whether the text content already holds the structured content (as JSON, or as the lone value of a
    ``{"result": value}`` wrapper the Python SDK puts around plain return values)."""
    single = isinstance(structured, dict) and len(structured) == 1
    wrapped = structured.get("result", _NOTHING) if single else _NOTHING
    for text in texts:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if value == structured or (wrapped is not _NOTHING and (value == wrapped or text == str(wrapped))):
            return True
    joined = "".join(texts)
    return bool(joined) and joined == json.dumps(structured)


_NOTHING: Any = object()


def _block(item: Any, limit: int) -> TextBlock | ImageBlock | DocumentBlock:
    if isinstance(item, mt.TextContent):
        return TextBlock(text=truncate(item.text, limit))
    if isinstance(item, mt.ImageContent):
        return _image(item.data, item.mime_type, "image")
    if isinstance(item, mt.AudioContent):
        size = _decoded_size(item.data)
        note = f"[audio ({item.mime_type}, {size} bytes) left out: the model cannot take audio]"
        return TextBlock(text=note)
    if isinstance(item, mt.ResourceLink):
        kind = f", {item.mime_type}" if item.mime_type else ""
        about = f": {item.description}" if item.description else ""
        return TextBlock(text=f"[resource link {item.name!r} <{item.uri}>{kind}{about}]")
    if isinstance(item, mt.EmbeddedResource):
        return _resource(item.resource, limit)
    kind = getattr(item, "type", type(item).__name__)
    return TextBlock(text=f"[{kind} content left out: not supported]")


def _resource(resource: Any, limit: int) -> TextBlock | ImageBlock | DocumentBlock:
    uri = str(getattr(resource, "uri", ""))
    mime = getattr(resource, "mime_type", None) or ""
    if isinstance(resource, mt.TextResourceContents):
        return TextBlock(text=truncate(f"[resource <{uri}>]\n{resource.text}", limit))
    if isinstance(resource, mt.BlobResourceContents):
        if mime == "application/pdf" and _decoded_size(resource.blob) >= 0:
            return DocumentBlock(source=Base64PDFSource(data=resource.blob).model_dump(), title=uri or None)
        if mime in _IMAGE_TYPES:
            return _image(resource.blob, mime, f"resource <{uri}>")
        if mime.startswith(_TEXT_TYPES):
            try:
                text = base64.b64decode(resource.blob, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                pass
            else:
                return TextBlock(text=truncate(f"[resource <{uri}>]\n{text}", limit))
        size = _decoded_size(resource.blob)
        note = f"[resource <{uri}> ({mime or 'binary'}, {size} bytes) left out: not supported]"
        return TextBlock(text=note)
    return TextBlock(text=f"[resource <{uri}> left out: not supported]")


def _image(data: str, mime: str, what: str) -> TextBlock | ImageBlock:
    if mime not in _IMAGE_TYPES or _decoded_size(data) < 0:
        return TextBlock(text=f"[{what} ({mime}) left out: not a JPEG, PNG, GIF or WebP in base64]")
    return ImageBlock(source=Base64ImageSource(media_type=mime, data=data))


def _decoded_size(data: str) -> int:
    """The decoded size of base64 ``data``, or -1 when it is not valid base64."""
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return -1
