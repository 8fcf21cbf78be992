"""Every read of questionnaires, assignments and responses, scoped to who is asking."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import translation

from careloop.kit.errors import NotFound
from careloop.questionnaires import models as qm
from careloop.questionnaires import translations


def display_title(questionnaire: qm.Questionnaire, language: str | None = None) -> str:
    """The questionnaire's title in the reader's language (translation extension if any)."""
    lang = language or translation.get_language() or "en"
    return (
        translations.text(questionnaire.resource, "title", lang, questionnaire.language)
        or questionnaire.title
    )


def library(organisation_id: int | None) -> QuerySet[qm.Questionnaire]:
    """Questionnaires an organisation may use: those shipped with CareLoop and its own."""
    return qm.Questionnaire.objects.filter(
        Q(organisation__isnull=True) | Q(organisation_id=organisation_id or 0)
    )


def questionnaire_for(organisation_id: int | None, pk: int) -> qm.Questionnaire:
    found = library(organisation_id).filter(pk=pk).first()
    if found is None:
        raise NotFound()
    return found


def open_assignments(patient_id: int) -> QuerySet[qm.Assignment]:
    """The patient's questionnaires still to answer (in progress ones included)."""
    return (
        qm.Assignment.objects.filter(patient_id=patient_id, status=qm.Assignment.Status.OPEN)
        .select_related("questionnaire")
        .order_by("due_at", "pk")
    )


def due_for_patient(patient_id: int) -> list[dict[str, Any]]:
    """What the portal's Today page lists: each questionnaire the patient has not completed,
    as {"title", "url" (the portal answer page), "due_at"}, earliest due first."""
    from careloop.questionnaires import services

    services.materialise_plan_assignments(patient_id=patient_id)
    lang = translation.get_language() or "en"
    found: list[dict[str, Any]] = []
    for a in open_assignments(patient_id):
        found.append(
            {
                "title": display_title(a.questionnaire, lang),
                "url": reverse("portal:questionnaire_answer", args=[a.pk]),
                "due_at": a.due_at,
            }
        )
    return found


def patient_assignment(patient_id: int, assignment_id: int) -> qm.Assignment:
    """One assignment of this patient; NotFound for anyone else's."""
    found = (
        qm.Assignment.objects.select_related("questionnaire")
        .filter(pk=assignment_id, patient_id=patient_id)
        .first()
    )
    if found is None:
        raise NotFound()
    return found


def patient_response(patient_id: int, response_id: int) -> qm.Response:
    found = (
        qm.Response.objects.select_related("questionnaire")
        .filter(pk=response_id, patient_id=patient_id)
        .first()
    )
    if found is None:
        raise NotFound()
    return found


def completed_responses(patient_id: int) -> QuerySet[qm.Response]:
    return (
        qm.Response.objects.filter(patient_id=patient_id, status=qm.Response.Status.COMPLETED)
        .select_related("questionnaire")
        .order_by("-authored", "-pk")
    )


def responses_for_patient(patient_id: int) -> QuerySet[qm.Response]:
    """Every response of the patient (staff view), newest first."""
    return (
        qm.Response.objects.filter(patient_id=patient_id)
        .select_related("questionnaire", "assignment")
        .order_by("-authored", "-pk")
    )


RULE_INSTRUMENTS = ("phq9", "gad7", "postop")


def rule_events(
    patient_ids: list[int],
) -> list[tuple[int, datetime, float, str, tuple[float, ...], int]]:
    """Completed scored responses as the rules engine sees them (system use, for replays):
    (patient, completed at, total, instrument, item scores, response id)."""
    rows = qm.Response.objects.filter(
        patient_id__in=patient_ids,
        status=qm.Response.Status.COMPLETED,
        completed_at__isnull=False,
    ).values_list("patient_id", "completed_at", "result", "id")
    found: list[tuple[int, datetime, float, str, tuple[float, ...], int]] = []
    for pid, at, result, pk in rows:
        result = result or {}
        if at is None:
            continue
        instrument = result.get("instrument", "")
        total = result.get("total")
        if instrument not in RULE_INSTRUMENTS or total is None:
            continue
        items = tuple(max(float(v), 0.0) for v in result.get("items") or ())
        found.append((pid, at, float(total), instrument, items, pk))
    return found
