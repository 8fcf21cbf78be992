"""Rule conditions: a tiny expression language, checked against a whitelist, turned into Python.

A condition such as ``value >= sys or value2 >= dia`` is parsed with :mod:`ast`, every node is
checked (only names, numbers, strings, comparisons, ``and``/``or``/``not``, ``+ - * /``,
``items[i]`` and ``in (..)`` pass) and typed, and a Python source fragment is written from the
checked tree alone -- never from the user's text. The engine compiles those fragments once per
rule set into ordinary functions of ``(ev, v2, count, mean)``; rule parameters (``sys``,
``dia``) become closure variables, so evaluating a condition costs one plain function call.
"""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Iterable

# Names every condition may use, and the Python each becomes inside a compiled condition
# (`ev` is the Event, `v2` its value2 with None turned into NaN so comparisons are False).
EVENT_NAMES = {
    "value": "ev.value",
    "value2": "v2",
    "hour": "ev.hour",
    "context": "ev.context",
}
AGGREGATE_NAMES = {"count": "count", "mean": "mean"}
ITEMS = "items"
# Parameter names may not take these: they are the language's own names or the compiled
# function's arguments and helpers.
RESERVED = frozenset(
    [*EVENT_NAMES, *AGGREGATE_NAMES, ITEMS, "ev", "v2", "true", "false", "none", *keyword.kwlist]
)

MAX_LENGTH = 1000
MAX_NODES = 200
MAX_ITEM_INDEX = 199

NUM, STR, BOOL = "number", "text", "boolean"


class ExprError(ValueError):
    """The expression is not allowed; the message says why, in terms a rule author knows."""


_COMPARE = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

# What an author most likely tried, for a clear refusal.
_REFUSED = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attribute access is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.IfExp: "'x if c else y' is not allowed",
    ast.NamedExpr: "assignment is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "slices are not allowed",
}


def translate(
    source: object, params: Iterable[str], *, aggregates: bool = False
) -> tuple[str, frozenset[str]]:
    """Check `source` and return (Python fragment, parameter names it uses); raise ExprError."""
    if not isinstance(source, str):
        raise ExprError("must be a text expression")
    text = source.strip()
    if not text:
        raise ExprError("is empty")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error: {exc.msg} (column {exc.offset})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("cannot be parsed") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ExprError(f"is too complex ({nodes} parts, at most {MAX_NODES})")
    writer = _Writer(frozenset(params), aggregates)
    code, kind = writer.emit(tree.body)
    if kind != BOOL:
        raise ExprError(f"must be a condition (true/false), not a {kind}")
    return code, frozenset(writer.used)


