"""Portal access: invitations, sign-in completion, family (proxy) access, push subscriptions,
session revocation and the missed-dose notices to family members.

Staff actions take an Actor (role and scope checked, audited with audit.record); the
patient's own actions take a PortalActor (audited as the patient or caregiver).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.channels import models as chm
from careloop.channels import registry, webpush
from careloop.channels.port import ChannelError, ChannelKind, Message
from careloop.kit.clock import utc_now
from careloop.kit.errors import Forbidden, NotFound, ValidationFailed
from careloop.kit.identifiers import normalise_phone
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.portal import otp
from careloop.portal.context import PortalActor, end_all_for
from careloop.portal.models import (
    Invitation,
    PortalProxy,
    PortalSession,
    ProxyNotice,
    PushSubscription,
)

log = logging.getLogger("careloop.portal")

INVITATION_LIFETIME = timedelta(hours=72)

CONSENT_TEXT = gettext_lazy(
    "I allow this family member to sign in to my CareLoop portal with their own phone, to see "
    "my tasks, readings, messages and care plan, and to act for me there. I can withdraw this "
    "at any time, here or with my care team."
)
NOTIFY_TEXT = gettext_lazy(
    "Send this family member an SMS when a dose was not confirmed (no medicine or illness is "
    "named)."
)


# --- presentation helpers ----------------------------------------------------------------------


def mask_name(name: str) -> str:
    """The first character of a name, the rest masked: 王** (for choosing a record)."""
    name = (name or "").strip()
    if not name:
        return "*"
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) < 7:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


# --- invitations -------------------------------------------------------------------------------


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_invitation(patient: pm.Patient, created_by: Any) -> tuple[Invitation, str]:
    token = secrets.token_urlsafe(24)
    now = utc_now()
    invitation = Invitation.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        token_digest=_token_digest(token),
        created_by=created_by,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    return invitation, token


def invitation_url(token: str) -> str:
    return settings.PUBLIC_URL.rstrip("/") + reverse("portal:invitation", args=[token])


def create_invitation(actor: Actor, patient_id: int) -> tuple[Invitation, str]:
    """A single-use sign-in link for the patient (its token is shown once, never stored)."""
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.PATIENT_UPDATE, audit_read=False
    )
    with transaction.atomic():
        invitation, token = _new_invitation(patient, actor.user)
        audit.record(
            actor,
            "portal.invitation.create",
            patient_id=patient.pk,
            obj=invitation,
            detail={"expires": invitation.expires_at.isoformat()},
        )
    return invitation, token


def create_invitation_cli(patient_id: int) -> tuple[Invitation, str]:
    """The same for the `careloop portal invite` command (audited as the command line)."""
    patient = pm.Patient.objects.filter(pk=patient_id, merged_into__isnull=True).first()
    if patient is None:
        raise NotFound()
    with transaction.atomic():
        invitation, token = _new_invitation(patient, None)
        audit.append(
            action="portal.invitation.create",
            actor_name="system:cli",
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            object_type="portal.invitation",
            object_id=invitation.pk,
            detail={"expires": invitation.expires_at.isoformat()},
        )
    return invitation, token


class InvitationState:
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def invitation_state(token: str) -> tuple[str, Invitation | None]:
    invitation = (
        Invitation.objects.select_related("patient")
        .filter(token_digest=_token_digest(token))
        .first()
        if 0 < len(token) <= 100
        else None
    )
    if invitation is None:
        return InvitationState.UNKNOWN, None
    if invitation.used_at is not None:
        return InvitationState.USED, invitation
    patient = invitation.patient
    if (
        invitation.revoked_at is not None
        or invitation.expires_at <= utc_now()
        or patient.merged_into_id is not None
        or patient.deceased_on is not None
    ):
        return InvitationState.EXPIRED, invitation
    return InvitationState.VALID, invitation


def use_invitation(token: str, source: str) -> tuple[str, Invitation | None]:
    """Take a valid invitation (once: concurrent uses find it taken)."""
    with transaction.atomic():
        state, invitation = invitation_state(token)
        if invitation is not None and state == InvitationState.VALID:
            taken = Invitation.objects.filter(pk=invitation.pk, used_at__isnull=True).update(
                used_at=utc_now()
            )
            if not taken:
                state = InvitationState.USED
        if invitation is not None:
            audit.append(
                action="portal.invitation.use",
                outcome="success" if state == InvitationState.VALID else "failure",
                actor_name=f"patient:{invitation.patient_id}",
                organisation_id=invitation.organisation_id,
                patient_id=invitation.patient_id,
                object_type="portal.invitation",
                object_id=invitation.pk,
                source=source,
                detail={"state": state},
            )
    return state, invitation


# --- sign-in completion ------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A record offered after a correct code, shown masked."""

    number: int
    masked_name: str
    organisation: str
    family: bool


