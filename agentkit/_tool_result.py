"""A tool's return value as ``tool_result`` content: text (capped), images, content blocks, JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from ._media import IMAGE_MEDIA_TYPES, Image
from ._tool_run import Collected
from .types import DocumentBlock, ImageBlock, TextBlock

__all__ = ["Image", "UnserialisableError", "to_content", "truncate"]

_RESULT_BLOCK_TYPES = frozenset({"text", "image", "document"})
_ResultBlock: TypeAlias = TextBlock | ImageBlock | DocumentBlock
_result_block_adapter: TypeAdapter[_ResultBlock] = TypeAdapter(_ResultBlock)


class UnserialisableError(Exception):
    """The return value cannot be turned into ``tool_result`` content."""


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n…[truncated: {len(text) - limit} more characters]"


def _as_block(value: Any, limit: int) -> _ResultBlock | None:
    if isinstance(value, Image):
        return value.to_block()
    if isinstance(value, TextBlock):
        if len(value.text) > limit:
            return value.model_copy(update={"text": truncate(value.text, limit)})
        return value
    if isinstance(value, ImageBlock):
        return _checked_image(value)
    if isinstance(value, DocumentBlock):
        return value
    if isinstance(value, Mapping) and value.get("type") in _RESULT_BLOCK_TYPES:
        try:
            block = _result_block_adapter.validate_python(value)
        except ValidationError:
            return None
        return _as_block(block, limit)
    return None


def _as_blocks(values: list[Any] | tuple[Any, ...], limit: int) -> list[_ResultBlock] | None:
    """A list of content blocks (strings allowed beside real blocks), or ``None`` if it is plain data.
    Empty text is left out: the API rejects empty text blocks, also inside ``tool_result`` content."""
    blocks: list[_ResultBlock] = []
    has_block = False
    for value in values:
        if isinstance(value, str):
            if value:
                blocks.append(TextBlock(text=truncate(value, limit)))
            continue
        block = _as_block(value, limit)
        if block is None:
            return None
        has_block = True
        if not _is_empty_text(block):
            blocks.append(block)
    return blocks if has_block else None


def _checked_image(block: ImageBlock) -> ImageBlock:
    """An image block whose base64 media type the API accepts (wire reference §3), else unsendable."""
    source = block.source
    media_type = source.get("media_type") if isinstance(source, dict) else getattr(source, "media_type", None)
    kind = source.get("type") if isinstance(source, dict) else source.type
    if kind == "base64" and media_type not in IMAGE_MEDIA_TYPES:
        raise UnserialisableError(
            f"image media type {media_type!r} is not accepted; use one of {sorted(IMAGE_MEDIA_TYPES)}"
        )
    return block


def _is_empty_text(block: _ResultBlock) -> bool:
    return isinstance(block, TextBlock) and not block.text


def to_content(value: Any, limit: int) -> str | list[Any] | None:
    """Convert a tool's return value to ``tool_result`` content."""
    if value is None:
        return None
    if isinstance(value, Collected):  # an iterator's items: strings are joined, anything else a list
        if not value.items:
            return None
        if all(isinstance(item, str) for item in value.items):
            text = "".join(value.items)
            if value.cut:
                return f"{text[:limit]}\n…[truncated: output stopped at {limit} characters]"
            return truncate(text, limit)
        return to_content(value.items, limit)
    if isinstance(value, str):
        return truncate(value, limit)
    block = _as_block(value, limit)
    if block is not None:
        return None if _is_empty_text(block) else [block]
    if isinstance(value, list | tuple) and value:
        blocks = _as_blocks(value, limit)
        if blocks is not None:
            return list(blocks) or None
    try:
        text = pydantic_core.to_json(value, inf_nan_mode="strings").decode()
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
        raise UnserialisableError(str(exc)) from exc
    return truncate(text, limit)
