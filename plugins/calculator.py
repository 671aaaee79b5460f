"""Built-in plugin: ``calculator``, a safe arithmetic evaluator.

The expression is parsed with :mod:`ast` and walked node by node: numbers, + - * / // % **
(``^`` means power too), unary signs, parentheses, a few math functions and constants.
Nothing else is accepted: no names outside the table, no attribute access, no subscripts, no
eval. Exponents and integer results are bounded so ``9**9**9`` is refused, not computed.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from runtime.tools import ValidationError, tool

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
#: Integer results past this many bits (~3,000 decimal digits) are refused.
MAX_RESULT_BITS = 10_000

#: What an expression evaluates to (``bool`` never appears: only int and float literals parse).
Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculatorError(ValidationError):
    """The expression is not plain arithmetic, or its result would be unreasonably large."""


def _power(base: Number, exponent: Number) -> Number | complex:
    # A negative base to a fractional power is complex; _check_size refuses it.
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {exponent} is too large (at most {MAX_EXPONENT})")
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and base.bit_length() * exponent > MAX_RESULT_BITS
    ):
        raise CalculatorError(f"{base}**{exponent} is too large to compute")
    try:
        return base**exponent
    except OverflowError as exc:
        raise CalculatorError(f"{base}**{exponent} overflows") from exc


def _check_size(value: Number | complex) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise CalculatorError("the result is too large")
    if isinstance(value, complex):
        raise CalculatorError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is too large for a floating-point number")
    return value


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    constant = node.value if isinstance(node, ast.Constant) else None
    if isinstance(constant, (int, float)) and not isinstance(constant, bool):
        return constant
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, (ast.Pow, ast.BitXor)):
            return _check_size(_power(left, right))
        func = _BINARY.get(type(node.op))
        if func is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        try:
            return _check_size(func(left, right))
        except ZeroDivisionError as exc:
            raise CalculatorError("division by zero") from exc
        except OverflowError as exc:  # 2**5000 / 3: an int too large for the float a division makes
            raise CalculatorError("the result is too large for a floating-point number") from exc
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check_size(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise CalculatorError("only these functions are allowed: " + ", ".join(sorted(_FUNCTIONS)))
        args = [_eval(arg) for arg in node.args]
        try:
            return _check_size(_FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise CalculatorError(f"{node.func.id}: {exc}") from exc
    if isinstance(node, ast.Attribute):
        raise CalculatorError("attribute access is not allowed")
    raise CalculatorError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression (see the module docstring for what is allowed).

    Raises:
        CalculatorError: an empty, too long (over ``MAX_EXPRESSION_CHARS``), invalid or
            disallowed expression, division by zero, a result too large (including one too
            large for a float, ``2**5000 / 3``) or not real.
    """
    text = expression.strip()
    if not text:
        raise CalculatorError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise CalculatorError(f"not a valid expression: {text!r}") from exc
    return _eval(tree)


def format_number(value: int | float) -> str:
    """``value`` for people: whole floats below 1e15 without ``.0``, other floats to 12 significant digits."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".12g")
    return str(value)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "(2 + 3) * 4" or "sqrt(2) ** 2".

    Args:
        expression: Numbers, + - * / // % ** (or ^), parentheses, sqrt, sin, cos, tan, log,
            log10, log2, exp, abs, round, floor, ceil, min, max, pi, e.
    """
    return f"{expression.strip()} = {format_number(evaluate(expression))}"
