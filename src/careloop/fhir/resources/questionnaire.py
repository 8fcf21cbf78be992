"""Questionnaire ↔ questionnaires.Questionnaire and QuestionnaireResponse ↔
questionnaires.Response.

A Questionnaire is stored as the FHIR JSON it was imported as, so it reads back as sent (its
status follows the library's). The library holds the questionnaires shipped with CareLoop and
the organisation's own; creating or updating one goes through the library import service, with
the same checks as an uploaded file (errors name the element path). Shipped questionnaires are
read only. CareLoop keeps no version counter for questionnaires: the versionId is the time of
the last change in milliseconds, which is what If-Match compares.

A QuestionnaireResponse sent here is a response entered by staff for a patient: its answers are
checked against the questionnaire like the portal's, and a completed one is scored and fed to
the alert rules by the same code as a patient's (PHQ-9 item 9 above 0 raises the urgent alert).
It completes the patient's open assignment of that questionnaire, if there is one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.fhir.outcome import FhirError, Issue
from careloop.fhir.registry import (
    READ_ONLY,
    SERVER_ELEMENTS,
    Context,
    Mapper,
    SearchParam,
    instant,
    register,
)
from careloop.fhir.resources import common as c
from careloop.fhir.search import parse_date
from careloop.kit.clock import utc_now
from careloop.kit.errors import CareLoopError
from careloop.patients import selectors as patient_selectors
from careloop.portal import events
from careloop.questionnaires import fhir as qfhir
from careloop.questionnaires import models as qm
from careloop.questionnaires import selectors as q_selectors
from careloop.questionnaires import services as q_services

_NONE = Q(pk__in=[])


def _invalid(resource_type: str, errors: Mapping[str, Any], status: int = 422) -> FhirError:
    """The library's errors (by path inside the resource) as an OperationOutcome."""
    issues = []
    for path, messages in errors.items():
        where = resource_type if path in ("$", "") else f"{resource_type}.{path}"
        for message in messages if isinstance(messages, list) else [messages]:
            issues.append(Issue(str(message), "invalid", "error", (where,)))
    return FhirError(status, issues or [Issue(_("The resource is not valid."), "invalid")])


def _token(field: str) -> Any:
    def build(system: str | None, value: str) -> Q:
        return Q(**{field: value}) if system in (None, "") else _NONE

    return build


# --- Questionnaire ----------------------------------------------------------------------------


def _url(raw: str) -> Q:
    url, _sep, version = raw.partition("|")
    return Q(url=url, version=version) if version else Q(url=url)


