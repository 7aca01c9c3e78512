"""One exception tree under :class:`AgentKitError`. Catch the branch you care about.

AgentKitError
├── APIError                      an error reported by (or about) the Messages endpoint
│   ├── APIStatusError            an HTTP error status or an error event / envelope
│   │   ├── BadRequestError           400 invalid_request_error
│   │   ├── AuthenticationError       401 authentication_error
│   │   ├── BillingError              402 billing_error
│   │   ├── PermissionDeniedError     403 permission_error
│   │   ├── NotFoundError             404 not_found_error
│   │   ├── ConflictError             409 conflict_error
│   │   ├── RequestTooLargeError      413 request_too_large
│   │   ├── UnprocessableEntityError  422
│   │   ├── RateLimitError            429 rate_limit_error
│   │   ├── InternalServerError       500 api_error and other 5xx
│   │   ├── GatewayTimeoutError       504 timeout_error
│   │   └── OverloadedError           529 overloaded_error
│   ├── APIConnectionError        the endpoint could not be reached / the connection broke
│   │   └── APITimeoutError       no answer in time
│   └── ProtocolError             a malformed body or a stream that ended early
│       └── DuplicateToolUseIdError   one tool_use id twice in a turn (nothing ran)
├── ConfigurationError            bad client/agent settings (missing key, bad base URL, ...)
├── ToolDefinitionError           a function that cannot become a tool (raised at decoration)
├── ToolError                     raised *by a tool* to send an error result the model can act on
├── HistoryError                  a conversation history the API would reject
├── ApprovalError                 decisions that do not fit a paused run (missing, unknown, invalid)
│   └── AlreadyDecidedError       a call of a stored session was decided already (by another worker)
├── SessionConflictError          a stored session moved on: another worker appended first
├── StoreError                    a conversation store failed (unreachable, corrupt, ...)
└── AgentRunError                 a run stopped (limit, refusal, truncated call, loop); carries history
    ├── MaxTurnsExceeded
    ├── TokenBudgetExceeded
    ├── RefusalError
    ├── ToolInputTruncatedError
    ├── ToolLoopError
    ├── OutputValidationError
    └── RunTimeoutError           the run went past its run_timeout
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import MessageParam, Usage

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AgentKitError",
    "AgentRunError",
    "AlreadyDecidedError",
    "ApprovalError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "ConfigurationError",
    "ConflictError",
    "DuplicateToolUseIdError",
    "GatewayTimeoutError",
    "HistoryError",
    "InternalServerError",
    "MaxTurnsExceeded",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RefusalError",
    "RequestTooLargeError",
    "RunTimeoutError",
    "SessionConflictError",
    "StoreError",
    "TokenBudgetExceeded",
    "ToolDefinitionError",
    "ToolError",
    "ToolInputTruncatedError",
    "ToolLoopError",
    "UnprocessableEntityError",
]


class AgentKitError(Exception):
    """Base of every error agentkit raises."""


class ConfigurationError(AgentKitError):
    """Settings that cannot work: a missing API key, a malformed base URL, conflicting options."""


class APIError(AgentKitError):
    """An error from the Messages endpoint or the way to it."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APIStatusError(APIError):
    """The endpoint answered with an error: an HTTP status >= 400, an ``error`` event, or an envelope code.

    ``status_code`` is the HTTP status (200 for an error event inside a stream), ``error_type`` the
    ``error.type`` from the body (``None`` when the body was not JSON), ``error_code`` the optional
    ``error.details.error_code``, ``request_id`` the ``request-id`` header (or body field).
    """

    #: Default status for this class, used when the error came without one.
    default_status: int = 0
    #: Whether the client may retry this error (overridden per instance by ``x-should-retry``).
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code if status_code is not None else self.default_status
        self.error_type = error_type
        self.error_code = error_code
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [f"{self.status_code}"]
        if self.error_type:
            parts.append(self.error_type)
        text = f"{' '.join(parts)}: {self.message}"
        hint = _HINTS.get(type(self))
        if hint:
            text += f" — {hint}"
        if self.request_id:
            text += f" (request-id: {self.request_id})"
        return text


