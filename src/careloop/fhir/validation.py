"""Validation of incoming FHIR R4 (4.0.1) JSON resources.

The structure of every R4 resource and data type (element names, cardinality, required
elements, choice groups ``value[x]``, the type of each element) is read from the models that
the ``fhirclient`` package generates from the R4 4.0.1 StructureDefinitions. Those models know a
primitive element only as a Python type (``str`` for code, id, uri, markdown...), so the exact
FHIR primitive type of each element is taken from the R4B models of ``fhir.resources`` where R4B
has the same element: for the resource types CareLoop supports, R4B kept every element name,
cardinality and required flag of R4 (docs/fhir.md, "Validation", has the comparison). Where an
element exists only in R4, its primitive is checked as the Python type says.

From those two sources a small table per type is compiled once (lazily, on first use) and a
plain walk over the JSON checks it: no model objects are built, which keeps validation cheap
enough to run on every POST. Everything wrong is reported, each issue naming the element as a
FHIRPath expression; nothing here raises on bad input.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from careloop.fhir.outcome import Issue

FHIR_VERSION = "4.0.1"

SUPPORTED_TYPES: list[str] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "CarePlan",
    "CareTeam",
    "Task",
    "Appointment",
    "Schedule",
    "Slot",
    "Questionnaire",
    "QuestionnaireResponse",
    "Communication",
    "Flag",
    "Consent",
    "Encounter",
    "Provenance",
    "AuditEvent",
    "Bundle",
    "Subscription",
]
_SUPPORTED = frozenset(SUPPORTED_TYPES)

# Deeper than any real resource; stops a hostile document from exhausting the stack.
MAX_DEPTH = 64

# --- primitive types (R4 datatypes page: the regular expression of each primitive) ----------

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"

_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?"),
    "dateTime": re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_TIME}{_ZONE})?)?)?"),
    "instant": re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_ZONE}"),
    "time": re.compile(_TIME),
    "code": re.compile(r"[^\s]+( [^\s]+)*"),
    "id": re.compile(r"[A-Za-z0-9\-\.]{1,64}"),
    "uri": re.compile(r"\S*"),
    "url": re.compile(r"\S*"),
    "canonical": re.compile(r"\S*"),
    "oid": re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"),
    "uuid": re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    # base64Binary: checked after removing whitespace (the spec's pattern backtracks badly).
    "base64Binary": re.compile(r"(?:[0-9a-zA-Z+/]{4})*(?:[0-9a-zA-Z+/]{2}==|[0-9a-zA-Z+/]{3}=)?"),
}
_WHITESPACE = re.compile(r"\s+")
_STRING_TYPES = frozenset(
    {"string", "markdown", "xhtml", "code", "id", "uri", "url", "canonical", "oid", "uuid"}
    | {"base64Binary", "date", "dateTime", "instant", "time"}
)
_INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_DATED = frozenset({"date", "dateTime", "instant"})

# fhirclient's Python types for primitives → FHIR primitive type when R4B says nothing better.
_FHIRCLIENT_PRIMITIVES = {
    "FHIRDate": "date",
    "FHIRDateTime": "dateTime",
    "FHIRInstant": "instant",
    "FHIRTime": "time",
}
# R4B annotation markers (fhir_core) → FHIR primitive type.
_R4B_MARKERS = {
    "String": "string",
    "Markdown": "markdown",
    "Xhtml": "xhtml",
    "Code": "code",
    "Id": "id",
    "Uri": "uri",
    "Url": "url",
    "Canonical": "canonical",
    "Oid": "oid",
    "Uuid": "uuid",
    "UuidVersion": "uuid",
    "Base64Binary": "base64Binary",
    "Integer": "integer",
    "PositiveInt": "positiveInt",
    "UnsignedInt": "unsignedInt",
    "Decimal": "decimal",
}


def _primitive_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not a valid JSON value of FHIR primitive ``kind`` (None if it is)."""
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            return f"must be a JSON string ({kind})"
        if not value:
            return f"must not be an empty string ({kind})"
        pattern = _PATTERNS.get(kind)
        if pattern is None:
            return None
        text = _WHITESPACE.sub("", value) if kind == "base64Binary" else value
        if pattern.fullmatch(text) is None:
            return f"{value[:40]!r} is not a valid {kind}"
        if kind in _DATED and len(value) >= 10:
            try:
                dt.date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
            except ValueError:
                return f"{value[:40]!r} is not a calendar date"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a JSON number (decimal)"
        return None if math.isfinite(value) else "must be a finite number (decimal)"
    # integer, positiveInt, unsignedInt
    if not isinstance(value, int) or isinstance(value, bool):
        return f"must be a JSON integer ({kind})"
    low = {"positiveInt": 1, "unsignedInt": 0}.get(kind, _INT_MIN)
    if value < low or value > _INT_MAX:
        return f"{value} is out of range for {kind}"
    return None


