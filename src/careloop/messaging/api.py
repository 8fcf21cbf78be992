"""JSON API of the staff inbox at /api/messages: list threads, read one, reply (idempotent by
the Idempotency-Key header), assign, close."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from careloop.accounts.actor import Actor
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.pagination import paginate
from careloop.messaging import selectors, services
from careloop.messaging.models import BODY_MAX, Thread

router = Router(tags=["messages"])


class ThreadQuery(Schema):
    tab: str = Field("open", description="unassigned | mine | waiting | open | closed")
    q: str = Field("", description="part of the patient's name", max_length=100)
    page: int = 1


class ThreadOut(Schema):
    id: int
    patient: int
    patient_name: str
    subject: str
    department: int
    status: str
    assignee: int | None
    last_message_at: datetime
    last_message: str
    first_unanswered_at: datetime | None
    sla_due_at: datetime | None
    overdue: bool
    version: int


class ThreadListOut(Schema):
    total: int
    page: int
    counts: dict[str, int]
    items: list[ThreadOut]


class AttachmentOut(Schema):
    id: int
    file_name: str
    content_type: str
    size: int


class MessageOut(Schema):
    id: int
    author_kind: str
    author: str
    body: str
    created_at: datetime
    read_by_patient_at: datetime | None
    read_by_staff_at: datetime | None
    urgent: bool
    matched_words: list[str]
    attachments: list[AttachmentOut]


class ThreadDetailOut(ThreadOut):
    messages: list[MessageOut]


class ReplyIn(Schema):
    body: str = Field(..., max_length=BODY_MAX)


class AssignIn(Schema):
    to: int | None = Field(None, description="a colleague of the thread's department; null: nobody")
    version: int | None = None


class CloseIn(Schema):
    version: int | None = None


def _thread(t: Thread, now: datetime) -> dict[str, Any]:
    return {
        "id": t.pk,
        "patient": t.patient_id,
        "patient_name": t.patient.name,
        "subject": t.subject,
        "department": t.department_id,
        "status": t.status,
        "assignee": t.assignee_id,
        "last_message_at": t.last_message_at,
        "last_message": str(getattr(t, "last_body", "") or ""),
        "first_unanswered_at": t.first_unanswered_at,
        "sla_due_at": t.sla_due_at,
        "overdue": t.is_overdue(now),
        "version": t.version,
    }


def _detail(actor: Actor, thread_id: int) -> dict[str, Any]:
    t = selectors.staff_thread(actor, thread_id)
    out = _thread(t, utc_now())
    out["last_message"] = ""
    out["messages"] = [
        {
            "id": m.pk,
            "author_kind": m.author_kind,
            "author": str(m.staff_author) if m.staff_author_id else "",
            "body": m.body,
            "created_at": m.created_at,
            "read_by_patient_at": m.read_by_patient_at,
            "read_by_staff_at": m.read_by_staff_at,
            "urgent": m.urgent,
            "matched_words": list(m.matched_words or []),
            "attachments": [
                {
                    "id": a.pk,
                    "file_name": a.file_name,
                    "content_type": a.content_type,
                    "size": a.size,
                }
                for a in m.attachments.all()
            ],
        }
        for m in t.messages.select_related("staff_author").prefetch_related("attachments")
    ]
    if out["messages"]:
        out["last_message"] = out["messages"][-1]["body"]
    return out


@router.get("/messages", response=ThreadListOut, summary="Conversations of my departments")
def list_threads(request: HttpRequest, filters: Query[ThreadQuery]) -> dict[str, Any]:
    actor = Actor.from_api(request)
    tab = filters.tab if filters.tab in selectors.TABS else "open"
    rows, counts = selectors.inbox(actor, tab, filters.q)
    page = paginate(rows, filters.page, 50)
    audit.record(actor, "message.inbox.list", detail={"tab": tab, "results": page.total})
    now = utc_now()
    return {
        "total": page.total,
        "page": page.number,
        "counts": counts,
        "items": [_thread(t, now) for t in page.items],
    }


@router.get("/messages/{int:thread_id}", response=ThreadDetailOut, summary="One conversation")
def get_thread(request: HttpRequest, thread_id: int) -> dict[str, Any]:
    actor = Actor.from_api(request)
    out = _detail(actor, thread_id)
    thread = selectors.staff_thread(actor, thread_id)
    services.mark_read_by_staff(actor, thread)
    audit.record(actor, "message.thread.read", patient_id=thread.patient_id, obj=thread)
    return out


@router.post(
    "/messages/{int:thread_id}/reply",
    response={200: MessageOut, 201: MessageOut},
    summary="Answer the patient (Idempotency-Key header)",
)
def reply(request: HttpRequest, thread_id: int, payload: ReplyIn) -> Status:
    """With an `Idempotency-Key` header a repeat answers 200 with the first message; the same
    key with another text answers 409."""
    actor = Actor.from_api(request)
    sent = services.reply(
        actor, thread_id, body=payload.body, key=request.headers.get("Idempotency-Key", "")
    )
    detail = _detail(actor, thread_id)
    message = next(m for m in detail["messages"] if m["id"] == sent.message.pk)
    return Status(201 if sent.created else 200, message)


@router.post("/messages/{int:thread_id}/assign", response=ThreadOut, summary="Assign")
def assign(request: HttpRequest, thread_id: int, payload: AssignIn) -> dict[str, Any]:
    actor = Actor.from_api(request)
    services.assign(actor, thread_id, payload.to, version=payload.version)
    out = _detail(actor, thread_id)
    out.pop("messages")
    return out


@router.post("/messages/{int:thread_id}/close", response=ThreadOut, summary="Close")
def close(request: HttpRequest, thread_id: int, payload: CloseIn) -> dict[str, Any]:
    actor = Actor.from_api(request)
    services.close(actor, thread_id, version=payload.version)
    out = _detail(actor, thread_id)
    out.pop("messages")
    return out
