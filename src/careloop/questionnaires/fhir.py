"""The questionnaire engine on FHIR R4 Questionnaire JSON: parse and check a Questionnaire,
decide which items are enabled (enableWhen), check and convert answers, and write the
QuestionnaireResponse ``item`` tree. Pure Python: no database.

Answers travel inside CareLoop as ``{linkId: [value, ...]}`` with plain values: ``bool``
(boolean), ``int`` (integer), ``float`` (decimal, quantity), ``str`` (string, text, a date as
``YYYY-MM-DD``, and the option ``code`` of a choice).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.utils.translation import gettext as _

from careloop.questionnaires import translations

ORDINAL = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
)
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
# Items computed by the form filler (totals): never asked, never required of the patient.
CALCULATED = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression",
    "http://hl7.org/fhir/StructureDefinition/cqf-expression",
)

TYPES = (
    "group",
    "display",
    "boolean",
    "decimal",
    "integer",
    "date",
    "string",
    "text",
    "choice",
    "quantity",
)
ANSWERED = ("boolean", "decimal", "integer", "date", "string", "text", "choice", "quantity")
OPERATORS = ("exists", "=", "!=", ">", "<", ">=", "<=")
STATUSES = ("draft", "active", "retired", "unknown")
_ANSWER_KEYS = (
    "answerBoolean",
    "answerDecimal",
    "answerInteger",
    "answerDate",
    "answerString",
    "answerCoding",
    "answerQuantity",
)
_LINK_ID = re.compile(r"^[^\s].{0,254}$", re.S)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Value = bool | int | float | str
Answers = dict[str, list[Value]]


class InvalidResource(ValueError):
    """The resource is not a Questionnaire this engine can run; ``errors`` by element path."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{p}: {', '.join(m)}" for p, m in self.errors.items()))


@dataclass(frozen=True)
class Option:
    code: str
    system: str
    display: str
    element: Mapping[str, Any]  # the valueCoding (for its translations)
    weight: float | None

    def label(self, language: str, base: str) -> str:
        return translations.text(self.element, "display", language, base) or self.code


@dataclass(frozen=True)
class Condition:
    question: str
    operator: str
    kind: str  # "boolean" | "number" | "date" | "string" | "coding"
    answer: Any  # bool, float, str, or (system, code) for a coding


@dataclass
class Item:
    link_id: str
    type: str
    element: Mapping[str, Any]
    path: str
    prefix: str = ""
    codes: tuple[str, ...] = ()
    required: bool = False
    repeats: bool = False
    read_only: bool = False
    calculated: bool = False
    max_length: int | None = None
    min_value: float | str | None = None
    max_value: float | str | None = None
    unit: str = ""
    options: list[Option] = field(default_factory=list)
    enable_when: list[Condition] = field(default_factory=list)
    enable_behavior: str = "all"
    children: list[Item] = field(default_factory=list)
    parent: Item | None = None

    @property
    def asked(self) -> bool:
        """Whether the patient answers this item (not a group, display or computed total)."""
        return self.type in ANSWERED and not self.calculated and not self.read_only

    def text(self, language: str, base: str) -> str:
        return translations.text(self.element, "text", language, base)

    def option(self, code: str) -> Option | None:
        return next((o for o in self.options if o.code == code), None)


@dataclass
class Definition:
    resource: Mapping[str, Any]
    url: str
    version: str
    name: str
    title: str
    status: str
    language: str
    codes: tuple[str, ...]
    items: list[Item]
    by_id: dict[str, Item]

    def walk(self) -> Iterator[Item]:
        def rec(items: Sequence[Item]) -> Iterator[Item]:
            for item in items:
                yield item
                yield from rec(item.children)

        return rec(self.items)

    def title_in(self, language: str) -> str:
        return translations.text(self.resource, "title", language, self.language) or self.title


# --- parsing ----------------------------------------------------------------------------------


