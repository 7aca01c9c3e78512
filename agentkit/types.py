"""Wire types of the Claude Messages API, as pydantic models.

Every model accepts plain dicts (as in the API docs) and keeps fields it does not know
(``extra="allow"``), so a field or block type the API adds later survives a round trip.
Content blocks are a union discriminated on ``type``; an unknown ``type`` becomes an
:class:`UnknownBlock` that keeps every key and is sent back unchanged.

``to_wire(obj)`` turns a model (or a list/dict of them) into the JSON-ready dict the API expects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    field_validator,
)

__all__ = [
    "Base64ImageSource",
    "Base64PDFSource",
    "CacheControl",
    "CitationsDelta",
    "ContentBlock",
    "ContentBlockDeltaEvent",
    "ContentBlockStartEvent",
    "ContentBlockStopEvent",
    "Delta",
    "DocumentBlock",
    "ErrorEvent",
    "ImageBlock",
    "InputJSONDelta",
    "InvalidToolInput",
    "Message",
    "MessageDeltaEvent",
    "MessageParam",
    "MessageStartEvent",
    "MessageStopEvent",
    "Metadata",
    "PingEvent",
    "RedactedThinkingBlock",
    "SignatureDelta",
    "StopReason",
    "StreamEvent",
    "TextBlock",
    "TextDelta",
    "ThinkingBlock",
    "ThinkingConfig",
    "ThinkingConfigAdaptive",
    "ThinkingConfigDisabled",
    "ThinkingConfigEnabled",
    "ThinkingDelta",
    "ToolChoice",
    "ToolChoiceAny",
    "ToolChoiceAuto",
    "ToolChoiceNone",
    "ToolChoiceTool",
    "ToolParam",
    "ToolResultBlock",
    "ToolUseBlock",
    "URLImageSource",
    "UnknownBlock",
    "UnknownDelta",
    "UnknownEvent",
    "Usage",
    "to_wire",
]

StopReason: TypeAlias = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]
"""Documented stop reasons. Fields typed ``str`` so a new reason does not break parsing."""


class _Wire(BaseModel):
    """Base of every wire model: unknown fields are kept and sent back."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class CacheControl(_Wire):
    """A prompt-caching breakpoint: ``{"type": "ephemeral", "ttl"?: "5m" | "1h"}``."""

    type: Literal["ephemeral"] = "ephemeral"
    ttl: str | None = None


# --- sources -----------------------------------------------------------------------------------


class Base64ImageSource(_Wire):
    """Inline image bytes, base64-encoded."""

    type: Literal["base64"] = "base64"
    media_type: str
    data: str


class URLImageSource(_Wire):
    """An image (or PDF) fetched by the API from a URL."""

    type: Literal["url"] = "url"
    url: str


class Base64PDFSource(_Wire):
    """Inline PDF bytes, base64-encoded."""

    type: Literal["base64"] = "base64"
    media_type: str = "application/pdf"
    data: str


# --- content blocks ----------------------------------------------------------------------------


class TextBlock(_Wire):
    """Plain text, in a user or assistant turn."""

    type: Literal["text"] = "text"
    text: str
    citations: list[dict[str, Any]] | None = None
    cache_control: CacheControl | None = None


class ImageBlock(_Wire):
    """An image given to the model (``source``: base64 or url; other kinds are kept as dicts)."""

    type: Literal["image"] = "image"
    source: Base64ImageSource | URLImageSource | dict[str, Any]
    cache_control: CacheControl | None = None


