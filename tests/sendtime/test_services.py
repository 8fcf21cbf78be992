"""Send-time learning: planning within windows and quiet hours, the control arm, learning once."""

from __future__ import annotations

import random
from datetime import date, time, timedelta
from typing import Any

import pytest

from careloop.kit import periodic
from careloop.reminders import dispatcher
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from careloop.sendtime import models as m
from careloop.sendtime import services
from tests.sendtime.helpers import assign, days, local, occurrence, send, settings

DAY = date(2026, 3, 2)


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    settings(world.org, enabled=True, control_share=0.0)
    p = make_patient()
    assign(p, "learn")
    return p


def route(occ: rm.Occurrence) -> dict[str, Any]:
    occ.refresh_from_db()
    return dict(occ.payload.get("route") or {})


class TestConvergence:
    """A patient who answers 80% of reminders sent at 19:00 and 20% at any other hour."""

    LEARNING_DAYS = 90  # N: after these days the sampler has found 19:00
    CHECKED_DAYS = 30  # ... and picks it on at least 80% of the next 30 days

    def test_the_sampler_settles_on_the_best_hour(self, world: Any, patient: Any) -> None:
        answers = random.Random(19)
        picks = []
        for day in days(DAY, self.LEARNING_DAYS + self.CHECKED_DAYS):
            occ = occurrence(patient, day, 8, 30)
            assert services.plan(world.org.pk, now=local(day, 0, 0)) == 1
            occ.refresh_from_db()
            hour = occ.payload["route"]["hour"]
            assert 8 <= hour <= 20  # window 07:00–21:00, quiet hours until 08:00
            assert occ.due_at == local(day, hour, 30 if hour == 8 else 0)
            picks.append(hour)
            stats = dispatcher.run_once("w", now=occ.due_at)
            assert stats.sent == 1
            if answers.random() < (0.8 if hour == 19 else 0.2):
                reminder_services.acknowledge(
                    occ.pk, source="portal", at=occ.due_at + timedelta(minutes=30)
                )
            assert services.learn(world.org.pk, now=occ.due_at + timedelta(hours=13)) == 1
        later = picks[self.LEARNING_DAYS :]
        assert sum(1 for h in later if h == 19) >= 0.8 * len(later), picks
        own = m.Arm.objects.filter(patient=patient)
        assert sum(a.successes + a.failures for a in own) == len(picks)
        best = own.get(hour=19, channel="outbox")
        assert best.successes > best.failures


