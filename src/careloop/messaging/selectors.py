"""Every read of messages, scoped to the acting patient or staff member.

A patient reaches only threads of their own record; staff reach threads of their departments
(the whole organisation for organisation admins) of patients they may see. Anything else is
NotFound (404), audited for staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery

from careloop.accounts.actor import Actor
from careloop.accounts.models import Staff
from careloop.accounts.roles import Action, allowed
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import NotFound
from careloop.messaging.models import Attachment, Message, ReplyTemplate, Thread
from careloop.patients import selectors as patient_selectors

if TYPE_CHECKING:
    from careloop.portal.context import PortalActor

VIEW = (Action.PATIENT_VIEW, Action.CLINICAL_VIEW)
WRITE = (*VIEW, Action.CLINICAL_WRITE)


def unread_count(patient_id: int) -> int:
    """Messages from the care team to this patient that the patient has not read yet."""
    return Message.objects.filter(
        thread__patient_id=patient_id,
        author_kind=Message.Author.STAFF,
        read_by_patient_at__isnull=True,
    ).count()


# --- patient side --------------------------------------------------------------------------


def _last_body() -> Subquery:
    return Subquery(
        Message.objects.filter(thread=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("body")[:1]
    )


def patient_threads(actor: PortalActor) -> QuerySet[Thread]:
    """The patient's threads, newest activity first, with their unread count and last text."""
    return (
        Thread.objects.filter(patient_id=actor.patient_id, organisation_id=actor.organisation_id)
        .annotate(
            unread=Count(
                "messages",
                filter=Q(
                    messages__author_kind=Message.Author.STAFF,
                    messages__read_by_patient_at__isnull=True,
                ),
            ),
            last_body=_last_body(),
        )
        .order_by("-last_message_at", "-id")
    )


def patient_thread(actor: PortalActor, thread_id: int, *, for_update: bool = False) -> Thread:
    qs = Thread.objects.filter(
        pk=thread_id, patient_id=actor.patient_id, organisation_id=actor.organisation_id
    )
    if for_update:
        qs = qs.select_for_update()
    thread = qs.first()
    if thread is None:
        raise NotFound()
    return thread


def patient_attachment(actor: PortalActor, attachment_id: int) -> Attachment:
    found = (
        Attachment.objects.select_related("message__thread")
        .filter(
            pk=attachment_id,
            message__thread__patient_id=actor.patient_id,
            message__thread__organisation_id=actor.organisation_id,
        )
        .first()
    )
    if found is None:
        raise NotFound()
    return found


@dataclass
class Entry:
    """One line of a thread's timeline: a message, or an automated reminder sent meanwhile."""

    at: datetime
    kind: str  # patient | caregiver | staff | system
    body: str
    message: Message | None = None
    author: str = ""
    unread: bool = False
    reminder_kind: str = ""
    channel: str = ""

    @property
    def automated(self) -> bool:
        return self.message is None


REMINDER_SHOWN = ("sent", "delivered", "acknowledged")


def timeline(thread: Thread, *, for_patient: bool, now: datetime | None = None) -> list[Entry]:
    """The thread's messages and the automated reminders sent to the patient while it was
    open, oldest first. Reminders count as read: they need no answer."""
    from careloop.messaging.services import NOTIFY_KIND
    from careloop.reminders import models as rm

    messages = list(thread.messages.select_related("staff_author").prefetch_related("attachments"))
    entries = [
        Entry(
            at=m.created_at,
            kind=m.author_kind,
            body=m.body,
            message=m,
            author=str(m.staff_author) if m.staff_author_id else "",
            unread=(
                m.read_by_patient_at is None
                if for_patient
                else m.read_by_staff_at is None and m.from_patient_side
            ),
        )
        for m in messages
    ]
    end = now or utc_now()
    if thread.status == Thread.Status.CLOSED:
        end = thread.last_message_at
    first_sends = (
        rm.Attempt.objects.filter(occurrence=OuterRef("pk"), outcome__in=("accepted", "delivered"))
        .order_by("started_at", "id")
        .values("started_at")[:1]
    )
    reminders = (
        rm.Occurrence.objects.filter(
            patient_id=thread.patient_id,
            organisation_id=thread.organisation_id,
            status__in=REMINDER_SHOWN,
        )
        .exclude(kind=NOTIFY_KIND)
        .annotate(sent_at=Subquery(first_sends))
        .filter(sent_at__gte=thread.created_at, sent_at__lte=end)
        .order_by("sent_at")[:100]
    )
    for occ in reminders:
        entries.append(
            Entry(
                at=occ.sent_at,  # type: ignore[attr-defined]
                kind=Message.Author.SYSTEM,
                body=reminder_text(occ),
                reminder_kind=occ.kind,
            )
        )
    entries.sort(key=lambda e: e.at)
    return entries


def reminder_text(occ: Any) -> str:
    from django.utils.translation import get_language
    from django.utils.translation import gettext as _

    labels = {
        "medication": _("Medicine reminder"),
        "measurement": _("Measurement reminder"),
        "revisit": _("Revisit reminder"),
        "call": _("Our care team will phone you"),
        "questionnaire": _("Questionnaire reminder"),
        "education": _("New health reading"),
        "appointment": _("Appointment reminder"),
        "queue": _("Your turn is near"),
    }
    payload = occ.payload or {}
    language = get_language() or ""
    title = (payload.get("title_en") if language.startswith("en") else None) or payload.get(
        "title", ""
    )
    label = labels.get(occ.kind, _("Reminder"))
    return f"{label}: {title}" if title else str(label)


# --- staff side ----------------------------------------------------------------------------


def require_view(actor: Actor) -> None:
    for action in VIEW:
        patient_selectors.require(actor, action)