class _Writer:
    """Walks a parsed expression, refusing anything outside the language, writing Python."""

    def __init__(self, params: frozenset[str], aggregates: bool) -> None:
        self.params = params
        self.aggregates = aggregates
        self.used: set[str] = set()

    def emit(self, node: ast.expr) -> tuple[str, str]:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            reason = _REFUSED.get(type(node), f"'{type(node).__name__}' is not allowed")
            raise ExprError(reason)
        result: tuple[str, str] = method(node)
        return result

    # leaves ---------------------------------------------------------------------------
    def _Constant(self, node: ast.Constant) -> tuple[str, str]:
        value = node.value
        if isinstance(value, bool):
            return ("True" if value else "False"), BOOL
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ExprError("numbers must be finite")
            return repr(value), NUM
        if isinstance(value, str):
            if len(value) > 200:
                raise ExprError("text constants are limited to 200 characters")
            return repr(value), STR
        raise ExprError(f"the constant {value!r} is not allowed")

    def _Name(self, node: ast.Name) -> tuple[str, str]:
        name = node.id
        if name in EVENT_NAMES:
            return EVENT_NAMES[name], (STR if name == "context" else NUM)
        if name in AGGREGATE_NAMES:
            if not self.aggregates:
                raise ExprError(f"'{name}' is only available in trend rules")
            return AGGREGATE_NAMES[name], NUM
        if name == ITEMS:
            raise ExprError("'items' must be indexed, e.g. items[8]")
        if name in ("True", "true"):
            return "True", BOOL
        if name in ("False", "false"):
            return "False", BOOL
        if name in self.params:
            self.used.add(name)
            return name, NUM
        known = [*EVENT_NAMES, "items[i]", *(AGGREGATE_NAMES if self.aggregates else ())]
        known += sorted(self.params)
        raise ExprError(f"unknown name '{name}' (known: {', '.join(known)})")

    def _Subscript(self, node: ast.Subscript) -> tuple[str, str]:
        if not (isinstance(node.value, ast.Name) and node.value.id == ITEMS):
            raise ExprError("only 'items' can be indexed")
        index = node.slice
        if not (
            isinstance(index, ast.Constant)
            and isinstance(index.value, int)
            and not isinstance(index.value, bool)
            and 0 <= index.value <= MAX_ITEM_INDEX
        ):
            raise ExprError(f"items[...] needs a whole number from 0 to {MAX_ITEM_INDEX}")
        i = index.value
        # A missing item reads as NaN: every comparison with it is False.
        return f"(ev.items[{i}] if _len(ev.items) > {i} else _nan)", NUM

    # operators --------------------------------------------------------------------------
    def _BoolOp(self, node: ast.BoolOp) -> tuple[str, str]:
        word = " and " if isinstance(node.op, ast.And) else " or "
        parts = []
        for value in node.values:
            code, kind = self.emit(value)
            if kind != BOOL:
                raise ExprError(f"'{word.strip()}' joins conditions, not a {kind}")
            parts.append(code)
        return "(" + word.join(parts) + ")", BOOL

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[str, str]:
        code, kind = self.emit(node.operand)
        if isinstance(node.op, ast.Not):
            if kind != BOOL:
                raise ExprError(f"'not' applies to a condition, not a {kind}")
            return f"(not {code})", BOOL
        if isinstance(node.op, ast.USub | ast.UAdd):
            if kind != NUM:
                raise ExprError(f"a sign applies to a number, not a {kind}")
            return f"({'-' if isinstance(node.op, ast.USub) else '+'}{code})", NUM
        raise ExprError("'~' is not allowed")

    def _BinOp(self, node: ast.BinOp) -> tuple[str, str]:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise ExprError(f"the operator '{type(node.op).__name__}' is not allowed")
        left, lkind = self.emit(node.left)
        right, rkind = self.emit(node.right)
        if lkind != NUM or rkind != NUM:
            raise ExprError(f"'{op}' needs numbers on both sides")
        if op == "/":
            if isinstance(node.right, ast.Constant):
                if node.right.value == 0:
                    raise ExprError("division by zero")
                return f"({left} / {right})", NUM
            return f"_div({left}, {right})", NUM
        return f"({left} {op} {right})", NUM

    def _Compare(self, node: ast.Compare) -> tuple[str, str]:
        code, kind = self.emit(node.left)
        parts = [code]
        for op, right in zip(node.ops, node.comparators, strict=True):
            symbol = _COMPARE.get(type(op))
            if symbol is None:
                raise ExprError(f"the comparison '{type(op).__name__}' is not allowed")
            if isinstance(op, ast.In | ast.NotIn):
                rcode, rkind = self._choices(right, kind)
            else:
                rcode, rkind = self.emit(right)
                if rkind != kind:
                    raise ExprError(f"cannot compare a {kind} with a {rkind}")
                if isinstance(op, _ORDERING) and kind != NUM:
                    raise ExprError(f"'{symbol}' compares numbers, not a {kind}")
            parts += [symbol, rcode]
            kind = rkind
        return "(" + " ".join(parts) + ")", BOOL

    def _choices(self, node: ast.expr, kind: str) -> tuple[str, str]:
        """The right side of `in`: a literal tuple/list of constants of the left side's type."""
        if not isinstance(node, ast.Tuple | ast.List | ast.Set):
            raise ExprError('\'in\' needs a list of constants, e.g. context in ("a", "b")')
        codes = []
        for element in node.elts:
            if not isinstance(element, ast.Constant):
                raise ExprError("'in' needs a list of constants")
            code, ekind = self.emit(element)
            if ekind != kind:
                raise ExprError(f"'in' compares a {kind} with a list holding a {ekind}")
            codes.append(code)
        return "(" + "".join(c + ", " for c in codes) + ")", kind


def div(a: float, b: float) -> float:
    """Division inside conditions: dividing by zero gives NaN (every comparison False)."""
    return a / b if b else math.nan
