"""An experiment's results per arm, its comparisons with the control arm, and its stop rules.

Outcomes (each arm's patients, over the experiment's period):

- acknowledgement rate: reminders of the experiment that were sent (an attempt accepted or
  delivered) and acknowledged within 12 hours of the first accepted attempt, over those sent.
  The unit is the reminder; a patient's reminders are not independent, so the interval is
  narrower than a patient-level one would be;
- return to care within 15 days: among the arm's patients who missed an appointment during the
  experiment (their first such miss), the share with an attended appointment in the 15 days
  after it or a visit (encounter) from that day to 15 days later. A miss less than 15 days ago
  counts only once the patient is back;
- PDC: the mean over the arm's eligible patients of their proportion of days covered from the
  start of the experiment to its end (careloop.analytics.pdc; a patient with several drug
  classes counts with the mean of them).

Each treatment arm against the control arm: for proportions the difference with Newcombe's
95% interval, the relative risk with its log interval and the pooled z test; for PDC the
difference of means with the Welch interval and test.

Stop rules (``evaluate``): the experiment completes when every arm has ``max_per_arm``
patients or its last day has passed. From ``min_per_arm`` patients in every arm, an interim
analysis is taken each time the information fraction (patients in the smallest arm ÷
``max_per_arm``) passes the next of ``looks`` equally spaced fractions; the primary outcome's
z of each treatment arm is compared with the Lan–DeMets O'Brien–Fleming-type boundary for the
looks taken so far (alpha shared equally between the treatment arms). Crossing above stops for
efficacy, below for harm. Every analysis is kept as a ``Look``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Min, Q

from careloop.analytics import pdc as pdc_mod
from careloop.appointments.models import Appointment
from careloop.audit import services as audit
from careloop.careplans import domain
from careloop.experiments import stats
from careloop.experiments.models import Assignment, Experiment, Look, Outcome, Status
from careloop.kit.clock import utc_now
from careloop.patients.models import Encounter
from careloop.reminders import models as rm

ACK_WITHIN = timedelta(hours=12)
RETURN_WITHIN = timedelta(days=15)
PROPORTIONS = (Outcome.ACK_RATE, Outcome.RETURN_15D)


def _zone(exp: Experiment) -> Any:
    try:
        return domain.zone(exp.organisation.time_zone or "Asia/Shanghai")
    except domain.ScheduleError:
        return domain.zone("Asia/Shanghai")


def ack_counts(exp: Experiment, arm_of: dict[int, str]) -> dict[str, tuple[int, int]]:
    """arm → (acknowledged within 12 h of the first send, sent)."""
    rows = (
        rm.Occurrence.objects.filter(
            organisation_id=exp.organisation_id, payload__experiment__id=exp.pk
        )
        .values_list("pk", "patient_id", "acknowledged_at")
        .annotate(
            first=Min(
                "attempts__started_at",
                filter=Q(attempts__outcome__in=["accepted", "delivered"]),
            )
        )
    )
    acked: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    for _pk, patient_id, ack_at, first in rows:
        arm = arm_of.get(patient_id)
        if arm is None or first is None:
            continue
        sent[arm] += 1
        if ack_at is not None and ack_at <= first + ACK_WITHIN:
            acked[arm] += 1
    return {arm: (acked[arm], sent[arm]) for arm in sent}


def return_counts(
    exp: Experiment, arm_of: dict[int, str], start: datetime, end: datetime, now: datetime
) -> dict[str, tuple[int, int]]:
    """arm → (back within 15 days of their first missed appointment, patients who missed one
    whose 15 days are over or who are back)."""
    misses: dict[int, tuple[datetime, Any]] = {}
    for pid, at, day in (
        Appointment.objects.filter(
            organisation_id=exp.organisation_id,
            patient_id__in=list(arm_of),
            status=Appointment.Status.NO_SHOW,
            starts_at__gte=start,
            starts_at__lte=end,
        )
        .order_by("patient_id", "starts_at")
        .values_list("patient_id", "starts_at", "local_date")
    ):
        misses.setdefault(pid, (at, day))
    if not misses:
        return {}
    earliest = min(at for at, _d in misses.values())
    latest = max(at for at, _d in misses.values())
    attended: dict[int, list[datetime]] = defaultdict(list)
    for pid, at in Appointment.objects.filter(
        patient_id__in=list(misses),
        status__in=[Appointment.Status.COMPLETED, Appointment.Status.CHECKED_IN],
        starts_at__gt=earliest,
        starts_at__lte=latest + RETURN_WITHIN,
    ).values_list("patient_id", "starts_at"):
        attended[pid].append(at)
    first_day = min(d for _a, d in misses.values())
    last_day = max(d for _a, d in misses.values())
    visits: dict[int, list[Any]] = defaultdict(list)
    for pid, day in Encounter.objects.filter(
        patient_id__in=list(misses),
        deleted_at__isnull=True,
        admitted_on__gte=first_day,
        admitted_on__lte=last_day + RETURN_WITHIN,
    ).values_list("patient_id", "admitted_on"):
        visits[pid].append(day)
    back: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    for pid, (at, day) in misses.items():
        arm = arm_of[pid]
        returned = any(at < a <= at + RETURN_WITHIN for a in attended[pid]) or any(
            day <= v <= day + RETURN_WITHIN for v in visits[pid]
        )
        if returned or at + RETURN_WITHIN <= now:
            counted[arm] += 1
            back[arm] += int(returned)
    return {arm: (back[arm], counted[arm]) for arm in counted}


def pdc_values(
    exp: Experiment, arm_of: dict[int, str], start: datetime, end: datetime
) -> dict[str, list[float]]:
    """arm → the PDC of each eligible patient over the experiment's period."""
    tz = _zone(exp)
    first, last = domain.local_of(start, tz).date(), domain.local_of(end, tz).date()
    if last <= first or not arm_of:
        return {}
    table = connection.ops.quote_name(Assignment._meta.db_table)
    cohort = (f"SELECT patient_id FROM {table} WHERE experiment_id = %s", [exp.pk])  # noqa: S608
    result = pdc_mod.pdc(exp.organisation_id, first, last, cohort)
    per_patient: dict[int, list[float]] = defaultdict(list)
    for row in result.rows():
        if row["eligible"]:
            per_patient[row["patient_id"]].append(row["pdc"])
    out: dict[str, list[float]] = defaultdict(list)
    for pid, values in sorted(per_patient.items()):
        if pid in arm_of:
            out[arm_of[pid]].append(sum(values) / len(values))
    return dict(out)


