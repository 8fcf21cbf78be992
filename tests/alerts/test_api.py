"""The JSON API of the worklist, alerts, assignment and personal thresholds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.audit.models import AuditEvent


@pytest.fixture
def put(client: Any, token: Any) -> Any:
    """PUT a JSON body to the API as a user."""

    def send(username: str, path: str, body: Any) -> Any:
        return client.put(
            path,
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token(username)}",
            HTTP_ACCEPT_LANGUAGE="en",
        )

    return send


class TestWorklist:
    def test_one_page_with_counts_and_rows(self, api: Any, work: Any, world: Any) -> None:
        p = work.patient(name="冯血压", sex="female", date_of_birth="1948-02-03")
        work.bp(p, 150, 95, ago=timedelta(hours=30))
        work.bp(p, 182, 118)
        task = work.task(work.patient(name="陈电话"))
        work.overdue(work.patient(name="褚逾期"), days=33)
        response = api("doctor.cardiology").get("/api/worklist", data={"size": 50})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["counts"]["overdue"] == 1
        assert body["total"] == sum(body["counts"].values()) == len(body["items"])
        first = body["items"][0]
        assert (first["section"], first["kind"], first["priority"]) == ("urgent", "alert", "urgent")
        assert first["patient_name"] == "冯血压" and first["sex"] == "female"
        assert first["reason"].startswith("Blood pressure 182/118")
        assert first["owner_name"] == "doctor.cardiology"
        assert first["last_bp"]["value"] == 182 and first["last_bp"]["value2"] == 118
        assert first["sparkline"] == [150, 182]
        sections = [i["section"] for i in body["items"]]
        assert sections == sorted(sections, key=["urgent", "due", "overdue"].index)
        assert ("task", task.pk) in {(i["kind"], i["id"]) for i in body["items"]}
        assert body["items"][-1]["days_overdue"] == 33

    def test_bad_filters_are_422(self, api: Any, world: Any) -> None:
        nurse = api("nurse.cardiology")
        for query, field in (
            ({"owner": str(world.staff["nurse.endocrinology"].pk)}, "owner"),
            ({"priority": "soon"}, "priority"),
            ({"condition": "血压"}, "condition"),
            ({"department": world.endo.pk}, "department"),
        ):
            response = nurse.get("/api/worklist", data=query)
            assert response.status_code == 422, query
            assert field in response.json()["details"]

    def test_refused_to_roles_without_task_work(self, api: Any, world: Any) -> None:
        response = api("admin").get("/api/worklist")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


class TestAlerts:
    def test_list_filters_and_detail(self, api: Any, work: Any) -> None:
        p = work.patient()
        open_ = work.alert(p, rule="bp-crisis")
        work.alert(p, rule="glucose-low", status="dismissed")
        nurse = api("nurse.cardiology")
        body = nurse.get("/api/alerts").json()
        assert [a["id"] for a in body["items"]] == [open_.pk]
        body = nurse.get("/api/alerts", data={"status": "all", "rule": "glucose-low"}).json()
        assert [a["rule"] for a in body["items"]] == ["glucose-low"]
        one = nurse.get(f"/api/alerts/{open_.pk}").json()
        assert (one["id"], one["status"], one["patient"]) == (open_.pk, "open", p.pk)
        assert one["text"] == one["text_en"]

    def test_the_status_machine(self, api: Any, work: Any, world: Any) -> None:
        alert = work.alert(work.patient())
        nurse = api("nurse.cardiology")
        acked = nurse.post(f"/api/alerts/{alert.pk}/acknowledge").json()
        assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "nurse.cardiology")
        assert acked["owner"] == world.staff["nurse.cardiology"].pk
        again = nurse.post(f"/api/alerts/{alert.pk}/acknowledge")
        assert again.status_code == 409
        missing = nurse.post(f"/api/alerts/{alert.pk}/resolve", {"outcome": "", "note": ""})
        assert missing.status_code == 422 and "outcome" in missing.json()["details"]
        other = nurse.post(f"/api/alerts/{alert.pk}/resolve", {"outcome": "other"})
        assert other.status_code == 422 and "note" in other.json()["details"]
        done = nurse.post(
            f"/api/alerts/{alert.pk}/resolve", {"outcome": "medication_changed", "note": "加量"}
        )
        assert done.status_code == 200
        assert (done.json()["status"], done.json()["outcome_label"]) == (
            "resolved",
            "Medication changed",
        )
        twice = nurse.post(f"/api/alerts/{alert.pk}/resolve", {"outcome": "advice_given"})
        assert twice.status_code == 409
        assert twice.json()["code"] == "conflict"
        dismiss = nurse.post(f"/api/alerts/{alert.pk}/dismiss", {"reason": "duplicate"})
        assert dismiss.status_code == 409
        actions = list(
            AuditEvent.objects.filter(object_id=str(alert.pk), action__startswith="alert.")
            .exclude(action="alert.read")
            .values_list("action", flat=True)
        )
        assert actions == ["alert.acknowledge", "alert.resolve"]

    def test_dismiss_needs_a_reason(self, api: Any, work: Any) -> None:
        alert = work.alert(work.patient())
        nurse = api("nurse.cardiology")
        response = nurse.post(f"/api/alerts/{alert.pk}/dismiss", {"reason": "bored"})
        assert response.status_code == 422 and "reason" in response.json()["details"]
        response = nurse.post(f"/api/alerts/{alert.pk}/dismiss", {"reason": "other"})
        assert response.status_code == 422 and "note" in response.json()["details"]
        response = nurse.post(f"/api/alerts/{alert.pk}/dismiss", {})
        assert response.status_code == 422 and "reason" in response.json()["details"]
        ok = nurse.post(
            f"/api/alerts/{alert.pk}/dismiss", {"reason": "other", "note": "患者已住院"}
        )
        assert ok.json()["status"] == "dismissed"

    def test_another_departments_alert_is_404_and_untouched(self, api: Any, work: Any) -> None:
        alert = work.alert(work.patient("endocrinology"))
        for user in ("doctor.cardiology", "nurse.other"):
            attacker = api(user)
            assert attacker.get(f"/api/alerts/{alert.pk}").status_code == 404
            for verb, body in (
                ("acknowledge", None),
                ("resolve", {"outcome": "advice_given"}),
                ("dismiss", {"reason": "duplicate"}),
            ):
                response = attacker.post(f"/api/alerts/{alert.pk}/{verb}", body)
                assert response.status_code == 404, (user, verb)
                assert response.json()["code"] == "not_found"
                assert alert.patient.name not in response.content.decode()
            listed = attacker.get("/api/alerts", data={"status": "all"}).json()
            assert listed["total"] == 0
        alert.refresh_from_db()
        assert (alert.status, alert.owner_id, alert.acknowledged_at) == ("open", None, None)
        assert AuditEvent.objects.filter(
            actor="doctor.cardiology", action="alert.resolve", outcome="denied"
        ).exists()


class TestAssign:
    def test_bulk_assign_to_a_colleague(self, api: Any, work: Any, world: Any) -> None:
        alerts = [work.alert(work.patient()) for _ in range(3)]
        task = work.task(work.patient())
        closed = work.alert(work.patient(), status="resolved")
        foreign = work.alert(work.patient("endocrinology"))
        doctor = world.staff["doctor.cardiology"]
        response = api("nurse.cardiology").post(
            "/api/assign",
            {
                "to": doctor.pk,
                "alert_ids": [a.pk for a in alerts] + [closed.pk, foreign.pk],
                "task_ids": [task.pk],
            },
        )
        assert response.json() == {"assigned": 4}
        assert set(am.Alert.objects.filter(owner=doctor).values_list("pk", flat=True)) == {
            a.pk for a in alerts
        }
        foreign.refresh_from_db()
        assert foreign.owner_id is None
        moved = AuditEvent.objects.filter(action__in=["alert.assign", "task.assign"])
        assert moved.count() == 4
        assert {e.detail["to"] for e in moved} == {doctor.pk}

    def test_not_to_someone_outside_my_departments(self, api: Any, work: Any, world: Any) -> None:
        alert = work.alert(work.patient())
        for outsider in ("nurse.endocrinology", "nurse.other", "auditor"):
            response = api("nurse.cardiology").post(
                "/api/assign", {"to": world.staff[outsider].pk, "alert_ids": [alert.pk]}
            )
            assert response.status_code == 422, outsider
            assert "to" in response.json()["details"]
        alert.refresh_from_db()
        assert alert.owner_id is None


class TestThresholds:
    def test_set_read_and_remove(self, api: Any, put: Any, work: Any) -> None:
        p = work.patient()
        doctor = api("doctor.cardiology")
        assert doctor.get(f"/api/patients/{p.pk}/thresholds").json() == []
        body = {"rule": "bp-crisis", "params": {"sys": 170}, "reason": "高龄，目标放宽"}
        response = put("doctor.cardiology", f"/api/patients/{p.pk}/thresholds", body)
        assert response.status_code == 200, response.content
        (row,) = response.json()
        assert (row["rule"], row["params"], row["set_by"]) == (
            "bp-crisis",
            {"sys": 170.0},
            "doctor.cardiology",
        )
        # The personal threshold is used from now on: 175/100 is a crisis for this patient.
        work.bp(p, 175, 100)
        assert am.Alert.objects.filter(patient=p, rule="bp-crisis").exists()
        removed = put(
            "doctor.cardiology",
            f"/api/patients/{p.pk}/thresholds",
            {"rule": "bp-crisis", "params": {}},
        )
        assert removed.json() == []
        assert AuditEvent.objects.filter(action="threshold.remove", patient_id=p.pk).exists()

    def test_unknown_rules_and_parameters_are_422(self, api: Any, put: Any, work: Any) -> None:
        p = work.patient()
        response = put(
            "doctor.cardiology",
            f"/api/patients/{p.pk}/thresholds",
            {"rule": "no-such-rule", "params": {"x": 1}},
        )
        assert response.status_code == 422 and "rule" in response.json()["details"]
        response = put(
            "doctor.cardiology",
            f"/api/patients/{p.pk}/thresholds",
            {"rule": "bp-crisis", "params": {"pulse": 1}},
        )
        assert response.status_code == 422 and "pulse" in response.json()["details"]
        response = put(
            "doctor.cardiology",
            f"/api/patients/{p.pk}/thresholds",
            {"rule": "bp-crisis", "params": {"sys": "x"}},
        )
        assert response.status_code == 422

    def test_other_departments_patients_are_404(self, api: Any, put: Any, work: Any) -> None:
        p = work.patient("endocrinology")
        doctor = api("doctor.cardiology")
        assert doctor.get(f"/api/patients/{p.pk}/thresholds").status_code == 404
        response = put(
            "doctor.cardiology",
            f"/api/patients/{p.pk}/thresholds",
            {"rule": "bp-crisis", "params": {"sys": 150}},
        )
        assert response.status_code == 404
        assert not am.PersonalThreshold.objects.exists()