class TestPlan:
    def test_control_arm_keeps_its_time(self, world: Any, make_patient: Any) -> None:
        settings(world.org, enabled=True, control_share=0.0)
        p = make_patient()
        assign(p, "control")
        occs = [occurrence(p, d, 8, 30) for d in days(DAY, 3)]
        before = [(o.due_at, o.local_due) for o in occs]
        assert services.plan(world.org.pk, now=local(DAY, 0, 0), horizon_hours=24 * 4) == 3
        for o, (due, local_due) in zip(occs, before, strict=True):
            r = route(o)
            assert r == {"by": "sendtime", "arm": "control", "hour": 8}
            assert (o.due_at, o.wake_at, o.local_due) == (due, due, local_due)
        # Once routed, a reminder is not planned again.
        assert services.plan(world.org.pk, now=local(DAY, 0, 0), horizon_hours=24 * 4) == 0

    def test_patients_are_randomised_reproducibly(self, world: Any, make_patient: Any) -> None:
        arms = [services.arm_of(7, pid, 0.2) for pid in range(1, 2001)]
        assert arms == [services.arm_of(7, pid, 0.2) for pid in range(1, 2001)]
        assert 0.17 < arms.count("control") / len(arms) < 0.23
        settings(world.org, control_share=0.5)
        patients = [make_patient() for _ in range(6)]
        for p in patients:
            occurrence(p, DAY, 9)
        services.plan(world.org.pk, now=local(DAY, 0, 0))
        got = dict(m.Assignment.objects.values_list("patient_id", "arm"))
        assert got == {p.pk: services.arm_of(world.org.pk, p.pk, 0.5) for p in patients}

    def test_learn_arm_moves_within_window_and_sets_route(self, world: Any, patient: Any) -> None:
        occ = occurrence(patient, DAY, 8, 30)
        original = occ.due_at
        assert services.plan(world.org.pk, now=local(DAY, 0, 0)) == 1
        r = route(occ)
        assert r["by"] == "sendtime" and r["arm"] == "learn" and r["channel"] == "outbox"
        assert r["original_due"] == original.isoformat()
        assert occ.due_at == occ.wake_at
        assert (
            occ.local_due == f"{DAY.isoformat()}T{r['hour']:02d}:{'30' if r['hour'] == 8 else '00'}"
        )
        assert occ.source_key.endswith("T08:30")

    def test_quiet_hours_are_respected(self, world: Any, patient: Any) -> None:
        patient.quiet_hours_start, patient.quiet_hours_end = time(18, 0), time(10, 0)
        patient.save(update_fields=["quiet_hours_start", "quiet_hours_end"])
        occs = [occurrence(patient, d, 8, 30) for d in days(DAY, 30)]
        services.plan(world.org.pk, now=local(DAY, 0, 0), horizon_hours=24 * 31)
        hours = {route(o)["hour"] for o in occs}
        assert hours <= set(range(10, 18))
        assert len(hours) > 3  # it explores the allowed hours
        for o in occs:
            assert 10 <= int(o.local_due[11:13]) < 18

    def test_organisation_quiet_hours_and_medication_window(self, world: Any, patient: Any) -> None:
        rs = reminder_services.settings_for(world.org.pk)
        rs.quiet_start, rs.quiet_end = time(22, 0), time(7, 30)
        rs.save()
        occs = [
            occurrence(patient, d, 8, 15, kind="medication", activity="med") for d in days(DAY, 20)
        ]
        services.plan(world.org.pk, now=local(DAY, 0, 0), horizon_hours=24 * 21)
        moved = {o.local_due[11:] for o in occs if route(o)}
        # ±60 minutes around 08:15; 07:15 is in the organisation's quiet hours (until 07:30).
        assert moved <= {"08:15", "09:15"} and len(moved) == 2

    def test_no_window_no_route(self, world: Any, patient: Any) -> None:
        settings(world.org, windows={"measurement": ["07:00", "21:00"]})
        occ = occurrence(patient, DAY, 10, kind="education", activity="edu")
        assert services.plan(world.org.pk, now=local(DAY, 0, 0)) == 0
        assert route(occ) == {}

    def test_only_consented_channels_with_an_address(
        self, world: Any, patient: Any, clinic: Any
    ) -> None:
        clinic.consent(patient, "sms", True)
        clinic.consent(patient, "voice", False)
        occs = [
            occurrence(patient, d, 9, channels=("wechat", "voice", "sms", "outbox"))
            for d in days(DAY, 20)
        ]
        services.plan(world.org.pk, now=local(DAY, 0, 0), horizon_hours=24 * 21)
        # WeChat has no provider set up here, voice is refused, SMS and the portal are usable.
        assert {route(o)["channel"] for o in occs} == {"sms", "outbox"}


