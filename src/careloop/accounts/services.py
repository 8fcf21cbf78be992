"""Staff accounts: login throttling, API tokens, language preference."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import ApiToken, LoginFailure, Membership, Staff
from careloop.accounts.roles import Action, Role
from careloop.audit import services as audit
from careloop.fhir.scopes import ScopeError, Scopes
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound, ValidationFailed

TOKEN_PREFIX = "cl_"  # noqa: S105 - a public prefix, not a secret
MAX_SCOPES_LENGTH = 2000


def is_locked_out(username: str, source: str) -> bool:
    since = utc_now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    recent = LoginFailure.objects.filter(at__gte=since)
    if recent.filter(username=username.lower()).count() >= settings.LOGIN_MAX_FAILURES:
        return True
    return recent.filter(source=source).count() >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS


def register_failure(username: str, source: str) -> None:
    LoginFailure.objects.create(username=username.lower()[:150], source=source[:64], at=utc_now())


def clear_failures(username: str) -> None:
    LoginFailure.objects.filter(username=username.lower()).delete()


def parse_scopes(text: str) -> Scopes:
    """A token's scopes: blank is unrestricted (the user's role alone); else SMART v2 syntax."""
    return Scopes.full() if not text.strip() else Scopes.parse(text)


def issue_token(
    staff: Staff,
    label: str = "",
    *,
    scopes: str = "",
    patient_id: int | None = None,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> str:
    """Create a bearer token; the raw value is returned once and never stored.

    Scopes are checked here (ValidationFailed naming the bad scope). A token with patient/
    scopes is bound to one patient, who must be within the user's own scope. Issuing through a
    page or the command line passes the acting user, and is audited."""
    errors: dict[str, list[str]] = {}
    text = " ".join(scopes.split())
    grants: Scopes | None = None
    try:
        if len(text) > MAX_SCOPES_LENGTH:
            raise ScopeError(
                _("the scope list is longer than %(n)d characters") % {"n": MAX_SCOPES_LENGTH}
            )
        grants = parse_scopes(text)
    except ScopeError as exc:
        errors["scopes"] = [_("Invalid scope: %(error)s") % {"error": exc}]
    needs_patient = grants is not None and any(g.context == "patient" for g in grants.grants)
    if grants is not None and needs_patient and patient_id is None:
        errors["patient"] = [_("Scopes starting with patient/ need the patient they are bound to.")]
    if patient_id is not None and grants is not None and not needs_patient:
        errors["patient"] = [_("A patient is bound only to tokens with patient/ scopes.")]
    if patient_id is not None and "patient" not in errors:
        from careloop.patients.selectors import visible_patients

        if not visible_patients(Actor(user=staff)).filter(pk=patient_id).exists():
            errors["patient"] = [_("No patient with this number is within your scope.")]
    if expires_at is not None and expires_at <= utc_now():
        errors["expires_at"] = [_("The expiry must be in the future.")]
    if errors:
        raise ValidationFailed(details=errors)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            staff=staff,
            digest=ApiToken.digest_of(raw),
            prefix=raw[:10],
            label=label[:100],
            scopes=text,
            patient_id=patient_id,
            expires_at=expires_at,
        )
        if actor is not None:  # issued through a page or the command line
            audit.record(
                actor,
                "token.issue",
                obj=token,
                patient_id=patient_id,
                detail={"scopes": text, "label": token.label, "for": staff.get_username()},
            )
    return raw


def token_for(raw: str) -> ApiToken | None:
    """The live token of a raw bearer value: not revoked, not expired, its user active."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("staff")
        .filter(digest=ApiToken.digest_of(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.staff.is_active:
        return None
    now = utc_now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def staff_for_token(raw: str) -> Staff | None:
    token = token_for(raw)
    return token.staff if token is not None else None


def revoke_token(actor: Actor, token_id: int) -> ApiToken:
    """Revoke one token: the user's own, or any of the organisation's for an admin."""
    qs = ApiToken.objects.select_related("staff")
    if actor.can(Action.ORG_MANAGE):
        qs = qs.filter(staff__organisation_id=actor.organisation_id or 0)
    else:
        qs = qs.filter(staff=actor.user)
    with transaction.atomic():
        token = qs.select_for_update(of=("self",)).filter(pk=token_id).first()
        if token is None:
            raise NotFound()
        if token.revoked_at is None:
            token.revoked_at = utc_now()
            token.save(update_fields=["revoked_at"])
            audit.record(actor, "token.revoke", obj=token, patient_id=token.patient_id)
    return token


def revoke_tokens(staff: Staff) -> int:
    return ApiToken.objects.filter(staff=staff, revoked_at__isnull=True).update(
        revoked_at=utc_now()
    )


def set_language(staff: Staff, language: str) -> None:
    if language in dict(settings.LANGUAGES):
        Staff.objects.filter(pk=staff.pk).update(language=language)
        staff.language = language


@transaction.atomic
def create_staff(
    *,
    organisation_id: int | None,
    username: str,
    password: str,
    role: str,
    department_ids: list[int] | None = None,
    display_name: str = "",
    email: str = "",
    language: str = "zh-hans",
) -> Staff:
    Role(role)  # refuse unknown roles
    staff = Staff(
        username=username,
        organisation_id=organisation_id,
        role=role,
        display_name=display_name,
        email=email,
        language=language,
        is_staff=role == Role.ORG_ADMIN,
    )
    staff.set_password(password)
    staff.save()
    for dept in department_ids or []:
        Membership.objects.create(staff=staff, department_id=dept)
    return staff


def service_account(org: Any, username: str, display_name: str) -> Staff:
    """An interface's account (HL7 v2 feed, FHIR import): it cannot sign in and holds the
    department-head role in every department of the organisation, so its writes go through
    the same checks as a member of staff registering patients and recording their care."""
    from django.contrib.auth.hashers import make_password
    from django.db import IntegrityError

    from careloop.accounts.models import Department

    staff = Staff.objects.filter(username=username).first()
    if staff is None:
        try:
            with transaction.atomic():
                staff = Staff.objects.create(
                    username=username,
                    organisation=org,
                    role=Role.DEPT_HEAD,
                    display_name=display_name,
                    password=make_password(None),  # no password: it cannot sign in
                )
        except IntegrityError:  # another connection created it a moment ago
            staff = Staff.objects.get(username=username)
    have = set(Membership.objects.filter(staff=staff).values_list("department_id", flat=True))
    for dept_id in Department.objects.filter(organisation=org).values_list("pk", flat=True):
        if dept_id not in have:
            Membership.objects.get_or_create(staff=staff, department_id=dept_id)
    return staff
