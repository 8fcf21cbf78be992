"""Send-time learning: plan reminders' hour and channel, learn from their outcomes, report.

``plan`` moves each scheduled reminder of a learn-arm patient to the (local hour, channel) drawn
by Thompson sampling from Beta(prior + the patient's own counts), within the kind's window and
outside quiet hours, and marks control-arm reminders without moving them. ``learn`` folds final
outcomes into the counts exactly once. ``report`` compares acknowledgement rates of the arms.

Rows are changed with conditional UPDATEs: only a reminder still scheduled, untried, unclaimed
and unchanged since it was read is moved, so a row the dispatcher claimed meanwhile is never
touched. The learner never overrides an experiment on time or channel, nor an existing route.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, Min, OuterRef

from careloop.accounts.models import Organisation
from careloop.careplans import domain
from careloop.channels.port import ChannelKind
from careloop.experiments import stats
from careloop.kit.clock import utc_now
from careloop.kit.rows import update_rows
from careloop.patients import models as pm
from careloop.reminders import dispatcher
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from careloop.sendtime import models as m

S = rm.Status
AO = rm.Attempt.Outcome
BY = "sendtime"
LEARN = m.Assignment.ArmKind.LEARN.value
CONTROL = m.Assignment.ArmKind.CONTROL.value
# A reminder is planned only if it is due at least this far ahead (the dispatcher may be close).
LEAD = timedelta(minutes=5)
# An acknowledgement counts as a success within this long after the first accepted send.
ACK_WITHIN = timedelta(hours=12)
# Routed reminders older than this are no longer looked at by ``learn``.
LOOKBACK = timedelta(days=21)
# Experiments on these factors own the reminder's time and channel.
EXPERIMENT_FACTORS = ("time", "channel")


# --- settings and arms -------------------------------------------------------------------------


def settings_for(organisation_id: int) -> m.Settings:
    """The organisation's settings, or the defaults (unsaved) when it has none."""
    found = m.Settings.objects.filter(organisation_id=organisation_id).first()
    return found if found is not None else m.Settings(organisation_id=organisation_id)


def enabled_organisations() -> list[int]:
    return list(
        m.Settings.objects.filter(enabled=True)
        .order_by("organisation_id")
        .values_list("organisation_id", flat=True)
    )


def arm_of(organisation_id: int, patient_id: int, control_share: float) -> str:
    """The arm a patient is randomised to: reproducible from the organisation and patient."""
    draw = random.Random(f"sendtime-arm:{organisation_id}:{patient_id}").random()  # noqa: S311
    return CONTROL if draw < control_share else LEARN


def assignments(
    organisation_id: int, patient_ids: Iterable[int], control_share: float, now: datetime
) -> dict[int, str]:
    """Each patient's arm, assigning (once, for good) those who have none yet."""
    wanted = set(patient_ids)
    known = dict(
        m.Assignment.objects.filter(patient_id__in=wanted).values_list("patient_id", "arm")
    )
    missing = sorted(wanted - set(known))
    if missing:
        m.Assignment.objects.bulk_create(
            [
                m.Assignment(
                    organisation_id=organisation_id,
                    patient_id=pid,
                    arm=arm_of(organisation_id, pid, control_share),
                    assigned_at=now,
                )
                for pid in missing
            ],
            ignore_conflicts=True,
        )
        known.update(
            m.Assignment.objects.filter(patient_id__in=missing).values_list("patient_id", "arm")
        )
    return known


Counts = dict[tuple[int, str], tuple[float, float]]


def _counts(rows: Iterable[Mapping[str, Any]]) -> dict[Any, dict[tuple[int, str], tuple[int, int]]]:
    out: dict[Any, dict[tuple[int, str], tuple[int, int]]] = defaultdict(dict)
    for r in rows:
        out[(r["patient_id"], r["kind"])][(r["hour"], r["channel"])] = (
            r["successes"],
            r["failures"],
        )
    return out


def prior_from(org_counts: Mapping[tuple[int, str], tuple[int, int]], strength: float) -> Counts:
    """The organisation's counts shrunk to at most ``strength`` pseudo-reminders per option:
    its success rate carries over, its volume does not drown a patient's own answers."""
    prior: Counts = {}
    for key, (s, f) in org_counts.items():
        n = s + f
        if n <= 0:
            continue
        w = min(1.0, strength / n) if strength > 0 else 0.0
        prior[key] = (s * w, f * w)
    return prior


