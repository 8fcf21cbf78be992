"""Rule definitions: read them (TOML), check every field, normalise them into a `Spec`.

A definition is a plain mapping, the same whether it comes from a TOML file or from an admin-
edited row. Everything is checked here, once, so the engine's hot path trusts what it gets;
every refusal is a `RuleError` naming the rule and the field.
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from careloop.rules import expr
from careloop.rules.events import EVENT_KINDS

DEFAULT_RULES = Path(__file__).parent / "data" / "default.toml"

KINDS = (
    "threshold",
    "consecutive",
    "absence",
    "trend",
    "count_window",
    "non_adherence",
    "adverse_reaction",
    "questionnaire",
    "public_health",
)
SEVERITIES = ("low", "moderate", "high", "critical")
PRIORITIES = ("routine", "urgent", "asap", "stat")  # FHIR R4 request-priority value set
ROUTES = ("doctor", "nurse", "care_team", "on_call", "department_head")
ACTIONS = ("alert", "task")
STAGES = ("followup", "referral")

CODE_RE = re.compile(r"^[a-z0-9-]{1,64}$")
PARAM_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
DURATION_RE = re.compile(r"^(\d{1,6})\s*([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = 400 * 86400

# Fields every kind accepts, then what each kind adds ("*" marks required).
COMMON_FIELDS = {
    "code",
    "kind",
    "enabled",
    "event",
    "severity",
    "priority",
    "route",
    "sla",
    "action",
    "text",
    "description",
    "sources",
}
# Where an event came from (observations: patient, staff, device, his); events without a
# source (doses, reports, questionnaires) reach only rules that do not restrict sources.
SOURCES = ("patient", "staff", "device", "his")
STREAMING_FIELDS = {"when", "params", "dedupe"}
KIND_FIELDS: dict[str, set[str]] = {
    "threshold": {"condition*", "resolve"},
    "consecutive": {"condition*", "resolve", "n*", "period", "night_start", "night_end"},
    "absence": {"days*"},
    "trend": {"rise*", "field", "window_days", "min_count", "condition", "resolve"},
    "count_window": {"count*", "window*", "condition", "resolve"},
    "non_adherence": {"count", "window", "contexts", "resolve"},
    "adverse_reaction": {"urgent_at", "urgent_priority", "urgent_severity", "condition", "resolve"},
    "questionnaire": {"instrument*", "condition*", "resolve"},
    "public_health": {
        "uncontrolled*",
        "referral_severity",
        "referral_priority",
        "referral_route",
        "referral_sla",
        "referral_text",
        "referral_gap",
    },
}
# Kinds that always listen to one event kind (`event` may be left out).
FIXED_EVENT = {"non_adherence": "dose", "adverse_reaction": "adr", "questionnaire": "questionnaire"}

# Values each kind puts into Fire.values (text placeholders may use these and the params).
EVENT_VALUES = {"value", "value2", "context", "hour"}
KIND_VALUES: dict[str, set[str]] = {
    "threshold": EVENT_VALUES,
    "consecutive": EVENT_VALUES | {"count", "days"},
    "absence": {"days", "elapsed"},
    "trend": EVENT_VALUES | {"mean", "previous", "change", "count", "days"},
    "count_window": EVENT_VALUES | {"count", "hours", "days"},
    "non_adherence": EVENT_VALUES | {"count", "days"},
    "adverse_reaction": EVENT_VALUES,
    "questionnaire": EVENT_VALUES | {"instrument"},
    "public_health": EVENT_VALUES | {"stage", "count"},
}


class RuleError(ValueError):
    """A rule definition is invalid: which rule, which field, and what is wrong."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(code, field, message)
        self.code = code
        self.field = field
        self.message = message

    def __str__(self) -> str:
        where = f"rule '{self.code}'" if self.code else "rule file"
        return f"{where}, field '{self.field}': {self.message}"