def _rate(x: int, n: int) -> dict[str, Any]:
    if n <= 0:
        return {"successes": x, "n": n, "rate": None, "low": None, "high": None}
    low, high = stats.wilson(x, n)
    return {"successes": x, "n": n, "rate": x / n, "low": low, "high": high}


def _mean(values: list[float]) -> dict[str, Any]:
    mean, var = stats.mean_var(values)
    n = len(values)
    return {
        "n": n,
        "mean": mean if n else None,
        "sd": math.sqrt(var) if n > 1 else None,
        "var": var,
    }


def compare_proportions(
    arm: str, outcome: str, x1: int, n1: int, x2: int, n2: int
) -> dict[str, Any]:
    row: dict[str, Any] = {"arm": arm, "outcome": outcome, "difference": None, "low": None,
                           "high": None, "relative_risk": None, "rr_low": None, "rr_high": None,
                           "z": None, "p_value": None}  # fmt: skip
    if n1 <= 0 or n2 <= 0:
        return row
    d = stats.newcombe(x1, n1, x2, n2)
    z, p = stats.two_proportions_z(x1, n1, x2, n2)
    row.update({"difference": d.estimate, "low": d.low, "high": d.high, "z": z, "p_value": p})
    rr = stats.relative_risk(x1, n1, x2, n2)
    if rr is not None:
        row.update({"relative_risk": rr.estimate, "rr_low": rr.low, "rr_high": rr.high})
    return row


def compare_means(arm: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"arm": arm, "outcome": Outcome.PDC.value, "difference": None,
                           "low": None, "high": None, "relative_risk": None, "rr_low": None,
                           "rr_high": None, "z": None, "p_value": None}  # fmt: skip
    if not a["n"] or not b["n"]:
        return row
    w = stats.welch(a["mean"], a["var"], a["n"], b["mean"], b["var"], b["n"])
    if w is None:
        row["difference"] = a["mean"] - b["mean"]
        return row
    row.update({"difference": w.estimate, "low": w.low, "high": w.high, "z": w.t,
                "p_value": w.p_value})  # fmt: skip
    return row


def results(exp: Experiment, now: datetime | None = None) -> dict[str, Any]:
    """Per arm: patients, acknowledgement rate, return to care within 15 days and mean PDC;
    each treatment arm against the control arm (see the module)."""
    now = now or utc_now()
    start = exp.started_at or now
    end = min(exp.ended_at or now, now)
    arm_of = dict(Assignment.objects.filter(experiment=exp).values_list("patient_id", "arm"))
    patients = Counter(arm_of.values())
    acks = ack_counts(exp, arm_of)
    returns = return_counts(exp, arm_of, start, end, now)
    pdcs = pdc_values(exp, arm_of, start, end)
    arms: list[dict[str, Any]] = []
    for arm in exp.arms:
        code = arm["code"]
        arms.append(
            {
                "code": code,
                "name": arm.get("name") or code,
                "control": bool(arm.get("control")),
                "weight": arm.get("weight", 1),
                "params": arm.get("params") or {},
                "patients": patients.get(code, 0),
                Outcome.ACK_RATE.value: _rate(*acks.get(code, (0, 0))),
                Outcome.RETURN_15D.value: _rate(*returns.get(code, (0, 0))),
                Outcome.PDC.value: _mean(pdcs.get(code, [])),
            }
        )
    control = next((a for a in arms if a["control"]), None)
    comparisons: list[dict[str, Any]] = []
    if control is not None:
        for a in arms:
            if a["control"]:
                continue
            for outcome in PROPORTIONS:
                mine, theirs = a[outcome.value], control[outcome.value]
                comparisons.append(
                    compare_proportions(a["code"], outcome.value, mine["successes"], mine["n"],
                                        theirs["successes"], theirs["n"])
                )  # fmt: skip
            comparisons.append(compare_means(a["code"], a["pdc"], control["pdc"]))
    return {
        "experiment": exp.code,
        "status": exp.status,
        "primary": exp.primary_outcome,
        "factor": exp.factor,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "as_of": now.isoformat(),
        "arms": arms,
        "comparisons": comparisons,
    }


