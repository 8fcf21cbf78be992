"""What a simulation produced, read back from the database it wrote (plus the hidden traits)."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from careloop.simulator.engine import Simulation

HOME_CONTROL = (135, 85)  # home blood pressure target (mmHg)


def _p90(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)])


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _day_of(sim: Simulation, moment: Any) -> int:
    return int((moment - sim.start) // timedelta(days=1))


def build(sim: Simulation, finals: dict[str, Any]) -> dict[str, Any]:
    from careloop.alerts import models as alm
    from careloop.appointments import models as am
    from careloop.reminders import models as rm

    org_id = sim.world.org.pk
    days = sim.o.days
    sent_ok = [rm.Attempt.Outcome.ACCEPTED, rm.Attempt.Outcome.DELIVERED]

    # --- reminders ---------------------------------------------------------------------------
    by_channel = Counter(
        dict(
            _count(
                rm.Attempt.objects.filter(organisation_id=org_id, outcome__in=sent_ok),
                "channel",
            )
        )
    )
    first: dict[int, tuple[Any, str, str, int]] = {}
    for occ_id, started, channel, kind, pid in (
        rm.Attempt.objects.filter(organisation_id=org_id, outcome__in=sent_ok)
        .order_by("started_at", "pk")
        .values_list("occurrence_id", "started_at", "channel", "occurrence__kind", "patient_id")
        .iterator(chunk_size=5000)
    ):
        first.setdefault(occ_id, (started, channel, kind, pid))
    acked = dict(
        rm.Occurrence.objects.filter(organisation_id=org_id, acknowledged_at__isnull=False)
        .values_list("pk", "acknowledged_at")
        .iterator(chunk_size=5000)
    )
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_distance: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for occ_id, (started, _channel, kind, pid) in first.items():
        ok = occ_id in acked and acked[occ_id] - started <= timedelta(hours=12)
        kinds[kind][0] += 1
        kinds[kind][1] += int(ok)
        patient = sim.world.by_pid.get(pid)
        if patient is None:
            continue
        hour = started.astimezone(sim.zone).hour
        gap = min(abs(hour - patient.traits.peak_hour), 24 - abs(hour - patient.traits.peak_hour))
        band = "0-1h" if gap <= 1 else ("2-4h" if gap <= 4 else "5h+")
        # Answered within two hours: to this first message, before any escalation.
        quick = occ_id in acked and acked[occ_id] - started <= timedelta(hours=2)
        by_distance[band][0] += 1
        by_distance[band][1] += int(quick)
    sent_total = sum(v[0] for v in kinds.values())
    ack_total = sum(v[1] for v in kinds.values())

    # --- adherence and blood pressure -------------------------------------------------------
    per_patient = [p.taken / p.doses for p in sim.world.patients if p.doses]
    intake = Counter(dict(_count(rm.IntakeEvent.objects.filter(organisation_id=org_id), "status")))
    home = _home_bp(sim)
    early = [v for v in (home[p.pid]["early"] for p in sim.world.patients) if v]
    late = [v for v in (home[p.pid]["late"] for p in sim.world.patients) if v]
    adherent, poor = [], []
    for p in sim.world.patients:
        recent = [taken for day, taken in p.history if day >= days - 28]
        readings = home[p.pid]["late"]
        if len(recent) < 7 or not readings:
            continue
        share = sum(recent) / len(recent)
        mean_sbp = statistics.fmean(s for s, _d in readings)
        if share >= 0.8:
            adherent.append(mean_sbp)
        elif share < 0.5:
            poor.append(mean_sbp)

    # --- staff workload and alerts ---------------------------------------------------------
    opened = Counter(
        _day_of(sim, t)
        for t in alm.Task.objects.filter(organisation_id=org_id).values_list(
            "created_at", flat=True
        )
    )
    closed = Counter(
        _day_of(sim, t)
        for t in alm.Task.objects.filter(
            organisation_id=org_id, closed_at__isnull=False
        ).values_list("closed_at", flat=True)
    )
    alerts_by_rule: dict[str, Counter[int]] = defaultdict(Counter)
    for rule, raised in alm.Alert.objects.filter(organisation_id=org_id).values_list(
        "rule", "raised_at"
    ):
        alerts_by_rule[rule][_day_of(sim, raised)] += 1
    calls_per_day: Counter[int] = Counter()
    per_nurse: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for (day, nurse), n in sim.calls.items():
        calls_per_day[day] += n
        if 0 <= day < days:
            per_nurse[nurse][day] += n
    for actors in sim.world.nurses.values():
        for actor in actors:
            per_nurse.setdefault(actor.user.username, [0] * days)
    open_at_end = alm.Task.objects.filter(organisation_id=org_id, status="open").count()
    per_day = [
        {
            "day": d,
            "tasks_opened": opened.get(d, 0),
            "tasks_closed": closed.get(d, 0),
            "calls": calls_per_day.get(d, 0),
            "patients_reached": sim.reached.get(d, 0),
            "alerts": sum(c.get(d, 0) for c in alerts_by_rule.values()),
        }
        for d in range(days)
    ]

    def spread(key: str) -> dict[str, float]:
        values = [float(row[key]) for row in per_day]
        return {"mean": round(statistics.fmean(values), 1) if values else 0.0,
                "p90": _p90(values)}  # fmt: skip

    visits = Counter(
        dict(
            _count(
                am.Appointment.objects.filter(organisation_id=org_id),
                "status",
            )
        )
    )
    attended = visits.get("completed", 0) + visits.get("checked_in", 0)
    result: dict[str, Any] = {
        "patients": sim.o.patients,
        "days": days,
        "seed": sim.o.seed,
        "start": sim.o.start.isoformat(),
        "organisation": sim.world.org.code,
        "skipped": sorted(sim.o.without),
        "reminders": {
            "sent_by_channel": dict(sorted(by_channel.items())),
            "reminders_sent": sent_total,
            "acknowledged_within_12h": ack_total,
            "ack_rate": _rate(ack_total, sent_total),
            "ack_rate_by_kind": {k: _rate(v[1], v[0]) for k, v in sorted(kinds.items())},
        },
        "adherence": {
            "doses": sum(p.doses for p in sim.world.patients),
            "doses_taken_share": _rate(
                sum(p.taken for p in sim.world.patients), sum(p.doses for p in sim.world.patients)
            ),
            "mean_patient_dose_adherence": round(statistics.fmean(per_patient), 4)
            if per_patient
            else None,
            "intake_answers": dict(sorted(intake.items())),
        },
        "blood_pressure": {
            "target": f"home < {HOME_CONTROL[0]}/{HOME_CONTROL[1]}",
            "controlled_first_14_days": _controlled(early),
            "controlled_last_14_days": _controlled(late),
            "patients_with_readings": [len(early), len(late)],
        },
        "visits": {
            "booked": sum(visits.values()),
            "attended": attended,
            "no_show": visits.get("no_show", 0),
            "no_show_rate": _rate(visits.get("no_show", 0), attended + visits.get("no_show", 0)),
        },
        "messages_from_patients": sim.messages,
        "workload": {
            "nurses": sum(len(v) for v in sim.world.nurses.values()),
            "capacity_per_nurse_per_day": sim.o.nurse_capacity,
            "tasks_opened_per_day": spread("tasks_opened"),
            "tasks_closed_per_day": spread("tasks_closed"),
            "calls_per_day": spread("calls"),
            "calls_per_nurse_per_day": {
                name: {"mean": round(statistics.fmean(v), 1), "p90": _p90([float(x) for x in v])}
                for name, v in sorted(per_nurse.items())
            },
            "tasks_open_at_end": open_at_end,
        },
        "alerts": {
            "total": sum(sum(c.values()) for c in alerts_by_rule.values()),
            "per_day_by_rule": {
                rule: round(sum(c.values()) / days, 2) for rule, c in sorted(alerts_by_rule.items())
            },
        },
        "per_day": per_day,
        "signals": {
            "first_message_answered_by_hours_from_peak": {
                band: _rate(v[1], v[0]) for band, v in sorted(by_distance.items())
            },
            "late_home_sbp_by_adherence": {
                "adherent_ge_80": round(statistics.fmean(adherent), 1) if adherent else None,
                "poor_lt_50": round(statistics.fmean(poor), 1) if poor else None,
                "patients": [len(adherent), len(poor)],
            },
        },
    }
    if "sendtime" in finals:
        result["sendtime"] = finals["sendtime"]
    if "experiment" in finals:
        result["experiment"] = finals["experiment"]
    if "risk" in finals:
        result["risk"] = _risk(finals["risk"])
    return result


def _count(qs: Any, field: str) -> list[tuple[Any, int]]:
    from django.db.models import Count

    return [(row[field], row["n"]) for row in qs.values(field).annotate(n=Count("pk")).order_by()]


def _home_bp(sim: Simulation) -> dict[int, dict[str, list[tuple[float, float]]]]:
    from careloop.observations import models as om

    out: dict[int, dict[str, list[tuple[float, float]]]] = {
        p.pid: {"early": [], "late": []} for p in sim.world.patients
    }
    early_end = sim.start + timedelta(days=14)
    late_start = sim.end - timedelta(days=14)
    for pid, sbp, dbp, at in (
        om.Observation.objects.filter(organisation_id=sim.world.org.pk, kind="bp")
        .exclude(source="his")
        .values_list("patient_id", "value", "value2", "effective_at")
        .iterator(chunk_size=5000)
    ):
        if pid not in out:
            continue
        if at < early_end:
            out[pid]["early"].append((sbp, dbp or 0.0))
        elif at >= late_start:
            out[pid]["late"].append((sbp, dbp or 0.0))
    return out


def _controlled(groups: list[list[tuple[float, float]]]) -> float | None:
    if not groups:
        return None
    ok = 0
    for readings in groups:
        sbp = statistics.fmean(s for s, _d in readings)
        dbp = statistics.fmean(d for _s, d in readings)
        ok += int(sbp < HOME_CONTROL[0] and dbp < HOME_CONTROL[1])
    return round(ok / len(groups), 4)


def _find(card: Any, key: str) -> Any:
    """The first value under ``key`` anywhere in the model card."""
    if isinstance(card, dict):
        if key in card:
            return card[key]
        for value in card.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _risk(risk: dict[str, Any]) -> dict[str, Any]:
    if "error" in risk:
        return risk
    card = risk.get("card") or {}
    metrics = card.get("metrics") or {}
    return {
        "model_version": risk.get("version"),
        "auroc": metrics.get("auroc") or _find(card, "auroc"),
        "brier": metrics.get("brier") or _find(card, "brier"),
        "data": card.get("data"),
    }


def text(result: dict[str, Any]) -> str:
    """The summary for people: a few lines."""
    r = result["reminders"]
    a = result["adherence"]
    bp = result["blood_pressure"]
    w = result["workload"]
    v = result["visits"]
    lines = [
        f"simulated {result['patients']} patients for {result['days']} days "
        f"(seed {result['seed']}, from {result['start']}) in {result.get('runtime_seconds')} s",
        f"reminders sent: {r['reminders_sent']} ({_pairs(r['sent_by_channel'])}); "
        f"acknowledged within 12 h: {_pct(r['ack_rate'])}",
        f"doses taken: {_pct(a['doses_taken_share'])} of {a['doses']}; "
        f"home BP controlled: {_pct(bp['controlled_first_14_days'])} first 14 days -> "
        f"{_pct(bp['controlled_last_14_days'])} last 14 days",
        f"visits: {v['booked']} booked, no-show rate {_pct(v['no_show_rate'])}; "
        f"patient messages: {result['messages_from_patients']}",
        f"nurses: {w['nurses']}, tasks opened/day {w['tasks_opened_per_day']['mean']} "
        f"(p90 {w['tasks_opened_per_day']['p90']}), calls/day {w['calls_per_day']['mean']} "
        f"(p90 {w['calls_per_day']['p90']}), open at end {w['tasks_open_at_end']}",
        f"alerts: {result['alerts']['total']} ({_pairs(result['alerts']['per_day_by_rule'])} "
        "per day)",
    ]
    if "sendtime" in result:
        lines.append(_sendtime_line(result["sendtime"]))
    if "risk" in result:
        risk = result["risk"]
        if "error" in risk:
            lines.append(f"risk model: not trained ({risk['error']})")
        else:
            lines.append(_risk_line(risk))
    if result["skipped"]:
        lines.append(f"not run: {', '.join(result['skipped'])}")
    return "\n".join(lines)


def _sendtime_line(report: dict[str, Any]) -> str:
    arms = report.get("arms") or {}
    learn, control = arms.get("learn") or {}, arms.get("control") or {}
    line = (
        f"send-time learning: acknowledged {_pct(learn.get('rate'))} (learn) vs "
        f"{_pct(control.get('rate'))} (control)" + _lift_text(report.get("lift") or {})
    )
    for kind, figures in (report.get("kinds") or {}).items():
        line += (
            f"\n  {kind}: {_pct(figures['learn'].get('rate'))} vs "
            f"{_pct(figures['control'].get('rate'))}" + _lift_text(figures.get("lift") or {})
        )
    return line


def _lift_text(lift: dict[str, Any]) -> str:
    if lift.get("absolute") is None:
        return ""
    text = f"; lift {100 * lift['absolute']:+.1f} points"
    if lift.get("ci_low") is not None and lift.get("ci_high") is not None:
        text += f" (95% CI {100 * lift['ci_low']:+.1f} to {100 * lift['ci_high']:+.1f})"
    return text


def _risk_line(risk: dict[str, Any]) -> str:
    auroc = risk.get("auroc")
    if not isinstance(auroc, dict):
        return f"risk model v{risk['model_version']}: AUROC {auroc}"
    line = (
        f"risk model v{risk['model_version']}: AUROC {auroc.get('model')} on held-out time vs "
        f"{auroc.get('baseline')} for the baseline (last-30-day acknowledgement)"
    )
    if auroc.get("difference") is not None:
        line += f"; difference {auroc['difference']:+.3f}"
        interval = auroc.get("difference_ci")
        if interval:
            line += f" (95% CI {interval[0]:+.3f} to {interval[1]:+.3f})"
    return line


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "none"
