"""Running experiments: randomising patients, changing their reminders, stopping, and undoing.

``apply`` (hourly) assigns the eligible patients who have reminders of the experiment's kinds
coming up, by permuted blocks of the arms' weights drawn from the experiment's seed, and marks
each such reminder ``payload["experiment"] = {"id", "code", "arm", "factor", …}`` with the arm's
effect:

- wording: ``payload["wording"]`` (the dispatcher sends that text instead of the template);
- channel: ``payload["route"] = {"by": "experiment", "arm", "channel"}`` (tried first);
- time: the reminder moves to the arm's local hour on its own local day;
- cadence: of each patient's reminders of one activity only every n-th is kept, the others are
  skipped with reason "experiment_cadence".

A control arm's reminders are marked and left as planned; for channel and time experiments a
move made by send-time learning is undone, so the control stays the plan's own timing. Every
change is one conditional UPDATE that only touches a row still scheduled, untried and
unclaimed, and not changed since it was read: a row the dispatcher claimed meanwhile is never
touched. Stopping or completing an experiment gives its future reminders back unchanged.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation
from careloop.audit import services as audit
from careloop.careplans import domain
from careloop.experiments.models import Assignment, Experiment, Factor, Population, Status
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.patients.models import Patient
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services

log = logging.getLogger("careloop.experiments")

LEAD = timedelta(minutes=5)
S = rm.Status


def organisation_today(organisation_id: int, now: datetime | None = None) -> date:
    tz_name = (
        Organisation.objects.filter(pk=organisation_id).values_list("time_zone", flat=True).first()
    )
    try:
        tz = domain.zone(tz_name or "Asia/Shanghai")
    except domain.ScheduleError:
        tz = domain.zone("Asia/Shanghai")
    return domain.local_of(now or utc_now(), tz).date()


# --- assignment -------------------------------------------------------------------------------


def _block(exp: Experiment, number: int) -> list[str]:
    """The arms of block `number` in random order: each arm as many times as its weight."""
    codes = [str(a["code"]) for a in exp.arms for _ in range(int(a.get("weight") or 1))]
    random.Random(f"{exp.seed}:{exp.code}:{number}").shuffle(codes)  # noqa: S311 - not secret
    return codes


def arms_for(exp: Experiment, start: int, count: int) -> list[str]:
    """The arms of the assignments number start … start + count − 1 (permuted blocks)."""
    size = sum(int(a.get("weight") or 1) for a in exp.arms)
    out: list[str] = []
    cache: dict[int, list[str]] = {}
    for position in range(start, start + count):
        number, index = divmod(position, size)
        if number not in cache:
            cache[number] = _block(exp, number)
        out.append(cache[number][index])
    return out


def _eligible(exp: Experiment, patient_ids: Iterable[int]) -> set[int]:
    """The patients of `patient_ids` in the experiment's population (active, alive)."""
    qs: QuerySet[Patient] = Patient.objects.filter(
        organisation_id=exp.organisation_id,
        pk__in=list(patient_ids),
        merged_into__isnull=True,
        deceased_on__isnull=True,
    )
    if exp.population == Population.DEPARTMENT:
        qs = qs.filter(department_links__department_id=exp.department_id or 0)
    elif exp.population == Population.SEGMENT:
        from careloop.analytics.registry import SEGMENT_FILTERS

        hook = SEGMENT_FILTERS.get("default")
        if hook is None:
            return set()
        qs = hook(qs, exp.segment_code)
    return set(qs.values_list("pk", flat=True))


def _blocked(exp: Experiment, running: list[Experiment], patient_ids: set[int]) -> set[int]:
    """Patients already in another running experiment on one of this one's kinds."""
    others = [o.pk for o in running if o.pk != exp.pk and set(o.kinds) & set(exp.kinds)]
    if not others or not patient_ids:
        return set()
    return set(
        Assignment.objects.filter(experiment_id__in=others, patient_id__in=patient_ids).values_list(
            "patient_id", flat=True
        )
    )