class BadRequestError(APIStatusError):
    """400 ``invalid_request_error``: the request is malformed; the message says which field."""

    default_status = 400


class AuthenticationError(APIStatusError):
    """401 ``authentication_error``: the API key is missing, wrong, or sent in the wrong header."""

    default_status = 401


class BillingError(APIStatusError):
    """402 ``billing_error``: a billing or payment problem on the account."""

    default_status = 402


class PermissionDeniedError(APIStatusError):
    """403 ``permission_error``: the key may not use this resource or model."""

    default_status = 403


class NotFoundError(APIStatusError):
    """404 ``not_found_error``: unknown path or model (check ``base_url`` and ``model``)."""

    default_status = 404


class ConflictError(APIStatusError):
    """409 ``conflict_error``: a transient lock conflict; retried."""

    default_status = 409
    retryable = True


class RequestTooLargeError(APIStatusError):
    """413 ``request_too_large``: the request exceeds 32 MB; send less."""

    default_status = 413


class UnprocessableEntityError(APIStatusError):
    """422: the endpoint could not process the request."""

    default_status = 422


class RateLimitError(APIStatusError):
    """429 ``rate_limit_error``: slow down; retried honouring ``retry-after`` unless a spend limit."""

    default_status = 429
    retryable = True


class InternalServerError(APIStatusError):
    """500 ``api_error`` (or another 5xx): a fault on the API side; retried."""

    default_status = 500
    retryable = True


class GatewayTimeoutError(InternalServerError):
    """504 ``timeout_error``: the API timed out processing the request; retried."""

    default_status = 504


class OverloadedError(APIStatusError):
    """529 ``overloaded_error``: the API is temporarily overloaded; retried."""

    default_status = 529
    retryable = True


class APIConnectionError(APIError):
    """The endpoint could not be reached, or the connection broke before a complete response."""


class APITimeoutError(APIConnectionError):
    """No complete response within the configured timeout."""


class ProtocolError(APIError):
    """The endpoint answered something that is not the Messages wire format (bad JSON, cut stream)."""

    def __init__(self, message: str, *, request_id: str | None = None, error_type: str | None = None):
        super().__init__(message, request_id=request_id)
        self.error_type = error_type


