"""The monthly per-patient state (analytics.PatientMonth), computed in SQL.

One INSERT … SELECT per batch of patients builds, for every patient, one row per calendar month
from the month of registration to the current month, with window functions over the months
(SQLite ≥ 3.28 and PostgreSQL alike). A visit (metrics.md) is any of, on a day:

- a BP, glucose or HbA1c reading recorded by staff, a device or the hospital system (readings
  the patient reported themself are not visits, and do not count as the latest BP/glucose);
- a prescription (patients.Medication of origin "prescribed": its start date, else the day it was
  recorded) or a refill (patients.Dispense handed over: when_handed_over);
- an appointment created (appointments.Appointment.booked_at);
- a completed follow-up contact that reached the patient: a worklist task (alerts.Task) done with
  an outcome of alerts.services.REACHED (reached, agreed to visit, remind later, already visited,
  refused, done), or an overdue call result (appointments.CallResult) other than "removed" for a
  reason that says the patient was not reached (unavailable, wrong number, moved, changed
  facility, died, other).

Days of date-time columns are calendar days in the organisation's time zone; readings carry
their own local day. Conditions (hypertension, diabetes) are the patient's current ones.

Refresh: `refresh(organisation_id)` rewrites the patients whose record changed since the last
mark (rows created or updated, with a two-minute overlap), and the whole organisation when the
month changed (a new month needs a row for everyone) or when `full=True`. Within a month the
figures are month-granular, so untouched patients' current-month rows stay right as days pass.
Hard-deleted source rows are only seen by a full rebuild (`careloop analytics refresh --full`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from careloop.accounts.models import Organisation
from careloop.alerts.services import REACHED
from careloop.analytics import models as am
from careloop.analytics.registry import CONDITION_PREFIXES
from careloop.kit.clock import utc_now

log = logging.getLogger(__name__)

BATCH = 2000  # patients per INSERT … SELECT of an incremental refresh
OVERLAP = timedelta(minutes=2)  # re-read rows written while the previous refresh ran
MEASURED_SOURCES = ("staff", "device", "his")
# Task outcomes that reached the patient (alerts.services.REACHED).
REACHED_TASK_OUTCOMES = tuple(sorted(REACHED))
# Call results that reached the patient: agreed to visit, remind later, or removed because
# they already visited or refused to return.
REACHED_CALL_REASONS = ("already_visited", "refused")
MG_PER_MMOL = 18.0

SOURCE_TABLES = (
    "patients_patient",
    "patients_condition",
    "patients_medication",
    "patients_dispense",
    "observations_observation",
    "appointments_appointment",
    "alerts_task",
    "appointments_callresult",
)

# --- SQL dialect helpers --------------------------------------------------------------------


def _pg() -> bool:
    return connection.vendor == "postgresql"


def ordinal_to_date(expr: str) -> str:
    """SQL: the date of a proleptic Gregorian ordinal (Python's date.toordinal)."""
    if _pg():
        return f"(DATE '0001-01-01' + CAST(({expr}) - 1 AS INTEGER))"
    return f"date(({expr}) + 1721424.5)"


def month_index(expr: str) -> str:
    """SQL: year × 12 + month − 1 of a date."""
    if _pg():
        return (
            f"(CAST(EXTRACT(YEAR FROM {expr}) AS INTEGER) * 12"
            f" + CAST(EXTRACT(MONTH FROM {expr}) AS INTEGER) - 1)"
        )
    return (
        f"(CAST(substr({expr}, 1, 4) AS INTEGER) * 12 + CAST(substr({expr}, 6, 2) AS INTEGER) - 1)"
    )


def index_to_month(expr: str) -> str:
    """SQL: the first day of the month of a month index."""
    if _pg():
        return f"make_date(CAST(({expr}) / 12 AS INTEGER), CAST(({expr}) %% 12 + 1 AS INTEGER), 1)"
    return f"printf('%%04d-%%02d-01', ({expr}) / 12, ({expr}) %% 12 + 1)"


def add_days(expr: str, days: int) -> str:
    """SQL: a date `days` days after a date."""
    if _pg():
        return f"(({expr}) + {int(days)})"
    return f"date({expr}, '{int(days):+d} days')"


def local_date(column: str, zone: str) -> tuple[str, list[Any]]:
    """SQL (and parameters): the calendar day of a date-time column in the zone `zone`."""
    sql, params = connection.ops.datetime_cast_date_sql(column, (), zone)
    return sql, list(params)


def month_idx_of(day: date) -> int:
    return day.year * 12 + day.month - 1


def month_of_idx(idx: int) -> date:
    return date(idx // 12, idx % 12 + 1, 1)


def date_param(day: date) -> Any:
    """A date as the database driver wants it in raw SQL."""
    return connection.ops.adapt_datefield_value(day)


# --- the visit and measurement sources ------------------------------------------------------


def visit_sources(
    org_id: int, zone: str, patients_sql: str, *, contacts: bool = True
) -> tuple[str, list[Any]]:
    """SQL `SELECT patient_id, d …` of every visit day (see the module docstring) of the
    patients `patients_sql` selects (a `SELECT id` without parameters); `contacts=False` leaves
    out follow-up contacts (the overdue metric's "returned to care" counts care visits only)."""
    parts: list[str] = []
    params: list[Any] = []
    src = ", ".join(f"'{s}'" for s in MEASURED_SOURCES)
    parts.append(
        f"SELECT patient_id, {ordinal_to_date('local_day')} AS d FROM observations_observation"  # noqa: S608
        f" WHERE organisation_id = %s AND kind IN ('bp', 'glucose', 'hba1c')"
        f" AND source IN ({src}) AND patient_id IN ({patients_sql})"
    )
    params.append(org_id)
    created, p = local_date("created_at", zone)
    parts.append(
        f"SELECT patient_id, COALESCE(start_date, {created}) AS d FROM patients_medication"  # noqa: S608
        " WHERE organisation_id = %s AND deleted_at IS NULL AND origin = 'prescribed'"
        f" AND patient_id IN ({patients_sql})"
    )
    params += [*p, org_id]
    parts.append(
        "SELECT patient_id, when_handed_over AS d FROM patients_dispense"  # noqa: S608
        " WHERE organisation_id = %s AND deleted_at IS NULL AND status = 'completed'"
        f" AND when_handed_over IS NOT NULL AND patient_id IN ({patients_sql})"
    )
    params.append(org_id)
    booked, p = local_date("booked_at", zone)
    parts.append(
        f"SELECT patient_id, {booked} AS d FROM appointments_appointment"  # noqa: S608
        f" WHERE organisation_id = %s AND patient_id IN ({patients_sql})"
    )
    params += [*p, org_id]
    if contacts:
        closed, p = local_date("closed_at", zone)
        outcomes = ", ".join(f"'{o}'" for o in REACHED_TASK_OUTCOMES)
        parts.append(
            f"SELECT patient_id, {closed} AS d FROM alerts_task"  # noqa: S608
            f" WHERE organisation_id = %s AND status = 'done' AND closed_at IS NOT NULL"
            f" AND outcome IN ({outcomes}) AND patient_id IN ({patients_sql})"
        )
        params += [*p, org_id]
        reasons = ", ".join(f"'{r}'" for r in REACHED_CALL_REASONS)
        parts.append(
            "SELECT patient_id, called_on AS d FROM appointments_callresult"  # noqa: S608
            " WHERE organisation_id = %s AND (outcome IN ('agreed_to_visit', 'remind_later')"
            f" OR remove_reason IN ({reasons})) AND patient_id IN ({patients_sql})"
        )
        params.append(org_id)
    return " UNION ALL ".join(parts), params


def condition_sql(condition: str, patient_col: str) -> str:
    """SQL: EXISTS an undeleted, unresolved condition of the group (registry.condition_q)."""
    likes = " OR ".join(
        f"UPPER(c.icd10_code) LIKE '{code}%%'" for code in CONDITION_PREFIXES[condition]
    )
    return (
        "EXISTS (SELECT 1 FROM patients_condition c WHERE c.patient_id = "  # noqa: S608
        f"{patient_col} AND c.deleted_at IS NULL AND c.status NOT IN ('resolved', 'inactive')"
        f" AND ({likes}))"
    )


# --- the state ------------------------------------------------------------------------------

COLUMNS = (
    "organisation_id, patient_id, month, registered_on, months_registered, last_visit_on,"
    " months_since_visit, bp_on, months_since_bp, bp_systolic, bp_diastolic, glucose_on,"
    " months_since_glucose, glucose_kind, glucose_value, has_hypertension, has_diabetes, care,"
    " htn_outcome, dm_outcome, followups_12m"
)


def _state_sql(
    org_id: int, zone: str, current_idx: int, patients_sql: str
) -> tuple[str, list[Any]]:
    """The INSERT … SELECT writing every month of the patients `patients_sql` selects."""
    created, created_p = local_date("p.created_at", zone)
    reg_mi = month_index("reg")
    visits, visit_p = visit_sources(org_id, zone, patients_sql)
    src = ", ".join(f"'{s}'" for s in MEASURED_SOURCES)
    obs_day = ordinal_to_date("local_day")
    sql = f"""
WITH RECURSIVE
pat AS (
    SELECT p.id AS patient_id, COALESCE(p.registered_on, {created}) AS reg,
        CASE WHEN {condition_sql("hypertension", "p.id")} THEN 1 ELSE 0 END AS htn,
        CASE WHEN {condition_sql("diabetes", "p.id")} THEN 1 ELSE 0 END AS dm
    FROM patients_patient p
    WHERE p.organisation_id = %s AND p.merged_into_id IS NULL AND p.id IN ({patients_sql})
),
visit AS ({visits}),
vm AS (
    SELECT patient_id, {month_index("d")} AS mi, MAX(d) AS last_d, COUNT(DISTINCT d) AS n
    FROM visit WHERE d IS NOT NULL GROUP BY patient_id, {month_index("d")}
),
bpd AS (
    SELECT patient_id, {obs_day} AS d, MIN(value) AS s, MIN(value2) AS di
    FROM observations_observation
    WHERE organisation_id = %s AND kind = 'bp' AND source IN ({src})
        AND patient_id IN ({patients_sql})
    GROUP BY patient_id, local_day
),
bpm AS (
    SELECT patient_id, mi, d, s, di FROM (
        SELECT patient_id, {month_index("d")} AS mi, d, s, di,
            ROW_NUMBER() OVER (PARTITION BY patient_id, {month_index("d")} ORDER BY d DESC) AS rn
        FROM bpd
    ) x WHERE rn = 1
),
glm AS (
    SELECT patient_id, mi, d, gkind, gval FROM (
        SELECT patient_id, {month_index(obs_day)} AS mi, {obs_day} AS d,
            CASE WHEN kind = 'hba1c' THEN 'hba1c'
                WHEN context IN ('fasting', 'postprandial') THEN context ELSE 'random' END AS gkind,
            CASE WHEN kind = 'glucose' THEN value * {MG_PER_MMOL} ELSE value END AS gval,
            ROW_NUMBER() OVER (PARTITION BY patient_id, {month_index(obs_day)}
                ORDER BY effective_at DESC, id DESC) AS rn
        FROM observations_observation
        WHERE organisation_id = %s AND kind IN ('glucose', 'hba1c') AND source IN ({src})
            AND patient_id IN ({patients_sql})
    ) x WHERE rn = 1
),
em AS (
    SELECT patient_id, mi, MAX(last_d) AS last_d, SUM(n) AS n, MAX(has_bp) AS has_bp,
        MAX(has_glu) AS has_glu
    FROM (
        SELECT patient_id, mi, last_d, n, 0 AS has_bp, 0 AS has_glu FROM vm
        UNION ALL SELECT patient_id, mi, NULL, 0, 1, 0 FROM bpm
        UNION ALL SELECT patient_id, mi, NULL, 0, 0, 1 FROM glm
    ) e
    GROUP BY patient_id, mi
),
bounds AS (
    SELECT patient_id, reg, htn, dm, {reg_mi} AS reg_mi,
        CASE WHEN first_mi < {reg_mi} THEN first_mi ELSE {reg_mi} END AS start_mi
    FROM (
        SELECT patient_id, MAX(reg) AS reg, MAX(htn) AS htn, MAX(dm) AS dm,
            MIN(mi) AS first_mi
        FROM (
            SELECT patient_id, reg, htn, dm, NULL AS mi FROM pat
            UNION ALL SELECT patient_id, NULL, NULL, NULL, mi FROM vm
        ) u
        GROUP BY patient_id
    ) b
    WHERE reg IS NOT NULL
),
seq(mi) AS (
    SELECT MIN(start_mi) FROM bounds
    UNION ALL SELECT mi + 1 FROM seq WHERE mi < %s
),
grid AS (
    SELECT b.patient_id, b.reg, b.reg_mi, b.htn, b.dm, s.mi
    FROM bounds b JOIN seq s ON s.mi >= b.start_mi AND s.mi <= %s
),
run AS (
    SELECT g.patient_id, g.reg, g.reg_mi, g.htn, g.dm, g.mi,
        MAX(em.last_d) OVER w AS last_d,
        MAX(CASE WHEN em.n > 0 THEN g.mi END) OVER w AS visit_mi,
        MAX(CASE WHEN em.has_bp = 1 THEN g.mi END) OVER w AS bp_mi,
        MAX(CASE WHEN em.has_glu = 1 THEN g.mi END) OVER w AS glu_mi,
        SUM(COALESCE(em.n, 0)) OVER (PARTITION BY g.patient_id ORDER BY g.mi
            ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) AS n12
    FROM grid g
    LEFT JOIN em ON em.patient_id = g.patient_id AND em.mi = g.mi
    WINDOW w AS (PARTITION BY g.patient_id ORDER BY g.mi ROWS UNBOUNDED PRECEDING)
),
st AS (
    SELECT r.patient_id, r.mi, r.reg, r.htn, r.dm, r.last_d, r.n12,
        r.mi - r.reg_mi AS mreg, r.mi - r.visit_mi AS mvis,
        r.mi - r.bp_mi AS mbp, r.mi - r.glu_mi AS mglu,
        bpm.d AS bp_d, bpm.s, bpm.di, glm.d AS glu_d, glm.gkind, glm.gval
    FROM run r
    LEFT JOIN bpm ON bpm.patient_id = r.patient_id AND bpm.mi = r.bp_mi
    LEFT JOIN glm ON glm.patient_id = r.patient_id AND glm.mi = r.glu_mi
    WHERE r.mi >= r.reg_mi
)
INSERT INTO analytics_patientmonth ({COLUMNS})
SELECT %s, patient_id, {index_to_month("mi")}, reg, mreg, last_d, mvis, bp_d, mbp, s, di,
    glu_d, mglu, COALESCE(gkind, ''), gval,
    CASE WHEN htn = 1 THEN TRUE ELSE FALSE END, CASE WHEN dm = 1 THEN TRUE ELSE FALSE END,
    CASE WHEN mreg < 12 OR mvis < 12 THEN 'under_care' ELSE 'ltfu' END,
    CASE WHEN mreg < 3 THEN ''
        WHEN mvis IS NULL OR mvis >= 3 THEN 'missed_visit'
        WHEN mbp IS NULL OR mbp >= 3 THEN 'visit_no_bp'
        WHEN s < 140 AND di < 90 THEN 'controlled'
        ELSE 'uncontrolled' END,
    CASE WHEN mreg < 3 THEN ''
        WHEN mvis IS NULL OR mvis >= 3 THEN 'missed_visit'
        WHEN mglu IS NULL OR mglu >= 3 THEN 'visit_no_glucose'
        WHEN {glucose_band_sql("gkind", "gval")} = 0 THEN 'controlled'
        WHEN {glucose_band_sql("gkind", "gval")} = 1 THEN 'uncontrolled_moderate'
        ELSE 'uncontrolled_severe' END,
    n12
FROM st
"""  # noqa: S608
    # The placeholders in order: pat (day of created_at, organisation), visit, bpd, glm, seq,
    # grid, and the organisation of the inserted rows.
    final = [*created_p, org_id, *visit_p, org_id, org_id, current_idx, current_idx, org_id]
    return sql, final


def glucose_band_sql(kind: str, value: str) -> str:
    """SQL: 0 controlled, 1 the moderate uncontrolled band, 2 the severe band (metrics.md)."""
    return (
        f"(CASE WHEN {kind} = 'hba1c' THEN (CASE WHEN {value} < 7.0 THEN 0"
        f" WHEN {value} < 9.0 THEN 1 ELSE 2 END)"
        f" WHEN {kind} = 'fasting' THEN (CASE WHEN {value} < 126 THEN 0"
        f" WHEN {value} < 200 THEN 1 ELSE 2 END)"
        f" ELSE (CASE WHEN {value} < 200 THEN 0 WHEN {value} < 300 THEN 1 ELSE 2 END) END)"
    )


def glucose_band(kind: str, mg_dl_or_percent: float) -> int:
    """0 controlled, 1 moderate, 2 severe band (the same rule as glucose_band_sql)."""
    if kind == "hba1c":
        limits = (7.0, 9.0)
    elif kind == "fasting":
        limits = (126.0, 200.0)
    else:
        limits = (200.0, 300.0)
    if mg_dl_or_percent < limits[0]:
        return 0
    return 1 if mg_dl_or_percent < limits[1] else 2


# --- refresh --------------------------------------------------------------------------------


@dataclass
class Result:
    organisation_id: int
    full: bool
    patients: int
    rows: int
    seconds: float


def zone_name(organisation: Organisation) -> str:
    try:
        ZoneInfo(organisation.time_zone)
        return organisation.time_zone
    except (ValueError, KeyError):
        return "Asia/Shanghai"


def _touched(org_id: int, zone: str, since: datetime) -> set[int]:
    """Patients of the organisation with a row created or updated at or after `since`."""
    checks = [
        ("patients_patient", "id", "updated_at"),
        ("patients_condition", "patient_id", "updated_at"),
        ("patients_medication", "patient_id", "updated_at"),
        ("patients_dispense", "patient_id", "updated_at"),
        ("observations_observation", "patient_id", "created_at"),
        ("appointments_appointment", "patient_id", "updated_at"),
        ("appointments_appointment", "patient_id", "booked_at"),
        ("alerts_task", "patient_id", "closed_at"),
        ("alerts_task", "patient_id", "created_at"),
        ("appointments_callresult", "patient_id", "created_at"),
    ]
    sql = " UNION ".join(
        f"SELECT {col} FROM {table} WHERE organisation_id = %s AND {stamp} >= %s"  # noqa: S608
        for table, col, stamp in checks
    )
    params: list[Any] = []
    for _ in checks:
        params += [org_id, connection.ops.adapt_datetimefield_value(since)]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return {int(r[0]) for r in cur.fetchall()}


def _write(
    org_id: int,
    zone: str,
    current_idx: int,
    patient_ids: Sequence[int] | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Rewrite the state of the patients (all of the organisation's when None); (patients
    rewritten, the organisation's rows now)."""
    with connection.cursor() as cur:
        if patient_ids is None:
            if _pg():
                # Fresh planner statistics: after a bulk load the tables may look empty to
                # PostgreSQL, which then picks nested loops over millions of rows.
                cur.execute("ANALYZE " + ", ".join(SOURCE_TABLES))
            cur.execute("DELETE FROM analytics_patientmonth WHERE organisation_id = %s", [org_id])
            cur.execute(
                "SELECT id FROM patients_patient WHERE organisation_id = %s"
                " AND merged_into_id IS NULL ORDER BY id",
                [org_id],
            )
            ids = [int(r[0]) for r in cur.fetchall()]
            batches = [ids[i : i + BATCH * 10] for i in range(0, len(ids), BATCH * 10)]
        else:
            ids = sorted(patient_ids)
            batches = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
        done = 0
        for batch in batches:
            if not batch:
                continue
            # Integer ids only: safe to inline, and one plan for every batch size.
            if patient_ids is None:
                inside = (
                    "SELECT id FROM patients_patient WHERE organisation_id = "  # noqa: S608
                    f"{int(org_id)} AND id BETWEEN {int(batch[0])} AND {int(batch[-1])}"
                )
            else:
                inside = ", ".join(str(int(i)) for i in batch)
                cur.execute(
                    f"DELETE FROM analytics_patientmonth WHERE patient_id IN ({inside})"  # noqa: S608
                )
            sql, params = _state_sql(org_id, zone, current_idx, inside)
            cur.execute(sql, params)
            done += len(batch)
            if progress:
                progress(done, len(ids))
        if patient_ids is None and _pg():
            cur.execute("ANALYZE analytics_patientmonth")
        cur.execute(
            "SELECT COUNT(*) FROM analytics_patientmonth WHERE organisation_id = %s", [org_id]
        )
        rows = int(cur.fetchone()[0])
    return len(ids), rows


def refresh(
    organisation_id: int,
    full: bool = False,
    *,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Bring the state of one organisation up to date (see the module docstring). `today`
    overrides the organisation's today (tests, demo history)."""
    started = utc_now()
    clock = time.monotonic()
    org = Organisation.objects.get(pk=organisation_id)
    zone = zone_name(org)
    local_today = today or started.astimezone(ZoneInfo(zone)).date()
    current = local_today.replace(day=1)
    with transaction.atomic():
        mark, _ = am.RefreshMark.objects.get_or_create(organisation_id=organisation_id)
        mark = am.RefreshMark.objects.select_for_update().get(pk=mark.pk)
        whole = full or mark.refreshed_at is None or mark.month != current
        if whole:
            patients, rows = _write(organisation_id, zone, month_idx_of(current), None, progress)
            mark.full_at = started
        else:
            since = (mark.refreshed_at or started) - OVERLAP
            touched = _touched(organisation_id, zone, since)
            patients, rows = _write(
                organisation_id, zone, month_idx_of(current), sorted(touched), progress
            )
        mark.refreshed_at = started
        mark.month = current
        mark.patients = patients
        mark.seconds = time.monotonic() - clock
        mark.save()
    if whole and _pg() and not connection.in_atomic_block:
        # After a rebuild: the visibility map lets the cascades read the index alone.
        with connection.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) analytics_patientmonth")
    return Result(organisation_id, whole, patients, rows, mark.seconds)


def refresh_all(
    full: bool = False, organisations: Iterable[Organisation] | None = None
) -> list[Result]:
    """Refresh every organisation (the dispatcher's periodic job and the CLI)."""
    out = []
    for org in organisations if organisations is not None else Organisation.objects.all():
        out.append(refresh(org.pk, full))
    return out


class Periodic:
    """The dispatcher's hook: an incremental refresh of every organisation every `every`
    seconds (10 minutes by default), the first one `every` seconds after the worker started
    (`careloop analytics refresh` brings the state up to date at once)."""

    def __init__(self, every: float = 600.0) -> None:
        self.every = every
        self._last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        for org in Organisation.objects.all():
            try:
                refresh(org.pk)
            except Exception:
                log.exception("refreshing the analytics state of %s failed; will retry", org.pk)