def capacity(exp: Experiment) -> int:
    """How many patients the experiment takes in all: whole blocks until the arm of the
    smallest weight has max_per_arm patients."""
    weights = [int(a.get("weight") or 1) for a in exp.arms] or [1]
    return -(-exp.max_per_arm // min(weights)) * sum(weights)


def arm_counts(exp: Experiment) -> dict[str, int]:
    return dict(
        Assignment.objects.filter(experiment=exp)
        .values_list("arm")
        .annotate(n=Count("id"))
        .values_list("arm", "n")
    )


def counts_by_experiment(experiment_ids: list[int]) -> dict[int, int]:
    """Patients assigned, per experiment."""
    return dict(
        Assignment.objects.filter(experiment_id__in=experiment_ids)
        .values_list("experiment_id")
        .annotate(n=Count("id"))
        .values_list("experiment_id", "n")
    )


def assign(
    exp: Experiment, patient_ids: Iterable[int], running: list[Experiment], now: datetime
) -> dict[int, str]:
    """Assign the eligible patients of `patient_ids` not yet in the experiment; returns every
    assignment of those patients (new and old) as patient → arm."""
    wanted = set(patient_ids)
    with transaction.atomic():
        Experiment.objects.select_for_update().filter(pk=exp.pk).first()  # one assigner at a time
        known = dict(
            Assignment.objects.filter(experiment=exp, patient_id__in=wanted).values_list(
                "patient_id", "arm"
            )
        )
        new = wanted - set(known)
        start = Assignment.objects.filter(experiment=exp).count() if new else 0
        room = capacity(exp) - start
        if new and room > 0:
            new = _eligible(exp, new) - _blocked(exp, running, new)
            if new:
                ordered = sorted(new)[:room]
                arms = arms_for(exp, start, len(ordered))
                Assignment.objects.bulk_create(
                    [
                        Assignment(experiment=exp, patient_id=pid, arm=arm, assigned_at=now)
                        for pid, arm in zip(ordered, arms, strict=True)
                    ]
                )
                known.update(zip(ordered, arms, strict=True))
                audit.append(
                    action="experiment.assign",
                    organisation_id=exp.organisation_id,
                    actor_name="experiments",
                    object_type="experiments.experiment",
                    object_id=exp.pk,
                    detail={"assigned": len(ordered), "arms": dict(Counter(arms))},
                )
    return known


# --- changing reminders -------------------------------------------------------------------------


def _window(exp: Experiment, now: datetime, horizon_hours: int) -> QuerySet[rm.Occurrence]:
    return rm.Occurrence.objects.filter(
        organisation_id=exp.organisation_id,
        kind__in=list(exp.kinds),
        status=S.SCHEDULED,
        step=0,
        tries=0,
        claimed_by="",
        due_at__gte=now + LEAD,
        due_at__lte=now + timedelta(hours=horizon_hours),
    ).exclude(payload__has_key="experiment")


def _time_values(due: datetime, tz: Any) -> dict[str, Any]:
    return {
        "due_at": due,
        "wake_at": due,
        "local_due": f"{domain.local_of(due, tz):%Y-%m-%dT%H:%M}",
    }


def _parse(value: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def _undo_sendtime(occ: rm.Occurrence, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Give a reminder moved by send-time learning its planned time back (control arms)."""
    route = payload.get("route")
    if not isinstance(route, dict) or route.get("by") != "sendtime":
        return {}
    original = _parse(route.get("original_due"))
    if original is None or original == occ.due_at or original < now + LEAD:
        return {}
    return _time_values(original, domain.zone(occ.time_zone))


class _Context:
    def __init__(self, exp: Experiment, occs: list[rm.Occurrence]) -> None:
        from careloop.reminders.services import settings_for

        settings = settings_for(exp.organisation_id)
        patient_ids = {o.patient_id for o in occs}
        self.quiet: dict[int, tuple[Any, Any]] = {
            pid: (start or settings.quiet_start, end or settings.quiet_end)
            for pid, start, end in Patient.objects.filter(pk__in=patient_ids).values_list(
                "pk", "quiet_hours_start", "quiet_hours_end"
            )
        }
        self.seq: Counter[tuple[int, str]] = Counter()
        if exp.factor == Factor.CADENCE and patient_ids:
            for pid, code, n in (
                rm.Occurrence.objects.filter(
                    organisation_id=exp.organisation_id,
                    patient_id__in=patient_ids,
                    payload__experiment__id=exp.pk,
                )
                .values_list("patient_id", "activity_code")
                .annotate(n=Count("id"))
            ):
                self.seq[(pid, code)] = n


def _mark(
    exp: Experiment, occ: rm.Occurrence, arm: dict[str, Any], ctx: _Context, now: datetime
) -> int:
    payload = dict(occ.payload or {})
    params = arm.get("params") or {}
    control = bool(arm.get("control"))
    mark: dict[str, Any] = {
        "id": exp.pk,
        "code": exp.code,
        "arm": arm["code"],
        "factor": exp.factor,
    }
    values: dict[str, Any] = {}
    if exp.factor == Factor.WORDING:
        if not control:
            payload["wording"] = dict(params["wording"])
    elif exp.factor == Factor.CHANNEL:
        values.update(_undo_sendtime(occ, payload, now))
        route: dict[str, Any] = {"by": "experiment", "arm": arm["code"]}
        if not control:
            route["channel"] = params["channel"]
        payload["route"] = route
    elif exp.factor == Factor.TIME:
        moved = _undo_sendtime(occ, payload, now)
        if control:
            values.update(moved)
            payload["route"] = {"by": "experiment", "arm": arm["code"]}
        else:
            tz = domain.zone(occ.time_zone)
            planned = moved.get("due_at", occ.due_at)
            hour, minute = int(params["hour"]), int(params.get("minute") or 0)
            local = domain.local_of(planned, tz).replace(hour=hour, minute=minute)
            target = domain.to_utc(local, tz)
            quiet = ctx.quiet.get(occ.patient_id, (None, None))
            if domain.in_quiet_hours(local.time(), *quiet):
                mark["kept"] = "quiet_hours"
                values.update(moved)
            elif target < now + LEAD:
                mark["kept"] = "too_late"
                values.update(moved)
            else:
                mark["original_due"] = planned.isoformat()
                values.update(_time_values(target, tz))
            payload["route"] = {"by": "experiment", "arm": arm["code"], "hour": hour}
    elif exp.factor == Factor.CADENCE:
        key = (occ.patient_id, occ.activity_code)
        seq = ctx.seq[key]
        ctx.seq[key] += 1
        mark["seq"] = seq
        every = int(params.get("every") or 1)
        if not control and seq % every:
            values.update({"status": S.SKIPPED, "reason": "experiment_cadence", "wake_at": None})
    payload["experiment"] = mark
    values.update({"payload": payload, "updated_at": now})
    return reminder_services.as_read(occ).update(**values)


def apply_experiment(
    exp: Experiment, running: list[Experiment], now: datetime, horizon_hours: int = 36
) -> int:
    window = _window(exp, now, horizon_hours)
    patient_ids = set(window.values_list("patient_id", flat=True).distinct())
    if not patient_ids:
        return 0
    arms_of = assign(exp, patient_ids, running, now)
    if not arms_of:
        return 0
    occs = list(
        window.filter(patient_id__in=list(arms_of)).order_by(
            "patient_id", "activity_code", "due_at", "id"
        )
    )
    ctx = _Context(exp, occs)
    by_code = {a["code"]: a for a in exp.arms}
    changed = 0
    for occ in occs:
        arm = by_code.get(arms_of[occ.patient_id])
        if arm is not None:
            changed += _mark(exp, occ, arm, ctx, now)
    return changed


def apply(organisation_id: int, now: datetime | None = None, horizon_hours: int = 36) -> int:
    """Assign patients and mark (and change) their reminders due in [now + 5 min, now +
    horizon]; returns the number of reminders marked."""
    now = now or utc_now()
    running = list(
        Experiment.objects.filter(organisation_id=organisation_id, status=Status.RUNNING).order_by(
            "started_at", "id"
        )
    )
    return sum(apply_experiment(exp, running, now, horizon_hours) for exp in running)


def release(exp: Experiment, now: datetime) -> int:
    """Give the experiment's reminders still to come back as the plan made them."""
    rows = rm.Occurrence.objects.filter(
        organisation_id=exp.organisation_id,
        payload__experiment__id=exp.pk,
        due_at__gt=now,
        step=0,
        tries=0,
        claimed_by="",
    ).filter(Q(status=S.SCHEDULED) | Q(status=S.SKIPPED, reason="experiment_cadence"))
    released = 0
    for occ in rows:
        payload = dict(occ.payload or {})
        mark = payload.pop("experiment", {}) or {}
        if exp.factor == Factor.WORDING:
            payload.pop("wording", None)
        route = payload.get("route")
        if isinstance(route, dict) and route.get("by") == "experiment":
            payload.pop("route")
        values: dict[str, Any] = {"payload": payload, "updated_at": now}
        original = _parse(mark.get("original_due")) if isinstance(mark, dict) else None
        if original is not None and original >= now + LEAD:
            values.update(_time_values(original, domain.zone(occ.time_zone)))
        if occ.status == S.SKIPPED:
            values.update(
                {"status": S.SCHEDULED, "reason": "", "wake_at": values.get("due_at", occ.due_at)}
            )
        released += rm.Occurrence.objects.filter(
            pk=occ.pk, status=occ.status, updated_at=occ.updated_at, claimed_by=""
        ).update(**values)
    return released


# --- the experiment's life ----------------------------------------------------------------------


def get(actor: Actor, experiment_id: int) -> Experiment:
    found = Experiment.objects.filter(
        organisation_id=actor.organisation_id or 0, pk=experiment_id
    ).first()
    if found is None:
        raise NotFound()
    return found


def by_code(organisation_id: int, code: str) -> Experiment:
    found = Experiment.objects.filter(organisation_id=organisation_id, code=code).first()
    if found is None:
        raise NotFound()
    return found


FIELDS = (
    "code",
    "name",
    "hypothesis",
    "factor",
    "kinds",
    "population",
    "department",
    "segment_code",
    "arms",
    "primary_outcome",
    "min_per_arm",
    "max_per_arm",
    "looks",
    "alpha",
    "end_date",
    "seed",
)


def _snapshot(exp: Experiment) -> dict[str, Any]:
    return {
        "code": exp.code,
        "factor": exp.factor,
        "kinds": exp.kinds,
        "population": exp.population,
        "department": exp.department_id,
        "segment": exp.segment_code,
        "arms": exp.arms,
        "primary": exp.primary_outcome,
        "min_per_arm": exp.min_per_arm,
        "max_per_arm": exp.max_per_arm,
        "looks": exp.looks,
        "alpha": exp.alpha,
        "end_date": exp.end_date.isoformat() if exp.end_date else None,
        "seed": exp.seed,
    }


def save(actor: Actor, clean: dict[str, Any], experiment: Experiment | None = None) -> Experiment:
    """Create an experiment, or change a draft, from a form's cleaned data."""
    org = actor.organisation_id or 0
    with transaction.atomic():
        if experiment is not None:
            experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
            if experiment.status != Status.DRAFT:
                raise Conflict(_text("Only a draft can be changed; this one has started."))
        exp = experiment or Experiment(organisation_id=org, created_by=actor.user)
        taken = Experiment.objects.filter(organisation_id=org, code=clean["code"])
        if exp.pk:
            taken = taken.exclude(pk=exp.pk)
        if taken.exists():
            raise ValidationFailed(
                details={"code": [_text("Another experiment already has this code.")]}
            )
        for name in FIELDS:
            setattr(exp, name, clean[name])
        if exp.pk:
            exp.version += 1
        exp.updated_at = utc_now()
        exp.save()
        audit.record(
            actor,
            "experiment.save",
            obj=exp,
            detail={"created": experiment is None, **_snapshot(exp)},
        )
    return exp


def _text(message: str) -> str:
    from django.utils.translation import gettext

    return gettext(message)


def start(actor: Actor, experiment_id: int, now: datetime | None = None) -> Experiment:
    now = now or utc_now()
    with transaction.atomic():
        exp = get(actor, experiment_id)
        exp = Experiment.objects.select_for_update().get(pk=exp.pk)
        if exp.status != Status.DRAFT:
            raise Conflict(_text("Only a draft can be started."))
        if exp.end_date is not None and exp.end_date < organisation_today(exp.organisation_id, now):
            raise ValidationFailed(
                details={"end_date": [_text("The last day has passed; change it first.")]}
            )
        exp.status = Status.RUNNING
        exp.started_at = now
        exp.updated_at = now
        exp.save(update_fields=["status", "started_at", "updated_at"])
        audit.record(actor, "experiment.start", obj=exp, detail=_snapshot(exp))
    return exp


def finish(
    exp: Experiment, status: str, reason: str, note: str = "", now: datetime | None = None
) -> int:
    """End a running (or draft) experiment and give its future reminders back; returns how many
    reminders were given back."""
    now = now or utc_now()
    exp.status = status
    exp.ended_at = now
    exp.stop_reason = reason[:20]
    exp.stop_note = note[:300]
    exp.updated_at = now
    exp.save(update_fields=["status", "ended_at", "stop_reason", "stop_note", "updated_at"])
    return release(exp, now)


def stop(
    actor: Actor | None,
    experiment_id: int,
    note: str = "",
    now: datetime | None = None,
    *,
    organisation_id: int | None = None,
) -> Experiment:
    """Stop by hand (a person on the page or the command line)."""
    now = now or utc_now()
    with transaction.atomic():
        if actor is not None:
            exp = get(actor, experiment_id)
        else:
            found = Experiment.objects.filter(
                pk=experiment_id, organisation_id=organisation_id or 0
            ).first()
            if found is None:
                raise NotFound()
            exp = found
        exp = Experiment.objects.select_for_update().get(pk=exp.pk)
        if exp.status not in (Status.DRAFT, Status.RUNNING):
            raise Conflict(_text("This experiment has already ended."))
        given_back = finish(exp, Status.STOPPED, "manual", note, now)
        detail = {"code": exp.code, "note": note[:300], "reminders_given_back": given_back}
        if actor is not None:
            audit.record(actor, "experiment.stop", obj=exp, detail=detail)
        else:
            audit.append(
                action="experiment.stop",
                organisation_id=exp.organisation_id,
                actor_name="cli",
                object_type="experiments.experiment",
                object_id=exp.pk,
                detail=detail,
            )
    return exp


# --- periodic jobs ------------------------------------------------------------------------------


def _running_orgs() -> list[int]:
    return sorted(
        set(
            Experiment.objects.filter(status=Status.RUNNING).values_list(
                "organisation_id", flat=True
            )
        )
    )


def apply_job() -> int:
    total = 0
    for org in _running_orgs():
        try:
            total += apply(org)
        except Exception:
            log.exception("experiments: apply failed for organisation %s", org)
    return total


def evaluate_job(now: datetime | None = None) -> int:
    """Evaluate each running experiment once per organisation-local day."""
    from careloop.experiments.analysis import evaluate

    now = now or utc_now()
    done = 0
    days = {org: organisation_today(org, now) for org in _running_orgs()}
    for exp in Experiment.objects.filter(status=Status.RUNNING).order_by("pk"):
        today = days.get(exp.organisation_id) or organisation_today(exp.organisation_id, now)
        if exp.evaluated_on == today:
            continue
        claimed = Experiment.objects.filter(pk=exp.pk, status=Status.RUNNING).exclude(
            evaluated_on=today
        )
        if not claimed.update(evaluated_on=today):
            continue  # another worker took it
        evaluate(exp, now)
        done += 1
    return done


def results(experiment: Experiment, now: datetime | None = None) -> dict[str, Any]:
    """Per-arm results and comparisons with the control arm (careloop.experiments.analysis)."""
    from careloop.experiments import analysis

    return analysis.results(experiment, now)


def evaluate(experiment: Experiment, now: datetime | None = None) -> Any:
    """Apply the stop rules now; the Look taken, or None (careloop.experiments.analysis)."""
    from careloop.experiments import analysis

    return analysis.evaluate(experiment, now)
