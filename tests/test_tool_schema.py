"""@tool schemas: exact expected schemas per type and docstring style, schema invariants, decoration errors.

This module uses ``from __future__ import annotations`` on purpose: every annotation below is a string
that the schema builder has to resolve.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import keyword
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Optional

import anyio
import jsonschema  # type: ignore[import-untyped]
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from agentkit._context import RunContext
from agentkit._exceptions import ToolDefinitionError
from agentkit._schema import clean_json_schema
from agentkit._tool import Tool, tool

# --- types used by the tools below (module level, so string annotations resolve) ---------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Book(BaseModel):
    """A book."""

    title: str  # a *property* named "title" must survive title stripping
    year: int = 2000


class Shelf(BaseModel):
    books: list[Book]
    label: str | None = None


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Address(TypedDict):
    street: str
    zip: NotRequired[str]


class TreeNode(BaseModel):
    name: str
    children: list[TreeNode] = []


class Deps:
    pass


# --- the table ---------------------------------------------------------------------------------


def p_str(value: str) -> None:
    """Doc."""


def p_int(value: int) -> None:
    """Doc."""


def p_float(value: float) -> None:
    """Doc."""


def p_bool(value: bool) -> None:
    """Doc."""


def p_none(value: None) -> None:
    """Doc."""


def p_optional_required(value: Optional[int]) -> None:  # noqa: UP045 - testing the old spelling
    """Doc."""


def p_optional_default(value: int | None = None) -> None:
    """Doc."""


def p_union(value: int | str) -> None:
    """Doc."""


def p_literal(value: Literal["a", "b"]) -> None:
    """Doc."""


def p_literal_one(value: Literal["only"]) -> None:
    """Doc."""


def p_literal_int(value: Literal[1, 2, 3]) -> None:
    """Doc."""


def p_enum(value: Color) -> None:
    """Doc."""


def p_enum_default(value: Color = Color.GREEN) -> None:
    """Doc."""


def p_int_enum(value: Priority) -> None:
    """Doc."""


def p_list(value: list[str]) -> None:
    """Doc."""


def p_tuple(value: tuple[int, str]) -> None:
    """Doc."""


def p_tuple_var(value: tuple[int, ...]) -> None:
    """Doc."""


def p_set(value: set[int]) -> None:
    """Doc."""


def p_frozenset(value: frozenset[str]) -> None:
    """Doc."""


def p_dict(value: dict[str, int]) -> None:
    """Doc."""


def p_any(value: Any) -> None:
    """Doc."""


def p_model(value: Book) -> None:
    """Doc."""


def p_nested_model(value: Shelf) -> None:
    """Doc."""


def p_dataclass(value: Point) -> None:
    """Doc."""


def p_typeddict(value: Address) -> None:
    """Doc."""


def p_datetime(value: dt.datetime) -> None:
    """Doc."""


def p_date(value: dt.date) -> None:
    """Doc."""


def p_time(value: dt.time) -> None:
    """Doc."""


def p_uuid(value: uuid.UUID) -> None:
    """Doc."""


def p_decimal(value: Decimal) -> None:
    """Doc."""


def p_path(value: Path) -> None:
    """Doc."""


def p_constraints(
    n: Annotated[int, Field(ge=1, le=16)],
    s: Annotated[str, Field(min_length=2, max_length=5, pattern=r"^[a-z]+$")],
    f: Annotated[float, Field(gt=0, lt=1, multiple_of=0.25)],
    items: Annotated[list[int], Field(min_length=1, max_length=3)],
) -> None:
    """Doc."""


def p_defaults(name: str = "x", count: int = 3, tags: list[str] = ["a"], flag: bool = False) -> None:  # noqa: B006
    """Doc."""


def p_recursive(tree: TreeNode) -> None:
    """Doc."""


def p_no_params() -> str:
    """Doc."""
    return ""


def p_context_middle(a: int, ctx: RunContext[Deps], b: str = "x") -> None:
    """Doc."""


def p_context_optional(ctx: RunContext[Deps] | None, a: int) -> None:
    """Doc."""


def p_field_description(
    city: Annotated[str, Field(description="From Field.")],
    days: Annotated[int, Field(description="Also from Field.")] = 1,
) -> None:
    """Doc.

    Args:
        city: From the docstring.
    """


def p_positional_only(a: int, /, b: int) -> None:
    """Doc."""


def p_untyped_default(limit=5) -> None:  # type: ignore[no-untyped-def]
    """Doc."""


def p_awkward_names(title: str, model_config: int, json: bool, _hidden: int = 0) -> None:
    """Doc."""


BOOK_SCHEMA = {
    "description": "A book.",
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer", "default": 2000}},
    "required": ["title"],
}


def _one(prop: dict[str, Any], required: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {"value": prop}, "additionalProperties": False}
    if required:
        schema["required"] = ["value"]
    return schema


SCHEMA_TABLE: list[tuple[Any, dict[str, Any]]] = [
    (p_str, _one({"type": "string"})),
    (p_int, _one({"type": "integer"})),
    (p_float, _one({"type": "number"})),
    (p_bool, _one({"type": "boolean"})),
    (p_none, _one({"type": "null"})),
    (p_optional_required, _one({"anyOf": [{"type": "integer"}, {"type": "null"}]})),
    (p_optional_default, _one({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}, False)),
    (p_union, _one({"anyOf": [{"type": "integer"}, {"type": "string"}]})),
    (p_literal, _one({"enum": ["a", "b"], "type": "string"})),
    (p_literal_one, _one({"const": "only", "type": "string"})),
    (p_literal_int, _one({"enum": [1, 2, 3], "type": "integer"})),
    (p_enum, _one({"enum": ["red", "green"], "type": "string"})),
    (p_enum_default, _one({"enum": ["red", "green"], "type": "string", "default": "green"}, False)),
    (p_int_enum, _one({"enum": [1, 2], "type": "integer"})),
    (p_list, _one({"type": "array", "items": {"type": "string"}})),
    (
        p_tuple,
        _one(
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            }
        ),
    ),
    (p_tuple_var, _one({"type": "array", "items": {"type": "integer"}})),
    (p_set, _one({"type": "array", "items": {"type": "integer"}, "uniqueItems": True})),
    (p_frozenset, _one({"type": "array", "items": {"type": "string"}, "uniqueItems": True})),
    (p_dict, _one({"type": "object", "additionalProperties": {"type": "integer"}})),
    (p_any, _one({})),
    (p_model, _one(BOOK_SCHEMA)),
    (
        p_nested_model,
        _one(
            {
                "type": "object",
                "properties": {
                    "books": {"type": "array", "items": BOOK_SCHEMA},
                    "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                },
                "required": ["books"],
            }
        ),
    ),
    (
        p_dataclass,
        _one(
            {
                "type": "object",
                "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
                "required": ["x"],
                "additionalProperties": False,  # stdlib dataclasses take the tool input's config
            }
        ),
    ),
    (
        p_typeddict,
        _one(
            {
                "type": "object",
                "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["street"],
                "additionalProperties": False,  # so do TypedDicts
            }
        ),
    ),
    (p_datetime, _one({"type": "string", "format": "date-time"})),
    (p_date, _one({"type": "string", "format": "date"})),
    (p_time, _one({"type": "string", "format": "time"})),
    (p_uuid, _one({"type": "string", "format": "uuid"})),
    (
        p_decimal,
        _one(
            {
                "anyOf": [
                    {"type": "number"},
                    {"type": "string"},
                ]
            }
        ),
    ),
    (p_path, _one({"type": "string", "format": "path"})),
    (
        p_constraints,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "n": {"type": "integer", "minimum": 1, "maximum": 16},
                "s": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                "f": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.25},
                "items": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
            },
            "required": ["n", "s", "f", "items"],
        },
    ),
    (
        p_defaults,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "default": "x"},
                "count": {"type": "integer", "default": 3},
                "tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
                "flag": {"type": "boolean", "default": False},
            },
        },
    ),
    (
        p_recursive,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"tree": {"$ref": "#/$defs/TreeNode"}},
            "required": ["tree"],
            "$defs": {
                "TreeNode": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/TreeNode"}, "default": []},
                    },
                    "required": ["name"],
                }
            },
        },
    ),
    (p_no_params, {"type": "object", "properties": {}, "additionalProperties": False}),
    (
        p_context_middle,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"a": {"type": "integer"}, "b": {"type": "string", "default": "x"}},
            "required": ["a"],
        },
    ),
    (
        p_context_optional,
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "required": ["a"],
            "additionalProperties": False,
        },
    ),
    (
        p_field_description,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "city": {"type": "string", "description": "From Field."},
                "days": {"type": "integer", "description": "Also from Field.", "default": 1},
            },
            "required": ["city"],
        },
    ),
    (
        p_positional_only,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    ),
    (
        p_untyped_default,
        {
            "type": "object",
            "properties": {"limit": {"type": "integer", "default": 5}},
            "additionalProperties": False,
        },
    ),
    (
        p_awkward_names,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "title": {"type": "string"},
                "model_config": {"type": "integer"},
                "json": {"type": "boolean"},
                "_hidden": {"type": "integer", "default": 0},
            },
            "required": ["title", "model_config", "json"],
        },
    ),
]


@pytest.mark.parametrize(("fn", "expected"), SCHEMA_TABLE, ids=[fn.__name__ for fn, _ in SCHEMA_TABLE])
def test_schema_table(fn: Any, expected: dict[str, Any]) -> None:
    t = tool(fn)
    assert t.input_schema == expected
    assert_claude_safe(t.input_schema)
    assert t.definition() == {"name": fn.__name__, "description": "Doc.", "input_schema": expected}


# --- docstring styles --------------------------------------------------------------------------


def google_style(query: str, limit: int = 10) -> list[str]:
    """Search the catalogue.

    Matches titles and authors, newest first.

    Args:
        query: Words to look for;
            case-insensitive.
        limit: Maximum number of results.

    Returns:
        Matching titles.
    """
    return []


def numpy_style(query: str, limit: int = 10) -> list[str]:
    """Search the catalogue.

    Matches titles and authors, newest first.

    Parameters
    ----------
    query : str
        Words to look for;
        case-insensitive.
    limit : int, optional
        Maximum number of results.

    Returns
    -------
    list of str
        Matching titles.
    """
    return []


def rest_style(query: str, limit: int = 10) -> list[str]:
    """Search the catalogue.

    Matches titles and authors, newest first.

    :param query: Words to look for;
        case-insensitive.
    :param int limit: Maximum number of results.
    :returns: Matching titles.
    """
    return []


def epydoc_style(query: str, limit: int = 10) -> list[str]:
    """Search the catalogue.

    Matches titles and authors, newest first.

    @param query: Words to look for;
        case-insensitive.
    @param limit: Maximum number of results.
    @return: Matching titles.
    """
    return []


DOC_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "Words to look for; case-insensitive."},
        "limit": {"type": "integer", "description": "Maximum number of results.", "default": 10},
    },
    "required": ["query"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("fn", [google_style, numpy_style, rest_style, epydoc_style])
def test_docstring_styles(fn: Any) -> None:
    t = tool(fn)
    assert t.definition() == {
        "name": fn.__name__,
        "description": "Search the catalogue.\n\nMatches titles and authors, newest first.",
        "input_schema": DOC_SCHEMA,
    }


def test_wrapped_summary_stays_one_paragraph() -> None:
    def wrapped(x: int) -> int:
        """Get the weather
        for a city.

        Details here.

        Args:
            x: A number.
        """
        return x

    assert tool(wrapped).description == "Get the weather\nfor a city.\n\nDetails here."


def test_undocumented_function_and_parameter_warning() -> None:
    def bare(x: int, y: Annotated[int, Field(description="why")] = 0) -> int:
        return x

    with structlog.testing.capture_logs() as logs:
        t = tool(bare)
    assert t.description == ""
    assert "description" not in t.definition()
    warnings = [e for e in logs if e["event"] == "tool.schema.undocumented_parameter"]
    assert warnings == [
        {
            "event": "tool.schema.undocumented_parameter",
            "tool": "bare",
            "parameter": "x",
            "log_level": "warning",
        }
    ]


def test_options_override_name_and_description() -> None:
    @tool(name="lookup-v2", description="Custom.", cache_control=True, timeout=3)
    def lookup(key: str) -> str:
        """Ignored docstring."""
        return key

    assert lookup.name == "lookup-v2"
    assert lookup.timeout == 3
    definition = lookup.definition()
    assert definition["description"] == "Custom."
    assert definition["cache_control"] == {"type": "ephemeral"}
    assert lookup.definition(cache_control={"type": "ephemeral", "ttl": "1h"})["cache_control"] == {
        "type": "ephemeral",
        "ttl": "1h",
    }


def test_definition_cache_control_and_copy() -> None:
    t = tool(p_int)
    assert "cache_control" not in t.definition()
    assert t.definition(cache_control=True)["cache_control"] == {"type": "ephemeral"}
    d = t.definition()
    d["input_schema"]["properties"]["value"]["type"] = "mutated"
    assert t.input_schema["properties"]["value"]["type"] == "integer"


def test_decorated_function_still_callable_and_wrapped() -> None:
    @tool
    def add(a: int, b: int = 1) -> int:
        """Add numbers."""
        return a + b

    assert isinstance(add, Tool)
    assert add(2, b=3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Add numbers."
    assert add.is_async is False

    @tool()
    async def later(a: int) -> int:
        """Async."""
        return a

    assert later.is_async is True
    assert anyio.run(later, 4) == 4


def test_method_schema_excludes_self() -> None:
    class Service:
        def __init__(self, base: int) -> None:
            self.base = base

        @tool
        def add(self, x: int) -> int:
            """Add to the base.

            Args:
                x: Amount.
            """
            return self.base + x

        @tool
        @classmethod
        def kind(cls, verbose: bool = False) -> str:
            """The class name."""
            return cls.__name__

        @tool
        @staticmethod
        def double(x: int) -> int:
            """Twice x."""
            return 2 * x

    svc = Service(10)
    assert svc.add.input_schema == {
        "type": "object",
        "properties": {"x": {"type": "integer", "description": "Amount."}},
        "required": ["x"],
        "additionalProperties": False,
    }
    assert svc.add(5) == 15
    assert Service.add(svc, 1) == 11
    assert svc.kind() == "Service"
    assert Service.kind.input_schema["properties"] == {"verbose": {"type": "boolean", "default": False}}
    assert Service.double(4) == 8
    assert svc.double.input_schema["required"] == ["x"]


def test_context_annotation_under_type_checking_only() -> None:
    # ``RunContext`` imported only for type checkers: the string annotation cannot be evaluated.
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "def f(ctx: RunContext[Deps], a: int) -> int:\n"
        "    '''Doc.'''\n"
        "    return a\n",
        namespace,
    )
    t = tool(namespace["f"])
    assert t.input_schema == {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert t.wants_context


# --- schema invariants -------------------------------------------------------------------------


def _walk_schemas(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object in ``node`` (not data values such as defaults/enums)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(node, dict):
        return found
    found.append((path, node))
    for key, value in node.items():
        if key in {"properties", "$defs", "patternProperties"} and isinstance(value, dict):
            for name, sub in value.items():
                found += _walk_schemas(sub, f"{path}/{key}/{name}")
        elif key in {"anyOf", "oneOf", "allOf", "prefixItems"} and isinstance(value, list):
            for i, sub in enumerate(value):
                found += _walk_schemas(sub, f"{path}/{key}/{i}")
        elif key in {"items", "additionalProperties", "not"} and isinstance(value, dict):
            found += _walk_schemas(value, f"{path}/{key}")
    return found


def assert_claude_safe(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert isinstance(schema["properties"], dict)
    assert not {"anyOf", "oneOf", "allOf"} & set(schema)
    if "required" in schema:
        assert schema["required"]
        assert set(schema["required"]) <= set(schema["properties"])
    defs = schema.get("$defs", {})
    for path, sub in _walk_schemas(schema):
        assert "title" not in sub, f"title at {path}"
        ref = sub.get("$ref")
        if ref is not None:
            assert ref.startswith("#/$defs/") and ref[len("#/$defs/") :] in defs, ref


def test_title_property_survives_but_titles_do_not() -> None:
    schema = tool(p_model).input_schema
    assert "title" in schema["properties"]["value"]["properties"]
    assert_claude_safe(schema)


def test_clean_json_schema_keeps_title_in_data_values() -> None:
    raw = {
        "title": "X",
        "type": "object",
        "properties": {"a": {"title": "A", "type": "object", "default": {"title": "kept"}}},
        "$defs": {"U": {"title": "U", "type": "string"}},
    }
    assert clean_json_schema(raw) == {
        "type": "object",
        "properties": {"a": {"type": "object", "default": {"title": "kept"}}},
    }


def test_clean_json_schema_inlines_refs_and_allof_wrappers() -> None:
    raw = {
        "type": "object",
        "properties": {
            "a": {"allOf": [{"$ref": "#/$defs/U"}], "description": "d"},
            "b": {"$ref": "#/$defs/V", "default": {"u": "x"}},
        },
        "$defs": {
            "U": {"type": "string", "title": "U"},
            "V": {"type": "object", "properties": {"u": {"$ref": "#/$defs/U"}}},
        },
    }
    assert clean_json_schema(raw) == {
        "type": "object",
        "properties": {
            "a": {"type": "string", "description": "d"},
            "b": {"type": "object", "properties": {"u": {"type": "string"}}, "default": {"u": "x"}},
        },
    }


def test_clean_json_schema_refuses_unresolvable_ref() -> None:
    with pytest.raises(ValueError, match="unresolvable"):
        clean_json_schema({"type": "object", "properties": {"a": {"$ref": "http://example.com/x"}}})


class MutualA(BaseModel):
    b: MutualB | None = None


class MutualB(BaseModel):
    a: MutualA | None = None
    leaf: Book | None = None


def test_mutually_recursive_models_keep_defs_and_inline_the_rest() -> None:
    def f(a: MutualA) -> None:
        """Doc."""

    schema = tool(f).input_schema
    assert_claude_safe(schema)
    assert set(schema["$defs"]) == {"MutualA", "MutualB"}
    leaf = schema["$defs"]["MutualB"]["properties"]["leaf"]
    assert leaf["anyOf"][0] == BOOK_SCHEMA  # the non-recursive Book was inlined


# --- decoration errors -------------------------------------------------------------------------


def _args_fn(*items: str) -> None:
    """Doc."""


def _kwargs_fn(**options: str) -> None:
    """Doc."""


def _unannotated_fn(x) -> None:  # type: ignore[no-untyped-def]
    """Doc."""


class _Opaque:
    pass


def _unsupported_fn(x: _Opaque) -> None:
    """Doc."""


def _callable_fn(callback: Any, fn: Callable[[int], int]) -> None:
    """Doc."""


def _two_contexts(a: RunContext[Deps], b: RunContext[Deps]) -> None:
    """Doc."""


def _unresolvable(x: DoesNotExist) -> None:  # type: ignore[name-defined]  # noqa: F821
    """Doc."""


@pytest.mark.parametrize(
    ("fn", "options", "fragments"),
    [
        (_args_fn, {}, ["_args_fn", "*items", "list parameter"]),
        (_kwargs_fn, {}, ["_kwargs_fn", "**options", "Declare each parameter"]),
        (_unannotated_fn, {}, ["_unannotated_fn", "'x'", "no type annotation", "annotate it"]),
        (_unsupported_fn, {}, ["_unsupported_fn", "parameter 'x'", "use a supported type"]),
        (_callable_fn, {}, ["_callable_fn", "parameter 'fn'", "JSON-describable type"]),
        (_two_contexts, {}, ["_two_contexts", "more than one RunContext", "keep exactly one"]),
        (_unresolvable, {}, ["_unresolvable", "'x'", "DoesNotExist", "define or import the type"]),
        (
            p_int,
            {"name": "has spaces"},
            ["p_int", "'has spaces'", "^[a-zA-Z0-9_-]{1,64}$", "@tool(name=...)"],
        ),
        (p_int, {"name": "x" * 65}, ["p_int", "at most 64"]),
        (p_int, {"timeout": 0}, ["p_int", "timeout=", "a positive number of seconds"]),
        (lambda x: x, {}, ["<lambda>", "@tool(name=...)"]),
    ],
    ids=[
        "varargs",
        "varkw",
        "unannotated",
        "unsupported-type",
        "no-json-schema",
        "two-contexts",
        "unresolvable",
        "bad-name",
        "long-name",
        "bad-timeout",
        "lambda",
    ],
)
def test_decoration_errors(fn: Any, options: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        tool(**options)(fn)
    message = str(info.value)
    assert "test_tool_schema" in message  # the qualified name includes the module
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_decorating_a_tool_twice_is_an_error() -> None:
    t = tool(p_int)
    with pytest.raises(ToolDefinitionError, match="already a tool"):
        tool(t)


# --- property-based: random signatures ---------------------------------------------------------

# (annotation, strategy of valid JSON values, a JSON value that must be rejected)
_TYPES: list[tuple[Any, st.SearchStrategy[Any], Any]] = [
    (str, st.text(max_size=20), [1]),
    (int, st.integers(min_value=-(2**53), max_value=2**53), "not a number"),
    (float, st.floats(allow_nan=False, allow_infinity=False, width=32), "NaN please"),
    (bool, st.booleans(), "maybe"),
    (Literal["a", "b", "c"], st.sampled_from(["a", "b", "c"]), "z"),
    (Color, st.sampled_from(["red", "green"]), "purple"),
    (list[int], st.lists(st.integers(-100, 100), max_size=5), 5),
    (dict[str, int], st.dictionaries(st.text(max_size=5), st.integers(-100, 100), max_size=3), [1, 2]),
    (int | None, st.none() | st.integers(-100, 100), "x"),
    (tuple[int, str], st.tuples(st.integers(-5, 5), st.text(max_size=5)).map(list), [1]),
    (set[int], st.sets(st.integers(-100, 100), max_size=5).map(sorted), "x"),
    (Annotated[int, Field(ge=0, le=10)], st.integers(0, 10), 11),
    (Annotated[str, Field(max_length=3)], st.text(max_size=3), "toolong"),
    (dt.datetime, st.datetimes().map(lambda d: d.isoformat()), "not a date"),
    (dt.date, st.dates().map(lambda d: d.isoformat()), "2020-13-45"),
    (uuid.UUID, st.uuids().map(str), "not-a-uuid"),
    (
        Book,
        st.fixed_dictionaries({"title": st.text(max_size=5)}, optional={"year": st.integers(0, 3000)}),
        {"year": 1},
    ),
    (Point, st.fixed_dictionaries({"x": st.floats(-10, 10), "y": st.floats(-10, 10)}), {"x": "far"}),
    (Address, st.fixed_dictionaries({"street": st.text(max_size=5)}), {"zip": "1"}),
]

_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in {"self", "cls"}
)


@st.composite
def _signatures(draw: st.DrawFn) -> tuple[list[str], list[int], list[bool]]:
    names = draw(st.lists(_names, min_size=1, max_size=6, unique=True))
    kinds = [draw(st.integers(0, len(_TYPES) - 1)) for _ in names]
    optional = [draw(st.booleans()) for _ in names]
    return names, kinds, optional


def _make_function(names: list[str], kinds: list[int], optional: list[bool]) -> Any:
    import inspect

    def impl(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    params = []
    # Required parameters first (keyword-only parameters may mix, but keep it readable).
    for name, kind, opt in zip(names, kinds, optional, strict=True):
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_TYPES[kind][0],
                default=None if opt else inspect.Parameter.empty,
            )
        )
    impl.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    impl.__annotations__ = {p.name: p.annotation for p in params}
    impl.__doc__ = "Generated."
    return impl


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sig=_signatures(), data=st.data())
def test_random_signatures(sig: tuple[list[str], list[int], list[bool]], data: st.DataObject) -> None:
    names, kinds, optional = sig
    with structlog.testing.capture_logs():
        t = tool(name="generated")(_make_function(names, kinds, optional))
    schema = t.input_schema
    assert_claude_safe(schema)
    assert list(schema["properties"]) == names
    assert schema.get("required", []) == [n for n, opt in zip(names, optional, strict=True) if not opt]

    good = {name: data.draw(_TYPES[kind][1]) for name, kind in zip(names, kinds, strict=True)}
    jsonschema.Draft202012Validator(schema).validate(good)
    result = anyio.run(t.run, {"id": "toolu_1", "name": "generated", "input": good})
    assert result.is_error is None, result.content

    victim = data.draw(st.sampled_from(names))
    bad = dict(good, **{victim: _TYPES[kinds[names.index(victim)]][2]})
    result = anyio.run(t.run, {"id": "toolu_2", "name": "generated", "input": bad})
    assert result.is_error is True
    assert isinstance(result.content, str)
    prefix = "Invalid input for generated: "
    assert result.content.startswith(prefix)
    parts = result.content[len(prefix) :].split("; ")
    assert any(p.startswith((f"{victim}:", f"{victim}.", f"{victim}[")) for p in parts), result.content


# --- what the model is told: no inherited docstrings, no unknown keys ----------------------------


class _OutputNoDoc(BaseModel):
    city: str


class _OutputDoc(BaseModel):
    """The city and its weather."""

    city: str


class _OutputInherits(_OutputDoc):
    pass


@dataclasses.dataclass
class _OutputDataclass:
    city: str


_NEUTRAL = "Give the final answer with this tool, once, when you are done."


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("output_type", "description"),
    [
        (_OutputNoDoc, _NEUTRAL),
        (_OutputDoc, f"{_NEUTRAL} The answer: The city and its weather."),
        (_OutputInherits, _NEUTRAL),
        (_OutputDataclass, _NEUTRAL),
    ],
    ids=["no-docstring", "own-docstring", "inherited-docstring", "dataclass"],
)
async def test_the_output_tool_describes_only_a_docstring_the_user_wrote(
    output_type: type[Any], description: str
) -> None:
    """Without a docstring of its own, a model used to send pydantic's 2,359-character ``BaseModel``
    docstring as the output tool's description on every request."""
    from agentkit import Agent, Client
    from agentkit.testing import LocalServer, Script, reply

    with LocalServer(policy=Script([reply.tool_use("final_result", {"city": "Oslo"})])) as server:
        async with Client(api_key="sk-test", base_url=server.base_url) as client:
            result = await Agent(client, model="claude-sonnet-4-6", output_type=output_type).run("Oslo?")
    assert result.output.city == "Oslo"
    sent = server.requests[0].json["tools"][-1]
    assert sent["name"] == "final_result"
    assert sent["description"] == description


