"""Every read of readings: scoped to the acting user, plus the rule engine's history feed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import epoch_seconds, utc_now
from careloop.observations import domain
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.rules import Event

_INTAKE_VALUE = {"taken": 1.0, "late": 1.0, "skipped": 0.0, "missed": 0.0}


def _local(at: datetime, zone: str) -> tuple[int, int]:
    local = at.astimezone(ZoneInfo(zone))
    return local.toordinal(), local.hour


def history_events(patient_ids: Iterable[int], kinds: Collection[str]) -> dict[int, list[Event]]:
    """Everything the rules listen to for these patients, oldest first (system use only)."""
    pids = list(patient_ids)
    found: dict[int, list[Event]] = defaultdict(list)
    reading_kinds = [k for k in kinds if k in domain.KINDS]
    if reading_kinds:
        for pid, kind, at, day, hour, value, value2, context, pk, source in _reading_rows(
            pids, reading_kinds
        ):
            found[pid].append(
                Event(pid, kind, at, day, hour, value, value2, context, (), pk, source)
            )
    extra = {"adr", "symptom", "dose", "questionnaire"} & set(kinds)
    if extra:
        zones = dict(pm.Patient.objects.filter(pk__in=pids).values_list("pk", "time_zone"))
        if "adr" in extra:
            for pid, at, severity, drug, pk in om.AdverseReaction.objects.filter(
                patient_id__in=pids
            ).values_list("patient_id", "reported_at", "severity", "drug", "id"):
                day, hour = _local(at, zones[pid])
                found[pid].append(
                    Event(
                        pid,
                        "adr",
                        epoch_seconds(at),
                        day,
                        hour,
                        float(severity),
                        None,
                        drug,
                        (),
                        pk,
                    )
                )
        if "symptom" in extra:
            for pid, at, severity, symptom, pk in om.SymptomEntry.objects.filter(
                patient_id__in=pids
            ).values_list("patient_id", "effective_at", "severity", "symptom", "id"):
                day, hour = _local(at, zones[pid])
                found[pid].append(
                    Event(
                        pid,
                        "symptom",
                        epoch_seconds(at),
                        day,
                        hour,
                        float(severity),
                        None,
                        symptom,
                        (),
                        pk,
                    )
                )
        if "dose" in extra:
            from careloop.reminders import selectors as reminder_selectors

            doses = reminder_selectors.intake_history(pids)
            doses += [
                (pid, due, "missed", -occurrence)
                for pid, due, occurrence in om.MissedDose.objects.filter(
                    patient_id__in=pids
                ).values_list("patient_id", "due_at", "occurrence_id")
            ]
            for pid, at, status, pk in doses:
                day, hour = _local(at, zones[pid])
                found[pid].append(
                    Event(
                        pid,
                        "dose",
                        epoch_seconds(at),
                        day,
                        hour,
                        _INTAKE_VALUE.get(status, 0.0),
                        None,
                        status,
                        (),
                        pk,
                    )
                )
        if "questionnaire" in extra:
            from careloop.questionnaires import selectors as questionnaire_selectors

            for pid, at, total, instrument, items, pk in questionnaire_selectors.rule_events(pids):
                day, hour = _local(at, zones[pid])
                found[pid].append(
                    Event(
                        pid,
                        "questionnaire",
                        epoch_seconds(at),
                        day,
                        hour,
                        total,
                        None,
                        instrument,
                        items,
                        pk,
                    )  # fmt: skip
                )
        for events in found.values():
            events.sort(key=lambda e: (e.at, e.ref))
    return dict(found)


def _reading_rows(pids: list[int], kinds: list[str]) -> Iterable[tuple[Any, ...]]:
    """Readings as event tuples, oldest first per patient, with the time as epoch seconds
    computed by the database (no datetime objects on this hot path)."""
    from django.db import connection

    table = om.Observation._meta.db_table
    epoch = (
        "CAST(strftime('%%s', substr(effective_at, 1, 19)) AS INTEGER)"
        if connection.vendor == "sqlite"
        else "CAST(floor(extract(epoch FROM effective_at)) AS BIGINT)"
    )
    for start in range(0, len(pids), 500):
        part = pids[start : start + 500]
        marks = ",".join(["%s"] * len(part))
        kind_marks = ",".join(["%s"] * len(kinds))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT patient_id, kind, {epoch}, local_day, local_hour, value, value2, "  # noqa: S608
                f"context, id, source FROM {table} WHERE patient_id IN ({marks}) "
                f"AND kind IN ({kind_marks}) ORDER BY patient_id, effective_at, id",
                [*part, *kinds],
            )
            yield from cursor.fetchall()


def organisation_history(
    organisation_id: int, kind: str, where: tuple[str, list[Any]] | None = None
) -> Iterable[tuple[int, list[Event]]]:
    """(patient, events) of one reading kind across an organisation, optionally only the rows
    meeting a rule's SQL predicate, in one ordered pass (system use: recompute, benchmarks)."""
    from django.db import connection

    table = om.Observation._meta.db_table
    epoch = (
        "CAST(strftime('%%s', substr(effective_at, 1, 19)) AS INTEGER)"
        if connection.vendor == "sqlite"
        else "CAST(floor(extract(epoch FROM effective_at)) AS BIGINT)"
    )
    extra, args = (f" AND ({where[0]})", where[1]) if where else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT patient_id, kind, {epoch}, local_day, local_hour, value, value2, "  # noqa: S608
            f"context, id, source FROM {table} WHERE organisation_id = %s AND kind = %s{extra} "
            "ORDER BY patient_id, effective_at, id",
            [organisation_id, kind, *args],
        )
        current: int | None = None
        events: list[Event] = []
        for pid, k, at, day, hour, value, value2, context, pk, source in cursor.fetchall():
            if pid != current:
                if events:
                    yield current, events  # type: ignore[misc]
                current, events = pid, []
            events.append(Event(pid, k, at, day, hour, value, value2, context, (), pk, source))
        if events:
            yield current, events  # type: ignore[misc]