class TestNeverTouched:
    def test_claimed_tried_or_sending_rows(self, world: Any, patient: Any) -> None:
        claimed = occurrence(patient, DAY, 9, activity="a", claimed_by="w1")
        tried = occurrence(patient, DAY, 9, activity="b", tries=1)
        sending = occurrence(patient, DAY, 9, activity="c", status=rm.Status.SENDING)
        escalated = occurrence(patient, DAY, 9, activity="d", step=1)
        before = {o.pk: (o.due_at, o.payload) for o in (claimed, tried, sending, escalated)}
        assert services.plan(world.org.pk, now=local(DAY, 0, 0)) == 0
        for o in (claimed, tried, sending, escalated):
            o.refresh_from_db()
            assert (o.due_at, o.payload) == before[o.pk]

    def test_a_row_claimed_after_it_was_read(
        self, world: Any, patient: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        occ = occurrence(patient, DAY, 9)
        read = services.due_unrouted

        def claim_meanwhile(*args: Any, **kwargs: Any) -> list[rm.Occurrence]:
            rows = read(*args, **kwargs)
            rm.Occurrence.objects.filter(pk=occ.pk).update(claimed_by="w2")
            return rows

        monkeypatch.setattr(services, "due_unrouted", claim_meanwhile)
        stats = services.plan_batch(world.org.pk, now=local(DAY, 0, 0))
        assert (stats.routed, stats.lost) == (0, 1)
        occ.refresh_from_db()
        assert occ.payload.get("route") is None and occ.due_at == local(DAY, 9)

    def test_experiments_on_time_or_channel_win(self, world: Any, patient: Any) -> None:
        timed = occurrence(
            patient, DAY, 9, activity="t", payload={"experiment": {"id": 1, "factor": "time"}}
        )
        routed = occurrence(
            patient,
            DAY,
            9,
            activity="r",
            payload={"route": {"by": "experiment", "channel": "sms"}},
        )
        worded = occurrence(
            patient, DAY, 9, activity="w", payload={"experiment": {"id": 2, "factor": "wording"}}
        )
        assert services.plan(world.org.pk, now=local(DAY, 0, 0)) == 1
        assert route(timed) == {}
        assert route(routed) == {"by": "experiment", "channel": "sms"}
        assert route(worded)["by"] == "sendtime"
        assert worded.payload["experiment"] == {"id": 2, "factor": "wording"}

    def test_too_close_to_now(self, world: Any, patient: Any) -> None:
        occ = occurrence(patient, DAY, 9)
        assert services.plan(world.org.pk, now=local(DAY, 8, 57)) == 0
        assert route(occ) == {}


class TestLearn:
    def routed(self, world: Any, patient: Any, hh: int = 9) -> rm.Occurrence:
        occ = occurrence(patient, DAY, hh)
        services.plan(world.org.pk, now=local(DAY, 0, 0))
        occ.refresh_from_db()
        return occ

    def counts(self) -> set[tuple[Any, int, str, int, int]]:
        return {
            (a.patient_id, a.hour, a.channel, a.successes, a.failures) for a in m.Arm.objects.all()
        }

    def test_an_acknowledged_reminder_counts_once(self, world: Any, patient: Any) -> None:
        occ = self.routed(world, patient)
        h = occ.payload["route"]["hour"]
        send(occ, occ.due_at)
        reminder_services.acknowledge(occ.pk, source="portal", at=occ.due_at + timedelta(hours=2))
        assert services.learn(world.org.pk, now=occ.due_at + timedelta(hours=3)) == 1
        expected = {(patient.pk, h, "outbox", 1, 0), (None, h, "outbox", 1, 0)}
        assert self.counts() == expected
        assert services.learn(world.org.pk, now=occ.due_at + timedelta(hours=30)) == 0
        assert self.counts() == expected
        assert m.Outcome.objects.get().success is True

    def test_unanswered_is_a_failure_after_12_hours(self, world: Any, patient: Any) -> None:
        occ = self.routed(world, patient)
        send(occ, occ.due_at)
        assert services.learn(world.org.pk, now=occ.due_at + timedelta(hours=11)) == 0
        # An answer after 12 hours is still a failure of that hour.
        reminder_services.acknowledge(
            occ.pk, source="portal", at=occ.due_at + timedelta(hours=12, minutes=5)
        )
        assert services.learn(world.org.pk, now=occ.due_at + timedelta(hours=13)) == 1
        assert {(a.successes, a.failures) for a in m.Arm.objects.all()} == {(0, 1)}

    def test_dead_counts_and_skipped_does_not(self, world: Any, patient: Any) -> None:
        dead = self.routed(world, patient)
        skipped = occurrence(patient, DAY, 10, activity="other")
        services.plan(world.org.pk, now=local(DAY, 0, 0))
        rm.Occurrence.objects.filter(pk=dead.pk).update(status=rm.Status.DEAD)
        rm.Occurrence.objects.filter(pk=skipped.pk).update(status=rm.Status.SKIPPED)
        assert services.learn(world.org.pk, now=local(DAY, 23)) == 1
        assert m.Outcome.objects.count() == 2
        assert m.Outcome.objects.get(occurrence=skipped).counted is False
        assert {(a.successes, a.failures) for a in m.Arm.objects.all()} == {(0, 1)}

    def test_control_outcomes_are_recorded_not_counted(self, world: Any, make_patient: Any) -> None:
        settings(world.org, control_share=0.0)
        p = make_patient()
        assign(p, "control")
        occ = occurrence(p, DAY, 9)
        services.plan(world.org.pk, now=local(DAY, 0, 0))
        send(occ, occ.due_at)
        reminder_services.acknowledge(occ.pk, source="sms", at=occ.due_at + timedelta(hours=1))
        assert services.learn(world.org.pk, now=occ.due_at + timedelta(hours=2)) == 0
        outcome = m.Outcome.objects.get()
        assert (outcome.arm, outcome.hour, outcome.sent, outcome.success) == (
            "control",
            9,
            True,
            True,
        )
        assert not m.Arm.objects.exists()

    def test_the_prior_pools_patients(self, world: Any, make_patient: Any) -> None:
        settings(world.org, control_share=0.0)
        others = [make_patient() for _ in range(3)]
        for p in others:
            assign(p, "learn")
            occurrence(p, DAY, 9)
        services.plan(world.org.pk, now=local(DAY, 0, 0))
        for occ in rm.Occurrence.objects.all():
            send(occ, occ.due_at)
        services.learn(world.org.pk, now=local(DAY + timedelta(days=1), 12))
        prior = m.Arm.objects.filter(patient__isnull=True)
        assert sum(a.failures for a in prior) == 3
        assert m.Arm.objects.filter(patient__isnull=False).count() == len(
            {(a.patient_id, a.hour) for a in m.Arm.objects.filter(patient__isnull=False)}
        )


class TestSampler:
    def test_prior_is_shrunk_to_its_strength(self) -> None:
        prior = services.prior_from({(9, "sms"): (30, 10), (10, "sms"): (1, 1)}, 4.0)
        assert prior == {(9, "sms"): (3.0, 1.0), (10, "sms"): (1.0, 1.0)}
        assert services.prior_from({(9, "sms"): (3, 1)}, 0.0) == {(9, "sms"): (0.0, 0.0)}

    def test_sampling_is_deterministic_and_follows_the_evidence(self) -> None:
        options = [(h, "sms") for h in range(8, 21)]
        own = {(19, "sms"): (40, 2), **{(h, "sms"): (1, 20) for h in range(8, 19)}}
        picks = [services.sample(options, own, {}, random.Random(i)) for i in range(200)]
        assert picks == [services.sample(options, own, {}, random.Random(i)) for i in range(200)]
        assert picks.count((19, "sms")) > 180


class TestWorkerJob:
    def test_registered_and_runs_for_enabled_organisations_only(
        self, world: Any, make_patient: Any
    ) -> None:
        assert any(job.name == "sendtime" for job in periodic.jobs())
        p = make_patient()
        occurrence(p, DAY, 9)
        other = make_patient()
        occurrence(other, DAY, 10, activity="x")
        settings(world.org, enabled=False)
        assert services.run_periodic(now=local(DAY, 0, 0)) == {}
        settings(world.org, enabled=True)
        assert services.run_periodic(now=local(DAY, 0, 0)) == {world.org.pk: (2, 0)}
        assert services.run_periodic(now=local(DAY, 0, 0)) == {world.org.pk: (0, 0)}


def test_windows_are_validated() -> None:
    from django.core.exceptions import ValidationError

    m.validate_windows(m.default_windows())
    with pytest.raises(ValidationError) as err:
        m.validate_windows(
            {"measurement": ["21:00", "07:00"], "medication": 500, "lab": ["08:00", "09:00"]}
        )
    assert set(err.value.message_dict) == {"measurement", "medication", "lab"}
