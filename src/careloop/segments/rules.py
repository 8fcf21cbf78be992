"""Segment rules: a small expression language over a patient's facts, checked and interpreted
without ``eval``.

A rule such as ``pdc < 0.6 or missed_doses_7d >= 3 or last_sbp >= 160`` is parsed with
:mod:`ast`; every node is checked against a whitelist (fact names, numbers, strings, ``true``/
``false``/``none``, comparisons, ``and``/``or``/``not``, ``+ - * /``, ``x in (..)`` and
``"I10" in conditions``) and unknown names are refused with a message a rule author understands.
The checked tree is then walked directly for each patient. A fact that is missing (``None``:
no reading, no dispensing) makes every comparison with it false, so ``last_sbp >= 160`` does not
hold for a patient without a blood pressure, and neither does ``last_sbp < 160``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

MAX_LENGTH = 1000
MAX_NODES = 200

# The facts a rule may use (careloop.segments.facts computes them) and what each holds.
NUMBER, TEXT, LIST, BOOL = "number", "text", "list", "boolean"
FACTS: dict[str, str] = {
    "age": NUMBER,
    "sex": TEXT,
    "pdc": NUMBER,
    "missed_doses_7d": NUMBER,
    "last_sbp": NUMBER,
    "last_dbp": NUMBER,
    "conditions": LIST,
    "condition_count": NUMBER,
    "has_hypertension": BOOL,
    "has_diabetes": BOOL,
    "days_since_surgical_discharge": NUMBER,
    "ack_rate_30d": NUMBER,
    "reminders_sent_30d": NUMBER,
    "reads_30d": NUMBER,
    "questionnaires_30d": NUMBER,
    "readings_30d": NUMBER,
    "risk_score": NUMBER,
}
CONSTANTS = {"true": True, "false": False, "none": None, "True": True, "False": False}


class RuleError(ValueError):
    """The rule is not allowed; the message says why."""


_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div)


@dataclass(frozen=True)
class Rule:
    source: str
    tree: ast.expr
    names: frozenset[str]

    def holds(self, facts: Mapping[str, Any]) -> bool:
        return bool(_truth(_eval(self.tree, facts)))


def parse(source: object) -> Rule:
    """Check a rule and return it ready to evaluate; RuleError says what is wrong."""
    text = str(source or "").strip()
    if not text:
        raise RuleError(_("The rule is empty."))
    if len(text) > MAX_LENGTH:
        raise RuleError(_("The rule is too long (at most 1000 characters)."))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise RuleError(
            _("The rule cannot be read near column %(col)s.") % {"col": (exc.offset or 0)}
        ) from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise RuleError(_("The rule is too complex."))
    names: set[str] = set()
    for node in nodes:
        _check(node, names)
    return Rule(text, tree.body, frozenset(names))


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, (ast.Expression, ast.Load, ast.And, ast.Or, ast.Not, ast.USub)):
        return
    if isinstance(node, _COMPARE) or isinstance(node, _ARITH):
        return
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return
        if node.id not in FACTS:
            known = ", ".join(sorted(FACTS))
            raise RuleError(
                _("Unknown fact %(name)s. Known facts: %(known)s.")
                % {"name": node.id, "known": known}
            )
        names.add(node.id)
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or node.value is None:
            return
        if isinstance(node.value, (int, float, str)):
            return
        raise RuleError(_("Only numbers and quoted text are allowed as values."))
    if isinstance(node, ast.BoolOp):
        return
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.Not, ast.USub)):
            return
        raise RuleError(_("Only 'not' and '-' may stand before a value."))
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, _ARITH):
            return
        raise RuleError(_("Only + - * / are allowed in calculations."))
    if isinstance(node, ast.Compare):
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)) and not (
                isinstance(right, (ast.Tuple, ast.List))
                or (isinstance(right, ast.Name) and FACTS.get(right.id) == LIST)
            ):
                raise RuleError(
                    _("'in' needs a list of values in brackets, or the fact conditions.")
                )
        return
    if isinstance(node, (ast.Tuple, ast.List)):
        for item in node.elts:
            if not isinstance(item, ast.Constant) or isinstance(item.value, bool):
                raise RuleError(_("A list may hold only numbers and quoted text."))
        return
    if isinstance(node, ast.Call):
        raise RuleError(_("Function calls are not allowed."))
    if isinstance(node, ast.Attribute):
        raise RuleError(_("Attribute access is not allowed."))
    if isinstance(node, ast.Subscript):
        raise RuleError(_("Indexing is not allowed."))
    raise RuleError(
        _("This part of the rule is not allowed: %(part)s") % {"part": type(node).__name__}
    )


class _Missing:
    """A missing fact or a calculation with one: every comparison with it is false."""


MISSING = _Missing()


def _truth(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    return bool(value)


def _eval(node: ast.AST, facts: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        value = facts.get(node.id)
        if value is None:
            return MISSING
        if isinstance(value, float) and math.isnan(value):
            return MISSING
        return value
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_truth(_eval(v, facts)) for v in node.values)
        return any(_truth(_eval(v, facts)) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, facts)
        if isinstance(node.op, ast.Not):
            return not _truth(operand)
        if operand is MISSING or not isinstance(operand, (int, float)):
            return MISSING
        return -operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, facts), _eval(node.right, facts)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            return MISSING
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right if right else MISSING
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_eval(e, facts) for e in node.elts]
    if isinstance(node, ast.Compare):
        left = _eval(node.left, facts)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, facts)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    raise RuleError(type(node).__name__)  # unreachable for a checked tree


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, (ast.In, ast.NotIn)):
        if left is MISSING or right is MISSING:
            return False
        found = left in right if isinstance(right, (list, tuple, set)) else False
        return found if isinstance(op, ast.In) else not found
    if left is MISSING or right is MISSING:
        return False
    if isinstance(op, ast.Eq):
        return bool(left == right)
    if isinstance(op, ast.NotEq):
        return bool(left != right)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    texts = all(isinstance(v, str) for v in (left, right))
    if not (numbers or texts):
        return False
    if isinstance(op, ast.Lt):
        return bool(left < right)
    if isinstance(op, ast.LtE):
        return bool(left <= right)
    if isinstance(op, ast.Gt):
        return bool(left > right)
    return bool(left >= right)