def patients_with_events(organisation_id: int, kinds: Collection[str]) -> list[int]:
    """Patients of the organisation with anything the rules listen to."""
    pids = set(
        om.Observation.objects.filter(organisation_id=organisation_id, kind__in=list(kinds))
        .values_list("patient_id", flat=True)
        .distinct()
    )
    pids |= set(
        om.AdverseReaction.objects.filter(organisation_id=organisation_id).values_list(
            "patient_id", flat=True
        )
    )
    pids |= set(
        om.SymptomEntry.objects.filter(organisation_id=organisation_id).values_list(
            "patient_id", flat=True
        )
    )
    if "dose" in kinds:
        from careloop.reminders import selectors as reminder_selectors

        pids |= set(reminder_selectors.intake_patients(organisation_id))
        pids |= set(
            om.MissedDose.objects.filter(organisation_id=organisation_id).values_list(
                "patient_id", flat=True
            )
        )
    return sorted(pids)


# --- reads for staff pages ----------------------------------------------------------------------

RANGES = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}


@dataclass
class Series:
    kind: str
    label: str
    unit: str
    points: list[dict[str, Any]]


def series(
    actor: Actor, patient_id: int, kinds: Iterable[str], *, days: int = 30
) -> dict[str, Series]:
    """The patient's readings of these kinds over the last `days` days, for charts."""
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False)
    since = utc_now() - timedelta(days=days)
    wanted = [k for k in kinds if k in domain.KINDS]
    out = {k: Series(k, str(domain.KINDS[k].label), domain.KINDS[k].unit, []) for k in wanted}
    rows = (
        om.Observation.objects.filter(
            patient_id=patient_id, kind__in=wanted, effective_at__gte=since
        )
        .order_by("effective_at", "id")
        .values_list("kind", "effective_at", "value", "value2", "context", "source")
    )
    for kind, at, value, value2, context, source in rows[:20000]:
        out[kind].points.append(
            {
                "at": at.isoformat(),
                "value": value,
                "value2": value2,
                "context": context,
                "source": source,
            }
        )
    audit.record(
        actor, "observation.read", patient_id=patient_id, detail={"kinds": wanted, "days": days}
    )
    return out


