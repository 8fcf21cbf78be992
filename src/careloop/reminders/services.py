"""Every write to occurrences outside the dispatcher: insert, recompute, cancel, acknowledge."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.utils.translation import gettext

from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from careloop.kit.rows import update_rows
from careloop.reminders import links
from careloop.reminders import models as rm

if TYPE_CHECKING:
    from careloop.accounts.actor import Actor

log = logging.getLogger("careloop.reminders")

S = rm.Status
PENDING = (S.SCHEDULED, S.RETRYING)
# Order of progress: a callback may move a status forward, never back.
PROGRESS = {
    S.SCHEDULED: 0,
    S.RETRYING: 0,
    S.SENDING: 1,
    S.SENT: 2,
    S.FAILED: 2,
    S.DELIVERED: 3,
    S.ACKNOWLEDGED: 4,
}
FINAL = (S.ACKNOWLEDGED, S.DEAD, S.CANCELLED, S.SKIPPED)


def settings_for(organisation_id: int) -> rm.ReminderSettings:
    found = rm.ReminderSettings.objects.filter(organisation_id=organisation_id).first()
    if found is not None:
        return found
    obj, _ = rm.ReminderSettings.objects.get_or_create(organisation_id=organisation_id)
    return obj


def insert_occurrences(values: Iterable[Mapping[str, Any]], *, batch: int = 2000) -> int:
    """Insert planned occurrences; a key already present is left as it is (idempotent).

    The rows are written as ``bulk_create(ignore_conflicts=True)`` would write them, with the
    same statement prefix and the same stored values, but without building a model instance
    per row: materialising a day for a whole organisation inserts hundreds of thousands.
    """
    now = utc_now()
    columns = _insert_columns()
    names = {c.name: c for c in columns} | {c.attname: c for c in columns}
    rows: list[list[Any]] = []
    for v in values:
        row = [c.default for c in columns]
        for key, value in v.items():
            col = names.get(key)
            if col is None:
                raise TypeError(f"Occurrence has no field {key!r}")
            if col.is_relation and key == col.name and value is not None:
                value = value.pk
            row[col.index] = value
        rows.append(row)
    if not rows:
        return 0
    created, updated = _COLUMN_INDEX["created_at"], _COLUMN_INDEX["updated_at"]
    for row in rows:
        if row[created] is None:
            row[created] = now
        if row[updated] is None:
            row[updated] = now
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            if connection.vendor == "postgresql":
                cursor.execute(*_unnest_insert(columns, chunk))
            else:
                cursor.executemany(_row_insert_sql(columns), _adapted(columns, chunk))
    return len(rows)


@dataclass(frozen=True)
class _Column:
    index: int
    name: str
    attname: str
    column: str
    db_type: str
    kind: str  # "datetime" | "json" | "plain"
    is_relation: bool
    default: Any


_COLUMN_INDEX: dict[str, int] = {}


def _insert_columns() -> list[_Column]:
    """Every concrete column of Occurrence but the id, with how to adapt its values."""
    out = []
    fields = [f for f in rm.Occurrence._meta.concrete_fields if not f.primary_key]
    for i, f in enumerate(fields):
        if f.name in ("created_at", "updated_at"):
            default = None  # the moment of the insert
        elif f.has_default() or not f.null:
            default = f.get_default()
        else:
            default = None
        kind = (
            "datetime"
            if isinstance(f, models.DateTimeField)
            else "json"
            if isinstance(f, models.JSONField)
            else "plain"
        )
        out.append(
            _Column(
                index=i,
                name=f.name,
                attname=f.attname,
                column=str(f.column),
                db_type=str(f.db_type(connection)),
                kind=kind,
                is_relation=f.is_relation,
                default=default,
            )
        )
        _COLUMN_INDEX[f.name] = i
    return out


def _adapted(columns: list[_Column], rows: list[list[Any]]) -> list[list[Any]]:
    """Rows with their date-times and JSON as the backend stores them (as bulk_create does)."""
    ops = connection.ops
    times = [c.index for c in columns if c.kind == "datetime"]
    jsons = [c.index for c in columns if c.kind == "json"]
    # Many rows share an instant (one zone, one local time): adapt each instant once.
    seen: dict[datetime, Any] = {}
    out = []
    for row in rows:
        row = list(row)
        for i in times:
            value = row[i]
            if value is not None:
                adapted = seen.get(value)
                if adapted is None:
                    adapted = seen[value] = ops.adapt_datetimefield_value(value)
                row[i] = adapted
        for i in jsons:
            if row[i] is not None:
                row[i] = ops.adapt_json_value(row[i], None)
        out.append(row)
    return out


def _row_insert_sql(columns: list[_Column]) -> str:
    ops = connection.ops
    table = ops.quote_name(rm.Occurrence._meta.db_table)
    names = ", ".join(ops.quote_name(c.column) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    prefix = ops.insert_statement(on_conflict=OnConflict.IGNORE)
    suffix = ops.on_conflict_suffix_sql([], OnConflict.IGNORE, None, None)
    return f"{prefix} {table} ({names}) VALUES ({marks}) {suffix}".strip()


def _unnest_insert(columns: list[_Column], rows: list[list[Any]]) -> tuple[str, list[Any]]:
    """PostgreSQL: one statement per chunk, one array per column (as Django 5.2 does)."""
    import json

    ops = connection.ops
    table = ops.quote_name(rm.Occurrence._meta.db_table)
    names = ", ".join(ops.quote_name(c.column) for c in columns)
    arrays = []
    params: list[Any] = []
    for c in columns:
        column_values = [row[c.index] for row in rows]
        if c.kind == "json":
            column_values = [None if v is None else json.dumps(v) for v in column_values]
        arrays.append(f"(%s)::{c.db_type}[]")
        params.append(column_values)
    suffix = ops.on_conflict_suffix_sql([], OnConflict.IGNORE, None, None)
    # Table, columns and types come from the model, never from input.
    sql = f"INSERT INTO {table} ({names}) SELECT * FROM UNNEST({', '.join(arrays)}) {suffix}"  # noqa: S608
    return sql, params


def future_unsent(enrolment_id: int, after: datetime) -> Any:
    """Occurrences of an enrolment not yet touched by a worker, due after a moment."""
    return rm.Occurrence.objects.filter(
        enrolment_id=enrolment_id, status=S.SCHEDULED, due_at__gt=after, tries=0, step=0
    ).filter(Q(claim_expires__isnull=True) | Q(claim_expires__lt=utc_now()))


def drop_future(
    enrolment_id: int, after: datetime, activity_codes: Iterable[str] | None = None
) -> int:
    """Remove future, never-attempted occurrences so they can be planned again."""
    qs = future_unsent(enrolment_id, after).filter(attempts__isnull=True)
    if activity_codes is not None:
        qs = qs.filter(activity_code__in=list(activity_codes))
    deleted, _ = qs.delete()
    return deleted


def cancel_pending(enrolment_id: int, reason: str) -> int:
    now = utc_now()
    return (
        rm.Occurrence.objects.filter(
            enrolment_id=enrolment_id, status__in=[S.SCHEDULED, S.RETRYING]
        )
        .filter(Q(claim_expires__isnull=True) | Q(claim_expires__lt=now))
        .update(status=S.CANCELLED, reason=reason, wake_at=None, updated_at=now)
    )


def cancel_ref(ref: str, reason: str) -> int:
    """Cancel pending occurrences attached to another object (e.g. a cancelled appointment)."""
    now = utc_now()
    return rm.Occurrence.objects.filter(ref=ref, status__in=[S.SCHEDULED, S.RETRYING]).update(
        status=S.CANCELLED, reason=reason, wake_at=None, updated_at=now
    )


def as_read(occ: rm.Occurrence) -> Any:
    """The occurrence's row only while it is as it was read: scheduled, untried, unclaimed and
    not updated since. Send-time learning and experiments change reminders through it, so a
    row the dispatcher has claimed meanwhile is never touched."""
    return rm.Occurrence.objects.filter(
        pk=occ.pk,
        status=S.SCHEDULED,
        step=0,
        tries=0,
        claimed_by="",
        updated_at=occ.updated_at,
    )


def still_as_read(occs: Iterable[rm.Occurrence]) -> dict[int, dict[str, Any]]:
    """Inside a transaction: lock those of ``occs`` whose rows are still as they were read (see
    ``as_read``) and return their current payloads by id. The rest were changed meanwhile."""
    read = {occ.pk: occ.updated_at for occ in occs}
    rows = (
        rm.Occurrence.objects.select_for_update()
        .filter(pk__in=read, status=S.SCHEDULED, step=0, tries=0, claimed_by="")
        .values_list("pk", "updated_at", "payload")
    )
    return {pk: payload for pk, updated_at, payload in rows if updated_at == read[pk]}


def schedule_one(
    *,
    organisation_id: int,
    patient_id: int,
    kind: str,
    source_key: str,
    due_at: datetime,
    time_zone: str,
    payload: Mapping[str, Any],
    ref: str = "",
    purpose: str = "care_reminders",
) -> rm.Occurrence:
    """Schedule a single reminder (an appointment reminder, a queue call). Idempotent by key."""
    from careloop.careplans.domain import local_of, zone

    tz = zone(time_zone)
    values = {
        "organisation_id": organisation_id,
        "patient_id": patient_id,
        "kind": kind,
        "purpose": purpose,
        "source_key": source_key,
        "local_due": f"{local_of(due_at, tz):%Y-%m-%dT%H:%M}",
        "time_zone": tz.key,
        "due_at": due_at,
        "wake_at": due_at,
        "link_digest": links.digest(links.token_for(source_key)),
        "payload": dict(payload),
        "ref": ref,
    }
    insert_occurrences([values])
    return rm.Occurrence.objects.get(source_key=source_key)


# --- acknowledgement --------------------------------------------------------------------------


def by_token(token: str, *, now: datetime | None = None) -> rm.Occurrence:
    """The occurrence a message link points to, while the link is valid."""
    if not token or len(token) > 64:
        raise NotFound()
    occ = (
        rm.Occurrence.objects.select_related("patient", "organisation")
        .filter(link_digest=links.digest(token))
        .first()
    )
    if occ is None or links.token_for(occ.source_key) != token:
        raise NotFound()
    ttl = settings_for(occ.organisation_id).link_ttl_hours
    if (now or utc_now()) > occ.due_at + timedelta(hours=ttl):
        raise NotFound()
    return occ


def _feed_rules(occ: rm.Occurrence, intake_event: rm.IntakeEvent) -> None:
    """A dose answer is an event for the adherence rules (e.g. three missed doses in a week)."""
    from careloop.alerts import evaluation

    evaluation.evaluate(occ.organisation_id, [_dose_event(occ, intake_event)])


def _dose_event(occ: rm.Occurrence, intake_event: rm.IntakeEvent) -> Any:
    """The adherence rules' event for one dose answer."""
    from careloop.alerts import evaluation

    return evaluation.make_event(
        occ.patient_id,
        kind="dose",
        at=intake_event.recorded_at,
        zone=occ.time_zone,
        value=0.0 if intake_event.status == "skipped" else 1.0,
        context=intake_event.status,
        ref=intake_event.pk,
    )


