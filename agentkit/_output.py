"""Structured output: the ``final_result`` tool that carries it, and its one retry rule."""

from __future__ import annotations

from typing import Any

from pydantic import PydanticUserError, TypeAdapter, ValidationError

from . import _validate
from ._exceptions import OutputValidationError
from ._schema import clean_json_schema, format_validation_error
from ._state import RunState

OUTPUT_TOOL = "final_result"
NUDGE = f"Give your final answer by calling the {OUTPUT_TOOL} tool with valid input."


class OutputTool:
    """The ``final_result`` tool: its definition and the validation of its input."""

    def __init__(self, output_type: type[Any]) -> None:
        self.name = OUTPUT_TOOL
        self.type_name = getattr(output_type, "__name__", str(output_type))
        try:
            self._adapter: TypeAdapter[Any] = TypeAdapter(output_type)
            schema = clean_json_schema(self._adapter.json_schema())
        except (PydanticUserError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise _validate.refuse(
                "Agent", "output_type", output_type, "a type pydantic can validate and describe", hint=first
            ) from None
        self._wrapped = schema.get("type") != "object" or any(
            k in schema for k in ("anyOf", "oneOf", "allOf")
        )
        if self._wrapped:
            schema = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
        description = _validate.own_docstring(output_type)
        self.definition: dict[str, Any] = {
            "name": self.name,
            "description": "Give the final answer with this tool, once, when you are done."
            + (f" The answer: {description}" if description else ""),
            "input_schema": schema,
        }

    def validate(self, data: dict[str, Any]) -> tuple[bool, Any]:
        """``(True, value)`` for valid output, else ``(False, the error text for the model)``."""
        try:
            value = self._adapter.validate_python(
                data["result"] if self._wrapped and "result" in data else data
            )
        except ValidationError as exc:
            return False, format_validation_error(self.name, exc)
        return True, value

    def retry(self, state: RunState, retries: int, problem: str) -> OutputValidationError | None:
        """The one retry rule: count a failed attempt; past ``retries`` the run fails with the error
        returned here, else the model gets another chance (the caller tells it what was wrong)."""
        state.output_attempts += 1
        if state.output_attempts <= retries:
            return None
        return OutputValidationError(
            f"the model did not produce a valid {self.type_name} after {retries} retries: {problem}",
            messages=state.messages,
            usage=state.usage,
        )
