"""The analytics pages over HTTP: scope per role, drill-down, downloads, audit, filters.

The pages are generic over the registry, so these tests register a metric of their own (and
remove it afterwards): "probe" splits the cohort into patients whose record number starts with
F ("flagged") and the others. Five patients, hand-counted:

    cardiology     A 王一   F1  male    1960  (care team of doctor.cardiology)
                   B =cmd…  F2  female  1990
                   C 李三   R3  male    1940  (care team of doctor.cardiology)
    endocrinology  D 赵四   F4  male    1960
                   E 钱五   R5  female  1960

Flagged: cardiology 2/3 = 66.7%; organisation 3/5 = 60.0%; doctor.cardiology's team 1/2 = 50.0%.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from django.test import Client
from openpyxl import load_workbook

from careloop.accounts.models import CareTeam, Staff
from careloop.analytics import registry
from careloop.analytics.registry import Cohort, Metric, Part, Value
from careloop.audit.models import AuditEvent
from careloop.patients import models as pm

EVIL = "=cmd|' /C calc'!A0"


def _split(cohort: Cohort) -> tuple[list[int], list[int]]:
    rows = list(cohort.patients().values_list("pk", "record_number"))
    flagged = [pk for pk, rn in rows if rn.startswith("F")]
    return flagged, [pk for pk, rn in rows if not rn.startswith("F")]


def _compute(cohort: Cohort, months: Any) -> registry.Computed:
    flagged, other = _split(cohort)
    total = len(flagged) + len(other)
    return {
        m: {"flagged": Value(len(flagged), total), "other": Value(len(other), total)}
        for m in months
    }


def _patients(cohort: Cohort, month: date, part: str) -> list[int]:
    flagged, other = _split(cohort)
    return flagged if part == "flagged" else other


PROBE = Metric(
    key="probe",
    title="Probe share",
    definition="Flagged patients ÷ patients of the cohort, as of the end of the month.",
    kind="share",
    parts=(
        Part("flagged", "Flagged", colour="#D55E00"),
        Part("other", "Not flagged", drill=False, colour="#009E73"),
    ),
    compute=_compute,
    patients=_patients,
    breakdowns={
        "hour": lambda c, m: [
            ("8", "08:00", {"flagged": Value(1, 4)}),
            ("9", "09:00", {"flagged": Value(3, 4)}),
        ],
        "staff": lambda c, m: [("1", "Staff Probe", {"flagged": Value(1, 2)})],
    },
    group="care",
    headline="flagged",
    target=0.5,
)


def _leaky_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    """A faulty metric naming every flagged patient of the organisation, whatever the cohort."""
    return list(
        pm.Patient.objects.filter(
            organisation_id=cohort.organisation_id, record_number__startswith="F"
        ).values_list("pk", flat=True)
    )


LEAKY = Metric(
    key="leaky",
    title="Leaky",
    definition="A test metric.",
    kind="count",
    parts=(Part("flagged", "Flagged"),),
    compute=lambda c, months: {m: {"flagged": Value(1)} for m in months},
    patients=_leaky_patients,
    group="outcomes",
)

EMPTY = Metric(
    key="empty_probe",
    title="Nothing yet",
    definition="A test metric without data.",
    kind="hours",
    parts=(Part("mean", "Mean"),),
    compute=lambda c, months: {m: {"mean": Value(0, 0)} for m in months},
    group="operations",
)


@pytest.fixture
def metrics() -> Iterator[None]:
    added = [m for m in (PROBE, LEAKY, EMPTY) if m.key not in registry.all_metrics()]
    for m in added:
        registry.register(m)
    yield
    for m in added:
        registry.METRICS.pop(m.key, None)


@pytest.fixture
def people(world: Any, make_patient: Any, metrics: None) -> dict[str, Any]:
    Staff.objects.update(language="en")
    a = make_patient(name="王一", record_number="F1", sex="male", date_of_birth="1960-05-01")
    b = make_patient(name=EVIL, record_number="F2", sex="female", date_of_birth="1990-05-01")
    c = make_patient(name="李三", record_number="R3", sex="male", date_of_birth="1940-05-01")
    endo = "nurse.endocrinology"
    d = make_patient(endo, name="赵四", record_number="F4", sex="male", date_of_birth="1960-05-01")
    e = make_patient(
        endo, name="钱五", record_number="R5", sex="female", date_of_birth="1960-05-01"
    )
    team = CareTeam.objects.create(
        department=world.cardio, name="Team", responsible_doctor=world.staff["doctor.cardiology"]
    )
    pm.PatientDepartment.objects.filter(patient__in=[a, c]).update(care_team=team)
    return {"A": a, "B": b, "C": c, "D": d, "E": e}


def client_as(username: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(Staff.objects.get(username=username))
    return client


def text(response: Any) -> str:
    return response.content.decode()


def chart_of(body: str) -> dict[str, Any]:
    """The first chart's data on a page (the canvas's data-series attribute)."""
    found = re.search(r'data-analytics-chart data-series="([^"]*)"', body)
    assert found, "no chart on the page"
    return dict(json.loads(html.unescape(found.group(1))))


def this_month() -> str:
    return Cohort(0).local_today().strftime("%Y-%m")


# --- scope per role -----------------------------------------------------------------------


class TestScope:
    def test_head_sees_their_department(self, world: Any, people: Any) -> None:
        client = client_as("head.cardiology")
        page = client.get("/analytics/")
        assert page.status_code == 200
        assert 'data-metric="probe"' in text(page)
        assert "Cardiology" in text(page)
        card = client.get("/analytics/card/probe/")
        assert card.status_code == 200
        body = text(card)
        assert "66.7%" in body and "2 / 3" in body

    def test_head_of_another_department_is_not_found(self, world: Any, people: Any) -> None:
        client = client_as("head.cardiology")
        assert client.get(f"/analytics/?department={world.endo.pk}").status_code == 404
        assert client.get(f"/analytics/card/probe/?department={world.endo.pk}").status_code == 404
        assert client.get("/analytics/?level=organisation").status_code == 404
        other = world.staff["doctor.endocrinology"].pk
        assert client.get(f"/analytics/?level=doctor&doctor={other}").status_code == 404
        denied = AuditEvent.objects.filter(actor="head.cardiology", outcome="denied")
        assert denied.filter(action="analytics.view").count() == 4

    def test_admin_sees_the_organisation_and_any_department(self, world: Any, people: Any) -> None:
        client = client_as("admin")
        body = text(client.get("/analytics/card/probe/"))
        assert "60.0%" in body and "3 / 5" in body
        endo = text(client.get(f"/analytics/card/probe/?department={world.endo.pk}"))
        assert "50.0%" in endo and "1 / 2" in endo
        # Another organisation's department does not exist here.
        outside = client.get(f"/analytics/?department={world.other_dept.pk}")
        assert outside.status_code == 404

    def test_doctor_sees_their_care_teams_patients_and_their_department(
        self, world: Any, people: Any
    ) -> None:
        client = client_as("doctor.cardiology")
        mine = text(client.get("/analytics/card/probe/"))
        assert "50.0%" in mine and "1 / 2" in mine
        dept = text(client.get("/analytics/card/probe/?level=department"))
        assert "66.7%" in dept and "2 / 3" in dept
        assert client.get(f"/analytics/?department={world.endo.pk}").status_code == 404
        assert client.get("/analytics/?level=organisation").status_code == 404

    def test_head_may_look_at_a_doctor_of_their_department(self, world: Any, people: Any) -> None:
        doctor = world.staff["doctor.cardiology"].pk
        client = client_as("head.cardiology")
        body = text(client.get(f"/analytics/card/probe/?level=doctor&doctor={doctor}"))
        assert "50.0%" in body and "1 / 2" in body

    def test_nurse_sees_their_department_only(self, world: Any, people: Any) -> None:
        client = client_as("nurse.cardiology")
        body = text(client.get("/analytics/card/probe/"))
        assert "66.7%" in body
        assert client.get("/analytics/?level=doctor").status_code == 404
        # Per-staff figures are for those who manage the staff.
        assert 'data-breakdown="staff"' not in body
        assert 'data-breakdown="hour"' in body
        head = text(client_as("head.cardiology").get("/analytics/card/probe/"))
        assert 'data-breakdown="staff"' in head and "Staff Probe" in head

    def test_auditor_is_refused_and_has_no_link(self, world: Any, people: Any) -> None:
        client = client_as("auditor")
        assert client.get("/analytics/").status_code == 403
        assert client.get("/analytics/card/probe/").status_code == 403
        assert AuditEvent.objects.filter(actor="auditor", outcome="denied").exists()
        assert 'data-testid="nav-analytics"' not in text(client.get("/audit/"))
        assert 'data-testid="nav-analytics"' in text(
            client_as("nurse.cardiology").get("/patients/")
        )


# --- the figures on the card and the metric page -------------------------------------------


class TestFigures:
    def test_card_chart_footnote_and_links(self, world: Any, people: Any) -> None:
        body = text(client_as("head.cardiology").get("/analytics/card/probe/"))
        chart = chart_of(body)
        assert chart["type"] == "bar" and chart["stacked"] is True  # the parts add up
        assert len(chart["labels"]) == 12 and chart["labels"][-1] == this_month()
        flagged = next(s for s in chart["series"] if s["label"] == "Flagged")
        assert flagged["data"][-1] == 66.7 and flagged["colour"] == "#D55E00"
        assert chart["target"] == 50.0
        assert "Goal: 50.0%" in body
        # The definition is on the card as a footnote, not only on hover.
        assert 'class="footnote"' in body and "Flagged patients ÷ patients of the cohort" in body
        # The flagged figure links to its patients; "not flagged" cannot be drilled into.
        links = re.findall(r'href="(/analytics/probe/[^"]*)"', html.unescape(body))
        assert any(link.startswith("/analytics/probe/flagged/?") for link in links)
        assert f"month={this_month()}" in links[0]
        assert not any("/analytics/probe/other/" in link for link in links)

    def test_best_send_time_chart(self, world: Any, people: Any) -> None:
        body = text(client_as("head.cardiology").get("/analytics/card/probe/"))
        charts = [
            json.loads(html.unescape(x))
            for x in re.findall(r'data-analytics-chart data-series="([^"]*)"', body)
        ]
        hour = next(c for c in charts if c["labels"] == ["08:00", "09:00"])
        assert hour["type"] == "bar" and hour["series"][0]["data"] == [25.0, 75.0]

    def test_empty_state(self, world: Any, people: Any) -> None:
        body = text(client_as("head.cardiology").get("/analytics/card/empty_probe/"))
        assert 'data-testid="metric-empty"' in body
        assert "A test metric without data." in body

    def test_metric_page_and_its_downloads(self, world: Any, people: Any) -> None:
        client = client_as("head.cardiology")
        page = client.get("/analytics/probe/")
        assert page.status_code == 200
        assert "Definition:" in text(page) and "Last 12 months" in text(page)
        trend = client.get("/analytics/export/probe/?table=trend&format=csv")
        assert trend.status_code == 200
        rows = list(csv.reader(io.StringIO(trend.content.decode("utf-8-sig"))))
        assert rows[0][:3] == ["Month", "Flagged", "Flagged (numerator / denominator)"]
        assert len(rows) == 13 and rows[-1][:3] == [this_month(), "66.7%", "2 / 3"]
        hour = client.get("/analytics/export/probe/?table=hour&format=xlsx")
        sheet = load_workbook(io.BytesIO(hour.content)).active
        assert [c.value for c in sheet[3]][:3] == ["09:00", "75.0%", "3 / 4"]
        # The staff table is not the nurse's to download.
        nurse = client_as("nurse.cardiology")
        assert nurse.get("/analytics/export/probe/?table=staff&format=csv").status_code == 404
        assert nurse.get("/analytics/export/probe/?table=trend&format=pdf").status_code == 404
        exported = AuditEvent.objects.filter(actor="head.cardiology", action="analytics.export")
        assert {e.detail["table"] for e in exported} == {"trend", "hour"}

    def test_unknown_metric_or_part_is_not_found(self, world: Any, people: Any) -> None:
        client = client_as("head.cardiology")
        assert client.get("/analytics/nonexistent/").status_code == 404
        assert client.get("/analytics/card/nonexistent/").status_code == 404
        assert client.get("/analytics/probe/other/").status_code == 404  # not drillable
        assert client.get("/analytics/probe/nonexistent/").status_code == 404
        assert client.get("/analytics/empty_probe/mean/").status_code == 404  # no patients


# --- filters ------------------------------------------------------------------------------


class TestFilters:
    def test_filters_change_the_cohort(self, world: Any, people: Any) -> None:
        client = client_as("head.cardiology")
        female = text(client.get("/analytics/card/probe/?sex=female"))
        assert "100.0%" in female and "1 / 1" in female
        old = text(client.get("/analytics/card/probe/?age_band=75%2B"))
        assert "0.0%" in old and "0 / 1" in old

    def test_condition_filter(self, world: Any, people: Any) -> None:
        from careloop.patients import services as patient_services

        nurse = world.actor("nurse.cardiology")
        patient_services.add_record(
            nurse, people["C"].pk, "conditions", {"icd10_code": "I10", "status": "active"}
        )
        body = text(
            client_as("head.cardiology").get("/analytics/card/probe/?condition=hypertension")
        )
        assert "0.0%" in body and "0 / 1" in body

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("age_band=banana", "Unknown age band banana"),
            ("month=2024-13", "Give the month as YYYY-MM"),
            ("month=last", "Give the month as YYYY-MM"),
            ("month=2999-01", "has not begun yet"),
            ("sex=x", "Unknown sex x"),
            ("condition=flu", "Unknown condition flu"),
            ("plan=nope", "Unknown care plan nope"),
            ("segment=vip", "Unknown segment vip."),
            ("department=abc", "Department: choose one from the list."),
            ("level=galaxy", "Unknown level galaxy."),
        ],
    )
    def test_bad_values_are_explained(
        self, world: Any, people: Any, query: str, message: str
    ) -> None:
        client = client_as("head.cardiology")
        for url in ("/analytics/", "/analytics/card/probe/", "/analytics/probe/flagged/"):
            response = client.get(f"{url}?{query}")
            assert response.status_code == 400, url
            assert message in html.unescape(text(response)), url

    def test_a_past_month_is_shown(self, world: Any, people: Any) -> None:
        body = text(client_as("head.cardiology").get("/analytics/card/probe/?month=2026-03"))
        chart = chart_of(body)
        assert chart["labels"][0] == "2025-04" and chart["labels"][-1] == "2026-03"
        assert "2026-03" in body


# --- drill-down ---------------------------------------------------------------------------


def listed(response: Any) -> set[int]:
    return {int(x) for x in re.findall(r'data-patient="(\d+)"', text(response))}


class TestDrillDown:
    def test_lists_the_patients_behind_the_part(self, world: Any, people: Any) -> None:
        p = people
        head = client_as("head.cardiology")
        response = head.get("/analytics/probe/flagged/")
        assert response.status_code == 200
        assert listed(response) == {p["A"].pk, p["B"].pk}
        assert f'href="/patients/{p["A"].pk}/"' in text(response)
        admin = client_as("admin")
        assert listed(admin.get("/analytics/probe/flagged/")) == {p["A"].pk, p["B"].pk, p["D"].pk}
        endo = admin.get(f"/analytics/probe/flagged/?department={world.endo.pk}")
        assert listed(endo) == {p["D"].pk}
        doctor = client_as("doctor.cardiology")
        assert listed(doctor.get("/analytics/probe/flagged/")) == {p["A"].pk}

    def test_only_patients_the_actor_may_see(self, world: Any, people: Any) -> None:
        # Even a metric naming patients outside the cohort shows only the actor's patients.
        response = client_as("head.cardiology").get("/analytics/leaky/flagged/")
        assert listed(response) == {people["A"].pk, people["B"].pk}
        assert "赵四" not in text(response)

    def test_search_and_pages(self, world: Any, people: Any) -> None:
        head = client_as("head.cardiology")
        assert listed(head.get("/analytics/probe/flagged/?q=王")) == {people["A"].pk}
        assert listed(head.get("/analytics/probe/flagged/?q=F2")) == {people["B"].pk}
        first = head.get("/analytics/probe/flagged/?size=1")
        assert "Page 1 of 2" in text(first)
        # Sorted by name: "=cmd…" before "王一".
        assert listed(first) == {people["B"].pk}
        assert listed(head.get("/analytics/probe/flagged/?size=1&page=2")) == {people["A"].pk}

    def test_views_and_patients_shown_are_audited(self, world: Any, people: Any) -> None:
        head = client_as("head.cardiology")
        head.get("/analytics/")
        head.get("/analytics/card/probe/")
        head.get("/analytics/probe/flagged/")
        mine = AuditEvent.objects.filter(actor="head.cardiology", outcome="success")
        board = mine.get(action="analytics.dashboard")
        assert board.detail["level"] == "department"
        assert board.detail["department"] == world.cardio.pk
        assert board.detail["month"] == this_month()
        assert "probe" in board.detail["metrics"]
        assert mine.get(action="analytics.view").detail["metric"] == "probe"
        drill = mine.get(action="analytics.drilldown")
        assert (drill.detail["metric"], drill.detail["part"], drill.detail["results"]) == (
            "probe",
            "flagged",
            2,
        )
        shown = mine.filter(action="analytics.drilldown.patient")
        assert {e.patient_id for e in shown} == {people["A"].pk, people["B"].pk}

    def test_exports_are_formula_safe_and_audited(self, world: Any, people: Any) -> None:
        head = client_as("head.cardiology")
        response = head.get("/analytics/export/probe/flagged/?format=csv")
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith('attachment; filename="probe-flagged-')
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0][:2] == ["Record number", "Name"]
        names = {r[1] for r in rows[1:]}
        assert names == {"'" + EVIL, "王一"}  # the formula is quoted away
        xlsx = head.get("/analytics/export/probe/flagged/?format=xlsx")
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        cells = [row[1] for row in sheet.iter_rows(min_row=2)]
        evil = next(c for c in cells if c.value == EVIL)
        assert evil.data_type == "s"  # text, not a formula
        exports = AuditEvent.objects.filter(actor="head.cardiology", action="analytics.export")
        assert sorted(e.detail["format"] for e in exports) == ["csv", "xlsx"]
        assert {e.detail["rows"] for e in exports} == {2}
        rows_audited = AuditEvent.objects.filter(action="analytics.export.patient")
        assert sorted(e.patient_id for e in rows_audited) == sorted(
            [people["A"].pk, people["B"].pk] * 2
        )

    def test_export_of_another_department_is_not_found(self, world: Any, people: Any) -> None:
        head = client_as("head.cardiology")
        url = f"/analytics/export/probe/flagged/?format=csv&department={world.endo.pk}"
        assert head.get(url).status_code == 404
        assert not AuditEvent.objects.filter(action="analytics.export.patient").exists()


def test_the_monthly_report_is_linked_for_those_who_may_open_it(world: Any, people: Any) -> None:
    month = this_month()
    head = text(client_as("head.cardiology").get("/analytics/"))
    assert f'href="/analytics/reports/{world.cardio.pk}/{month}.pdf"' in head
    nurse = text(client_as("nurse.cardiology").get("/analytics/"))
    assert 'data-testid="monthly-report"' not in nurse
    # The organisation level has no single department to report on.
    admin = text(client_as("admin").get("/analytics/"))
    assert 'data-testid="monthly-report"' not in admin


def test_the_schedules_and_estimates_pages_are_linked_for_those_who_manage_them(
    world: Any, people: Any
) -> None:
    head = text(client_as("head.cardiology").get("/analytics/"))
    assert 'href="/analytics/reports/schedules/"' in head
    assert "/analytics/estimates/" not in head  # estimates are the organisation admin's
    admin = text(client_as("admin").get("/analytics/"))
    assert 'href="/analytics/estimates/"' in admin
    nurse = text(client_as("nurse.cardiology").get("/analytics/"))
    assert "/analytics/reports/schedules/" not in nurse
    assert "/analytics/estimates/" not in nurse