def readings(
    actor: Actor, patient_id: int, *, kind: str = "", limit: int = 50
) -> list[om.Observation]:
    """The patient's latest readings (newest first)."""
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False)
    qs = om.Observation.objects.filter(patient_id=patient_id)
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.order_by("-effective_at", "-id")[: max(1, min(limit, 500))])


def latest_for(
    patient_ids: Iterable[int], kinds: Iterable[str] = ("bp", "glucose")
) -> dict[tuple[int, str], om.Latest]:
    """The newest reading per patient and kind (system use: worklist ranking, overdue priority)."""
    return {
        (row.patient_id, row.kind): row
        for row in om.Latest.objects.filter(
            patient_id__in=list(patient_ids), kind__in=list(kinds), last_at__isnull=False
        )
    }


def sparklines(
    patient_ids: Iterable[int], kind: str = "bp", points: int = 10
) -> dict[int, list[float]]:
    """The last few values of one kind per patient (systolic for blood pressure)."""
    pids = list(patient_ids)
    if not pids:
        return {}
    since = utc_now() - timedelta(days=60)
    found: dict[int, list[float]] = defaultdict(list)
    rows = (
        om.Observation.objects.filter(patient_id__in=pids, kind=kind, effective_at__gte=since)
        .order_by("patient_id", "-effective_at")
        .values_list("patient_id", "value")
    )
    for pid, value in rows[: len(pids) * 60]:
        if len(found[pid]) < points:
            found[pid].append(value)
    return {pid: list(reversed(values)) for pid, values in found.items()}


def adverse_reactions(actor: Actor, patient_id: int) -> list[om.AdverseReaction]:
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False)
    return list(om.AdverseReaction.objects.filter(patient_id=patient_id).order_by("-reported_at"))


def symptoms(actor: Actor, patient_id: int, limit: int = 50) -> list[om.SymptomEntry]:
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False)
    return list(
        om.SymptomEntry.objects.filter(patient_id=patient_id).order_by("-effective_at")[:limit]
    )


# --- reads of the JSON API (observations/api.py) ------------------------------------------------


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def reading_page(
    actor: Actor,
    patient_id: int,
    *,
    kinds: Collection[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    page: Any = 1,
    size: Any = 50,
) -> Any:
    """The patient's readings, newest first, by kind and time (a time without an offset is on
    the patient's clock), a page at a time; the read is audited."""
    from careloop.kit.pagination import paginate

    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False
    )
    zone = ZoneInfo(patient.time_zone)
    qs = om.Observation.objects.filter(patient_id=patient.pk)
    if kinds:
        qs = qs.filter(kind__in=list(kinds))
    if since is not None:
        qs = qs.filter(effective_at__gte=_aware(since, zone))
    if until is not None:
        qs = qs.filter(effective_at__lte=_aware(until, zone))
    found = paginate(qs.order_by("-effective_at", "-id"), page, size)
    audit.record(
        actor,
        "observation.read",
        patient_id=patient.pk,
        detail={"kinds": sorted(kinds), "page": found.number, "readings": len(found.items)},
    )
    return found


def stored_reading(
    actor: Actor, patient_id: int, *, reading_id: int | None = None, item: Any = None,
    source: str = "staff",
) -> om.Observation | None:  # fmt: skip
    """A stored reading of the patient: by id, or the one an item describes (sent again)."""
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False
    )
    qs = om.Observation.objects.filter(patient_id=patient.pk)
    if reading_id is not None:
        return qs.filter(pk=reading_id).first()
    try:
        reading = domain.normalise(
            dict(item or {}), patient_id=patient.pk, zone_name=patient.time_zone, source=source,
            now=utc_now(),
        )  # fmt: skip
    except domain.Problem:
        return None
    return qs.filter(
        kind=reading.kind,
        effective_at=reading.effective_at,
        source=reading.source,
        device_id=reading.device_id,
    ).first()