@pytest.mark.anyio
async def test_a_misspelled_argument_from_the_model_is_answered_with_an_error_naming_it() -> None:
    from agentkit import Agent, Client
    from agentkit.testing import LocalServer, Script, reply

    ran: list[int] = []

    @tool
    def forecast(city: str, days: int = 1) -> str:
        """Forecast.

        Args:
            city: City name.
            days: Days to forecast.
        """
        ran.append(days)
        return f"{city}: {days} days"

    script = Script(
        [
            reply.tool_use("forecast", {"city": "Oslo", "dayz": 5}),
            reply.tool_use("forecast", {"city": "Oslo", "days": 5}),
            reply.text("Five days of sun."),
        ]
    )
    with LocalServer(policy=script) as server:
        async with Client(api_key="sk-test", base_url=server.base_url) as client:
            result = await Agent(client, model="claude-sonnet-4-6", tools=[forecast]).run("Oslo, 5 days?")
    assert result.text == "Five days of sun."
    assert ran == [5]  # never run with the default
    assert server.requests[0].json["tools"][0]["input_schema"]["additionalProperties"] is False
    answer = server.requests[1].json["messages"][-1]["content"][0]
    assert answer["type"] == "tool_result" and answer["is_error"] is True
    assert "dayz" in str(answer["content"]) and "unknown parameter" in str(answer["content"])