@dataclass(frozen=True)
class Stage:
    """How a fire of one stage is delivered (public_health rules have two)."""

    severity: str
    priority: str
    route: str
    sla: int
    action: str
    text: Mapping[str, str]


@dataclass(frozen=True)
class Spec:
    """A checked, normalised rule definition."""

    code: str
    kind: str
    enabled: bool
    events: tuple[str, ...]
    main: Stage
    dedupe: int
    params: Mapping[str, float]
    # field name ("condition", "resolve", "when") -> Python fragment from expr.translate
    exprs: Mapping[str, str]
    options: Mapping[str, Any]
    referral: Stage | None
    definition: Mapping[str, Any]
    description: str = ""
    values: frozenset[str] = field(default_factory=frozenset)
    sources: frozenset[str] | None = None  # None: events from anywhere


def load_file(path: str | Path) -> list[dict[str, Any]]:
    """Read the `[[rules]]` tables of a TOML file (checked later, by RuleSet.compile)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError("", "file", f"{path}: not valid TOML: {exc}") from None
    rules = data.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise RuleError("", "rules", f"{path}: 'rules' must be an array of tables ([[rules]])")
    unknown = set(data) - {"rules"}
    if unknown:
        raise RuleError("", sorted(unknown)[0], f"{path}: only [[rules]] tables are allowed")
    return rules


def parse_duration(value: object) -> int:
    """'15m' '4h' '2d' '1w' '30s' (or whole seconds as a number) -> seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := DURATION_RE.match(value.strip().lower())):
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("must be a duration like '15m', '4h', '2d' or '1w'")
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError("must be between 0 and 400 days")
    return seconds


def check(definition: Mapping[str, Any]) -> Spec:
    """Check one definition and return its normalised Spec; raise RuleError."""
    if not isinstance(definition, Mapping):
        raise RuleError("", "rules", "each rule must be a table/mapping")
    raw_code = definition.get("code")
    if not isinstance(raw_code, str) or not CODE_RE.match(raw_code):
        raise RuleError(
            str(raw_code or ""), "code", "required; 1-64 of lower-case letters, digits and '-'"
        )
    return _Checker(raw_code, definition).spec()


