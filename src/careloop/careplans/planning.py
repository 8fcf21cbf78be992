"""From an enrolment and a patient's facts to the occurrence rows of a time window."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from careloop.careplans import domain
from careloop.careplans import models as cm
from careloop.kit.clock import age_on
from careloop.patients import models as pm
from careloop.reminders import links


@dataclass(frozen=True)
class PatientContext:
    patient_id: int
    organisation_id: int
    tz: ZoneInfo
    facts: domain.Facts
    prescriptions: tuple[domain.Prescription, ...]
    dose_times: Mapping[str, Sequence[str]]


def context_for(patient: pm.Patient, today: date) -> PatientContext:
    return contexts_for([patient], today)[patient.pk]


def contexts_for(patients: Sequence[pm.Patient], today: date) -> dict[int, PatientContext]:
    """The planning facts of many patients, with one query per kind of fact."""
    ids = [p.pk for p in patients]
    conditions: dict[int, set[str]] = {pk: set() for pk in ids}
    for pid, code in pm.Condition.objects.filter(
        patient_id__in=ids, deleted_at__isnull=True, status=pm.Condition.Status.ACTIVE
    ).values_list("patient_id", "icd10_code"):
        conditions[pid].add(code)
    discharge: dict[int, date] = {}
    last_visit: dict[int, date] = {}
    for pid, admitted, discharged in pm.Encounter.objects.filter(
        patient_id__in=ids, deleted_at__isnull=True
    ).values_list("patient_id", "admitted_on", "discharged_on"):
        if discharged is not None and (pid not in discharge or discharged > discharge[pid]):
            discharge[pid] = discharged
        if pid not in last_visit or admitted > last_visit[pid]:
            last_visit[pid] = admitted
    rx: dict[int, list[domain.Prescription]] = {pk: [] for pk in ids}
    for pk, pid, name, dose, unit, frequency, start, end in (
        pm.Medication.objects.filter(
            patient_id__in=ids, deleted_at__isnull=True, status=pm.Medication.Status.ACTIVE
        )
        .order_by("id")
        .values_list(
            "pk", "patient_id", "name", "dose", "unit", "frequency", "start_date", "end_date"
        )
    ):
        rx[pid].append(
            domain.Prescription(
                id=pk,
                name=name,
                dose=f"{dose.normalize():f}" if dose is not None else "",
                unit=unit,
                frequency=frequency,
                start=start,
                end=end,
            )
        )
    dose_times = dict(
        cm.ReminderPreference.objects.filter(patient_id__in=ids).values_list(
            "patient_id", "dose_times"
        )
    )
    return {
        p.pk: PatientContext(
            patient_id=p.pk,
            organisation_id=p.organisation_id,
            tz=domain.zone(p.time_zone),
            facts=domain.Facts(
                age=age_on(p.date_of_birth, today),
                sex=p.sex,
                icd10_codes=frozenset(conditions[p.pk]),
                discharge=discharge.get(p.pk),
                last_visit=last_visit.get(p.pk),
            ),
            prescriptions=tuple(rx[p.pk]),
            dose_times=dose_times.get(p.pk) or {},
        )
        for p in patients
    }


@dataclass(frozen=True)
class Row:
    """One occurrence to be, before it is a database row."""

    source_key: str
    activity_code: str
    kind: str
    purpose: str
    local: datetime
    due_at: datetime
    payload: Mapping[str, Any]


def activity_dict(a: cm.PlanActivity) -> dict[str, Any]:
    return {
        "code": a.code,
        "kind": a.kind,
        "title": a.title,
        "title_en": a.title_en,
        "schedule": a.schedule,
        "channels": a.channels,
        "escalation": a.escalation,
        "applicability": a.applicability,
        "measurement": a.measurement,
    }


def plan_rows(
    *,
    enrolment_id: int | str,
    activities: Sequence[Mapping[str, Any]],
    adjustments: Mapping[str, Any],
    ctx: PatientContext,
    enrolled_on: date,
    anchor_date: date | None,
    template_anchor: str,
    start: datetime,
    end: datetime,
) -> list[Row]:
    """Occurrences of every applicable activity whose instant lies in [start, end)."""
    start_local = domain.local_of(start, ctx.tz)
    end_local = domain.local_of(end, ctx.tz)
    anchors: dict[str, date | None] = {
        "discharge": ctx.facts.discharge,
        "last_visit": ctx.facts.last_visit,
    }
    if anchor_date is not None and template_anchor in anchors:
        anchors[template_anchor] = anchor_date
    rows: list[Row] = []
    for act in activities:
        adjust = adjustments.get(act["code"], {}) or {}
        if adjust.get("off") or not domain.applies(act.get("applicability") or {}, ctx.facts):
            continue
        schedule = dict(act["schedule"])
        if adjust.get("times") and "rrule" in schedule:
            schedule["times"] = list(adjust["times"])
        if adjust.get("time") and "offsets_days" in schedule:
            schedule["time"] = adjust["time"]
        planned: Sequence[domain.Planned]
        if schedule.get("prescriptions"):
            planned = domain.expand_prescriptions(
                ctx.prescriptions,
                start=start_local,
                end=end_local,
                dose_times=ctx.dose_times,
                origin=enrolled_on,
            )
        else:
            planned = _expand(
                schedule, start_local, end_local, enrolled_on, tuple(sorted(anchors.items()))
            )
        purpose = "education" if act["kind"] == cm.ActivityKind.EDUCATION else "care_reminders"
        base = {"title": act["title"], "title_en": act.get("title_en", "")}
        if act.get("measurement"):
            base["measurement"] = act["measurement"]
        for p in planned:
            due = domain.to_utc(p.local, ctx.tz)
            if not start <= due < end:
                continue
            rows.append(
                Row(
                    source_key=f"e{enrolment_id}:{act['code']}:{p.key}",
                    activity_code=act["code"],
                    kind=act["kind"],
                    purpose=purpose,
                    local=p.local,
                    due_at=due,
                    payload={**base, **p.payload},
                )
            )
    rows.sort(key=lambda r: (r.due_at, r.source_key))
    return rows


def _expand(
    schedule: Mapping[str, Any],
    start: datetime,
    end: datetime,
    enrolled_on: date,
    anchors: tuple[tuple[str, date | None], ...],
) -> Sequence[domain.Planned]:
    """``domain.expand``, remembered: patients in one zone and enrolled on the same day share
    their schedule's local times, and expanding a recurrence rule is the costly part."""
    return _expand_cached(
        json.dumps(schedule, sort_keys=True, default=str), start, end, enrolled_on, anchors
    )


@functools.lru_cache(maxsize=50_000)
def _expand_cached(
    schedule: str,
    start: datetime,
    end: datetime,
    enrolled_on: date,
    anchors: tuple[tuple[str, date | None], ...],
) -> tuple[domain.Planned, ...]:
    return tuple(
        domain.expand(
            json.loads(schedule),
            start=start,
            end=end,
            enrolled_on=enrolled_on,
            anchors=dict(anchors),
        )
    )


def occurrence_values(row: Row, ctx: PatientContext, enrolment_id: int | None) -> dict[str, Any]:
    """Field values of the Occurrence row for a planned Row (fresh link digest included)."""
    return {
        "organisation_id": ctx.organisation_id,
        "patient_id": ctx.patient_id,
        "enrolment_id": enrolment_id,
        "activity_code": row.activity_code,
        "kind": row.kind,
        "purpose": row.purpose,
        "source_key": row.source_key,
        "local_due": f"{row.local:%Y-%m-%dT%H:%M}",
        "time_zone": ctx.tz.key,
        "due_at": row.due_at,
        "wake_at": row.due_at,
        "link_digest": links.digest(links.token_for(row.source_key)),
        "payload": dict(row.payload),
    }
