"""Communication ↔ messaging.Message: one message of a patient's thread with the care team.

Messages are scoped like the staff inbox: threads of the actor's departments (every one for
organisation admins) whose patient the actor may see. ``payload`` carries the text as
``contentString`` and each attachment as ``contentAttachment`` whose ``url`` is the protected
attachment route of the inbox (it answers only to staff who may see the thread).

Creating a Communication sends a message through the messaging services:

- ``sender`` absent or the actor's own ``Practitioner/<id>``: a care-team reply, in the thread
  ``inResponseTo`` names (a Communication of the thread) or else the patient's latest thread;
  the thread then waits for the patient, who is notified without content.
- ``sender`` the subject ``Patient/<id>``: a message from the patient relayed by a system (the
  portal's own path, audited as the patient and by the staff account that relayed it), so
  urgent words raise the urgent symptom alert as in the portal. Without ``inResponseTo`` it
  starts a new thread, its subject taken from ``topic.text``.

The first ``identifier`` value (8 to 100 letters, digits, ``_.:-``) is the idempotency key: the
same message sent again answers with the first one. Attachments are sent as
``contentAttachment.data`` (base64; JPEG, PNG or PDF, checked like an upload).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.fhir.outcome import FhirError
from careloop.fhir.registry import READ_ONLY, Context, Mapper, SearchParam, instant, register
from careloop.fhir.resources import common as c
from careloop.kit.errors import CareLoopError
from careloop.messaging import selectors as msg_selectors
from careloop.messaging import services as msg_services
from careloop.messaging.models import Message, Thread
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.portal.context import PortalActor

_FIELDS = {
    "body": "payload",
    "file": "payload",
    "subject": "topic",
    "department": "subject",
    "idempotency_key": "identifier",
    "status": "inResponseTo",
}


def _key(resource: dict[str, Any]) -> str | None:
    found = resource.get("identifier")
    for ident in found if isinstance(found, list) else []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"]:
            return str(ident["value"])
    return None


def _payload(resource: dict[str, Any]) -> tuple[str, list[Any]]:
    """The message text and its attachments (as uploaded files) from ``payload``."""
    texts: list[str] = []
    files: list[Any] = []
    found = resource.get("payload")
    for i, part in enumerate(found if isinstance(found, list) else []):
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("contentString"), str):
            texts.append(part["contentString"])
        attachment = part.get("contentAttachment")
        if isinstance(attachment, dict):
            where = f"Communication.payload[{i}].contentAttachment"
            data = attachment.get("data")
            if not isinstance(data, str):
                raise c.not_supported(
                    f"{where}.data",
                    _("Attachments are sent as data (base64); links are not fetched."),
                )
            try:
                content = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise FhirError.of(
                    422, _("This is not base64."), code="value", expression=f"{where}.data"
                ) from None
            name = str(attachment.get("title") or "attachment")
            files.append(SimpleUploadedFile(name, content, str(attachment.get("contentType"))))
    return "\n\n".join(t.strip() for t in texts if t.strip()), files


@register
class CommunicationMapper(Mapper):
    resource_type = "Communication"
    model = Message
    interactions = READ_ONLY | {"create"}
    read_actions = msg_selectors.VIEW
    write_actions = msg_selectors.WRITE
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("created_at")),
        "patient": SearchParam("reference", c.patient_param("thread__patient_id")),
        "subject": SearchParam("reference", c.patient_param("thread__patient_id")),
        "sent": SearchParam("date", lambda r: r.q("created_at")),
    }
    sorts = {"_id": "pk", "sent": "created_at", "_lastUpdated": "created_at"}
    default_sort = ("-created_at", "-pk")
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {
        "status": (),
        "subject": ("thread_id",),
        "topic": ("thread_id",),
        "sender": ("author_kind", "staff_author_id", "caregiver_id"),
        "recipient": ("author_kind", "thread_id"),
        "payload": ("body",),
    }
    # When it was sent and whether urgent words were found are always CareLoop's own.
    generated = frozenset({"sent", "priority"})
    keeps_extra = True

    def visible(self, actor: Actor) -> QuerySet[Any]:
        return (
            Message.objects.filter(thread__in=msg_selectors.staff_threads(actor))
            .select_related("thread", "thread__department", "staff_author")
            .prefetch_related("attachments")
        )

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        return qs.filter(thread__patient_id=patient_id) if patient_id is not None else qs.none()

    def restrict_to_patients(self, qs: QuerySet[Any], patients: QuerySet[Any]) -> QuerySet[Any]:
        """Only the messages of some patients (a group export)."""
        return qs.filter(thread__patient_id__in=patients)

    def patient_id_of(self, obj: Any) -> int | None:
        return int(obj.thread.patient_id)

    def last_updated(self, obj: Any) -> Any:
        return obj.created_at

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        thread = obj.thread
        patient = {"reference": f"Patient/{thread.patient_id}"}
        team: dict[str, Any] = (
            {"reference": f"CareTeam/{thread.care_team_id}", "display": thread.department.name}
            if thread.care_team_id
            else {"display": thread.department.name}
        )
        out: dict[str, Any] = {
            "status": "completed",
            "subject": patient,
            "topic": {"text": thread.subject},
            "sent": instant(obj.created_at),
        }
        if obj.urgent:
            out["priority"] = "urgent"
        if obj.author_kind == Message.Author.STAFF and obj.staff_author_id:
            out["sender"] = {
                "reference": f"Practitioner/{obj.staff_author_id}",
                "display": str(obj.staff_author.display_name or obj.staff_author.username),
            }
            out["recipient"] = [patient]
        elif obj.author_kind == Message.Author.PATIENT:
            out["sender"] = patient
            out["recipient"] = [team]
        elif obj.author_kind == Message.Author.CAREGIVER:
            out["sender"] = {"display": _("Caregiver of the patient")}
            out["recipient"] = [team]
        else:
            out["recipient"] = [patient]
        payload: list[dict[str, Any]] = []
        if obj.body:
            payload.append({"contentString": obj.body})
        for att in sorted(obj.attachments.all(), key=lambda a: a.pk):
            payload.append(
                {
                    "contentAttachment": {
                        "contentType": att.content_type,
                        "url": reverse("messaging:attachment", args=[att.pk]),
                        "title": att.file_name,
                        "size": att.size,
                    }
                }
            )
        if payload:
            out["payload"] = payload
        return out

    def _thread(self, ctx: Context, resource: dict[str, Any], patient_id: int) -> Thread | None:
        """The thread ``inResponseTo`` names (None when it names none)."""
        found = resource.get("inResponseTo")
        refs = found if isinstance(found, list) else []
        if not refs:
            return None
        where = "Communication.inResponseTo[0]"
        ident = c.pk_of(ctx.reference_id(refs[0], "Communication", where))
        earlier = self.visible(ctx.actor).filter(pk=ident).first()
        if earlier is None or earlier.thread.patient_id != patient_id:
            raise FhirError.of(
                422,
                _("This message is not one of the patient's messages you can see."),
                code="value",
                expression=where,
            )
        return earlier.thread  # type: ignore[no-any-return]

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        actor = ctx.actor
        patient_id = c.pk_of(
            ctx.reference_id(resource.get("subject"), "Patient", "Communication.subject")
        )
        if resource.get("status") != "completed":
            raise c.not_supported("Communication.status", _("A message sent here is “completed”."))
        if not patient_selectors.visible_patients(actor).filter(pk=patient_id).exists():
            raise FhirError.of(
                422,
                _("This patient is not within your scope."),
                code="value",
                expression="Communication.subject",
            )
        sender = resource.get("sender")
        from_patient = False
        if isinstance(sender, dict) and sender.get("reference"):
            text = ctx.references.get(str(sender["reference"]), str(sender["reference"]))
            if text == f"Patient/{patient_id}":
                from_patient = True
            elif text != f"Practitioner/{actor.user.pk}":
                raise c.not_supported(
                    "Communication.sender",
                    _("The sender is you (Practitioner) or the patient the message is about."),
                )
        body, files = _payload(resource)
        key = _key(resource)
        thread = self._thread(ctx, resource, patient_id)
        try:
            if from_patient:
                sent = self._from_patient(actor, resource, patient_id, thread, body, files, key)
            else:
                if thread is None:
                    thread = (
                        msg_selectors.staff_threads(actor)
                        .filter(patient_id=patient_id)
                        .order_by("-last_message_at", "-pk")
                        .first()
                    )
                if thread is None:
                    raise FhirError.of(
                        422,
                        _("The patient has no thread to reply in; name one in inResponseTo."),
                        code="required",
                        expression="Communication.inResponseTo",
                    )
                sent = msg_services.reply(actor, thread.pk, body=body, files=files, key=key)
        except CareLoopError as exc:
            raise c.service_error(exc, self.resource_type, _FIELDS) from exc
        row = self.visible(actor).get(pk=sent.message.pk)
        if sent.created:
            self.keep(row, resource)
        return row, sent.created

    def _from_patient(
        self,
        actor: Actor,
        resource: dict[str, Any],
        patient_id: int,
        thread: Thread | None,
        body: str,
        files: list[Any],
        key: str | None,
    ) -> msg_services.Sent:
        patient_selectors.require(actor, Action.CLINICAL_WRITE, patient_id=patient_id)
        if not msg_selectors.can_write(actor):  # pragma: no cover - write_actions say so
            raise FhirError.of(403, _("Your role does not allow this."), code="forbidden")
        relay = PortalActor(
            patient_id=patient_id,
            organisation_id=int(actor.organisation_id or 0),
            session_id=0,
            source=actor.source,
            channel="fhir",
        )
        if thread is None:
            topic = resource.get("topic")
            subject = topic.get("text") if isinstance(topic, dict) else ""
            department = None
            if not actor.is_org_wide:
                department = (
                    pm.PatientDepartment.objects.filter(
                        patient_id=patient_id, department_id__in=actor.department_ids
                    )
                    .order_by("pk")
                    .values_list("department_id", flat=True)
                    .first()
                )
            sent = msg_services.start_thread(
                relay,
                subject=str(subject or ""),
                body=body,
                department_id=department,
                files=files,
                key=key,
            )
        else:
            sent = msg_services.send(relay, thread.pk, body=body, files=files, key=key)
        audit.record(
            actor,
            "message.relay",
            patient_id=patient_id,
            obj=sent.message,
            detail={"thread": sent.message.thread_id, "created": sent.created},
        )
        return sent
