"""The staff worklist ("my work today"): what it lists, in which order, for whom."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.alerts import selectors
from careloop.alerts.selectors import WorklistCriteria
from careloop.audit.models import AuditEvent
from careloop.kit.errors import Forbidden, ValidationFailed


def rows(actor: Any, **criteria: Any) -> list[tuple[str, str, int]]:
    page = selectors.worklist(actor, WorklistCriteria(**criteria))
    return [(w.section, w.kind, w.id) for w in page.items]


def names(actor: Any, **criteria: Any) -> list[str]:
    page = selectors.worklist(actor, WorklistCriteria(**criteria))
    return [w.patient.name for w in page.items]


class TestOrder:
    def test_urgent_alerts_then_todays_calls_then_overdue_patients(
        self, world: Any, work: Any
    ) -> None:
        p = [work.patient(name=f"病人{i}") for i in range(8)]
        routine = work.alert(p[0], priority="routine", due_in=timedelta(hours=2))
        urgent_later = work.alert(p[1], priority="urgent", due_in=timedelta(minutes=30))
        stat = work.alert(p[2], priority="stat", due_in=timedelta(hours=3))
        urgent_sooner = work.alert(p[3], priority="urgent", due_in=timedelta(minutes=5))
        call = work.task(p[4], due_in=timedelta(hours=-2))
        tomorrow = work.task(p[5], due_in=timedelta(days=2))  # not today's work
        work.overdue(p[6], days=10)
        work.overdue(p[7], days=40)
        nurse = world.actor("nurse.cardiology")
        assert rows(nurse) == [
            ("urgent", "alert", stat.pk),
            ("urgent", "alert", urgent_sooner.pk),
            ("urgent", "alert", urgent_later.pk),
            ("due", "task", call.pk),
            ("due", "alert", routine.pk),
            ("overdue", "overdue", p[7].pk),
            ("overdue", "overdue", p[6].pk),
        ]
        assert tomorrow.pk not in [r[2] for r in rows(nurse) if r[1] == "task"]

    def test_counts_per_section_and_pages_across_sections(self, world: Any, work: Any) -> None:
        p = [work.patient() for _ in range(6)]
        a1 = work.alert(p[0], due_in=timedelta(minutes=1))
        a2 = work.alert(p[1], due_in=timedelta(minutes=2))
        t1 = work.task(p[2], due_in=timedelta(hours=-3))
        t2 = work.task(p[3], due_in=timedelta(hours=-2))
        work.overdue(p[4], days=50)
        work.overdue(p[5], days=20)
        nurse = world.actor("nurse.cardiology")
        pages = [selectors.worklist(nurse, WorklistCriteria(page=n, size=3)) for n in (1, 2)]
        assert pages[0].counts == {"urgent": 2, "due": 2, "overdue": 2}
        assert (pages[0].total, pages[0].pages) == (6, 2)
        assert [(w.kind, w.id) for w in pages[0].items] == [
            ("alert", a1.pk),
            ("alert", a2.pk),
            ("task", t1.pk),
        ]
        assert [(w.kind, w.id) for w in pages[1].items] == [
            ("task", t2.pk),
            ("overdue", p[4].pk),
            ("overdue", p[5].pk),
        ]

    def test_overdue_pages_are_read_at_any_offset(self, world: Any, work: Any) -> None:
        patients = [work.patient() for _ in range(7)]
        for days, p in enumerate(patients, start=3):
            work.overdue(p, days=days)
        nurse = world.actor("nurse.cardiology")
        expected = [p.pk for p in reversed(patients)]  # most days overdue first
        for size in (2, 3, 4):
            seen = []
            for number in range(1, 5):
                page = selectors.worklist(nurse, WorklistCriteria(page=number, size=size))
                if page.number != number:
                    break
                seen += [w.id for w in page.items]
            assert seen == expected, size

    def test_overdue_patients_at_high_risk_come_before_longer_overdue_ones(
        self, world: Any, work: Any
    ) -> None:
        long_ago = work.patient(name="久未复诊")
        work.overdue(long_ago, days=90)
        risky = work.patient(name="血压危急")
        work.overdue(risky, days=35)
        work.bp(risky, 188, 112, ago=timedelta(days=40))  # metrics.md: last BP ≥ 180/110
        recent = work.patient(name="刚逾期")
        work.overdue(recent, days=10)
        items = selectors.worklist(world.actor("nurse.cardiology")).items
        overdue = [(w.id, w.priority) for w in items if w.section == "overdue"]
        assert overdue == [
            (risky.pk, "urgent"),
            (long_ago.pk, "routine"),
            (recent.pk, "routine"),
        ]

    def test_a_section_lists_at_most_its_limit(
        self, world: Any, work: Any, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(selectors, "SECTION_LIMIT", 3)
        p = work.patient()
        urgent = [work.alert(p, rule=f"u{i}", due_in=timedelta(minutes=i)) for i in range(5)]
        work.alert(p, rule="r", priority="routine")
        page = selectors.worklist(world.actor("nurse.cardiology"), WorklistCriteria(size=10))
        assert page.counts == {"urgent": 3, "due": 1, "overdue": 0}
        assert page.capped == ["urgent"]
        assert [w.id for w in page.items[:3]] == [a.pk for a in urgent[:3]]
        assert page.items[3].section == "due"


class TestRows:
    def test_a_row_carries_what_the_page_shows(self, world: Any, work: Any) -> None:
        p = work.patient(name="王血压", sex="female", date_of_birth="1950-01-01")
        work.bp(p, 150, 92, ago=timedelta(days=2))
        work.bp(p, 185, 115)  # raises the bp-crisis alert for the responsible doctor
        doctor = world.actor("doctor.cardiology")
        items = selectors.worklist(doctor).items
        # The public-health follow-up rule also fires (a referral after two uncontrolled
        # readings); the crisis is first: urgent, and due within 15 minutes.
        assert [w.obj.rule for w in items][0] == "bp-crisis"
        row = items[0]
        assert (row.section, row.kind, row.priority, row.status) == (
            "urgent",
            "alert",
            "urgent",
            "open",
        )
        assert row.patient.name == "王血压"
        assert row.age is not None and row.age >= 75
        assert row.owner == world.staff["doctor.cardiology"]
        assert "185/115" in row.reason
        assert (row.bp.value, row.bp.value2) == (185, 115)
        assert row.glucose is None
        assert row.spark == [150, 185]

    def test_the_reason_is_in_the_users_language(self, world: Any, work: Any) -> None:
        from django.utils import translation

        p = work.patient()
        work.bp(p, 190, 100)
        doctor = world.actor("doctor.cardiology")
        with translation.override("en"):
            row = selectors.worklist(doctor).items[0]
            assert row.reason.startswith("Blood pressure 190/100")
        with translation.override("zh-hans"):
            row = selectors.worklist(doctor).items[0]
            assert row.reason.startswith("血压 190/100")

    def test_a_task_reason_is_translated(self, world: Any, work: Any) -> None:
        from django.utils import translation

        work.task(work.patient(), reason="no acknowledgement")
        with translation.override("en"):
            (row,) = selectors.worklist(world.actor("nurse.cardiology")).items
        assert row.reason == "Call the patient: the patient did not confirm the reminder"

    def test_overdue_rows_name_the_missed_follow_up(self, world: Any, work: Any) -> None:
        from django.utils import translation

        p = work.patient()
        work.overdue(p, days=12)
        with translation.override("en"):
            (row,) = selectors.worklist(world.actor("nurse.cardiology")).items
        assert (row.kind, row.id, row.days_overdue) == ("overdue", p.pk, 12)
        assert row.reason.startswith("Revisit due ")


class TestFilters:
    @pytest.fixture
    def mixed(self, world: Any, work: Any) -> dict[str, Any]:
        hyper = work.patient(name="高血压")
        work.diagnose(hyper, "I10")
        sugar = work.patient(name="糖尿病")
        work.diagnose(sugar, "E11.9")
        nurse = world.staff["nurse.cardiology"]
        doctor = world.staff["doctor.cardiology"]
        return {
            "mine": work.alert(hyper, priority="urgent", owner=nurse),
            "doctors": work.alert(sugar, priority="asap", owner=doctor),
            "nobodys": work.alert(sugar, priority="routine"),
            "task": work.task(hyper),
            "overdue": work.overdue(sugar, days=9),
        }

    def test_owner_me_unassigned_colleague(self, world: Any, mixed: Any) -> None:
        nurse = world.actor("nurse.cardiology")
        doctor = world.staff["doctor.cardiology"]
        # The call task went to the care team's nurse when it was opened.
        assert mixed["task"].assignee == world.staff["nurse.cardiology"]
        assert [r[1:] for r in rows(nurse, owner="me")] == [
            ("alert", mixed["mine"].pk),
            ("task", mixed["task"].pk),
        ]
        assert [r[1:] for r in rows(nurse, owner=str(doctor.pk))] == [
            ("alert", mixed["doctors"].pk)
        ]
        assert [r[1:] for r in rows(nurse, owner="unassigned")] == [
            ("alert", mixed["nobodys"].pk),
            ("overdue", mixed["overdue"].patient_id),
        ]
        assert len(rows(nurse)) == 5

    def test_an_outsider_is_not_a_colleague(self, world: Any, mixed: Any) -> None:
        nurse = world.actor("nurse.cardiology")
        with pytest.raises(ValidationFailed) as caught:
            rows(nurse, owner=str(world.staff["nurse.endocrinology"].pk))
        assert "owner" in caught.value.details

    def test_priority(self, world: Any, mixed: Any) -> None:
        nurse = world.actor("nurse.cardiology")
        assert [r[2] for r in rows(nurse, priority="asap")] == [mixed["doctors"].pk]
        routine = rows(nurse, priority="routine")
        assert [r[1] for r in routine] == ["task", "alert", "overdue"]

    def test_condition_by_icd10_prefix(self, world: Any, mixed: Any) -> None:
        nurse = world.actor("nurse.cardiology")
        assert names(nurse, condition="i10") == ["高血压", "高血压"]
        assert names(nurse, condition="E11") == ["糖尿病", "糖尿病", "糖尿病"]
        assert names(nurse, condition="E10") == []
        with pytest.raises(ValidationFailed):
            rows(nurse, condition="血压'; drop")

    def test_department(self, world: Any, work: Any) -> None:
        head = world.staff["head.cardiology"]
        from careloop.accounts.models import Membership

        Membership.objects.create(staff=head, department=world.endo)
        cardio = work.alert(work.patient())
        endo = work.alert(work.patient("endocrinology"))
        actor = world.actor("head.cardiology")
        assert {r[2] for r in rows(actor)} == {cardio.pk, endo.pk}
        assert [r[2] for r in rows(actor, department=world.endo.pk)] == [endo.pk]
        with pytest.raises(ValidationFailed):
            rows(world.actor("nurse.cardiology"), department=world.endo.pk)


class TestScope:
    def test_other_departments_and_organisations_are_invisible(self, world: Any, work: Any) -> None:
        work.alert(work.patient("endocrinology"))
        work.task(work.patient("endocrinology"))
        work.overdue(work.patient("endocrinology"), days=5)
        for user in ("nurse.cardiology", "doctor.cardiology", "nurse.other"):
            page = selectors.worklist(world.actor(user))
            assert (page.total, page.items) == (0, []), user

    def test_closed_alerts_and_tasks_leave_the_list(self, world: Any, work: Any) -> None:
        p = work.patient()
        work.alert(p, status=am.Alert.Status.RESOLVED)
        work.alert(p, status=am.Alert.Status.DISMISSED)
        am.Task.objects.filter(pk=work.task(p).pk).update(status=am.Task.Status.DONE)
        assert selectors.worklist(world.actor("nurse.cardiology")).total == 0

    def test_roles_without_task_work_are_refused(self, world: Any) -> None:
        for user in ("admin", "auditor"):
            with pytest.raises(Forbidden):
                selectors.worklist(world.actor(user))

    def test_reading_the_worklist_is_audited(self, world: Any, work: Any) -> None:
        work.alert(work.patient())
        selectors.worklist(world.actor("nurse.cardiology"), WorklistCriteria(priority="urgent"))
        event = AuditEvent.objects.filter(action="worklist.read").latest("id")
        assert event.actor == "nurse.cardiology"
        assert (event.detail["criteria"], event.detail["results"]) == (["priority"], 1)
