"""Subscriptions: criteria, matching a changed row, and queuing its deliveries.

Matching reuses the FHIR search machinery: the criteria's parameters are parsed by the type's
mapper (careloop.fhir.search) and applied to the mapper's scoped queryset for the subscription's
creator, restricted to the changed row. A subscriber therefore receives exactly what its
creator would find by that search at the moment of the change.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.fhir import search as fs
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import Mapper, mappers
from careloop.kit.clock import utc_now
from careloop.subscriptions import guard
from careloop.subscriptions import models as sm

# The resource types a subscription may watch.
TYPES = ("Task", "Flag", "Observation", "Appointment")
S = sm.Subscription.Status
D = sm.Delivery.Status
# Statuses that still collect matching changes (an errored subscription keeps its queue so
# nothing is lost while the endpoint is fixed; only active ones are sent).
COLLECTING = (S.ACTIVE, S.ERROR)
# Headers CareLoop sets itself, which a subscription may not replace.
RESERVED_HEADERS = frozenset(
    {
        "host", "content-type", "content-length", "transfer-encoding", "connection",
        "x-careloop-signature", "x-careloop-timestamp", "x-careloop-event",
        "x-careloop-subscription",
    }
)  # fmt: skip
MAX_HEADERS = 10


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- criteria ------------------------------------------------------------------------------


def _criteria_error(message: str) -> FhirError:
    return FhirError.of(422, message, code="value", expression="Subscription.criteria")


def parse_criteria(criteria: str) -> tuple[Mapper, list[tuple[str, str]]]:
    """The mapper and search parameters of ``Type?name=value&...``; 422 naming
    Subscription.criteria when the type is not one of TYPES or a parameter is not one of the
    type's search parameters (or its value does not parse)."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise _criteria_error(_("Criteria are required, e.g. “Observation?patient=123”."))
    text = criteria.strip()
    resource_type, _sep, query = text.partition("?")
    if resource_type not in TYPES:
        raise _criteria_error(
            _("Subscriptions watch only %(types)s, not “%(type)s”.")
            % {"types": ", ".join(TYPES), "type": resource_type[:40]}
        )
    mapper = mappers().get(resource_type)
    if mapper is None:
        raise _criteria_error(
            _("%(type)s is not served by this FHIR server yet.") % {"type": resource_type}
        )
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _criteria_error(_("The criteria's query string cannot be read.")) from None
    for name, value in params:
        if name.startswith("_") and name not in mapper.search_params:
            raise _criteria_error(_("“%(name)s” cannot be used in criteria.") % {"name": name[:40]})
        if name.split(":", 1)[0] not in mapper.search_params:
            raise _criteria_error(
                _("“%(name)s” is not a search parameter of %(type)s; use one of: %(names)s.")
                % {
                    "name": name[:40],
                    "type": resource_type,
                    "names": ", ".join(sorted(mapper.search_params)),
                }
            )
        if value == "":
            raise _criteria_error(_("“%(name)s” has no value.") % {"name": name[:40]})
    try:
        query_obj = fs.parse(mapper, params, lenient=False)
        # Values that do not parse (dates) are refused now rather than at every change.
        fs.apply(mapper, mapper.model._default_manager.none(), query_obj, ZoneInfo("UTC"))
    except FhirError as exc:
        raise _criteria_error(str(exc)) from None
    return mapper, params


# --- managing ------------------------------------------------------------------------------


def allowed_hosts(organisation_id: int) -> frozenset[str]:
    return frozenset(
        sm.AllowedHost.objects.filter(organisation_id=organisation_id).values_list(
            "host", flat=True
        )
    )


def check_endpoint(organisation_id: int, endpoint: str) -> guard.Target:
    """The checked endpoint; 422 naming Subscription.channel.endpoint when refused."""
    try:
        return guard.check(endpoint, allowed_hosts(organisation_id))
    except guard.Refused as exc:
        raise FhirError.of(
            422, str(exc), code="security", expression="Subscription.channel.endpoint"
        ) from None


