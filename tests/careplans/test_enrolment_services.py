"""Enrolment by staff and by rule; recomputing the future only; ending cancels what is pending."""

from __future__ import annotations

from datetime import timedelta

import pytest

from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.errors import Conflict, NotFound, ValidationFailed
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db
S = rm.Status
NOW = utc(2026, 3, 1, 16, 0)  # midnight in Shanghai


def meds(patient: object) -> list[rm.Occurrence]:
    return list(rm.Occurrence.objects.filter(patient=patient, kind="medication").order_by("due_at"))


class TestStaffEnrolment:
    def test_preview_matches_what_enrolment_creates(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "bid")
        tpl = clinic.template("hypertension")
        preview = plan_services.preview(clinic.actor, p.pk, tpl.pk, now=NOW, days=14)
        enrolment = clinic.enrol(p, "hypertension", now=NOW)
        created = rm.Occurrence.objects.filter(
            enrolment=enrolment, due_at__lt=NOW + timedelta(days=14)
        )
        assert sorted(f"{i.local:%Y-%m-%dT%H:%M}" for i in preview) == sorted(
            created.values_list("local_due", flat=True)
        )
        doses = [i for i in preview if i.kind == "medication"]
        assert [f"{i.local:%H:%M}" for i in doses[:2]] == ["08:00", "20:00"]
        assert doses[0].detail == "氨氯地平 5 mg"

    def test_enrolling_twice_is_refused(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.enrol(p, "hypertension", now=NOW)
        with pytest.raises(Conflict):
            clinic.enrol(p, "hypertension", now=NOW)

    def test_discharge_plan_needs_a_discharge_date(self, clinic: Clinic) -> None:
        p = clinic.patient()
        with pytest.raises(ValidationFailed) as err:
            clinic.enrol(p, "post-discharge", now=NOW)
        assert "anchor_date" in err.value.details

    def test_post_discharge_contacts_at_day_1_3_7_14_30(self, clinic: Clinic) -> None:
        p = clinic.patient()
        reminder_settings = rm.ReminderSettings.objects.get_or_create(
            organisation=clinic.world.org
        )[0]
        reminder_settings.horizon_days = 40
        reminder_settings.save()
        from datetime import date

        clinic.enrol(p, "post-discharge", now=NOW, anchor_date=date(2026, 3, 1))
        contacts = rm.Occurrence.objects.filter(patient=p, activity_code="contact").order_by(
            "due_at"
        )
        assert list(contacts.values_list("local_due", flat=True)) == [
            "2026-03-02T10:00",
            "2026-03-04T10:00",
            "2026-03-08T10:00",
            "2026-03-15T10:00",
            "2026-03-31T10:00",
        ]

    def test_adjustments_turn_off_and_move_activities(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = clinic.template("hypertension")
        enrolment = plan_services.enrol(
            clinic.actor,
            p.pk,
            tpl.pk,
            now=NOW,
            adjustments={"diet-education": {"off": True}, "bp-morning": {"times": ["07:00"]}},
        )
        occ = rm.Occurrence.objects.filter(enrolment=enrolment)
        assert not occ.filter(activity_code="diet-education").exists()
        assert set(
            t[-5:]
            for t in occ.filter(activity_code="bp-morning").values_list("local_due", flat=True)
        ) == {"07:00"}

    def test_bad_adjustment_is_refused_and_nothing_is_created(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = clinic.template("hypertension")
        with pytest.raises(ValidationFailed):
            plan_services.enrol(
                clinic.actor, p.pk, tpl.pk, now=NOW, adjustments={"bp-morning": {"times": ["7am"]}}
            )
        assert not cm.Enrolment.objects.filter(patient=p).exists()
        assert not rm.Occurrence.objects.filter(patient=p).exists()

    def test_other_department_cannot_enrol(self, clinic: Clinic, world: object) -> None:
        p = clinic.patient()
        tpl = clinic.template("hypertension")
        with pytest.raises(NotFound):
            plan_services.enrol(world.actor("nurse.endocrinology"), p.pk, tpl.pk, now=NOW)  # type: ignore[attr-defined]

    def test_auditor_cannot_enrol(self, clinic: Clinic, world: object) -> None:
        from careloop.kit.errors import Forbidden

        p = clinic.patient()
        tpl = clinic.template("hypertension")
        with pytest.raises(Forbidden):
            plan_services.enrol(world.actor("auditor"), p.pk, tpl.pk, now=NOW)  # type: ignore[attr-defined]


class TestChangesRecomputeTheFutureOnly:
    def test_new_prescription_adds_future_doses_past_untouched(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=NOW)
        clinic.run(utc(2026, 3, 2, 0, 0))  # today's 08:00 dose sent
        sent_before = [o.pk for o in meds(p) if o.status == S.SENT]
        assert len(sent_before) == 1
        # The prescription changes to bid (the change happens "now" in real time, after March).
        rx = clinic.prescribe(p, "bid", name="缬沙坦")
        future = [o for o in meds(p) if o.payload.get("medication_id") == rx.pk]
        assert future  # doses of the new medicine planned
        assert rm.Occurrence.objects.filter(pk__in=sent_before, status=S.SENT).count() == 1

    def test_stopping_a_prescription_removes_its_future_doses(self, clinic: Clinic) -> None:
        from datetime import datetime
        from unittest import mock

        p = clinic.patient()
        rx = clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=NOW)
        clinic.run(utc(2026, 3, 2, 0, 0))
        later = utc(2026, 3, 3, 1, 0)
        with (
            mock.patch("careloop.careplans.services.utc_now", return_value=later),
            mock.patch("careloop.reminders.services.utc_now", return_value=later),
        ):
            patient_services.update_record(
                clinic.actor, p.pk, "medications", rx.pk, {"status": "stopped"}, rx.version
            )
        remaining = meds(p)
        assert all(o.due_at < later for o in remaining)
        assert [o.local_due for o in remaining if o.status == S.SENT] == ["2026-03-02T08:00"]
        assert isinstance(remaining[0].due_at, datetime)

    def test_template_change_bumps_version_and_recomputes(self, clinic: Clinic) -> None:
        p = clinic.patient()
        enrolment = clinic.enrol(p, "hypertension", now=NOW)
        spec = plan_services.template_spec(clinic.template("hypertension"))
        for act in spec["activities"]:
            if act["code"] == "bp-morning":
                act["schedule"] = {"rrule": "FREQ=DAILY", "times": ["09:15"]}
        tpl, outcome = plan_services.save_template(spec, now=NOW)
        assert outcome == "updated" and tpl.version == 2
        times = set(
            rm.Occurrence.objects.filter(
                enrolment=enrolment, activity_code="bp-morning"
            ).values_list("local_due", flat=True)
        )
        assert {t[-5:] for t in times} == {"09:15"}

    def test_ending_cancels_pending_and_keeps_the_past(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        enrolment = clinic.enrol(p, "hypertension", now=NOW)
        clinic.run(utc(2026, 3, 2, 0, 0))
        ended = plan_services.end_enrolment(clinic.actor, enrolment.pk, reason="转院")
        assert ended.status == "ended"
        statuses = set(
            rm.Occurrence.objects.filter(enrolment=enrolment).values_list("status", flat=True)
        )
        assert statuses <= {S.SENT, S.CANCELLED}
        assert rm.Occurrence.objects.filter(enrolment=enrolment, status=S.SENT).count() == 1
        with pytest.raises(Conflict):
            plan_services.end_enrolment(clinic.actor, enrolment.pk, reason="again")

    def test_ending_needs_a_reason(self, clinic: Clinic) -> None:
        p = clinic.patient()
        enrolment = clinic.enrol(p, "hypertension", now=NOW)
        with pytest.raises(ValidationFailed):
            plan_services.end_enrolment(clinic.actor, enrolment.pk, reason="  ")


class TestRules:
    def test_coded_hypertension_diagnosis_enrols(self, clinic: Clinic) -> None:
        plan_services.install_default_rules(clinic.world.org)
        p = clinic.patient()
        patient_services.add_record(
            clinic.actor, p.pk, "conditions", {"icd10_code": "I10", "status": "active"}
        )
        enrolment = cm.Enrolment.objects.get(patient=p)
        assert enrolment.template.code == "hypertension"
        assert enrolment.source == "rule"
        assert rm.Occurrence.objects.filter(enrolment=enrolment).exists()
        # A second matching diagnosis does not enrol twice.
        patient_services.add_record(
            clinic.actor, p.pk, "conditions", {"icd10_code": "I11.9", "status": "active"}
        )
        assert cm.Enrolment.objects.filter(patient=p).count() == 1

    def test_discharge_from_surgery_enrols_in_post_discharge(
        self, clinic: Clinic, world: object
    ) -> None:
        from careloop.accounts.models import Department

        surgery = Department.objects.create(
            organisation=clinic.world.org, code="surgery", name="外科"
        )
        plan_services.install_default_rules(clinic.world.org)
        p = clinic.patient()
        patient_services.add_record(
            clinic.actor,
            p.pk,
            "visits",
            {
                "kind": "inpatient",
                "department": surgery.pk,
                "admitted_on": "2026-02-20",
                "discharged_on": "2026-02-27",
            },
        )
        enrolment = cm.Enrolment.objects.get(patient=p)
        assert enrolment.template.code == "post-discharge"
        assert str(enrolment.anchor_date) == "2026-02-27"

    def test_outpatient_visit_does_not_enrol(self, clinic: Clinic) -> None:
        plan_services.install_default_rules(clinic.world.org)
        p = clinic.patient()
        patient_services.add_record(
            clinic.actor,
            p.pk,
            "visits",
            {
                "kind": "outpatient",
                "department": clinic.world.cardio.pk,
                "admitted_on": "2026-02-20",
            },
        )
        assert not cm.Enrolment.objects.filter(patient=p).exists()


class TestTemplatesFromFiles:
    def test_all_bundled_templates_load_and_reload_is_a_no_op(self, clinic: Clinic) -> None:
        results = dict(plan_services.load_templates())
        assert set(results) >= {
            "hypertension",
            "type2-diabetes",
            "post-discharge",
            "heart-failure",
            "family-doctor",
        }
        assert set(results.values()) == {"same"}

    def test_a_broken_file_names_the_problem(self, tmp_path: object) -> None:
        from pathlib import Path

        path = Path(str(tmp_path)) / "bad.toml"
        path.write_text(
            'code = "x"\nname = "x"\n[[activities]]\ncode = "a"\nkind = "measurement"\n'
            'title = "t"\nschedule = { rrule = "FREQ=NEVER" }\n',
            encoding="utf-8",
        )
        with pytest.raises(ValidationFailed) as err:
            plan_services.read_template_file(path)
        assert "activities[1].schedule" in err.value.details
