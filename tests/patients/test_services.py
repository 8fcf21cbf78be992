"""The patient record through its services: what staff enter is validated, kept, versioned,
de-duplicated, merged, encrypted and findable."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from careloop.kit.clock import utc_now
from careloop.kit.errors import (
    DuplicatePatient,
    Forbidden,
    NotFound,
    StaleVersion,
    ValidationFailed,
)
from careloop.kit.identifiers import resident_id_check_char
from careloop.patients import models as m
from careloop.patients import selectors, services
from careloop.patients.selectors import Criteria, PatientMerged
from tests.conftest import VALID_ID, patient_data

TODAY = utc_now().date()


def resident_id(born: date, sex: str, region: str = "110105", order: int = 1) -> str:
    seq = order * 2 + (1 if sex == "male" else 0)
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + resident_id_check_char(body)


def years_ago(years: int, days: int = 0) -> date:
    try:
        day = TODAY.replace(year=TODAY.year - years)
    except ValueError:  # 29 February
        day = TODAY.replace(year=TODAY.year - years, day=28)
    return day - timedelta(days=days)


def counts() -> tuple[int, int, int, int]:
    return (
        m.Patient.objects.count(),
        m.PatientPhone.objects.count(),
        m.PatientDepartment.objects.count(),
        m.RecordVersion.objects.count(),
    )


def depts_of(patient: m.Patient) -> set[int]:
    return set(
        m.PatientDepartment.objects.filter(patient=patient).values_list("department_id", flat=True)
    )


CONDITION = {
    "icd10_code": "I10",
    "display": "原发性高血压",
    "status": "active",
    "onset_date": "2020-03-01",
}


# --- registering a patient --------------------------------------------------------------------


class TestCreate:
    def test_everything_entered_is_saved(self, world):
        nurse = world.actor("nurse.cardiology")
        p = services.create_patient(
            nurse,
            patient_data(
                name="  王  秀英 ",
                sex="female",
                date_of_birth="1949-12-31",
                national_id=VALID_ID.lower(),
                record_number="MZ0001",
                phones=["+86 139 1111 2222", "010-87654321"],
                address="北京市朝阳区人民路1号",
                preferred_language="en",
                time_zone="Asia/Urumqi",
                preferred_channels=["wechat", "sms"],
                contact_window_start="09:00",
                contact_window_end="20:00",
            ),
        )
        p = m.Patient.objects.get(pk=p.pk)
        assert p.name == "王 秀英"
        assert p.sex == "female"
        assert p.date_of_birth == date(1949, 12, 31)
        assert p.national_id == VALID_ID
        assert p.record_number == "MZ0001"
        assert p.address == "北京市朝阳区人民路1号"
        assert p.preferred_language == "en" and p.time_zone == "Asia/Urumqi"
        assert p.preferred_channels == ["wechat", "sms"]
        assert p.contact_window_start.isoformat() == "09:00:00"
        assert [ph.number for ph in p.phones.all()] == ["13911112222", "010-87654321"]
        assert depts_of(p) == {world.cardio.pk}
        assert p.created_by == p.updated_by == world.staff["nurse.cardiology"]
        assert p.version == 1
        assert p.organisation_id == world.org.pk

    def test_department_is_the_authors_own(self, world, make_patient):
        assert depts_of(make_patient("doctor.endocrinology")) == {world.endo.pk}

    def test_org_admin_may_choose_any_department(self, world):
        p = services.create_patient(
            world.actor("admin"), patient_data(), department_id=world.endo.pk
        )
        assert depts_of(p) == {world.endo.pk}

    def test_nurse_cannot_register_into_another_department(self, world):
        before = counts()
        with pytest.raises(ValidationFailed) as exc:
            services.create_patient(
                world.actor("nurse.cardiology"), patient_data(), department_id=world.endo.pk
            )
        assert "department" in exc.value.details
        assert counts() == before

    def test_auditor_cannot_register(self, world):
        with pytest.raises(Forbidden):
            services.create_patient(world.actor("auditor"), patient_data())
        assert m.Patient.objects.count() == 0

    def test_creation_is_versioned_without_plaintext_identifiers(self, world, make_patient):
        p = make_patient(
            national_id=VALID_ID,
            sex="female",
            date_of_birth="1949-12-31",
            phones=["13955556666"],
            address="上海市徐汇区",
        )
        row = m.RecordVersion.objects.get(kind="patient", object_id=p.pk)
        assert (row.version, row.change, row.actor_id) == (
            1,
            "create",
            world.staff["nurse.cardiology"].pk,
        )
        text = str(row.snapshot)
        assert row.snapshot["name"] == p.name
        for secret in (VALID_ID, "13955556666", "上海市徐汇区"):
            assert secret not in text


FUTURE = (TODAY + timedelta(days=3)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"date_of_birth": "1960-13-01"}, "date_of_birth"),
        ({"date_of_birth": "not a date"}, "date_of_birth"),
        ({"date_of_birth": FUTURE}, "date_of_birth"),
        ({"date_of_birth": "1850-01-01"}, "date_of_birth"),
        (
            {"national_id": "110105194912310021", "date_of_birth": "1949-12-31", "sex": "female"},
            "national_id",
        ),
        ({"national_id": "1101051949123100", "date_of_birth": "1949-12-31"}, "national_id"),
        ({"national_id": VALID_ID, "date_of_birth": "1950-01-01", "sex": "female"}, "national_id"),
        ({"national_id": VALID_ID, "date_of_birth": "1949-12-31", "sex": "male"}, "national_id"),
        ({"phones": ["12345"]}, "phones"),
        ({"phones": []}, "phones"),
        (
            {"phones": ["13911110001", "13911110002", "13911110003", "13911110004", "13911110005"]},
            "phones",
        ),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"name": "   "}, "name"),
        ({"sex": "robot"}, "sex"),
        ({"preferred_channels": ["carrier_pigeon"]}, "preferred_channels"),
        ({"contact_window_start": "09:00"}, "contact_window_end"),
        ({"quiet_hours_end": "07:00"}, "quiet_hours_start"),
        ({"deceased_on": "1950-01-01"}, "deceased_on"),
        ({"deceased_on": FUTURE}, "deceased_on"),
    ],
)
def test_invalid_patient_is_refused_field_by_field_and_nothing_is_saved(world, overrides, field):
    before = counts()
    with pytest.raises(ValidationFailed) as exc:
        services.create_patient(world.actor("nurse.cardiology"), patient_data(**overrides))
    assert exc.value.status == 422
    assert field in exc.value.details, exc.value.details
    assert all(isinstance(msg, str) and msg for msg in exc.value.details[field])
    assert counts() == before


# --- rows of the record -----------------------------------------------------------------------


class TestRecordValidation:
    @pytest.mark.parametrize(
        ("kind", "data", "field"),
        [
            ("conditions", {**CONDITION, "icd10_code": "Q99.9"}, "icd10_code"),
            ("conditions", {**CONDITION, "icd10_code": "hypertension"}, "icd10_code"),
            ("conditions", {**CONDITION, "snomed_code": "38341004"}, "snomed_code"),
            ("conditions", {**CONDITION, "onset_date": FUTURE}, "onset_date"),
            (
                "medications",
                {
                    "name": "氨氯地平片",
                    "dose": "5",
                    "unit": "mg",
                    "route": "po",
                    "frequency": "qd",
                    "start_date": "2024-05-01",
                    "end_date": "2024-04-01",
                    "status": "active",
                },
                "end_date",
            ),
            (
                "medications",
                {
                    "name": "氨氯地平片",
                    "dose": "0",
                    "unit": "mg",
                    "route": "po",
                    "frequency": "qd",
                    "status": "active",
                },
                "dose",
            ),
            (
                "medications",
                {
                    "name": "氨氯地平片",
                    "dose": "5",
                    "unit": "mg",
                    "route": "po",
                    "frequency": "hourly",
                    "status": "active",
                },
                "frequency",
            ),
            ("history", {"kind": "family", "description": "高血压"}, "relation"),
            ("history", {"kind": "past", "description": "阑尾炎", "year": 1850}, "year"),
            (
                "lifestyle",
                {
                    "recorded_on": "2025-01-01",
                    "smoking": "never",
                    "alcohol": "none",
                    "exercise": "light",
                    "sleep_hours": "30",
                },
                "sleep_hours",
            ),
            ("caregivers", {"name": "王小明", "relation": "儿子", "phone": "12345"}, "phone"),
            (
                "reports",
                {
                    "kind": "lab",
                    "title": "血常规",
                    "reported_on": "2025-01-01",
                    "results": [{"value": 5}],
                },
                "results",
            ),
            (
                "consents",
                {
                    "purpose": "care_reminders",
                    "channel": "sms",
                    "granted": True,
                    "decided_on": "2025-01-01",
                    "source": "telepathy",
                },
                "source",
            ),
        ],
    )
    def test_invalid_row_is_refused_and_nothing_saved(self, world, make_patient, kind, data, field):
        p = make_patient()
        model = selectors.kind_of(kind).model
        versions = m.RecordVersion.objects.count()
        with pytest.raises(ValidationFailed) as exc:
            services.add_record(world.actor("doctor.cardiology"), p.pk, kind, data)
        assert field in exc.value.details, exc.value.details
        assert model.objects.count() == 0
        assert m.RecordVersion.objects.count() == versions

    def test_visit_discharge_before_admission_is_refused(self, world, make_patient):
        p = make_patient()
        with pytest.raises(ValidationFailed) as exc:
            services.add_record(
                world.actor("doctor.cardiology"),
                p.pk,
                "visits",
                {
                    "kind": "inpatient",
                    "department": world.cardio.pk,
                    "admitted_on": "2025-01-10",
                    "discharged_on": "2025-01-05",
                },
            )
        assert "discharged_on" in exc.value.details

    def test_visit_cannot_name_another_organisations_department(self, world, make_patient):
        p = make_patient()
        with pytest.raises(ValidationFailed) as exc:
            services.add_record(
                world.actor("doctor.cardiology"),
                p.pk,
                "visits",
                {
                    "kind": "outpatient",
                    "department": world.other_dept.pk,
                    "admitted_on": "2025-01-10",
                },
            )
        assert "department" in exc.value.details

    def test_national_extension_icd10_code_is_accepted_and_display_filled(
        self, world, make_patient
    ):
        p = make_patient()
        row = services.add_record(
            world.actor("doctor.cardiology"),
            p.pk,
            "conditions",
            {"icd10_code": "i10.X00X002", "status": "active"},
        )
        row.refresh_from_db()
        assert row.icd10_code == "I10.x00x002"
        assert "高血压" in row.display
        assert row.created_by == world.staff["doctor.cardiology"]

    def test_nurse_may_record_consent_and_admin_may_not_write_clinical_rows(
        self, world, make_patient
    ):
        p = make_patient()
        services.add_record(
            world.actor("nurse.cardiology"),
            p.pk,
            "consents",
            {
                "purpose": "care_reminders",
                "channel": "sms",
                "granted": True,
                "decided_on": TODAY.isoformat(),
                "source": "paper",
            },
        )
        with pytest.raises(Forbidden):
            services.add_record(world.actor("admin"), p.pk, "conditions", CONDITION)
        assert m.Condition.objects.count() == 0


# --- duplicates -------------------------------------------------------------------------------


class TestDuplicates:
    def _with_id(self, world, username="nurse.cardiology", **extra):
        return services.create_patient(
            world.actor(username),
            patient_data(national_id=VALID_ID, date_of_birth="1949-12-31", sex="female", **extra),
        )

    def test_same_id_number_is_refused(self, world):
        first = self._with_id(world)
        before = counts()
        with pytest.raises(DuplicatePatient) as exc:
            self._with_id(world, name="另一个名字")
        err = exc.value
        assert (err.status, err.code) == (409, "duplicate_patient")
        assert err.details["match"] == "national_id"
        assert err.details["existing_id"] == first.pk
        assert err.details["can_link"] is True
        assert counts() == before

    def test_duplicate_in_a_department_that_cannot_see_it_does_not_reveal_the_record(self, world):
        self._with_id(world)
        with pytest.raises(DuplicatePatient) as exc:
            self._with_id(world, username="nurse.endocrinology")
        assert exc.value.details["existing_id"] is None

    def test_same_id_even_when_confirmed_is_refused(self, world):
        self._with_id(world)
        with pytest.raises(DuplicatePatient):
            services.create_patient(
                world.actor("nurse.cardiology"),
                patient_data(national_id=VALID_ID, date_of_birth="1949-12-31", sex="female"),
                allow_duplicate=True,
            )
        assert m.Patient.objects.count() == 1

    def test_link_existing_adds_the_department_to_the_same_record(self, world):
        first = self._with_id(world)
        linked = services.create_patient(
            world.actor("nurse.endocrinology"),
            patient_data(national_id=VALID_ID, date_of_birth="1949-12-31", sex="female"),
            link_existing=True,
        )
        assert linked.pk == first.pk
        assert m.Patient.objects.count() == 1
        assert depts_of(first) == {world.cardio.pk, world.endo.pk}
        # The endocrinology nurse now sees the one shared record.
        assert selectors.get_patient(world.actor("nurse.endocrinology"), first.pk).pk == first.pk

    def test_same_id_number_in_another_organisation_is_a_different_patient(self, world):
        self._with_id(world)
        other = self._with_id(world, username="nurse.other")
        assert other.organisation_id == world.other_org.pk
        assert m.Patient.objects.count() == 2

    def test_same_name_birth_date_and_phone_needs_confirmation(self, world):
        data = patient_data(name="赵六", date_of_birth="1970-02-02", phones=["13977778888"])
        first = services.create_patient(world.actor("nurse.cardiology"), data)
        with pytest.raises(DuplicatePatient) as exc:
            services.create_patient(
                world.actor("nurse.cardiology"), {**data, "phones": ["+86 139 7777 8888"]}
            )
        assert exc.value.details["match"] == "name_dob_phone"
        assert exc.value.details["can_confirm"] is True
        assert exc.value.details["existing_id"] == first.pk
        assert m.Patient.objects.count() == 1
        second = services.create_patient(
            world.actor("nurse.cardiology"), data, allow_duplicate=True
        )
        assert second.pk != first.pk
        assert m.Patient.objects.count() == 2

    def test_same_name_and_birth_date_with_another_phone_is_not_a_duplicate(self, world):
        data = patient_data(name="赵六", date_of_birth="1970-02-02", phones=["13977778888"])
        services.create_patient(world.actor("nurse.cardiology"), data)
        services.create_patient(
            world.actor("nurse.cardiology"), {**data, "phones": ["13900001234"]}
        )
        assert m.Patient.objects.count() == 2


# --- changing a patient -----------------------------------------------------------------------


class TestUpdate:
    def test_update_changes_only_what_was_sent(self, world, make_patient):
        p = make_patient(address="旧地址", phones=["13911112222", "13933334444"])
        updated = services.update_patient(
            world.actor("doctor.cardiology"), p.pk, {"address": "新地址"}, expected=1
        )
        fresh = m.Patient.objects.get(pk=p.pk)
        assert fresh.address == "新地址"
        assert fresh.name == p.name and fresh.date_of_birth == p.date_of_birth
        assert [ph.number for ph in fresh.phones.all()] == ["13911112222", "13933334444"]
        assert updated.version == fresh.version == 2
        assert fresh.updated_by == world.staff["doctor.cardiology"]
        assert fresh.created_by == world.staff["nurse.cardiology"]

    def test_each_change_leaves_a_version_row(self, world, make_patient):
        p = make_patient()
        services.update_patient(world.actor("nurse.cardiology"), p.pk, {"name": "改名一"}, 1)
        services.update_patient(world.actor("doctor.cardiology"), p.pk, {"name": "改名二"}, "2")
        rows = list(
            m.RecordVersion.objects.filter(kind="patient", object_id=p.pk)
            .order_by("version")
            .values_list("version", "change", "actor__username")
        )
        assert rows == [
            (1, "create", "nurse.cardiology"),
            (2, "update", "nurse.cardiology"),
            (3, "update", "doctor.cardiology"),
        ]
        names = [
            v.snapshot["name"]
            for v in m.RecordVersion.objects.filter(object_id=p.pk, kind="patient").order_by(
                "version"
            )
        ]
        assert names == [p.name, "改名一", "改名二"]

    def test_stale_version_is_refused_with_what_changed_and_nothing_is_lost(
        self, world, make_patient
    ):
        p = make_patient(name="原名", phones=["13911112222"])
        # Two staff open version 1; the nurse saves first.
        services.update_patient(world.actor("nurse.cardiology"), p.pk, {"name": "新名"}, 1)
        with pytest.raises(StaleVersion) as exc:
            services.update_patient(
                world.actor("doctor.cardiology"), p.pk, {"phones": ["13955556666"]}, 1
            )
        err = exc.value
        assert (err.status, err.code) == (409, "stale_version")
        assert err.details["your_version"] == 1 and err.details["current_version"] == 2
        assert err.details["changed"]["name"] == {"was": "原名", "now": "新名"}
        assert "phones" not in err.details["changed"]
        assert err.details["changed_by"]
        fresh = m.Patient.objects.get(pk=p.pk)
        assert fresh.name == "新名" and fresh.version == 2
        assert [ph.number for ph in fresh.phones.all()] == ["13911112222"]
        # Having reviewed, the doctor re-applies on the current version: both changes survive.
        services.update_patient(
            world.actor("doctor.cardiology"), p.pk, {"phones": ["13955556666"]}, 2
        )
        fresh = m.Patient.objects.get(pk=p.pk)
        assert fresh.name == "新名"
        assert [ph.number for ph in fresh.phones.all()] == ["13955556666"]

    @pytest.mark.parametrize("version", [None, "", "abc"])
    def test_version_is_required(self, world, make_patient, version):
        p = make_patient()
        with pytest.raises(ValidationFailed) as exc:
            services.update_patient(world.actor("nurse.cardiology"), p.pk, {"name": "x"}, version)
        assert "version" in exc.value.details
        assert m.Patient.objects.get(pk=p.pk).version == 1

    def test_invalid_change_leaves_the_record_untouched(self, world, make_patient):
        p = make_patient(phones=["13911112222"])
        with pytest.raises(ValidationFailed) as exc:
            services.update_patient(
                world.actor("nurse.cardiology"), p.pk, {"phones": ["999"], "name": "不该保存"}, 1
            )
        assert "phones" in exc.value.details
        fresh = m.Patient.objects.get(pk=p.pk)
        assert (fresh.name, fresh.version) == (p.name, 1)
        assert [ph.number for ph in fresh.phones.all()] == ["13911112222"]

    def test_a_patient_outside_ones_departments_cannot_be_changed(self, world, make_patient):
        p = make_patient("nurse.cardiology")
        with pytest.raises(NotFound):
            services.update_patient(world.actor("nurse.endocrinology"), p.pk, {"name": "x"}, 1)
        assert m.Patient.objects.get(pk=p.pk).name == p.name


class TestRecordRows:
    def test_row_update_is_versioned_and_stale_row_refused(self, world, make_patient):
        p = make_patient()
        doctor = world.actor("doctor.cardiology")
        row = services.add_record(doctor, p.pk, "conditions", CONDITION)
        services.update_record(doctor, p.pk, "conditions", row.pk, {"status": "remission"}, 1)
        with pytest.raises(StaleVersion) as exc:
            services.update_record(
                world.actor("nurse.cardiology"),
                p.pk,
                "conditions",
                row.pk,
                {"note": "血压控制良好"},
                1,
            )
        assert exc.value.details["changed"]["status"] == {"was": "active", "now": "remission"}
        row.refresh_from_db()
        assert (row.status, row.note, row.version) == ("remission", "", 2)
        assert row.display == "原发性高血压"

    def test_soft_delete_hides_keeps_and_versions_the_row(self, world, make_patient):
        p = make_patient()
        doctor = world.actor("doctor.cardiology")
        row = services.add_record(doctor, p.pk, "conditions", CONDITION)
        with pytest.raises(StaleVersion):
            services.delete_record(doctor, p.pk, "conditions", row.pk, expected=7)
        services.delete_record(doctor, p.pk, "conditions", row.pk, expected=1)

        _, rows = selectors.list_records(doctor, p.pk, "conditions")
        assert rows == []
        with pytest.raises(NotFound):
            selectors.get_record(doctor, p.pk, "conditions", row.pk)
        kept = m.Condition.objects.get(pk=row.pk)
        assert kept.deleted_at is not None and kept.version == 2
        assert kept.display == "原发性高血压"
        assert kept.updated_by == world.staff["doctor.cardiology"]
        _, with_deleted = selectors.list_records(doctor, p.pk, "conditions", include_deleted=True)
        assert [r.pk for r in with_deleted] == [row.pk]
        changes = list(
            m.RecordVersion.objects.filter(kind="conditions", object_id=row.pk)
            .order_by("version")
            .values_list("version", "change")
        )
        assert changes == [(1, "create"), (2, "delete")]
        # A deleted row cannot be deleted or edited again, and no longer matches a search.
        with pytest.raises(NotFound):
            services.delete_record(doctor, p.pk, "conditions", row.pk, expected=2)
        with pytest.raises(NotFound):
            services.update_record(doctor, p.pk, "conditions", row.pk, {"note": "x"}, 2)
        page = selectors.search_patients(doctor, Criteria(condition="I10"))
        assert page.total == 0

    def test_rows_of_one_patient_cannot_be_reached_through_another(self, world, make_patient):
        a, b = make_patient(), make_patient()
        doctor = world.actor("doctor.cardiology")
        row = services.add_record(
            doctor,
            a.pk,
            "allergies",
            {"substance": "青霉素", "category": "medication", "severity": "severe"},
        )
        with pytest.raises(NotFound):
            selectors.get_record(doctor, b.pk, "allergies", row.pk)
        with pytest.raises(NotFound):
            services.update_record(doctor, b.pk, "allergies", row.pk, {"reaction": "x"}, 1)
        with pytest.raises(NotFound):
            services.delete_record(doctor, b.pk, "allergies", row.pk, 1)
        assert m.Allergy.objects.get(pk=row.pk).deleted_at is None


# --- merging duplicates -----------------------------------------------------------------------


class TestMerge:
    @pytest.fixture
    def pair(self, world):
        keep = services.create_patient(
            world.actor("nurse.cardiology"),
            patient_data(
                name="钱七", date_of_birth="1949-12-31", sex="female", phones=["13911110000"]
            ),
        )
        # Registered again in endocrinology, the nurse confirming it was "someone else".
        drop = services.create_patient(
            world.actor("nurse.endocrinology"),
            patient_data(
                name="钱七",
                date_of_birth="1949-12-31",
                sex="female",
                national_id=VALID_ID,
                address="南京市玄武区长江路8号",
                phones=["13922220000", "13911110000"],
            ),
            allow_duplicate=True,
        )
        endo = world.actor("doctor.endocrinology")
        services.add_record(
            endo,
            drop.pk,
            "conditions",
            {**CONDITION, "icd10_code": "E11.9", "display": "2型糖尿病"},
        )
        services.add_record(
            endo,
            drop.pk,
            "allergies",
            {"substance": "青霉素", "category": "medication", "severity": "severe"},
        )
        return keep, drop

    def test_merge_moves_rows_phones_and_departments(self, world, pair):
        keep, drop = pair
        kept = services.merge_patients(world.actor("admin"), keep.pk, drop.pk, drop.version)
        assert kept.pk == keep.pk
        admin = world.actor("admin")
        _, conditions = selectors.list_records(admin, keep.pk, "conditions")
        _, allergies = selectors.list_records(admin, keep.pk, "allergies")
        assert [c.display for c in conditions] == ["2型糖尿病"]
        assert [a.substance for a in allergies] == ["青霉素"]
        kept = m.Patient.objects.get(pk=keep.pk)
        assert [ph.number for ph in kept.phones.all()] == ["13911110000", "13922220000"]
        assert depts_of(kept) == {world.cardio.pk, world.endo.pk}
        assert kept.national_id == VALID_ID  # filled from the duplicate, which had it
        assert kept.address == "南京市玄武区长江路8号"
        assert kept.version == 2
        old = m.Patient.objects.get(pk=drop.pk)  # kept, not deleted
        assert old.merged_into_id == keep.pk
        assert old.name == "钱七"
        merges = m.RecordVersion.objects.filter(kind="patient", change="merge")
        assert set(merges.values_list("object_id", flat=True)) == {keep.pk, drop.pk}
        # The duplicate's history now shows on the kept patient's timeline.
        left = m.RecordVersion.objects.filter(patient_id=drop.pk)
        assert list(left.values_list("kind", "object_id", "change")) == [
            ("patient", drop.pk, "merge")
        ]
        _, events = selectors.timeline(admin, keep.pk)
        assert {"2型糖尿病", "青霉素"} <= {e["summary"] for e in events}

    def test_old_id_points_to_the_kept_record(self, world, pair):
        keep, drop = pair
        services.merge_patients(world.actor("admin"), keep.pk, drop.pk, 1)
        with pytest.raises(PatientMerged) as exc:
            selectors.get_patient(world.actor("nurse.endocrinology"), drop.pk)
        assert exc.value.status == 404
        assert exc.value.code == "merged"
        assert exc.value.details == {"merged_into": keep.pk}
        assert selectors.get_patient(world.actor("nurse.endocrinology"), keep.pk).pk == keep.pk
        # Someone who cannot see the kept record learns nothing about the merge.
        with pytest.raises(NotFound) as other:
            selectors.get_patient(world.actor("nurse.other"), drop.pk)
        assert not isinstance(other.value, PatientMerged)

    def test_merged_record_drops_out_of_search(self, world, pair):
        keep, drop = pair
        services.merge_patients(world.actor("admin"), keep.pk, drop.pk, 1)
        admin = world.actor("admin")
        assert [p.pk for p in selectors.search_patients(admin, Criteria(q="钱七")).items] == [
            keep.pk
        ]
        assert [
            p.pk for p in selectors.search_patients(admin, Criteria(q="13922220000")).items
        ] == [keep.pk]
        assert [p.pk for p in selectors.search_patients(admin, Criteria(q=VALID_ID)).items] == [
            keep.pk
        ]

    def test_merge_refuses_stale_self_and_unauthorised(self, world, pair):
        keep, drop = pair
        services.update_patient(
            world.actor("nurse.endocrinology"), drop.pk, {"record_number": "X1"}, 1
        )
        with pytest.raises(StaleVersion):
            services.merge_patients(world.actor("admin"), keep.pk, drop.pk, 1)
        with pytest.raises(ValidationFailed):
            services.merge_patients(world.actor("admin"), keep.pk, keep.pk, 1)
        with pytest.raises(Forbidden):
            services.merge_patients(world.actor("nurse.cardiology"), keep.pk, drop.pk, 2)
        with pytest.raises(NotFound):  # the cardiology doctor cannot see the other record
            services.merge_patients(world.actor("doctor.cardiology"), keep.pk, drop.pk, 2)
        assert not m.Patient.objects.exclude(merged_into=None).exists()
        assert m.Condition.objects.get().patient_id == drop.pk


# --- encryption at rest -----------------------------------------------------------------------


def raw_rows(table: str, column: str, value: int) -> str:
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} WHERE {column} = %s", [value])  # noqa: S608
        return repr(cur.fetchall())


class TestEncryptionAtRest:
    SECRETS = (VALID_ID, "13966667777", "0755-12345678", "深圳市南山区科技园1号")

    @pytest.fixture
    def patient(self, world, make_patient):
        p = make_patient(
            national_id=VALID_ID,
            sex="female",
            date_of_birth="1949-12-31",
            phones=["13966667777", "0755-12345678"],
            address="深圳市南山区科技园1号",
        )
        services.add_record(
            world.actor("nurse.cardiology"),
            p.pk,
            "caregivers",
            {"name": "女儿", "relation": "女儿", "phone": "13811112222"},
        )
        return p

    def test_database_holds_no_plaintext_identifiers(self, patient):
        stored = (
            raw_rows("patients_patient", "id", patient.pk)
            + raw_rows("patients_patientphone", "patient_id", patient.pk)
            + raw_rows("patients_caregiver", "patient_id", patient.pk)
            + raw_rows("patients_recordversion", "patient_id", patient.pk)
        )
        for secret in (*self.SECRETS, "13811112222"):
            assert secret not in stored
        # Phone tails are short: look for them outside hex digests and timestamps, where four
        # digits in a row turn up by chance.
        scrubbed = re.sub(r"[0-9a-f]{32,}", "<digest>", stored)
        scrubbed = re.sub(r"datetime\.datetime\([\d, ]+", "<time>", scrubbed)
        scrubbed = re.sub(r"\d{4}-\d\d-\d\d[ T][\d:.]+", "<time>", scrubbed)
        for tail in ("7777", "5678"):
            assert tail not in scrubbed
        # ...while the application reads them back.
        fresh = m.Patient.objects.get(pk=patient.pk)
        assert fresh.national_id == VALID_ID and fresh.address == "深圳市南山区科技园1号"
        assert m.Caregiver.objects.get().phone == "13811112222"

    def test_key_rotation_keeps_every_value_readable_under_the_new_key(
        self, settings, world, patient
    ):
        old_keys = list(settings.FIELD_KEYS)
        before = raw_rows("patients_patient", "id", patient.pk)
        settings.FIELD_KEYS = ["a-brand-new-field-key-for-2025", *old_keys]
        out = io.StringIO()
        call_command("keys", "rotate", stdout=out)
        assert "re-encrypted" in out.getvalue()
        after = raw_rows("patients_patient", "id", patient.pk)
        assert after != before
        settings.FIELD_KEYS = ["a-brand-new-field-key-for-2025"]  # old key retired
        fresh = m.Patient.objects.get(pk=patient.pk)
        assert fresh.national_id == VALID_ID
        assert fresh.address == "深圳市南山区科技园1号"
        assert [ph.number for ph in fresh.phones.all()] == ["13966667777", "0755-12345678"]
        assert m.Caregiver.objects.get().phone == "13811112222"
        # Search indexes do not depend on the field key: the patient is still found.
        page = selectors.search_patients(world.actor("nurse.cardiology"), Criteria(q="7777"))
        assert [p.pk for p in page.items] == [patient.pk]
        # With only the retired key, nothing can be read any more.
        settings.FIELD_KEYS = old_keys
        with pytest.raises(ValueError):
            m.Patient.objects.get(pk=patient.pk)


# --- search -----------------------------------------------------------------------------------


class TestSearch:
    @pytest.fixture
    def people(self, world):
        cardio, endo = world.actor("nurse.cardiology"), world.actor("nurse.endocrinology")
        born70, born50, born30 = years_ago(70, 3), years_ago(50), years_ago(30, 100)
        old_man = services.create_patient(
            cardio,
            patient_data(
                name="王建国",
                sex="male",
                date_of_birth=born70.isoformat(),
                national_id=resident_id(born70, "male"),
                phones=["13800001111"],
            ),
        )
        services.add_record(
            world.actor("doctor.cardiology"),
            old_man.pk,
            "conditions",
            {**CONDITION, "icd10_code": "I10.x00x002", "display": "高血压病3级"},
        )
        woman = services.create_patient(
            endo,
            patient_data(
                name="李秀英",
                sex="female",
                date_of_birth=born50.isoformat(),
                phones=["13800002222"],
            ),
        )
        services.add_record(
            world.actor("doctor.endocrinology"),
            woman.pk,
            "conditions",
            {**CONDITION, "icd10_code": "E11.9", "display": "2型糖尿病"},
        )
        young = services.create_patient(
            cardio,
            patient_data(
                name="王芳",
                sex="female",
                date_of_birth=born30.isoformat(),
                phones=["0755-88881111"],
            ),
        )
        return {"old_man": old_man, "woman": woman, "young": young}

    @staticmethod
    def find(world, username="admin", **criteria):
        page = selectors.search_patients(world.actor(username), Criteria(**criteria))
        return {p.name for p in page.items}

    def test_by_name(self, world, people):
        assert self.find(world, q="王") == {"王建国", "王芳"}
        assert self.find(world, q="秀英") == {"李秀英"}
        assert self.find(world, q="赵") == set()

    def test_by_phone_tail_full_phone_and_landline(self, world, people):
        assert self.find(world, q="1111") == {"王建国", "王芳"}
        assert self.find(world, q="2222") == {"李秀英"}
        assert self.find(world, q="138 0000 1111") == {"王建国"}
        assert self.find(world, q="+8613800001111") == {"王建国"}
        assert self.find(world, q="075588881111") == {"王芳"}
        assert self.find(world, phone="0755-88881111") == {"王芳"}
        assert self.find(world, phone_tail="2222") == {"李秀英"}

    def test_by_id_number(self, world, people):
        nid = m.Patient.objects.get(pk=people["old_man"].pk).national_id
        assert self.find(world, q=nid) == {"王建国"}
        assert self.find(world, national_id=nid.lower()) == {"王建国"}

    def test_by_condition_code_and_text(self, world, people):
        assert self.find(world, q="I10") == {"王建国"}
        assert self.find(world, condition="I10.x00x002") == {"王建国"}
        assert self.find(world, q="E11") == {"李秀英"}
        assert self.find(world, condition="糖尿病") == {"李秀英"}
        assert self.find(world, condition="高血压") == {"王建国"}

    def test_filters(self, world, people):
        assert self.find(world, department=world.endo.pk) == {"李秀英"}
        assert self.find(world, sex="female") == {"李秀英", "王芳"}
        assert self.find(world, age_min=50) == {"王建国", "李秀英"}
        assert self.find(world, age_max=49) == {"王芳"}
        assert self.find(world, age_min=50, age_max=50) == {"李秀英"}
        assert self.find(world, q="王", sex="male") == {"王建国"}

    def test_results_are_limited_to_ones_departments(self, world, people):
        assert self.find(world, "nurse.cardiology", q="1111") == {"王建国", "王芳"}
        assert self.find(world, "nurse.endocrinology", q="1111") == set()
        assert self.find(world, "nurse.endocrinology", condition="高血压") == set()
        assert self.find(world, "nurse.other", q="王") == set()

    def test_search_is_forbidden_to_auditors(self, world, people):
        with pytest.raises(Forbidden):
            self.find(world, "auditor", q="王")

    def test_sort_allow_list_and_fallback(self, world):
        nurse = world.actor("nurse.cardiology")
        for name, years in (("Cora", 40), ("Anna", 60), ("Bella", 20)):
            services.create_patient(
                nurse, patient_data(name=name, date_of_birth=years_ago(years).isoformat())
            )

        def order(sort):
            return [p.name for p in selectors.search_patients(nurse, Criteria(sort=sort)).items]

        assert order("name") == ["Anna", "Bella", "Cora"]
        assert order("-name") == ["Cora", "Bella", "Anna"]
        assert order("age") == ["Bella", "Cora", "Anna"]
        assert order("-age") == ["Anna", "Cora", "Bella"]
        assert order("created") == ["Cora", "Anna", "Bella"]
        newest_first = ["Bella", "Anna", "Cora"]
        assert order("-updated") == newest_first
        for unknown in ("national_id", "password", "name; DROP TABLE x", ""):
            assert order(unknown) == newest_first

    def test_pagination(self, world):
        nurse = world.actor("nurse.cardiology")
        for i in range(5):
            services.create_patient(nurse, patient_data(name=f"Page{i}"))
        seen = []
        for number in (1, 2, 3):
            page = selectors.search_patients(nurse, Criteria(sort="name", page=number, size=2))
            assert (page.total, page.pages, page.number) == (5, 3, number)
            seen += [p.name for p in page.items]
        assert seen == [f"Page{i}" for i in range(5)]
        last = selectors.search_patients(nurse, Criteria(sort="name", page=99, size=2))
        assert last.number == 3 and [p.name for p in last.items] == ["Page4"]
        huge = selectors.search_patients(nurse, Criteria(size=100_000))
        assert huge.size == 200


# --- timeline ---------------------------------------------------------------------------------


def test_timeline_tells_what_happened_newest_first(world, make_patient):
    p = make_patient()
    doctor = world.actor("doctor.cardiology")
    cond = services.add_record(doctor, p.pk, "conditions", CONDITION)
    services.update_record(doctor, p.pk, "conditions", cond.pk, {"status": "remission"}, 1)
    visit_day = TODAY - timedelta(days=10)
    services.add_record(
        doctor,
        p.pk,
        "visits",
        {
            "kind": "outpatient",
            "department": world.cardio.pk,
            "attending": "张医生",
            "diagnoses": "高血压",
            "admitted_on": visit_day.isoformat(),
        },
    )
    allergy = services.add_record(
        doctor,
        p.pk,
        "allergies",
        {"substance": "青霉素", "category": "medication", "severity": "severe"},
    )
    services.delete_record(world.actor("nurse.cardiology"), p.pk, "allergies", allergy.pk, 1)

    _, events = selectors.timeline(world.actor("nurse.cardiology"), p.pk)
    steps = [(e["kind"], e["change"]) for e in events]
    assert steps == [
        ("allergies", "delete"),
        ("allergies", "create"),
        ("visits", "create"),
        ("conditions", "update"),
        ("conditions", "create"),
        ("patient", "create"),
        ("visit", "visit"),
    ]
    assert events[0]["actor"] == "nurse.cardiology"
    assert events[0]["summary"] == "青霉素"
    assert events[3]["summary"] == "原发性高血压" and events[3]["version"] == 2
    assert events[3]["actor"] == "doctor.cardiology"
    visit = events[-1]
    assert visit["date"] == visit_day and visit["actor"] == "张医生"
    assert "高血压" in visit["summary"]


def test_timeline_needs_clinical_access(world, make_patient):
    p = make_patient()
    with pytest.raises(Forbidden):
        selectors.timeline(world.actor("auditor"), p.pk)
    with pytest.raises(NotFound):
        selectors.timeline(world.actor("nurse.endocrinology"), p.pk)
