"""The demo's year of history (demo/history.py): every month of the last year has clinic
readings, dispensings, closed follow-up tasks, answered reminders and survey answers; the rows
keep the invariants the app relies on; and a seed always gives the same history."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from careloop.accounts.models import Membership
from careloop.alerts import evaluation
from careloop.alerts import models as am
from careloop.alerts import services as alert_services
from careloop.analytics import pdc
from careloop.analytics.registry import add_months, last_months, month_of
from careloop.appointments import models as apm
from careloop.demo.build import build
from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.patients import models as pm
from careloop.questionnaires import models as qm
from careloop.reminders import models as rm

pytestmark = pytest.mark.django_db

ZONE = ZoneInfo("Asia/Shanghai")


def _today() -> date:
    return utc_now().astimezone(ZONE).date()


def _month(moment: Any) -> date:
    local = moment.astimezone(ZONE).date() if hasattr(moment, "astimezone") else moment
    return month_of(local)


@pytest.fixture
def demo() -> Any:
    return build(patients=30, seed=7).organisation


def _past_months() -> list[date]:
    """The 11 complete months before the current one (all inside the year of history)."""
    return last_months(add_months(month_of(_today()), -1), 11)


def test_every_month_of_the_year_has_history(demo: Any) -> None:
    months = _past_months()
    staff_readings = Counter(
        _month(at)
        for at in om.Observation.objects.filter(
            organisation=demo, source="staff", kind="bp"
        ).values_list("effective_at", flat=True)
    )
    fills = Counter(
        _month(day)
        for day in pm.Dispense.objects.filter(organisation=demo).values_list(
            "when_handed_over", flat=True
        )
    )
    closed = Counter(
        _month(at)
        for at in am.Task.objects.filter(organisation=demo, status="done").values_list(
            "closed_at", flat=True
        )
    )
    answered = Counter(
        _month(at)
        for at in rm.Occurrence.objects.filter(
            organisation=demo, status="acknowledged"
        ).values_list("acknowledged_at", flat=True)
    )
    surveys = Counter(
        _month(at)
        for at in qm.Response.objects.filter(organisation=demo, status="completed").values_list(
            "completed_at", flat=True
        )
    )
    for month in months:
        assert staff_readings[month] > 0, month
        assert fills[month] > 0, month
        assert closed[month] > 0, month
        assert answered[month] > 0, month
    assert sum(1 for m in months if surveys[m]) >= 10
    # Registration spread: some patients new this quarter, most registered over a year ago.
    registered = list(
        pm.Patient.objects.filter(organisation=demo).values_list("registered_on", flat=True)
    )
    assert None not in registered
    today = _today()
    assert any((today - d).days < 90 for d in registered)
    assert sum((today - d).days >= 365 for d in registered) > len(registered) // 2
    # Admissions, and the appointments behind clinic visits, missed ones included.
    kinds = set(pm.Encounter.objects.filter(organisation=demo).values_list("kind", flat=True))
    assert {"follow_up", "inpatient"} <= kinds
    statuses = set(
        apm.Appointment.objects.filter(organisation=demo).values_list("status", flat=True)
    )
    assert {"completed", "no_show"} <= statuses
    assert apm.CallResult.objects.filter(organisation=demo).exists()


def test_the_programme_improves_over_the_year(demo: Any) -> None:
    """Clinic blood pressure controlled at a third to a half of visits a year ago, more in the
    months before the last quarter."""
    today = _today()
    early: list[bool] = []
    late: list[bool] = []
    for at, sys, dia in om.Observation.objects.filter(
        organisation=demo, source="staff", kind="bp"
    ).values_list("effective_at", "value", "value2"):
        age = (today - at.astimezone(ZONE).date()).days
        ok = sys < 140 and (dia or 0) < 90
        if 270 <= age <= 365:
            early.append(ok)
        elif 90 < age <= 180:
            late.append(ok)
    assert early and late
    assert sum(early) / len(early) < sum(late) / len(late)


def test_history_keeps_the_invariants_the_app_relies_on(demo: Any) -> None:
    today = _today()
    # Readings: the local day and hour are those of the reading's zone.
    for at, zone, day, hour in om.Observation.objects.filter(organisation=demo).values_list(
        "effective_at", "time_zone", "local_day", "local_hour"
    ):
        local = at.astimezone(ZoneInfo(zone))
        assert (day, hour) == (local.date().toordinal(), local.hour)
    # Staff readings name who entered them, a member of the patient's department.
    members = set(Membership.objects.values_list("staff_id", "department_id"))
    first_dept: dict[int, int] = {}
    for pid, dept in pm.PatientDepartment.objects.order_by("id").values_list(
        "patient_id", "department_id"
    ):
        first_dept.setdefault(pid, dept)
    for pid, by in om.Observation.objects.filter(organisation=demo, source="staff").values_list(
        "patient_id", "entered_by_id"
    ):
        assert (by, first_dept[pid]) in members
    # Reminders: one delivery per occurrence and channel step, answered ones have a time.
    keys = list(rm.Attempt.objects.filter(organisation=demo).values_list("dedupe_key", "try_no"))
    assert len(keys) == len(set(keys)) > 0
    for status, acked in rm.Occurrence.objects.filter(organisation=demo).values_list(
        "status", "acknowledged_at"
    ):
        assert (status == "acknowledged") == (acked is not None)
    assert not rm.Attempt.objects.filter(
        organisation=demo, outcome="delivered", delivered_at__isnull=True
    ).exists()
    intake = rm.IntakeEvent.objects.filter(organisation=demo)
    assert intake.exists()
    assert not intake.exclude(occurrence__status="acknowledged").exists()
    # Tasks: closed after they were made, by staff of their department, with a known outcome.
    closed = am.Task.objects.filter(organisation=demo, closed_at__isnull=False)
    assert closed.count() > 30
    for created, closed_at, by, dept, status, outcome in closed.values_list(
        "created_at", "closed_at", "closed_by_id", "department_id", "status", "outcome"
    ):
        assert closed_at >= created
        assert (by, dept) in members
        if status == "done":
            assert outcome in alert_services.OUTCOMES
    # Alerts: raised when triggered, due by the rule's SLA, handled after they were raised.
    handled = am.Alert.objects.filter(organisation=demo, acknowledged_at__isnull=False)
    assert handled.count() > 10
    for alert in handled:
        assert alert.triggered_at <= alert.raised_at <= alert.acknowledged_at
        assert alert.closed_at is None or alert.closed_at >= alert.acknowledged_at
        if alert.rule.startswith("ph-"):
            assert alert.due_at - alert.raised_at == timedelta(days=14)
    # Nothing of the past is left open in the worklists.
    assert not am.Task.objects.filter(
        organisation=demo, status="open", due_at__lt=utc_now() - timedelta(days=3)
    ).exists()
    assert evaluation.recompute(demo.pk)["identical"] is True
    # Dispensings: a class adherence is measured by, never in the future.
    fills = pm.Dispense.objects.filter(organisation=demo)
    assert set(fills.values_list("drug_class", flat=True)) <= set(pdc.CLASSES)
    assert not fills.filter(when_handed_over__gt=today).exists()
    per_med = Counter(
        fills.filter(when_handed_over__gt=today - timedelta(days=365)).values_list(
            "prescription_id", flat=True
        )
    )
    assert 7 <= sorted(per_med.values())[len(per_med) // 2] <= 13
    # Appointments sit in slots of their department, within capacity.
    for appointment in apm.Appointment.objects.filter(
        organisation=demo, starts_at__lt=utc_now()
    ).select_related("slot"):
        assert appointment.slot.department_id == appointment.department_id
        assert appointment.slot.booked <= appointment.slot.capacity
    # The dead have nothing after their death.
    for pid, died in pm.Patient.objects.filter(
        organisation=demo, deceased_on__isnull=False
    ).values_list("pk", "deceased_on"):
        assert not pm.Dispense.objects.filter(patient_id=pid, when_handed_over__gte=died).exists()
        readings = om.Observation.objects.filter(patient_id=pid).values_list(
            "effective_at", flat=True
        )
        assert all(at.astimezone(ZONE).date() < died for at in readings)


def _snapshot(org: Any) -> dict[str, Any]:
    rank = {
        pk: i
        for i, pk in enumerate(
            pm.Patient.objects.filter(organisation=org).order_by("pk").values_list("pk", flat=True)
        )
    }
    out: dict[str, Any] = defaultdict(list)
    for row in (
        pm.Patient.objects.filter(organisation=org)
        .order_by("pk")
        .values_list("registered_on", "deceased_on")
    ):
        out["patients"].append(row)
    for pid, *rest in (
        om.Observation.objects.filter(organisation=org, source="staff")
        .order_by("patient_id", "effective_at", "kind")
        .values_list("patient_id", "kind", "effective_at", "value", "value2")
    ):
        out["readings"].append((rank[pid], *rest))
    for pid, *rest in (
        pm.Dispense.objects.filter(organisation=org)
        .order_by("patient_id", "when_handed_over", "name")
        .values_list("patient_id", "name", "drug_class", "when_handed_over", "days_supply")
    ):
        out["fills"].append((rank[pid], *rest))
    for pid, *rest in (
        am.Task.objects.filter(organisation=org, source_key__startswith="demo-history:")
        .order_by("patient_id", "due_at")
        .values_list("patient_id", "due_at", "status", "outcome", "closed_at")
    ):
        out["tasks"].append((rank[pid], *rest))
    for pid, *rest in (
        rm.Occurrence.objects.filter(organisation=org, source_key__startswith="demo-history:")
        .order_by("patient_id", "due_at")
        .values_list("patient_id", "due_at", "status", "acknowledged_at")
    ):
        out["doses"].append((rank[pid], *rest))
    for pid, score in (
        qm.Response.objects.filter(organisation=org)
        .order_by("patient_id", "completed_at")
        .values_list("patient_id", "score")
    ):
        out["surveys"].append((rank[pid], score))
    return dict(out)


def _build_and_forget(seed: int) -> dict[str, Any]:
    with transaction.atomic():
        org = build(patients=8, seed=seed).organisation
        snapshot = _snapshot(org)
        transaction.set_rollback(True)
    return snapshot


def test_a_seed_always_gives_the_same_history() -> None:
    first = _build_and_forget(3)
    again = _build_and_forget(3)
    assert first["readings"] and first["fills"] and first["doses"]
    assert first == again
    other = _build_and_forget(4)
    assert other["readings"] != first["readings"]
