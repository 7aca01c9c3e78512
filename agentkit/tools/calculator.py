"""A safe calculator tool: arithmetic evaluated by walking a whitelisted AST.

Nothing is passed to ``eval``/``exec``: the expression is parsed with :func:`ast.parse` and each node
is interpreted here. Every operation is bounded (length, nesting depth, exponent and factorial size,
integer size) so that hostile input fails fast with a :class:`~agentkit._exceptions.ToolError`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

from agentkit._exceptions import ToolError
from agentkit._tool import tool

__all__ = ["MAX_EXPRESSION_LENGTH", "calculate"]

MAX_EXPRESSION_LENGTH = 500
_MAX_DEPTH = 100
_MAX_INT_BITS = 10_000  # about 3,000 decimal digits
_MAX_FACTORIAL = 1_000
_MAX_ROUND_DIGITS = 100
_EXACT_INT_LIMIT = 2**53  # larger integers are returned as strings so JSON readers keep every digit

Number = int | float

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _sqrt(x: Number) -> float:
    return math.sqrt(x)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, ndigits: int | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int) or abs(ndigits) > _MAX_ROUND_DIGITS:
        raise ToolError(
            f"round() digits must be an integer between -{_MAX_ROUND_DIGITS} and {_MAX_ROUND_DIGITS}"
        )
    return round(x, ndigits)


def _factorial(x: Number) -> int:
    if isinstance(x, float):
        if not x.is_integer():
            raise ToolError("factorial() needs a whole number")
        x = int(x)
    if x < 0:
        raise ToolError("factorial() needs a non-negative number")
    if x > _MAX_FACTORIAL:
        raise ToolError(f"factorial() is limited to n <= {_MAX_FACTORIAL}; got {x}")
    return math.factorial(x)


_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    # name: (function, min args, max args)
    "sqrt": (_sqrt, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1),
    "acos": (math.acos, 1, 1),
    "atan": (math.atan, 1, 1),
    "log": (_log, 1, 2),
    "log10": (math.log10, 1, 1),
    "log2": (math.log2, 1, 1),
    "exp": (math.exp, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "factorial": (_factorial, 1, 1),
    "degrees": (math.degrees, 1, 1),
    "radians": (math.radians, 1, 1),
}

_ALLOWED_HELP = (
    "Use numbers, + - * / // % ** and parentheses, the constants "
    + ", ".join(sorted(_CONSTANTS))
    + " and the functions "
    + ", ".join(sorted(_FUNCTIONS))
    + "."
)

# Readable names for the constructs the model might try, used in refusal messages.
_NODE_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access (a.b)",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Subscript: "indexing (a[b])",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Compare: "a comparison",
    ast.BoolOp: "and/or",
    ast.IfExp: "a conditional expression",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.JoinedStr: "an f-string",
    ast.Starred: "a star argument",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
    ast.Call: "a call",
}

_BIN_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


@tool
def calculate(expression: str) -> float | str:
    """Evaluate an arithmetic expression exactly and safely.

    Supports numbers, + - * / // % ** (power), parentheses, the constants pi, e and tau, and the
    functions sqrt, sin, cos, tan, asin, acos, atan, log (natural, or log(x, base)), log10, log2,
    exp, abs, round, floor, ceil, factorial, degrees and radians. Angles are in radians.
    Very large integers are returned as strings.

    Args:
        expression: The expression to compute, e.g. "sqrt(2) * (3 + 4) ** 2" or "factorial(20) / 7".
    """
    return _format(evaluate(expression))


def evaluate(expression: str) -> Number:
    """Evaluate ``expression`` and return the raw number; raises ToolError on anything refused."""
    if not isinstance(expression, str):
        raise ToolError("expression must be a string")
    text = expression.strip()
    if not text:
        raise ToolError("The expression is empty. " + _ALLOWED_HELP)
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ToolError(
            f"The expression is too long ({len(text)} characters; the limit is {MAX_EXPRESSION_LENGTH})."
        )
    text = text.replace("^", "**").replace("×", "*").replace("÷", "/")  # noqa: RUF001 - common notations
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"Could not parse the expression: {exc.msg}. {_ALLOWED_HELP}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ToolError("Could not parse the expression (invalid characters or nested too deeply).") from None
    _check_nodes(tree)
    try:
        return _Evaluator().eval(tree.body, 0)
    except ToolError:
        raise
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except OverflowError:
        raise ToolError("The result is too large to compute.") from None
    except (ValueError, ArithmeticError) as exc:
        raise ToolError(f"Math error: {exc}.") from None
    except RecursionError:
        raise ToolError("The expression is nested too deeply.") from None


def _check_nodes(tree: ast.AST) -> None:
    """Refuse any construct outside the whitelist before evaluating anything."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                kind = "Text (strings)" if isinstance(value, str | bytes) else f"The value {value!r}"
                raise ToolError(f"{kind} is not allowed in calculations. {_ALLOWED_HELP}")
        elif isinstance(node, ast.Name):
            if node.id not in _CONSTANTS and node.id not in _FUNCTIONS:
                raise ToolError(f"The name {node.id!r} is not allowed. {_ALLOWED_HELP}")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                if isinstance(node.func, ast.Name):
                    what = f"Calling {node.func.id!r}"
                else:
                    what = "Calling " + _NODE_NAMES.get(type(node.func), "the result of an expression")
                raise ToolError(f"{what} is not allowed. {_ALLOWED_HELP}")
            if node.keywords:
                raise ToolError("Keyword arguments are not allowed; pass arguments by position.")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BIN_OPS:
                raise ToolError(f"The operator {type(node.op).__name__} is not allowed. {_ALLOWED_HELP}")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.UAdd | ast.USub):
                raise ToolError(f"The operator {type(node.op).__name__} is not allowed. {_ALLOWED_HELP}")
        elif not isinstance(node, ast.Expression | ast.Load | ast.operator | ast.unaryop):
            name = _NODE_NAMES.get(type(node), type(node).__name__)
            raise ToolError(f"{name[0].upper()}{name[1:]} is not allowed in calculations. {_ALLOWED_HELP}")