class DocumentBlock(_Wire):
    """A document (PDF, plain text, content blocks or URL) given to the model."""

    type: Literal["document"] = "document"
    source: dict[str, Any]
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(_Wire):
    """A call the model asks the client to run. ``input`` is what the model wrote; validate it."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    cache_control: CacheControl | None = None


class ToolResultBlock(_Wire):
    """The client's answer to one ``tool_use``; ``is_error`` marks a failed call."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[ContentBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Wire):
    """Extended thinking. Must go back to the API unchanged, signature included."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class RedactedThinkingBlock(_Wire):
    """Encrypted thinking. Must go back to the API unchanged."""

    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


class UnknownBlock(_Wire):
    """A block type this version of agentkit does not model (server tools, future types); kept as is."""

    type: str


_KNOWN_BLOCKS = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _KNOWN_BLOCKS else "unknown"


ContentBlock: TypeAlias = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(_block_tag),
]
"""Any content block, discriminated on ``type``."""

ToolResultBlock.model_rebuild()


# --- messages ----------------------------------------------------------------------------------


class MessageParam(_Wire):
    """One turn of the conversation sent to the API. A string content is one text block."""

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


#: The most tokens one response may report in any usage field (100 million: a hundred times the largest
#: context window). A response over it, or with a negative count, is a :class:`~agentkit.ProtocolError`:
#: counts that cannot be true would silently defeat a run's ``token_budget``.
MAX_RESPONSE_TOKENS = 100_000_000

_Count = Annotated[int, Field(ge=0, strict=True)]


class Usage(_Wire):
    """Token counts of one response (or, summed with ``+``, of a whole run). Counts are never negative."""

    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cache_creation_input_tokens: _Count | None = None
    cache_read_input_tokens: _Count | None = None
    cache_creation: dict[str, Any] | None = None
    server_tool_use: dict[str, Any] | None = None
    service_tier: str | None = None

    @property
    def total_input_tokens(self) -> int:
        """Input tokens including those written to and read from the prompt cache."""
        return (
            self.input_tokens + (self.cache_creation_input_tokens or 0) + (self.cache_read_input_tokens or 0)
        )

    @property
    def total_tokens(self) -> int:
        """All input (cached or not) plus output tokens."""
        return self.total_input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        def opt(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=opt(
                self.cache_creation_input_tokens, other.cache_creation_input_tokens
            ),
            cache_read_input_tokens=opt(self.cache_read_input_tokens, other.cache_read_input_tokens),
        )


_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class InvalidToolInput(BaseModel):
    """A ``tool_use`` whose streamed input was not valid JSON or never finished (no
    ``content_block_stop``); usually cut by ``max_tokens``.

    The block stays in the Message (with ``input: {}``) so the history remains valid, but it must
    never be executed.
    """

    index: int
    id: str
    raw: str


class Message(_Wire):
    """A response from the API: the assistant's turn."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = Field(default_factory=Usage)

    _invalid_tool_inputs: list[InvalidToolInput] = PrivateAttr(default_factory=list)
    _request_id: str | None = PrivateAttr(default=None)

    @field_validator("usage")
    @classmethod
    def _plausible_usage(cls, usage: Usage) -> Usage:
        for name in _TOKEN_FIELDS:
            value = getattr(usage, name)
            if value is not None and value > MAX_RESPONSE_TOKENS:
                raise ValueError(
                    f"usage.{name} is {value}, more than one response can use ({MAX_RESPONSE_TOKENS})"
                )
        return usage

    @property
    def request_id(self) -> str | None:
        """The ``request-id`` response header of the call that produced this Message (for support)."""
        return self._request_id

    @property
    def invalid_tool_inputs(self) -> list[InvalidToolInput]:
        """Tool calls whose input arrived incomplete; never run them."""
        return self._invalid_tool_inputs

    @property
    def text(self) -> str:
        """The concatenated text of all text blocks."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        """The ``tool_use`` blocks of this turn, in order."""
        return [b for b in self.content if isinstance(b, ToolUseBlock)]

    def to_param(self) -> MessageParam:
        """This turn as a history entry, blocks unchanged (thinking signatures included)."""
        return MessageParam(role="assistant", content=list(self.content))


# --- tools -------------------------------------------------------------------------------------


class ToolParam(_Wire):
    """A tool definition as sent in ``tools``."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolChoiceAuto(_Wire):
    """The model decides whether to call tools."""

    type: Literal["auto"] = "auto"
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Wire):
    """The model must call some tool."""

    type: Literal["any"] = "any"
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Wire):
    """The model must call the named tool."""

    type: Literal["tool"] = "tool"
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Wire):
    """The model must not call tools."""

    type: Literal["none"] = "none"


ToolChoice: TypeAlias = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


