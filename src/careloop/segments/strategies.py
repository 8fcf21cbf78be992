"""What a segment does to its members: applied on entry, undone on leaving.

A segment's ``strategy`` is JSON with a ``kind`` and that kind's parameters:

- ``{"kind": "addon_plan", "template": "<plan code>"}``: enrol the member in an add-on plan
  template (careloop/careplans/data/plans/segment-*.toml); leaving ends that enrolment. A member
  already enrolled in the plan keeps that enrolment, and leaving leaves it alone.
- ``{"kind": "high_risk", "call_task": true}``: set the member's reminder preference
  ``high_risk`` (unanswered reminders get a nurse call and an automated voice call) and open one
  call task for the responsible nurse; leaving restores the previous preference value unless
  another segment still holds it. An entry caused by a risk score is recorded with the risk
  model (careloop.risk.services.record_action).
- ``{"kind": "engagement", "points": 50, "invite": true}``: award points once per entry and
  invite the member to the next expert session of the organisation (an in-app message).
- ``{"kind": "none"}``: membership only.

Everything a strategy changed is returned (and kept in ``Membership.applied``) and audited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, override

from careloop.audit import services as audit
from careloop.segments import models as sm

ACTOR = "segments"
ADDON_PREFIX = "segment-"
CALL_TASK_DUE = timedelta(hours=24)
MAX_POINTS = 1000

KINDS: dict[str, Any] = {
    "none": gettext_lazy("No change to care"),
    "addon_plan": gettext_lazy("Add-on care plan"),
    "high_risk": gettext_lazy("Nurse call and voice reminders"),
    "engagement": gettext_lazy("Points and lecture invitations"),
}


class StrategyError(ValueError):
    pass


def validate(strategy: Any, organisation_id: int | None) -> dict[str, Any]:
    """The strategy cleaned, or StrategyError with a message for the form."""
    from careloop.careplans import services as plan_services

    if strategy in (None, ""):
        return {"kind": "none"}
    if not isinstance(strategy, Mapping):
        raise StrategyError(_("The strategy must be a JSON object with a kind."))
    kind = strategy.get("kind", "none")
    if kind not in KINDS:
        raise StrategyError(
            _("Unknown strategy kind. Use one of: %(kinds)s.") % {"kinds": ", ".join(KINDS)}
        )
    clean: dict[str, Any] = {"kind": kind}
    if kind == "addon_plan":
        code = str(strategy.get("template") or "")
        shipped = bool(code) and shipped_addon(code) is not None
        if (
            not shipped
            and not plan_services.templates_for(organisation_id).filter(code=code).exists()
        ):
            raise StrategyError(
                _("No active plan template with the code %(code)s.") % {"code": code[:50] or "—"}
            )
        clean["template"] = code
    elif kind == "high_risk":
        clean["call_task"] = bool(strategy.get("call_task", True))
    elif kind == "engagement":
        points = strategy.get("points", 0)
        if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= MAX_POINTS:
            raise StrategyError(_("Points must be a whole number from 0 to 1000."))
        clean["points"] = points
        clean["invite"] = bool(strategy.get("invite", False))
    unknown = set(strategy) - {"kind", "template", "call_task", "points", "invite"}
    if unknown:
        raise StrategyError(
            _("Unknown strategy settings: %(keys)s.") % {"keys": ", ".join(sorted(unknown))}
        )
    return clean


def shipped_addon(code: str) -> Path | None:
    """The plan file of an add-on template shipped with the segments, if ``code`` names one."""
    from careloop.careplans import services as plan_services

    if not code.startswith(ADDON_PREFIX) or not code.replace("-", "").isalnum():
        return None
    path = plan_services.DATA_DIR / "plans" / f"{code}.toml"
    return path if path.is_file() else None


def addon_template(organisation_id: int, code: str) -> Any:
    """The add-on plan template the organisation uses; a shipped add-on not loaded yet is
    loaded from its file first."""
    from careloop.careplans import services as plan_services

    tpl = plan_services.templates_for(organisation_id).filter(code=code).first()
    if tpl is None:
        path = shipped_addon(code)
        if path is not None:
            plan_services.save_template(plan_services.read_template_file(path))
            tpl = plan_services.templates_for(organisation_id).filter(code=code).first()
    return tpl


def load_addons() -> list[tuple[str, str]]:
    """Load (or update) every shipped add-on plan template: (code, outcome)."""
    from careloop.careplans import services as plan_services

    results = []
    for path in sorted((plan_services.DATA_DIR / "plans").glob(f"{ADDON_PREFIX}*.toml")):
        tpl, outcome = plan_services.save_template(plan_services.read_template_file(path))
        results.append((tpl.code, outcome))
    return results


def describe(strategy: Mapping[str, Any] | None) -> str:
    """A short text of what the strategy does (lists, the patient panel)."""
    strategy = strategy or {}
    kind = strategy.get("kind", "none")
    if kind == "addon_plan":
        return _("Add-on plan %(code)s") % {"code": strategy.get("template", "")}
    if kind == "high_risk":
        if strategy.get("call_task", True):
            return _("Nurse call task, voice call when reminders go unanswered")
        return _("Voice call and nurse call when reminders go unanswered")
    if kind == "engagement":
        text = _("%(points)s points") % {"points": strategy.get("points", 0)}
        if strategy.get("invite"):
            text += " · " + _("invitation to the next expert session")
        return text
    return str(KINDS["none"])


def _audit(membership: sm.Membership, action: str, detail: dict[str, Any]) -> None:
    audit.append(
        action=action,
        organisation_id=membership.organisation_id,
        patient_id=membership.patient_id,
        object_type="segments.membership",
        object_id=membership.pk,
        actor_name=ACTOR,
        detail={"segment": membership.segment.code, **detail},
    )


# --- apply --------------------------------------------------------------------------------------


def apply(membership: sm.Membership, *, now: datetime, by_risk: bool = False) -> dict[str, Any]:
    """Carry out the segment's strategy for a new member; returns what changed (audited)."""
    strategy = membership.segment.strategy or {}
    kind = strategy.get("kind", "none")
    handler = _APPLY.get(kind)
    if handler is None:
        return {"kind": "none"}
    with transaction.atomic():
        applied = {"kind": kind, **handler(membership, strategy, now, by_risk)}
        _audit(membership, "segment.strategy_apply", applied)
    return applied