# A display item of a Questionnaire carries text only and is never answered, so nothing refers
# to its linkId; the official R4 example Questionnaire "qs1" omits it. Missing there, it is
# reported as a warning rather than refused.
_DISPLAY_ONLY = frozenset({("QuestionnaireItem", "linkId")})


# --- compiled structure ------------------------------------------------------------------


@dataclass(frozen=True)
class _Element:
    name: str
    many: bool
    primitive: str | None  # FHIR primitive type, or None for a complex type / resource
    target: Any  # fhirclient class of a complex type; None for primitives and resources
    is_resource: bool  # contained / Bundle.entry.resource: the type comes from resourceType
    choice: str | None  # choice group name (``value`` for ``value[x]``)


@dataclass
class _Structure:
    type_name: str
    elements: dict[str, _Element] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)  # element names or choice groups
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)


_structures: dict[Any, _Structure] = {}
_resource_classes: dict[str, Any] = {}

_ABSTRACT = frozenset({"Resource", "DomainResource"})


def _fhirclient(module: str) -> Any:
    return importlib.import_module(f"fhirclient.models.{module}")


def _r4b_primitives(cls: Any) -> dict[str, str]:
    """Exact primitive types of the R4B class matching fhirclient class ``cls`` (by JSON name)."""
    module = cls.__module__.rsplit(".", 1)[1]
    name = cls.__name__
    if name == "FHIRReference":
        module, name = "reference", "Reference"
    try:
        r4b = getattr(importlib.import_module(f"fhir.resources.R4B.{module}"), name, None)
    except ImportError:
        return {}
    if r4b is None:
        return {}
    found: dict[str, str] = {}
    for info in r4b.model_fields.values():
        for marker in _markers(info.annotation):
            if marker in _R4B_MARKERS:
                found[info.alias or ""] = _R4B_MARKERS[marker]
                break
    return found


def _markers(annotation: Any) -> list[str]:
    names = [type(m).__name__ for m in getattr(annotation, "__metadata__", ())]
    for arg in typing.get_args(annotation):
        names.extend(_markers(arg))
    return names


def _structure(cls: Any) -> _Structure:
    known = _structures.get(cls)
    if known is not None:
        return known
    resource_base = _fhirclient("resource").Resource
    exact = _r4b_primitives(cls)
    structure = _Structure(type_name=cls.__name__)
    props = cls.__new__(cls).elementProperties()
    for _name, jsname, typ, many, of_many, required in props:
        primitive: str | None = None
        target: Any = None
        is_resource = False
        if typ is bool:
            primitive = "boolean"
        elif typ is int:
            primitive = exact.get(jsname, "integer")
            primitive = primitive if primitive in _INTEGER_TYPES else "integer"
        elif typ is float:
            primitive = "decimal"
        elif typ is str:
            primitive = exact.get(jsname, "string")
            primitive = primitive if primitive in _STRING_TYPES else "string"
        elif typ.__name__ in _FHIRCLIENT_PRIMITIVES:
            primitive = _FHIRCLIENT_PRIMITIVES[typ.__name__]
        elif typ is resource_base:
            is_resource = True
        else:
            target = typ
        structure.elements[jsname] = _Element(jsname, many, primitive, target, is_resource, of_many)
        if of_many:
            structure.choices[of_many] = (*structure.choices.get(of_many, ()), jsname)
        if required:
            group = of_many or jsname
            if group not in structure.required:
                structure.required.append(group)
    _structures[cls] = structure
    return structure


def _resource_class(type_name: str) -> Any:
    """The fhirclient R4 class of a resource type, or None if R4 has no such resource."""
    if type_name in _resource_classes:
        return _resource_classes[type_name]
    cls = None
    plausible = type_name.isascii() and type_name.isalpha() and type_name[:1].isupper()
    if plausible and type_name not in _ABSTRACT:
        module = f"fhirclient.models.{type_name.lower()}"
        if importlib.util.find_spec(module) is not None:
            candidate = getattr(importlib.import_module(module), type_name, None)
            base = _fhirclient("resource").Resource
            if isinstance(candidate, type) and issubclass(candidate, base):
                if getattr(candidate, "resource_type", None) == type_name:
                    cls = candidate
    if cls is not None or len(_resource_classes) < 1000:  # unknown names: a bounded memory
        _resource_classes[type_name] = cls
    return cls