# --- stop rules ---------------------------------------------------------------------------------


def _primary_counts(res: dict[str, Any], primary: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in res["arms"]:
        value = arm[primary]
        entry: dict[str, Any] = {"patients": arm["patients"]}
        if primary in (o.value for o in PROPORTIONS):
            entry.update({"successes": value["successes"], "n": value["n"]})
        else:
            entry.update({"n": value["n"], "mean": value["mean"]})
        out[arm["code"]] = entry
    return out


def evaluate(exp: Experiment, now: datetime | None = None) -> Look | None:
    """Apply the stop rules now; returns the analysis taken (None when none was due)."""
    from careloop.experiments import services

    now = now or utc_now()
    exp.refresh_from_db()
    if exp.status != Status.RUNNING:
        return None
    counts = services.arm_counts(exp)
    smallest = min((counts.get(a["code"], 0) for a in exp.arms), default=0)
    today = services.organisation_today(exp.organisation_id, now)
    complete = ""
    if smallest >= exp.max_per_arm:
        complete = "max_per_arm"
    elif exp.end_date is not None and today > exp.end_date:
        complete = "end_date"
    done = list(exp.looks_done.order_by("number"))
    previous = [look.information for look in done]
    if complete:
        information = 1.0
    else:
        if smallest < exp.min_per_arm or len(done) >= exp.looks - 1:
            return None  # too few patients, or only the final analysis is left
        information = min(1.0, smallest / exp.max_per_arm)
        if information < (len(done) + 1) / exp.looks:
            return None
    if previous and information <= previous[-1]:
        return None
    treatments = [a for a in exp.arms if not a.get("control")]
    alpha = exp.alpha / max(1, len(treatments))
    boundary = stats.boundaries([*previous, information], alpha)[-1]
    res = results(exp, now)
    primary = exp.primary_outcome
    statistics = []
    crossed_up: list[str] = []
    crossed_down: list[str] = []
    for row in res["comparisons"]:
        if row["outcome"] != primary:
            continue
        z = row["z"]
        statistics.append(
            {"arm": row["arm"], "z": z, "difference": row["difference"], "low": row["low"],
             "high": row["high"], "p_value": row["p_value"]}
        )  # fmt: skip
        if z is not None and z >= boundary:
            crossed_up.append(f"{row['arm']} z={z:.2f}")
        elif z is not None and z <= -boundary:
            crossed_down.append(f"{row['arm']} z={z:.2f}")
    bound_text = f"|z| >= {boundary:.3f}" if math.isfinite(boundary) else "no boundary"
    crossed = [f"worse than control: {', '.join(crossed_down)}"] if crossed_down else []
    crossed += [f"better than control: {', '.join(crossed_up)}"] if crossed_up else []
    if complete:  # the final analysis: what crossed is the result, not a reason to stop
        decision, reason = Look.Decision.COMPLETE, "; ".join([complete, *crossed])
    elif crossed_down:
        decision, reason = Look.Decision.HARM, crossed[0]
    elif crossed_up:
        decision, reason = Look.Decision.EFFICACY, crossed[0]
    else:
        decision, reason = Look.Decision.CONTINUE, "no arm crossed the boundary"
    look = Look.objects.create(
        experiment=exp,
        number=len(done) + 1,
        at=now,
        information=information,
        boundary=boundary if math.isfinite(boundary) else None,
        counts=_primary_counts(res, primary),
        statistics=statistics,
        decision=decision,
        reason=f"{reason} ({bound_text}, information {information:.2f})"[:300],
    )
    if decision in (Look.Decision.HARM, Look.Decision.EFFICACY):
        services.finish(exp, Status.STOPPED, decision, look.reason, now)
    elif decision == Look.Decision.COMPLETE:
        services.finish(exp, Status.COMPLETED, complete, look.reason, now)
    audit.append(
        action="experiment.look",
        organisation_id=exp.organisation_id,
        actor_name="experiments",
        object_type="experiments.experiment",
        object_id=exp.pk,
        detail={"look": look.number, "decision": decision, "reason": look.reason},
    )
    return look