def _apply_addon(
    membership: sm.Membership, strategy: Mapping[str, Any], now: datetime, by_risk: bool
) -> dict[str, Any]:
    from careloop.careplans import models as cm
    from careloop.careplans import services as plan_services
    from careloop.kit.errors import CareLoopError

    code = str(strategy.get("template", ""))
    tpl = addon_template(membership.organisation_id, code)
    if tpl is None:
        return {"template": code, "skipped": "no such plan"}
    existing = cm.Enrolment.objects.filter(
        patient_id=membership.patient_id, template=tpl, status=cm.Enrolment.Status.ACTIVE
    ).first()
    if existing is not None:
        return {"template": code, "enrolment": existing.pk, "created": False}
    try:
        enrolment = plan_services._create(
            membership.patient,
            tpl,
            source=cm.Enrolment.Source.RULE,
            anchor_date=None,
            adjustments={},
            department=None,
            now=now,
        )
    except CareLoopError as exc:
        return {"template": code, "skipped": str(exc.message)[:200]}
    return {
        "template": code,
        "enrolment": enrolment.pk,
        "created": True,
        "activities": list(tpl.activities.values_list("code", flat=True)),
    }


def _apply_high_risk(
    membership: sm.Membership, strategy: Mapping[str, Any], now: datetime, by_risk: bool
) -> dict[str, Any]:
    from careloop.alerts import models as am
    from careloop.alerts import services as alert_services
    from careloop.careplans import models as cm

    pref = (
        cm.ReminderPreference.objects.select_for_update()
        .filter(patient_id=membership.patient_id)
        .first()
    )
    created = pref is None
    previous = False if pref is None else pref.high_risk
    if pref is None:
        pref = cm.ReminderPreference(patient_id=membership.patient_id, version=0)
    if not previous:
        pref.high_risk = True
        pref.version += 1
        pref.save()
    out: dict[str, Any] = {
        "previous_high_risk": previous,
        "preference_created": created,
        "preference_changed": not previous,
    }
    if strategy.get("call_task", True):
        with override(membership.patient.preferred_language):
            reason = _("Segment %(name)s: call the patient about their care") % {
                "name": membership.segment.label(membership.patient.preferred_language)
            }
        task = alert_services.open_task(
            organisation_id=membership.organisation_id,
            patient_id=membership.patient_id,
            kind=am.Task.Kind.CALL_PATIENT,
            source_key=f"segment:{membership.pk}:call",
            due_at=now + CALL_TASK_DUE,
            reason=reason,
            role=am.Task.Assignee.NURSE,
        )
        out["task"] = task.pk
    if by_risk:
        out["risk_action"] = _record_risk_action(membership, out.get("task"))
    return out


def _record_risk_action(membership: sm.Membership, task_id: int | None) -> int | None:
    """Tell the risk model that its score put the patient in this segment."""
    try:
        from careloop.risk import services as risk_services
    except ImportError:
        return None
    record = getattr(risk_services, "record_action", None)
    if record is None:
        return None
    action = record(
        membership.patient_id,
        kind="segment_entry",
        detail={
            "segment": membership.segment.code,
            "membership": membership.pk,
            "task": task_id,
            "risk_score": (membership.facts or {}).get("risk_score"),
        },
    )
    return getattr(action, "pk", None)