@register
class QuestionnaireMapper(Mapper):
    resource_type = "Questionnaire"
    model = qm.Questionnaire
    interactions = READ_ONLY | {"create", "update"}
    read_actions = ()
    write_actions = (Action.ORG_MANAGE,)
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "url": SearchParam("uri", _url, "The canonical URL (url|version narrows)"),
        "name": SearchParam("string", lambda v: Q(name__istartswith=v)),
        "title": SearchParam("string", lambda v: Q(title__icontains=v)),
        "status": SearchParam("token", _token("status")),
        "version": SearchParam("token", _token("version")),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "title": "title", "name": "name"}
    default_sort = ("title", "pk")

    def visible(self, actor: Actor) -> QuerySet[Any]:
        if actor.organisation_id is None:
            return qm.Questionnaire.objects.none()
        return q_selectors.library(actor.organisation_id)

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def version_of(self, obj: Any) -> int:
        return int(obj.updated_at.timestamp() * 1000)

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        stored = obj.resource if isinstance(obj.resource, dict) else {}
        out = {k: v for k, v in stored.items() if k not in SERVER_ELEMENTS}
        out["status"] = obj.status
        return out

    def _definition(self, resource: dict[str, Any]) -> qfhir.Definition:
        try:
            return q_services.parse(resource)
        except qfhir.InvalidResource as exc:
            raise _invalid(self.resource_type, exc.errors) from exc

    def _import(self, ctx: Context, resource: dict[str, Any]) -> qm.Questionnaire:
        try:
            return q_services.import_questionnaire(ctx.actor, resource)
        except CareLoopError as exc:
            details = getattr(exc, "details", None)
            if isinstance(details, dict) and details:
                raise _invalid(self.resource_type, details) from exc
            raise c.service_error(exc, self.resource_type, {}) from exc

    def _existing(self, actor: Actor, definition: qfhir.Definition) -> qm.Questionnaire | None:
        url = definition.url or f"urn:careloop:questionnaire:{definition.name or definition.title}"
        return (
            q_services.same_organisation(actor.organisation_id)
            .filter(url=url[:255], version=definition.version[:40])
            .first()
        )

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        definition = self._definition(resource)
        existing = self._existing(ctx.actor, definition)
        if existing is not None:
            if self.to_fhir(existing) == {
                k: v for k, v in resource.items() if k not in SERVER_ELEMENTS
            }:
                return existing, False
            raise FhirError.of(
                409,
                _("Questionnaire/%(id)s already has this url and version; update it instead.")
                % {"id": existing.pk},
                code="duplicate",
                expression="Questionnaire.url",
            )
        return self._import(ctx, resource), True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        if obj.organisation_id is None:
            raise FhirError.of(
                403,
                _("Questionnaires shipped with CareLoop cannot be changed; import a copy."),
                code="forbidden",
            )
        definition = self._definition(resource)
        existing = self._existing(ctx.actor, definition)
        if existing is None or existing.pk != obj.pk:
            raise c.not_supported(
                "Questionnaire.url",
                _("The url and version name the questionnaire; they cannot change."),
            )
        status = resource.get("status")
        if status != obj.status and status not in ("active", "retired"):
            raise c.not_supported(
                "Questionnaire.status", _("A questionnaire can be made active or retired.")
            )
        row = self._import(ctx, {k: v for k, v in resource.items() if k != "id"})
        if status != row.status:
            try:
                row = q_services.set_status(ctx.actor, row.pk, str(status))
            except CareLoopError as exc:
                raise _invalid(self.resource_type, getattr(exc, "details", {}) or {}) from exc
        return qm.Questionnaire.objects.get(pk=row.pk)


# --- QuestionnaireResponse --------------------------------------------------------------------


def _questionnaire_param(raw: str) -> Q:
    if raw.startswith("Questionnaire/") or raw.isdigit():
        ident = raw.rsplit("/", 1)[-1]
        return Q(questionnaire_id=c.pk_of(ident))
    url, _sep, version = raw.partition("|")
    found = Q(questionnaire__url=url)
    return found & Q(questionnaire__version=version) if version else found


def _paths(items: Any, path: str, out: dict[str, str], unknown: list[str], known: Any) -> None:
    """Where each linkId's answers are in the sent item tree; linkIds the questionnaire lacks."""
    if not isinstance(items, list):
        return
    for i, entry in enumerate(items):
        if not isinstance(entry, dict):
            continue
        here = f"{path}[{i}]"
        link_id = str(entry.get("linkId"))
        out.setdefault(link_id, here)
        if link_id not in known:
            unknown.append(here)
        _paths(entry.get("item"), f"{here}.item", out, unknown, known)
        for j, answer in enumerate(entry.get("answer") or []):
            if isinstance(answer, dict):
                _paths(answer.get("item"), f"{here}.answer[{j}].item", out, unknown, known)