def acknowledge(
    occ_id: int,
    *,
    source: str,
    intake: str = "",
    reason: str = "",
    at: datetime | None = None,
    actor_name: str = "",
    actor: Actor | None = None,
) -> rm.Occurrence:
    """The patient confirmed. Medication answers become intake events. Repeats are harmless.

    ``actor`` is the staff member recording a confirmation given on the phone.
    """
    at = at or utc_now()
    if intake and intake not in ("taken", "skipped"):
        raise ValidationFailed(details={"intake": ["taken or skipped"]})
    if intake == "skipped" and reason not in rm.IntakeEvent.SkipReason.values:
        raise ValidationFailed(details={"reason": ["choose a reason"]})
    with transaction.atomic():
        occ = rm.Occurrence.objects.select_for_update().get(pk=occ_id)
        if occ.status in (S.CANCELLED, S.SKIPPED):
            raise Conflict("This reminder was withdrawn.")
        if occ.status == S.ACKNOWLEDGED:
            return occ
        occ.status = S.ACKNOWLEDGED
        occ.acknowledged_at = at
        occ.ack_source = source[:20]
        occ.wake_at = None
        occ.updated_at = at
        occ.save(update_fields=["status", "acknowledged_at", "ack_source", "wake_at", "updated_at"])
        if occ.kind == "medication":
            late = at - occ.due_at > timedelta(hours=2)
            status = "skipped" if intake == "skipped" else ("late" if late else "taken")
            intake_event, created = rm.IntakeEvent.objects.get_or_create(
                occurrence=occ,
                defaults={
                    "organisation_id": occ.organisation_id,
                    "patient_id": occ.patient_id,
                    "medication_id": occ.payload.get("medication_id"),
                    "status": status,
                    "reason": reason if status == "skipped" else "",
                    "scheduled_at": occ.due_at,
                    "recorded_at": at,
                    "source": source[:20],
                },
            )
            if created:
                _feed_rules(occ, intake_event)
        if actor is not None:
            audit.record(
                actor,
                "reminder.acknowledge",
                patient_id=occ.patient_id,
                obj=occ,
                detail={"source": source, "intake": intake},
            )
            return occ
        audit.append(
            action="reminder.acknowledge",
            organisation_id=occ.organisation_id,
            patient_id=occ.patient_id,
            object_type="reminders.occurrence",
            object_id=occ.pk,
            actor_name=actor_name or f"patient:{source}",
            detail={"via": source, "intake": intake},
        )
    return occ