def describe(choices: Iterable[otp.Candidate]) -> list[Choice]:
    items = list(choices)
    patients = pm.Patient.objects.in_bulk({c.patient_id for c in items})
    from careloop.accounts.models import Organisation

    orgs = dict(
        Organisation.objects.filter(pk__in={c.organisation_id for c in items}).values_list(
            "pk", "name"
        )
    )
    out = []
    for i, c in enumerate(items):
        patient = patients.get(c.patient_id)
        out.append(
            Choice(
                number=i,
                masked_name=mask_name(patient.name if patient else ""),
                organisation=orgs.get(c.organisation_id, ""),
                family=c.caregiver_id is not None,
            )
        )
    return out


def still_allowed(candidate: otp.Candidate) -> tuple[pm.Patient, pm.Caregiver | None] | None:
    """The patient (and caregiver) of a candidate, if the access still holds right now."""
    patient = pm.Patient.objects.filter(
        pk=candidate.patient_id,
        organisation_id=candidate.organisation_id,
        merged_into__isnull=True,
        deceased_on__isnull=True,
    ).first()
    if patient is None:
        return None
    if candidate.caregiver_id is None:
        return patient, None
    proxy = (
        PortalProxy.objects.select_related("caregiver")
        .filter(
            patient=patient,
            caregiver_id=candidate.caregiver_id,
            revoked_at__isnull=True,
            caregiver__deleted_at__isnull=True,
        )
        .first()
    )
    if proxy is None:
        return None
    # The number the access was given for must still be the caregiver's number on file.
    current = normalise_phone(proxy.caregiver.phone) or ""
    if otp.phone_index(current) != proxy.phone_index:
        return None
    return patient, proxy.caregiver


def take_code(row_id: int) -> bool:
    """Mark a verified code used (once)."""
    return bool(
        otp.SignInCode.objects.filter(
            pk=row_id, verified_at__isnull=False, used_at__isnull=True
        ).update(used_at=utc_now())
    )


# --- sessions ----------------------------------------------------------------------------------


def revoke_sessions(actor: Actor, patient_id: int) -> int:
    """End every portal session of the patient and void the links not used yet."""
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.PATIENT_UPDATE, audit_read=False
    )
    with transaction.atomic():
        ended = end_all_for(patient.pk, "revoked")
        voided = Invitation.objects.filter(
            patient=patient, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=utc_now())
        audit.record(
            actor,
            "portal.session.revoke",
            patient_id=patient.pk,
            object_type="portal.session",
            detail={"sessions": ended, "invitations": voided},
        )
    return ended


def overview(actor: Actor, patient_id: int) -> dict[str, Any]:
    """What the staff portal-access panel shows (audited as a read of the patient)."""
    patient = patient_selectors.get_patient(actor, patient_id, action=Action.PATIENT_UPDATE)
    now = utc_now()
    sessions = list(
        PortalSession.objects.filter(patient=patient, ended_at__isnull=True, expires_at__gt=now)
        .select_related("caregiver")
        .order_by("-last_seen")[:50]
    )
    invitations = list(
        Invitation.objects.filter(
            patient=patient, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).order_by("-created_at")[:20]
    )
    proxies = list(
        PortalProxy.objects.filter(patient=patient)
        .select_related("caregiver", "granted_by")
        .order_by("revoked_at", "-consented_at")[:50]
    )
    active_caregivers = {p.caregiver_id for p in proxies if p.revoked_at is None}
    caregivers = [
        c
        for c in pm.Caregiver.objects.filter(patient=patient, deleted_at__isnull=True).order_by(
            "id"
        )
        if c.pk not in active_caregivers
    ]
    return {
        "patient": patient,
        "sessions": sessions,
        "invitations": invitations,
        "proxies": proxies,
        "caregivers": caregivers,
    }


# --- family (proxy) access ---------------------------------------------------------------------


def _caregiver_of(patient: pm.Patient, caregiver_id: Any) -> pm.Caregiver:
    try:
        cid = int(caregiver_id)
    except (TypeError, ValueError):
        raise ValidationFailed(details={"caregiver": [_("Choose a family member.")]}) from None
    caregiver = pm.Caregiver.objects.filter(
        pk=cid, patient=patient, deleted_at__isnull=True
    ).first()
    if caregiver is None:
        raise ValidationFailed(details={"caregiver": [_("Choose a family member.")]})
    return caregiver