def clean_headers(values: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for i, raw in enumerate(values):
        where = f"Subscription.channel.header[{i}]"
        name, sep, value = str(raw).partition(":")
        name = name.strip()
        if (
            not isinstance(raw, str)
            or not sep
            or not name
            or any(ch in raw for ch in "\r\n\0")
            or not all(ch.isalnum() or ch in "-_" for ch in name)
            or len(raw) > 1000
        ):
            raise FhirError.of(
                422, _("A header must be “Name: value” on one line."), code="value",
                expression=where,
            )  # fmt: skip
        if name.lower() in RESERVED_HEADERS:
            raise FhirError.of(
                422,
                _("The header “%(name)s” is set by CareLoop.") % {"name": name},
                code="value",
                expression=where,
            )
        out.append(f"{name}: {value.strip()}")
    if len(out) > MAX_HEADERS:
        raise FhirError.of(
            422,
            _("At most %(n)s headers.") % {"n": MAX_HEADERS},
            code="value",
            expression="Subscription.channel.header",
        )
    return out


def header_list(sub: sm.Subscription) -> list[str]:
    try:
        found = json.loads(sub.headers or "[]")
    except ValueError:
        return []
    return [str(h) for h in found] if isinstance(found, list) else []


def may_manage(actor: Actor, sub: sm.Subscription) -> bool:
    """Admins manage every subscription of their organisation; others only their own."""
    if sub.organisation_id != actor.organisation_id:
        return False
    return actor.can(Action.ORG_MANAGE) or sub.created_by_id == actor.user.pk


def turn_off(actor: Actor, sub: sm.Subscription) -> None:
    with transaction.atomic():
        sm.Subscription.objects.filter(pk=sub.pk).update(
            status=S.OFF, version=F("version") + 1, updated_at=utc_now()
        )
        sub.deliveries.filter(status__in=(D.PENDING, D.FAILED)).update(
            status=D.CANCELLED, claimed_by="", claim_expires=None
        )
        audit.record(actor, "subscription.off", object_type="subscriptions.subscription",
                     object_id=str(sub.pk))  # fmt: skip
    sub.refresh_from_db()


def retry_now(actor: Actor, sub: sm.Subscription) -> int:
    """Reactivate an errored subscription and make its waiting and failed deliveries due now."""
    now = utc_now()
    with transaction.atomic():
        if sub.status == S.ERROR:
            sm.Subscription.objects.filter(pk=sub.pk).update(
                status=S.ACTIVE, error="", failures=0, version=F("version") + 1, updated_at=now
            )
        count = sub.deliveries.filter(status__in=(D.PENDING, D.FAILED)).update(
            status=D.PENDING, next_attempt_at=now, claimed_by="", claim_expires=None
        )
        audit.record(actor, "subscription.retry", object_type="subscriptions.subscription",
                     object_id=str(sub.pk), detail={"deliveries": count})  # fmt: skip
    sub.refresh_from_db()
    return count


# --- matching and queuing ----------------------------------------------------------------------


def owner_actor(sub: sm.Subscription) -> Actor:
    return Actor(user=sub.created_by, source="subscription", channel="subscription")


def _zone(sub: sm.Subscription) -> ZoneInfo:
    try:
        return ZoneInfo(sub.organisation.time_zone)
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def matching(
    sub: sm.Subscription, mapper: Mapper, pks: Sequence[Any], actor: Actor | None = None
) -> QuerySet[Any]:
    """The rows among ``pks`` the subscription's criteria find, in its creator's scope now.
    ``actor``: the creator's Actor when the caller already has one (it caches departments)."""
    none = mapper.model._default_manager.none()
    actor = actor or owner_actor(sub)
    user = sub.created_by
    if not user.is_active or user.organisation_id != sub.organisation_id:
        return none
    if not all(actor.can(a) for a in (*mapper.read_actions, *mapper.search_actions)):
        return none
    try:
        _m, params = parse_criteria(sub.criteria)
        query = fs.parse(mapper, params, lenient=False)
        return fs.apply(
            mapper, mapper.visible(actor).filter(pk__in=list(pks)), query, _zone(sub)
        ).order_by("pk")
    except FhirError:
        return none


def matching_ids(sub: sm.Subscription, mapper: Mapper, pks: Sequence[Any]) -> list[Any]:
    return list(matching(sub, mapper, pks).values_list("pk", flat=True))


def event_key(mapper: Mapper, obj: Any) -> tuple[str, str]:
    """(event key, version) of a row's current state: the same state gives the same key, so
    saving a row without changing it delivers nothing new."""
    resource = mapper.read(obj)
    resource.pop("meta", None)
    text = json.dumps(resource, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    version = str(mapper.version_of(obj))
    return f"{mapper.resource_type}/{mapper.id_of(obj)}/{version}/{digest}", version


def mappers_for_model(model: type[Any]) -> list[Mapper]:
    found = mappers()
    return [found[t] for t in TYPES if t in found and found[t].model is model]


def queue(
    model: type[Any],
    pks: Sequence[Any],
    organisation_id: int | None = None,
    *,
    time_field: str = "",
) -> int:
    """Queue deliveries of these changed rows to every matching collecting subscription (in
    the caller's transaction). ``time_field``: only rows changed (by that field) after the
    subscription was created count (the catch-up scan). Returns how many were queued.

    One query per subscription finds what it matches; each matched row is read and keyed
    once, and the new deliveries are inserted together."""
    if not pks:
        return 0
    now = utc_now()
    wanted: list[sm.Delivery] = []
    for mapper in mappers_for_model(model):
        subs = sm.Subscription.objects.filter(
            resource_type=mapper.resource_type, status__in=COLLECTING
        ).select_related("created_by", "organisation")
        if organisation_id is not None:
            subs = subs.filter(organisation_id=organisation_id)
        actors: dict[int, Actor] = {}
        keyed: dict[Any, tuple[str, str, str]] = {}
        for sub in subs:
            if sub.end is not None and sub.end <= now:
                continue
            actor = actors.setdefault(sub.created_by_id, owner_actor(sub))
            rows = matching(sub, mapper, pks, actor)
            if time_field:
                rows = rows.filter(**{f"{time_field}__gte": sub.created_at})
            ids = list(rows.values_list("pk", flat=True))
            fresh = [pk for pk in ids if pk not in keyed]
            if fresh:
                for obj in rows.filter(pk__in=fresh):
                    keyed[obj.pk] = (*event_key(mapper, obj), mapper.id_of(obj))
            for pk in ids:
                key, version, ident = keyed[pk]
                wanted.append(
                    sm.Delivery(
                        subscription=sub,
                        event_key=key,
                        resource_type=mapper.resource_type,
                        resource_id=ident,
                        resource_version=version,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
    return _insert(wanted)


def _insert(wanted: list[sm.Delivery]) -> int:
    """Insert the deliveries not queued yet; how many were new."""
    if not wanted:
        return 0
    known = set(
        sm.Delivery.objects.filter(
            subscription_id__in={d.subscription_id for d in wanted},
            event_key__in={d.event_key for d in wanted},
        ).values_list("subscription_id", "event_key")
    )
    new = [d for d in wanted if (d.subscription_id, d.event_key) not in known]
    if new:
        # A concurrent transaction may queue the same change: the UNIQUE key keeps one.
        sm.Delivery.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