def sample(
    options: Sequence[tuple[int, str]],
    own: Mapping[tuple[int, str], tuple[int, int]],
    prior: Mapping[tuple[int, str], tuple[float, float]],
    rng: random.Random,
) -> tuple[int, str]:
    """Thompson sampling with hour and channel as two factors: each hour's rate is drawn from
    Beta(1 + successes, 1 + failures) pooled over the channels, each channel's pooled over the
    hours (prior and the patient's own counts), and the best hour goes with the best channel.

    Pooling is what lets a patient with a dozen reminders a month learn: 13 hours × 3 channels
    are 39 options to explore one by one, but only 13 + 3 as factors (a reminder at a good hour
    is answered more on any channel). The first option wins a tie."""
    if not options:
        raise ValueError("no option to sample from")

    pooled: tuple[dict[Any, list[float]], dict[Any, list[float]]] = ({}, {})
    for counts in (prior, own):
        for key, (ks, kf) in counts.items():
            for position in (0, 1):
                totals = pooled[position].setdefault(key[position], [0.0, 0.0])
                totals[0] += ks
                totals[1] += kf

    def best(values: Sequence[Any], position: int) -> Any:
        chosen, chosen_draw = values[0], -1.0
        for value in values:
            s, f = pooled[position].get(value, (0.0, 0.0))
            draw = rng.betavariate(1.0 + s, 1.0 + f)
            if draw > chosen_draw:
                chosen, chosen_draw = value, draw
        return chosen

    hours = list(dict.fromkeys(h for h, _c in options))
    channels = list(dict.fromkeys(c for _h, c in options))
    hour, channel = best(hours, 0), best(channels, 1)
    if (hour, channel) in options:
        return hour, channel
    return next(o for o in options if o[0] == hour)


# --- where and how a reminder may go -----------------------------------------------------------


def _local_due(occ: rm.Occurrence) -> datetime:
    return datetime.strptime(occ.local_due, "%Y-%m-%dT%H:%M")  # noqa: DTZ007 - patient-local


def slots(
    occ: rm.Occurrence,
    windows: Mapping[str, Any],
    quiet: tuple[time | None, time | None],
    earliest: datetime,
) -> dict[int, datetime]:
    """Local hour → the UTC instant the reminder would move to, for every allowed hour.

    A window kind may go to any whole hour in [from, until) of the same local day; medication
    to the dose time shifted by whole hours within the minutes allowed around it. The planned
    hour keeps its exact time. Hours in quiet hours, in a daylight-saving gap, or before
    ``earliest`` are left out.
    """
    tz = domain.zone(occ.time_zone)
    local = _local_due(occ)
    setting = windows.get(occ.kind)
    candidates: list[datetime] = []
    if occ.kind == m.MEDICATION:
        if setting is None:
            return {}
        steps = int(setting) // 60
        candidates = [local + timedelta(hours=k) for k in range(-steps, steps + 1)]
    else:
        if not isinstance(setting, list | tuple) or len(setting) != 2:
            return {}
        start, end = domain.parse_time(setting[0]), domain.parse_time(setting[1])
        for hour in range(24):
            at = local if hour == local.hour else datetime.combine(local.date(), time(hour, 0))
            if start <= at.time() < end:
                candidates.append(at)
    out: dict[int, datetime] = {}
    for when in candidates:
        if when.date() != local.date():
            continue
        if domain.in_quiet_hours(when.time(), quiet[0], quiet[1]):
            continue
        if when != local and domain.is_gap(when, tz):
            continue
        instant = domain.to_utc(when, tz)
        if instant < earliest:
            continue
        out[when.hour] = instant
    return out


def usable_channels(occ: rm.Occurrence, ctx: dispatcher.Context) -> list[str]:
    """The reminder's channels that are set up, consented to and have an address."""
    out = []
    for channel in dispatcher._channels_for(occ, ctx):  # noqa: SLF001 - the same ladder
        if channel in out:
            continue
        if channel != ChannelKind.OUTBOX and ctx.adapter(occ.organisation_id, channel) is None:
            continue
        if not dispatcher._consented(occ, channel, ctx):  # noqa: SLF001
            continue
        if not dispatcher._address(occ, channel, ctx):  # noqa: SLF001
            continue
        out.append(channel)
    return out


