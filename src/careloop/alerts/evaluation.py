"""Runs the rule engine (careloop.rules) on what comes in and turns its fires into alerts.

Streaming: each ingest chunk feeds its new events to the patients' saved engine states, inside
the ingest transaction. A patient without a state (or whose state belongs to other rules, or who
receives an event older than the newest one fed) is replayed from the stored history instead;
only fires at or after the earliest new event become alerts, so a replay never raises alerts
for the past twice. `recompute` replays everyone and must give the same fires as streaming.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from careloop.alerts import models as am
from careloop.alerts import routing
from careloop.kit.clock import epoch_seconds, utc_now
from careloop.kit.rows import row_sources
from careloop.observations import selectors as observation_selectors
from careloop.rules import DEFAULT_RULES, Clear, Event, Fire, RuleSet, State, load_file

_cache: dict[int, tuple[Any, RuleSet]] = {}
_file_rules: list[dict[str, Any]] | None = None


def file_rules() -> list[dict[str, Any]]:
    global _file_rules
    if _file_rules is None:
        _file_rules = [dict(d) for d in load_file(DEFAULT_RULES)]
    return _file_rules


def definitions_for(organisation_id: int) -> list[dict[str, Any]]:
    """The file rules with the organisation's admin-edited rules layered over them by code."""
    by_code = {d["code"]: dict(d) for d in file_rules()}
    for row in am.RuleDefinition.objects.filter(organisation_id=organisation_id):
        definition = {**row.definition, "code": row.code, "enabled": row.enabled}
        by_code[row.code] = definition
    return list(by_code.values())


