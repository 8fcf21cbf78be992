"""The staff pages of care plans: the patient's tab, the enrolment wizard, the plan calendar,
ending and adjusting an enrolment, reminder preferences, and who may see them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.patients import services as patient_services
from careloop.reminders import models as rm
from tests.careplans.pages import frozen, signed_in, text
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db
S = rm.Status
NOW = utc(2026, 3, 2, 2, 0)  # Monday 2 March 2026, 10:00 in Shanghai


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    with frozen(NOW):
        yield


def enrol_url(patient: object) -> str:
    return f"/plans/patients/{patient.pk}/enrol/"  # type: ignore[attr-defined]


def enrolled(clinic: Clinic, frequency: str = "bid") -> tuple[object, cm.Enrolment]:
    p = clinic.patient()
    clinic.prescribe(p, frequency)
    return p, clinic.enrol(p, "hypertension", now=NOW)


class TestPatientTab:
    def test_lists_active_and_ended_enrolments_with_an_enrol_button(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        ended = clinic.enrol(p, "type2-diabetes", now=NOW)
        client = signed_in("nurse.cardiology")
        client.post(f"/plans/{ended.pk}/end/", {"reason": "Goals reached", "version": 1})
        page = text(client.get(f"/patients/{p.pk}/?tab=careplans"))
        assert "Hypertension follow-up" in page
        assert "Type 2 diabetes" in page
        assert "Goals reached" in page
        assert page.index("Hypertension follow-up") < page.index("Type 2 diabetes")
        assert f'href="/plans/{e.pk}/"' in page
        assert 'data-testid="enrol"' in page
        tab = text(client.get(f"/patients/{p.pk}/tab/careplans/"))
        assert "Hypertension follow-up" in tab

    def test_admin_sees_plans_but_gets_no_enrol_button(self, clinic: Clinic) -> None:
        p, _ = enrolled(clinic)
        page = text(signed_in("admin").get(f"/patients/{p.pk}/?tab=careplans"))
        assert "Hypertension follow-up" in page
        assert 'data-testid="enrol"' not in page

    def test_warns_when_no_external_channel_has_consent(self, clinic: Clinic) -> None:
        p = clinic.patient(consent=())
        client = signed_in("nurse.cardiology")
        assert 'data-testid="consent-warning"' in text(
            client.get(f"/patients/{p.pk}/?tab=careplans")
        )
        assert 'data-testid="consent-warning"' in text(client.get(enrol_url(p)))
        clinic.consent(p, "wechat", True)
        assert 'data-testid="consent-warning"' not in text(client.get(enrol_url(p)))

    def test_a_withdrawn_consent_warns_again(self, clinic: Clinic) -> None:
        p = clinic.patient(consent=("sms",))
        clinic.consent(p, "sms", False, on="2026-02-01")
        page = text(signed_in("nurse.cardiology").get(enrol_url(p)))
        assert 'data-testid="consent-warning"' in page

    def test_reading_the_tab_is_audited(self, clinic: Clinic) -> None:
        p, _ = enrolled(clinic)
        signed_in("doctor.cardiology").get(f"/patients/{p.pk}/tab/careplans/")
        assert AuditEvent.objects.filter(
            action="careplan.read", patient_id=p.pk, actor="doctor.cardiology"
        ).exists()


class TestEnrolWizard:
    def test_plans_are_listed_in_the_users_language(self, clinic: Clinic) -> None:
        p = clinic.patient()
        english = text(signed_in("nurse.cardiology").get(enrol_url(p)))
        assert "Hypertension follow-up" in english and "高血压随访管理" not in english
        chinese = text(signed_in("nurse.cardiology", "zh-hans").get(enrol_url(p)))
        assert "高血压随访管理" in chinese and "Hypertension follow-up" not in chinese

    def test_preview_shows_the_dose_times(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "bid")
        tpl = clinic.template("hypertension")
        client = signed_in("nurse.cardiology")
        page = text(client.get(enrol_url(p), {"template": tpl.pk}))
        assert 'data-testid="preview"' in page
        preview = text(client.get(f"{enrol_url(p)}preview/", {"template": tpl.pk}))
        assert "<time>08:00</time> Take your medicine" in preview
        assert "<time>20:00</time> Take your medicine" in preview
        assert "氨氯地平 5 mg" in preview
        assert "<time>08:30</time> Measure and log your morning blood pressure" in preview

    def test_preview_follows_the_patients_dose_times_and_the_adjustments(
        self, clinic: Clinic
    ) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "bid")
        client = signed_in("nurse.cardiology")
        client.post(f"/plans/patients/{p.pk}/preferences/", {"dose-bid": "07:30, 19:30"})
        tpl = clinic.template("hypertension")
        preview = text(
            client.get(
                f"{enrol_url(p)}preview/",
                {
                    "template": tpl.pk,
                    "configured": "1",
                    "on-medication": "on",
                    "on-bp-morning": "on",
                    "times-bp-morning": "07:15",
                },
            )
        )
        assert "<time>07:30</time> Take your medicine" in preview
        assert "<time>19:30</time> Take your medicine" in preview
        assert "<time>07:15</time> Measure" in preview
        assert "08:30" not in preview
        assert "Low-salt eating tips" not in preview  # unticked

    def test_unreadable_times_are_reported_not_previewed(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = clinic.template("hypertension")
        preview = text(
            signed_in("nurse.cardiology").get(
                f"{enrol_url(p)}preview/",
                {
                    "template": tpl.pk,
                    "configured": "1",
                    "on-bp-morning": "on",
                    "times-bp-morning": "25:00",
                },
            )
        )
        assert "cannot be read" in preview

    def test_confirming_enrols_with_the_adjustments(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        tpl = clinic.template("hypertension")
        response = signed_in("nurse.cardiology").post(
            enrol_url(p),
            {
                "template": tpl.pk,
                "configured": "1",
                "on-medication": "on",
                "on-bp-morning": "on",
                "times-bp-morning": "07:00",
                "on-nurse-call": "on",
                "on-revisit": "on",
            },
        )
        e = cm.Enrolment.objects.get(patient=p)
        assert response.status_code == 302
        assert response["Location"] == f"/plans/{e.pk}/"
        assert e.adjustments == {
            "bp-morning": {"times": ["07:00"]},
            "diet-education": {"off": True},
        }
        assert e.enrolled_by.username == "nurse.cardiology"
        occ = rm.Occurrence.objects.filter(enrolment=e)
        assert set(occ.filter(activity_code="bp-morning").values_list("local_due", flat=True))
        assert all(
            d.endswith("T07:00")
            for d in occ.filter(activity_code="bp-morning").values_list("local_due", flat=True)
        )
        assert not occ.filter(activity_code="diet-education").exists()
        assert occ.filter(kind="medication", local_due="2026-03-03T08:00").exists()

    def test_discharge_date_is_prefilled_from_the_last_discharge(self, clinic: Clinic) -> None:
        p = clinic.patient()
        patient_services.add_record(
            clinic.actor,
            p.pk,
            "visits",
            {
                "kind": "inpatient",
                "department": str(clinic.world.cardio.pk),
                "admitted_on": "2026-02-20",
                "discharged_on": "2026-02-28",
            },
        )
        tpl = clinic.template("post-discharge")
        page = text(signed_in("nurse.cardiology").get(enrol_url(p), {"template": tpl.pk}))
        assert 'name="anchor_date" value="2026-02-28"' in page
        assert "Discharge date" in page

    def test_a_discharge_plan_without_a_date_is_refused(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = clinic.template("post-discharge")
        response = signed_in("nurse.cardiology").post(
            enrol_url(p), {"template": tpl.pk, "configured": "1", "anchor_date": ""}
        )
        assert response.status_code == 422
        assert "counts from discharge" in text(response)
        assert not cm.Enrolment.objects.filter(patient=p).exists()

    def test_enrolling_twice_is_refused_with_a_message(self, clinic: Clinic) -> None:
        p, _ = enrolled(clinic)
        tpl = clinic.template("hypertension")
        response = signed_in("nurse.cardiology").post(enrol_url(p), {"template": tpl.pk})
        assert response.status_code == 409
        assert "already enrolled" in text(response)
        picker = text(signed_in("nurse.cardiology").get(enrol_url(p)))
        assert "Already enrolled" in picker

    def test_no_plan_chosen(self, clinic: Clinic) -> None:
        p = clinic.patient()
        response = signed_in("nurse.cardiology").post(enrol_url(p), {"template": "999999"})
        assert response.status_code == 422
        assert "Choose a plan." in text(response)


class TestCalendar:
    def test_groups_by_local_day_with_status_and_delivery_attempts(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        first = rm.Occurrence.objects.filter(enrolment=e, kind="medication").order_by("due_at")[0]
        rm.Attempt.objects.create(
            occurrence=first,
            organisation_id=first.organisation_id,
            patient=p,
            dedupe_key=f"o{first.pk}:s0:sms",
            channel="sms",
            provider="aliyun_sms",
            address_hint="139****0001",
            outcome=rm.Attempt.Outcome.PERMANENT,
            error_code="isv.MOBILE_NUMBER_ILLEGAL",
            detail="invalid number",
            started_at=first.due_at,
            finished_at=first.due_at + timedelta(seconds=1),
        )
        rm.Occurrence.objects.filter(pk=first.pk).update(status=S.DEAD, reason="invalid_address")
        skipped = rm.Occurrence.objects.filter(enrolment=e, activity_code="bp-morning").first()
        assert skipped is not None
        rm.Occurrence.objects.filter(pk=skipped.pk).update(status=S.SKIPPED, reason="no_consent")
        page = text(signed_in("nurse.cardiology").get(f"/plans/{e.pk}/"))
        assert page.index("<h3>2026-03-02") < page.index("<h3>2026-03-03")
        assert '<span class="badge tone-bad" data-testid="status">Dead letter</span>' in page
        assert "invalid address" in page
        assert '<span class="badge tone-warn" data-testid="status">Skipped</span>' in page
        assert "no consent for any channel" in page
        assert "139****0001" in page and "isv.MOBILE_NUMBER_ILLEGAL" in page
        assert "1 delivery attempt" in page
        assert "Times are the patient's local time (Asia/Shanghai)" in page

    def test_filters_by_status_and_activity_and_pages(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        client = signed_in("nurse.cardiology")
        bp = text(client.get(f"/plans/{e.pk}/", {"activity": "bp-morning"}))
        assert 'data-activity="bp-morning"' in bp
        assert 'data-activity="medication"' not in bp
        none = text(client.get(f"/plans/{e.pk}/", {"status": "acknowledged"}))
        assert 'data-testid="calendar-empty"' in none
        total = rm.Occurrence.objects.filter(enrolment=e).count()
        assert total > 40
        first = text(client.get(f"/plans/{e.pk}/"))
        second = text(client.get(f"/plans/{e.pk}/", {"page": 2}))
        assert first.count('data-testid="occurrence"') == 40
        assert second.count('data-testid="occurrence"') == min(40, total - 40)
        assert "Page 2 of" in second

    def test_past_reminders_show_latest_first(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        with frozen(NOW + timedelta(days=3)):
            page = text(signed_in("nurse.cardiology").get(f"/plans/{e.pk}/", {"when": "past"}))
        days = [page.index(f"<h3>2026-03-0{d}") for d in (4, 3, 2)]
        assert days == sorted(days)
        assert "<h3>2026-03-05" not in page

    def test_htmx_filter_answers_with_the_calendar_only(self, clinic: Clinic) -> None:
        _, e = enrolled(clinic)
        response = signed_in("nurse.cardiology").get(
            f"/plans/{e.pk}/", {"status": "scheduled"}, HTTP_HX_REQUEST="true"
        )
        assert "<html" not in text(response)
        assert 'data-testid="calendar"' in text(response)

    def test_queries_do_not_grow_with_the_reminders_shown(
        self, clinic: Clinic, django_assert_max_num_queries: Any
    ) -> None:
        _, e = enrolled(clinic)
        client = signed_in("nurse.cardiology")
        client.get(f"/plans/{e.pk}/")  # warm up: session, language
        with django_assert_max_num_queries(20):
            page = text(client.get(f"/plans/{e.pk}/"))
        assert page.count('data-testid="occurrence"') == 40

    def test_patient_calendar_shows_every_plan(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        clinic.enrol(p, "type2-diabetes", now=NOW)
        page = text(signed_in("nurse.cardiology").get(f"/plans/patients/{p.pk}/calendar/"))
        assert "Take your medicine" in page
        assert "Hypertension follow-up" in page and "Type 2 diabetes" in page

    def test_reading_the_calendar_is_audited(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        signed_in("nurse.cardiology").get(f"/plans/{e.pk}/")
        event = AuditEvent.objects.filter(action="careplan.read", patient_id=p.pk).latest("id")
        assert event.object_id == str(e.pk)


class TestEndEnrolment:
    def test_confirmation_step_then_future_reminders_are_cancelled(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        sent = rm.Occurrence.objects.filter(enrolment=e).order_by("due_at")[0]
        rm.Occurrence.objects.filter(pk=sent.pk).update(status=S.SENT, wake_at=None)
        client = signed_in("nurse.cardiology")
        pending = rm.Occurrence.objects.filter(enrolment=e, status=S.SCHEDULED).count()
        confirm = text(client.get(f"/plans/{e.pk}/end/"))
        assert f"{pending} reminders that have not been sent yet will be cancelled" in confirm
        refused = client.post(f"/plans/{e.pk}/end/", {"reason": " ", "version": e.version})
        assert refused.status_code == 422
        e.refresh_from_db()
        assert e.status == "active"
        response = client.post(f"/plans/{e.pk}/end/", {"reason": "Moved away", "version": 1})
        assert response.status_code == 302
        e.refresh_from_db()
        assert (e.status, e.end_reason, e.ended_by.username) == (
            "ended",
            "Moved away",
            "nurse.cardiology",
        )
        statuses = dict(
            rm.Occurrence.objects.filter(enrolment=e).values_list("pk", "status").iterator()
        )
        assert statuses.pop(sent.pk) == S.SENT
        assert set(statuses.values()) == {S.CANCELLED}
        assert set(
            rm.Occurrence.objects.filter(enrolment=e, status=S.CANCELLED).values_list(
                "reason", flat=True
            )
        ) == {"enrolment_ended"}
        page = text(client.get(f"/plans/{e.pk}/", {"when": "all"}))
        assert "enrolment ended" in page
        assert 'data-testid="end-enrolment"' not in page

    def test_a_stale_confirmation_is_refused(self, clinic: Clinic) -> None:
        _, e = enrolled(clinic)
        response = signed_in("nurse.cardiology").post(
            f"/plans/{e.pk}/end/", {"reason": "Moved away", "version": e.version + 5}
        )
        assert response.status_code == 409
        e.refresh_from_db()
        assert e.status == "active"


class TestAdjust:
    def test_turning_an_activity_off_drops_its_future_reminders(self, clinic: Clinic) -> None:
        _, e = enrolled(clinic)
        assert rm.Occurrence.objects.filter(enrolment=e, activity_code="bp-morning").exists()
        client = signed_in("nurse.cardiology")
        page = text(client.get(f"/plans/{e.pk}/adjust/"))
        assert 'name="times-bp-morning" value="08:30"' in page
        response = client.post(
            f"/plans/{e.pk}/adjust/",
            {
                "configured": "1",
                "version": e.version,
                "on-medication": "on",
                "on-nurse-call": "on",
                "on-revisit": "on",
                "on-diet-education": "on",
                "times-diet-education": "11:00",
            },
        )
        assert response.status_code == 302
        e.refresh_from_db()
        assert e.adjustments == {
            "bp-morning": {"off": True},
            "diet-education": {"times": ["11:00"]},
        }
        assert not rm.Occurrence.objects.filter(enrolment=e, activity_code="bp-morning").exists()
        edu = rm.Occurrence.objects.filter(enrolment=e, activity_code="diet-education")
        assert edu.exists() and all(
            d.endswith("T11:00") for d in edu.values_list("local_due", flat=True)
        )

    def test_bad_time_and_stale_version(self, clinic: Clinic) -> None:
        _, e = enrolled(clinic)
        client = signed_in("nurse.cardiology")
        bad = client.post(
            f"/plans/{e.pk}/adjust/",
            {
                "configured": "1",
                "version": e.version,
                "on-bp-morning": "on",
                "times-bp-morning": "8 am",
            },
        )
        assert bad.status_code == 422
        assert "Use 24-hour times" in text(bad)
        stale = client.post(
            f"/plans/{e.pk}/adjust/", {"configured": "1", "version": 99, "on-bp-morning": "on"}
        )
        assert stale.status_code == 409
        e.refresh_from_db()
        assert e.adjustments == {}


class TestPreferences:
    def test_saved_from_the_form(self, clinic: Clinic) -> None:
        p = clinic.patient()
        client = signed_in("nurse.cardiology")
        response = client.post(
            f"/plans/patients/{p.pk}/preferences/",
            {
                "dose-qd": "07:00",
                "dose-bid": "07:30，19:30",
                "channel-medication-0": "wechat",
                "channel-medication-1": "sms",
                "channel-medication-2": "wechat",
                "daily_cap": "4",
                "elderly": "on",
                "email": "wang@example.org",
                "wechat_openid": "o-abc",
                "version": "",
            },
        )
        assert response.status_code == 302
        assert response["Location"] == f"/patients/{p.pk}/?tab=careplans"
        pref = cm.ReminderPreference.objects.get(patient=p)
        assert pref.dose_times == {"qd": ["07:00"], "bid": ["07:30", "19:30"]}
        assert pref.channels == {"medication": ["wechat", "sms"]}
        assert (pref.daily_cap, pref.elderly, pref.high_risk) == (4, True, False)
        assert (pref.email, pref.wechat_openid) == ("wang@example.org", "o-abc")
        tab = text(client.get(f"/patients/{p.pk}/?tab=careplans"))
        assert "elderly mode" in tab and 'value="07:30, 19:30"' in tab

    def test_stale_and_invalid_input_change_nothing(self, clinic: Clinic) -> None:
        p = clinic.patient()
        client = signed_in("nurse.cardiology")
        url = f"/plans/patients/{p.pk}/preferences/"
        client.post(url, {"daily_cap": "3"})
        assert client.post(url, {"daily_cap": "5", "version": "7"}).status_code == 409
        assert client.post(url, {"dose-qd": "7点", "version": "1"}).status_code == 422
        assert client.post(url, {"email": "not-an-address", "version": "1"}).status_code == 422
        pref = cm.ReminderPreference.objects.get(patient=p)
        assert (pref.daily_cap, pref.version, pref.email) == (3, 1, "")


class TestScope:
    """A nurse of another department, or of another organisation, finds nothing."""

    @pytest.mark.parametrize("outsider", ["nurse.endocrinology", "nurse.other"])
    def test_enrolment_and_calendar_pages_are_not_found(
        self, clinic: Clinic, outsider: str
    ) -> None:
        p, e = enrolled(clinic)
        client = signed_in(outsider)
        for url in (
            f"/plans/{e.pk}/",
            f"/plans/{e.pk}/end/",
            f"/plans/{e.pk}/adjust/",
            f"/plans/patients/{p.pk}/calendar/",
            f"/plans/patients/{p.pk}/enrol/",
            f"/plans/patients/{p.pk}/enrol/preview/",
            f"/plans/patients/{p.pk}/preferences/",
        ):
            response = client.get(url)
            assert response.status_code == 404, url
            assert p.name not in text(response)  # type: ignore[attr-defined]
        assert client.post(f"/plans/{e.pk}/end/", {"reason": "x", "version": 1}).status_code == 404
        e.refresh_from_db()
        assert e.status == "active"
        listing = text(client.get("/plans/"))
        assert f'href="/plans/{e.pk}/"' not in listing
        assert p.name not in listing  # type: ignore[attr-defined]

    def test_denials_are_audited(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        signed_in("nurse.endocrinology").get(f"/plans/{e.pk}/")
        assert AuditEvent.objects.filter(
            actor="nurse.endocrinology", patient_id=p.pk, outcome="denied"
        ).exists()

    def test_roles_without_the_action_are_refused(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        admin = signed_in("admin")
        assert admin.get(f"/plans/{e.pk}/").status_code == 200
        assert admin.get(f"/plans/{e.pk}/end/").status_code == 403
        assert admin.get(enrol_url(p)).status_code == 403
        auditor = signed_in("auditor")
        assert auditor.get(f"/plans/{e.pk}/").status_code == 403
        assert auditor.get("/plans/").status_code == 403


class TestIndex:
    def test_lists_enrolments_of_my_departments(self, clinic: Clinic) -> None:
        p, e = enrolled(clinic)
        page = text(signed_in("nurse.cardiology").get("/plans/"))
        assert f'href="/plans/{e.pk}/"' in page
        assert p.name in page  # type: ignore[attr-defined]
        ended = text(signed_in("nurse.cardiology").get("/plans/", {"status": "ended"}))
        assert f'href="/plans/{e.pk}/"' not in ended