class DuplicateToolUseIdError(ProtocolError):
    """The model's turn gave two ``tool_use`` blocks the same id (``tool_use_id``): no call of that turn
    ran and the turn was not kept, so the conversation stays valid to continue."""

    def __init__(self, message: str, *, tool_use_id: str, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.tool_use_id = tool_use_id


class ToolDefinitionError(AgentKitError, TypeError):
    """A function cannot become a tool; raised when it is decorated, naming the function and the fix."""


class ToolError(AgentKitError):
    """Raise inside a tool to return an ``is_error`` result whose text the model reads and can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HistoryError(AgentKitError, ValueError):
    """A conversation history the API would reject; ``index`` is the offending message."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ApprovalError(AgentKitError, ValueError):
    """Decisions given to :meth:`Agent.resume` that do not fit the paused run: a pending call without
    a decision, a decision for a call that is not pending, or edited input that fails validation.
    Nothing was run; the state is unchanged and can be resumed with corrected decisions."""


class AlreadyDecidedError(ApprovalError):
    """A pending call of a stored session was decided already (another worker resumed it first, or
    this is a second resume of the same pause). Nothing ran here: the call runs once, where it was
    first decided. ``session`` and ``tool_use_ids`` name what was refused."""

    def __init__(self, message: str, *, session: str, tool_use_ids: list[str]) -> None:
        super().__init__(message)
        self.session = session
        self.tool_use_ids = tool_use_ids


class SessionConflictError(AgentKitError):
    """Another worker appended to the session since it was loaded (``expected`` is the revision this
    worker built on, ``actual`` the stored one). Nothing of this append was stored; load the session
    again and retry if the work can be redone. (Not :class:`ConflictError`, the API's HTTP 409.)"""

    def __init__(self, message: str, *, session: str, expected: int, actual: int | None) -> None:
        super().__init__(message)
        self.session = session
        self.expected = expected
        self.actual = actual


class ConversationBusyError(AgentKitError):
    """Another run is still writing this :class:`Conversation` (``run_id`` is that run's). Runs of one
    conversation take turns: await the first, or serialise the requests of one conversation (a chat's
    double submit). Nothing of the refused run was sent or added to the conversation."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class StoreError(AgentKitError):
    """A conversation store could not do what was asked (the database is unreachable, the stored data
    is not agentkit's, ...). The message says which store and why; it never shows a password."""


class AgentRunError(AgentKitError):
    """A run that stopped before a final answer. ``messages`` is the history so far (valid to resend:
    every ``tool_use`` answered) and ``usage`` the tokens spent."""

    def __init__(
        self,
        message: str,
        *,
        messages: list[MessageParam] | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message)
        self.messages: list[MessageParam] = messages or []
        self.usage = usage


class MaxTurnsExceeded(AgentRunError):
    """The run reached ``max_turns`` model requests without finishing."""


class TokenBudgetExceeded(AgentRunError):
    """The run spent more tokens than its budget."""


class RefusalError(AgentRunError):
    """The model refused to continue (``stop_reason: refusal``)."""


class ToolInputTruncatedError(AgentRunError):
    """A ``tool_use`` was cut by ``max_tokens``; the half-formed call was not run. Raise ``max_tokens``."""


class ToolLoopError(AgentRunError):
    """The model kept calling the same tool with the same input."""


class OutputValidationError(AgentRunError):
    """The model's structured output still failed validation after the allowed retries."""


class RunTimeoutError(AgentRunError):
    """The run went past its ``run_timeout`` (seconds, the whole run). The request or the tool calls
    under way were stopped; every ``tool_use`` is answered, so ``messages`` is valid to continue."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: BillingError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    504: GatewayTimeoutError,
    529: OverloadedError,
}

_BY_TYPE: dict[str, type[APIStatusError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "billing_error": BillingError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "conflict_error": ConflictError,
    "request_too_large": RequestTooLargeError,
    "rate_limit_error": RateLimitError,
    "api_error": InternalServerError,
    "timeout_error": GatewayTimeoutError,
    "overloaded_error": OverloadedError,
}

_TYPE_OF: dict[type[APIStatusError], str] = {cls: name for name, cls in _BY_TYPE.items()}

_HINTS: dict[type[APIStatusError], str] = {
    AuthenticationError: "check the API key and the auth header your provider expects (provider=...)",
    PermissionDeniedError: "the key may not use this model or resource",
    NotFoundError: "check base_url and the model name",
    RequestTooLargeError: "the request is over 32 MB; send fewer or smaller blocks",
}


def _error_class(status: int | None, error_type: str | None) -> type[APIStatusError]:
    """Pick the exception class: by HTTP status first, then by ``error.type`` (streams, envelopes)."""
    if status is not None and status in _BY_STATUS:
        return _BY_STATUS[status]
    if error_type in _BY_TYPE:
        return _BY_TYPE[error_type]
    if status is not None and status >= 500:
        return InternalServerError
    return APIStatusError


def _make_status_error(
    *,
    status: int | None,
    body: Any,
    request_id: str | None = None,
    retry_after: float | None = None,
    prefer_type: bool = False,
) -> APIStatusError:
    """Build the typed error for an error body (``{"type":"error","error":{...}}``) or a bare status."""
    error_type: str | None = None
    message: str | None = None
    error_code: str | None = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            error_type = err.get("type") if isinstance(err.get("type"), str) else None
            message = err.get("message") if isinstance(err.get("message"), str) else None
            details = err.get("details")
            if isinstance(details, dict) and isinstance(details.get("error_code"), str):
                error_code = details["error_code"]
        if request_id is None and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
    if prefer_type and error_type in _BY_TYPE:
        cls: type[APIStatusError] = _BY_TYPE[error_type]
    else:
        cls = _error_class(status, error_type)
    if message is None:
        message = f"HTTP {status}" if status else "error"
    if error_type is None and cls is not APIStatusError:
        error_type = _TYPE_OF.get(cls)
    return cls(
        message,
        status_code=status,
        error_type=error_type,
        error_code=error_code,
        request_id=request_id,
        body=body,
        retry_after=retry_after,
    )
