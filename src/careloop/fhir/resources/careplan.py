"""CarePlan ↔ careplans.Enrolment: a patient enrolled in one of the organisation's plans.

The plan is named by ``instantiatesCanonical`` ``urn:careloop:plan:<code>|<version>`` (the
template code and the version the enrolment was built from; a canonical ending in
``PlanDefinition/<code>`` is accepted too). ``title`` is the plan's name, ``category`` its code
(system ``urn:careloop:plan``), ``activity`` the plan's activities (system
``urn:careloop:plan-activity``, with the CareLoop kind as a second coding), ``period.start`` the
day the enrolment started, ``period.end`` the day it ended. These are always rebuilt from the
enrolment. ``intent`` is ``plan``.

Status: an active enrolment is ``active``; an ended one ``completed``, or ``revoked`` when it was
ended as revoked through this interface. Create enrols the patient through careplans.services
exactly as the staff page does (template defaults, the patient's first department, reminders
scheduled at once); only ``active`` plans can be created. Update can end an active enrolment
(status ``completed`` or ``revoked``; the first ``note`` text is the reason); it cannot move the
enrolment to another patient or plan, or re-open it. Delete ends the enrolment as revoked: the
enrolment stays in the patient's history, so the CarePlan still reads, with status ``revoked``.
``meta.versionId`` is the enrolment's version (stale If-Match → 412); an update that changes
only elements CareLoop does not model keeps the version.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.careplans import domain, services
from careloop.careplans import models as cm
from careloop.fhir.registry import READ_WRITE, Context, Mapper, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.kit.errors import CareLoopError
from careloop.patients import selectors

CANONICAL = "urn:careloop:plan:"
PLAN_SYSTEM = "urn:careloop:plan"
ACTIVITY_SYSTEM = "urn:careloop:plan-activity"
KIND_SYSTEM = "urn:careloop:activity-kind"
ENDED = ("completed", "revoked")
_FIELDS = {
    "reason": "note",
    "anchor_date": "instantiatesCanonical",
    "department": "subject",
    "template": "instantiatesCanonical",
}


def plan_code(canonical: Any) -> tuple[str, int | None]:
    """(template code, version or None) a canonical names; ("", None) if none."""
    if not isinstance(canonical, str):
        return "", None
    url, _sep, version = canonical.partition("|")
    if url.startswith(CANONICAL):
        code = url[len(CANONICAL) :]
    elif "/PlanDefinition/" in f"/{url}":
        code = url.rstrip("/").rsplit("/", 1)[-1]
    else:
        return "", None
    number = int(version) if version.isdigit() and len(version) < 10 else None
    return code, number


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/request-status"):
        return Q(pk__in=[])
    if value == "active":
        return Q(status=cm.Enrolment.Status.ACTIVE)
    if value in ENDED:
        return Q(status=cm.Enrolment.Status.ENDED)
    return Q(pk__in=[])


def _category(system: str | None, value: str) -> Q:
    if system not in (None, "", PLAN_SYSTEM):
        return Q(pk__in=[])
    return Q(template__code=value)


def _canonical(raw: str) -> Q:
    code, version = plan_code(raw)
    if not code:
        return Q(pk__in=[])
    found = Q(template__code=code)
    return found & Q(template_version=version) if version is not None else found


@register
class CarePlanMapper(Mapper):
    resource_type = "CarePlan"
    model = cm.Enrolment
    interactions = READ_WRITE
    read_actions = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
    write_actions = (Action.PATIENT_VIEW, Action.CAREPLAN_ENROL)
    keeps_extra = True
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("changed")),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "status": SearchParam(
            "token", _status, "active, or completed / revoked (both find ended enrolments)"
        ),
        "date": SearchParam(
            "date", lambda r: r.q("starts_on", dates=True), "the day the enrolment started"
        ),
        "category": SearchParam("token", _category, "the plan's code (urn:careloop:plan)"),
        "instantiates-canonical": SearchParam("reference", _canonical),
    }
    sorts = {"_id": "pk", "_lastUpdated": "changed", "date": "starts_on"}
    include_targets = {"patient": "Patient", "subject": "Patient"}
    # The status sent (completed or revoked) is kept while the enrolment's status is unchanged.
    elements = {"status": ("status",)}
    generated = frozenset(
        {"subject", "intent", "instantiatesCanonical", "title", "category", "period", "activity"}
    )

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return (
            cm.Enrolment.objects.filter(
                organisation_id=actor.organisation_id or 0,
                patient_id__in=selectors.visible_patients(actor).values("pk"),
            )
            .select_related("template", "patient")
            .prefetch_related("template__activities")
            .annotate(changed=Coalesce("ended_at", "created_at"))
        )

    def last_updated(self, obj: Any) -> dt.datetime:
        return obj.ended_at or obj.created_at  # type: ignore[no-any-return]

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        tpl = obj.template
        active = obj.status == cm.Enrolment.Status.ACTIVE
        period: dict[str, Any] = {"start": obj.starts_on.isoformat()}
        if obj.ended_at is not None:
            tz = domain.zone(obj.patient.time_zone)
            period["end"] = domain.local_of(obj.ended_at, tz).date().isoformat()
        activities = [
            {
                "detail": {
                    "code": {
                        "coding": [
                            {"system": ACTIVITY_SYSTEM, "code": a.code, "display": a.title},
                            {"system": KIND_SYSTEM, "code": a.kind},
                        ],
                        "text": a.title,
                    },
                    "status": "scheduled" if active else "stopped",
                }
            }
            for a in tpl.activities.all()
        ]
        out: dict[str, Any] = {
            "instantiatesCanonical": [f"{CANONICAL}{tpl.code}|{obj.template_version}"],
            "status": "active" if active else "completed",
            "intent": "plan",
            "category": [{"coding": [{"system": PLAN_SYSTEM, "code": tpl.code}]}],
            "title": tpl.name,
            "subject": {"reference": f"Patient/{obj.patient_id}"},
            "period": period,
        }
        if tpl.description:
            out["description"] = tpl.description
        if activities:
            out["activity"] = activities
        return out

    # --- writes -------------------------------------------------------------------------

    def _template_code(self, resource: dict[str, Any]) -> tuple[str, int | None]:
        found = resource.get("instantiatesCanonical")
        canonicals = found if isinstance(found, list) else []
        for canonical in canonicals:
            code, version = plan_code(canonical)
            if code:
                return code, version
        raise c.required("CarePlan.instantiatesCanonical")

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        patient_id = c.pk_of(
            ctx.reference_id(resource.get("subject"), "Patient", "CarePlan.subject")
        )
        if resource.get("status") != "active":
            raise c.not_supported(
                "CarePlan.status", _("A plan can only be started active (status “active”).")
            )
        if resource.get("intent") != "plan":
            raise c.not_supported("CarePlan.intent", _("CareLoop keeps plans (intent “plan”)."))
        code, version = self._template_code(resource)
        tpl = services.templates_for(ctx.actor.organisation_id).filter(code=code).first()
        if tpl is None:
            raise c.not_supported(
                "CarePlan.instantiatesCanonical",
                _("“%(code)s” is not one of the organisation's plans.") % {"code": code[:60]},
            )
        if version is not None and version != tpl.version:
            raise c.not_supported(
                "CarePlan.instantiatesCanonical",
                _("Only the current version (%(version)s) of this plan can be started.")
                % {"version": tpl.version},
            )
        try:
            row = services.enrol(ctx.actor, patient_id, tpl.pk)
        except CareLoopError as exc:
            raise c.service_error(exc, "CarePlan", _FIELDS) from exc
        row = self.visible(ctx.actor).get(pk=row.pk)
        self.keep(row, resource)
        return row, True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        patient_id = c.pk_of(
            ctx.reference_id(resource.get("subject"), "Patient", "CarePlan.subject")
        )
        if patient_id != obj.patient_id:
            raise c.not_supported(
                "CarePlan.subject", _("A plan cannot be moved to another patient.")
            )
        code, _version = self._template_code(resource)
        if code != obj.template.code:
            raise c.not_supported(
                "CarePlan.instantiatesCanonical",
                _("An enrolment cannot be changed to another plan; end it and start the other."),
            )
        status = resource.get("status")
        if status not in ("active", *ENDED):
            raise c.not_supported(
                "CarePlan.status", _("The status must be active, completed or revoked.")
            )
        if status == "active" and obj.status != cm.Enrolment.Status.ACTIVE:
            raise c.not_supported(
                "CarePlan.status", _("An ended enrolment cannot be made active again.")
            )
        if status in ENDED and obj.status == cm.Enrolment.Status.ACTIVE:
            self._end(ctx.actor, obj, _reason(resource, status), expected)
        row = self.visible(ctx.actor).get(pk=obj.pk)
        self.keep(row, resource)
        return row

    def delete(self, ctx: Context, obj: Any, expected: int) -> None:
        if obj.status != cm.Enrolment.Status.ACTIVE:
            return  # already ended: nothing left to revoke
        self._end(ctx.actor, obj, _("Revoked through the FHIR interface."), expected)
        row = self.visible(ctx.actor).get(pk=obj.pk)
        extra = row.fhir_extra if isinstance(row.fhir_extra, dict) else {}
        kept = dict(extra.get("resource") or {})
        self.keep(row, {**kept, "status": "revoked"})

    def _end(self, actor: Actor, obj: Any, reason: str, expected: int) -> None:
        try:
            services.end_enrolment(actor, obj.pk, reason=reason, expected=expected)
        except CareLoopError as exc:
            raise c.service_error(exc, "CarePlan", _FIELDS) from exc


def _reason(resource: dict[str, Any], status: str) -> str:
    for note in resource.get("note") or []:
        if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"].strip():
            return str(note["text"]).strip()[:200]
    if status == "revoked":
        return _("Revoked through the FHIR interface.")
    return _("Completed through the FHIR interface.")