@register
class QuestionnaireResponseMapper(Mapper):
    resource_type = "QuestionnaireResponse"
    model = qm.Response
    interactions = READ_ONLY | {"create"}
    read_actions = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
    write_actions = (Action.PATIENT_VIEW, Action.CLINICAL_WRITE)
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", lambda r: r.q("authored")),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "questionnaire": SearchParam(
            "reference", _questionnaire_param, "Questionnaire/<id> or the canonical url[|version]"
        ),
        "status": SearchParam("token", _token("status")),
        "authored": SearchParam("date", lambda r: r.q("authored")),
    }
    sorts = {"_id": "pk", "authored": "authored", "_lastUpdated": "authored"}
    default_sort = ("-authored", "-pk")
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "questionnaire": ("questionnaire_id",),
        "status": ("status",),
        "subject": ("patient_id",),
        "authored": ("authored",),
        "author": ("source", "staff_id"),
        "item": ("items",),
    }
    keeps_extra = True

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return qm.Response.objects.filter(
            organisation_id=actor.organisation_id or 0,
            patient_id__in=patient_selectors.visible_patients(actor).values("pk"),
        ).select_related("questionnaire")

    def last_updated(self, obj: Any) -> Any:
        return obj.completed_at or obj.authored

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        q = obj.questionnaire
        out: dict[str, Any] = {
            "questionnaire": f"{q.url}|{q.version}" if q.version else q.url,
            "status": obj.status,
            "subject": {"reference": f"Patient/{obj.patient_id}"},
            "authored": instant(obj.authored),
        }
        if obj.source == qm.Response.Source.STAFF and obj.staff_id:
            out["author"] = {"reference": f"Practitioner/{obj.staff_id}"}
        elif obj.source == qm.Response.Source.PATIENT:
            out["author"] = {"reference": f"Patient/{obj.patient_id}"}
        if obj.items:
            out["item"] = obj.items
        return out

    def _questionnaire(self, actor: Actor, resource: dict[str, Any]) -> qm.Questionnaire:
        raw = resource.get("questionnaire")
        where = "QuestionnaireResponse.questionnaire"
        if not isinstance(raw, str) or not raw:
            raise c.required(where)
        library = q_selectors.library(actor.organisation_id)
        if raw.startswith("Questionnaire/"):
            found = library.filter(pk=c.pk_of(raw.rsplit("/", 1)[-1])).first()
        else:
            found = library.filter(_url(raw)).order_by("-organisation_id", "-pk").first()
        if found is None:
            raise FhirError.of(
                422,
                _("This questionnaire is not in the library."),
                code="value",
                expression=where,
            )
        return found

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        actor = ctx.actor
        where = "QuestionnaireResponse.subject"
        patient_id = c.pk_of(ctx.reference_id(resource.get("subject"), "Patient", where))
        try:
            patient_selectors.require(actor, Action.CLINICAL_WRITE, patient_id=patient_id)
            patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, {}) from exc
        questionnaire = self._questionnaire(actor, resource)
        status = resource.get("status")
        if status not in qm.Response.Status.values:
            raise c.not_supported(
                "QuestionnaireResponse.status",
                _("The status must be in-progress or completed."),
            )
        definition = q_services.definition_of(questionnaire)
        paths: dict[str, str] = {}
        unknown: list[str] = []
        _paths(resource.get("item"), "item", paths, unknown, definition.by_id)
        errors: dict[str, list[str]] = {
            p: [_("This is not a question of the questionnaire.")] for p in unknown
        }
        answers, problems = qfhir.check_answers(
            definition, qfhir.from_response_items(definition, resource.get("item"))
        )
        for link_id, message in problems.items():
            errors.setdefault(f"{paths.get(link_id, 'item')}.answer", []).append(message)
        if status == qm.Response.Status.COMPLETED and not errors:
            for link_id, message in qfhir.missing_required(definition, answers).items():
                errors.setdefault(paths.get(link_id, "item"), []).append(f"{link_id}: {message}")
        if errors:
            raise _invalid(self.resource_type, errors)
        authored = utc_now()
        if isinstance(resource.get("authored"), str):
            zone = patient.time_zone or "Asia/Shanghai"
            authored = parse_date(
                resource["authored"], ZoneInfo(zone), "QuestionnaireResponse.authored"
            ).start.astimezone(dt.UTC)
        with transaction.atomic():
            assignment = (
                qm.Assignment.objects.select_for_update(of=("self",))
                .filter(
                    patient_id=patient.pk,
                    questionnaire=questionnaire,
                    status=qm.Assignment.Status.OPEN,
                    response__isnull=True,
                )
                .order_by("due_at", "pk")
                .first()
            )
            response = qm.Response.objects.create(
                organisation_id=patient.organisation_id,
                patient_id=patient.pk,
                questionnaire=questionnaire,
                assignment=assignment,
                items=qfhir.to_response_items(definition, answers),
                source=qm.Response.Source.STAFF,
                staff=actor.user,
                authored=authored,
                started_at=utc_now(),
            )
            if status == qm.Response.Status.COMPLETED:
                q_services._complete(response, definition, answers)
            response.save()
            audit.record(
                actor,
                "questionnaire.response.record",
                patient_id=patient.pk,
                obj=response,
                detail={"questionnaire": questionnaire.pk, "status": response.status},
            )
            if status == qm.Response.Status.COMPLETED:
                events.emit(
                    events.QUESTIONNAIRE,
                    patient_id=response.patient_id,
                    organisation_id=response.organisation_id,
                    ref=f"response:{response.pk}",
                )
        self.keep(response, resource)
        return response, True
