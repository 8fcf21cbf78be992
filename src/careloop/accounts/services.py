"""Staff accounts: login throttling, API tokens, language preference."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from careloop.accounts.models import ApiToken, LoginFailure, Membership, Staff
from careloop.accounts.roles import Role
from careloop.kit.clock import utc_now

TOKEN_PREFIX = "cl_"  # noqa: S105 - a public prefix, not a secret


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


def issue_token(staff: Staff, label: str = "") -> str:
    """Create a bearer token; the raw value is returned once and never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(
        staff=staff, digest=ApiToken.digest_of(raw), prefix=raw[:10], label=label[:100]
    )
    return raw


def staff_for_token(raw: str) -> Staff | None:
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
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.staff


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
