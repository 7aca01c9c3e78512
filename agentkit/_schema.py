"""Function signature + docstring -> a Claude-safe JSON schema and the pydantic model that validates calls.

The schema and the validator come from the same dynamically created pydantic model, built once when a
function is decorated. The JSON schema is then made compact and safe for the Messages API: no
``title`` keys, ``$defs``/``$ref`` inlined (only recursive models keep ``$defs`` at the root), and a root
that is always ``{"type": "object", "properties": {...}}``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
import sys
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.errors import PydanticUserError
from pydantic.fields import FieldInfo
from pydantic.json_schema import PydanticJsonSchemaWarning

from ._context import RunContext
from ._exceptions import ToolDefinitionError
from ._logging import get_logger

__all__ = [
    "TOOL_NAME_PATTERN",
    "FunctionSchema",
    "clean_json_schema",
    "format_validation_error",
    "function_schema",
]

TOOL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Tool names the Messages API accepts."""

# Keywords whose value is one sub-schema, a list of sub-schemas, or a name -> sub-schema mapping.
_SCHEMA_KEYS = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "additionalItems",
    }
)
_SCHEMA_LIST_KEYS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_MAP_KEYS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_REF_PREFIX = "#/$defs/"
_CONTEXT_ANNOTATION = re.compile(
    r"^\s*(?:Optional\[)?(?:[A-Za-z_][A-Za-z0-9_]*\.)*RunContext\b(?:\[.*\])?\s*(?:\]|\|\s*None)?\s*$", re.S
)


class _ToolInput(BaseModel):
    """Base of the generated input models: fields are aliased to the parameter names; an unknown key is
    an error (a misspelled argument must not silently run the tool with a default)."""

    model_config = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False)


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    field: str | None  # None for the RunContext parameter
    kind: inspect._ParameterKind


@dataclass(frozen=True, slots=True)
class FunctionSchema:
    """The schema side of a tool: description, JSON schema, validator, and how to call the function."""

    description: str
    json_schema: dict[str, Any]
    model: type[BaseModel]
    params: tuple[_Param, ...]
    wants_context: bool

    def validate(self, data: Mapping[str, Any]) -> BaseModel:
        """Validate a tool input object; raises :class:`pydantic.ValidationError`."""
        return self.model.model_validate(data)

    def arguments(self, validated: BaseModel, context: Any) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the function, the context placed where it is asked."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self.params:
            value = context if param.field is None else getattr(validated, param.field)
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param.name] = value
        return args, kwargs


# --- public entry points -----------------------------------------------------------------------


def function_schema(
    fn: Callable[..., Any],
    *,
    tool_name: str,
    description: str | None = None,
    skip_first: bool = False,
) -> FunctionSchema:
    """Build the :class:`FunctionSchema` of ``fn``; raise :class:`ToolDefinitionError` if it cannot be a tool.

    ``skip_first`` drops the first parameter (``self``/``cls`` of a method).
    """
    where = _qualname(fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"{where}: cannot read the signature ({exc}); decorate a plain function"
        ) from None

    parameters = list(signature.parameters.values())
    if skip_first and parameters:
        parameters = parameters[1:]
    hints = _resolve_hints(fn, [p.name for p in parameters], where)
    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    param_docs = {p.arg_name.lstrip("*"): _one_line(p.description) for p in doc.params if p.description}

    fields: dict[str, Any] = {}
    params: list[_Param] = []
    wants_context = False
    for index, param in enumerate(parameters):
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ToolDefinitionError(
                f"{where}: *{param.name} is not supported; tools take named parameters only. "
                f"Replace *{param.name} with a list parameter, e.g. `{param.name}: list[str]`."
            )
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            raise ToolDefinitionError(
                f"{where}: **{param.name} is not supported; tools take named parameters only. "
                "Declare each parameter explicitly, or use a dict parameter, "
                f"e.g. `{param.name}: dict[str, str]`."
            )
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if annotation is _CONTEXT_MARK or _is_context(annotation):
            if wants_context:
                raise ToolDefinitionError(
                    f"{where}: more than one RunContext parameter ({param.name!r}); keep exactly one."
                )
            wants_context = True
            params.append(_Param(param.name, None, param.kind))
            continue
        if annotation is inspect.Parameter.empty:
            if param.default is inspect.Parameter.empty:
                raise ToolDefinitionError(
                    f"{where}: parameter {param.name!r} has no type annotation and no default; "
                    f"annotate it, e.g. `{param.name}: str`."
                )
            annotation = Any if param.default is None else type(param.default)
        field_name = f"p{index}"
        info = _field_info(param, annotation, param_docs.get(param.name))
        fields[field_name] = (annotation, info)
        params.append(_Param(param.name, field_name, param.kind))

    model = _build_model(tool_name, fields, params, where)
    json_schema = _json_schema(model, params, where)

    _warn_undocumented(tool_name, json_schema)
    if description is None:
        # Summary and long description, separated as in the docstring (a wrapped summary stays one).
        separator = "\n\n" if doc.blank_after_short_description else "\n"
        description = separator.join(
            part.strip() for part in (doc.short_description, doc.long_description) if part and part.strip()
        )
    return FunctionSchema(
        description=description.strip(),
        json_schema=json_schema,
        model=model,
        params=tuple(params),
        wants_context=wants_context,
    )