@dataclass(frozen=True)
class Answer:
    """A patient's confirmation of one reminder (the arguments of ``acknowledge``)."""

    occurrence_id: int
    source: str
    intake: str = ""
    reason: str = ""
    at: datetime | None = None


ACK_FIELDS = ["status", "acknowledged_at", "ack_source", "wake_at", "updated_at"]


def acknowledge_many(answers: list[Answer], *, actor_name: str = "") -> dict[int, str]:
    """Patients' confirmations in one transaction (e.g. a batch of replies from a provider):
    the same rows, adherence-rule events and audit events as ``acknowledge`` one by one.
    Returns each occurrence's result: ``acknowledged``, ``repeat`` (it was already), ``withdrawn``
    or ``unknown``. Bad input in any answer refuses the whole batch before anything is written."""
    from careloop.alerts import evaluation

    for answer in answers:
        if answer.intake and answer.intake not in ("taken", "skipped"):
            raise ValidationFailed(details={"intake": ["taken or skipped"]})
        if answer.intake == "skipped" and answer.reason not in rm.IntakeEvent.SkipReason.values:
            raise ValidationFailed(details={"reason": ["choose a reason"]})
    now = utc_now()
    results: dict[int, str] = {}
    with transaction.atomic():
        ids = sorted({a.occurrence_id for a in answers})
        occs = rm.Occurrence.objects.select_for_update().filter(pk__in=ids).in_bulk()
        changed: list[rm.Occurrence] = []
        doses: list[tuple[rm.Occurrence, Answer]] = []
        entries: list[audit.Entry] = []
        for answer in answers:
            occ = occs.get(answer.occurrence_id)
            if occ is None:
                results[answer.occurrence_id] = "unknown"
                continue
            if occ.status in (S.CANCELLED, S.SKIPPED):
                results[occ.pk] = "withdrawn"
                continue
            if occ.status == S.ACKNOWLEDGED:
                results.setdefault(occ.pk, "repeat")
                continue
            at = answer.at or now
            occ.status = S.ACKNOWLEDGED
            occ.acknowledged_at = at
            occ.ack_source = answer.source[:20]
            occ.wake_at = None
            occ.updated_at = at
            changed.append(occ)
            results[occ.pk] = "acknowledged"
            if occ.kind == "medication":
                doses.append((occ, answer))
            entries.append(
                audit.Entry(
                    action="reminder.acknowledge",
                    organisation_id=occ.organisation_id,
                    patient_id=occ.patient_id,
                    object_type="reminders.occurrence",
                    object_id=occ.pk,
                    actor_name=actor_name or f"patient:{answer.source}",
                    detail={"via": answer.source, "intake": answer.intake},
                )
            )
        update_rows(changed, ACK_FIELDS)
        recorded = set(
            rm.IntakeEvent.objects.filter(
                occurrence_id__in=[occ.pk for occ, _a in doses]
            ).values_list("occurrence_id", flat=True)
        )
        intakes = []
        for occ, answer in doses:
            if occ.pk in recorded:
                continue
            at = answer.at or now
            late = at - occ.due_at > timedelta(hours=2)
            status = "skipped" if answer.intake == "skipped" else ("late" if late else "taken")
            intakes.append(
                rm.IntakeEvent(
                    occurrence=occ,
                    organisation_id=occ.organisation_id,
                    patient_id=occ.patient_id,
                    medication_id=occ.payload.get("medication_id"),
                    status=status,
                    reason=answer.reason if status == "skipped" else "",
                    scheduled_at=occ.due_at,
                    recorded_at=at,
                    source=answer.source[:20],
                )
            )
        rm.IntakeEvent.objects.bulk_create(intakes)
        by_org: dict[int, list[Any]] = {}
        for event in intakes:
            occ = occs[event.occurrence_id]
            by_org.setdefault(occ.organisation_id, []).append(_dose_event(occ, event))
        for org_id, events in by_org.items():
            evaluation.evaluate(org_id, events)
        audit.append_many(entries)
    return results


