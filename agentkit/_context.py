"""``RunContext``: what a tool can learn about the run that called it.

A tool parameter annotated ``RunContext`` (or ``RunContext[MyDeps]``) is left out of the tool's input
schema and receives the context of the current run when the tool is called.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._logging import get_logger
from .types import Usage

if TYPE_CHECKING:
    from .types import MessageParam

__all__ = ["DepsT", "RunContext"]

DepsT = TypeVar("DepsT")


def _new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


def _default_logger() -> Any:
    return get_logger("agentkit.tool")


@dataclass(repr=False)
class RunContext(Generic[DepsT]):
    """The context handed to a tool that asks for it.

    Attributes:
        deps: The dependencies given to the run (database handles, API clients, settings, ...).
        run_id: Identifier of the run, also bound in its log records.
        turn: Number of the model request that produced this tool call (1 for the first).
        usage: Tokens spent by the run so far.
        log: A structlog logger bound to the run (and, inside a tool, to the tool call).
        tool_use_id: The id of the ``tool_use`` block being answered (set per call).
        messages: The conversation so far; read it, do not modify it.
        idempotency_key: In a durable run (:mod:`agentkit.temporal`), ``"<workflow id>:<tool_use_id>"``:
            the same on every attempt of a call, so a tool can make its side effect once (a payment
            API's idempotency key). ``None`` in a local run.

    Its repr names the deps' type only, never their contents (deps often hold passwords and handles,
    and a context is rendered wherever a traceback shows locals).
    """

    deps: DepsT
    run_id: str = field(default_factory=_new_run_id)
    turn: int = 0
    usage: Usage = field(default_factory=Usage)
    log: Any = field(default_factory=_default_logger, repr=False)
    tool_use_id: str | None = None
    messages: list[MessageParam] = field(default_factory=list, repr=False)
    idempotency_key: str | None = None

    def __repr__(self) -> str:
        deps = "None" if self.deps is None else f"<{type(self.deps).__qualname__}>"
        return (
            f"RunContext(deps={deps}, run_id={self.run_id!r}, turn={self.turn}, usage={self.usage!r}, "
            f"tool_use_id={self.tool_use_id!r})"
        )
