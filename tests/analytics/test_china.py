"""健康管理率, 规范管理率 and 控制率 (metrics.md, China national public-health indicators)."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import override_settings

from careloop.analytics import models as am
from careloop.analytics.registry import METRICS, all_metrics

from .conftest import Clinic, month

pytestmark = pytest.mark.django_db

SEP = month(2026, 9)


def pair(v: object) -> tuple:
    return (v.numerator, v.denominator)  # type: ignore[attr-defined]


@pytest.fixture
def hypertensives(clinic: Clinic) -> dict[str, object]:
    a = clinic.patient(date(2025, 6, 1))
    for day in (date(2025, 11, 5), date(2026, 1, 5), date(2026, 4, 5)):
        clinic.bp(a, day, 150, 95)
    clinic.bp(a, date(2026, 8, 5), 135, 85)  # 4 follow-up days in the past 12 months
    clinic.bp(a, date(2025, 9, 30), 150, 95)  # before October 2025: outside the 12 months
    b = clinic.patient(date(2026, 3, 1))
    clinic.bp(b, date(2026, 5, 5), 150, 95)
    clinic.dispense(b, date(2026, 7, 5))
    clinic.task(b, date(2026, 8, 5), outcome="agreed_to_visit")
    ltfu = clinic.patient(date(2024, 1, 1))
    clinic.bp(ltfu, date(2025, 5, 1), 120, 70)
    dead = clinic.patient(date(2026, 1, 1), deceased_on=date(2026, 9, 2))
    clinic.bp(dead, date(2026, 8, 1), 120, 70)
    e = clinic.patient(date(2026, 9, 1))
    clinic.refresh()
    all_metrics()
    return {"a": a, "b": b, "e": e}


def test_management_standard_and_control_rates(
    clinic: Clinic, hypertensives: dict[str, object]
) -> None:
    got = METRICS["china_htn"].compute(clinic.cohort(), [SEP])[SEP]
    assert pair(got["managed"]) == (3, None)
    assert pair(got["standard_rate"]) == (1, 3)  # only a has ≥ 4 follow-ups
    assert pair(got["control_rate"]) == (1, 3)  # a: 135/85; b: 150/95; e: no reading
    drill = METRICS["china_htn"].patients
    assert drill is not None
    assert drill(clinic.cohort(), SEP, "control_rate") == [hypertensives["a"].pk]  # type: ignore[attr-defined]
    assert drill(clinic.cohort(), SEP, "managed") == sorted(
        p.pk
        for p in hypertensives.values()  # type: ignore[attr-defined]
    )


def test_follow_ups_required_per_year_is_configurable(
    clinic: Clinic, hypertensives: dict[str, object]
) -> None:
    with override_settings(ANALYTICS_CHINA_FOLLOWUPS_PER_YEAR=3):
        got = METRICS["china_htn"].compute(clinic.cohort(), [SEP])[SEP]
    assert pair(got["standard_rate"]) == (2, 3)  # b has 3: BP, refill, contact


def test_health_management_rate_needs_the_year_s_estimate(
    clinic: Clinic, hypertensives: dict[str, object]
) -> None:
    got = METRICS["china_htn"].compute(clinic.cohort(), [SEP])[SEP]
    assert got["management_rate"].value is None  # not available
    am.AreaEstimate.objects.create(
        organisation_id=clinic.org_id, condition="hypertension", year=2025, estimated_patients=9
    )
    am.AreaEstimate.objects.create(
        organisation_id=clinic.org_id, condition="diabetes", year=2026, estimated_patients=9
    )
    assert (
        METRICS["china_htn"].compute(clinic.cohort(), [SEP])[SEP]["management_rate"].value is None
    )
    am.AreaEstimate.objects.create(
        organisation_id=clinic.org_id, condition="hypertension", year=2026, estimated_patients=30
    )
    got = METRICS["china_htn"].compute(clinic.cohort(), [SEP])[SEP]
    assert pair(got["management_rate"]) == (3, 30)
    assert pair(got["estimated"]) == (30, None)


def test_diabetes_control_rate_uses_the_latest_glucose(clinic: Clinic) -> None:
    ok = clinic.patient(date(2026, 1, 1), conditions=("E11",))
    clinic.hba1c(ok, date(2026, 2, 1), 8.0)
    clinic.glucose(ok, date(2026, 6, 1), 6.5, "fasting")  # 117 mg/dL: at target
    high = clinic.patient(date(2026, 1, 1), conditions=("E11",))
    clinic.hba1c(high, date(2026, 6, 1), 7.5)
    clinic.refresh()
    all_metrics()
    got = METRICS["china_dm"].compute(clinic.cohort(), [SEP])[SEP]
    assert pair(got["managed"]) == (2, None)
    assert pair(got["control_rate"]) == (1, 2)
    assert METRICS["china_dm"].patients(clinic.cohort(), SEP, "control_rate") == [ok.pk]  # type: ignore[misc]


def test_estimates_page_sets_and_deletes_audited(clinic: Clinic, client: object) -> None:
    from careloop.audit.models import AuditEvent
    from tests.conftest import PASSWORD

    c = client  # type: ignore[assignment]
    assert c.login(username="admin", password=PASSWORD)  # type: ignore[attr-defined]
    r = c.post(  # type: ignore[attr-defined]
        "/analytics/estimates/",
        {"condition": "hypertension", "year": "2026", "estimated_patients": "1200"},
    )
    assert r.status_code == 302
    row = am.AreaEstimate.objects.get(organisation_id=clinic.org_id)
    assert (row.condition, row.year, row.estimated_patients) == ("hypertension", 2026, 1200)
    c.post(  # type: ignore[attr-defined]
        "/analytics/estimates/",
        {"condition": "hypertension", "year": "2026", "estimated_patients": "1500"},
    )
    assert am.AreaEstimate.objects.get(pk=row.pk).estimated_patients == 1500
    bad = c.post("/analytics/estimates/", {"condition": "hypertension", "year": "2026"})  # type: ignore[attr-defined]
    assert bad.status_code == 422
    c.post(f"/analytics/estimates/{row.pk}/delete/")  # type: ignore[attr-defined]
    assert not am.AreaEstimate.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="analytics.estimate")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == [
        "analytics.estimate.save",
        "analytics.estimate.save",
        "analytics.estimate.delete",
    ]
    c.logout()  # type: ignore[attr-defined]
    assert c.login(username="nurse.cardiology", password=PASSWORD)  # type: ignore[attr-defined]
    assert c.get("/analytics/estimates/").status_code == 403  # type: ignore[attr-defined]