def apply_delivery(attempt_id: int, *, delivered: bool, detail: str = "") -> str:
    """A provider's delivery report. Never moves an occurrence backwards."""
    now = utc_now()
    with transaction.atomic():
        att = rm.Attempt.objects.select_for_update().filter(pk=attempt_id).first()
        if att is None:
            return "unknown"
        occ = rm.Occurrence.objects.select_for_update().get(pk=att.occurrence_id)
        if delivered:
            if att.outcome == rm.Attempt.Outcome.ACCEPTED:
                att.outcome = rm.Attempt.Outcome.DELIVERED
                att.delivered_at = now
                att.save(update_fields=["outcome", "delivered_at"])
            if occ.step == att.step and PROGRESS.get(S(occ.status), 9) < PROGRESS[S.DELIVERED]:
                occ.status = S.DELIVERED
                occ.updated_at = now
                occ.save(update_fields=["status", "updated_at"])
                return "delivered"
            return "ignored"
        att.detail = (detail or "delivery failed")[:300]
        att.save(update_fields=["detail"])
        if occ.step == att.step and occ.status == S.SENT:
            # Not delivered: move to the next rung of the ladder now.
            occ.status = S.FAILED
            occ.reason = "undelivered"
            occ.wake_at = now
            occ.updated_at = now
            occ.save(update_fields=["status", "reason", "wake_at", "updated_at"])
            return "failed"
        return "ignored"


