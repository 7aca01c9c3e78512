"""A prompt given as content rather than messages: ``agent.run(["What is in this picture?", image])``.

The items become the blocks of one user turn: a ``str`` a text block, an :class:`~agentkit.Image` or
:class:`~agentkit.Document` its block, and content blocks (models or dicts with a ``type``) as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ._exceptions import ConfigurationError
from ._media import IMAGE_MEDIA_TYPES, Document, Image
from .types import MessageParam, TextBlock, _Wire

__all__ = ["is_content", "prompt_blocks"]

_ACCEPTED = "a str, an Image, a Document or a content block ({'type': ...})"


def _is_message(item: Any) -> bool:
    return isinstance(item, MessageParam) or (isinstance(item, Mapping) and "role" in item)


def is_content(prompt: Any) -> bool:
    """True for a list of content items (no item is a message)."""
    return isinstance(prompt, list | tuple) and bool(prompt) and not any(_is_message(i) for i in prompt)


def prompt_blocks(items: Sequence[Any]) -> list[Any]:
    """The blocks of a content prompt, each checked where it is given (``prompt[N]`` in errors)."""
    blocks: list[Any] = []
    for n, item in enumerate(items):
        where = f"prompt[{n}]"
        if isinstance(item, str):
            if not item:
                raise ConfigurationError(f"{where}: an empty str; text content blocks must be non-empty")
            blocks.append(TextBlock(text=item))
        elif isinstance(item, Image | Document):
            blocks.append(item.to_block())
        elif isinstance(item, _Wire) and isinstance(item, BaseModel):
            blocks.append(_checked(where, item.model_dump(exclude_none=True), item))
        elif isinstance(item, Mapping) and isinstance(item.get("type"), str):
            blocks.append(_checked(where, dict(item), dict(item)))
        else:
            raise ConfigurationError(f"{where}: got {type(item).__name__}; expected {_ACCEPTED}")
    return blocks


def _checked(where: str, wire: dict[str, Any], block: Any) -> Any:
    """A block given as a model or dict, with the checks the API would fail it on."""
    kind = wire["type"]
    if kind == "text" and not wire.get("text"):
        raise ConfigurationError(f"{where}.text: text content blocks must be non-empty")
    if kind in ("image", "document") and not isinstance(wire.get("source"), Mapping):
        raise ConfigurationError(f"{where}.source: Field required ({kind} blocks need a source)")
    if kind == "image":
        source = wire["source"]
        if source.get("type") == "base64" and source.get("media_type") not in IMAGE_MEDIA_TYPES:
            raise ConfigurationError(
                f"{where}.source.media_type: got {source.get('media_type')!r}; "
                f"expected one of {sorted(IMAGE_MEDIA_TYPES)}"
            )
    if kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
        raise ConfigurationError(f"{where}: a {kind!r} block cannot be part of a user prompt")
    return block
