"""Every write of care plans: loading templates, enrolment (by staff or rule), recomputation."""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Organisation
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.careplans import domain, planning
from careloop.careplans import models as cm
from careloop.channels.port import ChannelKind
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors
from careloop.reminders import services as reminder_services

log = logging.getLogger("careloop.careplans")

DATA_DIR = Path(__file__).resolve().parent / "data"
CHANNELS = [k.value for k in ChannelKind]
ACTIVITY_FIELDS = (
    "kind",
    "title",
    "title_en",
    "schedule",
    "channels",
    "escalation",
    "applicability",
    "measurement",
    "call_by",
)


# --- templates ---------------------------------------------------------------------------------


def validate_activity(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Field errors of one activity definition (empty when valid)."""
    errors: dict[str, list[str]] = {}
    code = str(data.get("code", ""))
    if not code or not code.replace("-", "").replace("_", "").isalnum() or len(code) > 50:
        errors["code"] = [_("Use letters, digits and hyphens (at most 50).")]
    kind = data.get("kind")
    if kind not in cm.ActivityKind.values:
        errors["kind"] = [_("Unknown kind of activity.")]
    if not str(data.get("title", "")).strip():
        errors["title"] = [_("A title is required.")]
    channels = data.get("channels", [])
    if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
        errors["channels"] = [_("Channels must be a list of: %s") % ", ".join(CHANNELS)]
    try:
        domain.validate_schedule(data.get("schedule") or {}, kind=str(kind))
    except domain.ScheduleError as exc:
        errors["schedule"] = [str(exc)]
    try:
        domain.validate_escalation(data.get("escalation", []), CHANNELS)
    except domain.ScheduleError as exc:
        errors["escalation"] = [str(exc)]
    if data.get("call_by", "") not in ("", "nurse", "doctor", "family_doctor"):
        errors["call_by"] = [_("nurse, doctor or family_doctor")]
    return errors


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def read_template_file(path: Path) -> dict[str, Any]:
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            _("%(file)s cannot be read: %(error)s") % {"file": path.name, "error": exc}
        ) from exc
    problems: dict[str, list[str]] = {}
    for key in ("code", "name"):
        if not spec.get(key):
            problems[key] = [_("required")]
    if spec.get("anchor", "enrolment") not in domain.ANCHORS:
        problems["anchor"] = [_("one of %s") % ", ".join(domain.ANCHORS)]
    codes = set()
    for n, act in enumerate(spec.get("activities", []), start=1):
        for field, messages in validate_activity(act).items():
            problems[f"activities[{n}].{field}"] = messages
        if act.get("code") in codes:
            problems[f"activities[{n}].code"] = [_("duplicate code")]
        codes.add(act.get("code"))
    if not spec.get("activities"):
        problems["activities"] = [_("a plan needs at least one activity")]
    if problems:
        raise ValidationFailed(
            _("%(file)s is not a valid plan template.") % {"file": path.name}, details=problems
        )
    return spec


def save_template(
    spec: Mapping[str, Any],
    *,
    organisation: Organisation | None = None,
    now: datetime | None = None,
) -> tuple[cm.PlanTemplate, str]:
    """Create or update a template from its definition. Returns (template, created|updated|same).

    A changed definition bumps the version and recomputes future occurrences of every active
    enrolment in it; past occurrences are left as they were.
    """
    digest = _digest(spec)
    with transaction.atomic():
        tpl = (
            cm.PlanTemplate.objects.select_for_update()
            .filter(organisation=organisation, code=spec["code"])
            .first()
        )
        if tpl is not None and tpl.source_digest == digest:
            return tpl, "same"
        outcome = "updated" if tpl else "created"
        if tpl is None:
            tpl = cm.PlanTemplate(organisation=organisation, code=spec["code"], version=0)
        tpl.version += 1
        tpl.name = spec["name"]
        tpl.name_en = spec.get("name_en", "")
        tpl.description = spec.get("description", "")
        tpl.description_en = spec.get("description_en", "")
        tpl.anchor = spec.get("anchor", "enrolment")
        tpl.applicability = spec.get("applicability", {})
        tpl.active = spec.get("active", True)
        tpl.source_digest = digest
        tpl.save()
        keep = []
        for position, act in enumerate(spec["activities"]):
            values = {
                f: act.get(f, [] if f in ("channels", "escalation") else "")
                for f in ACTIVITY_FIELDS
            }
            values["schedule"] = act.get("schedule", {})
            values["applicability"] = act.get("applicability", {})
            values["position"] = position
            cm.PlanActivity.objects.update_or_create(
                template=tpl, code=act["code"], defaults=values
            )
            keep.append(act["code"])
        tpl.activities.exclude(code__in=keep).delete()
        if outcome == "updated":
            template_changed(tpl, now=now)
    return tpl, outcome


def template_spec(tpl: cm.PlanTemplate) -> dict[str, Any]:
    """The definition of a template as it stands in the database (for admin edits)."""
    return {
        "code": tpl.code,
        "name": tpl.name,
        "name_en": tpl.name_en,
        "description": tpl.description,
        "description_en": tpl.description_en,
        "anchor": tpl.anchor or "enrolment",
        "applicability": tpl.applicability,
        "active": tpl.active,
        "activities": [
            {"code": a.code, **{f: getattr(a, f) for f in ACTIVITY_FIELDS}}
            for a in tpl.activities.all()
        ],
    }


def template_changed(tpl: cm.PlanTemplate, *, now: datetime | None = None) -> int:
    """Recompute the future of every active enrolment in a template that has just changed."""
    now = now or utc_now()
    count = 0
    for enrolment in cm.Enrolment.objects.filter(template=tpl, status=cm.Enrolment.Status.ACTIVE):
        recompute(enrolment, now=now)
        count += 1
    return count


def load_templates(directory: Path | None = None) -> list[tuple[str, str]]:
    """Load every plan file (shared templates); returns (code, outcome) per file."""
    directory = directory or DATA_DIR / "plans"
    results = []
    for path in sorted(directory.glob("*.toml")):
        spec = read_template_file(path)
        tpl, outcome = save_template(spec)
        results.append((tpl.code, outcome))
    return results


def install_default_rules(organisation: Organisation) -> int:
    """Create the default enrolment rules for an organisation that has none."""
    if cm.EnrolmentRule.objects.filter(organisation=organisation).exists():
        return 0
    spec = tomllib.loads((DATA_DIR / "rules.toml").read_text(encoding="utf-8"))
    created = 0
    for item in spec.get("rules", []):
        tpl = templates_for(organisation.pk).filter(code=item["template"]).first()
        if tpl is None:
            continue
        rule = cm.EnrolmentRule.objects.create(
            organisation=organisation,
            template=tpl,
            trigger=item["trigger"],
            icd10_prefixes=item.get("icd10_prefixes", []),
            encounter_kinds=item.get("encounter_kinds", []),
        )
        codes = item.get("departments", [])
        if codes:
            rule.departments.set(
                Department.objects.filter(organisation=organisation, code__in=codes)
            )
        created += 1
    return created


def templates_for(organisation_id: int | None) -> Any:
    """Templates an organisation can use: its own, and shared ones it has not replaced."""
    org = organisation_id or 0  # no organisation: shared templates only
    own = cm.PlanTemplate.objects.filter(organisation_id=org)
    return cm.PlanTemplate.objects.filter(
        Q(organisation_id=org) | Q(organisation__isnull=True) & ~Q(code__in=own.values("code"))
    ).filter(active=True)


# --- enrolment ---------------------------------------------------------------------------------


def _activities(tpl: cm.PlanTemplate) -> list[dict[str, Any]]:
    return [planning.activity_dict(a) for a in tpl.activities.all()]


def horizon_end(organisation_id: int, now: datetime) -> datetime:
    days = reminder_services.settings_for(organisation_id).horizon_days
    return now + timedelta(days=days)


def _clean_adjustments(tpl: cm.PlanTemplate, adjustments: Any) -> dict[str, Any]:
    if adjustments in (None, ""):
        return {}
    if not isinstance(adjustments, Mapping):
        raise ValidationFailed(details={"adjustments": [_("must be an object per activity")]})
    codes = {a.code: a for a in tpl.activities.all()}
    clean: dict[str, Any] = {}
    for code, change in adjustments.items():
        if code not in codes or not isinstance(change, Mapping):
            raise ValidationFailed(details={"adjustments": [_("unknown activity %s") % code]})
        item: dict[str, Any] = {}
        if change.get("off"):
            item["off"] = True
        if change.get("times"):
            try:
                item["times"] = [domain.parse_time(t).strftime("%H:%M") for t in change["times"]]
            except domain.ScheduleError as exc:
                raise ValidationFailed(details={f"{code}.times": [str(exc)]}) from exc
        if change.get("time"):
            try:
                item["time"] = domain.parse_time(change["time"]).strftime("%H:%M")
            except domain.ScheduleError as exc:
                raise ValidationFailed(details={f"{code}.time": [str(exc)]}) from exc
        if item:
            clean[code] = item
    return clean


@dataclass(frozen=True)
class PreviewItem:
    local: datetime
    activity_code: str
    kind: str
    title: str
    detail: str


def preview(
    actor: Actor,
    patient_id: int,
    template_id: int,
    *,
    anchor_date: date | None = None,
    adjustments: Any = None,
    days: int = 14,
    now: datetime | None = None,
) -> list[PreviewItem]:
    """The calendar an enrolment would produce over the next days, without writing anything."""
    patient_selectors.require(actor, Action.CAREPLAN_ENROL, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    tpl = templates_for(actor.organisation_id).filter(pk=template_id).first()
    if tpl is None:
        raise NotFound(_("No such plan."))
    now = now or utc_now()
    ctx = planning.context_for(patient, now.date())
    rows = planning.plan_rows(
        enrolment_id="preview",
        activities=_activities(tpl),
        adjustments=_clean_adjustments(tpl, adjustments),
        ctx=ctx,
        enrolled_on=domain.local_of(now, ctx.tz).date(),
        anchor_date=anchor_date,
        template_anchor=tpl.anchor,
        start=now,
        end=now + timedelta(days=max(1, min(days, 90))),
    )
    lang = actor.user.language or "zh-hans"
    return [
        PreviewItem(
            local=r.local,
            activity_code=r.activity_code,
            kind=r.kind,
            title=(r.payload.get("title_en") if lang == "en" else None) or r.payload["title"],
            detail=" ".join(str(r.payload.get(k, "")) for k in ("medication", "dose")).strip(),
        )
        for r in rows
    ]


def materialise(enrolment: cm.Enrolment, *, start: datetime, end: datetime) -> int:
    """Insert the occurrences of an enrolment in [start, end); existing keys are kept."""
    patient = enrolment.patient
    ctx = planning.context_for(patient, start.date())
    tpl = enrolment.template
    rows = planning.plan_rows(
        enrolment_id=enrolment.pk,
        activities=_activities(tpl),
        adjustments=enrolment.adjustments or {},
        ctx=ctx,
        enrolled_on=enrolment.starts_on,
        anchor_date=enrolment.anchor_date,
        template_anchor=tpl.anchor,
        start=start,
        end=end,
    )
    count = reminder_services.insert_occurrences(
        planning.occurrence_values(r, ctx, enrolment.pk) for r in rows
    )
    cm.Enrolment.objects.filter(pk=enrolment.pk).update(materialised_until=end)
    enrolment.materialised_until = end
    return count


def materialise_many(enrolments: Sequence[cm.Enrolment], *, start: datetime, end: datetime) -> int:
    """``materialise`` for many enrolments at once: a fixed number of queries per call.

    Same rows as materialising each enrolment on its own; used by ``top_up`` and bulk loads.
    """
    if not enrolments:
        return 0
    patients = {e.patient_id: e.patient for e in enrolments}
    contexts = planning.contexts_for(list(patients.values()), start.date())
    template_ids = {e.template_id for e in enrolments}
    activities: dict[int, list[dict[str, Any]]] = {pk: [] for pk in template_ids}
    anchors = dict(cm.PlanTemplate.objects.filter(pk__in=template_ids).values_list("pk", "anchor"))
    for act in cm.PlanActivity.objects.filter(template_id__in=template_ids):
        activities[act.template_id].append(planning.activity_dict(act))

    def values() -> Iterable[dict[str, Any]]:
        for enrolment in enrolments:
            ctx = contexts[enrolment.patient_id]
            rows = planning.plan_rows(
                enrolment_id=enrolment.pk,
                activities=activities[enrolment.template_id],
                adjustments=enrolment.adjustments or {},
                ctx=ctx,
                enrolled_on=enrolment.starts_on,
                anchor_date=enrolment.anchor_date,
                template_anchor=anchors[enrolment.template_id],
                start=start,
                end=end,
            )
            for r in rows:
                yield planning.occurrence_values(r, ctx, enrolment.pk)

    count = reminder_services.insert_occurrences(values())
    cm.Enrolment.objects.filter(pk__in=[e.pk for e in enrolments]).update(materialised_until=end)
    for enrolment in enrolments:
        enrolment.materialised_until = end
    return count


def recompute(enrolment: cm.Enrolment, *, now: datetime | None = None) -> int:
    """Plan the future again after a change; the past and anything in flight stay as they are."""
    now = now or utc_now()
    with transaction.atomic():
        locked = (
            cm.Enrolment.objects.select_for_update()
            .select_related("patient", "template")
            .get(pk=enrolment.pk)
        )
        if locked.status != cm.Enrolment.Status.ACTIVE:
            return 0
        reminder_services.drop_future(locked.pk, now)
        end = max(locked.materialised_until or now, horizon_end(locked.organisation_id, now))
        made = materialise(locked, start=now, end=end)
        sync_expectations(locked.patient_id)
        return made


def _has_consentable_channel(patient: pm.Patient) -> bool:
    return pm.Consent.objects.filter(
        patient=patient, deleted_at__isnull=True, purpose="care_reminders", granted=True
    ).exists()


def enrol(
    actor: Actor,
    patient_id: int,
    template_id: int,
    *,
    anchor_date: date | None = None,
    adjustments: Any = None,
    department_id: int | None = None,
    now: datetime | None = None,
) -> cm.Enrolment:
    """Enrol a patient (staff): the enrolment and its first occurrences in one transaction."""
    patient_selectors.require(actor, Action.CAREPLAN_ENROL, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    tpl = templates_for(actor.organisation_id).filter(pk=template_id).first()
    if tpl is None:
        raise NotFound(_("No such plan."))
    if tpl.anchor == "discharge" and anchor_date is None:
        discharge = planning.context_for(patient, (now or utc_now()).date()).facts.discharge
        if discharge is None:
            raise ValidationFailed(
                details={"anchor_date": [_("This plan counts from discharge: give the date.")]}
            )
    department = None
    if department_id:
        links = pm.PatientDepartment.objects.filter(patient=patient, department_id=department_id)
        if not links.exists():
            raise ValidationFailed(
                details={"department": [_("The patient is not in this department.")]}
            )
        department = Department.objects.get(pk=department_id)
    enrolment = _create(
        patient,
        tpl,
        source=cm.Enrolment.Source.STAFF,
        anchor_date=anchor_date,
        adjustments=_clean_adjustments(tpl, adjustments),
        department=department,
        user=actor.user,
        now=now,
    )
    audit.record(
        actor,
        "careplan.enrol",
        patient_id=patient.pk,
        obj=enrolment,
        detail={"template": tpl.code, "version": tpl.version},
    )
    return enrolment


def _create(
    patient: pm.Patient,
    tpl: cm.PlanTemplate,
    *,
    source: str,
    anchor_date: date | None,
    adjustments: dict[str, Any],
    department: Department | None,
    user: Any = None,
    rule: cm.EnrolmentRule | None = None,
    now: datetime | None = None,
) -> cm.Enrolment:
    now = now or utc_now()
    tz = domain.zone(patient.time_zone)
    if department is None:
        link = pm.PatientDepartment.objects.filter(patient=patient).order_by("id").first()
        department = link.department if link else None
    try:
        with transaction.atomic():
            enrolment = cm.Enrolment.objects.create(
                organisation_id=patient.organisation_id,
                patient=patient,
                template=tpl,
                template_version=tpl.version,
                department=department,
                source=source,
                rule=rule,
                anchor_date=anchor_date,
                starts_on=domain.local_of(now, tz).date(),
                adjustments=adjustments,
                enrolled_by=user,
            )
            materialise(enrolment, start=now, end=horizon_end(patient.organisation_id, now))
            sync_expectations(patient.pk)
    except IntegrityError as exc:
        raise Conflict(_("The patient is already enrolled in this plan.")) from exc
    return enrolment


def get_enrolment(
    actor: Actor, enrolment_id: int, *, action: Action = Action.CLINICAL_VIEW
) -> cm.Enrolment:
    enrolment = (
        cm.Enrolment.objects.select_related("template", "patient")
        .filter(pk=enrolment_id, organisation_id=actor.organisation_id or 0)
        .first()
    )
    if enrolment is None:
        raise NotFound()
    patient_selectors.require(actor, action, patient_id=enrolment.patient_id)
    patient_selectors.get_patient(actor, enrolment.patient_id, audit_read=False)
    return enrolment


def end_enrolment(
    actor: Actor, enrolment_id: int, *, reason: str, expected: Any = None
) -> cm.Enrolment:
    """End an enrolment: pending reminders are cancelled, the past is kept."""
    enrolment = get_enrolment(actor, enrolment_id, action=Action.CAREPLAN_ENROL)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(details={"reason": [_("Say why the enrolment ends.")]})
    with transaction.atomic():
        locked = cm.Enrolment.objects.select_for_update().get(pk=enrolment.pk)
        if expected not in (None, "") and str(locked.version) != str(expected):
            raise StaleVersion()
        if locked.status != cm.Enrolment.Status.ACTIVE:
            raise Conflict(_("This enrolment has already ended."))
        now = utc_now()
        locked.status = cm.Enrolment.Status.ENDED
        locked.ended_at = now
        locked.ended_by = actor.user
        locked.end_reason = reason[:200]
        locked.version += 1
        locked.save()
        cancelled = reminder_services.cancel_pending(locked.pk, "enrolment_ended")
        sync_expectations(locked.patient_id)
        audit.record(
            actor,
            "careplan.end",
            patient_id=locked.patient_id,
            obj=locked,
            detail={"cancelled": cancelled},
        )
    return locked


def adjust(actor: Actor, enrolment_id: int, adjustments: Any, expected: Any) -> cm.Enrolment:
    """Change an enrolment's per-activity adjustments; the future is recomputed."""
    enrolment = get_enrolment(actor, enrolment_id, action=Action.CAREPLAN_ENROL)
    clean = _clean_adjustments(enrolment.template, adjustments)
    with transaction.atomic():
        locked = cm.Enrolment.objects.select_for_update().get(pk=enrolment.pk)
        if str(locked.version) != str(expected):
            raise StaleVersion()
        if locked.status != cm.Enrolment.Status.ACTIVE:
            raise Conflict(_("This enrolment has already ended."))
        locked.adjustments = clean
        locked.version += 1
        locked.save(update_fields=["adjustments", "version"])
        recompute(locked)
        audit.record(actor, "careplan.adjust", patient_id=locked.patient_id, obj=locked)
    return locked


# --- rules -------------------------------------------------------------------------------------


def apply_rules(patient: pm.Patient, *, now: datetime | None = None) -> list[cm.Enrolment]:
    """Enrol a patient in every plan whose rule has become true for them."""
    now = now or utc_now()
    if not patient.is_active:
        return []
    made = []
    ctx = planning.context_for(patient, now.date())
    rules = cm.EnrolmentRule.objects.filter(
        organisation_id=patient.organisation_id, active=True, template__active=True
    ).select_related("template")
    for rule in rules:
        found = _rule_anchor(rule, patient, ctx)
        if found is False:
            continue
        anchor = found if isinstance(found, date) else None
        if cm.Enrolment.objects.filter(
            patient=patient, template=rule.template, status=cm.Enrolment.Status.ACTIVE
        ).exists():
            continue
        if (
            rule.trigger == cm.EnrolmentRule.Trigger.DISCHARGE
            and cm.Enrolment.objects.filter(
                patient=patient, template=rule.template, anchor_date=anchor
            ).exists()
        ):
            continue  # this discharge already produced its follow-up, even if it ended
        try:
            enrolment = _create(
                patient,
                rule.template,
                source=cm.Enrolment.Source.RULE,
                anchor_date=anchor,
                adjustments={},
                department=None,
                rule=rule,
                now=now,
            )
        except Conflict:
            continue
        audit.append(
            action="careplan.enrol",
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            object_type="careplans.enrolment",
            object_id=enrolment.pk,
            actor_name="rule",
            detail={"rule": rule.pk, "template": rule.template.code},
        )
        made.append(enrolment)
    return made


def _rule_anchor(
    rule: cm.EnrolmentRule, patient: pm.Patient, ctx: planning.PatientContext
) -> date | bool | None:
    """False when the rule does not hold; otherwise the anchor date it implies (or None)."""
    if rule.trigger == cm.EnrolmentRule.Trigger.CONDITION:
        if any(domain.code_matches(c, rule.icd10_prefixes) for c in ctx.facts.icd10_codes):
            return None
        return False
    visits = pm.Encounter.objects.filter(
        patient=patient, deleted_at__isnull=True, discharged_on__isnull=False
    )
    if rule.encounter_kinds:
        visits = visits.filter(kind__in=rule.encounter_kinds)
    departments = list(rule.departments.values_list("pk", flat=True))
    if departments:
        visits = visits.filter(department_id__in=departments)
    latest = visits.order_by("-discharged_on").values_list("discharged_on", flat=True).first()
    if latest is None or (
        ctx.facts.discharge and latest < ctx.facts.discharge - timedelta(days=30)
    ):
        return False
    return latest


def top_up(now: datetime | None = None, *, limit: int = 500) -> int:
    """Extend active enrolments to the rolling horizon. Safe to run from many workers."""
    now = now or utc_now()
    count = 0
    due = (
        cm.Enrolment.objects.filter(status=cm.Enrolment.Status.ACTIVE)
        .filter(
            Q(materialised_until__isnull=True) | Q(materialised_until__lt=now + timedelta(days=1))
        )
        .select_related("patient", "template")[:limit]
    )
    for enrolment in due:
        with transaction.atomic():
            locked = cm.Enrolment.objects.select_for_update().filter(pk=enrolment.pk).first()
            if locked is None or locked.materialised_until != enrolment.materialised_until:
                continue  # another worker got there first
            start = max(enrolment.materialised_until or now, now)
            count += materialise(
                enrolment, start=start, end=horizon_end(enrolment.organisation_id, now)
            )
    return count


def on_record_changed(patient: pm.Patient, kind: str, now: datetime | None = None) -> None:
    """React to a clinical change: rules may now hold, prescriptions change dose reminders."""
    now = now or utc_now()
    if kind in ("conditions", "visits"):
        apply_rules(patient, now=now)
    if kind in ("medications", "conditions", "visits"):
        for enrolment in cm.Enrolment.objects.filter(
            patient=patient, status=cm.Enrolment.Status.ACTIVE
        ):
            recompute(enrolment, now=now)


def on_patient_changed(patient: pm.Patient, fields: Iterable[str]) -> None:
    if set(fields) & {"time_zone", "date_of_birth", "sex", "deceased_on"}:
        for enrolment in cm.Enrolment.objects.filter(
            patient=patient, status=cm.Enrolment.Status.ACTIVE
        ):
            if patient.deceased_on:
                reminder_services.cancel_pending(enrolment.pk, "patient_deceased")
            else:
                recompute(enrolment)


# --- preferences -------------------------------------------------------------------------------

PREFERENCE_FIELDS = (
    "dose_times",
    "channels",
    "daily_cap",
    "elderly",
    "high_risk",
    "email",
    "wechat_openid",
    "push_subscription",
)


def preference_for(patient: pm.Patient) -> cm.ReminderPreference:
    pref = cm.ReminderPreference.objects.filter(patient=patient).first()
    return pref or cm.ReminderPreference(patient=patient)


def set_preferences(
    actor: Actor, patient_id: int, data: Mapping[str, Any], expected: Any
) -> cm.ReminderPreference:
    """Change how a patient is reminded; future occurrences follow at once."""
    patient_selectors.require(actor, Action.PATIENT_UPDATE, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if "dose_times" in data:
        times = data["dose_times"] or {}
        if not isinstance(times, Mapping):
            errors["dose_times"] = [_("must map a frequency to a list of times")]
        else:
            out = {}
            for freq, values in times.items():
                if freq not in domain.DOSE_TIMES or not isinstance(values, list) or not values:
                    errors["dose_times"] = [_("unknown frequency %s") % freq]
                    continue
                try:
                    out[freq] = [domain.parse_time(v).strftime("%H:%M") for v in values]
                except domain.ScheduleError as exc:
                    errors["dose_times"] = [str(exc)]
            clean["dose_times"] = out
    if "channels" in data:
        chans = data["channels"] or {}
        if not isinstance(chans, Mapping) or any(
            k not in cm.ActivityKind.values
            or not isinstance(v, list)
            or any(c not in CHANNELS for c in v)
            for k, v in chans.items()
        ):
            errors["channels"] = [_("must map an activity kind to a list of channels")]
        else:
            clean["channels"] = dict(chans)
    if "daily_cap" in data:
        cap = data["daily_cap"]
        if cap in (None, ""):
            clean["daily_cap"] = None
        elif not str(cap).isdigit() or not 1 <= int(cap) <= 50:
            errors["daily_cap"] = [_("a whole number from 1 to 50")]
        else:
            clean["daily_cap"] = int(cap)
    for flag in ("elderly", "high_risk"):
        if flag in data:
            clean[flag] = data[flag] in (True, "true", "on", "1", 1)
    if "email" in data:
        email = str(data["email"] or "").strip()
        if email and ("@" not in email or len(email) > 254):
            errors["email"] = [_("not an e-mail address")]
        clean["email"] = email
    if "wechat_openid" in data:
        clean["wechat_openid"] = str(data["wechat_openid"] or "").strip()[:64]
    if "push_subscription" in data:
        sub = data["push_subscription"] or {}
        if sub and not (
            isinstance(sub, Mapping) and str(sub.get("endpoint", "")).startswith("https://")
        ):
            errors["push_subscription"] = [_("a web push subscription with an https endpoint")]
        clean["push_subscription"] = dict(sub)
    if errors:
        raise ValidationFailed(details=errors)
    with transaction.atomic():
        pref = cm.ReminderPreference.objects.select_for_update().filter(patient=patient).first()
        if pref is None:
            pref = cm.ReminderPreference(patient=patient, version=0)
        elif expected not in (None, "") and str(pref.version) != str(expected):
            raise StaleVersion()
        for key, value in clean.items():
            setattr(pref, key, value)
        pref.version += 1
        pref.save()
        audit.record(
            actor,
            "reminder_preference.update",
            patient_id=patient.pk,
            obj=pref,
            detail={"fields": sorted(clean)},
        )
        if "dose_times" in clean:
            for enrolment in cm.Enrolment.objects.filter(
                patient=patient, status=cm.Enrolment.Status.ACTIVE
            ):
                recompute(enrolment)
    return pref


def daily_measurements(patient_id: int) -> dict[str, datetime]:
    """Readings the patient's active plans ask for every day (observation kind → since when)."""
    from careloop.observations import domain as observation_domain

    wanted: dict[str, datetime] = {}
    enrolments = cm.Enrolment.objects.filter(
        patient_id=patient_id, status=cm.Enrolment.Status.ACTIVE
    ).select_related("patient")
    for enrolment in enrolments:
        tz = domain.zone(enrolment.patient.time_zone)
        since = datetime.combine(enrolment.starts_on, datetime.min.time(), tzinfo=tz)
        activities = cm.PlanActivity.objects.filter(
            template_id=enrolment.template_id, kind=cm.ActivityKind.MEASUREMENT
        )
        for activity in activities:
            if (enrolment.adjustments or {}).get(activity.code, {}).get("off"):
                continue
            rule = str((activity.schedule or {}).get("rrule", "")).upper()
            if "FREQ=DAILY" not in rule or "INTERVAL=" in rule:
                continue
            try:
                kind = observation_domain.resolve_kind(activity.measurement)[0]
            except observation_domain.Problem:
                continue
            if kind not in wanted or since < wanted[kind]:
                wanted[kind] = since
    return wanted


def sync_expectations(patient_id: int) -> None:
    """Tell the readings side which daily readings to expect (absence alerts)."""
    from careloop.observations import services as observation_services

    observation_services.set_expectations(patient_id, daily_measurements(patient_id))
