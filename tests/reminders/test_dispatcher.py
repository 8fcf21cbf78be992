"""The dispatcher: sends at the right local time, re-checks at send time, retries, escalates."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest

from careloop.alerts.models import Task
from careloop.careplans import services as plan_services
from careloop.reminders import dispatcher, links
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db

S = rm.Status


def one_activity(clinic: Clinic, code: str, **activity: Any) -> Any:
    spec = {
        "code": code,
        "name": code,
        "activities": [
            {
                "code": "a",
                "kind": "measurement",
                "title": "测量血压",
                "schedule": {"rrule": "FREQ=DAILY", "times": ["08:00"]},
                "channels": ["sms"],
                "escalation": [],
                **activity,
            }
        ],
    }
    tpl, _ = plan_services.save_template(spec)
    return tpl


def enrol_custom(clinic: Clinic, patient: Any, tpl: Any, now: Any) -> Any:
    return plan_services.enrol(clinic.actor, patient.pk, tpl.pk, now=now)


class TestHypertensionMedicationReminder:
    """The issue's walk-through: 08:00 dose reminder at 08:00 patient-local, by SMS."""

    def test_sent_at_0800_local_not_before(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))  # 00:00 local on 2 March
        # 07:59 in Shanghai = 23:59 UTC the day before: nothing due yet.
        clinic.run(utc(2026, 3, 1, 23, 59))
        assert clinic.sms.sent == []
        clinic.run(utc(2026, 3, 2, 0, 0))
        meds = clinic.occurrences(p, kind="medication", local_due="2026-03-02T08:00")
        assert [o.status for o in meds] == [S.SENT]
        assert len(clinic.sms.sent) == 1
        text = clinic.sms.sent[0].text
        assert "氨氯地平" not in text and "高血压" not in text  # no diagnosis, no drug names
        token = links.token_for(meds[0].source_key)
        assert token in text or token in str(clinic.sms.sent[0].extra)
        attempt = meds[0].attempts.get()
        assert attempt.outcome == rm.Attempt.Outcome.ACCEPTED
        assert attempt.channel == "sms" and attempt.provider == "aliyun_sms"
        assert "****" in attempt.address_hint

    def test_acknowledged_by_link_stores_intake_and_stops_escalation(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        occ = clinic.occurrences(p, kind="medication")[0]
        assert occ.wake_at == utc(2026, 3, 2, 2, 0)  # ladder: voice after 2 h of the send
        token = links.token_for(occ.source_key)
        found = reminder_services.by_token(token, now=utc(2026, 3, 2, 0, 10))
        reminder_services.acknowledge(
            found.pk, source="link", intake="taken", at=utc(2026, 3, 2, 0, 10)
        )
        occ.refresh_from_db()
        assert occ.status == S.ACKNOWLEDGED and occ.wake_at is None
        assert occ.intake.status == "taken"
        clinic.run(utc(2026, 3, 2, 3, 0))
        assert occ.attempts.count() == 1  # no voice call after an acknowledgement
        assert [s.ref for s in clinic.sms.sent].count(f"o{occ.pk}:s1:voice") == 0

    def test_unanswered_escalates_to_voice_then_to_a_nurse_call_task(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        clinic.run(utc(2026, 3, 2, 2, 0))  # 10:00 local: two hours without an answer
        occ = clinic.occurrences(p, kind="medication")[0]
        assert occ.step == 1 and occ.status == S.SENT
        channels = list(occ.attempts.values_list("channel", flat=True))
        assert channels == ["sms", "voice"]
        assert not Task.objects.filter(patient=p).exists()
        clinic.run(utc(2026, 3, 2, 12, 0))  # 20:00 local: end of the patient's day
        task = Task.objects.get(patient=p)
        assert task.kind == "call_patient" and task.status == "open"
        assert task.occurrence_id == occ.pk
        clinic.run(utc(2026, 3, 2, 12, 30))
        assert Task.objects.filter(patient=p).count() == 1  # once, however often it runs

    def test_high_risk_gets_voice_and_nurse_call_together(self, clinic: Clinic) -> None:
        p = clinic.patient()
        plan_services.set_preferences(clinic.actor, p.pk, {"high_risk": True}, None)
        tpl = one_activity(
            clinic,
            "hr",
            kind="measurement",
            escalation=[{"after": "1h", "task": "call_patient", "to": "nurse"}],
        )
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        clinic.run(utc(2026, 3, 2, 1, 0))
        occ = clinic.occurrences(p)[0]
        assert sorted(occ.attempts.values_list("channel", flat=True)) == ["sms", "voice"]
        assert Task.objects.filter(patient=p, kind="call_patient").count() == 1

    def test_a_high_risk_patient_has_one_open_call_however_many_reminders_go_unanswered(
        self, clinic: Clinic
    ) -> None:
        from careloop.alerts import services as alert_services

        p = clinic.patient()
        plan_services.set_preferences(clinic.actor, p.pk, {"high_risk": True}, None)
        tpl = one_activity(
            clinic, "hr-daily", kind="measurement", escalation=[{"after": "1h", "channel": "sms"}]
        )
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        for day in (2, 3):  # two unanswered reminders while the first call is still open
            clinic.run(utc(2026, 3, day, 0, 0))
            clinic.run(utc(2026, 3, day, 1, 0))
        calls = Task.objects.filter(patient=p, kind="call_patient", status="open")
        assert calls.count() == 1
        voiced = rm.Attempt.objects.filter(patient=p, channel="voice").count()
        assert voiced == 2  # every unanswered reminder still gets its automated voice call
        # Once the nurse has called, the next unanswered reminder opens a new call.
        alert_services.close_task(clinic.actor, calls.get().pk, outcome="reached")
        clinic.run(utc(2026, 3, 4, 0, 0))
        clinic.run(utc(2026, 3, 4, 1, 0))
        assert Task.objects.filter(patient=p, kind="call_patient", status="open").count() == 1
        assert Task.objects.filter(patient=p, kind="call_patient").count() == 2


class TestSendTimeChecks:
    def test_withdrawn_consent_skips(self, clinic: Clinic) -> None:
        p = clinic.patient(consent=("sms",))
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.consent(p, "sms", False, on="2026-02-01")  # withdrawn after scheduling
        clinic.run(utc(2026, 3, 2, 0, 0))
        occ = clinic.occurrences(p)[0]
        assert (occ.status, occ.reason) == (S.SKIPPED, "no_consent")
        assert clinic.sms.sent == []

    def test_quiet_hours_defer_to_the_next_allowed_minute(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = one_activity(clinic, "late", schedule={"rrule": "FREQ=DAILY", "times": ["22:30"]})
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 14, 30))  # 22:30 local
        occ = clinic.occurrences(p)[0]
        assert occ.status == S.SCHEDULED and occ.reason == "quiet_hours"
        assert occ.wake_at == utc(2026, 3, 3, 0, 0)  # 08:00 local next morning
        assert clinic.sms.sent == []
        clinic.run(utc(2026, 3, 3, 0, 0))
        occ.refresh_from_db()
        assert occ.status == S.SENT

    def test_patient_quiet_hours_override_the_organisation(self, clinic: Clinic) -> None:
        p = clinic.patient(quiet_hours_start="12:00", quiet_hours_end="14:00")
        tpl = one_activity(clinic, "noon", schedule={"rrule": "FREQ=DAILY", "times": ["12:30"]})
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 4, 30))
        occ = clinic.occurrences(p)[0]
        assert occ.wake_at == utc(2026, 3, 2, 6, 0)

    def test_daily_cap_holds(self, clinic: Clinic) -> None:
        p = clinic.patient()
        plan_services.set_preferences(clinic.actor, p.pk, {"daily_cap": "2"}, None)
        tpl = one_activity(
            clinic, "many", schedule={"rrule": "FREQ=DAILY", "times": ["09:00", "10:00", "11:00"]}
        )
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        for hour in (1, 2, 3):
            clinic.run(utc(2026, 3, 2, hour, 0))
        statuses = [(o.status, o.reason) for o in clinic.occurrences(p)[:3]]
        assert statuses == [(S.SENT, ""), (S.SENT, ""), (S.SKIPPED, "daily_cap")]
        assert len(clinic.sms.sent) == 2

    def test_stale_reminder_expires_instead_of_being_sent(self, clinic: Clinic) -> None:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 6, 0))  # 14:00 local, six hours late
        occ = clinic.occurrences(p, kind="medication")[0]
        assert (occ.status, occ.reason) == (S.SKIPPED, "expired")

    def test_paused_organisation_sends_nothing(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        settings = reminder_services.settings_for(clinic.world.org.pk)
        settings.dispatch_paused = True
        settings.save()
        clinic.run(utc(2026, 3, 2, 0, 0))
        assert clinic.sms.sent == []
        settings.dispatch_paused = False
        settings.save()
        clinic.run(utc(2026, 3, 2, 0, 1))
        assert len(clinic.sms.sent) == 1


class TestProviderErrors:
    def test_three_5xx_then_success_is_one_send(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.sms.fail_next(3, status=500)
        now = utc(2026, 3, 2, 0, 0)
        for _ in range(4):
            clinic.run(now)
            now += timedelta(hours=1)  # past any backoff
        occ = clinic.occurrences(p)[0]
        assert occ.status == S.SENT
        outcomes = list(occ.attempts.order_by("id").values_list("outcome", flat=True))
        assert outcomes == ["transient", "transient", "transient", "accepted"]
        assert len(clinic.sms.sent) == 1

    def test_invalid_number_dead_letters_without_retry_and_opens_a_task(
        self, clinic: Clinic
    ) -> None:
        p = clinic.patient(phones=["13800000000"])
        clinic.sms.fail_numbers({"13800000000": "isv.MOBILE_NUMBER_ILLEGAL"})
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        clinic.run(utc(2026, 3, 2, 1, 0))
        occ = clinic.occurrences(p, kind="medication")[0]
        assert (occ.status, occ.reason) == (S.DEAD, "invalid_address")
        assert occ.attempts.count() == 1
        assert Task.objects.get(patient=p).kind == "fix_contact"

    def test_dead_letter_retry_sends_again(self, clinic: Clinic) -> None:
        p = clinic.patient(phones=["13800000000"])
        clinic.sms.fail_numbers({"13800000000": "isv.MOBILE_NUMBER_ILLEGAL"})
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        occ = clinic.occurrences(p)[0]
        assert occ.status == S.DEAD
        clinic.sms.clear_failures()
        reminder_services.retry_dead(occ.pk, clinic.world.org.pk, now=utc(2026, 3, 2, 0, 5))
        clinic.run(utc(2026, 3, 2, 0, 5))
        occ.refresh_from_db()
        assert occ.status == S.SENT and len(clinic.sms.sent) == 1


class TestCrashRecovery:
    """A worker that dies after committing the pending attempt leaves the send in doubt."""

    def crashed_send(self, clinic: Clinic, *, provider_accepted: bool) -> rm.Occurrence:
        p = clinic.patient()
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        now = utc(2026, 3, 2, 0, 0)
        ids = dispatcher.claim("dead-worker", now, 10)
        occs = list(
            rm.Occurrence.objects.filter(pk__in=ids).select_related("patient", "organisation")
        )
        ctx = dispatcher.load_context(occs, now)
        plan = dispatcher.Plan()
        for occ in occs:
            dispatcher.decide(occ, ctx, plan, [])
        pairs, _ = dispatcher._begin_sends(plan, ctx, "dead-worker")
        if provider_accepted:
            dispatcher._call_providers(pairs, ctx)
        # ... and the worker is killed here: nothing recorded, the lease runs out.
        return occs[0]

    def test_provider_had_accepted_it_no_second_send(self, clinic: Clinic) -> None:
        occ = self.crashed_send(clinic, provider_accepted=True)
        assert len(clinic.sms.sent) == 1
        clinic.run(utc(2026, 3, 2, 0, 5))  # lease expired
        occ.refresh_from_db()
        assert occ.status == S.SENT
        assert len(clinic.sms.sent) == 1
        attempt = occ.attempts.get()
        assert attempt.outcome == "accepted" and attempt.in_doubt

    def test_attempt_recorded_but_row_not_moved_on_is_not_sent_again(self, clinic: Clinic) -> None:
        occ = self.crashed_send(clinic, provider_accepted=True)
        occ.attempts.update(outcome="accepted")
        clinic.run(utc(2026, 3, 2, 0, 5))
        occ.refresh_from_db()
        assert occ.status == S.SENT
        assert len(clinic.sms.sent) == 1 and occ.attempts.count() == 1

    def test_a_row_taken_over_by_another_worker_is_left_to_it(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        now = utc(2026, 3, 2, 0, 0)
        ids = dispatcher.claim("slow-worker", now, 10)
        occs = list(rm.Occurrence.objects.filter(pk__in=ids).select_related("patient"))
        ctx = dispatcher.load_context(occs, now)
        plan = dispatcher.Plan()
        for occ in occs:
            dispatcher.decide(occ, ctx, plan, [])
        pairs, _ = dispatcher._begin_sends(plan, ctx, "slow-worker")
        # Its lease ran out and another worker claimed the rows before the provider call.
        rm.Occurrence.objects.filter(pk__in=ids).update(claimed_by="other-worker")
        ctx.renewed -= dispatcher.LEASE.total_seconds()
        results = dispatcher._call_providers(pairs, ctx, "slow-worker")
        assert clinic.sms.sent == []
        assert all("not attempted" in str(r) for r in results)

    def test_provider_never_got_it_sent_once(self, clinic: Clinic) -> None:
        occ = self.crashed_send(clinic, provider_accepted=False)
        assert clinic.sms.sent == []
        clinic.run(utc(2026, 3, 2, 0, 5))
        occ.refresh_from_db()
        assert occ.status == S.SENT
        assert len(clinic.sms.sent) == 1
        outcomes = list(occ.attempts.order_by("id").values_list("outcome", flat=True))
        assert outcomes == ["superseded", "accepted"]


class TestDaylightSaving:
    def test_new_york_0230_daily_across_spring_forward(self, clinic: Clinic) -> None:
        p = clinic.patient(time_zone="America/New_York")
        tpl = one_activity(
            clinic,
            "ny",
            schedule={"rrule": "FREQ=DAILY", "times": ["02:30"]},
        )
        # No quiet hours in this clinic, so that 02:30 is allowed at all.
        settings = reminder_services.settings_for(clinic.world.org.pk)
        settings.quiet_start = settings.quiet_end = time(0, 0)
        settings.save()
        enrol_custom(clinic, p, tpl, utc(2026, 3, 7, 0, 0))
        on_gap_day = clinic.occurrences(p, local_due="2026-03-08T02:30")
        assert len(on_gap_day) == 1
        assert on_gap_day[0].due_at == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
        minute = utc(2026, 3, 8, 6, 0)
        while minute <= utc(2026, 3, 8, 9, 0):
            clinic.run(minute)
            minute += timedelta(minutes=15)
        assert len(clinic.sms.sent) == 1
        assert clinic.occurrences(p, local_due="2026-03-08T02:30")[0].status == S.SENT


class TestDeliveryCallbacks:
    def test_never_move_backwards(self, clinic: Clinic) -> None:
        p = clinic.patient()
        tpl = one_activity(clinic, "m")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        occ = clinic.occurrences(p)[0]
        attempt = occ.attempts.get()
        reminder_services.acknowledge(occ.pk, source="link")
        assert reminder_services.apply_delivery(attempt.pk, delivered=True) == "ignored"
        assert reminder_services.apply_delivery(attempt.pk, delivered=False) == "ignored"
        occ.refresh_from_db()
        assert occ.status == S.ACKNOWLEDGED
        attempt.refresh_from_db()
        assert attempt.outcome == "delivered"


class TestPersonalisation:
    def test_elderly_patients_are_called_first(self, clinic: Clinic) -> None:
        p = clinic.patient()
        plan_services.set_preferences(clinic.actor, p.pk, {"elderly": True}, None)
        tpl = one_activity(clinic, "old")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        assert list(clinic.occurrences(p)[0].attempts.values_list("channel", flat=True)) == [
            "voice"
        ]

    def test_channel_per_purpose_preference(self, clinic: Clinic) -> None:
        p = clinic.patient()
        plan_services.set_preferences(
            clinic.actor, p.pk, {"channels": {"measurement": ["outbox"]}}, None
        )
        tpl = one_activity(clinic, "pref")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        occ = clinic.occurrences(p)[0]
        assert list(occ.attempts.values_list("channel", flat=True)) == ["outbox"]
        assert clinic.sms.sent == []
        from careloop.channels.models import OutboxMessage

        message = OutboxMessage.objects.get(occurrence=occ)
        assert links.token_for(occ.source_key) in message.link

    def test_message_in_the_patients_language(self, clinic: Clinic) -> None:
        p = clinic.patient(preferred_language="en")
        plan_services.set_preferences(
            clinic.actor, p.pk, {"channels": {"measurement": ["outbox"]}}, None
        )
        tpl = one_activity(clinic, "lang")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        from careloop.channels.models import OutboxMessage

        assert "please take your measurement" in OutboxMessage.objects.get().body

    def test_org_message_template_is_used_and_cannot_reach_data(self, clinic: Clinic) -> None:
        p = clinic.patient()
        plan_services.set_preferences(
            clinic.actor, p.pk, {"channels": {"measurement": ["outbox"]}}, None
        )
        rm.MessageTemplate.objects.create(
            organisation=clinic.world.org,
            kind="measurement",
            channel="outbox",
            language="zh-hans",
            body="{name}，请量血压 {link} {patient.national_id} {__class__}",
        )
        tpl = one_activity(clinic, "tpl")
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        from careloop.channels.models import OutboxMessage

        body = OutboxMessage.objects.get().body
        assert body.startswith(f"{p.name}，请量血压 http")
        assert "{patient.national_id} {__class__}" in body  # left as written, never evaluated


class TestAppointmentReminders:
    def schedule(self, clinic: Clinic, p: Any, due: Any, appointment_local: str) -> rm.Occurrence:
        return reminder_services.schedule_one(
            organisation_id=p.organisation_id,
            patient_id=p.pk,
            kind="appointment",
            source_key=f"appointment:test:{p.pk}:{due.isoformat()}",
            due_at=due,
            time_zone=p.time_zone,
            payload={"title": "复诊", "appointment_local": appointment_local, "channels": ["sms"]},
        )

    def test_message_tells_the_appointment_time(self, clinic: Clinic) -> None:
        p = clinic.patient()
        self.schedule(clinic, p, utc(2026, 3, 2, 10, 0), "2026-03-03 09:30")  # 18:00 the day before
        clinic.run(utc(2026, 3, 2, 10, 0))
        assert "03-03 09:30" in clinic.sms.sent[0].text

    def test_early_morning_reminder_is_not_deferred_past_the_appointment(
        self, clinic: Clinic
    ) -> None:
        p = clinic.patient()
        occ = self.schedule(clinic, p, utc(2026, 3, 2, 22, 0), "2026-03-03 08:00")  # 06:00 local
        clinic.run(utc(2026, 3, 2, 22, 0))
        occ.refresh_from_db()
        assert occ.status == S.SENT

    def test_evening_reminder_in_quiet_hours_waits_for_morning(self, clinic: Clinic) -> None:
        p = clinic.patient()
        occ = self.schedule(clinic, p, utc(2026, 3, 2, 14, 0), "2026-03-03 15:00")  # 22:00 local
        clinic.run(utc(2026, 3, 2, 14, 0))
        occ.refresh_from_db()
        assert occ.status == S.SCHEDULED and occ.reason == "quiet_hours"


class TestPerReminderOverrides:
    """Send-time learning and experiments steer one reminder through its payload."""

    def _due(self, clinic: Clinic, payload: dict[str, Any]) -> Any:
        p = clinic.patient()
        tpl = one_activity(clinic, "route", channels=["sms", "voice", "outbox"])
        enrol_custom(clinic, p, tpl, utc(2026, 3, 1, 16, 0))
        occ = clinic.occurrences(p)[0]
        rm.Occurrence.objects.filter(pk=occ.pk).update(payload={**occ.payload, **payload})
        clinic.run(utc(2026, 3, 2, 0, 0))
        occ.refresh_from_db()
        return occ

    def test_a_routed_channel_is_tried_first(self, clinic: Clinic) -> None:
        occ = self._due(clinic, {"route": {"by": "sendtime", "channel": "voice"}})
        assert list(occ.attempts.values_list("channel", flat=True)) == ["voice"]

    def test_a_route_without_a_channel_keeps_the_plan_order(self, clinic: Clinic) -> None:
        occ = self._due(clinic, {"route": {"by": "sendtime", "arm": "control"}})
        assert list(occ.attempts.values_list("channel", flat=True)) == ["sms"]

    def test_a_wording_arm_replaces_the_body_with_placeholders_filled(self, clinic: Clinic) -> None:
        from careloop.channels.models import OutboxMessage

        wording = {"zh-hans": "{name}，今天的血压量了吗？{link}"}
        occ = self._due(clinic, {"wording": wording, "route": {"channel": "outbox"}})
        body = OutboxMessage.objects.get(occurrence=occ).body
        assert body.startswith(f"{occ.patient.name}，今天的血压量了吗？")
        assert links.token_for(occ.source_key) in body
