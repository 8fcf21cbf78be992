"""Every write of messages: one transaction each, audited, idempotent by Idempotency-Key.

Patients (and caregivers by proxy) write through the portal with a PortalActor; staff write
with an Actor. A repeated send with the same key returns the first message; the same key with
another text is a conflict (409), never a second message.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.models import Staff
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from careloop.messaging import domain, selectors
from careloop.messaging.models import BODY_MAX, Attachment, Message, MessagingSettings, Thread
from careloop.patients import models as pm
from careloop.portal.context import PortalActor

MAX_FILES = 3
SUBJECT_MAX = 200
_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{8,100}$")


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    default_message = gettext_lazy("This Idempotency-Key was already used for a different message.")


def new_key() -> str:
    """A fresh idempotency key for a form render."""
    return secrets.token_urlsafe(18)


def settings_for(organisation_id: int) -> MessagingSettings:
    found = MessagingSettings.objects.filter(organisation_id=organisation_id).first()
    return found or MessagingSettings(organisation_id=organisation_id)


# --- input ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A checked attachment, not yet stored."""

    name: str
    content: bytes
    kind: domain.FileType


def check_key(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    if not _KEY.match(key):
        raise ValidationFailed(
            details={"idempotency_key": [_("The Idempotency-Key must be 8 to 100 letters.")]}
        )
    return key


def check_files(files: Sequence[Any]) -> list[Upload]:
    """Read and check attachments by content (JPEG, PNG or PDF) and size; nothing is stored."""
    files = [f for f in files if f is not None and f.name]
    if len(files) > MAX_FILES:
        raise ValidationFailed(
            details={"file": [_("Attach at most %(n)d files.") % {"n": MAX_FILES}]}
        )
    limit_mb = domain.MAX_ATTACHMENT_BYTES // (1024 * 1024)
    checked = []
    for f in files:
        size = int(getattr(f, "size", 0) or 0)
        if size > domain.MAX_ATTACHMENT_BYTES:
            raise ValidationFailed(
                details={
                    "file": [
                        _("%(name)s is too large: files can be at most %(mb)d MB.")
                        % {"name": f.name, "mb": limit_mb}
                    ]
                }
            )
        content = f.read(domain.MAX_ATTACHMENT_BYTES + 1)
        if len(content) > domain.MAX_ATTACHMENT_BYTES:
            raise ValidationFailed(
                details={
                    "file": [
                        _("%(name)s is too large: files can be at most %(mb)d MB.")
                        % {"name": f.name, "mb": limit_mb}
                    ]
                }
            )
        kind = domain.sniff(content[:16])
        if kind is None or not content:
            raise ValidationFailed(
                details={
                    "file": [
                        _("%(name)s is not a photo (JPEG or PNG) or a PDF.") % {"name": f.name}
                    ]
                }
            )
        checked.append(Upload(domain.safe_name(f.name, kind), content, kind))
    return checked


def _check_body(body: str, uploads: Sequence[Upload]) -> str:
    text = (body or "").strip()
    if len(text) > BODY_MAX:
        raise ValidationFailed(
            details={"body": [_("A message can be at most %(n)d characters.") % {"n": BODY_MAX}]}
        )
    if not text and not uploads:
        raise ValidationFailed(details={"body": [_("Write a message or attach a file.")]})
    return text


def _digest(body: str, uploads: Sequence[Upload]) -> str:
    h = hashlib.sha256(body.encode())
    for u in uploads:
        h.update(b"\0" + hashlib.sha256(u.content).digest())
    return h.hexdigest()


def _repeat(existing: Message, digest: str) -> Message:
    if existing.body_digest != digest:
        raise IdempotencyConflict()
    return existing


def _store(message: Message, uploads: Sequence[Upload]) -> list[Attachment]:
    stored = []
    try:
        for u in uploads:
            att = Attachment(
                message=message,
                file_name=u.name,
                content_type=u.kind.content_type,
                size=len(u.content),
            )
            att.file.save(
                f"{secrets.token_hex(16)}.{u.kind.extension}", ContentFile(u.content), save=False
            )
            att.save()
            stored.append(att)
    except Exception:
        for att in stored:
            att.file.delete(save=False)
        raise
    return stored


@contextmanager
def _files_guard() -> Iterator[list[Attachment]]:
    """Attachments written in a block that then fails are removed from disk again."""
    written: list[Attachment] = []
    try:
        yield written
    except BaseException:
        for att in written:
            if att.file.name:
                att.file.storage.delete(att.file.name)
        raise


# --- patient side --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    message: Message
    created: bool

    @property
    def urgent(self) -> bool:
        return self.message.urgent


def _portal_author(actor: PortalActor) -> tuple[str, str]:
    if actor.is_proxy:
        return Message.Author.CAREGIVER, f"caregiver:{actor.caregiver_id}"
    return Message.Author.PATIENT, f"patient:{actor.patient_id}"


def _lock_patient(actor: PortalActor) -> pm.Patient:
    patient = (
        pm.Patient.objects.select_for_update()
        .filter(pk=actor.patient_id, organisation_id=actor.organisation_id)
        .first()
    )
    if patient is None:
        raise NotFound()
    return patient


def start_thread(
    actor: PortalActor,
    *,
    subject: str,
    body: str,
    department_id: int | None = None,
    files: Sequence[Any] = (),
    key: str | None = None,
) -> Sent:
    """A new question to the care team (a thread with its first message)."""
    key = check_key(key)
    uploads = check_files(files)
    text = _check_body(body, uploads)
    subject = (subject or "").strip()
    if len(subject) > SUBJECT_MAX:
        raise ValidationFailed(
            details={
                "subject": [_("The subject can be at most %(n)d characters.") % {"n": SUBJECT_MAX}]
            }
        )
    links = list(pm.PatientDepartment.objects.filter(patient_id=actor.patient_id).order_by("id"))
    link = (
        next((x for x in links if x.department_id == department_id), None)
        if department_id
        else None
    )
    if link is None and department_id:
        raise ValidationFailed(details={"department": [_("Choose one of your care teams.")]})
    link = link or (links[0] if links else None)
    if link is None:
        raise ValidationFailed(
            details={"department": [_("You have no care team to write to yet.")]}
        )
    kind, scope = _portal_author(actor)
    digest = _digest(text, uploads)
    with _files_guard() as written, transaction.atomic():
        patient = _lock_patient(actor)
        if key:
            existing = (
                Message.objects.filter(
                    thread__patient_id=patient.pk, author_scope=scope, idempotency_key=key
                )
                .select_related("thread")
                .first()
            )
            if existing is not None:
                return Sent(_repeat(existing, digest), False)
        now = utc_now()
        thread = Thread.objects.create(
            organisation_id=patient.organisation_id,
            patient=patient,
            subject=subject or _subject_from(text),
            department_id=link.department_id,
            care_team_id=link.care_team_id,
            created_at=now,
            last_message_at=now,
        )
        message = _patient_message(
            actor, patient, thread, text, uploads, kind, scope, key, digest, written
        )
        actor.audit("portal.thread.create", object_type="messaging.thread", object_id=thread.pk)
    return Sent(message, True)


def _subject_from(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return (first[:60] + ("…" if len(first) > 60 else "")) or _("Attachment")


def send(
    actor: PortalActor,
    thread_id: int,
    *,
    body: str,
    files: Sequence[Any] = (),
    key: str | None = None,
) -> Sent:
    """A patient's (or caregiver's) message in one of their threads; reopens it."""
    key = check_key(key)
    uploads = check_files(files)
    text = _check_body(body, uploads)
    kind, scope = _portal_author(actor)
    digest = _digest(text, uploads)
    with _files_guard() as written, transaction.atomic():
        patient = _lock_patient(actor)
        thread = selectors.patient_thread(actor, thread_id, for_update=True)
        if key:
            existing = Message.objects.filter(
                thread=thread, author_scope=scope, idempotency_key=key
            ).first()
            if existing is not None:
                return Sent(_repeat(existing, digest), False)
        message = _patient_message(
            actor, patient, thread, text, uploads, kind, scope, key, digest, written
        )
    return Sent(message, True)


def _patient_message(
    actor: PortalActor,
    patient: pm.Patient,
    thread: Thread,
    text: str,
    uploads: Sequence[Upload],
    kind: str,
    scope: str,
    key: str | None,
    digest: str,
    written: list[Attachment],
) -> Message:
    now = utc_now()
    conf = settings_for(patient.organisation_id)
    words = domain.urgent_words(text, conf.extra_words())
    message = Message.objects.create(
        thread=thread,
        author_kind=kind,
        caregiver_id=actor.caregiver_id,
        body=text,
        created_at=now,
        read_by_patient_at=now,
        author_scope=scope,
        idempotency_key=key,
        body_digest=digest,
        urgent=bool(words),
        matched_words=words,
    )
    attachments = _store(message, uploads)
    written.extend(attachments)
    thread.status = Thread.Status.OPEN
    thread.last_message_at = now
    thread.last_patient_message_at = now
    if thread.first_unanswered_at is None:
        thread.first_unanswered_at = now
        thread.sla_due_at = domain.sla_due(now, conf.sla_hours)
    thread.version += 1
    thread.save()
    actor.audit(
        "portal.message.send",
        object_type="messaging.message",
        object_id=message.pk,
        detail={"thread": thread.pk, "attachments": len(attachments), "urgent": bool(words)},
    )
    if words:
        _raise_urgent(patient, message, words)
    return message


def _raise_urgent(patient: pm.Patient, message: Message, words: list[str]) -> None:
    """Urgent words are an urgent symptom report (severity 10 of 10) in the patient's symptom
    diary, fed to the rule engine like every symptom entry (rule "symptom-urgent")."""
    from careloop.alerts import evaluation
    from careloop.observations import models as om

    entry = om.SymptomEntry.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        symptom=", ".join(words)[:100],
        severity=10,
        note=message.body[:1000],
        source=om.Source.PATIENT,
        effective_at=message.created_at,
    )
    evaluation.on_event(
        patient.organisation_id,
        patient.pk,
        kind="symptom",
        at=message.created_at,
        zone=patient.time_zone,
        value=10.0,
        context=entry.symptom,
        ref=entry.pk,
    )


def mark_read_by_patient(actor: PortalActor, thread: Thread) -> int:
    """Staff messages of the thread the patient has now seen."""
    return Message.objects.filter(
        thread=thread,
        thread__patient_id=actor.patient_id,
        author_kind=Message.Author.STAFF,
        read_by_patient_at__isnull=True,
    ).update(read_by_patient_at=utc_now())


# --- staff side ----------------------------------------------------------------------------


def reply(
    actor: Actor,
    thread_id: int,
    *,
    body: str,
    files: Sequence[Any] = (),
    key: str | None = None,
) -> Sent:
    """A care-team reply: the thread waits for the patient; the patient gets an in-app message
    and a notification without content."""
    # Role and scope first, outside the transaction, so that a refusal stays audited.
    selectors.staff_thread(actor, thread_id, write=True)
    key = check_key(key)
    uploads = check_files(files)
    text = _check_body(body, uploads)
    scope = f"staff:{actor.user.pk}"
    digest = _digest(text, uploads)
    with _files_guard() as written, transaction.atomic():
        thread = selectors.staff_thread(actor, thread_id, write=True, for_update=True)
        if key:
            existing = Message.objects.filter(
                thread=thread, author_scope=scope, idempotency_key=key
            ).first()
            if existing is not None:
                return Sent(_repeat(existing, digest), False)
        now = utc_now()
        message = Message.objects.create(
            thread=thread,
            author_kind=Message.Author.STAFF,
            staff_author=actor.user,
            body=text,
            created_at=now,
            read_by_staff_at=now,
            author_scope=scope,
            idempotency_key=key,
            body_digest=digest,
        )
        attachments = _store(message, uploads)
        written.extend(attachments)
        Message.objects.filter(
            thread=thread, read_by_staff_at__isnull=True, created_at__lte=now
        ).update(read_by_staff_at=now)
        thread.status = Thread.Status.WAITING
        thread.last_message_at = now
        thread.first_unanswered_at = None
        thread.sla_due_at = None
        if thread.assignee_id is None:
            thread.assignee = actor.user
        thread.version += 1
        thread.save()
        audit.record(
            actor,
            "message.reply",
            patient_id=thread.patient_id,
            obj=message,
            detail={"thread": thread.pk, "attachments": len(attachments)},
        )
        _notify(thread, message)
    return Sent(message, True)


def _notify(thread: Thread, message: Message) -> None:
    """A one-off reminder through the patient's channels that says only that a message is
    waiting (never its content)."""
    from careloop.reminders import services as reminder_services

    patient = thread.patient
    with translation.override("zh-hans"):
        title = _("You have a new message from your care team")
    with translation.override("en"):
        title_en = _("You have a new message from your care team")
    reminder_services.schedule_one(
        organisation_id=thread.organisation_id,
        patient_id=thread.patient_id,
        kind=NOTIFY_KIND,
        source_key=f"message:{message.pk}",
        due_at=message.created_at,
        time_zone=patient.time_zone,
        payload={"title": title, "title_en": title_en, "thread_id": thread.pk},
        ref=f"thread:{thread.pk}",
    )


NOTIFY_KIND = "message"


def _check_version(thread: Thread, version: int | None) -> None:
    if version is not None and version != thread.version:
        raise StaleVersion(details={"version": thread.version})


def assign(
    actor: Actor, thread_id: int, to_id: int | None, *, version: int | None = None
) -> Thread:
    """Take a thread (to_id = oneself) or hand it to a colleague of its department."""
    selectors.staff_thread(actor, thread_id, write=True)  # refusals audited, outside the block
    with transaction.atomic():
        thread = selectors.staff_thread(actor, thread_id, write=True, for_update=True)
        _check_version(thread, version)
        to: Staff | None = None
        if to_id is not None:
            to = selectors.colleagues(actor, thread).filter(pk=to_id).first()
            if to is None:
                raise ValidationFailed(
                    details={"to": [_("Choose a colleague of the thread's department.")]}
                )
        thread.assignee = to
        thread.version += 1
        thread.save(update_fields=["assignee", "version"])
        audit.record(
            actor,
            "message.assign",
            patient_id=thread.patient_id,
            obj=thread,
            detail={"to": to.pk if to else None},
        )
    return thread


def close(actor: Actor, thread_id: int, *, version: int | None = None) -> Thread:
    return _set_status(actor, thread_id, Thread.Status.CLOSED, version)


def reopen(actor: Actor, thread_id: int, *, version: int | None = None) -> Thread:
    return _set_status(actor, thread_id, Thread.Status.OPEN, version)


def _set_status(actor: Actor, thread_id: int, status: str, version: int | None) -> Thread:
    selectors.staff_thread(actor, thread_id, write=True)  # refusals audited, outside the block
    with transaction.atomic():
        thread = selectors.staff_thread(actor, thread_id, write=True, for_update=True)
        _check_version(thread, version)
        thread.status = status
        if status == Thread.Status.CLOSED:
            thread.first_unanswered_at = None
            thread.sla_due_at = None
        thread.version += 1
        thread.save()
        audit.record(
            actor,
            "message.close" if status == Thread.Status.CLOSED else "message.reopen",
            patient_id=thread.patient_id,
            obj=thread,
        )
    return thread


def mark_read_by_staff(actor: Actor, thread: Thread) -> int:
    return Message.objects.filter(
        thread=thread,
        author_kind__in=(Message.Author.PATIENT, Message.Author.CAREGIVER),
        read_by_staff_at__isnull=True,
    ).update(read_by_staff_at=utc_now())
