"""PDC of careloop.analytics.pdc against an independent implementation in plain SQL, on a
synthetic population of 10,000 patients: every patient and class must agree.

The SQL works the other way round from pdc.py: the shift forward is a recursive CTE walking
each drug's fills one by one (start = the later of the fill date and the day after the previous
supply ends), and days covered are counted by joining the supplies to a calendar of the period
(COUNT DISTINCT day), with no interval arithmetic. The class of a dispensing is decided by its
own CASE over the synthetic population's vocabulary.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.db import connection

from careloop.analytics import pdc, synthetic

TODAY = date(2026, 9, 15)
PATIENTS = 10_000

CLASS_CASE = """
CASE
  WHEN drug_class IN ('RAS antagonists', 'rasa')
    OR (drug_class = '' AND (code LIKE 'C09%%' OR name LIKE '%%沙坦%%' OR name LIKE '%%普利%%'))
    THEN 'rasa'
  WHEN drug_class IN ('ccb', 'calcium channel blockers')
    OR (drug_class = '' AND (code LIKE 'C08%%' OR name LIKE '%%地平%%'))
    THEN 'ccb'
  WHEN drug_class IN ('statins', '他汀类')
    OR (drug_class = '' AND (code LIKE 'C10AA%%' OR name LIKE '%%他汀%%'))
    THEN 'statins'
  WHEN drug_class = '降糖药'
    OR (drug_class = '' AND (code LIKE 'A10B%%' OR name LIKE '%%二甲双胍%%'))
    THEN 'diabetes'