class ThinkingConfigEnabled(_Wire):
    """Extended thinking with a token budget (>= 1024, below ``max_tokens``)."""

    type: Literal["enabled"] = "enabled"
    budget_tokens: int
    display: str | None = None


class ThinkingConfigAdaptive(_Wire):
    """Adaptive thinking (4.6+ models)."""

    type: Literal["adaptive"] = "adaptive"


class ThinkingConfigDisabled(_Wire):
    """Thinking off."""

    type: Literal["disabled"] = "disabled"


ThinkingConfig: TypeAlias = Annotated[
    ThinkingConfigEnabled | ThinkingConfigAdaptive | ThinkingConfigDisabled,
    Field(discriminator="type"),
]


class Metadata(_Wire):
    """Request metadata: an opaque ``user_id`` (no PII)."""

    user_id: str | None = None


# --- stream events -----------------------------------------------------------------------------


class TextDelta(_Wire):
    type: Literal["text_delta"] = "text_delta"
    text: str


class InputJSONDelta(_Wire):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str


class ThinkingDelta(_Wire):
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str


class SignatureDelta(_Wire):
    type: Literal["signature_delta"] = "signature_delta"
    signature: str


class CitationsDelta(_Wire):
    type: Literal["citations_delta"] = "citations_delta"
    citation: dict[str, Any]


class UnknownDelta(_Wire):
    type: str


_KNOWN_DELTAS = frozenset(
    {"text_delta", "input_json_delta", "thinking_delta", "signature_delta", "citations_delta"}
)


def _delta_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _KNOWN_DELTAS else "unknown"


Delta: TypeAlias = Annotated[
    Annotated[TextDelta, Tag("text_delta")]
    | Annotated[InputJSONDelta, Tag("input_json_delta")]
    | Annotated[ThinkingDelta, Tag("thinking_delta")]
    | Annotated[SignatureDelta, Tag("signature_delta")]
    | Annotated[CitationsDelta, Tag("citations_delta")]
    | Annotated[UnknownDelta, Tag("unknown")],
    Discriminator(_delta_tag),
]


class MessageStartEvent(_Wire):
    type: Literal["message_start"] = "message_start"
    message: Message


class ContentBlockStartEvent(_Wire):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: ContentBlock


class ContentBlockDeltaEvent(_Wire):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: Delta


class ContentBlockStopEvent(_Wire):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class MessageDeltaEvent(_Wire):
    type: Literal["message_delta"] = "message_delta"
    delta: dict[str, Any]
    usage: dict[str, Any] | None = None


class MessageStopEvent(_Wire):
    type: Literal["message_stop"] = "message_stop"


class PingEvent(_Wire):
    type: Literal["ping"] = "ping"


class ErrorEvent(_Wire):
    type: Literal["error"] = "error"
    error: dict[str, Any]


class UnknownEvent(_Wire):
    """An event type this version does not know; ignored by the accumulator."""

    type: str


_KNOWN_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)


def _event_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _KNOWN_EVENTS else "unknown"


StreamEvent: TypeAlias = Annotated[
    Annotated[MessageStartEvent, Tag("message_start")]
    | Annotated[ContentBlockStartEvent, Tag("content_block_start")]
    | Annotated[ContentBlockDeltaEvent, Tag("content_block_delta")]
    | Annotated[ContentBlockStopEvent, Tag("content_block_stop")]
    | Annotated[MessageDeltaEvent, Tag("message_delta")]
    | Annotated[MessageStopEvent, Tag("message_stop")]
    | Annotated[PingEvent, Tag("ping")]
    | Annotated[ErrorEvent, Tag("error")]
    | Annotated[UnknownEvent, Tag("unknown")],
    Discriminator(_event_tag),
]
"""Any server-sent event of a Messages stream."""

_stream_event_adapter: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
_content_block_adapter: TypeAdapter[ContentBlock] = TypeAdapter(ContentBlock)
_message_params_adapter: TypeAdapter[list[MessageParam]] = TypeAdapter(list[MessageParam])


def to_wire(obj: Any) -> Any:
    """Serialise models (recursively through lists/dicts) to JSON-ready values, dropping ``None``s."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude_none=True)
    if isinstance(obj, list):
        return [to_wire(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items() if v is not None}
    return obj