def _grant(
    patient: pm.Patient,
    caregiver: pm.Caregiver,
    *,
    source: str,
    granted_by: Any,
    notify: bool,
) -> PortalProxy:
    number = normalise_phone(caregiver.phone)
    if not number or "-" in number:
        raise ValidationFailed(
            details={"caregiver": [_("This family member has no mobile phone number on file.")]}
        )
    try:
        with transaction.atomic():
            return PortalProxy.objects.create(
                organisation_id=patient.organisation_id,
                patient=patient,
                caregiver=caregiver,
                phone_index=otp.phone_index(number),
                consented_at=utc_now(),
                consent_source=source,
                consent_text=str(CONSENT_TEXT),
                granted_by=granted_by,
                notify_missed_doses=notify,
            )
    except IntegrityError:
        raise ValidationFailed(
            details={"caregiver": [_("This family member already has access.")]}
        ) from None


def grant_proxy(
    actor: Actor, patient_id: int, caregiver_id: Any, *, source: str, consent: bool, notify: bool
) -> PortalProxy:
    """Staff record the patient's consent and give a caregiver portal access."""
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CONSENT_WRITE, audit_read=False
    )
    errors: dict[str, list[str]] = {}
    if not consent:
        errors["consent"] = [_("Record the patient's consent first.")]
    if source not in (PortalProxy.ConsentSource.PAPER, PortalProxy.ConsentSource.VERBAL):
        errors["source"] = [_("Say how the patient gave consent.")]
    if errors:
        raise ValidationFailed(details=errors)
    caregiver = _caregiver_of(patient, caregiver_id)
    with transaction.atomic():
        proxy = _grant(patient, caregiver, source=source, granted_by=actor.user, notify=notify)
        audit.record(
            actor,
            "portal.proxy.grant",
            patient_id=patient.pk,
            obj=proxy,
            detail={"caregiver": caregiver.pk, "source": source, "notify": notify},
        )
    return proxy


def grant_proxy_portal(
    pactor: PortalActor, caregiver_id: Any, *, consent: bool, notify: bool
) -> PortalProxy:
    """The patient gives a family member access from Me → Family (never a caregiver)."""
    if pactor.is_proxy:
        raise Forbidden()
    if not consent:
        raise ValidationFailed(details={"consent": [_("Tick the box to give your consent.")]})
    patient = pm.Patient.objects.get(pk=pactor.patient_id)
    caregiver = _caregiver_of(patient, caregiver_id)
    with transaction.atomic():
        proxy = _grant(
            patient, caregiver, source=PortalProxy.ConsentSource.PORTAL, granted_by=None,
            notify=notify,
        )  # fmt: skip
        pactor.audit(
            "portal.proxy.grant",
            object_type="portal.portalproxy",
            object_id=proxy.pk,
            detail={"caregiver": caregiver.pk, "source": "portal", "notify": notify},
        )
    return proxy


