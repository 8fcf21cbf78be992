"""Follow-up operations metrics (metrics.md, "Follow-up operations") on hand-built data with
hand-computed figures: coverage, contact rate, completion, alert response, questionnaires."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.analytics.registry import METRICS, all_metrics
from careloop.appointments import models as apm
from careloop.questionnaires import models as qm
from careloop.reminders import models as rm
from tests.analytics.helpers_ops import at, cohort, key, make_patients

pytestmark = pytest.mark.django_db

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
TODAY = date(2026, 3, 15)


@pytest.fixture(autouse=True)
def _registered() -> None:
    all_metrics()


def task(world: Any, patient: Any, due: Any, **fields: Any) -> am.Task:
    fields.setdefault("kind", "call_patient")
    fields.setdefault("department", world.cardio)
    return am.Task.objects.create(
        organisation=world.org, patient=patient, due_at=due, source_key=key(), **fields
    )


def closed(world: Any, patient: Any, due: Any, when: Any, outcome: str, **fields: Any) -> am.Task:
    return task(world, patient, due, status="done", closed_at=when, outcome=outcome, **fields)


def contact(world: Any, patient: Any, kind: str, local_due: str, **fields: Any) -> rm.Occurrence:
    day = [int(x) for x in local_due[:10].split("-")]
    return rm.Occurrence.objects.create(
        organisation=world.org,
        patient=patient,
        kind=kind,
        source_key=key(),
        local_due=local_due,
        time_zone="Asia/Shanghai",
        due_at=at(*day),
        **fields,
    )


def call_result(world: Any, patient: Any, on: date, outcome: str, reason: str = "") -> None:
    apm.CallResult.objects.create(
        organisation=world.org, patient=patient, outcome=outcome, remove_reason=reason, called_on=on
    )


# --- completion -----------------------------------------------------------------------------


@pytest.fixture
def tasks(world: Any) -> dict[str, Any]:
    p = make_patients(world, 6)
    endo = make_patients(world, 1, world.endo)[0]
    dead = make_patients(world, 1, deceased_on=date(2026, 3, 1))[0]
    nurse = world.staff["nurse.cardiology"]
    due = at(2026, 2, 10, 10)
    return {
        # Closed 23 hours after due with a valid outcome: within the 24-hour grace.
        "on_time": closed(world, p[0], due, at(2026, 2, 11, 9), "reached", assignee=nurse),
        # Closed 25 hours after due: late.
        "late": closed(world, p[1], due, at(2026, 2, 11, 11), "reached", assignee=nurse),
        "open": task(world, p[2], due, assignee=nurse),
        # Closed in time but without an outcome: not a valid completion.
        "no_outcome": closed(world, p[3], due, at(2026, 2, 10, 12), "", kind="review"),
        "cancelled": task(world, p[4], due, status="cancelled"),
        # 23:00 on 31 January in Shanghai (15:00 UTC): a January task.
        "january": closed(world, p[5], at(2026, 1, 31, 23), at(2026, 2, 1, 8), "no_answer"),
        "endo": closed(world, endo, due, at(2026, 2, 10, 11), "done", department=world.endo),
        "dead": closed(world, dead, due, at(2026, 2, 10, 11), "done"),
        "patients": p,
    }


def test_completion_counts_tasks_closed_with_an_outcome_within_the_grace(
    world: Any, tasks: dict[str, Any]
) -> None:
    metric = METRICS["completion"]
    org = metric.compute(cohort(world, TODAY), [JAN, FEB])
    # February: on_time, late, open, no_outcome, endo due (cancelled and dead left out);
    # completed on time: on_time and endo.
    assert org[FEB]["completed"].numerator == 2
    assert org[FEB]["completed"].denominator == 5
    assert org[FEB]["closed_late"].numerator == 2  # late, no_outcome
    assert org[FEB]["open"].numerator == 1
    # The task due at 23:00 local on 31 January belongs to January; closed in 9 hours.
    assert (org[JAN]["completed"].numerator, org[JAN]["completed"].denominator) == (1, 1)

    cardio = metric.compute(cohort(world, TODAY, department_ids=(world.cardio.pk,)), [FEB])
    assert (cardio[FEB]["completed"].numerator, cardio[FEB]["completed"].denominator) == (1, 4)


def test_completion_grace_is_configurable(world: Any, tasks: dict[str, Any], settings: Any) -> None:
    settings.ANALYTICS_TASK_GRACE_HOURS = 48
    feb = METRICS["completion"].compute(cohort(world, TODAY), [FEB])[FEB]
    assert feb["completed"].numerator == 3  # the task closed after 25 hours now counts


def test_completion_breakdown_by_department_and_staff(world: Any, tasks: dict[str, Any]) -> None:
    metric = METRICS["completion"]
    by_dept = {
        k: parts for k, _label, parts in metric.breakdowns["department"](cohort(world, TODAY), FEB)
    }
    assert by_dept[str(world.cardio.pk)]["completed"].value == pytest.approx(1 / 4)
    assert by_dept[str(world.endo.pk)]["completed"].value == 1.0
    by_staff = {
        k: parts for k, _label, parts in metric.breakdowns["staff"](cohort(world, TODAY), FEB)
    }
    nurse = str(world.staff["nurse.cardiology"].pk)
    assert (by_staff[nurse]["completed"].numerator, by_staff[nurse]["completed"].denominator) == (
        1,
        3,
    )
    # The review and the endocrinology task have no assignee and were closed by nobody.
    assert by_staff[""]["completed"].denominator == 2


def test_completion_drill_down_names_the_patients(world: Any, tasks: dict[str, Any]) -> None:
    metric = METRICS["completion"]
    assert metric.patients is not None
    p = tasks["patients"]
    assert metric.patients(cohort(world, TODAY), FEB, "open") == [p[2].pk]
    late = metric.patients(cohort(world, TODAY), FEB, "closed_late")
    assert late == sorted([p[1].pk, p[3].pk])


# --- contact rate ---------------------------------------------------------------------------


def test_contact_rate_no_answer_is_an_attempt_that_did_not_reach(world: Any) -> None:
    p = make_patients(world, 6)
    due = at(2026, 2, 3)
    closed(world, p[0], due, at(2026, 2, 3, 11), "reached")
    closed(world, p[1], due, at(2026, 2, 3, 11), "no_answer")
    closed(world, p[2], due, at(2026, 2, 3, 11), "wrong_number", kind="family_call")
    closed(world, p[3], due, at(2026, 2, 4, 11), "agreed_to_visit")
    closed(world, p[3], due, at(2026, 2, 4, 11), "done", kind="review")  # not a call
    task(world, p[4], due)  # open: not an attempt
    call_result(world, p[4], date(2026, 2, 5), "remind_later")
    call_result(world, p[5], date(2026, 2, 6), "removed", "unavailable")
    call_result(world, p[5], date(2026, 3, 2), "agreed_to_visit")  # March

    metric = METRICS["contact_rate"]
    result = metric.compute(cohort(world, TODAY), [FEB, MAR])
    # Attempts in February: 4 call tasks + 2 call results; reached: reached, agreed, remind later.
    assert (result[FEB]["reached"].numerator, result[FEB]["reached"].denominator) == (3, 6)
    assert result[FEB]["not_reached"].numerator == 3
    assert (result[MAR]["reached"].numerator, result[MAR]["reached"].denominator) == (1, 1)
    assert metric.patients is not None
    assert metric.patients(cohort(world, TODAY), FEB, "not_reached") == [p[1].pk, p[2].pk, p[5].pk]


def test_contact_rate_department_scope_excludes_other_departments(world: Any) -> None:
    cardio = make_patients(world, 1)[0]
    endo = make_patients(world, 1, world.endo)[0]
    due = at(2026, 2, 3)
    closed(world, cardio, due, at(2026, 2, 3, 11), "no_answer")
    closed(world, endo, due, at(2026, 2, 3, 11), "reached", department=world.endo)
    call_result(world, endo, date(2026, 2, 4), "agreed_to_visit")
    scoped = cohort(world, TODAY, department_ids=(world.cardio.pk,))
    feb = METRICS["contact_rate"].compute(scoped, [FEB])[FEB]
    assert (feb["reached"].numerator, feb["reached"].denominator) == (0, 1)
    rows = METRICS["contact_rate"].breakdowns["department"](cohort(world, TODAY), FEB)
    by_dept = {k: parts["reached"] for k, _label, parts in rows}
    assert (by_dept[str(world.endo.pk)].numerator, by_dept[str(world.endo.pk)].denominator) == (
        2,
        2,
    )
    assert by_dept[str(world.cardio.pk)].value == 0.0


# --- coverage -------------------------------------------------------------------------------


def test_coverage_patients_due_with_an_attempt(world: Any) -> None:
    a, b, c, d, e, f = make_patients(world, 6)
    nurse = world.staff["nurse.cardiology"]
    # a: a call task due in February, closed with "no answer" (an attempt) in February.
    closed(world, a, at(2026, 2, 5), at(2026, 2, 6), "no_answer", assignee=nurse)
    # b: a plan follow-up call due in February, a call result recorded in February.
    contact(world, b, "call", "2026-02-12T09:00")
    call_result(world, b, date(2026, 2, 13), "remind_later")
    # c: a revisit reminder due in February, nobody tried.
    contact(world, c, "revisit", "2026-02-20T09:00")
    # d: a withdrawn plan contact is not due.
    contact(world, d, "call", "2026-02-20T09:00", status=rm.Status.CANCELLED)
    # e: an attempt without anything due does not enter the figure.
    call_result(world, e, date(2026, 2, 3), "agreed_to_visit")
    # f: due in February, tried only in March: not covered in February.
    task(world, f, at(2026, 2, 25), assignee=nurse)
    closed(world, f, at(2026, 3, 1), at(2026, 3, 2), "reached")

    metric = METRICS["coverage"]
    result = metric.compute(cohort(world, TODAY), [FEB, MAR])
    assert (result[FEB]["covered"].numerator, result[FEB]["covered"].denominator) == (2, 4)
    assert (result[MAR]["covered"].numerator, result[MAR]["covered"].denominator) == (1, 1)
    assert metric.patients is not None
    assert metric.patients(cohort(world, TODAY), FEB, "covered") == [a.pk, b.pk]
    assert metric.patients(cohort(world, TODAY), FEB, "not_covered") == [c.pk, f.pk]
    by_staff = {
        k: parts["covered"]
        for k, _l, parts in metric.breakdowns["staff"](cohort(world, TODAY), FEB)
    }
    assert (by_staff[str(nurse.pk)].numerator, by_staff[str(nurse.pk)].denominator) == (1, 2)
    assert (by_staff[""].numerator, by_staff[""].denominator) == (1, 2)  # plan contacts


# --- alert response -------------------------------------------------------------------------


def alert(world: Any, patient: Any, raised: Any, due: Any, **fields: Any) -> am.Alert:
    fields.setdefault("department", world.cardio)
    fields.setdefault("rule", "bp_high")
    return am.Alert.objects.create(
        organisation=world.org,
        patient=patient,
        key=key(),
        severity="high",
        priority="urgent",
        performer_role="nurse",
        text_zh="血压高",
        text_en="High BP",
        triggered_at=raised,
        raised_at=raised,
        due_at=due,
        **fields,
    )


def test_alert_response_times_and_sla(world: Any) -> None:
    p = make_patients(world, 5)
    raised, due = at(2026, 2, 10, 10), at(2026, 2, 10, 12)
    # Acknowledged after 1 h (within SLA), resolved after 3 h (late).
    alert(
        world,
        p[0],
        raised,
        due,
        status="resolved",
        acknowledged_at=at(2026, 2, 10, 11),
        closed_at=at(2026, 2, 10, 13),
        outcome="advice_given",
    )
    # Acknowledged after 4 h, dismissed after 5 h: both late.
    alert(
        world,
        p[1],
        raised,
        due,
        status="dismissed",
        acknowledged_at=at(2026, 2, 10, 14),
        closed_at=at(2026, 2, 10, 15),
        outcome="duplicate",
        rule="glucose_low",
    )
    # Closed by a later reading before anyone took it on: nobody had to answer.
    alert(
        world,
        p[2],
        raised,
        due,
        status="resolved",
        closed_at=at(2026, 2, 10, 11),
        outcome="auto_resolved",
    )
    # Still open, deadline passed: counts, not within SLA.
    alert(world, p[3], raised, due)
    # Another department's alert.
    alert(world, p[4], raised, due, department=world.endo, acknowledged_at=at(2026, 2, 10, 10, 30))

    metric = METRICS["alert_response"]
    scoped = cohort(world, TODAY, department_ids=(world.cardio.pk,))
    feb = metric.compute(scoped, [FEB])[FEB]
    assert (
        feb["acknowledged_within_sla"].numerator,
        feb["acknowledged_within_sla"].denominator,
    ) == (1, 3)
    assert (feb["resolved_within_sla"].numerator, feb["resolved_within_sla"].denominator) == (0, 3)
    assert feb["median_ack_hours"].value == pytest.approx(2.5)  # median of 1 h and 4 h
    assert feb["median_resolve_hours"].value == pytest.approx(4.0)  # median of 3 h and 5 h
    assert feb["median_ack_hours"].denominator is None
    assert metric.patients is not None
    assert metric.patients(scoped, FEB, "acknowledged_within_sla") == [p[0].pk]
    by_rule = {k: parts for k, _l, parts in metric.breakdowns["rule"](scoped, FEB)}
    assert by_rule["glucose_low"]["acknowledged_within_sla"].value == 0.0
    assert by_rule["bp_high"]["acknowledged_within_sla"].value == pytest.approx(1 / 2)


def test_alert_not_yet_due_is_left_out_until_decided(world: Any) -> None:
    p = make_patients(world, 1)[0]
    # Raised on the as-of day with the deadline the next day: not yet decided.
    alert(world, p, at(2026, 3, 15, 9), at(2026, 3, 16, 9))
    mar = METRICS["alert_response"].compute(cohort(world, TODAY), [MAR])[MAR]
    assert mar["acknowledged_within_sla"].denominator == 0
    assert mar["acknowledged_within_sla"].value is None


# --- questionnaire completion ---------------------------------------------------------------


def test_questionnaire_completion_by_questionnaire(world: Any) -> None:
    p = make_patients(world, 5)
    phq = qm.Questionnaire.objects.create(url="urn:test:phq", title="PHQ-9", status="active")
    sat = qm.Questionnaire.objects.create(url="urn:test:sat", title="满意度", status="active")
    sent = at(2026, 2, 2)

    def assign(patient: Any, q: Any, status: str, created: Any = sent) -> None:
        qm.Assignment.objects.create(
            organisation=world.org,
            patient=patient,
            questionnaire=q,
            status=status,
            due_at=created,
            created_at=created,
        )

    assign(p[0], phq, "completed")
    assign(p[1], phq, "open")
    assign(p[2], sat, "completed")
    assign(p[3], sat, "completed")
    assign(p[4], sat, "cancelled")  # withdrawn: not counted
    assign(p[4], sat, "completed", at(2026, 1, 20))  # January

    metric = METRICS["questionnaire_completion"]
    result = metric.compute(cohort(world, TODAY), [JAN, FEB])
    assert (result[FEB]["completed"].numerator, result[FEB]["completed"].denominator) == (3, 4)
    assert (result[JAN]["completed"].numerator, result[JAN]["completed"].denominator) == (1, 1)
    rows = {
        k: parts["completed"]
        for k, _l, parts in metric.breakdowns["questionnaire"](cohort(world, TODAY), FEB)
    }
    assert rows[str(phq.pk)].value == pytest.approx(0.5)
    assert rows[str(sat.pk)].value == 1.0
    assert metric.patients is not None
    assert metric.patients(cohort(world, TODAY), FEB, "not_completed") == [p[1].pk]


def test_every_operations_metric_names_its_definition() -> None:
    all_metrics()
    for key_ in (
        "coverage",
        "contact_rate",
        "completion",
        "alert_response",
        "questionnaire_completion",
    ):
        metric = METRICS[key_]
        assert metric.group == "operations"
        assert "÷" in str(metric.definition)
        assert metric.headline in {p.key for p in metric.parts}