def _experiment_owns(payload: Any) -> bool:
    exp = payload.get("experiment") if isinstance(payload, dict) else None
    return isinstance(exp, dict) and exp.get("factor") in EXPERIMENT_FACTORS


def due_unrouted(
    organisation_id: int, kinds: Collection[str], start: datetime, end: datetime
) -> list[rm.Occurrence]:
    """Scheduled, untouched reminders of these kinds due in [start, end] with no route yet."""
    qs = (
        rm.Occurrence.objects.filter(
            organisation_id=organisation_id,
            status=S.SCHEDULED,
            step=0,
            tries=0,
            claimed_by="",
            kind__in=list(kinds),
            due_at__gte=start,
            due_at__lte=end,
        )
        .exclude(payload__has_key="route")
        .select_related("patient")
        .order_by("due_at", "id")
    )
    return [o for o in qs if not _experiment_owns(o.payload)]


def _write(writes: Sequence[tuple[rm.Occurrence, dict[str, Any]]]) -> set[int]:
    """Apply each write only where its row is still as read: scheduled, untried, unclaimed, not
    updated since and still without a route (so the dispatcher's claim always wins), and not
    put in an experiment since. One short transaction; returns the ids written."""
    if not writes:
        return set()
    by_fields: dict[tuple[str, ...], list[rm.Occurrence]] = defaultdict(list)
    with transaction.atomic():
        fresh = reminder_services.still_as_read(occ for occ, _values in writes)
        for occ, values in writes:
            payload = fresh.get(occ.pk)
            if payload is None or "route" in payload:
                continue
            if "experiment" in payload and "experiment" not in occ.payload:
                continue
            for name, value in values.items():
                setattr(occ, name, value)
            by_fields[tuple(values)].append(occ)
        for fields, rows in by_fields.items():
            update_rows(rows, fields)
    return {occ.pk for rows in by_fields.values() for occ in rows}


def rng_for(organisation_code: str, occ: rm.Occurrence) -> random.Random:
    """The draw of one reminder, seeded from the organisation and the reminder's own key, so
    the same organisation and reminders get the same choices on any database."""
    return random.Random(f"sendtime:{organisation_code}:{occ.source_key}")  # noqa: S311


@dataclass
class PlanStats:
    moved: int = 0
    kept: int = 0
    control: int = 0
    skipped: int = 0
    lost: int = 0

    @property
    def routed(self) -> int:
        return self.moved + self.kept + self.control


