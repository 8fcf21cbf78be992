"""The worklist and alert pages: what a nurse sees and the one-click actions (htmx and plain)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from careloop.alerts import models as am
from careloop.appointments import models as apm
from careloop.audit.models import AuditEvent
from tests.security.scenario import client_for

HX = {"HTTP_HX_REQUEST": "true"}


def english(world: Any, username: str) -> Client:
    """A signed-in client of a user who reads the pages in English."""
    user = world.staff[username]
    user.language = "en"
    user.save(update_fields=["language"])
    return client_for(username)


@pytest.fixture
def nurse(world: Any) -> Client:
    return english(world, "nurse.cardiology")


class TestWorklistPage:
    def test_sections_counts_rows_and_sparkline(self, nurse: Client, work: Any) -> None:
        p = work.patient(name="赵危急")
        work.bp(p, 150, 90, ago=timedelta(days=1))
        work.bp(p, 186, 112)
        work.task(work.patient(name="钱电话"))
        work.overdue(work.patient(name="孙逾期"), days=20)
        response = nurse.get("/worklist/")
        assert response.status_code == 200
        html = response.content.decode()
        page = response.context["page"]
        assert page.counts["urgent"] >= 1 and page.counts["due"] >= 1
        assert page.counts["overdue"] == 1
        for testid in ("section-urgent", "section-due", "section-overdue", "bulk-assign"):
            assert f'data-testid="{testid}"' in html
        assert html.index("赵危急") < html.index("钱电话") < html.index("孙逾期")
        assert "Blood pressure 186/112" in html
        assert '<svg class="spark"' in html and "<polyline" in html
        assert 'hx-trigger="every 45s"' in html  # the urgent section refreshes itself
        assert 'data-testid="nav-worklist"' in html

    def test_empty_and_filtered_empty_states(self, nurse: Client, work: Any) -> None:
        response = nurse.get("/worklist/")
        assert "All done for today" in response.content.decode()
        work.alert(work.patient())
        response = nurse.get("/worklist/", {"priority": "stat"})
        assert "Nothing matches these filters" in response.content.decode()

    def test_filters_narrow_the_list_and_htmx_gets_the_list_only(
        self, nurse: Client, work: Any
    ) -> None:
        hyper = work.patient(name="高血压甲")
        work.diagnose(hyper, "I10")
        work.alert(hyper)
        work.alert(work.patient(name="无诊断乙"))
        response = nurse.get("/worklist/", {"condition": "I10"}, **HX)
        html = response.content.decode()
        assert "高血压甲" in html and "无诊断乙" not in html
        assert "<html" not in html
        bad = nurse.get("/worklist/", {"condition": "高血压"})
        assert bad.status_code == 200
        assert "Enter an ICD-10 code" in bad.content.decode()

    def test_pagination(self, nurse: Client, work: Any) -> None:
        for _ in range(4):
            work.alert(work.patient())
        first = nurse.get("/worklist/", {"size": 3})
        assert len(first.context["page"].items) == 3
        assert 'data-testid="next-page"' in first.content.decode()
        second = nurse.get("/worklist/", {"size": 3, "page": 2})
        assert len(second.context["page"].items) == 1

    def test_the_polled_urgent_section(self, nurse: Client, work: Any) -> None:
        work.alert(work.patient(name="新提醒"), priority="stat")
        response = nurse.get("/worklist/", {"part": "urgent", "page": 1}, **HX)
        html = response.content.decode()
        assert html.lstrip().startswith("{% load") is False
        assert 'id="section-urgent"' in html and "新提醒" in html
        elsewhere = nurse.get("/worklist/", {"part": "urgent", "page": 2}, **HX)
        assert "新提醒" not in elsewhere.content.decode()

    def test_counts_part_after_an_action(self, nurse: Client, work: Any) -> None:
        work.alert(work.patient())
        response = nurse.get("/worklist/", {"part": "counts"}, **HX)
        assert 'data-testid="count-urgent"><strong>1</strong>' in response.content.decode()

    @pytest.mark.parametrize("user", ["admin", "auditor"])
    def test_roles_without_task_work_get_403(self, user: str, world: Any) -> None:
        assert client_for(user).get("/worklist/").status_code == 403


class TestAlertActionsFromTheWorklist:
    def test_acknowledge_swaps_the_row(self, nurse: Client, work: Any, world: Any) -> None:
        alert = work.alert(work.patient())
        response = nurse.post(f"/alerts/{alert.pk}/acknowledge/", **HX)
        assert response.status_code == 200
        assert response["HX-Trigger"] == "worklist-changed"
        html = response.content.decode()
        assert f'id="row-alert-{alert.pk}"' in html and "Acknowledged" in html
        alert.refresh_from_db()
        assert alert.status == "acknowledged"
        assert alert.owner == world.staff["nurse.cardiology"]

    def test_resolve_with_outcome_and_note(self, nurse: Client, work: Any) -> None:
        alert = work.alert(work.patient(name="李好转"))
        response = nurse.post(
            f"/alerts/{alert.pk}/resolve/",
            {"outcome": "contacted_patient", "note": "已电话，复测正常"},
            **HX,
        )
        html = response.content.decode()
        assert 'data-testid="work-done"' in html and "Contacted the patient" in html
        alert.refresh_from_db()
        assert (alert.status, alert.outcome, alert.note) == (
            "resolved",
            "contacted_patient",
            "已电话，复测正常",
        )

    def test_a_missing_choice_shows_an_error_in_the_row(self, nurse: Client, work: Any) -> None:
        alert = work.alert(work.patient())
        response = nurse.post(f"/alerts/{alert.pk}/dismiss/", {"reason": ""}, **HX)
        assert response["HX-Retarget"] == f"#err-alert-{alert.pk}"
        assert "Choose why" in response.content.decode()
        alert.refresh_from_db()
        assert alert.status == "open"

    def test_resolving_twice_says_so(self, nurse: Client, work: Any) -> None:
        alert = work.alert(work.patient())
        nurse.post(f"/alerts/{alert.pk}/resolve/", {"outcome": "advice_given"}, **HX)
        again = nurse.post(f"/alerts/{alert.pk}/resolve/", {"outcome": "advice_given"}, **HX)
        assert "already closed" in again.content.decode()

    def test_plain_posts_redirect_back(self, nurse: Client, work: Any) -> None:
        alert = work.alert(work.patient())
        response = nurse.post(
            f"/alerts/{alert.pk}/dismiss/",
            {"reason": "duplicate", "next": "/worklist/?priority=urgent"},
        )
        assert response.status_code == 302
        assert response["Location"] == "/worklist/?priority=urgent"
        response = nurse.post(
            f"/alerts/{alert.pk}/resolve/", {"outcome": "x", "next": "https://evil.example/"}
        )
        assert response["Location"] == f"/alerts/{alert.pk}/"

    def test_an_alert_of_another_department_is_not_found(self, work: Any, world: Any) -> None:
        alert = work.alert(work.patient("endocrinology"))
        attacker = english(world, "doctor.cardiology")
        for verb, data in (
            ("acknowledge", {}),
            ("resolve", {"outcome": "advice_given"}),
            ("dismiss", {"reason": "duplicate"}),
        ):
            response = attacker.post(f"/alerts/{alert.pk}/{verb}/", data, **HX)
            assert response.status_code == 404, verb
            assert alert.patient.name not in response.content.decode()
        assert attacker.get(f"/alerts/{alert.pk}/").status_code == 404
        alert.refresh_from_db()
        assert (alert.status, alert.owner_id) == ("open", None)
        denied = AuditEvent.objects.filter(actor="doctor.cardiology", outcome="denied")
        assert {e.action for e in denied} >= {
            "alert.acknowledge",
            "alert.resolve",
            "alert.dismiss",
            "alert.read",
        }


class TestTasksAndOverdueFromTheWorklist:
    def test_close_a_call_task(self, nurse: Client, work: Any) -> None:
        task = work.task(work.patient(name="周接通"))
        response = nurse.post(
            f"/tasks/{task.pk}/close/", {"outcome": "reached", "note": "已提醒服药"}, **HX
        )
        assert "Task closed: Reached the patient." in response.content.decode()
        task.refresh_from_db()
        assert (task.status, task.outcome) == ("done", "reached")
        # Without htmx the tasks page keeps working as before.
        other = work.task(work.patient())
        plain = nurse.post(f"/tasks/{other.pk}/close/", {"outcome": "no_answer"})
        assert plain.status_code == 302

    def test_agreed_to_visit_takes_the_patient_off_the_list(self, nurse: Client, work: Any) -> None:
        p = work.patient(name="吴逾期")
        work.overdue(p, days=15)
        assert nurse.get("/worklist/").context["page"].counts["overdue"] == 1
        response = nurse.post(
            f"/worklist/overdue/{p.pk}/result/", {"outcome": "agreed_to_visit"}, **HX
        )
        html = response.content.decode()
        assert "off the list until" in html
        result = apm.CallResult.objects.get(patient=p)
        assert result.outcome == "agreed_to_visit"
        assert result.remind_on == result.called_on + timedelta(days=30)
        assert nurse.get("/worklist/").context["page"].counts["overdue"] == 0
        assert AuditEvent.objects.filter(action="overdue.call_result", patient_id=p.pk).exists()

    def test_removal_needs_a_reason(self, nurse: Client, work: Any) -> None:
        p = work.patient()
        work.overdue(p, days=15)
        response = nurse.post(f"/worklist/overdue/{p.pk}/result/", {"outcome": "removed"}, **HX)
        assert response["HX-Retarget"] == f"#err-overdue-{p.pk}"
        assert not apm.CallResult.objects.filter(patient=p).exists()
        nurse.post(
            f"/worklist/overdue/{p.pk}/result/",
            {"outcome": "removed", "remove_reason": "moved"},
            **HX,
        )
        assert apm.CallResult.objects.get(patient=p).remove_reason == "moved"


class TestBulkAssign:
    def test_tick_and_give_to_a_colleague(self, nurse: Client, work: Any, world: Any) -> None:
        a1 = work.alert(work.patient())
        a2 = work.alert(work.patient())
        task = work.task(work.patient())
        doctor = world.staff["doctor.cardiology"]
        response = nurse.post(
            "/worklist/assign/",
            {"item": [f"alert-{a1.pk}", f"alert-{a2.pk}", f"task-{task.pk}"], "to": doctor.pk},
        )
        assert response.status_code == 302
        assert {a.owner_id for a in am.Alert.objects.filter(pk__in=[a1.pk, a2.pk])} == {doctor.pk}
        task.refresh_from_db()
        assert task.assignee == doctor
        assert AuditEvent.objects.filter(action="alert.assign").count() == 2
        assert AuditEvent.objects.filter(action="task.assign").count() == 1

    def test_only_to_colleagues_and_only_items_in_scope(
        self, nurse: Client, work: Any, world: Any
    ) -> None:
        mine = work.alert(work.patient())
        theirs = work.alert(work.patient("endocrinology"))
        outsider = world.staff["nurse.endocrinology"]
        response = nurse.post(
            "/worklist/assign/", {"item": [f"alert-{mine.pk}"], "to": outsider.pk}, follow=True
        )
        assert "Choose a colleague" in response.content.decode()
        mine.refresh_from_db()
        assert mine.owner_id is None
        doctor = world.staff["doctor.cardiology"]
        nurse.post(
            "/worklist/assign/",
            {"item": [f"alert-{mine.pk}", f"alert-{theirs.pk}"], "to": doctor.pk},
        )
        theirs.refresh_from_db()
        assert theirs.owner_id is None  # another department's alert is left alone
        mine.refresh_from_db()
        assert mine.owner_id == doctor.pk


class TestAlertPages:
    def test_list_filters_by_status_priority_and_rule(self, nurse: Client, work: Any) -> None:
        p = work.patient()
        work.alert(p, rule="bp-crisis", priority="urgent")
        work.alert(p, rule="glucose-low", priority="asap", status="resolved")
        response = nurse.get("/alerts/")
        assert [a.rule for a in response.context["page"].items] == ["bp-crisis"]
        response = nurse.get("/alerts/", {"status": "all", "rule": "glucose-low"})
        assert [a.rule for a in response.context["page"].items] == ["glucose-low"]
        response = nurse.get("/alerts/", {"status": "all", "priority": "urgent"})
        assert [a.rule for a in response.context["page"].items] == ["bp-crisis"]
        response = nurse.get("/alerts/", {"status": "dismissed"})
        assert 'data-testid="no-alerts"' in response.content.decode()

    def test_detail_shows_the_rule_values_and_history(self, nurse: Client, work: Any) -> None:
        p = work.patient(name="郑详情")
        work.bp(p, 188, 116)
        alert = am.Alert.objects.get(patient=p, rule="bp-crisis")
        response = nurse.get(f"/alerts/{alert.pk}/")
        html = response.content.decode()
        assert response.status_code == 200
        assert 'data-testid="alert-rule"' in html and "bp-crisis" in html
        assert "sys 180" in html  # the population threshold
        assert "188" in html
        history = response.context["history"]
        assert {h["a"].rule for h in history} >= {"bp-crisis"}
        assert AuditEvent.objects.filter(action="alert.read", patient_id=p.pk).exists()

    def test_detail_actions_post_back_to_the_detail(self, nurse: Client, work: Any) -> None:
        alert = work.alert(work.patient())
        here = f"/alerts/{alert.pk}/"
        response = nurse.post(f"/alerts/{alert.pk}/acknowledge/", {"next": here})
        assert response["Location"] == here
        page = nurse.get(here)
        assert 'data-testid="alert-status">Acknowledged' in page.content.decode()
