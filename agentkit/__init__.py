"""agentkit: build tool-using agents on Claude's Messages API.

The public API lives here; wire types are in :mod:`agentkit.types`, testing helpers (the local
Messages API server, scripted and offline models) in :mod:`agentkit.testing`.
"""

from __future__ import annotations

from ._agent import Agent, AgentStream, Hooks
from ._client import Client, MessageStream, Provider
from ._compaction import Compaction
from ._context import RunContext
from ._conversation import Conversation
from ._events import (
    AgentEvent,
    RunFinished,
    RunResult,
    TextDelta,
    ThinkingDelta,
    ToolApprovalRequested,
    ToolCallFinished,
    ToolCallStarted,
    ToolInputDelta,
    ToolUseStarted,
    TurnFinished,
)
from ._exceptions import (
    AgentKitError,
    AgentRunError,
    AlreadyDecidedError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ApprovalError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConfigurationError,
    ConflictError,
    ConversationBusyError,
    DuplicateToolUseIdError,
    GatewayTimeoutError,
    HistoryError,
    InternalServerError,
    MaxTurnsExceeded,
    NotFoundError,
    OutputValidationError,
    OverloadedError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RefusalError,
    RequestTooLargeError,
    RunTimeoutError,
    SessionConflictError,
    StoreError,
    TokenBudgetExceeded,
    ToolDefinitionError,
    ToolError,
    ToolInputTruncatedError,
    ToolLoopError,
    UnprocessableEntityError,
)
from ._history import repair_history
from ._logging import configure_logging, redact_secrets
from ._media import Document
from ._state import Approve, Defer, Deny, PendingCall, RunState
from ._tool import Image, Tool, tool
from ._tool_run import ToolOutcome, ToolStatus, tool_thread_limiter
from ._toolset import Toolset
from .types import Message, MessageParam, Usage

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Agent",
    "AgentEvent",
    "AgentKitError",
    "AgentRunError",
    "AgentStream",
    "AlreadyDecidedError",
    "ApprovalError",
    "Approve",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "Client",
    "Compaction",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "ConversationBusyError",
    "Defer",
    "Deny",
    "Document",
    "DuplicateToolUseIdError",
    "GatewayTimeoutError",
    "HistoryError",
    "Hooks",
    "Image",
    "InternalServerError",
    "MaxTurnsExceeded",
    "Message",
    "MessageParam",
    "MessageStream",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PendingCall",
    "PermissionDeniedError",
    "ProtocolError",
    "Provider",
    "RateLimitError",
    "RefusalError",
    "RequestTooLargeError",
    "RunContext",
    "RunFinished",
    "RunResult",
    "RunState",
    "RunTimeoutError",
    "SessionConflictError",
    "StoreError",
    "TextDelta",
    "ThinkingDelta",
    "TokenBudgetExceeded",
    "Tool",
    "ToolApprovalRequested",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolDefinitionError",
    "ToolError",
    "ToolInputDelta",
    "ToolInputTruncatedError",
    "ToolLoopError",
    "ToolOutcome",
    "ToolStatus",
    "ToolUseStarted",
    "Toolset",
    "TurnFinished",
    "UnprocessableEntityError",
    "Usage",
    "configure_logging",
    "redact_secrets",
    "repair_history",
    "tool",
    "tool_thread_limiter",
]
