"""Overdue at the start of the month, % called, % returned to care (metrics.md, "Overdue and
return to care"), computed for past months from the history in one SQL statement.

For a month starting on day S, a patient is overdue at its start when, alive, they have a
scheduled follow-up dated in the 365 days before S (an appointment that is still "booked" or was
marked "did not come", as the overdue list of appointments/selectors.ranked_overdue; or a plan
reminder of kind revisit or call, neither cancelled, skipped nor acknowledged before S) with:
no care visit from its date up to the day before S; no call result before S postponing them to S
or later ("remind on"); no call result removing them from the list made on or after its date.
A call is an overdue call result (appointments.CallResult) or a closed call task of the worklist
(alerts.Task of kind call_patient or family_call, any outcome). Returned to care: a care visit —
a visit of metrics.md other than the follow-up contact itself: a reading by staff, a device or
the hospital system, a prescription or refill, an appointment created — from the day of the
first call in the month through 15 days after it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.utils.translation import gettext_lazy as _

from careloop.analytics import state
from careloop.analytics.registry import (
    Cohort,
    Computed,
    Metric,
    Months,
    Part,
    Value,
    as_of,
    register,
)

RETURN_DAYS = 15
CALL_TASK_KINDS = ("call_patient", "family_call")


def _day_of_local_due() -> str:
    if connection.vendor == "postgresql":
        return "CAST(substr(local_due, 1, 10) AS DATE)"
    return "substr(local_due, 1, 10)"


def _base(cohort: Cohort, months: Months) -> tuple[str, list[Any]]:
    """The CTEs: months, od (overdue at start), called (first call in the month), back
    (returned to care), res (one row per overdue patient and month)."""
    today = cohort.local_today()
    zone = cohort.time_zone
    org = cohort.organisation_id
    dp = state.date_param
    month_rows = " UNION ALL ".join(
        "SELECT %s AS m, %s AS lo, %s AS start, %s AS stop" for _m in months
    )
    month_params: list[Any] = []
    for m in months:
        month_params += [dp(m), dp(m - timedelta(days=365)), dp(m), dp(as_of(m, today))]
    earliest = min(months) - timedelta(days=365)
    cohort_sql, cohort_params = cohort.patient_sql()
    pats = "SELECT id FROM coh"
    visits, visit_params = state.visit_sources(org, zone, pats, contacts=False)
    ack, ack_params = state.local_date("o.acknowledged_at", zone)
    closed, closed_params = state.local_date("closed_at", zone)
    due = _day_of_local_due()
    kinds = ", ".join(f"'{k}'" for k in CALL_TASK_KINDS)
    sql = f"""