def plan_batch(
    organisation_id: int, now: datetime | None = None, horizon_hours: float = 36
) -> PlanStats:
    """``plan`` with the detail of what happened to each reminder it looked at."""
    now = now or utc_now()
    cfg = settings_for(organisation_id)
    windows = dict(cfg.windows or {})
    stats = PlanStats()
    occs = due_unrouted(
        organisation_id, windows.keys(), now + LEAD, now + timedelta(hours=horizon_hours)
    )
    if not occs:
        return stats
    arms = assignments(organisation_id, {o.patient_id for o in occs}, cfg.control_share, now)
    learners = [o for o in occs if arms.get(o.patient_id) == LEARN]
    ctx = dispatcher.load_context(learners, now)
    reminder_cfg = reminder_services.settings_for(organisation_id)
    org_code = str(
        Organisation.objects.filter(pk=organisation_id).values_list("code", flat=True).first()
    )
    own = _counts(
        m.Arm.objects.filter(
            organisation_id=organisation_id,
            patient_id__in={o.patient_id for o in learners},
        ).values("patient_id", "kind", "hour", "channel", "successes", "failures")
    )
    org_rows = _counts(
        m.Arm.objects.filter(organisation_id=organisation_id, patient__isnull=True).values(
            "patient_id", "kind", "hour", "channel", "successes", "failures"
        )
    )
    priors = {
        kind: prior_from(org_rows.get((None, kind), {}), cfg.prior_strength) for kind in windows
    }
    taken: set[tuple[int, str, str, int]] = set()  # (patient, activity, local date, hour)
    for occ in occs:
        original = _local_due(occ)
        taken.add((occ.patient_id, occ.activity_code, original.date().isoformat(), original.hour))
    writes: list[tuple[rm.Occurrence, dict[str, Any]]] = []
    outcome: dict[int, str] = {}
    for occ in occs:
        original = _local_due(occ)
        day = original.date().isoformat()
        route: dict[str, Any] = {"by": BY, "hour": original.hour}
        if arms.get(occ.patient_id) != LEARN:
            route["arm"] = CONTROL
            writes.append((occ, {"payload": {**occ.payload, "route": route}, "updated_at": now}))
            outcome[occ.pk] = "control"
            continue
        patient = occ.patient
        quiet = (
            patient.quiet_hours_start or reminder_cfg.quiet_start,
            patient.quiet_hours_end or reminder_cfg.quiet_end,
        )
        hours = slots(occ, windows, quiet, now + LEAD)
        for hour in list(hours):
            if hour != original.hour and (occ.patient_id, occ.activity_code, day, hour) in taken:
                del hours[hour]  # another reminder of the same activity is there that day
        channels = usable_channels(occ, ctx)
        if not hours or not channels:
            stats.skipped += 1
            continue
        options = [(h, c) for h in sorted(hours) for c in channels]
        hour, channel = sample(
            options,
            own.get((occ.patient_id, occ.kind), {}),
            priors.get(occ.kind, {}),
            rng_for(org_code, occ),
        )
        route.update(
            {"arm": LEARN, "hour": hour, "channel": channel, "original_due": occ.due_at.isoformat()}
        )
        values: dict[str, Any] = {"payload": {**occ.payload, "route": route}, "updated_at": now}
        target = hours[hour]
        if target != occ.due_at:
            tz = domain.zone(occ.time_zone)
            values.update(
                {
                    "due_at": target,
                    "wake_at": target,
                    "local_due": f"{domain.local_of(target, tz):%Y-%m-%dT%H:%M}",
                }
            )
        writes.append((occ, values))
        outcome[occ.pk] = "moved" if target != occ.due_at else "kept"
        taken.discard((occ.patient_id, occ.activity_code, day, original.hour))
        taken.add((occ.patient_id, occ.activity_code, day, hour))
    written = _write(writes)
    for pk, how in outcome.items():
        if pk not in written:
            stats.lost += 1
        elif how == "control":
            stats.control += 1
        elif how == "moved":
            stats.moved += 1
        else:
            stats.kept += 1
    return stats


def plan(organisation_id: int, now: datetime | None = None, horizon_hours: float = 36) -> int:
    """Route the organisation's reminders due in [now + 5 min, now + horizon]; returns how many
    were routed (moved or kept for the learn arm, marked for the control arm)."""
    return plan_batch(organisation_id, now, horizon_hours).routed


# --- learning ----------------------------------------------------------------------------------


def _final(
    row: Mapping[str, Any], first_sent: datetime | None, now: datetime
) -> tuple[bool, bool, bool] | None:
    """(sent, success, counted) of a routed reminder whose result is final, else None."""
    acked = row["acknowledged_at"]
    if first_sent is not None:
        if acked is not None and acked - first_sent <= ACK_WITHIN:
            return True, True, True
        if now - first_sent >= ACK_WITHIN:
            return True, False, True
        return None
    status = row["status"]
    if status in (S.DEAD, S.FAILED):
        return False, False, True  # the chosen channel could not deliver it
    if status in (S.SKIPPED, S.CANCELLED, S.ACKNOWLEDGED):
        return False, False, False  # never sent: says nothing about the hour
    return None


def _add_counts(
    organisation_id: int, delta: Mapping[tuple[int | None, str, int, str], list[int]]
) -> None:
    """Add successes and failures to existing Arm rows: one prepared UPDATE per row, run in
    the rows' key order (patients', then the organisation's) so two learners lock alike."""
    table = connection.ops.quote_name(m.Arm._meta.db_table)
    sql = (
        f"UPDATE {table} SET successes = successes + %s, failures = failures + %s "  # noqa: S608
        "WHERE organisation_id = %s AND kind = %s AND hour = %s AND channel = %s AND "
    )
    keyed = sorted(delta.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1:]))
    own: list[list[Any]] = [
        [s, f, organisation_id, k, h, c, pid] for (pid, k, h, c), (s, f) in keyed if pid
    ]
    org: list[list[Any]] = [
        [s, f, organisation_id, k, h, c] for (pid, k, h, c), (s, f) in keyed if not pid
    ]
    with connection.cursor() as cursor:
        if own:
            cursor.executemany(sql + "patient_id = %s", own)
        if org:
            cursor.executemany(sql + "patient_id IS NULL", org)


