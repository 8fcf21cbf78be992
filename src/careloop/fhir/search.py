"""FHIR search: parameter values parsed into filters over a mapper's scoped queryset.

Repeated parameters are combined with AND, comma-separated values of one parameter with OR.
Dates compare at the precision given: ``date=2024-03`` is the whole of March 2024 in the
organisation's time zone unless the value carries an offset.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import Mapper, SearchParam

DEFAULT_COUNT = 20
MAX_COUNT = 200
# Result parameters and paging, handled here rather than by a type's own parameters.
CONTROL = frozenset({"_count", "_sort", "_include", "_offset", "_total", "_format", "_summary"})
PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge")
_DATE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})"
    r"(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(\.\d+)?)?(?P<z>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class DateRange:
    """The instants [start, end) a date value of some precision covers, and its prefix."""

    prefix: str
    start: dt.datetime
    end: dt.datetime

    def matches(self, value: dt.datetime) -> bool:
        """The same test as ``q()``, in Python (used by tests and in-memory searches)."""
        if self.prefix == "eq":
            return self.start <= value < self.end
        if self.prefix == "ne":
            return not self.start <= value < self.end
        if self.prefix == "lt":
            return value < self.start
        if self.prefix == "le":
            return value < self.end
        if self.prefix == "gt":
            return value >= self.end
        return value >= self.start  # ge

    def q(self, name: str, *, dates: bool = False) -> Q:
        """A filter on a datetime field (or a date field when ``dates``)."""
        start: Any = self.start.date() if dates else self.start
        end: Any = self.end.date() if dates else self.end
        if dates and self.end.time() != dt.time(0) and self.end.date() == self.start.date():
            end = self.start.date() + dt.timedelta(days=1)
        inside = Q(**{f"{name}__gte": start, f"{name}__lt": end})
        return {
            "eq": inside,
            "ne": ~inside & Q(**{f"{name}__isnull": False}),
            "lt": Q(**{f"{name}__lt": start}),
            "le": Q(**{f"{name}__lt": end}),
            "gt": Q(**{f"{name}__gte": end}),
            "ge": Q(**{f"{name}__gte": start}),
        }[self.prefix]


def parse_date(raw: str, zone: ZoneInfo, expression: str) -> DateRange:
    prefix = "eq"
    if raw[:2] in PREFIXES and not raw[:2].isdigit():
        prefix, raw = raw[:2], raw[2:]
    match = _DATE.match(raw)
    problem = FhirError.of(
        400,
        _("“%(value)s” is not a date (YYYY, YYYY-MM, YYYY-MM-DD or an instant).")
        % {"value": raw[:40]},
        code="value",
        expression=expression,
    )
    if match is None:
        raise problem
    g = match.groupdict()
    tz: dt.tzinfo = zone
    if g["z"]:
        tz = dt.UTC if g["z"] == "Z" else dt.datetime.strptime(g["z"], "%z").tzinfo or dt.UTC
    try:
        year = int(g["y"])
        if g["m"] is None:
            start = dt.datetime(year, 1, 1, tzinfo=tz)
            end = dt.datetime(year + 1, 1, 1, tzinfo=tz)
        elif g["d"] is None:
            month = int(g["m"])
            start = dt.datetime(year, month, 1, tzinfo=tz)
            end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
        elif g["H"] is None:
            start = dt.datetime(year, int(g["m"]), int(g["d"]), tzinfo=tz)
            end = start + dt.timedelta(days=1)
        else:
            start = dt.datetime(
                year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"] or 0),
                tzinfo=tz,
            )  # fmt: skip
            end = start + (dt.timedelta(seconds=1) if g["S"] else dt.timedelta(minutes=1))
    except ValueError:
        raise problem from None
    return DateRange(prefix, start, end)


def parse_token(raw: str) -> tuple[str | None, str]:
    """``system|code`` → (system, code); ``|code`` → ("", code); ``code`` → (None, code)."""
    if "|" in raw:
        system, code = raw.split("|", 1)
        return system, code
    return None, raw


def reference_id(raw: str, target: str) -> str:
    """``Patient/12``, a full URL ending so, or ``12`` → "12"; other types → "" (no match)."""
    if "/" not in raw:
        return raw
    kind, _sep, ident = raw.rstrip("/").rpartition("/")
    return ident if kind.rsplit("/", 1)[-1] == target else ""


@dataclass
class Query:
    """A parsed search request."""

    filters: list[tuple[str, list[str]]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    total: bool = True
    ignored: list[str] = field(default_factory=list)


def parse(mapper: Mapper, params: list[tuple[str, str]], *, lenient: bool) -> Query:
    """Check the parameters against the type's own; unknown ones → 400 unless ``lenient``."""
    query = Query()
    rt = mapper.resource_type
    for name, value in params:
        base = name.split(":", 1)[0]
        if name == "_count":
            query.count = _int(value, "_count", minimum=0)
            query.count = min(query.count, MAX_COUNT)
        elif name == "_offset":
            query.offset = _int(value, "_offset", minimum=0)
        elif name == "_sort":
            for key in [k for k in value.split(",") if k]:
                if key.lstrip("-") not in mapper.sorts:
                    raise FhirError.of(
                        400,
                        _("Sorting by “%(key)s” is not supported; use one of: %(keys)s.")
                        % {"key": key[:40], "keys": ", ".join(sorted(mapper.sorts)) or "-"},
                        code="not-supported",
                        expression="_sort",
                    )
                query.sort.append(key)
        elif name == "_include":
            source, _sep, target = value.partition(":")
            spec = target.split(":", 1)[0]
            if source != rt or spec not in mapper.include_targets:
                if lenient:
                    query.ignored.append(f"_include={value}")
                    continue
                raise FhirError.of(
                    400,
                    _("_include “%(value)s” is not supported.") % {"value": value[:60]},
                    code="not-supported",
                    expression="_include",
                )
            query.includes.append(spec)
        elif name == "_total":
            query.total = value != "none"
        elif name in ("_format", "_summary"):
            query.ignored.append(name)
        elif base in mapper.search_params and (":" not in name or name.endswith(":exact")):
            query.filters.append((base, [v for v in value.split(",")]))
        elif lenient:
            query.ignored.append(name)
        else:
            raise FhirError.of(
                400,
                _("Unknown search parameter “%(name)s” for %(type)s.")
                % {"name": name[:40], "type": rt},
                code="not-supported",
                expression=name[:64],
            )
    return query


