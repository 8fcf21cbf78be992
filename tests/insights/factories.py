"""Rows of a patient's history, written directly, for the portrait and panel tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from careloop.appointments import models as am
from careloop.education import models as em
from careloop.messaging import models as mm
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.questionnaires import models as qm
from careloop.reminders import models as rm

SHANGHAI = ZoneInfo("Asia/Shanghai")
_n = count(1)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def appointment(patient: pm.Patient, day: date, status: str) -> am.Appointment:
    dept = pm.PatientDepartment.objects.filter(patient=patient).first()
    assert dept is not None
    start = local(day, 9)
    slot = am.Slot.objects.create(
        organisation_id=patient.organisation_id,
        department_id=dept.department_id,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        local_date=day,
        capacity=1,
    )
    return am.Appointment.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        slot=slot,
        department_id=dept.department_id,
        starts_at=start,
        local_date=day,
        status=status,
    )


def encounter(patient: pm.Patient, day: date, *, deleted: bool = False) -> pm.Encounter:
    dept = pm.PatientDepartment.objects.filter(patient=patient).first()
    assert dept is not None
    return pm.Encounter.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        department_id=dept.department_id,
        kind=pm.Encounter.Kind.OUTPATIENT,
        admitted_on=day,
        deleted_at=local(day, 12) if deleted else None,
    )


def condition(patient: pm.Patient, code: str, display: str, status: str = "active") -> Any:
    return pm.Condition.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        icd10_code=code,
        display=display,
        status=status,
    )


def reminder(
    patient: pm.Patient,
    due_at: datetime,
    *,
    outcome: str = "accepted",
    acked_at: datetime | None = None,
    ack_source: str = "sms_reply",
    kind: str = "medication",
) -> rm.Occurrence:
    n = next(_n)
    occ = rm.Occurrence.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        kind=kind,
        source_key=f"test-insights:{n}",
        local_due=due_at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M"),
        time_zone="Asia/Shanghai",
        due_at=due_at,
        status=rm.Status.ACKNOWLEDGED if acked_at else rm.Status.SENT,
        link_digest=f"{n:064d}",
        acknowledged_at=acked_at,
        ack_source=ack_source if acked_at else "",
    )
    rm.Attempt.objects.create(
        occurrence=occ,
        organisation_id=patient.organisation_id,
        patient=patient,
        dedupe_key=f"test-insights:{n}:0:sms",
        channel="sms",
        outcome=outcome,
        started_at=due_at,
    )
    return occ


def content(patient: pm.Patient, title: str) -> em.ContentItem:
    return em.ContentItem.objects.create(organisation_id=patient.organisation_id, title=title)


def delivery(patient: pm.Patient, item: em.ContentItem, at: datetime) -> em.Delivery:
    return em.Delivery.objects.create(
        organisation_id=patient.organisation_id, patient=patient, item=item, delivered_at=at
    )


def read(patient: pm.Patient, item: em.ContentItem, at: datetime, event: str = "open") -> Any:
    return em.ContentRead.objects.create(
        organisation_id=patient.organisation_id, patient=patient, item=item, event=event, at=at
    )


def questionnaire(patient: pm.Patient) -> qm.Questionnaire:
    return qm.Questionnaire.objects.create(
        organisation_id=patient.organisation_id,
        url=f"urn:test:insights:{next(_n)}",
        title="随访问卷",
        status=qm.Questionnaire.Status.ACTIVE,
    )


def assignment(
    patient: pm.Patient, q: qm.Questionnaire, created_at: datetime, status: str
) -> qm.Assignment:
    return qm.Assignment.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        questionnaire=q,
        status=status,
        due_at=created_at + timedelta(days=3),
        created_at=created_at,
    )


def reading(patient: pm.Patient, kind: str, at: datetime, source: str = "patient") -> Any:
    at_local = at.astimezone(SHANGHAI)
    return om.Observation.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        kind=kind,
        code="85354-9" if kind == "bp" else "15074-8",
        value=135 if kind == "bp" else 6.1,
        value2=85 if kind == "bp" else None,
        unit="mm[Hg]" if kind == "bp" else "mmol/L",
        source=source,
        effective_at=at,
        time_zone="Asia/Shanghai",
        local_day=at_local.date().toordinal(),
        local_hour=at_local.hour,
    )


def thread(patient: pm.Patient) -> mm.Thread:
    dept = pm.PatientDepartment.objects.filter(patient=patient).first()
    assert dept is not None
    return mm.Thread.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        subject="咨询",
        department_id=dept.department_id,
    )


def message(thread: mm.Thread, body: str, at: datetime, author: str = "patient") -> mm.Message:
    return mm.Message.objects.create(
        thread=thread,
        author_kind=author,
        body=body,
        created_at=at,
        author_scope=f"{author}:{thread.patient_id}",
    )
