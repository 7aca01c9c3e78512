"""agentkit: build tool-using agents on Claude's Messages API.

The public API lives here; wire types are in :mod:`agentkit.types`, testing helpers (the local
Messages API server, scripted and offline models) in :mod:`agentkit.testing`.
"""

from __future__ import annotations

from ._client import Client, MessageStream, Provider
from ._exceptions import (
    AgentKitError,
    AgentRunError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConfigurationError,
    ConflictError,
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
    TokenBudgetExceeded,
    ToolDefinitionError,
    ToolError,
    ToolInputTruncatedError,
    ToolLoopError,
    UnprocessableEntityError,
)
from .types import Message, MessageParam, Usage

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AgentKitError",
    "AgentRunError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "GatewayTimeoutError",
    "HistoryError",
    "InternalServerError",
    "MaxTurnsExceeded",
    "Message",
    "MessageParam",
    "MessageStream",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "Provider",
    "RateLimitError",
    "RefusalError",
    "RequestTooLargeError",
    "TokenBudgetExceeded",
    "ToolDefinitionError",
    "ToolError",
    "ToolInputTruncatedError",
    "ToolLoopError",
    "UnprocessableEntityError",
    "Usage",
]