class _Evaluator:
    """Interprets the (already whitelisted) AST with size checks after every step."""

    def eval(self, node: ast.expr, depth: int) -> Number:
        if depth > _MAX_DEPTH:
            raise ToolError(f"The expression is nested too deeply (limit {_MAX_DEPTH} levels).")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):  # _check_nodes refused these
                raise ToolError(f"The value {value!r} is not allowed.")
            return _check_size(value)
        if isinstance(node, ast.Name):
            if node.id in _FUNCTIONS:
                raise ToolError(f"{node.id} is a function; call it like {node.id}(x).")
            return _CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            # Walk the left spine iteratively so long chains like 1+2+...+200 cost no depth.
            spine: list[ast.BinOp] = []
            current: ast.expr = node
            while isinstance(current, ast.BinOp):
                spine.append(current)
                current = current.left
            value = self.eval(current, depth + 1)
            for op_node in reversed(spine):
                right = self.eval(op_node.right, depth + 1)
                value = _check_size(_binary(op_node.op, value, right))
            return value
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):  # _check_nodes refused other calls
                raise ToolError("Only the listed functions can be called.")
            func, low, high = _FUNCTIONS[node.func.id]
            if not low <= len(node.args) <= high:
                count = str(low) if low == high else f"{low} to {high}"
                raise ToolError(f"{node.func.id}() takes {count} argument(s), got {len(node.args)}.")
            args = [self.eval(arg, depth + 1) for arg in node.args]
            return _check_size(func(*args))
        raise ToolError(f"{type(node).__name__} is not allowed.")  # pragma: no cover - filtered earlier


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    if isinstance(op, ast.Div):
        return left / right
    if isinstance(op, ast.FloorDiv):
        return left // right
    if isinstance(op, ast.Mod):
        return left % right
    if isinstance(op, ast.Pow):
        return _power(left, right)
    raise ToolError(f"The operator {type(op).__name__} is not allowed.")  # pragma: no cover


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # Estimate the size before computing: 9**9**9 must be refused, not attempted.
        if exponent * math.log2(abs(base)) > _MAX_INT_BITS:
            raise ToolError(
                f"The result of {base} ** {exponent} would be too large (over {_MAX_INT_BITS} bits); "
                "use smaller numbers or floats."
            )
        return int(base**exponent)
    result: Any = base**exponent
    if isinstance(result, complex):
        raise ToolError("The result is a complex number (negative base with a fractional exponent).")
    return float(result) if not isinstance(result, int) else result


def _check_size(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise ToolError(f"The result is too large (over {_MAX_INT_BITS} bits).")
    if isinstance(value, float) and math.isnan(value):
        raise ToolError("The result is not a number (NaN).")
    if isinstance(value, float) and math.isinf(value):
        raise ToolError("The result is too large (it overflows to infinity).")
    return value


def _format(value: Number) -> float | str:
    if isinstance(value, int) and abs(value) >= _EXACT_INT_LIMIT:
        return str(value)
    return value
