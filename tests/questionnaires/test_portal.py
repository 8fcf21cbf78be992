"""The portal answer pages: screens, save and resume, validation, results, other patients."""

from __future__ import annotations

import re
from typing import Any

from django.urls import reverse

from careloop.audit.models import AuditEvent
from careloop.portal import events
from careloop.questionnaires import models as qm
from careloop.questionnaires import selectors
from tests.portal.client import portal_client
from tests.questionnaires.support import answer_all, phq9_answers


def _url(a: qm.Assignment, page: int | None = None) -> str:
    url = reverse("portal:questionnaire_answer", args=[a.pk])
    return url if page is None else f"{url}?page={page}"


def test_list_shows_due_and_done(send, patient):
    a = send("gad-7")
    c = portal_client(patient, language="en")
    page = c.get(reverse("portal:questionnaires"))
    assert page.status_code == 200
    assert "Generalized Anxiety Disorder scale (GAD-7)" in page.content.decode()
    assert AuditEvent.objects.filter(
        action="portal.questionnaire.list", patient_id=patient.pk
    ).exists()
    answer_all(c, a, {f"q:gad7-{i}": "LA6568-5" for i in range(1, 8)})
    page = c.get(reverse("portal:questionnaires"))
    assert page.context["due"] == [] and len(page.context["done"]) == 1


def test_partial_save_and_resume(send, patient):
    a = send("postop-symptoms")
    c = portal_client(patient)
    # First screen (general): answer half, then "save and finish later".
    r = c.post(_url(a), {"page": 0, "step": "save", "q:pain": "4", "q:fever": "true"})
    assert r.status_code == 302 and r["Location"] == reverse("portal:questionnaires")
    response = qm.Response.objects.get(assignment=a)
    assert response.status == "in-progress"
    # Coming back: the answers are there, the assignment still due, the list says "carry on".
    assert [d["url"] for d in selectors.due_for_patient(patient.pk)] == [_url(a)]
    again = c.get(_url(a))
    fields = {f.item.link_id: f for f in again.context["fields"][0].children}
    assert fields["pain"].value == "4" and fields["fever"].values == ["true"]
    assert fields["temperature"].enabled  # fever = yes shows the temperature question
    listing = c.get(reverse("portal:questionnaires"))
    assert listing.context["due"][0]["started"] is True
    # Finish the screen, go on, come back to it: still kept.
    r = c.post(
        _url(a),
        {
            "page": 0,
            "step": "next",
            "q:pain": "4",
            "q:fever": "true",
            "q:temperature": "37.9",
            "q:nausea": "none",
        },
    )
    assert r["Location"].endswith("?page=1")
    r = c.post(_url(a), {"page": 1, "step": "back", "q:wound-redness": "false"})
    assert r["Location"].endswith("?page=0")
    saved = {f.item.link_id: f.value for f in c.get(_url(a, 0)).context["fields"][0].children}
    assert saved["temperature"] == "37.9"
    assert qm.Response.objects.filter(assignment=a).count() == 1


def test_validation_messages_per_item_and_nothing_saved(send, patient):
    a = send("postop-symptoms")
    c = portal_client(patient, language="en")
    r = c.post(_url(a), {"page": 0, "step": "next", "q:pain": "11", "q:fever": "false"})
    assert r.status_code == 422
    errors = r.context["errors"]
    assert errors == {
        "pain": "Enter a number from 0 to 10.",
        "nausea": "This question needs an answer.",
    }
    assert "Enter a number from 0 to 10." in r.content.decode()
    assert not qm.Response.objects.filter(assignment=a).exists()


def test_required_only_when_enabled_on_the_page(send, patient):
    a = send("postop-symptoms")
    c = portal_client(patient)
    # Fever "no": the temperature question is disabled, so not required; a stray value is dropped.
    r = c.post(
        _url(a),
        {
            "page": 0,
            "step": "next",
            "q:pain": "2",
            "q:fever": "false",
            "q:temperature": "39",
            "q:nausea": "none",
        },
    )
    assert r.status_code == 302
    items = qm.Response.objects.get(assignment=a).items
    general = [i["linkId"] for i in items[0]["item"]]
    assert general == ["pain", "fever", "nausea"]


