"""Readings as CareLoop stores them: codes, UCUM units, conversions and plausibility (pure).

Every way a reading comes in (staff form, JSON API, CSV, Apple Health, device files, HL7, FHIR)
ends up as a dict handed to `normalise`, which either returns a `Reading` in canonical units or
raises `Problem` naming the field and the reason. Nothing here touches the database.

Codes are LOINC (https://loinc.org); units are UCUM (https://ucum.org). Glucose converts with
1 mmol/L = 18.0 mg/dL (metrics.md), so converting back gives the number the patient typed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GLUCOSE_MG_PER_MMOL = 18.0


class Problem(ValueError):
    """A reading that cannot be stored, with the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    loinc: str  # the code a stored reading carries
    unit: str  # canonical UCUM unit
    low: float  # below: impossible, refused
    high: float  # above: impossible, refused
    label: str
    label_zh: str
    decimals: int = 1


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        # 85354-9 Blood pressure panel with all children optional (8480-6 systolic,
        # 8462-4 diastolic).
        Kind("bp", "85354-9", "mm[Hg]", 40, 300, "Blood pressure", "血压", 0),
        # 15074-8 Glucose [Moles/volume] in Blood; the context (fasting, random, after a meal)
        # travels next to it.
        Kind("glucose", "15074-8", "mmol/L", 0.5, 60, "Glucose", "血糖", 1),
        Kind("hba1c", "4548-4", "%", 3, 20, "HbA1c", "糖化血红蛋白", 1),
        Kind("heart_rate", "8867-4", "/min", 20, 300, "Heart rate", "心率", 0),
        Kind("weight", "29463-7", "kg", 0.5, 400, "Weight", "体重", 1),
        Kind("spo2", "59408-5", "%", 50, 100, "SpO2", "血氧饱和度", 0),
        Kind("temperature", "8310-5", "Cel", 30, 45, "Temperature", "体温", 1),
        Kind("steps", "41950-7", "/d", 0, 200_000, "Steps", "步数", 0),
        Kind("sleep", "93832-4", "h", 0, 24, "Sleep", "睡眠", 1),
    )
}
DIASTOLIC = (20.0, 200.0)

# LOINC codes accepted on the way in → (kind, context, unit implied when none is given).
CODES: dict[str, tuple[str, str, str]] = {
    "85354-9": ("bp", "", "mm[Hg]"),
    "55284-4": ("bp", "", "mm[Hg]"),  # Blood pressure systolic and diastolic (older panel)
    "35094-2": ("bp", "", "mm[Hg]"),  # Blood pressure panel
    "15074-8": ("glucose", "random", "mmol/L"),
    "2339-0": ("glucose", "random", "mg/dL"),
    "2345-7": ("glucose", "random", "mg/dL"),
    "14749-6": ("glucose", "random", "mmol/L"),
    "41653-7": ("glucose", "random", "mg/dL"),  # capillary blood by glucometer
    "14743-9": ("glucose", "random", "mmol/L"),  # capillary blood by glucometer
    "1558-6": ("glucose", "fasting", "mg/dL"),
    "14771-0": ("glucose", "fasting", "mmol/L"),
    "1521-4": ("glucose", "postprandial", "mg/dL"),  # 2 hours post meal
    "4548-4": ("hba1c", "", "%"),
    "17856-6": ("hba1c", "", "%"),
    "8867-4": ("heart_rate", "", "/min"),
    "29463-7": ("weight", "", "kg"),
    "3141-9": ("weight", "", "kg"),
    "59408-5": ("spo2", "", "%"),
    "2708-6": ("spo2", "", "%"),
    "8310-5": ("temperature", "", "Cel"),
    "41950-7": ("steps", "", "/d"),
    "55423-8": ("steps", "", "/d"),
    "93832-4": ("sleep", "", "h"),
}
# Component codes inside a blood pressure panel.
SYSTOLIC_CODE = "8480-6"
DIASTOLIC_CODE = "8462-4"

GLUCOSE_CONTEXTS = {
    "fasting": "fasting",
    "random": "random",
    "postprandial": "postprandial",
    "post_meal": "postprandial",
    "post-prandial": "postprandial",
    "空腹": "fasting",
    "随机": "random",
    "餐后": "postprandial",
}