def _int(value: str, name: str, minimum: int) -> int:
    if not value.isdigit() or int(value) < minimum:
        raise FhirError.of(
            400,
            _("%(name)s must be a whole number.") % {"name": name},
            code="value",
            expression=name,
        )
    return int(value)


def apply(mapper: Mapper, qs: QuerySet[Any], query: Query, zone: ZoneInfo) -> QuerySet[Any]:
    for name, values in query.filters:
        param = mapper.search_params[name]
        combined = Q(pk__in=[])
        for raw in values:
            combined |= _one(param, name, raw, zone)
        qs = qs.filter(combined)
    order: list[str] = []
    for key in query.sort:
        desc = key.startswith("-")
        field_name = mapper.sorts[key.lstrip("-")]
        order.append(f"-{field_name}" if desc else field_name)
    if order:
        order.append("-pk" if order[0].startswith("-") else "pk")
    return qs.order_by(*(order or mapper.default_sort))


def _one(param: SearchParam, name: str, raw: str, zone: ZoneInfo) -> Q:
    build: Callable[..., Q] = param.build
    if raw == "":
        raise FhirError.of(400, _("The parameter has no value."), code="value", expression=name)
    if param.type == "date":
        return build(parse_date(raw, zone, name))
    if param.type == "token":
        return build(*parse_token(raw))
    return build(raw)
