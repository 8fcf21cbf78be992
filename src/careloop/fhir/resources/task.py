"""Task ↔ alerts.Task: a worklist task (call the patient, review, fix contact details).

``code`` is the task kind (system ``urn:careloop:task-kind``), ``description`` the reason,
``for`` the patient, ``owner`` the assigned staff member ("Practitioner/<n>"), ``performerType``
who the task is meant for (``urn:careloop:task-performer``: nurse, doctor, family_doctor),
``restriction.period.end`` when it is due, ``authoredOn`` when it was opened,
``executionPeriod.end`` and ``lastModified`` when it was closed, ``businessStatus`` the outcome
(``urn:careloop:task-outcome``) and ``note`` the closing note. Status: an open task is
``ready``, a closed one ``completed``, a cancelled one ``cancelled``. Worklist tasks carry no
priority of their own: every task is ``routine`` (alerts, served as Flag, carry theirs).

Writes go through alerts.services, exactly like the worklist: an update that names another
``owner`` assigns the task (to a colleague of the actor's departments), one with status
``completed`` closes it with the outcome in ``businessStatus`` (a code of
``urn:careloop:task-outcome``) and the first ``note`` text. ``cancelled`` cannot be set here
(the worklist cannot cancel a task either). Create opens a follow-up task through the same
service the reminder engine uses, in the actor's department of the patient, audited as
``task.create``. The patient, kind and due time of a task cannot change.

Worklist tasks keep no version counter: ``meta.versionId`` is a number derived from everything
the Task shows (status, owner, outcome, note, due and closing time, kept elements); it changes
whenever any of them does, so a stale If-Match gets 412. It is not a counter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.alerts import models as am
from careloop.alerts import services
from careloop.audit import services as audit
from careloop.fhir.registry import READ_ONLY, Context, Mapper, SearchParam, instant, register
from careloop.fhir.resources import common as c
from careloop.kit.errors import CareLoopError
from careloop.patients import models as pm
from careloop.patients import selectors

KIND_SYSTEM = "urn:careloop:task-kind"
PERFORMER_SYSTEM = "urn:careloop:task-performer"
OUTCOME_SYSTEM = "urn:careloop:task-outcome"
_STATUS_OUT = {"open": "ready", "done": "completed", "cancelled": "cancelled"}
_FIELDS = {"outcome": "businessStatus", "note": "note", "to": "owner", "items": "owner"}


def derived_version(*facts: Any) -> int:
    """A version number made from a row's content: equal content, equal number."""
    digest = hashlib.sha256(json.dumps(facts, default=str, sort_keys=True).encode()).hexdigest()
    return int(digest[:8], 16) or 1


def reference_pk(raw: str, target: str) -> Q:
    from careloop.fhir.search import reference_id

    return Q(pk__in=[]) if not (ident := reference_id(raw, target)) else Q(pk=c.pk_of(ident))


def _status(system: str | None, value: str) -> Q:
    if system not in (None, "", "http://hl7.org/fhir/task-status"):
        return Q(pk__in=[])
    wanted = [k for k, v in _STATUS_OUT.items() if v == value]
    return Q(status__in=wanted) if wanted else Q(pk__in=[])


def _owner(raw: str) -> Q:
    from careloop.fhir.search import reference_id

    ident = reference_id(raw, "Practitioner")
    return Q(assignee_id=c.pk_of(ident)) if ident else Q(pk__in=[])


def _priority(system: str | None, value: str) -> Q:
    return Q(pk__isnull=False) if value == "routine" else Q(pk__in=[])


def _business_status(system: str | None, value: str) -> Q:
    return Q(outcome=value) if system in (None, "", OUTCOME_SYSTEM) else Q(pk__in=[])


def _code(system: str | None, value: str) -> Q:
    return Q(kind=value) if system in (None, "", KIND_SYSTEM) else Q(pk__in=[])


def _kind_of(concept: Any) -> str | None:
    for coding in c.codings(concept):
        if coding.get("system") == KIND_SYSTEM and coding.get("code") in am.Task.Kind.values:
            return str(coding["code"])
    return None