# Units as people write them → (UCUM unit, factor to the canonical unit, offset).
UNITS: dict[str, dict[str, tuple[float, float]]] = {
    "bp": {"mm[Hg]": (1.0, 0.0), "mmHg": (1.0, 0.0), "mmhg": (1.0, 0.0)},
    "glucose": {
        "mmol/L": (1.0, 0.0),
        "mmol/l": (1.0, 0.0),
        "mg/dL": (1 / GLUCOSE_MG_PER_MMOL, 0.0),
        "mg/dl": (1 / GLUCOSE_MG_PER_MMOL, 0.0),
    },
    "hba1c": {"%": (1.0, 0.0)},
    "heart_rate": {"/min": (1.0, 0.0), "{beats}/min": (1.0, 0.0), "bpm": (1.0, 0.0)},
    "weight": {
        "kg": (1.0, 0.0),
        "g": (0.001, 0.0),
        "[lb_av]": (0.45359237, 0.0),
        "lb": (0.45359237, 0.0),
    },
    "spo2": {"%": (1.0, 0.0)},
    "temperature": {"Cel": (1.0, 0.0), "°C": (1.0, 0.0), "[degF]": (5 / 9, -32 * 5 / 9)},
    "steps": {"/d": (1.0, 0.0), "{steps}": (1.0, 0.0), "count": (1.0, 0.0), "1": (1.0, 0.0)},
    "sleep": {"h": (1.0, 0.0), "min": (1 / 60, 0.0), "s": (1 / 3600, 0.0)},
}
SOURCES = ("patient", "staff", "device", "his")


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading in canonical units, ready to store."""

    patient_id: int
    kind: str
    code: str
    value: float
    value2: float | None
    unit: str
    context: str
    source: str
    device_id: str
    effective_at: datetime  # aware, UTC
    time_zone: str
    local_day: int  # date ordinal in the reading's zone
    local_hour: int
    original: str  # the value and unit as received, e.g. "126 mg/dL"


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _number(raw: object, field: str) -> float:
    if isinstance(raw, bool) or raw is None or raw == "":
        raise Problem(field, f"{field} is missing")
    if isinstance(raw, (int, float)):
        number = float(raw)
    else:
        try:
            number = float(str(raw).strip())
        except ValueError:
            raise Problem(field, f"{field} is not a number: {str(raw)[:20]!r}") from None
    if not math.isfinite(number):
        raise Problem(field, f"{field} is not a finite number")
    return number


def resolve_kind(code: str) -> tuple[str, str, str]:
    """(kind, default context, implied unit) of a kind name or an accepted LOINC code."""
    code = (code or "").strip()
    if code in KINDS:
        return code, "random" if code == "glucose" else "", KINDS[code].unit
    if code.startswith("glucose_"):  # plan measurement names: glucose_fasting, glucose_post_meal
        context = GLUCOSE_CONTEXTS.get(code[8:])
        if context:
            return "glucose", context, "mmol/L"
    found = CODES.get(code)
    if found is None:
        raise Problem("code", f"unknown code {code[:30]!r}")
    return found


def parse_time(raw: object, zone_name: str) -> tuple[datetime, ZoneInfo]:
    """An aware UTC instant from ISO 8601 text; text without an offset is local to the zone."""
    zone = _zone(zone_name)
    if zone is None:
        raise Problem("time_zone", f"unknown time zone {zone_name[:40]!r}")
    if isinstance(raw, datetime):
        moment = raw
    else:
        text = str(raw or "").strip()
        if not text:
            raise Problem("effective", "effective time is missing")
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Problem("effective", f"not an ISO 8601 time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC), zone


def normalise(
    item: Mapping[str, Any],
    *,
    patient_id: int,
    zone_name: str,
    source: str,
    now: datetime,
) -> Reading:
    """One reading in canonical units, or `Problem` naming the field at fault."""
    kind, context, implied_unit = resolve_kind(str(item.get("code") or item.get("type") or ""))
    spec = KINDS[kind]
    unit_in = str(item.get("unit") or implied_unit).strip()
    conversions = UNITS[kind]
    if unit_in not in conversions:
        raise Problem("unit", f"unit {unit_in[:20]!r} does not fit {spec.label.lower()}")
    factor, offset = conversions[unit_in]

    value2: float | None = None
    if kind == "bp":
        systolic = _number(item.get("systolic", item.get("value")), "systolic")
        diastolic = _number(item.get("diastolic", item.get("value2")), "diastolic")
        if not spec.low <= systolic <= spec.high:
            raise Problem("systolic", f"systolic {systolic:g} mm[Hg] is not possible")
        if not DIASTOLIC[0] <= diastolic <= DIASTOLIC[1]:
            raise Problem("diastolic", f"diastolic {diastolic:g} mm[Hg] is not possible")
        if diastolic >= systolic:
            raise Problem("diastolic", "diastolic must be lower than systolic")
        value, value2 = systolic, diastolic
        original = f"{systolic:g}/{diastolic:g} {unit_in}"
    else:
        raw = _number(item.get("value"), "value")
        value = raw * factor + offset
        if not spec.low <= value <= spec.high:
            raise Problem("value", f"{spec.label.lower()} {raw:g} {unit_in} is not possible")
        original = f"{raw:g} {unit_in}"

    if kind == "glucose":
        wanted = str(item.get("context") or context or "random").strip().lower()
        context = GLUCOSE_CONTEXTS.get(wanted, "")
        if not context:
            raise Problem(
                "context", f"glucose context {wanted[:20]!r} is not fasting, random or postprandial"
            )
    else:
        context = ""

    source = str(item.get("source") or source)
    if source not in SOURCES:
        raise Problem("source", f"source {source[:20]!r} is not one of {', '.join(SOURCES)}")
    device = str(item.get("device") or item.get("device_id") or "").strip()
    if len(device) > 64:
        raise Problem("device", "device id is longer than 64 characters")
    zone_name = str(item.get("time_zone") or zone_name)
    effective, zone = parse_time(item.get("effective") or item.get("time"), zone_name)
    if effective > now + timedelta(minutes=10):
        raise Problem("effective", "effective time is in the future")
    local = effective.astimezone(zone)
    return Reading(
        patient_id=patient_id,
        kind=kind,
        code=spec.loinc,
        value=value,
        value2=value2,
        unit=spec.unit,
        context=context,
        source=source,
        device_id=device,
        effective_at=effective,
        time_zone=zone_name,
        local_day=local.toordinal(),
        local_hour=local.hour,
        original=original[:40],
    )


def mg_dl(mmol: float) -> float:
    """Glucose in mg/dL, for display next to mmol/L."""
    return round(mmol * GLUCOSE_MG_PER_MMOL, 1)


def display(kind: str, value: float, value2: float | None) -> str:
    """The value as staff read it: 142/91, 7.2, 68."""
    spec = KINDS[kind]
    if kind == "bp":
        return f"{value:.0f}/{(value2 or 0):.0f}"
    return f"{value:.{spec.decimals}f}"
