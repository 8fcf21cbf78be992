"""Every write of segments: the shipped defaults, staff edits, and the daily recomputation that
moves patients in and out of segments and applies or undoes their strategies."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import Forbidden, NotFound, ValidationFailed
from careloop.segments import facts as segment_facts
from careloop.segments import models as sm
from careloop.segments import rules, strategies

log = logging.getLogger("careloop.segments")

DATA_DIR = Path(__file__).resolve().parent / "data" / "segments"
CODE_RE = re.compile(r"^[a-z][a-z0-9_-]{1,49}$")
# A run that started this long ago without finishing is taken to have died.
STALE_RUN = timedelta(minutes=15)


# --- definitions ---------------------------------------------------------------------------------


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def read_default(path: Path) -> dict[str, Any]:
    """One shipped segment file, checked."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationFailed(
            _("%(file)s cannot be read: %(error)s") % {"file": path.name, "error": exc}
        ) from exc
    clean, errors = clean_definition(spec, organisation_id=None)
    if errors:
        raise ValidationFailed(
            _("%(file)s is not a valid segment.") % {"file": path.name}, details=errors
        )
    return clean


def load_defaults(directory: Path | None = None) -> list[tuple[str, str]]:
    """Create or update the shared (shipped) segments from their files: (code, outcome)."""
    results = []
    for path in sorted((directory or DATA_DIR).glob("*.json")):
        spec = read_default(path)
        digest = _digest(spec)
        with transaction.atomic():
            row = (
                sm.Segment.objects.select_for_update()
                .filter(organisation__isnull=True, code=spec["code"])
                .first()
            )
            if row is not None and row.source_digest == digest:
                results.append((row.code, "same"))
                continue
            outcome = "updated" if row else "created"
            if row is None:
                row = sm.Segment(organisation=None, code=spec["code"], version=0)
            _assign(row, spec)
            row.version += 1
            row.source_digest = digest
            row.updated_at = utc_now()
            row.save()
        results.append((row.code, outcome))
    return results


def _assign(row: sm.Segment, spec: Mapping[str, Any]) -> None:
    row.name = spec["name"]
    row.name_en = spec.get("name_en", "")
    row.description = spec.get("description", "")
    row.rule = spec["rule"]
    row.priority = spec.get("priority", 100)
    row.strategy = spec.get("strategy", {"kind": "none"})
    row.active = spec.get("active", True)