def clean_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a compact, Claude-safe copy of a pydantic JSON schema.

    Drops ``title`` keys (not properties named "title"), inlines every ``$ref`` except those into a
    recursive definition (kept under the root ``$defs`` and referenced as ``#/$defs/Name``), and
    unwraps pydantic's single-member ``allOf`` wrappers. Raises ``ValueError`` for a reference that
    cannot be resolved.
    """
    result: dict[str, Any] = _strip_titles(copy.deepcopy(dict(schema)))
    defs: dict[str, Any] = result.pop("$defs", None) or {}
    result.pop("definitions", None)
    recursive = _recursive_defs(defs)
    kept: dict[str, Any] = {}
    for name in sorted(recursive):
        kept[name] = _inline(defs[name], defs, recursive)
    result = _inline(result, defs, recursive)
    if kept:
        result["$defs"] = kept
    return result


def format_validation_error(tool_name: str, error: ValidationError, *, limit: int = 8) -> str:
    """A short, actionable error text: each failing field path, the problem and the value given."""
    parts: list[str] = []
    errors = error.errors(include_url=False)
    for item in errors[:limit]:
        path = _format_loc(item.get("loc", ()))
        unknown = item.get("type") == "extra_forbidden"
        message = "unknown parameter, not in the schema" if unknown else item["msg"]
        text = f"{path}: {message}" if path else str(message)
        if item.get("type") != "missing" and "input" in item:
            text += f" (got {_short_repr(item['input'])})"
        parts.append(text)
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more errors")
    return f"Invalid input for {tool_name}: " + "; ".join(parts)


# --- internals ---------------------------------------------------------------------------------


class _ContextMark:
    """Placeholder for a ``RunContext`` annotation that could not be evaluated (TYPE_CHECKING import)."""


_CONTEXT_MARK: Any = _ContextMark()


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def _one_line(text: str | None) -> str:
    """Join hard-wrapped docstring lines; keep blank-line paragraph breaks."""
    if not text:
        return ""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines() if line.strip()) for p in paragraphs)


def _is_context(annotation: Any) -> bool:
    """``RunContext``, ``RunContext[X]``, a subclass, or one of those ``| None`` (or ``Annotated``)."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return len(members) == 1 and _is_context(members[0])
    if annotation is RunContext or get_origin(annotation) is RunContext:
        return True
    return isinstance(annotation, type) and issubclass(annotation, RunContext)


def _resolve_hints(fn: Callable[..., Any], names: list[str], where: str) -> dict[str, Any]:
    """Evaluate parameter annotations (``from __future__ import annotations`` safe), ignoring the return."""
    raw: dict[str, Any] = dict(getattr(inspect.unwrap(fn), "__annotations__", None) or {})
    if not raw:
        # Objects with a __signature__ but no __annotations__ (or callables): use the signature.
        sig = inspect.signature(fn)
        return {
            n: p.annotation for n, p in sig.parameters.items() if p.annotation is not inspect.Parameter.empty
        }
    raw.pop("return", None)
    holder = _Annotations({k: v for k, v in raw.items() if k in names})
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    try:
        return typing.get_type_hints(holder, globalns=globalns, include_extras=True)
    except Exception:
        pass
    # Types defined next to a function inside another function: look in the decorating frame.
    localns = _decoration_locals(fn)
    hints: dict[str, Any] = {}
    for name, value in holder.__annotations__.items():
        try:
            hints.update(
                typing.get_type_hints(
                    _Annotations({name: value}), globalns=globalns, localns=localns, include_extras=True
                )
            )
        except Exception as exc:
            if isinstance(value, str) and _CONTEXT_ANNOTATION.match(value):
                hints[name] = _CONTEXT_MARK
                continue
            raise ToolDefinitionError(
                f"{where}: cannot resolve the annotation of parameter {name!r} ({value!r}: {exc}); "
                "define or import the type at module level so it can be evaluated."
            ) from None
    return hints


def _decoration_locals(fn: Callable[..., Any]) -> dict[str, Any]:
    """Closure variables of ``fn`` and the locals of the first frame outside agentkit (the decorator's)."""
    namespace: dict[str, Any] = {}
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("agentkit."):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is not None:
        namespace.update(frame.f_locals)
    with contextlib.suppress(TypeError, ValueError):
        namespace.update(inspect.getclosurevars(inspect.unwrap(fn)).nonlocals)
    return namespace


class _Annotations:
    """A stand-in object whose ``__annotations__`` ``typing.get_type_hints`` evaluates."""

    def __init__(self, annotations: dict[str, Any]) -> None:
        self.__annotations__ = annotations


def _annotated_description(annotation: Any) -> str | None:
    if get_origin(annotation) is Annotated:
        for meta in reversed(annotation.__metadata__):
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
    return None


def _field_info(param: inspect.Parameter, annotation: Any, doc: str | None) -> FieldInfo:
    kwargs: dict[str, Any] = {"alias": param.name}
    if param.default is not inspect.Parameter.empty:
        kwargs["default"] = param.default
    if doc and not _annotated_description(annotation):
        kwargs["description"] = doc
    field: FieldInfo = Field(**kwargs)
    return field


def _build_model(tool_name: str, fields: dict[str, Any], params: list[_Param], where: str) -> type[BaseModel]:
    model_name = re.sub(r"\W", "_", tool_name) or "tool"
    try:
        model: type[BaseModel] = create_model(f"{model_name}_input", __base__=_ToolInput, **fields)
        return model
    except (PydanticUserError, TypeError, ValueError, NameError) as exc:
        culprit = _find_culprit(fields, params)
        raise ToolDefinitionError(
            f"{where}: {culprit}cannot be validated by pydantic ({_first_line(exc)}); use a supported type "
            "(str, int, float, bool, Literal, Enum, list/dict/tuple/set, datetime, UUID, a BaseModel, "
            "dataclass or TypedDict)."
        ) from None


def _json_schema(model: type[BaseModel], params: list[_Param], where: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            # A default pydantic cannot serialise is left out of the schema; that is fine.
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            raw = model.model_json_schema(by_alias=True, ref_template=_REF_PREFIX + "{model}")
    except (PydanticUserError, TypeError, ValueError, NameError) as exc:
        fields = {name: (info.annotation, info) for name, info in model.model_fields.items()}
        culprit = _find_culprit(fields, params, json_schema=True)
        raise ToolDefinitionError(
            f"{where}: {culprit}has no JSON schema ({_first_line(exc)}); use a JSON-describable type "
            "(str, int, float, bool, Literal, Enum, list/dict, a BaseModel, dataclass or TypedDict)."
        ) from None
    try:
        cleaned = clean_json_schema(raw)
    except ValueError as exc:
        raise ToolDefinitionError(
            f"{where}: the input schema cannot be inlined ({exc}); simplify the parameter types."
        ) from None
    properties = cleaned.get("properties") or {}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = cleaned.get("required") or []
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False  # unknown keys are refused (see _ToolInput)
    if "$defs" in cleaned:
        schema["$defs"] = cleaned["$defs"]
    return schema


def _find_culprit(fields: dict[str, Any], params: list[_Param], *, json_schema: bool = False) -> str:
    """Name the parameter whose type breaks model (or JSON schema) generation, for the error message."""
    names = {p.field: p.name for p in params if p.field is not None}
    for field_name, spec in fields.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                single = create_model("probe", __base__=_ToolInput, **{field_name: spec})
                if json_schema:
                    single.model_json_schema()
        except Exception:
            return f"parameter {names.get(field_name, field_name)!r} "
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _warn_undocumented(tool_name: str, schema: dict[str, Any]) -> None:
    log = get_logger("agentkit.tool")
    for name, prop in schema["properties"].items():
        if not isinstance(prop, dict) or not prop.get("description"):
            log.warning("tool.schema.undocumented_parameter", tool=tool_name, parameter=name)


def _strip_titles(node: Any) -> Any:
    """Remove ``title`` from every schema object, walking only schema positions (not data values)."""
    if not isinstance(node, dict):
        return node
    node.pop("title", None)
    for key, value in node.items():
        if key in _SCHEMA_KEYS and isinstance(value, dict):
            _strip_titles(value)
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            for item in value:
                _strip_titles(item)
        elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            for item in value.values():
                _strip_titles(item)
    return node


def _refs_in(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for key, value in node.items():
            if key in _SCHEMA_KEYS or key in _SCHEMA_LIST_KEYS:
                found |= _refs_in(value)
            elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
                for item in value.values():
                    found |= _refs_in(item)
    elif isinstance(node, list):
        for item in node:
            found |= _refs_in(item)
    return found


def _def_name(ref: str, defs: Mapping[str, Any]) -> str:
    if not ref.startswith(_REF_PREFIX) or ref[len(_REF_PREFIX) :] not in defs:
        raise ValueError(f"unresolvable $ref {ref!r}")
    return ref[len(_REF_PREFIX) :]


def _recursive_defs(defs: Mapping[str, Any]) -> set[str]:
    """Definitions that can reach themselves through references (these cannot be inlined)."""
    graph = {name: {_def_name(r, defs) for r in _refs_in(body)} for name, body in defs.items()}
    recursive: set[str] = set()
    for start in graph:
        stack = list(graph[start])
        seen: set[str] = set()
        while stack:
            current = stack.pop()
            if current == start:
                recursive.add(start)
                break
            if current in seen:
                continue
            seen.add(current)
            stack.extend(graph[current])
    return recursive


def _inline(node: Any, defs: Mapping[str, Any], keep: set[str]) -> Any:
    """Replace ``$ref``s to non-recursive definitions by (a copy of) the definition."""
    if isinstance(node, list):
        return [_inline(item, defs, keep) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_KEYS or key in _SCHEMA_LIST_KEYS:
            out[key] = _inline(value, defs, keep)
        elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {k: _inline(v, defs, keep) for k, v in value.items()}
        elif key == "discriminator" and isinstance(value, dict):
            out[key] = _discriminator(value, keep)
        else:
            out[key] = value
    ref = out.get("$ref")
    if isinstance(ref, str):
        name = _def_name(ref, defs)
        if name not in keep:
            siblings = {k: v for k, v in out.items() if k != "$ref"}
            out = {**_inline(copy.deepcopy(defs[name]), defs, keep), **siblings}
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        inner = all_of[0]
        rest = {k: v for k, v in out.items() if k != "allOf"}
        if "$ref" not in inner and not set(inner) & set(rest):
            out = {**inner, **rest}
    return out


def _discriminator(value: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """An OpenAPI ``discriminator`` whose ``mapping`` names only definitions still in ``$defs``: a
    mapping entry to an inlined definition would be a dangling reference."""
    mapping = value.get("mapping")
    if not isinstance(mapping, dict):
        return value
    kept = {
        k: ref
        for k, ref in mapping.items()
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX) and ref[len(_REF_PREFIX) :] in keep
    }
    out = {k: v for k, v in value.items() if k != "mapping"}
    if kept:
        out["mapping"] = kept
    return out


def _format_loc(loc: tuple[int | str, ...] | list[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
