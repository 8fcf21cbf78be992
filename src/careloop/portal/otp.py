"""One-time SMS codes for the portal sign-in: issue, send, check.

The rules (docs in the module's functions):
- six digits from ``secrets``; only a keyed digest is stored, bound to the browser's nonce;
- valid for ten minutes, used once, at most five wrong tries;
- at most five codes per number, twenty per address and a budget per organisation per hour,
  counted in the database so every process sees the same limits;
- the answer to "send me a code" is the same whether or not the number belongs to anyone
  (a row is written either way; nothing is sent for an unknown number, after a similar pause).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import translation
from django.utils.translation import gettext as _

from careloop.accounts.models import Organisation
from careloop.audit import services as audit
from careloop.channels import models as chm
from careloop.channels import registry
from careloop.channels.port import ChannelError, ChannelKind, Message
from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.errors import CareLoopError
from careloop.patients import models as pm
from careloop.portal.models import PortalProxy, SignInCode

log = logging.getLogger("careloop.portal")

CODE_LIFETIME = timedelta(minutes=10)
MAX_TRIES = 5
WINDOW = timedelta(hours=1)
PER_NUMBER = 5
PER_ADDRESS = 20
PER_ORGANISATION = 1000

_random = secrets.SystemRandom()
# How long a real send usually takes in this process: an unknown number waits about as long.
_typical_send = {"seconds": 0.15}


class TooMany(CareLoopError):
    status = 429
    code = "too_many_requests"

    def __init__(self) -> None:
        super().__init__(_("Too many codes were asked for. Please wait an hour and try again."))


def _key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"careloop-portal-codes", "sha256").digest()


def digest(value: str) -> str:
    """A keyed digest (codes, nonces, addresses): equal inputs match, nothing is revealed."""
    return hmac.new(_key(), value.encode(), hashlib.sha256).hexdigest()


def phone_index(number: str) -> str:
    """The patients' blind index of a normalised phone number (see PatientPhone)."""
    return blind_index("phone", number)


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


@dataclass(frozen=True)
class Candidate:
    """A record a number may sign in to: the patient's own, or as their family member."""

    patient_id: int
    organisation_id: int
    caregiver_id: int | None = None

    def as_json(self) -> list[int | None]:
        return [self.patient_id, self.organisation_id, self.caregiver_id]

    @classmethod
    def from_json(cls, value: list[int | None]) -> Candidate:
        patient_id, organisation_id, caregiver_id = value
        return cls(int(patient_id or 0), int(organisation_id or 0), caregiver_id)


def candidates(index: str, organisation_id: int | None) -> list[Candidate]:
    """Every active record this phone may open: own records first, then family access."""
    phones = pm.PatientPhone.objects.filter(
        number_index=index,
        patient__merged_into__isnull=True,
        patient__deceased_on__isnull=True,
    )
    proxies = PortalProxy.objects.filter(
        phone_index=index,
        revoked_at__isnull=True,
        caregiver__deleted_at__isnull=True,
        patient__merged_into__isnull=True,
        patient__deceased_on__isnull=True,
    )
    if organisation_id is not None:
        phones = phones.filter(organisation_id=organisation_id)
        proxies = proxies.filter(organisation_id=organisation_id)
    found: list[Candidate] = []
    for pid, org in phones.order_by("patient_id").values_list("patient_id", "organisation_id"):
        item = Candidate(pid, org)
        if item not in found:
            found.append(item)
    for pid, org, cid in proxies.order_by("patient_id").values_list(
        "patient_id", "organisation_id", "caregiver_id"
    ):
        found.append(Candidate(pid, org, cid))
    return found


def _check_limits(index: str, ip: str, organisation_id: int | None) -> None:
    since = utc_now() - WINDOW
    recent = SignInCode.objects.filter(created_at__gte=since)
    in_org = (
        recent.filter(organisation_id=organisation_id)
        if organisation_id is not None
        else recent.filter(organisation__isnull=True)
    )
    if (
        recent.filter(phone_index=index).count() >= PER_NUMBER
        or recent.filter(ip_digest=ip).count() >= PER_ADDRESS
        or in_org.count() >= PER_ORGANISATION
    ):
        raise TooMany()


@dataclass(frozen=True)
class Issued:
    challenge_id: int
    nonce: str  # goes into the browser's cookie; the row holds only its digest


