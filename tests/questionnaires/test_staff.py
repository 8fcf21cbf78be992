"""Staff pages and the JSON API: library, import, activate/retire, send, responses, admin,
care-plan questionnaires and the load command."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.clock import utc_now
from careloop.questionnaires import models as qm
from careloop.questionnaires import selectors, services
from careloop.reminders import models as rm
from tests.corpus import CORPUS
from tests.portal.client import portal_client
from tests.questionnaires.scene import OWN
from tests.questionnaires.support import answer_all, phq9_answers


@pytest.fixture(autouse=True)
def english_staff(world: Any) -> None:
    """Staff pages in English, so that the assertions can name their text."""
    from careloop.accounts.models import Staff

    Staff.objects.update(language="en")


MII_GAD7 = CORPUS / "questionnaires-mii-proms/gad-7-index-2026/Questionnaire-mii-qst-pro-gad-7.json"


def _upload(data: Any, name: str = "q.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, json.dumps(data).encode(), content_type="application/json")


def test_library_lists_shipped_questionnaires(world, library, client):
    client.force_login(world.staff["nurse.cardiology"])
    page = client.get(reverse("questionnaires:library"))
    assert page.status_code == 200
    assert len(page.context["rows"]) == 5 and not page.context["can_manage"]
    detail = client.get(reverse("questionnaires:detail", args=[library["phq-9"].pk]))
    assert detail.status_code == 200
    assert 'data-testid="q-preview"' in detail.content.decode()


def test_import_reports_errors_by_element_path(world, library, client):
    client.force_login(world.staff["admin"])
    bad = {**OWN, "item": [{"linkId": "x", "type": "choice"}, {"linkId": "y", "type": "time"}]}
    page = client.post(reverse("questionnaires:import"), {"file": _upload(bad)})
    assert page.status_code == 422
    assert set(page.context["errors"]) == {"item[0].answerOption", "item[1].type"}
    assert "<code>item[1].type</code>" in page.content.decode()
    not_json = client.post(
        reverse("questionnaires:import"),
        {"file": SimpleUploadedFile("q.json", b"{nope", content_type="application/json")},
    )
    assert not_json.status_code == 422 and "$" in not_json.context["errors"]
    assert not qm.Questionnaire.objects.filter(organisation=world.org).exists()


def test_import_activate_retire_and_send(world, library, client, patient):
    client.force_login(world.staff["admin"])
    draft = {**OWN, "status": "draft"}
    r = client.post(reverse("questionnaires:import"), {"file": _upload(draft)})
    own = qm.Questionnaire.objects.get(organisation=world.org)
    assert r["Location"] == reverse("questionnaires:detail", args=[own.pk])
    assert own.status == "draft" and own.instrument == ""
    nurse = world.actor("nurse.cardiology")
    from careloop.kit.errors import ValidationFailed

    try:
        services.assign(nurse, patient_id=patient.pk, questionnaire_id=own.pk)
        raise AssertionError("a draft was sent")
    except ValidationFailed as exc:
        assert "questionnaire" in exc.details
    client.post(reverse("questionnaires:status", args=[own.pk]), {"status": "active"})
    own.refresh_from_db()
    assert own.status == "active" and own.resource["status"] == "active"
    services.assign(nurse, patient_id=patient.pk, questionnaire_id=own.pk)
    client.post(reverse("questionnaires:status", args=[own.pk]), {"status": "retired"})
    own.refresh_from_db()
    assert own.status == "retired"
    # Shipped questionnaires cannot be retired; other organisations' are not found.
    client.post(reverse("questionnaires:status", args=[library["phq-9"].pk]), {"status": "retired"})
    library["phq-9"].refresh_from_db()
    assert library["phq-9"].status == "active"
    client.force_login(world.staff["admin.other"])
    r = client.post(reverse("questionnaires:status", args=[own.pk]), {"status": "active"})
    assert r.status_code == 404


def test_import_a_bundle_with_value_sets(world, library, client):
    folder = CORPUS / "questionnaires-mii-proms/phq-9-snapshot-2025-03"
    entries = [
        {"resource": json.loads(p.read_text())}
        for p in [folder / "Questionnaire-mii-qst-pro-phq-9.json", *folder.glob("ValueSet-*.json")]
    ]
    client.force_login(world.staff["admin"])
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    r = client.post(reverse("questionnaires:import"), {"file": _upload(bundle)})
    assert r.status_code == 302
    found = qm.Questionnaire.objects.get(organisation=world.org)
    assert found.instrument == "phq9" and len(found.resource["contained"]) == 2
    assert services.definition_of(found).by_id["PHQ-9.9"].options[3].weight == 3


def test_send_from_the_patient_page_with_reminder(world, library, client, patient):
    client.force_login(world.staff["nurse.cardiology"])
    r = client.post(
        reverse("questionnaires:send", args=[patient.pk]),
        {
            "questionnaire": library["phq-9"].pk,
            "due": (utc_now() + timedelta(days=5)).date().isoformat(),
            "back": "360",
        },
    )
    assert r["Location"] == reverse("patients:detail", args=[patient.pk])
    a = qm.Assignment.objects.get(patient=patient)
    assert a.assigned_by == world.staff["nurse.cardiology"] and a.via == "ad_hoc"
    reminder = rm.Occurrence.objects.get(patient=patient, kind="questionnaire")
    assert reminder.ref == f"questionnaire-assignment:{a.pk}"
    assert reminder.payload["title_en"] == "Patient Health Questionnaire (PHQ-9)"
    # A nurse of another department cannot send to this patient.
    client.force_login(world.staff["nurse.endocrinology"])
    r = client.post(
        reverse("questionnaires:send", args=[patient.pk]), {"questionnaire": library["phq-9"].pk}
    )
    assert r.status_code == 404
    # An auditor's role does not allow it.
    client.force_login(world.staff["auditor"])
    r = client.post(
        reverse("questionnaires:send", args=[patient.pk]), {"questionnaire": library["phq-9"].pk}
    )
    assert r.status_code == 403


def test_360_section_shows_scores_and_bands(world, send, patient, client):
    a = send("phq-9")
    answer_all(portal_client(patient), a, phq9_answers([2, 2, 2, 2, 2, 0, 0, 0, 1]))
    client.force_login(world.staff["doctor.cardiology"])
    with_slot = client.get(reverse("patients:detail", args=[patient.pk])).content.decode()
    assert reverse("questionnaires:patient_section", args=[patient.pk]) in with_slot
    section = client.get(reverse("questionnaires:patient_section", args=[patient.pk]))
    html = section.content.decode()
    row = section.context["responses"][0]
    assert row["r"].score == 11 and row["band"]
    assert "11" in html and row["band"] in html
    assert row["flags"] and row["flags"][0] in html
    detail = client.get(reverse("questionnaires:response", args=[row["r"].pk]))
    assert detail.status_code == 200 and len(detail.context["rows"]) >= 9
    client.force_login(world.staff["nurse.other"])
    assert client.get(reverse("questionnaires:response", args=[row["r"].pk])).status_code == 404
    assert client.get(reverse("questionnaires:patient", args=[patient.pk])).status_code == 404


def test_api_list_import_assign_and_responses(world, library, patient, api):
    nurse, admin = api("nurse.cardiology"), api("admin")
    listed = nurse.get("/api/questionnaires").json()
    assert {q["instrument"] for q in listed} == {
        "phq9",
        "gad7",
        "postop",
        "previsit",
        "satisfaction",
    }
    bad = admin.post(
        "/api/questionnaires",
        {
            "resource": {
                **OWN,
                "item": [
                    {
                        "linkId": "a",
                        "type": "integer",
                        "enableWhen": [{"question": "zz", "operator": "=", "answerInteger": 1}],
                    }
                ],
            }
        },
    )
    assert bad.status_code == 422
    assert list(bad.json()["details"]) == ["item[0].enableWhen[0].question"]
    assert nurse.post("/api/questionnaires", {"resource": OWN}).status_code == 403
    made = admin.post("/api/questionnaires", {"resource": OWN})
    assert made.status_code == 201 and made.json()["status"] == "active"
    sent = nurse.post(
        "/api/questionnaires/assignments",
        {"patient": patient.pk, "questionnaire": made.json()["id"], "notify": False},
    )
    assert sent.status_code == 201
    a = qm.Assignment.objects.get(pk=sent.json()["id"])
    answer_all(portal_client(patient), a, {"q:hours": "7", "q:rested": "true"})
    responses = nurse.get(f"/api/questionnaires/patients/{patient.pk}/responses").json()
    assert responses[0]["status"] == "completed"
    assert responses[0]["item"][0] == {
        "linkId": "hours",
        "text": "昨晚睡了几个小时？",
        "answer": [{"valueInteger": 7}],
    }
    assert (
        api("nurse.other").get(f"/api/questionnaires/patients/{patient.pk}/responses").status_code
        == 404
    )
    other = api("nurse.other").post(
        "/api/questionnaires/assignments",
        {"patient": patient.pk, "questionnaire": library["phq-9"].pk},
    )
    assert other.status_code == 404


def test_admin_builds_a_questionnaire_from_json(world, client):
    client.force_login(world.staff["admin"])
    url = reverse("admin:questionnaires_questionnaire_add")
    assert client.get(url).status_code == 200
    bad = {**OWN, "item": [{"linkId": "a", "type": "choice"}]}
    r = client.post(url, {"status": "draft", "resource": json.dumps(bad)})
    assert r.status_code == 200 and "item[0].answerOption" in r.content.decode()
    r = client.post(url, {"status": "active", "resource": json.dumps(OWN)})
    assert r.status_code == 302, r.content.decode()[:3000]
    made = qm.Questionnaire.objects.get(organisation=world.org)
    assert (made.title, made.status, made.resource["status"]) == ("睡眠情况", "active", "active")


def test_plan_questionnaire_activity_becomes_an_assignment(world, library, patient):
    nurse = world.actor("nurse.cardiology")
    plan_services.load_templates()
    tpl = cm.PlanTemplate.objects.get(code="post-discharge", organisation__isnull=True)
    past = utc_now() - timedelta(days=10)
    plan_services.enrol(nurse, patient.pk, tpl.pk, anchor_date=past.date(), now=past)
    occurrence = rm.Occurrence.objects.get(
        patient=patient, activity_code="recovery-questionnaire", due_at__lte=utc_now()
    )
    due = selectors.due_for_patient(patient.pk)
    assignment = qm.Assignment.objects.get(patient=patient)
    assert assignment.via == "plan" and assignment.occurrence == occurrence
    assert assignment.questionnaire == library["postop-symptoms"]
    assert [d["url"] for d in due] == [reverse("portal:questionnaire_answer", args=[assignment.pk])]
    # Idempotent: looking again makes no second assignment.
    selectors.due_for_patient(patient.pk)
    assert qm.Assignment.objects.filter(patient=patient).count() == 1


def test_load_command(db):
    out = StringIO()
    call_command("questionnaires", "load", stdout=out)
    assert "phq-9 v1.0.0" in out.getvalue()
    out = StringIO()
    call_command("questionnaires", "list", stdout=out)
    assert out.getvalue().count("shared") == 5


def test_previsit_answers_are_shown_to_the_doctor(world, send, patient, client):
    a = send("previsit")
    answer_all(
        portal_client(patient),
        a,
        {
            "q:chief-complaint": "最近头晕",
            "q:medication-changed": "true",
            "q:medication-changes": "自行停了氨氯地平",
            "q:questions": "能不能换一种药？",
        },
    )
    client.force_login(world.staff["doctor.cardiology"])
    section = client.get(reverse("questionnaires:patient_section", args=[patient.pk]))
    html = section.content.decode()
    assert 'data-testid="q-previsit"' in html
    for text in ("最近头晕", "自行停了氨氯地平", "能不能换一种药？"):
        assert text in html


def test_satisfaction_shows_nps_and_csat_categories(world, send, patient, client):
    a = send("satisfaction")
    answer_all(portal_client(patient), a, {"q:nps": "6", "q:csat": "2", "q:improve": "等待太久"})
    response = qm.Response.objects.get(assignment=a)
    assert (response.score, response.band) == (6, "detractor")
    assert response.result["details"]["csat_category"] == "dissatisfied"
    client.force_login(world.staff["nurse.cardiology"])
    with translation.override("en"):
        html = client.get(reverse("questionnaires:patient", args=[patient.pk])).content.decode()
    assert "Detractor" in html and "CSAT: Dissatisfied" in html