WITH
coh AS (
    SELECT id FROM patients_patient
    WHERE organisation_id = %s AND deceased_on IS NULL AND id IN ({cohort_sql})
),
months AS ({month_rows}),
vis AS (SELECT patient_id, d FROM ({visits}) v WHERE d >= %s),
fu AS (
    SELECT patient_id, local_date AS d, NULL AS ack FROM appointments_appointment
    WHERE organisation_id = %s AND status IN ('no_show', 'booked') AND patient_id IN ({pats})
    UNION ALL
    SELECT o.patient_id, {due.replace("local_due", "o.local_due")} AS d,
        CASE WHEN o.status = 'acknowledged' THEN {ack} END AS ack
    FROM reminders_occurrence o
    WHERE o.organisation_id = %s AND o.kind IN ('revisit', 'call')
        AND o.status NOT IN ('cancelled', 'skipped') AND o.patient_id IN ({pats})
),
fux AS (
    -- Each follow-up with the first care visit on or after its day (a visit on the day
    -- itself sorts before the follow-up).
    SELECT patient_id, d, ack, is_fu,
        MIN(CASE WHEN is_fu = 0 THEN d END) OVER (
            PARTITION BY patient_id ORDER BY d DESC, is_fu ROWS UNBOUNDED PRECEDING
        ) AS next_visit
    FROM (
        SELECT patient_id, d, ack, 1 AS is_fu FROM fu
        UNION ALL SELECT patient_id, d, NULL, 0 FROM vis
    ) x
),
cand AS (
    SELECT mo.m, mo.start, f.patient_id, f.d
    FROM months mo JOIN fux f ON f.is_fu = 1 AND f.d < mo.start AND f.d >= mo.lo
        AND (f.ack IS NULL OR f.ack >= mo.start)
        AND (f.next_visit IS NULL OR f.next_visit >= mo.start)
    WHERE NOT EXISTS (
        SELECT 1 FROM appointments_callresult c
        WHERE c.patient_id = f.patient_id AND c.called_on < mo.start
            AND (c.remind_on >= mo.start OR (c.outcome = 'removed' AND c.called_on >= f.d))
    )
),
od AS (SELECT DISTINCT m, patient_id FROM cand),
calls AS (
    SELECT patient_id, called_on AS day FROM appointments_callresult
    WHERE organisation_id = %s AND patient_id IN ({pats})
    UNION ALL
    SELECT patient_id, {closed} AS day FROM alerts_task
    WHERE organisation_id = %s AND kind IN ({kinds}) AND status = 'done'
        AND closed_at IS NOT NULL AND patient_id IN ({pats})
),
called AS (
    SELECT od.m, od.patient_id, MIN(calls.day) AS first_call
    FROM od JOIN months mo ON mo.m = od.m
    JOIN calls ON calls.patient_id = od.patient_id AND calls.day >= mo.start
        AND calls.day <= mo.stop
    GROUP BY od.m, od.patient_id
),
back AS (
    SELECT DISTINCT called.m, called.patient_id FROM called
    JOIN vis ON vis.patient_id = called.patient_id AND vis.d >= called.first_call
        AND vis.d <= {state.add_days("called.first_call", RETURN_DAYS)}
),
res AS (
    SELECT m, patient_id, MAX(was_called) AS was_called, MAX(returned) AS returned
    FROM (
        SELECT m, patient_id, 0 AS was_called, 0 AS returned FROM od
        UNION ALL SELECT m, patient_id, 1, 0 FROM called
        UNION ALL SELECT m, patient_id, 0, 1 FROM back
    ) r
    GROUP BY m, patient_id
)
"""  # noqa: S608
    params = [
        org,
        *cohort_params,
        *month_params,
        *visit_params,
        dp(earliest),
        org,  # fu: appointments
        *ack_params,
        org,  # fu: reminders
        org,  # calls: call results
        *closed_params,
        org,  # calls: tasks
    ]
    return sql, params


def _key(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def compute(cohort: Cohort, months: Months) -> Computed:
    out: Computed = {
        m: {"overdue": Value(0), "called": Value(0, 0), "returned": Value(0, 0)} for m in months
    }
    if not months:
        return out
    sql, params = _base(cohort, months)
    with connection.cursor() as cur:
        cur.execute(
            sql + "SELECT m, COUNT(*), SUM(was_called), SUM(returned) FROM res GROUP BY m",  # noqa: S608
            params,
        )
        for m, overdue, called, returned in cur.fetchall():
            out[_key(m)] = {
                "overdue": Value(overdue),
                "called": Value(called or 0, overdue),
                "returned": Value(returned or 0, called or 0),
            }
    return out


def patients(cohort: Cohort, month: date, part: str) -> list[int]:
    where = {"overdue": "1 = 1", "called": "was_called = 1", "returned": "returned = 1"}.get(part)
    if where is None:
        return []
    sql, params = _base(cohort, [month])
    with connection.cursor() as cur:
        cur.execute(sql + f"SELECT patient_id FROM res WHERE {where} ORDER BY patient_id", params)  # noqa: S608
        return [int(r[0]) for r in cur.fetchall()]


OVERDUE_RETURN = register(
    Metric(
        key="overdue_return",
        title=_("Overdue patients called and returned to care"),
        definition=_(
            "Overdue at the start of the month: alive patients with a scheduled follow-up (a "
            "booked or missed appointment, or a plan revisit or call reminder) dated in the 365 "
            "days before the month, with no visit since that date, not postponed by a call "
            'result ("remind on" in the month or later) and not removed from the list. '
            "Share called: overdue patients with at least one call result in the month ÷ overdue "
            "at the start of the month (the first call counts). Share returned to care: called "
            "patients with a visit (a reading by staff or a device, a prescription or refill, "
            "or an appointment created) from the day of the first call through 15 days after "
            "it ÷ called patients."
        ),
        kind="share",
        parts=(
            Part("overdue", _("Overdue at start of month"), colour="#E69F00"),
            Part("called", _("Called"), colour="#0072B2"),
            Part("returned", _("Returned to care"), colour="#009E73"),
        ),
        compute=compute,
        patients=patients,
        group="care",
        headline="returned",
    )
)
