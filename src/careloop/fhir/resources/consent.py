"""Consent ↔ patients.Consent: one PIPL consent decision per purpose and channel.

- ``scope``: always ``patient-privacy`` (consentscope); other scopes are refused.
- ``provision.type``: ``permit`` (granted) or ``deny`` (refused); required.
- ``provision.purpose``: a coding of ``urn:careloop:consent-purpose`` — care_reminders,
  education, research or data_sharing; required.
- the channel the decision covers: an extension on ``provision`` with url
  ``urn:careloop:fhir:consent-channel`` and ``valueCode`` sms, wechat, voice, push or email;
  required.
- ``dateTime``: the day the decision was taken (the date in the time zone of the patient's
  organisation); required.
- how it was recorded: an extension with url ``urn:careloop:fhir:consent-source`` and
  ``valueCode`` paper, verbal or portal; without it, a consent sent with ``sourceAttachment`` or
  ``sourceReference`` is recorded as a signed paper form.
- ``status``: the latest decision per purpose and channel is in force (``active``); earlier ones
  read as ``inactive``. Only ``active`` is accepted on input (a decision is taken now).

Everything else (``provision.period``, actors, ``policyRule``...) is kept as sent; CareLoop does
not model a validity period. Writes go through patients.services (record kind ``consents``) and
need the consent-writing role action, as in the staff pages.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.roles import Action
from careloop.fhir.registry import Context, SearchParam, register
from careloop.fhir.resources import common as c
from careloop.fhir.resources import medication_dispense as md
from careloop.patients import models as pm

SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PURPOSE = "urn:careloop:consent-purpose"
CHANNEL_EXTENSION = "urn:careloop:fhir:consent-channel"
SOURCE_EXTENSION = "urn:careloop:fhir:consent-source"
PATIENT_CONSENT = {"system": c.LOINC, "code": "59284-0", "display": "Patient Consent"}
_FIELDS = {
    "purpose": "provision.purpose",
    "channel": "provision.extension",
    "granted": "provision.type",
    "decided_on": "dateTime",
    "source": "extension",
}


def _newer() -> Exists:
    """A later live decision of the same patient, purpose and channel."""
    return Exists(
        pm.Consent.objects.filter(
            patient_id=OuterRef("patient_id"),
            purpose=OuterRef("purpose"),
            channel=OuterRef("channel"),
            deleted_at__isnull=True,
        ).filter(
            Q(decided_on__gt=OuterRef("decided_on"))
            | Q(decided_on=OuterRef("decided_on"), pk__gt=OuterRef("pk"))
        )
    )


def _status(system: str | None, value: str) -> Q:
    if system not in (None, ""):
        return Q(pk__in=[])
    if value == "active":
        return ~Q(_newer())
    if value == "inactive":
        return Q(_newer())
    return Q(pk__in=[])


def _purpose(system: str | None, value: str) -> Q:
    if system not in (None, PURPOSE) or value not in pm.Consent.Purpose.values:
        return Q(pk__in=[])
    return Q(purpose=value)


def _scope(system: str | None, value: str) -> Q:
    ok = system in (None, SCOPE) and value == "patient-privacy"
    return Q(pk__isnull=False) if ok else Q(pk__in=[])


def _extension_code(holder: Any, url: str) -> Any:
    if not isinstance(holder, dict):
        return None
    for ext in holder.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext.get("valueCode")
    return None


def _others(items: Any, keep: Any) -> list[Any]:
    return [x for x in items or [] if isinstance(x, dict) and keep(x)]


@register
class ConsentMapper(c.PatientRecordMapper):
    resource_type = "Consent"
    model = pm.Consent
    record_kind = "consents"
    subject_element = "patient"
    write_actions = (Action.PATIENT_VIEW, Action.CONSENT_WRITE)
    field_elements = _FIELDS
    moved_message = gettext_lazy("A consent cannot be moved to another patient.")
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param()),
        "patient": SearchParam("reference", c.patient_param()),
        "status": SearchParam("token", _status),
        "purpose": SearchParam("token", _purpose),
        "scope": SearchParam("token", _scope),
        "date": SearchParam("date", lambda r: r.q("decided_on", dates=True)),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at", "date": "decided_on"}
    include_targets = {"patient": "Patient"}
    elements = {
        "dateTime": ("decided_on",),
        "provision": ("purpose", "channel", "granted"),
        "extension": ("source",),
        "category": (),
    }
    generated = frozenset({"patient", "status", "scope"})

    def _kept(self, obj: Any) -> dict[str, Any]:
        extra = obj.fhir_extra if isinstance(obj.fhir_extra, dict) else {}
        kept = extra.get("resource")
        return kept if isinstance(kept, dict) else {}

    def in_force(self, obj: Any) -> bool:
        if obj.deleted_at is not None:
            return False
        return not (
            pm.Consent.objects.filter(pk=obj.pk, deleted_at__isnull=True).filter(_newer()).exists()
        )

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        kept = self._kept(obj)
        found = kept.get("provision")
        provision: dict[str, Any] = copy.deepcopy(found) if isinstance(found, dict) else {}
        provision["type"] = "permit" if obj.granted else "deny"
        provision["purpose"] = [
            {"system": PURPOSE, "code": obj.purpose, "display": str(obj.get_purpose_display())},
            *_others(provision.get("purpose"), lambda x: x.get("system") != PURPOSE),
        ]
        provision["extension"] = [
            {"url": CHANNEL_EXTENSION, "valueCode": obj.channel},
            *_others(provision.get("extension"), lambda x: x.get("url") != CHANNEL_EXTENSION),
        ]
        return {
            "extension": [
                {"url": SOURCE_EXTENSION, "valueCode": obj.source},
                *_others(kept.get("extension"), lambda x: x.get("url") != SOURCE_EXTENSION),
            ],
            "status": "active" if self.in_force(obj) else "inactive",
            "scope": {"coding": [{"system": SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [dict(PATIENT_CONSENT)]}],
            "patient": {"reference": f"Patient/{obj.patient_id}"},
            "dateTime": obj.decided_on.isoformat(),
            "provision": provision,
        }

    def record_data(
        self, ctx: Context, resource: dict[str, Any], patient_id: int
    ) -> dict[str, Any]:
        if resource.get("status") != "active":
            raise c.not_supported(
                "Consent.status", _("Only a decision in force (status “active”) is recorded.")
            )
        scopes = c.codings(resource.get("scope"))
        if not any(x.get("code") == "patient-privacy" for x in scopes):
            raise c.not_supported(
                "Consent.scope", _("Only privacy consents (scope “patient-privacy”) are kept.")
            )
        found = resource.get("provision")
        provision: dict[str, Any] = found if isinstance(found, dict) else {}
        if provision.get("type") not in ("permit", "deny"):
            raise c.required("Consent.provision.type")
        purposes = [
            x.get("code")
            for x in _others(provision.get("purpose"), lambda x: x.get("system") == PURPOSE)
        ]
        if not purposes or purposes[0] not in pm.Consent.Purpose.values:
            raise c.not_supported(
                "Consent.provision.purpose",
                _("Give the purpose as a coding of %(system)s: %(codes)s.")
                % {"system": PURPOSE, "codes": ", ".join(pm.Consent.Purpose.values)},
            )
        channel = _extension_code(provision, CHANNEL_EXTENSION)
        if channel not in pm.Channel.values:
            raise c.not_supported(
                "Consent.provision.extension",
                _("Give the channel as an extension %(url)s with valueCode %(codes)s.")
                % {"url": CHANNEL_EXTENSION, "codes": ", ".join(pm.Channel.values)},
            )
        source = _extension_code(resource, SOURCE_EXTENSION)
        if source is None and ("sourceAttachment" in resource or "sourceReference" in resource):
            source = pm.Consent.Source.PAPER
        if source not in pm.Consent.Source.values:
            raise c.not_supported(
                "Consent.extension",
                _("Say how the decision was recorded: an extension %(url)s with valueCode "
                  "%(codes)s, or the signed form as sourceAttachment.")
                % {"url": SOURCE_EXTENSION, "codes": ", ".join(pm.Consent.Source.values)},
            )  # fmt: skip
        decided = md.local_date(
            resource.get("dateTime"), md.patient_zone(patient_id), "Consent.dateTime"
        )
        if decided is None:
            raise c.required("Consent.dateTime")
        return {
            "purpose": purposes[0],
            "channel": channel,
            "granted": provision["type"] == "permit",
            "decided_on": decided,
            "source": source,
            "note": "",
        }

    def kept_on_update(self, obj: Any, data: dict[str, Any]) -> None:
        data["note"] = obj.note
