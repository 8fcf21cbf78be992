"""The monthly per-patient state: hand-computed rows, and incremental refresh = full rebuild."""

from __future__ import annotations

from datetime import date

import pytest

from careloop.analytics import models as am
from careloop.analytics import state

from .conftest import Clinic, month

pytestmark = pytest.mark.django_db


def rows_of(patient_id: int) -> dict[date, am.PatientMonth]:
    return {r.month: r for r in am.PatientMonth.objects.filter(patient_id=patient_id)}


def test_one_row_per_month_from_registration_to_today(clinic: Clinic) -> None:
    p = clinic.patient(date(2026, 3, 20))
    clinic.bp(p, date(2026, 4, 2), 150, 95)
    clinic.refresh()
    got = rows_of(p.pk)
    assert sorted(got) == [month(2026, m) for m in range(3, 10)]
    april = got[month(2026, 4)]
    assert april.registered_on == date(2026, 3, 20)
    assert april.months_registered == 1
    assert april.last_visit_on == date(2026, 4, 2)
    assert (april.bp_systolic, april.bp_diastolic) == (150, 95)
    assert got[month(2026, 3)].last_visit_on is None
    assert got[month(2026, 9)].months_since_visit == 5


def test_registered_on_given_kept_absent_is_today_in_the_organisation_zone(
    clinic: Clinic,
) -> None:
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    from careloop.kit.clock import utc_now
    from careloop.kit.errors import ValidationFailed
    from careloop.patients import models as pm
    from careloop.patients import services
    from tests.conftest import patient_data

    actor = clinic.world.actor("nurse.cardiology")
    given = services.create_patient(actor, patient_data(registered_on="2024-05-06"))
    assert given.registered_on == date(2024, 5, 6)
    plain = services.create_patient(actor, patient_data())
    from zoneinfo import ZoneInfo

    assert plain.registered_on == utc_now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    with pytest.raises(ValidationFailed) as err:
        services.create_patient(actor, patient_data(registered_on="2999-01-01"))
    assert "registered_on" in err.value.details
    # The migration's fill: the day of created_at in the organisation's zone (17:00 UTC on
    # 1 March is 2 March in Shanghai), one UPDATE per organisation.
    from datetime import UTC, datetime
    from importlib import import_module

    pm.Patient.objects.filter(pk=plain.pk).update(
        registered_on=None, created_at=datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    )
    fill = import_module("careloop.patients.migrations.0009_patient_registered_on")
    fill.fill_registered_on(apps, SimpleNamespace(connection=connection))
    assert pm.Patient.objects.get(pk=plain.pk).registered_on == date(2026, 3, 2)
    assert pm.Patient.objects.get(pk=given.pk).registered_on == date(2024, 5, 6)


def test_patient_without_registered_on_counts_from_created_at(clinic: Clinic) -> None:
    from datetime import UTC, datetime

    from careloop.patients import models as pm

    p = clinic.patient(date(2026, 7, 5))
    # 20:00 UTC on 30 April is 1 May in the organisation's zone (Asia/Shanghai).
    pm.Patient.objects.filter(pk=p.pk).update(
        registered_on=None, created_at=datetime(2026, 4, 30, 20, 0, tzinfo=UTC)
    )
    clinic.refresh()
    got = rows_of(p.pk)
    assert min(got) == month(2026, 5)
    assert got[month(2026, 5)].registered_on == date(2026, 5, 1)


def test_visits_before_registration_count_towards_the_past_12_months(clinic: Clinic) -> None:
    p = clinic.patient(date(2026, 6, 1))
    clinic.dispense(p, date(2026, 2, 10))  # before registration (history imported later)
    clinic.bp(p, date(2026, 7, 10), 130, 80)
    clinic.refresh()
    got = rows_of(p.pk)
    assert min(got) == month(2026, 6)
    assert got[month(2026, 6)].last_visit_on == date(2026, 2, 10)
    assert got[month(2026, 6)].followups_12m == 1
    assert got[month(2026, 7)].followups_12m == 2


def snapshot() -> set[tuple]:
    fields = [f.attname for f in am.PatientMonth._meta.concrete_fields if f.attname != "id"]
    return set(am.PatientMonth.objects.values_list(*fields))


def test_incremental_refresh_equals_a_full_rebuild(clinic: Clinic) -> None:
    from careloop.kit.clock import utc_now
    from careloop.patients import models as pm

    ps = [clinic.patient(date(2026, 1, 5 + i)) for i in range(6)]
    for p in ps:
        clinic.bp(p, date(2026, 2, 3), 150, 95)
    first = clinic.refresh(full=True)
    assert first.full and first.patients == 6
    before = snapshot()
    # Everything written from now on is newer than the mark.
    am.RefreshMark.objects.filter(organisation_id=clinic.org_id).update(
        refreshed_at=utc_now() + state.OVERLAP
    )
    clinic.bp(ps[0], date(2026, 8, 20), 120, 70)
    clinic.dispense(ps[1], date(2026, 9, 1))
    pm.Condition.objects.create(
        organisation_id=clinic.org_id, patient=ps[2], icd10_code="E11.9", status="active"
    )
    clinic.appointment(ps[3], booked=date(2026, 9, 3), on=date(2026, 9, 20))
    newcomer = clinic.patient(date(2026, 9, 1))
    clinic.call(ps[4], date(2026, 8, 30), "agreed_to_visit", remind_on=date(2026, 9, 29))
    step = clinic.refresh(full=False)
    assert not step.full
    assert step.patients == 6  # five changed patients and the newcomer; ps[5] untouched
    after = snapshot()
    assert after != before
    clinic.refresh(full=True)
    assert snapshot() == after
    assert rows_of(newcomer.pk).keys() == {month(2026, 9)}
    assert rows_of(ps[0].pk)[month(2026, 9)].htn_outcome == "controlled"
    assert rows_of(ps[2].pk)[month(2026, 9)].has_diabetes


def test_a_new_month_rebuilds_everyone(clinic: Clinic) -> None:
    p = clinic.patient(date(2026, 1, 5))
    clinic.refresh(full=True, today=date(2026, 8, 31))
    assert max(rows_of(p.pk)) == month(2026, 8)
    result = clinic.refresh(full=False, today=date(2026, 9, 1))
    assert result.full
    assert max(rows_of(p.pk)) == month(2026, 9)


def test_cli_refresh(clinic: Clinic) -> None:
    from io import StringIO

    from django.core.management import call_command

    clinic.patient(date(2026, 1, 5))
    out = StringIO()
    call_command("analytics", "refresh", "--full", "--organisation", "test", stdout=out)
    assert "test: full rebuild, 1 patients" in out.getvalue()
    assert am.PatientMonth.objects.filter(organisation_id=clinic.org_id).exists()