def _first_note(resource: dict[str, Any]) -> str:
    for note in resource.get("note") or []:
        if isinstance(note, dict) and isinstance(note.get("text"), str):
            return str(note["text"]).strip()
    return ""


def _owner_pk(ctx: Context, resource: dict[str, Any]) -> int | None:
    owner = resource.get("owner")
    if owner is None:
        return None
    return c.pk_of(ctx.reference_id(owner, "Practitioner", "Task.owner"))


@register
class TaskMapper(Mapper):
    resource_type = "Task"
    model = am.Task
    interactions = READ_ONLY | {"create", "update"}
    read_actions = (Action.PATIENT_VIEW, Action.TASK_WORK)
    write_actions = (Action.PATIENT_VIEW, Action.TASK_WORK)
    keeps_extra = True
    search_params = {
        "_id": SearchParam("token", lambda s, v: c.id_param()(v)),
        "_lastUpdated": SearchParam("date", c.last_updated_param("changed")),
        "patient": SearchParam("reference", c.patient_param()),
        "subject": SearchParam("reference", c.patient_param()),
        "owner": SearchParam("reference", _owner),
        "status": SearchParam("token", _status),
        "priority": SearchParam("token", _priority, "every worklist task is routine"),
        "business-status": SearchParam("token", _business_status),
        "code": SearchParam("token", _code),
        "authored-on": SearchParam("date", lambda r: r.q("created_at")),
        "modified": SearchParam("date", lambda r: r.q("changed")),
        "period": SearchParam(
            "date", lambda r: r.q("closed_at"), "executionPeriod: when the task was closed"
        ),
    }
    sorts = {"_id": "pk", "_lastUpdated": "changed", "authored-on": "created_at"}
    include_targets = {"patient": "Patient", "subject": "Patient"}
    elements = {"description": ("reason",), "note": ("note",), "businessStatus": ("outcome",)}
    generated = frozenset(
        {
            "status", "intent", "priority", "code", "for", "owner", "performerType",
            "authoredOn", "lastModified", "executionPeriod", "restriction",
        }
    )  # fmt: skip

    def visible(self, actor: Actor) -> QuerySet[Any]:
        """The worklist's scope: the tasks of the actor's departments (all, for an org admin)."""
        qs = services.visible_tasks(actor)
        if actor.bound_patient_id is not None:
            qs = qs.filter(patient_id=actor.bound_patient_id)
        return qs.annotate(changed=Coalesce("closed_at", "created_at"))

    def version_of(self, obj: Any) -> int:
        return derived_version(
            obj.status, obj.assignee_id, obj.outcome, obj.note, obj.reason,
            obj.due_at, obj.closed_at, obj.fhir_extra,
        )  # fmt: skip

    def last_updated(self, obj: Any) -> dt.datetime:
        return obj.closed_at or obj.created_at  # type: ignore[no-any-return]

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": _STATUS_OUT.get(obj.status, "ready"),
            "intent": "order",
            "priority": "routine",
            "code": {
                "coding": [
                    {"system": KIND_SYSTEM, "code": obj.kind, "display": obj.get_kind_display()}
                ]
            },
        }
        if obj.outcome:
            out["businessStatus"] = {"coding": [{"system": OUTCOME_SYSTEM, "code": obj.outcome}]}
        if obj.reason:
            out["description"] = obj.reason
        out["for"] = {"reference": f"Patient/{obj.patient_id}"}
        if obj.closed_at is not None:
            out["executionPeriod"] = {"end": instant(obj.closed_at)}
        out["authoredOn"] = instant(obj.created_at)
        out["lastModified"] = instant(obj.closed_at or obj.created_at)
        out["performerType"] = [
            {
                "coding": [
                    {
                        "system": PERFORMER_SYSTEM,
                        "code": obj.assignee_role,
                        "display": obj.get_assignee_role_display(),
                    }
                ]
            }
        ]
        if obj.assignee_id is not None:
            out["owner"] = {"reference": f"Practitioner/{obj.assignee_id}"}
        if obj.note:
            out["note"] = [{"text": obj.note}]
        out["restriction"] = {"period": {"end": instant(obj.due_at)}}
        return out

    # --- writes -------------------------------------------------------------------------

    def _reload(self, actor: Actor, pk: int) -> Any:
        return self.visible(actor).get(pk=pk)

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        actor = ctx.actor
        patient_id = c.pk_of(ctx.reference_id(resource.get("for"), "Patient", "Task.for"))
        if resource.get("status") not in ("requested", "ready"):
            raise c.not_supported("Task.status", _("A new task must be requested or ready."))
        kind = _kind_of(resource.get("code"))
        if kind is None:
            raise c.required("Task.code")
        restriction = resource.get("restriction")
        period = restriction.get("period") if isinstance(restriction, dict) else None
        end = period.get("end") if isinstance(period, dict) else None
        due = parse_datetime(end) if isinstance(end, str) else None
        if due is None or due.tzinfo is None:
            raise c.required("Task.restriction.period.end")
        owner = _owner_pk(ctx, resource)
        try:
            patient = selectors.get_patient(
                actor, patient_id, action=Action.TASK_WORK, audit_read=False
            )
        except CareLoopError as exc:
            raise c.service_error(exc, "Task", _FIELDS) from exc
        links = pm.PatientDepartment.objects.filter(patient=patient).order_by("pk")
        if not actor.is_org_wide:
            links = links.filter(department_id__in=actor.department_ids)
        department_id = links.values_list("department_id", flat=True).first()
        description = resource.get("description")
        task = services.open_task(
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            kind=kind,
            source_key=f"fhir:{uuid.uuid4()}",
            due_at=due,
            reason=description if isinstance(description, str) else "",
            department_id=department_id,
        )
        audit.record(actor, "task.create", patient_id=patient.pk, obj=task, detail={"kind": kind})
        if owner is not None and owner != task.assignee_id:
            self._assign(actor, task.pk, owner)
        row = self._reload(actor, task.pk)
        self.keep(row, resource)
        return row, True

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        actor = ctx.actor
        patient_id = c.pk_of(ctx.reference_id(resource.get("for"), "Patient", "Task.for"))
        if patient_id != obj.patient_id:
            raise c.not_supported("Task.for", _("A task cannot be moved to another patient."))
        if _kind_of(resource.get("code")) != obj.kind:
            raise c.not_supported("Task.code", _("The kind of a task cannot change."))
        status = resource.get("status")
        current = _STATUS_OUT.get(obj.status)
        if obj.status == am.Task.Status.OPEN:
            allowed = ("requested", "ready", "accepted", "in-progress", "completed")
            if status not in allowed:
                raise c.not_supported(
                    "Task.status", _("An open task can be left open or completed.")
                )
        elif status != current:
            raise c.not_supported("Task.status", _("A closed task cannot change its status."))
        owner = _owner_pk(ctx, resource)
        if owner is not None and owner != obj.assignee_id:
            if obj.status != am.Task.Status.OPEN:
                raise c.not_supported("Task.owner", _("A closed task cannot be reassigned."))
            self._assign(actor, obj.pk, owner)
        elif owner is None and obj.assignee_id is not None:
            raise c.not_supported("Task.owner", _("A task cannot be left without an owner."))
        if status == "completed" and obj.status == am.Task.Status.OPEN:
            outcome = ""
            for coding in c.codings(resource.get("businessStatus")):
                if coding.get("system") in (None, OUTCOME_SYSTEM):
                    outcome = str(coding.get("code") or "")
            if not outcome:
                raise c.required("Task.businessStatus")
            try:
                services.close_task(actor, obj.pk, outcome=outcome, note=_first_note(resource))
            except CareLoopError as exc:
                raise c.service_error(exc, "Task", _FIELDS) from exc
        row = self._reload(actor, obj.pk)
        self.keep(row, resource)
        return row

    def _assign(self, actor: Actor, task_id: int, staff_id: int) -> None:
        try:
            moved = services.assign(actor, task_ids=[task_id], to=staff_id)
        except CareLoopError as exc:
            raise c.service_error(exc, "Task", _FIELDS) from exc
        if moved != 1:
            raise c.not_supported("Task.owner", _("The task could not be reassigned."))