def can_write(actor: Actor) -> bool:
    return all(actor.can(a) for a in WRITE)


def staff_threads(actor: Actor) -> QuerySet[Thread]:
    """Threads of the actor's departments (organisation-wide for admins) and visible patients."""
    org = actor.organisation_id
    if org is None:
        return Thread.objects.none()
    qs = Thread.objects.filter(organisation_id=org).filter(
        Exists(patient_selectors.visible_patients(actor).filter(pk=OuterRef("patient_id")))
    )
    if not actor.is_org_wide:
        qs = qs.filter(department_id__in=actor.department_ids)
    return qs


def staff_thread(
    actor: Actor, thread_id: int, *, write: bool = False, for_update: bool = False
) -> Thread:
    needed = WRITE if write else VIEW
    if not all(actor.can(a) for a in needed):
        # The refusal names the patient concerned, for the audit trail; nothing is shown.
        owner = (
            Thread.objects.filter(pk=thread_id, organisation_id=actor.organisation_id or 0)
            .values_list("patient_id", flat=True)
            .first()
        )
        for action in needed:
            patient_selectors.require(actor, action, patient_id=owner)
    qs = staff_threads(actor).filter(pk=thread_id).select_related("patient", "department")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    thread = qs.first()
    if thread is None:
        audit.record_denied(
            actor,
            "message.thread.read",
            object_type="messaging.thread",
            object_id=thread_id,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return thread


def staff_attachment(actor: Actor, attachment_id: int) -> Attachment:
    if not all(actor.can(a) for a in VIEW):
        owner = (
            Attachment.objects.filter(
                pk=attachment_id, message__thread__organisation_id=actor.organisation_id or 0
            )
            .values_list("message__thread__patient_id", flat=True)
            .first()
        )
        for action in VIEW:
            patient_selectors.require(actor, action, patient_id=owner)
    found = (
        Attachment.objects.select_related("message__thread")
        .filter(pk=attachment_id, message__thread__in=staff_threads(actor))
        .first()
    )
    if found is None:
        audit.record_denied(
            actor,
            "message.attachment.read",
            object_type="messaging.attachment",
            object_id=attachment_id,
            detail={"reason": "scope"},
        )
        raise NotFound()
    return found


def colleagues(actor: Actor, thread: Thread) -> QuerySet[Staff]:
    """Active staff of the thread's department who may answer messages."""
    roles = [r for r, _label in Staff._meta.get_field("role").choices or [] if _can_answer(r)]
    return (
        Staff.objects.filter(
            organisation_id=thread.organisation_id,
            is_active=True,
            memberships__department_id=thread.department_id,
            role__in=roles,
        )
        .distinct()
        .order_by("display_name", "username")
    )


def _can_answer(role: str) -> bool:
    return all(allowed(role, a) for a in WRITE)


TABS = ("unassigned", "mine", "waiting", "open", "closed")


def tab_filter(actor: Actor, tab: str) -> Q:
    open_ = ~Q(status=Thread.Status.CLOSED)
    return {
        "unassigned": Q(status=Thread.Status.OPEN, assignee__isnull=True),
        "mine": open_ & Q(assignee_id=actor.user.pk),
        "waiting": Q(status=Thread.Status.WAITING),
        "open": open_,
        "closed": Q(status=Thread.Status.CLOSED),
    }[tab]


def tab_counts(actor: Actor, base: QuerySet[Thread] | None = None) -> dict[str, int]:
    qs = base if base is not None else staff_threads(actor)
    found = qs.aggregate(**{tab: Count("pk", filter=tab_filter(actor, tab)) for tab in TABS})
    return {tab: int(found[tab] or 0) for tab in TABS}


def inbox(actor: Actor, tab: str, query: str = "") -> tuple[QuerySet[Thread], dict[str, int]]:
    """The threads of one triage tab (and every tab's count), searched by patient name."""
    require_view(actor)
    base = staff_threads(actor)
    query = (query or "").strip()
    if query:
        base = base.filter(patient__name__icontains=query[:100])
    rows = (
        base.filter(tab_filter(actor, tab))
        .select_related("patient", "assignee", "department")
        .annotate(
            last_body=_last_body(),
            unread=Count(
                "messages",
                filter=Q(
                    messages__author_kind__in=(Message.Author.PATIENT, Message.Author.CAREGIVER),
                    messages__read_by_staff_at__isnull=True,
                ),
            ),
            urgent=Count("messages", filter=Q(messages__urgent=True)),
        )
    )
    if tab == "closed":
        rows = rows.order_by("-last_message_at", "-id")
    else:
        # Most urgent first: the earliest reply deadline; threads without one after them.
        rows = rows.order_by(F("sla_due_at").asc(nulls_last=True), "-last_message_at", "-id")
    return rows, tab_counts(actor, base)


def waiting_count(actor: Actor) -> int:
    """Unassigned open threads of the actor's departments (for the navigation badge)."""
    if not all(actor.can(a) for a in VIEW):
        return 0
    return staff_threads(actor).filter(tab_filter(actor, "unassigned")).count()


def patient_threads_for_staff(actor: Actor, patient_id: int) -> QuerySet[Thread]:
    patient_selectors.get_patient(actor, patient_id, action=Action.CLINICAL_VIEW, audit_read=False)
    return (
        staff_threads(actor)
        .filter(patient_id=patient_id)
        .select_related("assignee", "department")
        .annotate(last_body=_last_body())
        .order_by("-last_message_at", "-id")
    )


def reply_templates(actor: Actor) -> QuerySet[ReplyTemplate]:
    return ReplyTemplate.objects.filter(organisation_id=actor.organisation_id or 0)