def request_code(
    number: str,
    *,
    organisation: Organisation | None,
    address: str,
    language: str,
) -> Issued:
    """Write a code row for the number and send the code when the number is known.

    Raises TooMany (same for known and unknown numbers) when a limit is reached.
    """
    started = time.monotonic()
    index = phone_index(number)
    ip = digest(f"ip:{address}")
    org_id = organisation.pk if organisation else None
    nonce = secrets.token_urlsafe(24)
    code = new_code()
    try:
        with transaction.atomic():
            _check_limits(index, ip, org_id)
    except TooMany:
        audit.append(
            action="portal.code_request",
            outcome="denied",
            actor_name="portal:anonymous",
            organisation_id=org_id,
            source=address,
            detail={"reason": "rate_limit"},
        )
        raise
    with transaction.atomic():
        found = candidates(index, org_id)
        now = utc_now()
        row = SignInCode.objects.create(
            organisation_id=org_id,
            phone_index=index,
            ip_digest=ip,
            browser_digest=digest(f"browser:{nonce}"),
            code_digest=digest(f"code:{nonce}:{code}") if found else "",
            sent=False,
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
        # Audited without saying whether the number belongs to anyone.
        audit.append(
            action="portal.code_request",
            actor_name="portal:anonymous",
            organisation_id=org_id,
            object_type="portal.signincode",
            object_id=row.pk,
            source=address,
        )
    if found:
        sent = _send(number, code, row, found[0].organisation_id, language)
        elapsed = time.monotonic() - started
        _typical_send["seconds"] = min(3.0, 0.8 * _typical_send["seconds"] + 0.2 * elapsed)
        if sent:
            SignInCode.objects.filter(pk=row.pk).update(sent=True)
    else:
        pause = _typical_send["seconds"] * _random.uniform(0.8, 1.2)
        time.sleep(max(0.0, pause - (time.monotonic() - started)))
    return Issued(row.pk, nonce)


def sms_text(code: str, language: str) -> str:
    with translation.override(language or "zh-hans"):
        return _(
            "CareLoop sign-in code: %(code)s. It is valid for 10 minutes. "
            "Do not share it with anyone."
        ) % {"code": code}


def _send(number: str, code: str, row: SignInCode, org_id: int, language: str) -> bool:
    cfg = chm.ChannelConfig.objects.filter(
        organisation_id=org_id, kind=ChannelKind.SMS, enabled=True
    ).first()
    if cfg is None:
        log.warning("portal sign-in code not sent: no SMS channel for organisation %s", org_id)
        return False
    conf = cfg.config
    message = Message(
        to=number,
        body=sms_text(code, language),
        dedupe_key=f"portal-code:{row.pk}",
        language=language,
        template_code=str(conf.get("template_otp") or conf.get("template_code") or ""),
        params={"code": code},
    )
    try:
        registry.get_adapter(ChannelKind.SMS, cfg.provider, conf).send(message)
    except ChannelError as exc:
        log.warning("portal sign-in code not sent: %s", exc.code or exc.detail)
        return False
    return True


class Outcome:
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"  # also: used, or too many wrong tries, or another browser's code


def check_code(challenge_id: int, nonce: str, code: str) -> tuple[str, SignInCode | None]:
    """Check a code typed in the browser that asked for it; at most once successfully.

    Returns (outcome, row). A wrong code counts a try; the fifth wrong try ends the code.
    """
    now = utc_now()
    with transaction.atomic():
        row = (
            SignInCode.objects.select_for_update()
            .filter(pk=challenge_id, browser_digest=digest(f"browser:{nonce}"))
            .first()
        )
        if (
            row is None
            or row.verified_at is not None
            or row.used_at is not None
            or row.expires_at <= now
            or row.tries >= MAX_TRIES
        ):
            return Outcome.EXPIRED, row
        typed = "".join(ch for ch in code if ch.isdigit())
        good = bool(row.code_digest) and hmac.compare_digest(
            row.code_digest, digest(f"code:{nonce}:{typed}")
        )
        if not good:
            SignInCode.objects.filter(pk=row.pk).update(tries=F("tries") + 1)
            row.tries += 1
            return Outcome.WRONG, row
        row.verified_at = now
        row.save(update_fields=["verified_at"])
        return Outcome.OK, row


def tries_left(row: SignInCode | None) -> int:
    return max(0, MAX_TRIES - row.tries) if row is not None else 0
