"""The task list: open tasks of my departments, filters, and closing a task with an outcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.alerts import services as task_services
from careloop.audit.models import AuditEvent
from careloop.reminders import models as rm
from tests.careplans.pages import frozen, signed_in, text
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db
NOW = utc(2026, 3, 2, 2, 0)


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    with frozen(NOW):
        yield


def task(
    clinic: Clinic,
    patient: Any,
    key: str,
    *,
    due: Any = NOW,
    kind: str = "call_patient",
    occurrence: rm.Occurrence | None = None,
    department: Any = None,
) -> am.Task:
    t = task_services.open_task(
        organisation_id=clinic.world.org.pk,
        patient_id=patient.pk,
        kind=kind,
        source_key=key,
        due_at=due,
        reason="no acknowledgement",
        department_id=(department or clinic.world.cardio).pk,
        occurrence_id=occurrence.pk if occurrence else None,
    )
    return t


class TestList:
    def test_open_tasks_sorted_by_due_with_patient_links(self, clinic: Clinic) -> None:
        p = clinic.patient()
        task(clinic, p, "a", due=NOW + timedelta(hours=3))
        task(clinic, p, "b", due=NOW - timedelta(hours=1), kind="fix_contact")
        closed = task(clinic, p, "c")
        am.Task.objects.filter(pk=closed.pk).update(status="done")
        page = text(signed_in("nurse.cardiology").get("/tasks/"))
        assert page.count('data-testid="task"') == 2
        assert page.index('data-kind="fix_contact"') < page.index('data-kind="call_patient"')
        assert f'href="/patients/{p.pk}/"' in page
        assert "Overdue" in page
        newest = text(signed_in("nurse.cardiology").get("/tasks/", {"sort": "-due"}))
        assert newest.index('data-kind="call_patient"') < newest.index('data-kind="fix_contact"')

    def test_filters(self, clinic: Clinic) -> None:
        p = clinic.patient()
        mine = task(clinic, p, "a", due=NOW + timedelta(hours=3))
        am.Task.objects.filter(pk=mine.pk).update(assignee=clinic.world.staff["nurse.cardiology"])
        task(clinic, p, "b", due=NOW - timedelta(hours=1), kind="review")
        client = signed_in("nurse.cardiology")
        assert text(client.get("/tasks/", {"scope": "mine"})).count('data-testid="task"') == 1
        overdue = text(client.get("/tasks/", {"overdue": "1"}))
        assert overdue.count('data-testid="task"') == 1 and "Review by" in overdue
        review = text(client.get("/tasks/", {"kind": "review"}))
        assert 'data-kind="review"' in review and 'data-kind="call_patient"' not in review
        none = text(client.get("/tasks/", {"kind": "family_call"}))
        assert "No open tasks match" in none

    def test_the_dispatchers_reasons_are_put_in_words(self, clinic: Clinic) -> None:
        p = clinic.patient()
        task(clinic, p, "a")
        dead = task(clinic, p, "b", kind="fix_contact")
        am.Task.objects.filter(pk=dead.pk).update(reason="dead letter: invalid_address")
        page = text(signed_in("nurse.cardiology").get("/tasks/"))
        assert "the patient did not confirm the reminder" in page
        assert "the reminder could not be sent: invalid address" in page
        zh = text(signed_in("nurse.cardiology", "zh-hans").get("/tasks/"))
        assert "提醒无法发送：地址无效" in zh

    def test_empty_state(self, clinic: Clinic) -> None:
        page = text(signed_in("nurse.cardiology").get("/tasks/"))
        assert "Nothing to do" in page

    def test_other_departments_tasks_are_invisible(self, clinic: Clinic) -> None:
        p = clinic.patient()
        t = task(clinic, p, "a")
        endo = signed_in("nurse.endocrinology")
        assert 'data-testid="task"' not in text(endo.get("/tasks/"))
        assert endo.get(f"/tasks/{t.pk}/close/").status_code == 404
        response = endo.post(f"/tasks/{t.pk}/close/", {"outcome": "reached"})
        assert response.status_code == 404
        t.refresh_from_db()
        assert t.status == "open"
        assert AuditEvent.objects.filter(
            actor="nurse.endocrinology", action="task.read", outcome="denied"
        ).exists()

    def test_roles_without_task_work_are_refused(self, clinic: Clinic) -> None:
        assert signed_in("admin").get("/tasks/").status_code == 403
        assert signed_in("auditor").get("/tasks/").status_code == 403

    def test_outcomes_are_translated(self, clinic: Clinic) -> None:
        p = clinic.patient()
        task(clinic, p, "a")
        assert "Reached the patient" in text(signed_in("nurse.cardiology").get("/tasks/"))
        zh = text(signed_in("nurse.cardiology", "zh-hans").get("/tasks/"))
        assert "已联系到患者" in zh and "Reached the patient" not in zh


class TestClose:
    def test_reaching_the_patient_acknowledges_the_reminder(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=NOW)
        occ = rm.Occurrence.objects.filter(patient=p, kind="medication").order_by("due_at")[0]
        rm.Occurrence.objects.filter(pk=occ.pk).update(status=rm.Status.SENT)
        t = task(clinic, p, "call", occurrence=occ)
        client = signed_in("nurse.cardiology")
        response = client.post(
            f"/tasks/{t.pk}/close/",
            {"outcome": "reached", "note": "took it at 9", "next": "/tasks/?kind=call_patient"},
        )
        assert response.status_code == 302
        assert response["Location"] == "/tasks/?kind=call_patient"
        t.refresh_from_db()
        assert (t.status, t.outcome, t.note, t.closed_by.username) == (
            "done",
            "reached",
            "took it at 9",
            "nurse.cardiology",
        )
        occ.refresh_from_db()
        assert (occ.status, occ.ack_source) == (rm.Status.ACKNOWLEDGED, "staff_call")
        assert "Task closed: Reached the patient." in text(client.get("/tasks/"))

    def test_no_answer_leaves_the_reminder_unacknowledged(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.enrol(p, "hypertension", now=NOW)
        occ = rm.Occurrence.objects.filter(patient=p).order_by("due_at")[0]
        t = task(clinic, p, "call", occurrence=occ)
        signed_in("nurse.cardiology").post(f"/tasks/{t.pk}/close/", {"outcome": "no_answer"})
        occ.refresh_from_db()
        assert occ.status == rm.Status.SCHEDULED

    def test_an_outcome_is_required_and_offsite_next_is_ignored(self, clinic: Clinic) -> None:
        p = clinic.patient()
        t = task(clinic, p, "a")
        client = signed_in("nurse.cardiology")
        refused = client.post(f"/tasks/{t.pk}/close/", {"outcome": "", "note": "x"})
        assert refused.status_code == 422
        assert "Choose an outcome." in text(refused)
        t.refresh_from_db()
        assert t.status == "open"
        done = client.post(
            f"/tasks/{t.pk}/close/", {"outcome": "done", "next": "https://evil.example/"}
        )
        assert done["Location"] == "/tasks/"

    def test_closing_twice_says_so(self, clinic: Clinic) -> None:
        p = clinic.patient()
        t = task(clinic, p, "a")
        client = signed_in("nurse.cardiology")
        client.post(f"/tasks/{t.pk}/close/", {"outcome": "done"})
        again = client.post(f"/tasks/{t.pk}/close/", {"outcome": "reached"}, follow=True)
        assert "This task is already closed." in text(again)
        t.refresh_from_db()
        assert t.outcome == "done"
