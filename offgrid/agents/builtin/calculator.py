"""`calculator`: arithmetic the model hands over as text, parsed with `ast` and evaluated by a
walker that knows numbers, + - * / // % **, and a few functions and constants by name. The
text is never compiled or executed: a tree with anything else in it (a name, an attribute, a
string, a call of something not listed) is refused whole before a single operation runs, and
every operation that could grow without bound (powers, products, factorials) is checked for the
size of its result before it is done."""

from __future__ import annotations

import ast
import math
import operator

from ..tools import ToolContext, ToolResult
from .base import BuiltinTool, Refused, string

MAX_EXPRESSION_CHARS = 500
MAX_NODES = 300  # numbers, names, operations and calls
MAX_DEPTH = 50  # nesting of operations
MAX_INT_BITS = 10_000  # about 3,000 digits: 1000! fits
MAX_FACTORIAL = 1000
MAX_ROUND_DIGITS = 100

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
# Python's own operators, named for the model that tried one of them.
_NOT_ARITHMETIC = {ast.BitXor: "^ (for a power, write **)", ast.BitAnd: "&", ast.BitOr: "|",
                   ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@", ast.Invert: "~",
                   ast.Not: "not"}


def _factorial(n):
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or not 0 <= n <= MAX_FACTORIAL:
        raise Refused(f"factorial takes a whole number from 0 to {MAX_FACTORIAL}")
    return math.factorial(n)


def _round(x, digits=None):
    if digits is None:
        return round(x)
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise Refused(f"round's digits must be a whole number from -{MAX_ROUND_DIGITS} to "
                      f"{MAX_ROUND_DIGITS}")
    return round(x, digits)


def _log(x, base=None):
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, least and most arguments)
FUNCTIONS = {
    "sqrt": (math.sqrt, 1, 1), "exp": (math.exp, 1, 1), "log": (_log, 1, 2),
    "log10": (math.log10, 1, 1), "log2": (math.log2, 1, 1),
    "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1), "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1), "acos": (math.acos, 1, 1), "atan": (math.atan, 1, 1),
    "abs": (abs, 1, 1), "round": (_round, 1, 2), "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1), "min": (lambda *xs: min(xs), 1, 20),
    "max": (lambda *xs: max(xs), 1, 20),
    "factorial": (_factorial, 1, 1),
}

_ALLOWED = (ast.Expression, ast.Constant, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load,
            *_BINARY, *_UNARY)
_USE = ("Use numbers, + - * / // % ** and parentheses, the constants " + ", ".join(CONSTANTS)
        + " and the functions " + ", ".join(FUNCTIONS))


class Calculator(BuiltinTool):
    name = "calculator"
    description = ("Work out an arithmetic expression, e.g. \"(17 * 23) + sqrt(2) ** 3\". "
                   + _USE + ".")
    parameters = {
        "type": "object",
        "properties": {"expression": {"type": "string", "maxLength": MAX_EXPRESSION_CHARS,
                                      "description": "the arithmetic to work out"}},
        "required": ["expression"],
        "additionalProperties": False,
    }
    timeout_s = 5.0

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        expression = string(arguments, "expression", MAX_EXPRESSION_CHARS)
        value = evaluate(expression)
        return ToolResult(f"{expression.strip()} = {value!r}")


def evaluate(expression: str) -> int | float:
    """The value of `expression`; Refused for anything but bounded arithmetic."""
    tree = _parse(expression)
    _check(tree)
    try:
        return _value(tree.body)
    except ZeroDivisionError:
        raise Refused("Division by zero") from None
    except OverflowError:
        raise Refused("The result is too large to work out") from None
    except (ValueError, TypeError) as error:  # math domain errors: sqrt(-1), log(0)
        raise Refused(f"Not defined for these numbers ({error})") from None


def _parse(expression: str) -> ast.Expression:
    if not expression.strip():
        raise Refused("The expression is empty. " + _USE)
    try:
        return ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a NUL, too deep
        raise Refused(f"Not an arithmetic expression: {expression.strip()!r}. " + _USE) from None


def _check(tree: ast.Expression) -> None:
    """Refuse the whole tree unless every node is arithmetic this walker knows."""
    nodes = list(ast.walk(tree))
    if sum(isinstance(node, ast.expr) for node in nodes) > MAX_NODES:
        raise Refused(f"The expression is too long: more than {MAX_NODES} parts")
    for node in nodes:
        if type(node) in _NOT_ARITHMETIC:
            raise Refused(f"{_NOT_ARITHMETIC[type(node)]} is not arithmetic here. " + _USE)
        if not isinstance(node, _ALLOWED):
            raise Refused(f"{type(node).__name__} is not allowed: the calculator does "
                          "arithmetic only. " + _USE)
        if isinstance(node, ast.Constant) and (
                isinstance(node.value, bool) or not isinstance(node.value, (int, float))):
            raise Refused(f"{node.value!r} is not a number. " + _USE)
    functions = {id(node.func) for node in nodes if isinstance(node, ast.Call)}
    for node in nodes:
        if isinstance(node, ast.Call):
            _check_call(node)
        elif isinstance(node, ast.Name) and node.id not in CONSTANTS and id(node) not in functions:
            raise Refused(f"Unknown name {node.id!r}. " + _USE)
    if _depth(tree.body) > MAX_DEPTH:
        raise Refused(f"The expression nests more than {MAX_DEPTH} levels deep")


def _check_call(call: ast.Call) -> None:
    if not isinstance(call.func, ast.Name) or call.func.id not in FUNCTIONS:
        raise Refused(f"Unknown function {ast.unparse(call.func)!r}. " + _USE)
    if call.keywords:
        raise Refused(f"{call.func.id} takes its arguments by position only")
    _, least, most = FUNCTIONS[call.func.id]
    if not least <= len(call.args) <= most:
        count = str(least) if least == most else f"{least} to {most}"
        raise Refused(f"{call.func.id} takes {count} argument{'s' if most > 1 else ''}, "
                      f"not {len(call.args)}")


def _depth(node: ast.AST) -> int:
    """How deep the operations nest, without recursing (a deep tree is what is being refused)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, (ast.operator, ast.unaryop, ast.expr_context)))
    return deepest


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        _check_size(type(node.op), left, right)
        return _real(_BINARY[type(node.op)](left, right))
    function, _, _ = FUNCTIONS[node.func.id]
    return _real(function(*map(_value, node.args)))


def _check_size(op: type, left, right) -> None:
    """Refuse a product or power of whole numbers whose result would pass MAX_INT_BITS, before
    it is computed (9**9**9 would take the machine's memory)."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return  # floats overflow to an error or inf, at once
    if op is ast.Mult:
        bits = left.bit_length() + right.bit_length()
    elif op is ast.Pow and right > 0 and abs(left) > 1:
        bits = right * math.log2(abs(left))
    else:
        return
    if bits > MAX_INT_BITS:
        raise Refused(f"The result would have about {int(bits * math.log10(2)):,} digits; "
                      f"the calculator works with numbers of up to "
                      f"{int(MAX_INT_BITS * math.log10(2)):,}")


def _real(value) -> int | float:
    if isinstance(value, complex):
        raise Refused("The result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise Refused("The result is too large to work out (it overflows)")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise Refused("The result is too large to show")
    return value