def _revoke(proxy_id: Any, patient_id: int) -> PortalProxy:
    try:
        pid = int(proxy_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    proxy = (
        PortalProxy.objects.select_for_update()
        .filter(pk=pid, patient_id=patient_id, revoked_at__isnull=True)
        .first()
    )
    if proxy is None:
        raise NotFound()
    proxy.revoked_at = utc_now()
    proxy.save(update_fields=["revoked_at"])
    PortalSession.objects.filter(
        patient_id=patient_id, caregiver_id=proxy.caregiver_id, ended_at__isnull=True
    ).update(ended_at=utc_now(), end_reason="proxy_revoked")
    return proxy


def revoke_proxy(actor: Actor, patient_id: int, proxy_id: Any) -> PortalProxy:
    patient = patient_selectors.get_patient(
        actor, patient_id, action=Action.CONSENT_WRITE, audit_read=False
    )
    with transaction.atomic():
        proxy = _revoke(proxy_id, patient.pk)
        audit.record(
            actor,
            "portal.proxy.revoke",
            patient_id=patient.pk,
            obj=proxy,
            detail={"caregiver": proxy.caregiver_id},
        )
    return proxy


def revoke_proxy_portal(pactor: PortalActor, proxy_id: Any) -> PortalProxy:
    if pactor.is_proxy:
        raise Forbidden()
    with transaction.atomic():
        proxy = _revoke(proxy_id, pactor.patient_id)
        pactor.audit(
            "portal.proxy.revoke",
            object_type="portal.portalproxy",
            object_id=proxy.pk,
            detail={"caregiver": proxy.caregiver_id},
        )
    return proxy


def set_proxy_notify(pactor: PortalActor, proxy_id: Any, on: bool) -> PortalProxy:
    if pactor.is_proxy:
        raise Forbidden()
    try:
        pid = int(proxy_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    with transaction.atomic():
        proxy = (
            PortalProxy.objects.select_for_update()
            .filter(pk=pid, patient_id=pactor.patient_id, revoked_at__isnull=True)
            .first()
        )
        if proxy is None:
            raise NotFound()
        proxy.notify_missed_doses = on
        proxy.save(update_fields=["notify_missed_doses"])
        pactor.audit(
            "portal.proxy.notify",
            object_type="portal.portalproxy",
            object_id=proxy.pk,
            detail={"notify_missed_doses": on},
        )
    return proxy


def family(pactor: PortalActor) -> dict[str, Any]:
    """Me → Family: who has access, and who could be given it."""
    proxies = list(
        PortalProxy.objects.filter(patient_id=pactor.patient_id, revoked_at__isnull=True)
        .select_related("caregiver")
        .order_by("consented_at")
    )
    given = {p.caregiver_id for p in proxies}
    caregivers = [
        c
        for c in pm.Caregiver.objects.filter(
            patient_id=pactor.patient_id, deleted_at__isnull=True
        ).order_by("id")
        if c.pk not in given
    ]
    return {"proxies": proxies, "caregivers": caregivers}


# --- web push ----------------------------------------------------------------------------------


def _push_config(organisation_id: int) -> chm.ChannelConfig | None:
    return chm.ChannelConfig.objects.filter(
        organisation_id=organisation_id, kind=ChannelKind.PUSH, provider="webpush", enabled=True
    ).first()


def vapid_public_key(organisation_id: int) -> str:
    """The applicationServerKey for the patient's organisation, or "" without a push channel."""
    cfg = _push_config(organisation_id)
    if cfg is None:
        return ""
    try:
        return webpush.vapid_public_key(cfg.config)
    except ChannelError:
        return ""


def _endpoint_digest(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def subscribe_push(pactor: PortalActor, data: dict[str, Any]) -> PushSubscription:
    """Keep this browser's push subscription as the patient's push address."""
    if pactor.is_proxy:
        raise Forbidden()
    cfg = _push_config(pactor.organisation_id)
    allow_insecure = bool(cfg and cfg.config.get("allow_insecure"))
    text = json.dumps({"endpoint": data.get("endpoint"), "keys": data.get("keys") or {}})
    bad = ValidationFailed(
        details={"subscription": [_("This browser's subscription is not valid.")]}
    )
    if len(text) > 2000:
        raise bad
    try:
        sub = webpush.parse_subscription(text, allow_insecure=allow_insecure)
    except ChannelError:
        raise bad from None
    keys = {"p256dh": webpush.b64url(sub.p256dh), "auth": webpush.b64url(sub.auth)}
    digest = _endpoint_digest(sub.endpoint)
    with transaction.atomic():
        row = (
            PushSubscription.objects.select_for_update()
            .filter(patient_id=pactor.patient_id, endpoint_digest=digest, revoked_at__isnull=True)
            .first()
        )
        if row is None:
            row = PushSubscription.objects.create(
                organisation_id=pactor.organisation_id,
                patient_id=pactor.patient_id,
                endpoint=sub.endpoint,
                endpoint_digest=digest,
                keys=keys,
            )
        elif row.keys != keys:
            row.keys = keys
            row.save(update_fields=["keys"])
        pactor.audit("portal.push.subscribe", object_type="portal.pushsubscription",
                     object_id=row.pk)  # fmt: skip
    return row


def unsubscribe_push(pactor: PortalActor, endpoint: str) -> int:
    with transaction.atomic():
        qs = PushSubscription.objects.filter(patient_id=pactor.patient_id, revoked_at__isnull=True)
        if endpoint:
            qs = qs.filter(endpoint_digest=_endpoint_digest(endpoint))
        ended = qs.update(revoked_at=utc_now())
        pactor.audit("portal.push.unsubscribe", object_type="portal.pushsubscription",
                     detail={"ended": ended})  # fmt: skip
    return ended


def push_enabled(patient_id: int) -> bool:
    return PushSubscription.objects.filter(patient_id=patient_id, revoked_at__isnull=True).exists()


def push_addresses(patient_ids: Iterable[int]) -> dict[int, str]:
    """The newest active portal push subscription of each patient, as a channel address."""
    out: dict[int, str] = {}
    for row in PushSubscription.objects.filter(
        patient_id__in=set(patient_ids), revoked_at__isnull=True
    ).order_by("created_at", "id"):
        out[row.patient_id] = row.as_address()  # the newest wins
    return out


# --- missed doses: an SMS to family members who asked for it -----------------------------------

NOTICE_TRIES = 3


def notice_text(language: str, link: str) -> str:
    with translation.override(language or "zh-hans"):
        return _(
            "CareLoop: a dose for your family member was not confirmed today. Open %(link)s"
        ) % {"link": link}


def notify_missed_doses(
    organisation_id: int, patient_ids: Iterable[int], now: datetime | None = None
) -> int:
    """Queue and send one SMS per caregiver (who asked for it) and patient and day.

    Idempotent: the notice's key is the proxy and the patient's local day, so a second sweep
    on the same day sends nothing more. Returns how many were sent now.
    """
    now = now or utc_now()
    ids = set(patient_ids)
    if ids:
        proxies = PortalProxy.objects.filter(
            organisation_id=organisation_id,
            patient_id__in=ids,
            revoked_at__isnull=True,
            notify_missed_doses=True,
            caregiver__deleted_at__isnull=True,
        ).select_related("patient")
        for proxy in proxies:
            try:
                zone = ZoneInfo(proxy.patient.time_zone or "Asia/Shanghai")
            except (ValueError, KeyError):
                zone = ZoneInfo("Asia/Shanghai")
            day = now.astimezone(zone).date()
            ProxyNotice.objects.get_or_create(
                dedupe_key=f"missed:{proxy.pk}:{day.isoformat()}",
                defaults={
                    "organisation_id": organisation_id,
                    "patient_id": proxy.patient_id,
                    "proxy": proxy,
                    "day": day,
                },
            )
    return send_pending_notices(organisation_id)


def send_pending_notices(organisation_id: int) -> int:
    sent = 0
    pending = ProxyNotice.objects.filter(
        organisation_id=organisation_id, status="pending", tries__lt=NOTICE_TRIES
    ).select_related("proxy__caregiver", "patient")
    cfg = chm.ChannelConfig.objects.filter(
        organisation_id=organisation_id, kind=ChannelKind.SMS, enabled=True
    ).first()
    for notice in list(pending[:500]):
        # Claim it: only one worker sends a notice.
        claimed = ProxyNotice.objects.filter(
            pk=notice.pk, status="pending", tries=notice.tries
        ).update(status="sending", tries=notice.tries + 1)
        if not claimed:
            continue
        status, detail = _send_notice(notice, cfg)
        ProxyNotice.objects.filter(pk=notice.pk).update(
            status=status,
            detail=detail[:200],
            sent_at=utc_now() if status == "sent" else None,
        )
        audit.append(
            action="portal.proxy.missed_dose_notice",
            outcome="success" if status == "sent" else "failure",
            actor_name="system:portal",
            organisation_id=organisation_id,
            patient_id=notice.patient_id,
            object_type="portal.proxynotice",
            object_id=notice.pk,
            detail={"caregiver": notice.proxy.caregiver_id, "status": status, "detail": detail},
        )
        sent += status == "sent"
    return sent


def _send_notice(notice: ProxyNotice, cfg: chm.ChannelConfig | None) -> tuple[str, str]:
    proxy = notice.proxy
    if proxy.revoked_at is not None or not proxy.notify_missed_doses:
        return "failed", "access revoked"
    if cfg is None:
        return "failed", "no SMS channel"
    number = normalise_phone(proxy.caregiver.phone)
    if not number:
        return "failed", "no mobile number"
    link = settings.PUBLIC_URL.rstrip("/") + "/portal/"
    language = notice.patient.preferred_language or "zh-hans"
    conf = cfg.config
    message = Message(
        to=number,
        body=notice_text(language, link),
        dedupe_key=notice.dedupe_key,
        language=language,
        link=link,
        template_code=str(conf.get("template_family") or conf.get("template_code") or ""),
        params={"link": link},
    )
    try:
        result = registry.get_adapter(ChannelKind.SMS, cfg.provider, conf).send(message)
    except ChannelError as exc:
        retry = not hasattr(exc, "reason") and notice.tries + 1 < NOTICE_TRIES
        return ("pending" if retry else "failed"), (exc.code or exc.detail)[:200]
    return "sent", result.provider_message_id[:200]
