"""A rule's condition as a SQL predicate, so a recompute reads only the events that can change
the rule's state (pure: builds text and parameters, runs nothing).

Only rules whose state ignores events that do not meet the condition qualify: count-in-window
and threshold rules without a `resolve` (a resolving event is by definition one that does not
meet the condition). Conditions using anything but comparisons of the event's value, diastolic,
context and hour with constants or parameters, joined by and/or, are not translated.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

COLUMNS = {"value": "value", "value2": "value2", "context": "context", "hour": "local_hour"}
_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "=", ast.NotEq: "<>"}


class _Untranslatable(Exception):
    pass


def predicate(
    condition: str, params: Mapping[str, float], when: str | None = None
) -> tuple[str, list[Any]] | None:
    """(SQL boolean expression, parameters) equivalent to the condition (and guard), or None."""
    try:
        sql, args = _expr(ast.parse(condition, mode="eval").body, params)
        if when:
            guard, more = _expr(ast.parse(when, mode="eval").body, params)
            sql, args = f"({guard}) AND ({sql})", [*more, *args]
    except (_Untranslatable, SyntaxError):
        return None
    return sql, args


def _expr(node: ast.AST, params: Mapping[str, float]) -> tuple[str, list[Any]]:
    if isinstance(node, ast.BoolOp):
        parts = [_expr(v, params) for v in node.values]
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return joiner.join(f"({p})" for p, _a in parts), [a for _p, args in parts for a in args]
    if isinstance(node, ast.Compare):
        left = node.left
        pieces: list[str] = []
        args: list[Any] = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) not in _OPS:
                raise _Untranslatable
            a_sql, a_args = _operand(left, params)
            b_sql, b_args = _operand(right, params)
            pieces.append(f"{a_sql} {_OPS[type(op)]} {b_sql}")
            args += [*a_args, *b_args]
            left = right
        return " AND ".join(pieces), args
    raise _Untranslatable


def _operand(node: ast.AST, params: Mapping[str, float]) -> tuple[str, list[Any]]:
    if isinstance(node, ast.Name):
        if node.id in COLUMNS:
            return COLUMNS[node.id], []
        if node.id in params:
            return "%s", [float(params[node.id])]
        raise _Untranslatable
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        if isinstance(node.value, bool):
            raise _Untranslatable
        return "%s", [node.value]
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
    ):
        return "%s", [-node.operand.value]
    raise _Untranslatable