def retry_dead(occ_id: int, organisation_id: int, *, now: datetime | None = None) -> rm.Occurrence:
    """Send a dead letter again (operations page), as a fresh try on the same ladder step."""
    now = now or utc_now()
    with transaction.atomic():
        occ = (
            rm.Occurrence.objects.select_for_update()
            .filter(pk=occ_id, organisation_id=organisation_id)
            .first()
        )
        if occ is None:
            raise NotFound()
        if occ.status != S.DEAD:
            raise Conflict("Only dead letters can be retried.")
        occ.status = S.RETRYING
        occ.reason = ""
        occ.tries = 0
        occ.wake_at = now
        occ.payload = {**occ.payload, "retry_from_dead": True}
        occ.updated_at = now
        occ.save(update_fields=["status", "reason", "tries", "wake_at", "payload", "updated_at"])
    return occ


# --- operations --------------------------------------------------------------------------------


def retry_dead_by(actor: Actor, occ_id: int) -> rm.Occurrence:
    """``retry_dead`` on behalf of staff who may see the occurrence (checked by the caller)."""
    with transaction.atomic():
        occ = retry_dead(occ_id, actor.organisation_id or 0)
        audit.record(actor, "reminder.retry", patient_id=occ.patient_id, obj=occ)
    return occ


def set_dispatch(actor: Actor, *, paused: bool, reason: str = "") -> rm.ReminderSettings:
    """Pause or resume sending for the actor's organisation; audited with the reason."""
    if not actor.can(Action.REMINDERS_OPERATE):
        audit.record_denied(actor, "reminders.dispatch", detail={"reason": "role"})
        raise Forbidden()
    reason = " ".join((reason or "").split())[:200]
    if paused and not reason:
        raise ValidationFailed(details={"reason": [gettext("Say why sending is paused.")]})
    org = actor.organisation_id or 0
    settings_for(org)
    with transaction.atomic():
        current = rm.ReminderSettings.objects.select_for_update().get(organisation_id=org)
        was = current.dispatch_paused
        current.dispatch_paused = paused
        current.paused_reason = reason if paused else ""
        current.save(update_fields=["dispatch_paused", "paused_reason"])
        audit.record(
            actor,
            "reminders.dispatch.pause" if paused else "reminders.dispatch.resume",
            obj=current,
            detail={"reason": reason, "was_paused": was},
        )
    return current
