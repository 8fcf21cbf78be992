"""Every write of questionnaires, assignments and responses: one transaction each, audited."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Forbidden, NotFound, ValidationFailed
from careloop.patients import models as pm
from careloop.portal import events
from careloop.portal.context import PortalActor
from careloop.questionnaires import fhir, scoring, selectors
from careloop.questionnaires import models as qm

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
# Plan activities of kind "questionnaire" and the shipped questionnaire each one sends
# (an activity's payload may also name one: {"questionnaire": "<canonical url>"}).
SHIPPED = "https://careloop.dev/fhir/Questionnaire/"
PLAN_ACTIVITY_QUESTIONNAIRES = {
    "recovery-questionnaire": SHIPPED + "postop-symptoms",
    # Depression screening is part of diabetes care (ADA Standards of Care, section 5).
    "symptom-questionnaire": SHIPPED + "phq-9",
}
DEFAULT_DUE = timedelta(days=3)


@functools.cache
def known_value_sets() -> dict[str, Any]:
    """Answer lists questionnaires may name without carrying them (data/valuesets: the LOINC
    PHQ/GAD answer lists with their item scores), by canonical url."""
    found: dict[str, Any] = {}
    for path in sorted((DATA_DIR / "valuesets").glob("*.json")):
        value_set = json.loads(path.read_text(encoding="utf-8"))
        found[value_set["url"]] = value_set
    return found


def parse(resource: Any, value_sets: Mapping[str, Any] | None = None) -> fhir.Definition:
    """fhir.parse with the known answer lists (and any given ones, which win)."""
    return fhir.parse(resource, {**known_value_sets(), **(value_sets or {})})


def _require(actor: Actor, action: Action, patient_id: int | None = None) -> None:
    if not actor.can(action):
        audit.record_denied(actor, str(action), patient_id=patient_id, detail={"reason": "role"})
        raise Forbidden()


def _errors(exc: fhir.InvalidResource) -> ValidationFailed:
    return ValidationFailed(details=exc.errors)


# --- the library ------------------------------------------------------------------------------


def read_upload(content: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """An uploaded file → (Questionnaire, {value set url: ValueSet}). Accepts a Questionnaire or
    a Bundle holding one Questionnaire and the ValueSets its answerValueSet items name."""
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(details={"$": [_("The file is not JSON: %s") % exc]}) from None
    if not isinstance(data, dict):
        raise ValidationFailed(details={"$": [_("must be a JSON object")]})
    if data.get("resourceType") != "Bundle":
        return data, {}
    questionnaires = []
    value_sets: dict[str, Any] = {}
    for i, entry in enumerate(data.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise ValidationFailed(details={f"entry[{i}]": [_("has no resource")]})
        if resource.get("resourceType") == "Questionnaire":
            questionnaires.append(resource)
        elif resource.get("resourceType") == "ValueSet" and isinstance(resource.get("url"), str):
            value_sets[resource["url"]] = resource
    if len(questionnaires) != 1:
        raise ValidationFailed(details={"entry": [_("the Bundle must hold one Questionnaire")]})
    return questionnaires[0], value_sets


def _with_value_sets(resource: dict[str, Any], value_sets: Mapping[str, Any]) -> dict[str, Any]:
    """The resource with the ValueSets it uses kept in ``contained`` (so it is self-sufficient)."""
    if not value_sets:
        return resource
    used = {
        item.get("answerValueSet")
        for item in _walk_raw(resource.get("item") or [])
        if isinstance(item, dict)
    }
    contained = list(resource.get("contained") or [])
    have = {c.get("url") for c in contained if isinstance(c, dict)}
    for url, value_set in value_sets.items():
        if url in used and url not in have:
            contained.append(value_set)
    return {**resource, "contained": contained} if contained else resource


def _walk_raw(items: list[Any]) -> list[Any]:
    found = []
    for item in items:
        found.append(item)
        if isinstance(item, dict):
            found += _walk_raw(item.get("item") or [])
    return found


def same_organisation(organisation_id: int | None) -> QuerySet[qm.Questionnaire]:
    """Questionnaires of one organisation (None: those shipped with CareLoop)."""
    if organisation_id is None:
        return qm.Questionnaire.objects.filter(organisation__isnull=True)
    return qm.Questionnaire.objects.filter(organisation_id=organisation_id)


def _store(
    organisation_id: int | None, resource: dict[str, Any], definition: fhir.Definition
) -> tuple[qm.Questionnaire, bool]:
    """Insert or update (same organisation, url and version) one questionnaire."""
    url = definition.url or f"urn:careloop:questionnaire:{definition.name or definition.title}"
    status = definition.status if definition.status in qm.Questionnaire.Status.values else "draft"
    values = {
        "name": definition.name[:120],
        "title": definition.title[:200],
        "language": definition.language[:20],
        "instrument": scoring.instrument_of(definition),
        "resource": resource,
        "updated_at": utc_now(),
    }
    existing = (
        same_organisation(organisation_id)
        .filter(url=url[:255], version=definition.version[:40])
        .first()
    )
    if existing is not None:
        for key, value in values.items():
            setattr(existing, key, value)
        existing.save()
        return existing, False
    return (
        qm.Questionnaire.objects.create(
            organisation_id=organisation_id,
            url=url[:255],
            version=definition.version[:40],
            status=status,
            **values,
        ),
        True,
    )


def import_questionnaire(
    actor: Actor, resource: Any, value_sets: Mapping[str, Any] | None = None
) -> qm.Questionnaire:
    """Check and store a FHIR Questionnaire for the actor's organisation (as a draft unless it
    says active). Errors by element path; nothing stored on error."""
    _require(actor, Action.ORG_MANAGE)
    try:
        definition = parse(resource, value_sets)
    except fhir.InvalidResource as exc:
        raise _errors(exc) from None
    stored_resource = _with_value_sets(dict(resource), value_sets or {})
    with transaction.atomic():
        found, created = _store(actor.organisation_id, stored_resource, definition)
        audit.record(
            actor,
            "questionnaire.import",
            obj=found,
            detail={"url": found.url, "version": found.version, "created": created},
        )
    return found


def set_status(actor: Actor, questionnaire_id: int, status: str) -> qm.Questionnaire:
    """Activate or retire one of the organisation's questionnaires (shipped ones too)."""
    _require(actor, Action.ORG_MANAGE)
    if status not in (qm.Questionnaire.Status.ACTIVE, qm.Questionnaire.Status.RETIRED):
        raise ValidationFailed(details={"status": [_("Choose active or retired.")]})
    with transaction.atomic():
        found = (
            selectors.library(actor.organisation_id)
            .select_for_update()
            .filter(pk=questionnaire_id)
            .first()
        )
        if found is None:
            raise NotFound()
        if found.organisation_id is None and status == qm.Questionnaire.Status.RETIRED:
            raise ValidationFailed(
                details={"status": [_("Questionnaires shipped with CareLoop cannot be retired.")]}
            )
        found.status = status
        found.resource = {**found.resource, "status": status}
        found.updated_at = utc_now()
        found.save(update_fields=["status", "resource", "updated_at"])
        audit.record(actor, f"questionnaire.{status}", obj=found)
    return found


