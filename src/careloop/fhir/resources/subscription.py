"""Subscription ↔ subscriptions.Subscription (FHIR R4 rest-hook subscriptions).

Managing subscriptions needs ``Action.API_TOKEN`` (the integration action: staff who may issue
credentials to apps and systems). Each user sees and manages their own subscriptions;
organisation admins (``Action.ORG_MANAGE``) see and manage every subscription of their
organisation. What a subscription delivers is always evaluated with its creator's current role
and departments (careloop.subscriptions.services). The signing secret is returned once, in the
response to the create, as the extension ``SECRET_URL``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import READ_WRITE, Context, Mapper, SearchParam, instant, register
from careloop.fhir.resources import common as c
from careloop.kit.clock import utc_now
from careloop.subscriptions import models as sm
from careloop.subscriptions import services

SECRET_URL = "https://careloop.example/fhir/StructureDefinition/subscription-secret"  # noqa: S105 - a URL
S = sm.Subscription.Status
_SETTABLE = {"requested": S.ACTIVE, "active": S.ACTIVE, "off": S.OFF}


def _invalid(message: str, expression: str, code: str = "value") -> FhirError:
    return FhirError.of(422, message, code=code, expression=expression)


def _end(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _invalid(_("The end must be an instant with a time zone."), "Subscription.end")
    return moment


def _fields(actor: Actor, resource: dict[str, Any], current: str | None) -> dict[str, Any]:
    """The model fields of an incoming Subscription, checked (422 naming the element)."""
    org = actor.organisation_id
    if org is None:
        raise FhirError.of(403, _("Your role does not allow this."), code="forbidden")
    status = str(resource.get("status") or "")
    if status == "error" and current == S.ERROR:
        new_status = S.ERROR
    elif status in _SETTABLE:
        new_status = _SETTABLE[status]
    else:
        raise _invalid(_("The status must be requested, active or off."), "Subscription.status")
    reason = str(resource.get("reason") or "").strip()
    if not reason:
        raise _invalid(_("A reason is required."), "Subscription.reason", "required")
    criteria = str(resource.get("criteria") or "").strip()
    mapper, _params = services.parse_criteria(criteria)
    found = resource.get("channel")
    channel: dict[str, Any] = found if isinstance(found, dict) else {}
    if channel.get("type") != "rest-hook":
        raise _invalid(
            _("Only the rest-hook channel is supported."), "Subscription.channel.type",
            "not-supported",
        )  # fmt: skip
    endpoint = str(channel.get("endpoint") or "").strip()
    services.check_endpoint(org, endpoint)
    payload = channel.get("payload")
    if payload not in (None, "", sm.Subscription.Payload.FULL, "application/json"):
        raise _invalid(
            _("The payload must be application/fhir+json, or left out for a ping."),
            "Subscription.channel.payload",
        )
    headers = channel.get("header") or []
    if not isinstance(headers, list):
        raise _invalid(_("Headers must be a list."), "Subscription.channel.header")
    return {
        "status": new_status,
        "reason": reason[:500],
        "criteria": criteria[:1000],
        "resource_type": mapper.resource_type,
        "endpoint": endpoint,
        "payload": sm.Subscription.Payload.FULL if payload else sm.Subscription.Payload.PING,
        "headers": json.dumps(services.clean_headers(headers)),
        "end": _end(resource.get("end")),
    }


@register
class SubscriptionMapper(Mapper):
    resource_type = "Subscription"
    model = sm.Subscription
    interactions = READ_WRITE
    read_actions = (Action.API_TOKEN,)
    write_actions = (Action.API_TOKEN,)
    patient_compartment = False
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("updated_at")),
        "status": SearchParam("token", lambda s, v: Q(status=v)),
        "type": SearchParam("token", lambda s, v: Q(channel_type=v)),
        "url": SearchParam("uri", lambda v: Q(endpoint=v)),
        "criteria": SearchParam("string", lambda v: Q(criteria__istartswith=v)),
    }
    sorts = {"_id": "pk", "_lastUpdated": "updated_at"}
    default_sort = ("-pk",)

    def visible(self, actor: Actor) -> QuerySet[Any]:
        if actor.organisation_id is None or not actor.can(Action.API_TOKEN):
            return sm.Subscription.objects.none()
        qs = sm.Subscription.objects.filter(organisation_id=actor.organisation_id)
        if not actor.can(Action.ORG_MANAGE):
            qs = qs.filter(created_by_id=actor.user.pk)
        return qs

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        return qs

    def patient_id_of(self, obj: Any) -> int | None:
        return None

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        channel: dict[str, Any] = {"type": obj.channel_type, "endpoint": obj.endpoint}
        if obj.payload:
            channel["payload"] = obj.payload
        headers = services.header_list(obj)
        if headers:
            channel["header"] = headers
        out: dict[str, Any] = {"status": obj.status, "reason": obj.reason}
        if obj.end is not None:
            out["end"] = instant(obj.end)
        out["criteria"] = obj.criteria
        if obj.error:
            out["error"] = obj.error
        out["channel"] = channel
        return out

    def read(self, obj: Any) -> dict[str, Any]:
        resource = super().read(obj)
        secret = getattr(obj, "fresh_secret", "")
        if secret:
            resource["extension"] = [{"url": SECRET_URL, "valueString": secret}]
        return resource

    def _within_token(self, ctx: Context, criteria: str) -> None:
        """A subscription delivers what its creator may read; created with a token, also only
        what the token may read and search, outside any one patient's context."""
        scopes = ctx.scopes
        if scopes is None:
            return
        kind = criteria.split("?", 1)[0]
        if not (scopes.allows(kind, "r") and scopes.allows(kind, "s")) or scopes.patient_only(
            kind, "r"
        ):
            raise FhirError.of(
                403,
                _("This token may not read and search %(type)s, so it cannot subscribe to it.")
                % {"type": kind[:64]},
                code="forbidden",
                expression="Subscription.criteria",
            )

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        actor = ctx.actor
        fields = _fields(actor, resource, None)
        self._within_token(ctx, fields["criteria"])
        secret = services.new_secret()
        now = utc_now()
        with transaction.atomic():
            obj = sm.Subscription.objects.create(
                organisation_id=actor.organisation_id or 0,
                created_by=actor.user,
                secret=secret,
                created_at=now,
                updated_at=now,
                **fields,
            )
            audit.record(
                actor, "subscription.create", obj=obj,
                detail={"criteria": obj.criteria, "endpoint": obj.endpoint},
            )  # fmt: skip
        obj.fresh_secret = secret  # type: ignore[attr-defined]
        return obj, True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        actor = ctx.actor
        fields = _fields(actor, resource, obj.status)
        self._within_token(ctx, fields["criteria"])
        with transaction.atomic():
            if fields["status"] == S.ACTIVE:
                fields.update(error="", failures=0)
            done = sm.Subscription.objects.filter(pk=obj.pk, version=expected).update(
                version=expected + 1, updated_at=utc_now(), **fields
            )
            if not done:
                raise FhirError.of(
                    412, _("The subscription was changed meanwhile."), code="conflict",
                    expression="If-Match",
                )  # fmt: skip
            if fields["status"] == S.OFF:
                obj.deliveries.filter(
                    status__in=(sm.Delivery.Status.PENDING, sm.Delivery.Status.FAILED)
                ).update(status=sm.Delivery.Status.CANCELLED, claimed_by="", claim_expires=None)
            audit.record(
                actor, "subscription.update", obj=obj,
                detail={"criteria": fields["criteria"], "status": fields["status"]},
            )  # fmt: skip
        obj.refresh_from_db()
        return obj

    def delete(self, ctx: Context, obj: Any, expected: int) -> None:
        with transaction.atomic():
            audit.record(ctx.actor, "subscription.delete", obj=obj,
                         detail={"criteria": obj.criteria})  # fmt: skip
            obj.delete()