def test_submit_with_a_required_item_open_elsewhere_goes_there(send, patient):
    a = send("previsit")
    c = portal_client(patient, language="en")
    # One screen of loose items; submit without the required medication question.
    r = c.post(_url(a), {"page": 0, "step": "submit", "q:chief-complaint": "头晕"})
    assert r.status_code == 422
    assert r.context["errors"] == {"medication-changed": "This question needs an answer."}
    r = c.post(
        _url(a),
        {"page": 0, "step": "submit", "q:chief-complaint": "头晕", "q:medication-changed": "true"},
    )
    assert r.status_code == 422  # the detail becomes required once "yes"
    assert set(r.context["errors"]) == {"medication-changes"}
    r = c.post(
        _url(a),
        {
            "page": 0,
            "step": "submit",
            "q:chief-complaint": "头晕",
            "q:symptoms": ["dizziness", "poor-sleep"],
            "q:medication-changed": "true",
            "q:medication-changes": "停了氨氯地平",
        },
    )
    assert r.status_code == 302
    response = qm.Response.objects.get(assignment=a)
    assert response.status == "completed" and response.score is None
    symptoms = next(i for i in response.items if i["linkId"] == "symptoms")
    assert [x["valueCoding"]["code"] for x in symptoms["answer"]] == ["dizziness", "poor-sleep"]


def test_elder_mode_shows_one_question_per_screen(send, patient):
    a = send("phq-9")
    c = portal_client(patient)
    c.cookies["careloop_elder"] = "1"
    first = c.get(_url(a))
    assert first.context["count"] == 10  # the intro, then nine questions; item 10 appears later
    assert len(first.context["fields"]) == 1
    done = answer_all(
        c, a, phq9_answers([1, 0, 0, 0, 0, 0, 0, 0, 0]) | {"q:phq9-difficulty": "LA6573-5"}
    )
    assert done.status_code == 302
    response = qm.Response.objects.get(assignment=a)
    assert response.score == 1
    assert any(i["linkId"] == "phq9-difficulty" for i in response.items)


def test_completion_emits_event_and_audits(send, patient, django_capture_on_commit_callbacks):
    seen: list[Any] = []
    events.on(seen.append)
    a = send("gad-7")
    c = portal_client(patient)
    with django_capture_on_commit_callbacks(execute=True):
        answer_all(c, a, {f"q:gad7-{i}": "LA6570-1" for i in range(1, 8)})
    response = qm.Response.objects.get(assignment=a)
    assert [(e.kind, e.ref) for e in seen if e.patient_id == patient.pk] == [
        (events.QUESTIONNAIRE, f"response:{response.pk}")
    ]
    assert response.score == 14 and response.band == "moderate"
    actions = set(AuditEvent.objects.filter(patient_id=patient.pk).values_list("action", flat=True))
    assert {
        "portal.questionnaire.view",
        "portal.questionnaire.start",
        "portal.questionnaire.complete",
    } <= actions
    # Answered once: the page now shows the result; the form cannot be posted again.
    assert c.get(_url(a))["Location"] == reverse("portal:questionnaire_result", args=[response.pk])
    r = c.post(_url(a), {"page": 0, "step": "submit"})
    assert r.status_code == 302 and qm.Response.objects.filter(assignment=a).count() == 1


def test_result_wording_is_plain(send, patient):
    a = send("phq-9")
    c = portal_client(patient, language="en")
    done = answer_all(c, a, phq9_answers([3, 3, 3, 3, 3, 3, 2, 0, 0]))
    page = c.get(done["Location"]).content.decode()
    card = page.split('data-testid="q-result"')[1].split("</article>")[0]
    assert "Your care team will look at them" in card
    # No score and no severity label for the patient: what it means and what happens next.
    assert "severe" not in card.lower() and not re.search(r"\b20\b", card)
    assert 'data-testid="q-crisis"' not in page


def test_other_patients_assignment_and_response_are_404(send, patient, make_patient):
    a = send("gad-7")
    answer_all(portal_client(patient), a, {f"q:gad7-{i}": "LA6568-5" for i in range(1, 8)})
    response = qm.Response.objects.get(assignment=a)
    b = send("phq-9")
    other = portal_client(make_patient())
    assert other.get(_url(b)).status_code == 404
    assert (
        other.post(_url(b), {"page": 0, "step": "save", "q:phq9-1": "LA6569-3"}).status_code == 404
    )
    assert other.get(reverse("portal:questionnaire_result", args=[response.pk])).status_code == 404
    assert not qm.Response.objects.filter(assignment=b).exists()


def test_cancelled_assignment_is_gone(send, patient):
    a = send("gad-7")
    qm.Assignment.objects.filter(pk=a.pk).update(status="cancelled")
    assert portal_client(patient).get(_url(a)).status_code == 404
    assert selectors.due_for_patient(patient.pk) == []