def _apply_engagement(
    membership: sm.Membership, strategy: Mapping[str, Any], now: datetime, by_risk: bool
) -> dict[str, Any]:
    from careloop.channels.models import OutboxMessage
    from careloop.engagement import models as em
    from careloop.engagement import services as engagement

    out: dict[str, Any] = {}
    points = int(strategy.get("points", 0) or 0)
    if points:
        patient = membership.patient
        engagement.lock_wallet(patient)
        entry = engagement._entry(patient, "segment_bonus", f"segment:{membership.pk}", points, now)
        out["points"] = points if entry is not None else 0
        out["point_entry"] = entry.pk if entry is not None else None
    if strategy.get("invite"):
        session = (
            em.ExpertSession.objects.filter(
                organisation_id=membership.organisation_id, starts_at__gt=now
            )
            .order_by("starts_at")
            .first()
        )
        if session is None:
            out["invitation"] = None
        else:
            patient = membership.patient
            with override(patient.preferred_language):
                local = session.starts_at.astimezone(_zone(patient.time_zone))
                subject = _("Invitation: expert session")
                body = _(
                    "You are invited to the expert session %(topic)s on %(when)s. "
                    "Bring your questions for our specialists."
                ) % {"topic": session.topic, "when": local.strftime("%Y-%m-%d %H:%M")}
            message, _created = OutboxMessage.objects.get_or_create(
                dedupe_key=f"segment-invite:{membership.pk}:{session.pk}",
                defaults={
                    "organisation_id": membership.organisation_id,
                    "patient_id": membership.patient_id,
                    "subject": subject,
                    "body": body,
                    "created_at": now,
                },
            )
            out["invitation"] = {"session": session.pk, "message": message.pk}
    return out


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


_APPLY: dict[str, Callable[[sm.Membership, Mapping[str, Any], datetime, bool], dict[str, Any]]] = {
    "addon_plan": _apply_addon,
    "high_risk": _apply_high_risk,
    "engagement": _apply_engagement,
}


# --- undo ---------------------------------------------------------------------------------------


def undo(membership: sm.Membership, *, now: datetime) -> dict[str, Any]:
    """Undo what ``apply`` changed for a member who leaves; returns what was undone (audited)."""
    applied = membership.applied or {}
    kind = applied.get("kind", "none")
    with transaction.atomic():
        if kind == "addon_plan":
            undone = _undo_addon(membership, applied, now)
        elif kind == "high_risk":
            undone = _undo_high_risk(membership, applied)
        else:
            undone = {}
        if kind != "none":
            _audit(membership, "segment.strategy_undo", {"kind": kind, **undone})
    return {"kind": kind, **undone}


def _undo_addon(
    membership: sm.Membership, applied: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    from careloop.careplans import models as cm
    from careloop.careplans import services as plan_services
    from careloop.reminders import services as reminder_services

    if not applied.get("created") or not applied.get("enrolment"):
        return {"ended": None}
    enrolment = cm.Enrolment.objects.select_for_update().filter(pk=applied["enrolment"]).first()
    if enrolment is None or enrolment.status != cm.Enrolment.Status.ACTIVE:
        return {"ended": None}
    enrolment.status = cm.Enrolment.Status.ENDED
    enrolment.ended_at = now
    enrolment.end_reason = _("The patient left the segment %(code)s.") % {
        "code": membership.segment.code
    }
    enrolment.version += 1
    enrolment.save()
    cancelled = reminder_services.cancel_pending(enrolment.pk, "enrolment_ended")
    plan_services.sync_expectations(enrolment.patient_id)
    return {"ended": enrolment.pk, "cancelled": cancelled}


def _undo_high_risk(membership: sm.Membership, applied: Mapping[str, Any]) -> dict[str, Any]:
    from careloop.careplans import models as cm

    if not applied.get("preference_changed"):
        return {"restored": None}
    others = (
        sm.Membership.objects.filter(
            patient_id=membership.patient_id,
            left_at__isnull=True,
            applied__kind="high_risk",
        )
        .exclude(pk=membership.pk)
        .exists()
    )
    if others:
        return {"restored": None, "kept_for": "another segment"}
    pref = (
        cm.ReminderPreference.objects.select_for_update()
        .filter(patient_id=membership.patient_id)
        .first()
    )
    if pref is None or pref.high_risk == bool(applied.get("previous_high_risk")):
        return {"restored": None}
    pref.high_risk = bool(applied.get("previous_high_risk"))
    pref.version += 1
    pref.save()
    return {"restored": pref.high_risk}