# --- the walk ------------------------------------------------------------------------------


class _Walk:
    __slots__ = ("issues",)

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: str, reason: str, code: str = "structure") -> None:
        if path:
            self.issues.append(Issue(f"{path}: {reason}", code, "error", (path,)))
        else:
            self.issues.append(Issue(f"The resource {reason}", code, "error", ()))

    def resource(self, data: Any, path: str, depth: int, allowed: frozenset[str] | None) -> None:
        if not isinstance(data, dict):
            self.add(path, "must be a JSON object holding a resource")
            return
        type_name = data.get("resourceType")
        if not isinstance(type_name, str) or not type_name:
            self.add(f"{path}.resourceType" if path else "resourceType", "is required", "required")
            return
        cls = _resource_class(type_name)
        if cls is None:
            where = f"{path}.resourceType" if path else "resourceType"
            self.add(where, f"{type_name!r} is not a FHIR R4 resource type", "not-supported")
            return
        if allowed is not None and type_name not in allowed:
            self.add("resourceType", f"{type_name} is not supported here", code="not-supported")
            return
        self.object(data, _structure(cls), path or type_name, depth, is_resource=True)

    def object(
        self,
        data: dict[str, Any],
        structure: _Structure,
        path: str,
        depth: int,
        *,
        is_resource: bool,
    ) -> None:
        if depth > MAX_DEPTH:
            self.add(path, "is nested too deeply")
            return
        elements = structure.elements
        if not data or (is_resource and len(data) == 1):
            self.add(path, "must not be empty")
        chosen: dict[str, str] | None = None  # choice group → the first element given for it
        for key, value in data.items():
            element = elements.get(key)
            if element is not None and element.choice is not None:
                chosen = chosen if chosen is not None else {}
                first = chosen.setdefault(element.choice, key)
                if first != key:
                    self.add(
                        f"{path}.{key}",
                        f"only one of {first}, {key} may be given ({element.choice}[x])",
                    )
            if element is None:
                if is_resource and key == "resourceType":
                    continue
                if key[:1] == "_" and self.primitive_extension(
                    key, value, data, structure, path, depth
                ):
                    continue
                self.unknown(key, structure, path)
                continue
            primitive = element.primitive
            if (
                primitive is not None
                and not element.many
                and value is not None
                and type(value) is not list
            ):
                # The common case, kept cheap: the path is only built for a problem.
                problem = _primitive_problem(primitive, value)
                if problem is not None:
                    self.add(f"{path}.{key}", problem, "value")
                continue
            where = f"{path}.{key}"
            if element.many:
                if not isinstance(value, list):
                    self.add(where, "must be a JSON array")
                    continue
                if not value:
                    self.add(where, "must not be an empty array")
                    continue
                companion = data.get("_" + key) if element.primitive else None
                for index, item in enumerate(value):
                    if item is None and isinstance(companion, list) and index < len(companion):
                        if companion[index] is not None:
                            continue  # the value is absent, its extensions carry the meaning
                    self.value(item, element, f"{where}[{index}]", depth)
            elif isinstance(value, list):
                self.add(where, "must be a single value, not an array")
            else:
                self.value(value, element, where, depth)
        rule = _RULES.get(structure.type_name)
        if rule is not None:
            rule(self, data, path)
        for required in structure.required:
            names = structure.choices.get(required, (required,))
            if not any(name in data or "_" + name in data for name in names):
                label = f"{required}[x]" if required in structure.choices else required
                where = f"{path}.{label}"
                tolerated = (structure.type_name, required) in _DISPLAY_ONLY
                if tolerated and data.get("type") == "display":
                    reason = f"{where}: is required (tolerated on a display item)"
                    self.issues.append(Issue(reason, "required", "warning", (where,)))
                    continue
                self.add(where, "is required", "required")

    def value(self, value: Any, element: _Element, where: str, depth: int) -> None:
        if value is None:
            self.add(where, "must not be null")
            return
        if element.primitive is not None:
            problem = _primitive_problem(element.primitive, value)
            if problem is not None:
                self.add(where, problem, "value")
            return
        if element.is_resource:
            self.resource(value, where, depth + 1, None)
            return
        if not isinstance(value, dict):
            self.add(where, "must be a JSON object")
            return
        self.object(value, _structure(element.target), where, depth + 1, is_resource=False)

    def primitive_extension(
        self,
        key: str,
        value: Any,
        data: dict[str, Any],
        structure: _Structure,
        path: str,
        depth: int,
    ) -> bool:
        """``_birthDate``: the id and extensions of a primitive. False if ``key`` is not one."""
        element = structure.elements.get(key[1:])
        if element is None or element.primitive is None:
            return False
        where = f"{path}.{key[1:]}"
        element_structure = _structure(_fhirclient("element").Element)
        if element.many:
            values = data.get(key[1:])
            if not isinstance(value, list) or not value:
                self.add(f"{path}.{key}", "must be a non-empty JSON array")
                return True
            if isinstance(values, list) and len(values) != len(value):
                self.add(f"{path}.{key}", f"must have as many items as {key[1:]}")
            for index, item in enumerate(value):
                if item is not None:
                    self.extension_object(item, element_structure, f"{where}[{index}]", depth)
            return True
        self.extension_object(value, element_structure, where, depth)
        return True

    def extension_object(self, value: Any, structure: _Structure, where: str, depth: int) -> None:
        if not isinstance(value, dict):
            self.add(where, "extensions of a primitive must be a JSON object")
            return
        self.object(value, structure, where, depth + 1, is_resource=False)

    def unknown(self, key: str, structure: _Structure, path: str) -> None:
        where = f"{path}.{key}"
        for group, names in structure.choices.items():
            suffix = key[len(group) :]
            if key.startswith(group) and suffix[:1].isupper():
                allowed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                self.add(where, f"{key} is not an allowed type for {group}[x] (allowed: {allowed})")
                return
        self.add(where, f"unknown element {key!r} (not in FHIR R4 {structure.type_name})")


