"""Flag ↔ alerts.Alert: a clinical alert about a patient raised by one of the alert rules.

``status`` is ``active`` while the alert is open or acknowledged, ``inactive`` once resolved or
dismissed. ``category`` is ``clinical`` (HL7 flag-category), ``code`` the rule (system
``urn:careloop:alert-rule``) with the alert's text, ``period`` runs from the reading that
triggered the alert to its closing, ``author`` is CareLoop's rule engine. The priority the
worklist orders by is given in the ``urn:careloop:fhir:alert-priority`` extension (valueCode,
request-priority codes). All of these are rebuilt from the alert; other elements are kept as
sent.

The only change a client can make is the one the alert page offers: setting ``status`` to
``inactive`` resolves the alert through alerts.services, with what was done in the
``urn:careloop:fhir:alert-outcome`` extension (valueCode: contacted_patient, plan_adjusted,
medication_changed, visit_booked, referred, advice_given, no_action_needed or other) and an
optional ``urn:careloop:fhir:alert-note`` extension (valueString; required for ``other``).
Alerts are raised by the rules only, so Flags cannot be created or deleted here.

Alerts keep no version counter: ``meta.versionId`` is a number derived from everything the Flag
shows (status, closing, kept elements); it changes whenever any of them does, so a stale
If-Match gets 412. It is not a counter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce, Greatest
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import models as am
from careloop.alerts import services
from careloop.fhir.registry import READ_ONLY, Context, Mapper, SearchParam, instant, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources.task import derived_version
from careloop.kit.errors import CareLoopError

RULE_SYSTEM = "urn:careloop:alert-rule"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
OUTCOME_EXTENSION = "urn:careloop:fhir:alert-outcome"
NOTE_EXTENSION = "urn:careloop:fhir:alert-note"
PRIORITY_EXTENSION = "urn:careloop:fhir:alert-priority"
_FIELDS = {"outcome": "extension", "note": "extension"}


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/flag-status"):
        return Q(pk__in=[])
    if value == "active":
        return Q(status__in=am.Alert.ACTIVE)
    if value == "inactive":
        return ~Q(status__in=am.Alert.ACTIVE)
    return Q(pk__in=[])


def _code(system: str | None, value: str) -> Q:
    return Q(rule=value) if system in (None, "", RULE_SYSTEM) else Q(pk__in=[])


def _category(system: str | None, value: str) -> Q:
    if system not in (None, "", FLAG_CATEGORY):
        return Q(pk__in=[])
    return Q(pk__isnull=False) if value == "clinical" else Q(pk__in=[])


def _date(r: Any) -> Q:
    """Flags whose period overlaps the range (an open alert's period has no end)."""
    started = Q(triggered_at__lt=r.end)
    not_over = Q(closed_at__isnull=True) | Q(closed_at__gte=r.start)
    if r.prefix == "eq":
        return started & not_over
    return r.q("triggered_at")  # type: ignore[no-any-return]


def _extension(resource: dict[str, Any], url: str, key: str) -> str:
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url and isinstance(ext.get(key), str):
            return str(ext[key])
    return ""


@register
class FlagMapper(Mapper):
    resource_type = "Flag"
    model = am.Alert
    interactions = READ_ONLY | {"update"}
    read_actions = (Action.PATIENT_VIEW, Action.TASK_WORK)
    write_actions = (Action.PATIENT_VIEW, Action.TASK_WORK)
    keeps_extra = True
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("changed")),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "status": SearchParam("token", _status),
        "code": SearchParam("token", _code, "the alert rule (urn:careloop:alert-rule)"),
        "category": SearchParam("token", _category),
        "date": SearchParam("date", _date, "eq: the period overlaps the date"),
    }
    sorts = {"_id": "pk", "_lastUpdated": "changed", "date": "triggered_at"}
    include_targets = {"patient": "Patient", "subject": "Patient"}
    generated = frozenset({"status", "category", "code", "subject", "period", "author"})

    def visible(self, actor: Actor) -> QuerySet[Any]:
        """The alert pages' scope: alerts of the actor's departments (all, for an org admin)."""
        qs = services.visible_alerts(actor)
        if actor.bound_patient_id is not None:
            qs = qs.filter(patient_id=actor.bound_patient_id)
        times = [Coalesce(f, "raised_at") for f in ("last_seen_at", "acknowledged_at", "closed_at")]
        return qs.annotate(changed=Greatest("raised_at", *times))

    def version_of(self, obj: Any) -> int:
        return derived_version(obj.status, obj.closed_at, obj.priority, obj.fhir_extra)

    def last_updated(self, obj: Any) -> dt.datetime:
        times = [obj.raised_at, obj.last_seen_at, obj.acknowledged_at, obj.closed_at]
        return max(t for t in times if t is not None)  # type: ignore[no-any-return]

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        period: dict[str, Any] = {"start": instant(obj.triggered_at)}
        if obj.closed_at is not None:
            period["end"] = instant(obj.closed_at)
        return {
            "extension": [{"url": PRIORITY_EXTENSION, "valueCode": obj.priority}],
            "status": "active" if obj.status in am.Alert.ACTIVE else "inactive",
            "category": [
                {"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}
            ],
            "code": {
                "coding": [{"system": RULE_SYSTEM, "code": obj.rule}],
                "text": obj.text(get_language() or "zh-hans"),
            },
            "subject": {"reference": f"Patient/{obj.patient_id}"},
            "period": period,
            "author": {"display": _("CareLoop alert rules")},
        }

    def read(self, obj: Any) -> dict[str, Any]:
        resource = super().read(obj)
        # The priority extension is always rebuilt from the alert; extensions the client sent
        # (the outcome and note of a resolve among them) are kept as sent.
        kept = [
            e for e in resource.get("extension") or []
            if isinstance(e, dict) and e.get("url") != PRIORITY_EXTENSION
        ]  # fmt: skip
        resource["extension"] = [{"url": PRIORITY_EXTENSION, "valueCode": obj.priority}, *kept]
        return resource

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        patient_id = c.pk_of(ctx.reference_id(resource.get("subject"), "Patient", "Flag.subject"))
        if patient_id != obj.patient_id:
            raise c.not_supported("Flag.subject", _("An alert cannot be moved to another patient."))
        status = resource.get("status")
        active = obj.status in am.Alert.ACTIVE
        if status not in ("active", "inactive"):
            raise c.not_supported("Flag.status", _("The status must be active or inactive."))
        if status == "active" and not active:
            raise c.not_supported("Flag.status", _("A closed alert cannot be re-opened."))
        if status == "inactive" and active:
            outcome = _extension(resource, OUTCOME_EXTENSION, "valueCode")
            note = _extension(resource, NOTE_EXTENSION, "valueString")
            try:
                services.resolve_alert(ctx.actor, obj.pk, outcome=outcome, note=note)
            except CareLoopError as exc:
                raise c.service_error(exc, "Flag", _FIELDS) from exc
        row = self.visible(ctx.actor).get(pk=obj.pk)
        kept = dict(resource)
        kept["extension"] = [
            e for e in resource.get("extension") or []
            if isinstance(e, dict) and e.get("url") != PRIORITY_EXTENSION
        ]  # fmt: skip
        if not kept["extension"]:
            kept.pop("extension")
        self.keep(row, kept)
        return row
