"""Staff second factor: an authenticator app's time-based codes (careloop.kit.totp).

Administrators always need one (superusers too); an organisation may ask it of all its staff.
Enrolment is two steps: a pending secret is made and shown once, and only a correct code from it
confirms it. A confirmed factor is asked for at every sign-in, after the password; each code is
accepted once. Starting over (lost phone) is an organisation admin's act, audited.
"""

from __future__ import annotations

import time

from django.db import transaction

from careloop.accounts.actor import Actor
from careloop.accounts.models import SecondFactor, Staff
from careloop.accounts.roles import Action, Role
from careloop.audit import services as audit
from careloop.kit import totp
from careloop.kit.clock import utc_now
from careloop.kit.errors import Forbidden, NotFound

ISSUER = "CareLoop"


def required(staff: Staff) -> bool:
    if staff.is_superuser or staff.role == Role.ORG_ADMIN:
        return True
    org = staff.organisation
    return bool(org is not None and org.second_factor_for_all)


def confirmed(staff: Staff) -> SecondFactor | None:
    return SecondFactor.objects.filter(staff=staff, confirmed_at__isnull=False).first()


def pending_secret(staff: Staff) -> str:
    """The secret being set up (made on first call, kept until confirmed); never one that is
    confirmed already."""
    with transaction.atomic():
        factor = SecondFactor.objects.select_for_update().filter(staff=staff).first()
        if factor is not None and factor.confirmed_at is not None:
            raise Forbidden("a second factor is set up already")
        if factor is None:
            factor = SecondFactor.objects.create(staff=staff, secret=totp.new_secret())
        return str(factor.secret)


def provisioning_uri(staff: Staff, secret: str) -> str:
    org = staff.organisation
    issuer = f"{ISSUER} {org.name}" if org is not None else ISSUER
    return totp.provisioning_uri(secret, staff.username, issuer)


def check(staff: Staff, code: str, *, source: str = "", confirming: bool = False) -> bool:
    """True when `code` is the staff member's current code and was never accepted before.

    With `confirming`, the pending secret is the one checked and a match confirms it. Every
    outcome is in the audit trail."""
    now = time.time()
    with transaction.atomic():
        factor = SecondFactor.objects.select_for_update().filter(staff=staff).first()
        if factor is None or (factor.confirmed_at is None) != confirming:
            ok = False
        else:
            step = totp.matching_step(str(factor.secret), code, now, after_step=factor.last_step)
            ok = step is not None
            if ok:
                factor.last_step = step
                if confirming:
                    factor.confirmed_at = utc_now()
                factor.save(update_fields=["last_step", "confirmed_at"])
        audit.append(
            action="auth.second_factor_setup" if confirming else "auth.second_factor",
            outcome="success" if ok else "failure",
            actor_id=staff.pk,
            actor_name=staff.username,
            organisation_id=staff.organisation_id,
            source=source,
        )
    return ok


def reset(actor: Actor, staff_id: int) -> None:
    """Remove a staff member's second factor so that they set it up again at next sign-in:
    an organisation admin for their own organisation's staff, a platform superuser for anyone."""
    org_id = actor.organisation_id
    scope = Staff.objects.all() if actor.user.is_superuser else Staff.objects.none()
    if org_id and not actor.user.is_superuser:
        scope = Staff.objects.filter(organisation_id=org_id)
    staff = scope.filter(pk=staff_id).first()
    if staff is None:
        raise NotFound()
    if not (actor.user.is_superuser or actor.can(Action.ORG_MANAGE)):
        raise Forbidden()
    with transaction.atomic():
        SecondFactor.objects.filter(staff=staff).delete()
        audit.record(actor, "auth.second_factor_reset", obj=staff)
