"""Periodic checks the worker runs: readings that did not come (absence rules) and alerts whose
SLA passed (escalation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from careloop.accounts.models import Organisation
from careloop.alerts import evaluation, routing
from careloop.alerts import models as am
from careloop.audit import services as audit
from careloop.kit.clock import epoch_seconds, utc_now
from careloop.observations import models as om


def absence(now: datetime | None = None, organisation_id: int | None = None) -> int:
    """Raise absence alerts ("no glucose for 3 days while the plan asks for one daily").

    A patient's gap starts at their last reading of the kind, or when the plan began expecting
    it if that is later; the rule fires when the gap reaches its length. Each run looks only at
    gaps that reached it since the previous run (two index range scans), so a sweep costs the
    same for 100 patients as for 100,000, and one gap gives one alert.
    """
    now = now or utc_now()
    stamp = epoch_seconds(now)
    raised = 0
    orgs = Organisation.objects.all()
    if organisation_id is not None:
        orgs = orgs.filter(pk=organisation_id)
    for org_id in orgs.values_list("pk", flat=True):
        ruleset = evaluation.ruleset_for(org_id)
        for code, kind, seconds in ruleset.absence_rules():
            with transaction.atomic():
                raised += _absence_rule(org_id, ruleset, code, kind, seconds, now, stamp)
    return raised


def _absence_rule(
    org_id: int, ruleset: Any, code: str, kind: str, seconds: int, now: datetime, stamp: int
) -> int:
    cutoff = now - timedelta(seconds=seconds)
    mark = (
        am.SweepMark.objects.select_for_update().filter(organisation_id=org_id, rule=code).first()
    )
    since = mark.swept_until if mark is not None else None
    if since is not None and since >= cutoff:
        return 0
    base = om.Latest.objects.filter(organisation_id=org_id, kind=kind, expected_since__isnull=False)
    by_reading = base.filter(last_at__lt=cutoff, last_at__gte=F("expected_since"))
    by_start = base.filter(expected_since__lt=cutoff).filter(
        Q(last_at__isnull=True) | Q(last_at__lt=F("expected_since"))
    )
    if since is not None:
        by_reading = by_reading.filter(last_at__gte=since)
        by_start = by_start.filter(expected_since__gte=since)
    fires: list[Any] = []
    dead = set()
    for query in (by_reading, by_start):
        for pid, last_at, expected, deceased in query.values_list(
            "patient_id", "last_at", "expected_since", "patient__deceased_on"
        ).iterator(chunk_size=5000):
            if deceased is not None:
                dead.add(pid)
                continue
            last = epoch_seconds(last_at) if last_at else None
            start = epoch_seconds(expected)  # type: ignore[arg-type]  # filtered not null
            if ruleset.absent(code, last_at=last, expected_since=start, now=stamp):
                fires.append(ruleset.absence_fire(code, pid, max(last or start, start), stamp))
    raised = evaluation.apply(org_id, ruleset, fires) if fires else 0
    am.SweepMark.objects.update_or_create(
        organisation_id=org_id, rule=code, defaults={"swept_until": cutoff}
    )
    return raised


def escalate(now: datetime | None = None) -> int:
    """Alerts still open when their SLA passes go to the on-call person or the department head;
    urgent ones notify them again."""
    now = now or utc_now()
    moved = 0
    overdue = am.Alert.objects.filter(
        status=am.Alert.Status.OPEN, due_at__lt=now, escalated_at__isnull=True
    ).order_by("due_at")
    for alert_id in list(overdue.values_list("pk", flat=True)[:500]):
        with transaction.atomic():
            alert = am.Alert.objects.select_for_update().get(pk=alert_id)
            if alert.status != am.Alert.Status.OPEN or alert.escalated_at is not None:
                continue
            target = None
            if alert.department_id is not None:
                target = routing.on_call(alert.department_id) or routing.head_of(
                    alert.department_id
                )
            alert.escalated_at = now
            alert.escalated_to_id = target
            alert.business_status = "escalated"
            alert.save(update_fields=["escalated_at", "escalated_to", "business_status"])
            audit.append(
                action="alert.escalate",
                organisation_id=alert.organisation_id,
                patient_id=alert.patient_id,
                actor_name="system:escalation",
                object_type="alerts.alert",
                object_id=alert.pk,
                detail={"to": target, "due": alert.due_at.astimezone(UTC).isoformat()},
            )
            if alert.priority != am.Priority.ROUTINE:
                from careloop.alerts import notifications

                notifications.queue_urgent([alert.pk], step="escalated")
            moved += 1
    return moved


MISSED_AFTER = timedelta(hours=24)


def missed_doses(now: datetime | None = None) -> int:
    """Dose reminders unanswered a day after they were due become "missed" events for the
    adherence rules, once each (the occurrence id is unique in MissedDose)."""
    from careloop.observations import models as observation_models
    from careloop.reminders import selectors as reminder_selectors

    now = now or utc_now()
    before = now - MISSED_AFTER
    rows = reminder_selectors.unanswered_doses(before=before, since=before - timedelta(days=7))
    if not rows:
        return 0
    known = set(
        observation_models.MissedDose.objects.filter(
            occurrence_id__in=[r[0] for r in rows]
        ).values_list("occurrence_id", flat=True)
    )
    by_org: dict[int, list[Any]] = {}
    for row in rows:
        if row[0] not in known:
            by_org.setdefault(row[1], []).append(row)
    found = 0
    for org_id, items in by_org.items():
        with transaction.atomic():
            fresh = []
            for occ, _org, pid, due, zone in items:
                # One row per occurrence: a second worker running the same sweep finds it taken.
                _row, created = observation_models.MissedDose.objects.get_or_create(
                    occurrence_id=occ,
                    defaults={"organisation_id": org_id, "patient_id": pid, "due_at": due},
                )
                if created:
                    fresh.append(
                        evaluation.make_event(
                            pid,
                            kind="dose",
                            at=due,
                            zone=zone,
                            value=0.0,
                            context="missed",
                            ref=-occ,
                        )  # fmt: skip
                    )
            evaluation.evaluate(org_id, fresh)
            found += len(fresh)
        _tell_family(org_id, {event.patient_id for event in fresh}, now)
    return found


def _tell_family(org_id: int, patient_ids: set[int], now: datetime) -> None:
    """Family members with portal access who asked for it get one SMS a day (never fatal)."""
    from careloop.portal import services as portal_services

    try:
        portal_services.notify_missed_doses(org_id, patient_ids, now)
    except Exception:
        import logging

        logging.getLogger("careloop.alerts").exception("missed-dose family notices failed")