# --- invariants the structure alone does not express (R4 constraint keys in brackets) --------

_REQUEST_ENTRIES = frozenset({"batch", "transaction", "history"})
_RESPONSE_ENTRIES = frozenset({"batch-response", "transaction-response", "history"})


def _bundle_rules(walk: _Walk, data: dict[str, Any], path: str) -> None:
    kind = data.get("type")
    entries = data.get("entry")
    if not isinstance(entries, list):
        return
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        where = f"{path}.entry[{index}]"
        if kind in _REQUEST_ENTRIES and "request" not in entry:
            walk.add(f"{where}.request", f"is required in a {kind} Bundle (bdl-3)", "required")
        elif kind not in _REQUEST_ENTRIES and "request" in entry:
            walk.add(f"{where}.request", f"is not allowed in a {kind} Bundle (bdl-3)")
        if kind in _RESPONSE_ENTRIES and "response" not in entry:
            walk.add(f"{where}.response", f"is required in a {kind} Bundle (bdl-4)", "required")
        elif kind not in _RESPONSE_ENTRIES and "response" in entry:
            walk.add(f"{where}.response", f"is not allowed in a {kind} Bundle (bdl-4)")
        if "search" in entry and kind != "searchset":
            walk.add(f"{where}.search", "is only allowed in a searchset Bundle (bdl-2)")
    if "total" in data and kind not in ("searchset", "history"):
        walk.add(f"{path}.total", "is only allowed in a searchset or history Bundle (bdl-1)")


def _extension_rules(walk: _Walk, data: dict[str, Any], path: str) -> None:
    has_value = any(key.startswith("value") for key in data)
    if has_value and "extension" in data:
        walk.add(path, "must have either extensions or a value[x], not both (ext-1)")


_RULES: dict[str, Any] = {"Bundle": _bundle_rules, "Extension": _extension_rules}


def errors(issues: list[Issue]) -> list[Issue]:
    """The issues that make a resource invalid (warnings left out)."""
    return [issue for issue in issues if issue.severity in ("error", "fatal")]


def validate(resource: Any, *, allowed_types: frozenset[str] | None = _SUPPORTED) -> list[Issue]:
    """Every problem with ``resource`` as FHIR R4 JSON; an empty list when it is valid.

    A resource with issues of severity ``warning`` only is valid (see ``errors``).

    ``allowed_types`` limits the top-level ``resourceType`` (the supported types by default; None
    accepts any R4 resource). Resources inside (``contained``, ``Bundle.entry.resource``) may be of
    any R4 type."""
    walk = _Walk()
    try:
        walk.resource(resource, "", 0, allowed_types)
    except RecursionError:
        walk.add("", "is nested too deeply")
    return walk.issues
