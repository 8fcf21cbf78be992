"""The questionnaire routes in the shared security and audit tests (tests/security/scenario.py).

The scene's patient has an open PHQ-9 (sent by the cardiology nurse) and a completed GAD-7;
the organisation has its own imported questionnaire, which the library routes act on.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from careloop.portal.context import PortalActor
from careloop.questionnaires import models as qm
from careloop.questionnaires import services

SHIPPED = "https://careloop.dev/fhir/Questionnaire/"

OWN = {
    "resourceType": "Questionnaire",
    "url": "https://hospital.example/fhir/Questionnaire/sleep",
    "version": "1",
    "title": "睡眠情况",
    "status": "active",
    "language": "zh-CN",
    "item": [
        {"linkId": "hours", "type": "integer", "text": "昨晚睡了几个小时？", "required": True},
        {"linkId": "rested", "type": "boolean", "text": "醒来后觉得休息好了吗？"},
    ],
}


def _ours(route: Any) -> bool:
    return route.name.startswith(("questionnaires:", "portal:questionnaire")) or (
        route.path.startswith("/api/questionnaires")
    )


def extend(scene: Any) -> None:
    services.load_shipped()
    p = scene.patient
    nurse = scene.nurse()
    admin = scene.world.actor("admin")
    library = {q.url: q for q in qm.Questionnaire.objects.filter(organisation__isnull=True)}
    phq, gad = library[SHIPPED + "phq-9"], library[SHIPPED + "gad-7"]
    scene.extra["q_assignment"] = services.assign(nurse, patient_id=p.pk, questionnaire_id=phq.pk)
    done = services.assign(nurse, patient_id=p.pk, questionnaire_id=gad.pk, notify=False)
    actor = PortalActor(patient_id=p.pk, organisation_id=p.organisation_id, session_id=0)
    response = services.response_for(actor, done.pk)
    answers = {f"gad7-{i}": ["LA6569-3"] for i in range(1, 8)}
    definition = services.definition_of(gad)
    scene.extra["q_response"] = services.save(
        actor, response.pk, answers, link_ids={i.link_id for i in definition.walk()}, complete=True
    )
    scene.extra["q_own"] = services.import_questionnaire(admin, dict(OWN))
    scene.extra["q_phq"] = phq


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "assignment_id" in route.path:
        values["assignment_id"] = scene.extra["q_assignment"].pk
    if "response_id" in route.path:
        values["response_id"] = scene.extra["q_response"].pk
    if "questionnaire_id" in route.path:
        values["questionnaire_id"] = scene.extra["q_own"].pk
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route) or route.transport != "page":
        return None
    if route.name == "questionnaires:import":
        upload = SimpleUploadedFile(
            "sleep.json", json.dumps(OWN).encode(), content_type="application/json"
        )
        return {"file": upload}
    bodies: dict[str, dict[str, Any]] = {
        "questionnaires:status": {"status": "active"},
        "questionnaires:send": {"questionnaire": scene.extra["q_phq"].pk},
        "portal:questionnaire_answer": {"page": "0", "step": "save", "q:phq9-1": "LA6569-3"},
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    if route.transport != "api" or not _ours(route) or route.method != "POST":
        return None
    if route.path.endswith("/assignments"):
        body = {"patient": scene.patient.pk, "questionnaire": scene.extra["q_phq"].pk}
        return body, {}
    return {"resource": dict(OWN)}, {}