class _Checker:
    def __init__(self, code: str, d: Mapping[str, Any]) -> None:
        self.code = code
        self.d = d

    def fail(self, field: str, message: str) -> RuleError:
        return RuleError(self.code, field, message)

    def spec(self) -> Spec:
        d = self.d
        kind = d.get("kind")
        if kind not in KINDS:
            raise self.fail("kind", f"required; one of {', '.join(KINDS)}")
        required = {f.rstrip("*") for f in KIND_FIELDS[kind] if f.endswith("*")}
        allowed = COMMON_FIELDS | {f.rstrip("*") for f in KIND_FIELDS[kind]}
        if kind not in ("absence", "public_health"):
            allowed |= STREAMING_FIELDS
        elif kind == "public_health":
            allowed |= {"when", "params"}
        for name in d:
            if name not in allowed:
                raise self.fail(str(name), f"not a field of {kind} rules")
        for name in sorted(required):
            if name not in d:
                raise self.fail(name, f"required for {kind} rules")

        enabled = d.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.fail("enabled", "must be true or false")
        description = d.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be text")
        events = self.events(kind)
        sources = self.sources()
        params = self.params()
        aggregates = kind == "trend"
        exprs: dict[str, str] = {}
        for name in ("condition", "resolve", "when", "uncontrolled"):
            if name in d:
                try:
                    code, _names = expr.translate(d[name], params, aggregates=aggregates)
                except expr.ExprError as exc:
                    raise self.fail(name, str(exc)) from None
                # public_health's `uncontrolled` is its condition.
                exprs["condition" if name == "uncontrolled" else name] = code
        options = self.options(kind)
        values = frozenset(KIND_VALUES[kind] | set(params))

        default_action = "task" if kind == "public_health" else "alert"
        default_sla = "14d" if kind == "public_health" else "1d"
        main = Stage(
            severity=self.choice("severity", SEVERITIES, None),
            priority=self.choice("priority", PRIORITIES, "routine"),
            route=self.choice("route", ROUTES, "care_team"),
            sla=self.duration("sla", default_sla, positive=True),
            action=self.choice("action", ACTIONS, default_action),
            text=self.text("text", values),
        )
        referral = None
        if kind == "public_health":
            referral = Stage(
                severity=self.choice("referral_severity", SEVERITIES, main.severity),
                priority=self.choice("referral_priority", PRIORITIES, main.priority),
                route=self.choice("referral_route", ROUTES, main.route),
                sla=self.duration("referral_sla", main.sla, positive=True),
                action=main.action,
                text=self.text("referral_text", values) if "referral_text" in d else main.text,
            )
        return Spec(
            code=self.code,
            kind=kind,
            enabled=enabled,
            events=events,
            main=main,
            dedupe=self.duration("dedupe", 0),
            params=params,
            exprs=exprs,
            options=options,
            referral=referral,
            definition=dict(d),
            description=description,
            values=values,
            sources=sources,
        )

    # single fields ------------------------------------------------------------------
    def sources(self) -> frozenset[str] | None:
        raw = self.d.get("sources")
        if raw is None:
            return None
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise self.fail("sources", f"must be a list of sources: {', '.join(SOURCES)}")
        unknown = sorted(set(raw) - set(SOURCES))
        if unknown:
            raise self.fail(
                "sources", f"unknown source {unknown[0]!r}; known: {', '.join(SOURCES)}"
            )
        return frozenset(raw)

    def events(self, kind: str) -> tuple[str, ...]:
        raw = self.d.get("event", FIXED_EVENT.get(kind))
        if raw is None:
            raise self.fail("event", "required: the event kind(s) the rule listens to")
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not items:
            raise self.fail("event", "must be an event kind or a non-empty list of them")
        for item in items:
            if item not in EVENT_KINDS:
                raise self.fail(
                    "event", f"unknown event kind {item!r}; one of {', '.join(EVENT_KINDS)}"
                )
        if len(set(items)) != len(items):
            raise self.fail("event", "lists an event kind twice")
        if kind in FIXED_EVENT and list(items) != [FIXED_EVENT[kind]]:
            raise self.fail("event", f"{kind} rules listen to '{FIXED_EVENT[kind]}' events only")
        if kind == "absence" and len(items) != 1:
            raise self.fail("event", "absence rules watch exactly one event kind")
        return tuple(items)

    def params(self) -> dict[str, float]:
        raw = self.d.get("params", {})
        if not isinstance(raw, Mapping):
            raise self.fail("params", "must be a table of name = number")
        out: dict[str, float] = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not PARAM_RE.match(name) or name in expr.RESERVED:
                raise self.fail(
                    "params",
                    f"parameter name {name!r} must be lower-case letters, digits and '_' "
                    "and not a name of the expression language",
                )
            if not _is_number(value):
                raise self.fail("params", f"parameter '{name}' must be a finite number")
            out[name] = value
        return out

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None) -> str:
        value = self.d.get(name, default)
        if value is None:
            raise self.fail(name, f"required; one of {', '.join(allowed)}")
        if value not in allowed:
            raise self.fail(name, f"must be one of {', '.join(allowed)}, not {value!r}")
        return str(value)

    def duration(self, name: str, default: object, *, positive: bool = False) -> int:
        try:
            seconds = parse_duration(self.d.get(name, default))
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None
        if positive and seconds == 0:
            raise self.fail(name, "must be longer than zero")
        return seconds

    def integer(self, name: str, default: int | None, low: int, high: int) -> int:
        value = self.d.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(name, f"must be a whole number from {low} to {high}")
        return value

    def number(self, name: str, default: float | None) -> float:
        value = self.d.get(name, default)
        if not _is_number(value):
            raise self.fail(name, "must be a finite number")
        return float(value)  # type: ignore[arg-type]

    def text(self, name: str, values: frozenset[str]) -> dict[str, str]:
        raw = self.d.get(name)
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail(name, 'required: a table of language = text, e.g. {"zh-hans" = "..."}')
        out: dict[str, str] = {}
        for language, template in raw.items():
            where = f"{name}.{language}"
            if not isinstance(language, str) or not LANGUAGE_RE.match(language):
                raise self.fail(where, "language codes are lower-case, like 'zh-hans' or 'en'")
            if not isinstance(template, str) or not template.strip():
                raise self.fail(where, "must be non-empty text")
            try:
                pieces = list(string.Formatter().parse(template))
            except ValueError as exc:
                raise self.fail(where, f"bad placeholder: {exc}") from None
            for _literal, placeholder, spec, conversion in pieces:
                if placeholder is None:
                    continue
                if placeholder not in values:
                    raise self.fail(
                        where,
                        f"unknown placeholder {{{placeholder}}}; known: "
                        + ", ".join(sorted(values)),
                    )
                if conversion or (spec and not re.fullmatch(r"\.\d[f%]?|,", spec)):
                    raise self.fail(where, f"placeholder {{{placeholder}}}: format not allowed")
            out[language] = template
        return out

    # per kind -----------------------------------------------------------------------
    def options(self, kind: str) -> dict[str, Any]:
        d = self.d
        if kind == "consecutive":
            period = d.get("period", "days")
            if period not in ("days", "nights"):
                raise self.fail("period", "must be 'days' or 'nights'")
            night_start = self.integer("night_start", 22, 0, 23)
            night_end = self.integer("night_end", 6, 0, 23)
            if night_start == night_end:
                raise self.fail("night_end", "must differ from night_start")
            return {
                "n": self.integer("n", None, 1, 60),
                "period": period,
                "night_start": night_start,
                "night_end": night_end,
            }
        if kind == "absence":
            return {"days": self.integer("days", None, 1, 365)}
        if kind == "trend":
            rise = self.number("rise", None)
            if rise == 0:
                raise self.fail("rise", "must not be zero (negative watches for a fall)")
            field_name = d.get("field", "value")
            if field_name not in ("value", "value2"):
                raise self.fail("field", "must be 'value' or 'value2'")
            return {
                "rise": rise,
                "field": field_name,
                "window_days": self.integer("window_days", 7, 1, 60),
                "min_count": self.integer("min_count", 3, 1, 1000),
            }
        if kind in ("count_window", "non_adherence"):
            options: dict[str, Any] = {
                "count": self.integer("count", 3, 1, 1000),
                "window": self.duration("window", "7d", positive=True),
            }
            if kind == "non_adherence":
                contexts = d.get("contexts", ["skipped", "missed"])
                if (
                    not isinstance(contexts, list | tuple)
                    or not contexts
                    or not all(isinstance(c, str) and c for c in contexts)
                ):
                    raise self.fail("contexts", "must be a non-empty list of dose outcomes")
                options["contexts"] = tuple(contexts)
            return options
        if kind == "adverse_reaction":
            return {
                "urgent_at": self.number("urgent_at", 3),
                "urgent_priority": self.choice("urgent_priority", PRIORITIES, "asap"),
                "urgent_severity": self.choice(
                    "urgent_severity", SEVERITIES, self.choice("severity", SEVERITIES, None)
                ),
            }
        if kind == "questionnaire":
            instrument = d.get("instrument")
            if not isinstance(instrument, str) or not instrument:
                raise self.fail("instrument", "must be an instrument code, e.g. 'phq9'")
            return {"instrument": instrument}
        if kind == "public_health":
            return {"referral_gap": self.duration("referral_gap", 0)}
        return {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