END"""


def day_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"({column} - DATE '2000-01-01')"
    return f"(CAST(julianday({column}) AS INTEGER) - CAST(julianday('2000-01-01') AS INTEGER))"


def day_no(day: date) -> int:
    return (day - date(2000, 1, 1)).days


def sql_pdc(org_id: int, first: date, last: date) -> dict[tuple[int, str], tuple[int, ...]]:
    """(patient, class) → (covered, days, pdc in ten-thousandths, eligible, adherent)."""
    lo, hi = day_no(first), day_no(last)
    adapt = connection.ops.adapt_datefield_value
    statements = [
        "DROP TABLE IF EXISTS t_fill",
        "DROP TABLE IF EXISTS t_seq",
        "DROP TABLE IF EXISTS t_int",
        "DROP TABLE IF EXISTS t_day",
        f"""CREATE TEMP TABLE t_fill AS
            SELECT id, patient_id, cls, drug, d, s FROM (
              SELECT id, patient_id, {CLASS_CASE} AS cls,
                CASE WHEN code <> '' THEN 'code:' || lower(code) ELSE 'name:' || name END AS drug,
                {day_sql("when_handed_over")} AS d, days_supply AS s
              FROM patients_dispense
              WHERE organisation_id = %s AND status = 'completed' AND deleted_at IS NULL
                AND when_handed_over >= %s AND when_handed_over <= %s AND days_supply > 0
            ) x WHERE cls IS NOT NULL""",  # noqa: S608 - constant SQL of this test
        """CREATE TEMP TABLE t_seq AS
            SELECT patient_id, cls, drug, d, s,
              ROW_NUMBER() OVER (PARTITION BY patient_id, cls, drug ORDER BY d, id) AS rn
            FROM t_fill""",
        "CREATE INDEX t_seq_next ON t_seq (patient_id, cls, drug, rn)",
        """CREATE TEMP TABLE t_int AS
            WITH RECURSIVE chain(patient_id, cls, drug, rn, d, start_day, s) AS (
              SELECT patient_id, cls, drug, rn, d, d, s FROM t_seq WHERE rn = 1
              UNION ALL
              SELECT n.patient_id, n.cls, n.drug, n.rn, n.d,
                CASE WHEN n.d > c.start_day + c.s THEN n.d ELSE c.start_day + c.s END, n.s
              FROM chain c JOIN t_seq n ON n.patient_id = c.patient_id AND n.cls = c.cls
                AND n.drug = c.drug AND n.rn = c.rn + 1
            )
            SELECT patient_id, cls, d, start_day, start_day + s - 1 AS end_day FROM chain""",
        """CREATE TEMP TABLE t_day AS
            WITH RECURSIVE cal(n) AS (SELECT %s UNION ALL SELECT n + 1 FROM cal WHERE n < %s)
            SELECT n FROM cal""",
        "CREATE INDEX t_day_n ON t_day (n)",
    ]
    params: dict[int, list[Any]] = {4: [org_id, adapt(first), adapt(last)], 8: [lo, hi]}
    with connection.cursor() as cur:
        for i, statement in enumerate(statements):
            cur.execute(statement, params.get(i, []))
        cur.execute(
            """
            WITH covered AS (
              SELECT t_int.patient_id, t_int.cls, COUNT(DISTINCT t_day.n) AS covered
              FROM t_int JOIN t_day ON t_day.n >= t_int.start_day AND t_day.n <= t_int.end_day
              GROUP BY t_int.patient_id, t_int.cls
            ),
            per_class AS (
              SELECT patient_id, cls, MIN(d) AS index_day, COUNT(DISTINCT d) AS dates
              FROM t_fill GROUP BY patient_id, cls
            )
            SELECT p.patient_id, p.cls, COALESCE(c.covered, 0), %s - p.index_day + 1, p.dates
            FROM per_class p LEFT JOIN covered c
              ON c.patient_id = p.patient_id AND c.cls = p.cls
            """,
            [hi],
        )
        rows = cur.fetchall()
    out: dict[tuple[int, str], tuple[int, ...]] = {}
    for patient, cls, covered, days, dates in rows:
        ten_thousandths = (int(covered) * 20000 + int(days)) // (2 * int(days))
        eligible = int(dates) >= 2
        out[(int(patient), str(cls))] = (
            int(covered),
            int(days),
            ten_thousandths,
            int(eligible),
            int(eligible and ten_thousandths >= 8000),
        )
    return out


@pytest.mark.django_db
def test_pdc_agrees_with_an_independent_sql_implementation() -> None:
    population = synthetic.generate(PATIENTS, seed=11, today=TODAY, code="pdc-check", visits=False)
    first, last = pdc.rolling_period(TODAY)
    result = pdc.pdc(population.organisation_id, first, last)
    mine = {
        (r["patient_id"], r["drug_class"]): (
            r["covered"],
            r["days"],
            round(r["pdc"] * 10000),
            int(r["eligible"]),
            int(r["adherent"]),
        )
        for r in result.rows()
    }
    theirs = sql_pdc(population.organisation_id, first, last)
    assert len(theirs) > PATIENTS  # most patients take drugs of more than one class
    differing = {k: (mine.get(k), theirs.get(k)) for k in set(mine) | set(theirs)
                 if mine.get(k) != theirs.get(k)}  # fmt: skip
    assert not differing, list(differing.items())[:10]

    # The population exercised every rule: eligible and not, adherent and not, truncated
    # supplies, refills shifted forward, two drugs of a class handed over on the same day.
    values = list(theirs.values())
    assert sum(v[3] for v in values) > PATIENTS * 0.9
    assert 0 < sum(v[4] for v in values) < len(values)
    assert any(not v[3] for v in values)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*) FROM t_int WHERE end_day > {day_no(last)}"  # noqa: S608
        )
        assert cur.fetchone()[0] > 0
        cur.execute("SELECT COUNT(*) FROM t_int WHERE start_day > d")
        assert cur.fetchone()[0] > 0
        cur.execute(
            "SELECT COUNT(*) FROM (SELECT patient_id, cls, d FROM t_fill"
            " GROUP BY patient_id, cls, d HAVING COUNT(DISTINCT drug) > 1) x"
        )
        assert cur.fetchone()[0] > 0