def _ext(element: Mapping[str, Any], urls: Sequence[str]) -> Mapping[str, Any] | None:
    for ext in element.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") in urls:
            return ext
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _codes(element: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    for coding in element.get("code") or []:
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
            found.append(coding["code"])
    return tuple(found)


class _Parser:
    def __init__(self, resource: Mapping[str, Any], value_sets: Mapping[str, Any]) -> None:
        self.resource = resource
        self.errors: dict[str, list[str]] = {}
        self.by_id: dict[str, Item] = {}
        self.value_sets: dict[str, Mapping[str, Any]] = dict(value_sets)
        for contained in resource.get("contained") or []:
            if isinstance(contained, Mapping) and contained.get("resourceType") == "ValueSet":
                if isinstance(contained.get("id"), str):
                    self.value_sets[f"#{contained['id']}"] = contained
                if isinstance(contained.get("url"), str):
                    self.value_sets[contained["url"]] = contained

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def items(self, raw: Any, path: str, parent: Item | None) -> list[Item]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(path, _("must be a list of items"))
            return []
        return [
            found
            for i, element in enumerate(raw)
            if (found := self.item(element, f"{path}[{i}]", parent)) is not None
        ]

    def item(self, element: Any, path: str, parent: Item | None) -> Item | None:
        if not isinstance(element, Mapping):
            self.error(path, _("must be an object"))
            return None
        link_id = element.get("linkId")
        if not isinstance(link_id, str) or not _LINK_ID.match(link_id):
            self.error(f"{path}.linkId", _("is required (text, at most 255 characters)"))
            return None
        if link_id in self.by_id:
            self.error(f"{path}.linkId", _("“%(id)s” is used twice") % {"id": link_id})
        kind = element.get("type")
        if kind not in TYPES:
            self.error(
                f"{path}.type",
                _("“%(type)s” is not supported (supported: %(types)s)")
                % {"type": kind, "types": ", ".join(TYPES)},
            )
            return None
        text = element.get("text")
        if text is not None and not isinstance(text, str):
            self.error(f"{path}.text", _("must be text"))
        item = Item(
            link_id=link_id,
            type=kind,
            element=element,
            path=path,
            prefix=str(element.get("prefix") or ""),
            codes=_codes(element),
            required=element.get("required") is True,
            repeats=element.get("repeats") is True,
            read_only=element.get("readOnly") is True,
            calculated=_ext(element, CALCULATED) is not None,
            parent=parent,
        )
        for flag in ("required", "repeats", "readOnly"):
            if flag in element and not isinstance(element[flag], bool):
                self.error(f"{path}.{flag}", _("must be true or false"))
        if item.repeats and kind != "choice" and kind != "group":
            self.error(f"{path}.repeats", _("repeating answers are supported for choice only"))
        if kind == "group" and item.repeats:
            self.error(f"{path}.repeats", _("repeating groups are not supported"))
        self.by_id[link_id] = item
        self.limits(item, element, path)
        if kind == "choice":
            item.options = self.options(element, path)
        elif element.get("answerOption") or element.get("answerValueSet"):
            self.error(f"{path}.answerOption", _("only choice items take answer options"))
        if kind in ("group", "display") and element.get("required"):
            if kind == "display":
                self.error(f"{path}.required", _("a display item cannot be required"))
        item.children = self.items(element.get("item"), f"{path}.item", item)
        if kind == "display" and item.children:
            self.error(f"{path}.item", _("a display item cannot contain items"))
        if kind in ANSWERED and item.children:
            self.error(f"{path}.item", _("items nested under questions are not supported"))
        return item

    def limits(self, item: Item, element: Mapping[str, Any], path: str) -> None:
        max_length = element.get("maxLength")
        if max_length is not None:
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
                self.error(f"{path}.maxLength", _("must be a positive whole number"))
            elif item.type not in ("string", "text"):
                self.error(f"{path}.maxLength", _("applies to string and text items only"))
            else:
                item.max_length = max_length
        for url, attr in ((MIN_VALUE, "min_value"), (MAX_VALUE, "max_value")):
            ext = _ext(element, (url,))
            if ext is None:
                continue
            if item.type in ("integer", "decimal", "quantity"):
                raw = ext.get("valueInteger", ext.get("valueDecimal"))
                if raw is None and isinstance(ext.get("valueQuantity"), Mapping):
                    raw = ext["valueQuantity"].get("value")
                number = _number(raw)
                if number is None:
                    self.error(f"{path}.extension", _("%(url)s needs a number") % {"url": url})
                else:
                    setattr(item, attr, number)
            elif item.type == "date":
                raw = ext.get("valueDate")
                if not isinstance(raw, str) or not _DATE.match(raw):
                    self.error(f"{path}.extension", _("%(url)s needs a date") % {"url": url})
                else:
                    setattr(item, attr, raw)
        if (
            isinstance(item.min_value, float)
            and isinstance(item.max_value, float)
            and item.min_value > item.max_value
        ):
            self.error(f"{path}.extension", _("the minimum is above the maximum"))
        unit = _ext(element, (UNIT,))
        if unit is not None and isinstance(unit.get("valueCoding"), Mapping):
            coding = unit["valueCoding"]
            item.unit = str(coding.get("display") or coding.get("code") or "")

    def options(self, element: Mapping[str, Any], path: str) -> list[Option]:
        found: list[Option] = []
        raw = element.get("answerOption")
        if raw is not None:
            if not isinstance(raw, list) or not raw:
                self.error(f"{path}.answerOption", _("must be a non-empty list"))
                return []
            for i, option in enumerate(raw):
                opath = f"{path}.answerOption[{i}]"
                coding = option.get("valueCoding") if isinstance(option, Mapping) else None
                if not isinstance(coding, Mapping) or not isinstance(coding.get("code"), str):
                    self.error(opath, _("needs a valueCoding with a code"))
                    continue
                weight_ext = _ext(option, ORDINAL) or _ext(coding, ORDINAL)
                weight = None
                if weight_ext is not None:
                    weight = _number(weight_ext.get("valueDecimal", weight_ext.get("valueInteger")))
                    if weight is None:
                        self.error(f"{opath}.extension", _("the score must be a number"))
                found.append(self.option(coding, weight))
        elif isinstance(element.get("answerValueSet"), str):
            url = element["answerValueSet"]
            value_set = self.value_sets.get(url)
            if value_set is None:
                self.error(
                    f"{path}.answerValueSet",
                    _("value set “%(url)s” is unknown: include it (contained or in a Bundle)")
                    % {"url": url},
                )
                return []
            for include in (value_set.get("compose") or {}).get("include") or []:
                system = include.get("system", "")
                for concept in include.get("concept") or []:
                    ext = _ext(concept, ORDINAL)
                    weight = None if ext is None else _number(ext.get("valueDecimal"))
                    coding = {**concept, "system": system}
                    for designation in concept.get("designation") or []:
                        lang = designation.get("language")
                        if isinstance(lang, str) and isinstance(designation.get("value"), str):
                            coding.setdefault("_display", {"extension": []})["extension"].append(
                                {
                                    "url": translations.TRANSLATION,
                                    "extension": [
                                        {"url": "lang", "valueCode": lang},
                                        {"url": "content", "valueString": designation["value"]},
                                    ],
                                }
                            )
                    found.append(self.option(coding, weight))
            if not found:
                self.error(f"{path}.answerValueSet", _("the value set lists no concepts"))
        else:
            self.error(f"{path}.answerOption", _("a choice item needs answer options"))
        codes = [o.code for o in found]
        if len(set(codes)) != len(codes):
            self.error(f"{path}.answerOption", _("an option code is used twice"))
        return found

    def option(self, coding: Mapping[str, Any], weight: float | None) -> Option:
        return Option(
            code=coding["code"],
            system=str(coding.get("system") or ""),
            display=str(coding.get("display") or coding["code"]),
            element=coding,
            weight=weight,
        )

    def conditions(self, item: Item) -> None:
        raw = item.element.get("enableWhen")
        behavior = item.element.get("enableBehavior")
        if raw is None:
            if behavior is not None:
                self.error(f"{item.path}.enableBehavior", _("only allowed with enableWhen"))
            return
        if not isinstance(raw, list) or not raw:
            self.error(f"{item.path}.enableWhen", _("must be a non-empty list"))
            return
        if len(raw) > 1 and behavior not in ("all", "any"):
            self.error(f"{item.path}.enableBehavior", _("must be “all” or “any”"))
        item.enable_behavior = behavior if behavior in ("all", "any") else "all"
        for i, cond in enumerate(raw):
            cpath = f"{item.path}.enableWhen[{i}]"
            if not isinstance(cond, Mapping):
                self.error(cpath, _("must be an object"))
                continue
            question = cond.get("question")
            target = self.by_id.get(question) if isinstance(question, str) else None
            if target is None:
                self.error(f"{cpath}.question", _("“%(id)s” is not an item") % {"id": question})
                continue
            if target is item:
                self.error(f"{cpath}.question", _("an item cannot depend on itself"))
                continue
            operator = cond.get("operator")
            if operator not in OPERATORS:
                self.error(
                    f"{cpath}.operator",
                    _("must be one of %(ops)s") % {"ops": ", ".join(OPERATORS)},
                )
                continue
            keys = [k for k in _ANSWER_KEYS if k in cond]
            if len(keys) != 1:
                self.error(
                    cpath,
                    _(
                        "needs exactly one answer[x] (boolean, decimal, integer, "
                        "date, string, coding or quantity)"
                    ),
                )
                continue
            key = keys[0]
            answer = cond[key]
            parsed = self.condition_answer(key, answer, operator, target, cpath)
            if parsed is not None:
                item.enable_when.append(Condition(str(question), operator, parsed[0], parsed[1]))

    def condition_answer(
        self, key: str, answer: Any, operator: str, target: Item, path: str
    ) -> tuple[str, Any] | None:
        if operator == "exists":
            if key != "answerBoolean" or not isinstance(answer, bool):
                self.error(path, _("“exists” takes answerBoolean"))
                return None
            return "boolean", answer
        if key == "answerBoolean":
            if not isinstance(answer, bool) or operator not in ("=", "!="):
                self.error(path, _("answerBoolean needs true/false with = or !="))
                return None
            return "boolean", answer
        if key in ("answerDecimal", "answerInteger", "answerQuantity"):
            raw = answer.get("value") if isinstance(answer, Mapping) else answer
            number = _number(raw)
            if number is None:
                self.error(f"{path}.{key}", _("must be a number"))
                return None
            return "number", number
        if key == "answerDate":
            if not isinstance(answer, str) or not _DATE.match(answer):
                self.error(f"{path}.{key}", _("must be a date (YYYY-MM-DD)"))
                return None
            return "date", answer
        if key == "answerString":
            if not isinstance(answer, str):
                self.error(f"{path}.{key}", _("must be text"))
                return None
            return "string", answer
        if not isinstance(answer, Mapping) or not isinstance(answer.get("code"), str):
            self.error(f"{path}.{key}", _("needs a code"))
            return None
        if operator not in ("=", "!="):
            self.error(f"{path}.operator", _("codes compare with = or != only"))
            return None
        if target.type == "choice" and target.option(answer["code"]) is None:
            self.error(
                f"{path}.{key}",
                _("“%(code)s” is not an option of %(id)s")
                % {"code": answer["code"], "id": target.link_id},
            )
        return "coding", (str(answer.get("system") or ""), answer["code"])


def parse(resource: Any, value_sets: Mapping[str, Any] | None = None) -> Definition:
    """Check a FHIR R4 Questionnaire; raise InvalidResource with every problem by path."""
    if not isinstance(resource, Mapping):
        raise InvalidResource({"$": [_("must be a JSON object")]})
    parser = _Parser(resource, value_sets or {})
    if resource.get("resourceType") != "Questionnaire":
        parser.error("resourceType", _("must be “Questionnaire”"))
    status = resource.get("status")
    if status not in STATUSES:
        parser.error("status", _("must be one of %(s)s") % {"s": ", ".join(STATUSES)})
    for key in ("url", "version", "name", "title", "language"):
        if key in resource and not isinstance(resource[key], str):
            parser.error(key, _("must be text"))
    if not (resource.get("title") or resource.get("name")):
        parser.error("title", _("a title (or name) is required"))
    items = parser.items(resource.get("item"), "item", None)
    if not items and "item" not in parser.errors:
        parser.error("item", _("the questionnaire has no items"))
    for item in list(parser.by_id.values()):
        parser.conditions(item)
    if not parser.errors and not any(i.asked for i in parser.by_id.values()):
        parser.error("item", _("the questionnaire asks no questions"))
    if parser.errors:
        raise InvalidResource(parser.errors)
    return Definition(
        resource=resource,
        url=str(resource.get("url") or ""),
        version=str(resource.get("version") or ""),
        name=str(resource.get("name") or ""),
        title=str(resource.get("title") or resource.get("name") or ""),
        status=str(status),
        language=str(resource.get("language") or ""),
        codes=_codes(resource),
        items=items,
        by_id=parser.by_id,
    )


# --- enableWhen -------------------------------------------------------------------------------


def _compare(cond: Condition, value: Value, item: Item) -> bool:
    op = cond.operator
    if cond.kind == "coding":
        system, code = cond.answer
        if not isinstance(value, str):
            return False
        option = item.option(value)
        same = value == code and (
            not system or option is None or not option.system or option.system == system
        )
        return same if op == "=" else not same
    if cond.kind == "boolean":
        if not isinstance(value, bool):
            return False
        return (value == cond.answer) if op == "=" else (value != cond.answer)
    left: Any
    right: Any
    if cond.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        left, right = float(value), float(cond.answer)
    else:
        if not isinstance(value, str):
            return False
        left, right = value, cond.answer
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == ">":
        return bool(left > right)
    if op == "<":
        return bool(left < right)
    if op == ">=":
        return bool(left >= right)
    return bool(left <= right)


def _holds(cond: Condition, answers: Answers, item: Item) -> bool:
    values = answers.get(cond.question) or []
    if cond.operator == "exists":
        return bool(values) == cond.answer
    if cond.operator == "!=":
        # True when no answer equals the given one (no answer at all included).
        return all(_compare(cond, v, item) for v in values)
    return any(_compare(cond, v, item) for v in values)


def _enabled_once(definition: Definition, answers: Answers) -> set[str]:
    enabled: set[str] = set()
    stack = list(reversed(definition.items))
    while stack:
        item = stack.pop()
        if item.enable_when:
            results = [_holds(c, answers, definition.by_id[c.question]) for c in item.enable_when]
            if not (all(results) if item.enable_behavior == "all" else any(results)):
                continue
        enabled.add(item.link_id)
        stack.extend(reversed(item.children))
    return enabled


def enabled_items(definition: Definition, answers: Answers) -> set[str]:
    """linkIds of the enabled items. A disabled item's answers count as absent for the
    conditions of others, so this settles in at most as many rounds as there are items."""
    current = {k: v for k, v in answers.items() if v}
    enabled: set[str] = set()
    for _round in range(len(definition.by_id) + 1):
        enabled = _enabled_once(definition, current)
        settled = {k: v for k, v in current.items() if k in enabled}
        if settled == current:
            break
        current = settled
    return enabled


# --- answers ----------------------------------------------------------------------------------


def parse_input(item: Item, raw: Sequence[str]) -> tuple[list[Value], str]:
    """Form values for one item → (answers, error message or "")."""
    texts = [r.strip() if item.type != "text" else r.replace("\r\n", "\n").strip() for r in raw]
    texts = [t for t in texts if t != ""]
    if not texts:
        return [], ""
    if len(texts) > 1 and not (item.type == "choice" and item.repeats):
        return [], _("Choose one answer only.")
    values: list[Value] = []
    for t in texts:
        value, error = _one(item, t)
        if error or value is None:
            return [], error
        values.append(value)
    return values, ""


def _one(item: Item, text: str) -> tuple[Value | None, str]:
    kind = item.type
    if kind == "boolean":
        if text in ("true", "false"):
            return text == "true", ""
        return None, _("Answer yes or no.")
    if kind == "choice":
        if item.option(text) is None:
            return None, _("Choose one of the options.")
        return text, ""
    if kind in ("string", "text"):
        if kind == "string" and "\n" in text:
            return None, _("Enter a single line.")
        if item.max_length is not None and len(text) > item.max_length:
            return None, _("Use at most %(n)d characters.") % {"n": item.max_length}
        return text, ""
    if kind == "date":
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None, _("Enter a date as YYYY-MM-DD.")
        iso = day.isoformat()
        if isinstance(item.min_value, str) and iso < item.min_value:
            return None, _("Enter a date on or after %(d)s.") % {"d": item.min_value}
        if isinstance(item.max_value, str) and iso > item.max_value:
            return None, _("Enter a date on or before %(d)s.") % {"d": item.max_value}
        return iso, ""
    number: float
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        if kind == "integer":
            return None, _("Enter a whole number.")
        return None, _("Enter a number.")
    if kind == "integer" and number != int(number):
        return None, _("Enter a whole number.")
    low, high = item.min_value, item.max_value
    if isinstance(low, float) and isinstance(high, float) and not low <= number <= high:
        return None, _("Enter a number from %(min)s to %(max)s.") % {
            "min": _fmt(low),
            "max": _fmt(high),
        }
    if isinstance(low, float) and number < low:
        return None, _("Enter a number of at least %(min)s.") % {"min": _fmt(low)}
    if isinstance(high, float) and number > high:
        return None, _("Enter a number of at most %(max)s.") % {"max": _fmt(high)}
    if kind == "integer":
        return int(number), ""
    return number, ""


def _fmt(number: float) -> str:
    return str(int(number)) if number == int(number) else f"{number:g}"


def missing_required(definition: Definition, answers: Answers) -> dict[str, str]:
    """Required questions that are enabled and unanswered: {linkId: message}."""
    enabled = enabled_items(definition, answers)
    return {
        item.link_id: _("This question needs an answer.")
        for item in definition.walk()
        if item.asked
        and item.required
        and item.link_id in enabled
        and not answers.get(item.link_id)
    }


def check_answers(
    definition: Definition, answers: Mapping[str, Any]
) -> tuple[Answers, dict[str, str]]:
    """Stored or API answers (plain values) re-checked against the items: (clean, errors)."""
    clean: Answers = {}
    errors: dict[str, str] = {}
    for link_id, values in answers.items():
        item = definition.by_id.get(link_id)
        if item is None or not item.asked:
            errors[str(link_id)] = _("This is not a question of the questionnaire.")
            continue
        raw = values if isinstance(values, list) else [values]
        texts = []
        for v in raw:
            if isinstance(v, bool):
                texts.append("true" if v else "false")
            elif isinstance(v, int | float | str):
                texts.append(str(v))
            else:
                texts.append("\x00")
        parsed, error = parse_input(item, texts)
        if error:
            errors[item.link_id] = error
        elif parsed:
            clean[item.link_id] = parsed
    return clean, errors


def to_response_items(definition: Definition, answers: Answers) -> list[dict[str, Any]]:
    """QuestionnaireResponse.item for the answers of enabled items, nested like the
    questionnaire (groups kept when something under them is answered)."""
    enabled = enabled_items(definition, answers)

    def rec(items: Sequence[Item]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in items:
            if item.link_id not in enabled:
                continue
            entry: dict[str, Any] = {"linkId": item.link_id}
            text = item.element.get("text")
            if isinstance(text, str):
                entry["text"] = text
            if item.type == "group":
                children = rec(item.children)
                if children:
                    entry["item"] = children
                    out.append(entry)
                continue
            values = answers.get(item.link_id) or []
            if not item.asked or not values:
                continue
            entry["answer"] = [_fhir_value(item, v) for v in values]
            out.append(entry)
        return out

    return rec(definition.items)


def _fhir_value(item: Item, value: Value) -> dict[str, Any]:
    kind = item.type
    if kind == "boolean":
        return {"valueBoolean": value}
    if kind == "integer":
        return {"valueInteger": value}
    if kind == "decimal":
        return {"valueDecimal": value}
    if kind == "quantity":
        quantity: dict[str, Any] = {"value": value}
        if item.unit:
            quantity["unit"] = item.unit
        return {"valueQuantity": quantity}
    if kind == "date":
        return {"valueDate": value}
    if kind == "choice":
        option = item.option(str(value))
        coding: dict[str, Any] = {"code": value}
        if option is not None:
            if option.system:
                coding["system"] = option.system
            coding["display"] = option.display
        return {"valueCoding": coding}
    return {"valueString": value}


def from_response_items(definition: Definition, items: Any) -> Answers:
    """Answers from a QuestionnaireResponse.item tree (unknown linkIds are ignored)."""
    answers: Answers = {}

    def rec(entries: Any) -> None:
        if not isinstance(entries, list):
            return
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            item = definition.by_id.get(str(entry.get("linkId")))
            if item is not None:
                for answer in entry.get("answer") or []:
                    value = _plain(answer)
                    if value is not None:
                        answers.setdefault(item.link_id, []).append(value)
                    rec(answer.get("item") if isinstance(answer, Mapping) else None)
            rec(entry.get("item"))

    rec(items)
    return answers


def _plain(answer: Any) -> Value | None:
    if not isinstance(answer, Mapping):
        return None
    for key in ("valueBoolean", "valueInteger", "valueDecimal", "valueDate", "valueString"):
        if key in answer:
            value = answer[key]
            if isinstance(value, bool | int | float | str):
                return value
    if isinstance(answer.get("valueCoding"), Mapping):
        code = answer["valueCoding"].get("code")
        return code if isinstance(code, str) else None
    if isinstance(answer.get("valueQuantity"), Mapping):
        number = _number(answer["valueQuantity"].get("value"))
        return number
    return None


QUESTIONS_PER_SCREEN = 5


def pages(definition: Definition, one_question: bool) -> list[list[Item]]:
    """The answer form split into screens: each top-level group on its own, loose top-level
    items by runs of at most QUESTIONS_PER_SCREEN questions (a display item goes with the
    questions after it); in elder mode one question (or display) per screen."""
    if one_question:
        return [[item] for item in definition.walk() if item.asked or item.type == "display"]
    result: list[list[Item]] = []
    loose: list[Item] = []

    def flush() -> None:
        if loose:
            result.append(list(loose))
            loose.clear()

    for item in definition.items:
        if item.type == "group":
            flush()
            result.append([item])
            continue
        if not (item.asked or item.type == "display"):
            continue
        if item.asked and sum(i.asked for i in loose) >= QUESTIONS_PER_SCREEN:
            flush()
        loose.append(item)
    flush()
    return result