def learn(organisation_id: int, now: datetime | None = None) -> int:
    """Fold the final outcomes of routed reminders into the Arm counts, each exactly once
    (the patient's row and the organisation's prior row); returns how many were folded."""
    now = now or utc_now()
    pending = list(
        rm.Occurrence.objects.filter(
            organisation_id=organisation_id,
            payload__route__by=BY,
            due_at__gte=now - LOOKBACK,
            due_at__lte=now,
        )
        .exclude(Exists(m.Outcome.objects.filter(occurrence_id=OuterRef("pk"))))
        .values("id", "patient_id", "kind", "status", "acknowledged_at", "due_at", "payload")
    )
    if not pending:
        return 0
    first = dict(
        rm.Attempt.objects.filter(
            occurrence_id__in=[r["id"] for r in pending], outcome__in=[AO.ACCEPTED, AO.DELIVERED]
        )
        .values("occurrence_id")
        .annotate(first=Min("started_at"))
        .values_list("occurrence_id", "first")
    )
    outcomes: list[m.Outcome] = []
    for row in pending:
        route = row["payload"].get("route") or {}
        decided = _final(row, first.get(row["id"]), now)
        if decided is None:
            continue
        sent, success, counted = decided
        arm = LEARN if route.get("arm") == LEARN else CONTROL
        channel = str(route.get("channel") or "") if arm == LEARN else ""
        hour = route.get("hour")
        if not isinstance(hour, int) or not 0 <= hour <= 23:
            continue
        outcomes.append(
            m.Outcome(
                organisation_id=organisation_id,
                patient_id=row["patient_id"],
                occurrence_id=row["id"],
                arm=arm,
                kind=row["kind"],
                hour=hour,
                channel=channel,
                due_at=row["due_at"],
                sent=sent,
                success=success,
                counted=counted and arm == LEARN and bool(channel),
                decided_at=now,
            )
        )
    if not outcomes:
        return 0
    delta: dict[tuple[int | None, str, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        if not o.counted:
            continue
        for pid in (o.patient_id, None):
            delta[(pid, o.kind, o.hour, o.channel)][0 if o.success else 1] += 1
    try:
        with transaction.atomic():
            # A second learner running at once fails here on the unique occurrence and
            # changes nothing: its outcomes are already being folded by the first.
            m.Outcome.objects.bulk_create(outcomes)
            m.Arm.objects.bulk_create(
                [
                    m.Arm(
                        organisation_id=organisation_id, patient_id=pid, kind=k, hour=h, channel=c
                    )
                    for (pid, k, h, c) in delta
                ],
                ignore_conflicts=True,
            )
            _add_counts(organisation_id, delta)
    except IntegrityError:
        return 0
    return sum(1 for o in outcomes if o.counted)


# --- the report --------------------------------------------------------------------------------


wilson = stats.wilson  # Wilson score interval of a proportion


def newcombe(s1: int, n1: int, s0: int, n0: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p0 (his method 10)."""
    found = stats.newcombe(s1, n1, s0, n0)
    return found.low, found.high


def _rate(acked: int, sent: int) -> float | None:
    return acked / sent if sent else None


def _arm_figures(acked: int, sent: int) -> dict[str, Any]:
    return {"sent": sent, "acknowledged": acked, "rate": _rate(acked, sent)}


def _as_instant(value: date | datetime, tz: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return domain.to_utc(datetime.combine(value, time(0, 0)), tz)


def _lift(s1: int, n1: int, s0: int, n0: int) -> dict[str, Any]:
    """Learning minus control in acknowledgement rate, with its 95% Newcombe interval."""
    if not (n1 and n0):
        return {"absolute": None, "relative": None, "ci_low": None, "ci_high": None}
    p1, p0 = s1 / n1, s0 / n0
    low, high = newcombe(s1, n1, s0, n0)
    return {
        "absolute": p1 - p0,
        "relative": (p1 - p0) / p0 if p0 else None,
        "ci_low": low,
        "ci_high": high,
    }


def report(
    organisation_id: int,
    start: date | datetime,
    end: date | datetime,
    *,
    department_ids: Collection[int] | None = None,
) -> dict[str, Any]:
    """Acknowledgement of sent reminders per arm over [start, end) (dates are organisation-
    local days, ``end`` exclusive), the lift of learning over control with a 95% Newcombe
    interval, the hours and channels chosen, and weekly rates. ``department_ids`` limits it
    to those departments' patients."""
    tz = domain.zone(
        Organisation.objects.filter(pk=organisation_id).values_list("time_zone", flat=True).first()
        or "Asia/Shanghai"
    )
    lo, hi = _as_instant(start, tz), _as_instant(end, tz)
    qs = m.Outcome.objects.filter(organisation_id=organisation_id, due_at__gte=lo, due_at__lt=hi)
    if department_ids is not None:
        qs = qs.filter(
            Exists(
                pm.PatientDepartment.objects.filter(
                    patient_id=OuterRef("patient_id"), department_id__in=list(department_ids)
                )
            )
        )
    rows = list(
        qs.values("arm", "kind", "hour", "channel", "due_at", "sent", "success", "patient_id")
    )
    totals = {LEARN: [0, 0], CONTROL: [0, 0]}
    by_kind: dict[str, dict[str, list[int]]] = defaultdict(lambda: {LEARN: [0, 0], CONTROL: [0, 0]})
    hours = {LEARN: [0] * 24, CONTROL: [0] * 24}
    channels: dict[str, int] = defaultdict(int)
    weekly: dict[date, dict[str, list[int]]] = defaultdict(lambda: {LEARN: [0, 0], CONTROL: [0, 0]})
    patients: dict[str, set[int]] = {LEARN: set(), CONTROL: set()}
    for r in rows:
        if not r["sent"]:
            continue
        arm = r["arm"] if r["arm"] in totals else CONTROL
        acked = 1 if r["success"] else 0
        totals[arm][0] += acked
        totals[arm][1] += 1
        by_kind[r["kind"]][arm][0] += acked
        by_kind[r["kind"]][arm][1] += 1
        hours[arm][r["hour"] % 24] += 1
        patients[arm].add(r["patient_id"])
        if arm == LEARN and r["channel"]:
            channels[r["channel"]] += 1
        local = domain.local_of(r["due_at"], tz).date()
        monday = local - timedelta(days=local.weekday())
        weekly[monday][arm][0] += acked
        weekly[monday][arm][1] += 1
    (s1, n1), (s0, n0) = totals[LEARN], totals[CONTROL]
    lift = _lift(s1, n1, s0, n0)
    return {
        "organisation_id": organisation_id,
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "arms": {
            LEARN: {**_arm_figures(s1, n1), "patients": len(patients[LEARN])},
            CONTROL: {**_arm_figures(s0, n0), "patients": len(patients[CONTROL])},
        },
        "lift": {**lift, "method": "newcombe", "level": 0.95},
        "kinds": {
            kind: {
                LEARN: _arm_figures(*arms[LEARN]),
                CONTROL: _arm_figures(*arms[CONTROL]),
                "lift": _lift(*arms[LEARN], *arms[CONTROL]),
            }
            for kind, arms in sorted(by_kind.items())
        },
        "hours": hours,
        "channels": dict(sorted(channels.items())),
        "weeks": [
            {
                "week": monday.isoformat(),
                LEARN: _arm_figures(*weekly[monday][LEARN]),
                CONTROL: _arm_figures(*weekly[monday][CONTROL]),
            }
            for monday in sorted(weekly)
        ],
    }


# --- the worker's hourly job -------------------------------------------------------------------


def run_periodic(now: datetime | None = None) -> dict[int, tuple[int, int]]:
    """Plan and learn for every enabled organisation; (planned, learned) per organisation."""
    now = now or utc_now()
    done = {}
    for org_id in enabled_organisations():
        done[org_id] = (plan(org_id, now=now), learn(org_id, now=now))
    return done