def ruleset_for(organisation_id: int) -> RuleSet:
    """The compiled rules of an organisation, compiled again only when an admin edits one."""
    stamp = tuple(
        am.RuleDefinition.objects.filter(organisation_id=organisation_id)
        .order_by("pk")
        .values_list("pk", "updated_at", "enabled")
    )
    cached = _cache.get(organisation_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    ruleset = RuleSet.compile(definitions_for(organisation_id))
    _cache[organisation_id] = (stamp, ruleset)
    return ruleset


def forget_rules(organisation_id: int | None = None) -> None:
    if organisation_id is None:
        _cache.clear()
    else:
        _cache.pop(organisation_id, None)


# --- entry points -----------------------------------------------------------------------------


def on_readings(
    organisation_id: int, fresh: Sequence[tuple[int, Any]], first_time: set[int] | None = None
) -> int:
    """Feed newly stored readings (id, observations.domain.Reading); the number of alerts raised.
    `first_time`: patients whose first readings these are (nothing to replay for them)."""
    events = [
        Event(
            r.patient_id,
            r.kind,
            epoch_seconds(r.effective_at),
            r.local_day,
            r.local_hour,
            r.value,
            r.value2,
            r.context,
            (),
            pk,
            r.source,
        )
        for pk, r in fresh
    ]
    return evaluate(organisation_id, events, first_time)


def make_event(
    patient_id: int,
    *,
    kind: str,
    at: datetime,
    zone: str,
    value: float,
    value2: float | None = None,
    context: str = "",
    items: tuple[float, ...] = (),
    ref: int = 0,
) -> Event:
    local = at.astimezone(ZoneInfo(zone))
    return Event(
        patient_id,
        kind,
        epoch_seconds(at),
        local.toordinal(),
        local.hour,
        value,
        value2,
        context,
        tuple(items),
        ref,
    )


def on_event(organisation_id: int, patient_id: int, **fields: Any) -> int:
    """Feed one non-reading event (adverse reaction, dose, questionnaire, symptom)."""
    return evaluate(organisation_id, [make_event(patient_id, **fields)])


def evaluate(
    organisation_id: int, events: Sequence[Event], first_time: set[int] | None = None
) -> int:
    """Streaming evaluation of new events, inside the caller's transaction."""
    ruleset = ruleset_for(organisation_id)
    kinds = ruleset.kinds
    by_patient: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        if event.kind in kinds:
            by_patient[event.patient_id].append(event)
    if not by_patient:
        return 0
    pids = list(by_patient)
    saved = {
        pid: (version, watermark, text)
        for pid, version, watermark, text in am.RuleState.objects.filter(
            patient_id__in=pids
        ).values_list("patient_id", "version", "watermark", "state")
    }
    personal = personal_thresholds(pids)
    outputs: list[Fire | Clear] = []
    states: dict[int, tuple[State, int]] = {}
    replay: dict[int, int] = {}  # patient → earliest new event time
    for pid, evs in by_patient.items():
        evs.sort(key=_order)
        found = saved.get(pid)
        if found is None and first_time is not None and pid in first_time:
            found = (ruleset.version, 0, "")
        if found is None or found[0] != ruleset.version or evs[0].at < found[1]:
            replay[pid] = evs[0].at
            continue
        state = State.from_json(found[2]) if found[2] else ruleset.new_state()
        mine = personal.get(pid)
        for event in evs:
            outputs += ruleset.feed(state, event, mine)
        states[pid] = (state, max(found[1], evs[-1].at))
    if replay:
        history = observation_selectors.history_events(list(replay), kinds)
        for pid, since in replay.items():
            state, fired = ruleset.replay(history.get(pid, []), personal.get(pid))
            outputs += [o for o in fired if o.at >= since]
            evs = history.get(pid) or by_patient[pid]
            states[pid] = (state, max(e.at for e in evs))
    _save_states(ruleset.version, states)
    return apply(organisation_id, ruleset, outputs)


def _order(event: Event) -> tuple[int, int]:
    return (event.at, event.ref)


def personal_thresholds(patient_ids: Iterable[int]) -> dict[int, dict[str, dict[str, float]]]:
    found: dict[int, dict[str, dict[str, float]]] = defaultdict(dict)
    for pid, rule, params in am.PersonalThreshold.objects.filter(
        patient_id__in=list(patient_ids)
    ).values_list("patient_id", "rule", "params"):
        found[pid][rule] = {k: float(v) for k, v in params.items()}
    return dict(found)


def _save_states(version: str, states: dict[int, tuple[State, int]]) -> None:
    if not states:
        return
    table = am.RuleState._meta.db_table
    rows = [
        (pid, version, watermark, state.to_json()) for pid, (state, watermark) in states.items()
    ]
    with connection.cursor() as cursor:
        for source, params in row_sources(rows, ("bigint", "text", "bigint", "text")):
            cursor.execute(
                f"INSERT INTO {table} (patient_id, version, watermark, state) "  # noqa: S608
                f"{source} ON CONFLICT (patient_id) DO UPDATE SET "
                "version = excluded.version, watermark = excluded.watermark, "
                "state = excluded.state",
                params,
            )


# --- fires → alerts ---------------------------------------------------------------------------


def apply(organisation_id: int, ruleset: RuleSet, outputs: Sequence[Fire | Clear]) -> int:
    """Open alerts for fires (folding into an active alert of the same rule), auto-resolve on
    clears. Returns the number of alerts opened."""
    if not outputs:
        return 0
    now = utc_now()
    fires = [o for o in outputs if isinstance(o, Fire)]
    pids = {o.patient_id for o in outputs}
    active = {
        (a.patient_id, a.rule, a.stage): a
        for a in am.Alert.objects.filter(patient_id__in=pids, status__in=am.Alert.ACTIVE)
    }
    known = set(
        am.AlertFire.objects.filter(key__in=[f.key for f in fires]).values_list("key", flat=True)
    )
    routes = routing.Router(organisation_id)
    routes.prepare(f.patient_id for f in fires)
    opened: list[am.Alert] = []
    folded: list[tuple[Fire, am.Alert]] = []
    for output in outputs:
        slot = (output.patient_id, output.rule, output.stage)
        if isinstance(output, Clear):
            alert = active.get(slot)
            # A clear ends only an alert its rule raised before it (a replay of old history
            # must not close today's alert).
            if alert is not None and output.at >= alert.triggered_at.timestamp():
                del active[slot]
                alert.status = am.Alert.Status.RESOLVED
                alert.outcome = "auto_resolved"
                alert.closed_at = now
                alert.business_status = "auto-resolved"
                # An alert opened earlier in this batch is inserted below, already resolved.
                if alert.pk is not None:
                    fields = ["status", "outcome", "closed_at", "business_status"]
                    alert.save(update_fields=fields)
            continue
        if output.key in known:
            continue
        known.add(output.key)
        alert = active.get(slot)
        triggered = datetime.fromtimestamp(output.at, UTC)
        if alert is not None:
            alert.repeats += 1
            alert.last_seen_at = triggered
            alert.values = {**alert.values, "latest": output.values}
            if alert.pk is not None:
                alert.save(update_fields=["repeats", "last_seen_at", "values"])
            folded.append((output, alert))
            continue
        department_id, owner_id = routes.resolve(output.patient_id, output.route)
        alert = am.Alert(
            organisation_id=organisation_id,
            patient_id=output.patient_id,
            department_id=department_id,
            rule=output.rule,
            stage=output.stage,
            key=output.key,
            action=output.action,
            severity=output.severity,
            priority=output.priority,
            priority_rank=am.PRIORITY_RANK.get(output.priority, 3),
            performer_role=output.route,
            owner_id=owner_id,
            text_zh=ruleset.text(output, "zh-hans")[:300],
            text_en=ruleset.text(output, "en")[:300],
            values=output.values,
            focus_type=_focus_type(ruleset, output),
            focus_id=output.ref or None,
            triggered_at=triggered,
            raised_at=now,
            due_at=datetime.fromtimestamp(now.timestamp() + output.sla, UTC),
        )
        active[slot] = alert
        opened.append(alert)
    am.Alert.objects.bulk_create(opened)
    am.AlertFire.objects.bulk_create(
        [
            am.AlertFire(key=a.key, alert=a, organisation_id=organisation_id, at=a.triggered_at)
            for a in opened
        ]
        + [
            am.AlertFire(
                key=f.key,
                alert=a,
                organisation_id=organisation_id,
                at=datetime.fromtimestamp(f.at, UTC),
            )
            for f, a in folded
        ]
    )
    urgent = [
        a.pk
        for a in opened
        if a.priority != am.Priority.ROUTINE and a.status == am.Alert.Status.OPEN
    ]
    if urgent:
        from careloop.alerts import notifications

        notifications.queue_urgent(urgent)
    return len(opened)


_FOCUS = {"adr": "adverse_reaction", "dose": "intake", "symptom": "symptom"}


def _focus_type(ruleset: RuleSet, fire: Fire) -> str:
    """What the alert is about (FHIR Task.focus): the reading, report or dose behind it."""
    if not fire.ref:
        return ""
    events = ruleset.rule(fire.rule).events
    if "questionnaire" in events:
        return "questionnaire_response"
    return next((_FOCUS[e] for e in events if e in _FOCUS), "observation")


# --- recompute --------------------------------------------------------------------------------


def recompute(organisation_id: int, *, apply_missing: bool = False) -> dict[str, Any]:
    """Replay every patient's history through the rules; compare with the alerts streaming
    raised (and, with apply_missing, raise those that are missing and rebuild the states)."""
    ruleset = ruleset_for(organisation_id)
    pids = observation_selectors.patients_with_events(organisation_id, ruleset.kinds)
    fires: set[str] = set()
    outputs: list[Fire | Clear] = []
    states: dict[int, tuple[State, int]] = {}
    for start in range(0, len(pids), 500):
        part = pids[start : start + 500]
        history = observation_selectors.history_events(part, ruleset.kinds)
        personal = personal_thresholds(part)
        for pid in part:
            events = history.get(pid, [])
            state, fired = ruleset.replay(events, personal.get(pid))
            outputs += fired
            fires.update(f.key for f in fired if isinstance(f, Fire))
            if events:
                states[pid] = (state, max(e.at for e in events))
    stored = set(
        am.AlertFire.objects.filter(organisation_id=organisation_id)
        .exclude(alert__rule__in=[code for code, _kind, _secs in ruleset.absence_rules()])
        .values_list("key", flat=True)
    )
    missing = sorted(fires - stored)
    extra = sorted(stored - fires)
    if apply_missing:
        with transaction.atomic():
            _save_states(ruleset.version, states)
            wanted = set(missing)
            apply(
                organisation_id,
                ruleset,
                [o for o in outputs if isinstance(o, Clear) or o.key in wanted],
            )
    return {
        "patients": len(pids),
        "fires": len(fires),
        "stored": len(stored),
        "missing": missing[:100],
        "extra": extra[:100],
        "identical": not missing and not extra,
    }