def clean_definition(
    data: Mapping[str, Any], *, organisation_id: int | None, code_fixed: str | None = None
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A segment definition cleaned, and the errors per field (empty when valid)."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    code = code_fixed or str(data.get("code") or "").strip()
    if not CODE_RE.match(code):
        errors["code"] = [
            _("Use 2 to 50 lower-case letters, digits, - or _, starting with a letter.")
        ]
    clean["code"] = code
    for field, limit in (("name", 100), ("name_en", 100), ("description", 500)):
        value = str(data.get(field) or "").strip()
        if len(value) > limit:
            errors[field] = [_("At most %(n)s characters.") % {"n": limit}]
        clean[field] = value
    if not clean["name"]:
        errors["name"] = [_("A name is required.")]
    try:
        clean["rule"] = rules.parse(data.get("rule")).source
    except rules.RuleError as exc:
        errors["rule"] = [str(exc)]
    priority = data.get("priority", 100)
    try:
        clean["priority"] = int(priority)
        if not 0 <= clean["priority"] <= 1000:
            raise ValueError
    except (TypeError, ValueError):
        errors["priority"] = [_("A whole number from 0 to 1000.")]
    strategy = data.get("strategy")
    if isinstance(strategy, str):
        try:
            strategy = json.loads(strategy) if strategy.strip() else None
        except ValueError:
            errors["strategy"] = [_("The strategy is not valid JSON.")]
            strategy = None
    if "strategy" not in errors:
        try:
            clean["strategy"] = strategies.validate(strategy, organisation_id)
        except strategies.StrategyError as exc:
            errors["strategy"] = [str(exc)]
    clean["active"] = bool(data.get("active", True))
    return clean, errors


# --- which segments an organisation uses ---------------------------------------------------------


def segments_for(organisation_id: int, *, active_only: bool = True) -> QuerySet[sm.Segment]:
    """The organisation's own segments and the shared ones it has not replaced."""
    own = sm.Segment.objects.filter(organisation_id=organisation_id)
    qs = sm.Segment.objects.filter(
        Q(organisation_id=organisation_id)
        | Q(organisation__isnull=True) & ~Q(code__in=own.values("code"))
    )
    if active_only:
        qs = qs.filter(active=True)
    return qs.order_by("priority", "code")


def get_segment(actor: Actor, segment_id: int) -> sm.Segment:
    """A segment the actor's organisation uses (its own or a shared one), else NotFound."""
    segment = (
        segments_for(actor.organisation_id or 0, active_only=False).filter(pk=segment_id).first()
    )
    if segment is None:
        raise NotFound(_("No such segment."))
    return segment


def require(actor: Actor, action: Action) -> None:
    if not actor.can(action):
        audit.record_denied(actor, str(action), detail={"reason": "role"})
        raise Forbidden()


# --- staff edits ---------------------------------------------------------------------------------


def save_segment(
    actor: Actor, data: Mapping[str, Any], segment_id: int | None = None
) -> sm.Segment:
    """Create an organisation segment, or change one. Changing a shared default makes the
    organisation's own copy, which takes over its current members."""
    require(actor, Action.ORG_MANAGE)
    org = actor.organisation_id or 0
    current = get_segment(actor, segment_id) if segment_id else None
    clean, errors = clean_definition(
        data, organisation_id=org, code_fixed=current.code if current else None
    )
    if current is None and "code" not in errors:
        if segments_for(org, active_only=False).filter(code=clean["code"]).exists():
            errors["code"] = [_("A segment with this code exists already.")]
    if errors:
        raise ValidationFailed(details=errors)
    now = utc_now()
    with transaction.atomic():
        if current is not None and current.organisation_id == org:
            row = sm.Segment.objects.select_for_update().get(pk=current.pk)
            expected = data.get("version")
            if expected not in (None, "") and str(expected) != str(row.version):
                raise ValidationFailed(
                    details={"version": [_("Someone changed this segment meanwhile. Reload.")]}
                )
            row.version += 1
        else:
            row = sm.Segment(organisation_id=org, code=clean["code"], version=1, created_at=now)
        _assign(row, clean)
        row.updated_at = now
        row.save()
        if current is not None and current.organisation_id is None:
            # The organisation's copy of a default keeps the default's members and their history.
            sm.Membership.objects.filter(organisation_id=org, segment=current).update(segment=row)
        if not row.active:
            leave_all(row, organisation_id=org, now=now)
        audit.record(
            actor,
            "segment.save",
            obj=row,
            detail={"code": row.code, "version": row.version, "rule": row.rule},
        )
    return row


def deactivate(actor: Actor, segment_id: int) -> sm.Segment:
    """Stop using a segment: its members leave now (their strategies are undone)."""
    segment = get_segment(actor, segment_id)
    data = {
        "name": segment.name,
        "name_en": segment.name_en,
        "description": segment.description,
        "rule": segment.rule,
        "priority": segment.priority,
        "strategy": segment.strategy,
        "active": False,
    }
    return save_segment(actor, data, segment.pk)


def leave_all(segment: sm.Segment, *, organisation_id: int, now: datetime) -> int:
    open_ = sm.Membership.objects.filter(
        organisation_id=organisation_id, segment=segment, left_at__isnull=True
    ).select_related("segment", "patient")
    count = 0
    for membership in open_:
        _leave(membership, now)
        count += 1
    return count


def preview(organisation_id: int, rule_source: str, today: date | None = None) -> int:
    """How many patients a rule would hold today (the admin form shows it before saving)."""
    rule = rules.parse(rule_source)
    return sum(1 for f in segment_facts.facts_for(organisation_id, today).values() if rule.holds(f))


# --- recomputation -------------------------------------------------------------------------------


def _enter(
    organisation_id: int,
    patient_id: int,
    segment: sm.Segment,
    facts: dict[str, Any],
    now: datetime,
    by_risk: bool,
) -> sm.Membership | None:
    try:
        with transaction.atomic():
            membership = sm.Membership.objects.create(
                organisation_id=organisation_id,
                patient_id=patient_id,
                segment=segment,
                entered_at=now,
                facts={**facts, "entered_by_risk_score": by_risk},
            )
            audit.append(
                action="segment.enter",
                organisation_id=organisation_id,
                patient_id=patient_id,
                object_type="segments.membership",
                object_id=membership.pk,
                actor_name=strategies.ACTOR,
                detail={"segment": segment.code, "by_risk_score": by_risk},
            )
            membership.applied = strategies.apply(membership, now=now, by_risk=by_risk)
            membership.save(update_fields=["applied"])
    except IntegrityError:
        return None  # another run put the patient in meanwhile
    return membership


def _leave(membership: sm.Membership, now: datetime) -> None:
    with transaction.atomic():
        locked = (
            sm.Membership.objects.select_for_update()
            .filter(pk=membership.pk, left_at__isnull=True)
            .first()
        )
        if locked is None:
            return
        locked.segment = membership.segment
        locked.undone = strategies.undo(locked, now=now)
        locked.left_at = now
        locked.save(update_fields=["left_at", "undone"])
        audit.append(
            action="segment.leave",
            organisation_id=locked.organisation_id,
            patient_id=locked.patient_id,
            object_type="segments.membership",
            object_id=locked.pk,
            actor_name=strategies.ACTOR,
            detail={"segment": membership.segment.code},
        )


def _claim(organisation_id: int, day: date, force: bool, now: datetime) -> sm.Run | None:
    """The day's run row, marked started; None when it has run already or is running now."""
    with transaction.atomic():
        _row, created = sm.Run.objects.get_or_create(
            organisation_id=organisation_id, day=day, defaults={"started_at": now}
        )
        run = sm.Run.objects.select_for_update().get(organisation_id=organisation_id, day=day)
        if created:
            return run
        running = run.finished_at is None and run.started_at > now - STALE_RUN
        if not force and (run.finished_at is not None or running):
            return None
        run.started_at = now
        run.finished_at = None
        run.forced = run.forced or force
        run.save()
    return run


def recompute(organisation_id: int, today: date | None = None, *, force: bool = False) -> sm.Run:
    """Put every patient of the organisation into the segments whose rule holds for them today,
    take them out of those whose rule no longer holds, and apply or undo the strategies.

    Once per organisation-local day: a second call the same day returns that day's run
    unchanged, unless ``force``."""
    day, _as_of = segment_facts.as_of_moment(organisation_id, today)
    now = utc_now()
    run = _claim(organisation_id, day, force, now)
    if run is None:
        return sm.Run.objects.get(organisation_id=organisation_id, day=day)
    facts = segment_facts.facts_for(organisation_id, day)
    segments = list(segments_for(organisation_id))
    parsed: dict[int, rules.Rule] = {}
    for segment in segments:
        try:
            parsed[segment.pk] = rules.parse(segment.rule)
        except rules.RuleError:
            log.warning("segment %s has an invalid rule; it holds for nobody", segment.code)
    open_rows = sm.Membership.objects.filter(
        organisation_id=organisation_id, left_at__isnull=True
    ).select_related("segment", "patient")
    current: dict[tuple[int, int], sm.Membership] = {
        (m.patient_id, m.segment_id): m for m in open_rows
    }
    entered = left = 0
    wanted: set[tuple[int, int]] = set()
    for segment in segments:
        rule = parsed.get(segment.pk)
        if rule is None:
            continue
        uses_risk = "risk_score" in rule.names
        for patient_id, patient_facts in facts.items():
            if not rule.holds(patient_facts):
                continue
            key = (patient_id, segment.pk)
            wanted.add(key)
            if key in current:
                continue
            by_risk = (
                uses_risk
                and patient_facts.get("risk_score") is not None
                and not rule.holds({**patient_facts, "risk_score": None})
            )
            if _enter(organisation_id, patient_id, segment, patient_facts, now, by_risk):
                entered += 1
    for key, membership in current.items():
        if key not in wanted:
            _leave(membership, now)
            left += 1
    counts = dict(
        sm.Membership.objects.filter(organisation_id=organisation_id, left_at__isnull=True)
        .values_list("segment__code")
        .annotate(n=Count("id"))
        .values_list("segment__code", "n")
    )
    run.patients = len(facts)
    run.entered += entered
    run.left += left
    run.counts = {s.code: counts.get(s.code, 0) for s in segments}
    run.finished_at = utc_now()
    run.save()
    log.info(
        "segments of organisation %s on %s: %s entered, %s left",
        organisation_id,
        day,
        entered,
        left,
    )
    return run


def recompute_now(actor: Actor) -> sm.Run:
    """The "recompute now" button: today's run again, audited."""
    require(actor, Action.ORG_MANAGE)
    run = recompute(actor.organisation_id or 0, force=True)
    audit.record(
        actor,
        "segment.recompute",
        obj=run,
        detail={"entered": run.entered, "left": run.left, "day": run.day.isoformat()},
    )
    return run


def run_due() -> int:
    """The periodic job: recompute every organisation whose local day has no finished run."""
    done = 0
    for org in Organisation.objects.all():
        day, _as_of = segment_facts.as_of_moment(org.pk, None)
        if sm.Run.objects.filter(
            organisation_id=org.pk, day=day, finished_at__isnull=False
        ).exists():
            continue
        if not segments_for(org.pk).exists():
            continue
        try:
            recompute(org.pk, day)
        except Exception:
            log.exception("segment recomputation failed for organisation %s", org.pk)
            continue
        done += 1
    return done


def filter_patients(qs: QuerySet[Any], code: str) -> QuerySet[Any]:
    """Patients of ``qs`` currently in the segment ``code`` (the analytics segment filter)."""
    from django.db.models import Exists, OuterRef

    return qs.filter(
        Exists(
            sm.Membership.objects.filter(
                patient_id=OuterRef("pk"), segment__code=code, left_at__isnull=True
            )
        )
    )
