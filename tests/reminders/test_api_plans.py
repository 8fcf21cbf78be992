"""JSON API of care plans: templates, preview, enrol, adjust, end; scope and roles."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.reminders import models as rm

pytestmark = pytest.mark.django_db
S = rm.Status


@pytest.fixture
def plans(world: Any) -> dict[str, cm.PlanTemplate]:
    plan_services.load_templates()
    return {t.code: t for t in cm.PlanTemplate.objects.filter(organisation__isnull=True)}


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    return make_patient("nurse.cardiology")


def enrol(api: Any, patient: Any, template: cm.PlanTemplate, user: str = "nurse.cardiology") -> Any:
    return api(user).post(f"/api/patients/{patient.pk}/enrolments", {"template_id": template.pk})


class TestTemplates:
    def test_lists_shared_and_own_plans_not_other_organisations(
        self, world: Any, plans: Any, api: Any
    ) -> None:
        spec = plan_services.template_spec(plans["hypertension"])
        plan_services.save_template({**spec, "name": "本院高血压"}, organisation=world.org)
        plan_services.save_template(
            {**spec, "code": "other-only", "name": "外院"}, organisation=world.other_org
        )
        body = api("nurse.cardiology").get("/api/plans/templates").json()
        by_code = {t["code"]: t for t in body}
        assert "other-only" not in by_code
        # The organisation's own copy replaces the shared plan of the same code.
        assert by_code["hypertension"]["name"] == "本院高血压"
        assert by_code["hypertension"]["shared"] is False
        assert by_code["heart-failure"]["shared"] is True
        codes = [a["code"] for a in by_code["hypertension"]["activities"]]
        assert "bp-morning" in codes

    @pytest.mark.parametrize("username", ["auditor", "admin"])
    def test_roles_that_do_not_enrol_are_refused(
        self, world: Any, plans: Any, api: Any, username: str
    ) -> None:
        response = api(username).get("/api/plans/templates")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


class TestEnrolmentRoundTrip:
    def test_preview_enrol_adjust_end(self, world: Any, plans: Any, patient: Any, api: Any) -> None:
        nurse = api("nurse.cardiology")
        tpl = plans["hypertension"]
        preview = nurse.post(
            f"/api/patients/{patient.pk}/enrolments/preview",
            {"template_id": tpl.pk, "days": 3},
        )
        assert preview.status_code == 200, preview.content
        items = preview.json()
        assert items and {i["activity_code"] for i in items} >= {"bp-morning"}
        assert items[0]["time_zone"] == "Asia/Shanghai"
        assert not cm.Enrolment.objects.exists()  # a preview writes nothing

        created = enrol(api, patient, tpl)
        assert created.status_code == 201, created.content
        e = created.json()
        assert (e["status"], e["version"], e["template"]["code"]) == ("active", 1, "hypertension")
        assert rm.Occurrence.objects.filter(
            enrolment_id=e["id"], activity_code="bp-morning"
        ).exists()

        listed = nurse.get(f"/api/patients/{patient.pk}/enrolments").json()
        assert [x["id"] for x in listed] == [e["id"]]

        adjusted = nurse.patch(
            f"/api/enrolments/{e['id']}",
            {"version": 1, "adjustments": {"bp-morning": {"off": True}}},
        )
        assert adjusted.status_code == 200, adjusted.content
        assert adjusted.json()["version"] == 2
        assert adjusted.json()["adjustments"] == {"bp-morning": {"off": True}}
        assert not rm.Occurrence.objects.filter(
            enrolment_id=e["id"], activity_code="bp-morning", status=S.SCHEDULED
        ).exists()

        ended = nurse.post(
            f"/api/enrolments/{e['id']}/end", {"reason": "moved to another city", "version": 2}
        )
        assert ended.status_code == 200, ended.content
        assert (ended.json()["status"], ended.json()["end_reason"]) == (
            "ended",
            "moved to another city",
        )
        assert not rm.Occurrence.objects.filter(
            enrolment_id=e["id"], status__in=[S.SCHEDULED, S.RETRYING]
        ).exists()
        actions = set(
            AuditEvent.objects.filter(patient_id=patient.pk, actor="nurse.cardiology").values_list(
                "action", flat=True
            )
        )
        assert {"careplan.preview", "careplan.enrol", "careplan.read", "careplan.adjust"} <= actions
        assert "careplan.end" in actions

    def test_enrolling_twice_is_a_conflict(
        self, world: Any, plans: Any, patient: Any, api: Any
    ) -> None:
        enrol(api, patient, plans["hypertension"])
        again = enrol(api, patient, plans["hypertension"])
        assert again.status_code == 409
        assert again.json()["code"] == "conflict"

    def test_adjust_needs_the_version_and_refuses_a_stale_one(
        self, world: Any, plans: Any, patient: Any, api: Any
    ) -> None:
        e = enrol(api, patient, plans["hypertension"]).json()
        url = f"/api/enrolments/{e['id']}"
        missing = api("nurse.cardiology").patch(url, {"adjustments": {}})
        assert missing.status_code == 422
        assert set(missing.json()) == {"code", "message", "details"}
        assert "version" in missing.json()["details"]
        stale = api("nurse.cardiology").patch(url, {"adjustments": {}, "version": 7})
        assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
        by_header = api("nurse.cardiology").patch(
            url, {"adjustments": {"bp-morning": {"times": ["07:15"]}}}, HTTP_IF_MATCH='W/"1"'
        )
        assert by_header.status_code == 200 and by_header.json()["version"] == 2

    def test_bad_adjustments_are_field_errors(
        self, world: Any, plans: Any, patient: Any, api: Any
    ) -> None:
        e = enrol(api, patient, plans["hypertension"]).json()
        response = api("nurse.cardiology").patch(
            f"/api/enrolments/{e['id']}", {"version": 1, "adjustments": {"nope": {"off": True}}}
        )
        assert response.status_code == 422
        assert "adjustments" in response.json()["details"]

    def test_ending_needs_a_reason(self, world: Any, plans: Any, patient: Any, api: Any) -> None:
        e = enrol(api, patient, plans["hypertension"]).json()
        response = api("nurse.cardiology").post(f"/api/enrolments/{e['id']}/end", {"reason": " "})
        assert response.status_code == 422 and "reason" in response.json()["details"]


class TestScope:
    @pytest.mark.parametrize("attacker", ["nurse.endocrinology", "nurse.other"])
    def test_another_department_or_organisation_is_not_found(
        self, world: Any, plans: Any, patient: Any, api: Any, attacker: str
    ) -> None:
        e = enrol(api, patient, plans["hypertension"]).json()
        who = api(attacker)
        answers = [
            who.get(f"/api/patients/{patient.pk}/enrolments"),
            who.post(
                f"/api/patients/{patient.pk}/enrolments", {"template_id": e["template"]["id"]}
            ),
            who.post(
                f"/api/patients/{patient.pk}/enrolments/preview",
                {"template_id": e["template"]["id"]},
            ),
            who.post(f"/api/enrolments/{e['id']}/end", {"reason": "x", "version": 1}),
            who.patch(f"/api/enrolments/{e['id']}", {"adjustments": {}, "version": 1}),
        ]
        assert [r.status_code for r in answers] == [404] * 5
        assert all(r.json()["code"] == "not_found" for r in answers)
        assert all(patient.name not in r.content.decode() for r in answers)
        enrolment = cm.Enrolment.objects.get(pk=e["id"])
        assert (enrolment.status, enrolment.version) == ("active", 1)
        assert cm.Enrolment.objects.count() == 1

    def test_the_auditor_is_refused(self, world: Any, plans: Any, patient: Any, api: Any) -> None:
        e = enrol(api, patient, plans["hypertension"]).json()
        who = api("auditor")
        answers = [
            who.get(f"/api/patients/{patient.pk}/enrolments"),
            who.post(
                f"/api/patients/{patient.pk}/enrolments", {"template_id": e["template"]["id"]}
            ),
            who.post(f"/api/enrolments/{e['id']}/end", {"reason": "x", "version": 1}),
            who.patch(f"/api/enrolments/{e['id']}", {"adjustments": {}, "version": 1}),
        ]
        assert [r.status_code for r in answers] == [403] * 4
        assert AuditEvent.objects.filter(actor="auditor", outcome="denied").count() >= 4
        assert cm.Enrolment.objects.get(pk=e["id"]).status == "active"