def load_shipped(directory: Path = DATA_DIR) -> list[tuple[qm.Questionnaire, bool]]:
    """Load (or refresh) the questionnaires shipped in data/ (system action, idempotent)."""
    loaded = []
    for path in sorted(directory.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        definition = parse(resource)
        with transaction.atomic():
            loaded.append(_store(None, resource, definition))
    return loaded


def definition_of(questionnaire: qm.Questionnaire) -> fhir.Definition:
    return parse(questionnaire.resource)


# --- assignments ------------------------------------------------------------------------------


def assign(
    actor: Actor,
    *,
    patient_id: int,
    questionnaire_id: int,
    due_at: datetime | None = None,
    notify: bool = True,
) -> qm.Assignment:
    """Send a questionnaire to a patient (ad hoc); a reminder goes out through the reminder
    dispatcher when ``notify``."""
    from careloop.patients import selectors as patient_selectors

    _require(actor, Action.CLINICAL_WRITE, patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    questionnaire = selectors.library(actor.organisation_id).filter(pk=questionnaire_id).first()
    if questionnaire is None:
        raise ValidationFailed(details={"questionnaire": [_("Choose a questionnaire.")]})
    if questionnaire.status != qm.Questionnaire.Status.ACTIVE:
        raise ValidationFailed(details={"questionnaire": [_("This questionnaire is not active.")]})
    now = utc_now()
    due = due_at or now + DEFAULT_DUE
    if due < now - timedelta(minutes=5):
        raise ValidationFailed(details={"due_at": [_("The due date is in the past.")]})
    with transaction.atomic():
        assignment = qm.Assignment.objects.create(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            questionnaire=questionnaire,
            via=qm.Assignment.Via.AD_HOC,
            due_at=due,
            assigned_by=actor.user,
        )
        if notify:
            _notify(assignment, patient, now)
        audit.record(
            actor,
            "questionnaire.assign",
            patient_id=patient.pk,
            obj=assignment,
            detail={"questionnaire": questionnaire.pk, "due_at": due.isoformat()},
        )
    return assignment


def _notify(assignment: qm.Assignment, patient: pm.Patient, now: datetime) -> None:
    from careloop.reminders import services as reminders

    questionnaire = assignment.questionnaire
    reminders.schedule_one(
        organisation_id=assignment.organisation_id,
        patient_id=patient.pk,
        kind="questionnaire",
        source_key=f"questionnaire-assignment:{assignment.pk}",
        due_at=now,
        time_zone=patient.time_zone,
        payload={
            "title": selectors.display_title(questionnaire, "zh-hans"),
            "title_en": selectors.display_title(questionnaire, "en"),
        },
        ref=f"questionnaire-assignment:{assignment.pk}",
    )


def materialise_plan_assignments(
    *, patient_id: int | None = None, now: datetime | None = None
) -> int:
    """Turn due care-plan questionnaire reminders into assignments (system action, idempotent:
    one assignment per reminder). Returns how many were created."""
    from careloop.reminders import models as rm

    moment = now or utc_now()
    occurrences = rm.Occurrence.objects.filter(
        kind="questionnaire", enrolment__isnull=False, due_at__lte=moment
    ).exclude(status__in=("cancelled", "superseded"))
    if patient_id is not None:
        occurrences = occurrences.filter(patient_id=patient_id)
    taken = qm.Assignment.objects.filter(occurrence__in=occurrences).values("occurrence_id")
    created = 0
    shipped = {
        q.url: q
        for q in qm.Questionnaire.objects.filter(
            organisation__isnull=True, status=qm.Questionnaire.Status.ACTIVE
        )
    }
    for occ in occurrences.exclude(pk__in=taken).order_by("due_at")[:200]:
        url = (occ.payload or {}).get("questionnaire") or PLAN_ACTIVITY_QUESTIONNAIRES.get(
            occ.activity_code
        )
        questionnaire = shipped.get(url) if isinstance(url, str) else None
        if questionnaire is None:
            questionnaire = (
                qm.Questionnaire.objects.filter(
                    organisation_id=occ.organisation_id,
                    url=url or "",
                    status=qm.Questionnaire.Status.ACTIVE,
                )
                .order_by("-pk")
                .first()
            )
        if questionnaire is None:
            continue
        try:
            with transaction.atomic():
                qm.Assignment.objects.create(
                    organisation_id=occ.organisation_id,
                    patient_id=occ.patient_id,
                    questionnaire=questionnaire,
                    via=qm.Assignment.Via.PLAN,
                    occurrence=occ,
                    due_at=occ.due_at + DEFAULT_DUE,
                    created_at=moment,
                )
        except IntegrityError:  # made by a concurrent request
            continue
        created += 1
    return created


# --- responses --------------------------------------------------------------------------------


def _source(actor: PortalActor) -> str:
    return qm.Response.Source.CAREGIVER if actor.is_proxy else qm.Response.Source.PATIENT


def response_for(actor: PortalActor, assignment_id: int) -> qm.Response:
    """The patient's response to an assignment: the one in progress (resume) or a new one."""
    assignment = selectors.patient_assignment(actor.patient_id, assignment_id)
    with transaction.atomic():
        locked = qm.Assignment.objects.select_for_update().get(pk=assignment.pk)
        found = qm.Response.objects.filter(assignment=locked).first()
        if found is not None:
            return found
        if locked.status != qm.Assignment.Status.OPEN:
            raise NotFound()
        response = qm.Response.objects.create(
            organisation_id=locked.organisation_id,
            patient_id=locked.patient_id,
            questionnaire_id=locked.questionnaire_id,
            assignment=locked,
            source=_source(actor),
            caregiver_id=actor.caregiver_id,
        )
        actor.audit(
            "portal.questionnaire.start",
            object_type="questionnaire_response",
            object_id=response.pk,
        )
    return response


def save(
    actor: PortalActor,
    response_id: int,
    answers: Mapping[str, list[fhir.Value]],
    *,
    link_ids: set[str],
    complete: bool = False,
) -> qm.Response:
    """Save the answers to the items ``link_ids`` of one page (others kept as saved), and with
    ``complete`` check required enabled items, score, and complete the response."""
    with transaction.atomic():
        response = (
            qm.Response.objects.select_for_update()
            .select_related("questionnaire")
            .filter(pk=response_id, patient_id=actor.patient_id)
            .first()
        )
        if response is None:
            raise NotFound()
        if response.status == qm.Response.Status.COMPLETED:
            raise ValidationFailed(details={"status": [_("This questionnaire is already sent.")]})
        definition = definition_of(response.questionnaire)
        merged = fhir.from_response_items(definition, response.items)
        for link_id in link_ids:
            merged.pop(link_id, None)
        merged.update({k: list(v) for k, v in answers.items() if v})
        if complete:
            missing = fhir.missing_required(definition, merged)
            if missing:
                raise ValidationFailed(details={k: [v] for k, v in missing.items()})
        response.items = fhir.to_response_items(definition, merged)
        response.source = _source(actor)
        response.caregiver_id = actor.caregiver_id
        response.authored = utc_now()
        if complete:
            _complete(response, definition, fhir.from_response_items(definition, response.items))
        response.save()
        actor.audit(
            "portal.questionnaire.complete" if complete else "portal.questionnaire.save",
            object_type="questionnaire_response",
            object_id=response.pk,
            detail={"answered": len(merged)},
        )
        if complete:
            events.emit(
                events.QUESTIONNAIRE,
                patient_id=response.patient_id,
                organisation_id=response.organisation_id,
                ref=f"response:{response.pk}",
            )
    return response


def _complete(response: qm.Response, definition: fhir.Definition, answers: fhir.Answers) -> None:
    now = response.authored
    response.status = qm.Response.Status.COMPLETED
    response.completed_at = now
    instrument = response.questionnaire.instrument
    result = scoring.score(instrument, definition, answers)
    if result is not None:
        response.score = result.total
        response.band = result.band
        response.result = result.as_json()
    if response.assignment_id is not None:
        qm.Assignment.objects.filter(pk=response.assignment_id).update(
            status=qm.Assignment.Status.COMPLETED, completed_at=now
        )
    if result is not None and result.total is not None:
        # Saved first: a replay of the patient's history reads the completed response.
        response.save(update_fields=["status", "completed_at", "score", "band", "result"])
        feed_rules(response, result)


def feed_rules(response: qm.Response, result: scoring.Result) -> int:
    """The score as a rule-engine event (instrument in ``context``, item scores in ``items``):
    PHQ-9 item 9, PHQ-9 ≥ 20 and post-op red flags raise alerts (rules/data/default.toml)."""
    from careloop.alerts import evaluation

    if result.instrument not in ("phq9", "gad7", "postop") or result.total is None:
        return 0
    patient = pm.Patient.objects.only("time_zone").get(pk=response.patient_id)
    event = evaluation.make_event(
        response.patient_id,
        kind="questionnaire",
        at=response.completed_at or utc_now(),
        zone=patient.time_zone,
        value=float(result.total),
        context=result.instrument,
        items=tuple(max(v, 0.0) for v in result.items),
        ref=response.pk,
    )
    return evaluation.evaluate(response.organisation_id, [event])
