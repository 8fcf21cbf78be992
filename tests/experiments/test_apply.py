"""experiments.apply: randomisation, each factor's change to a reminder, exclusion, release."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from careloop.channels.models import OutboxMessage
from careloop.experiments import services
from careloop.experiments.models import Assignment, Experiment, Factor, Population, Status
from careloop.reminders import links
from careloop.reminders import models as rm
from tests.experiments.conftest import BEFORE, Lab
from tests.support.clinic import utc

pytestmark = pytest.mark.django_db

WORDING = {"zh-hans": "{name}，今天的血压记录了吗？点此：{link}", "en": "{name}, log it: {link}"}


def arm_of(exp: Experiment, patient: Any) -> str:
    return Assignment.objects.get(experiment=exp, patient=patient).arm


def pair(lab: Lab, exp: Experiment, **kw: Any) -> tuple[Any, Any]:
    """Two patients, one in each arm (the first block of two holds both arms)."""
    a, b = lab.patient(**kw), lab.patient(**kw)
    services.apply(lab.org.pk, now=BEFORE)
    return (a, b) if arm_of(exp, a) == "control" else (b, a)


class TestRandomisation:
    def test_blocks_are_reproducible_and_balanced(self) -> None:
        exp = Experiment(
            code="x", seed=11, arms=[{"code": "c", "weight": 1}, {"code": "t", "weight": 1}]
        )
        first = services.arms_for(exp, 0, 100)
        assert first == services.arms_for(exp, 0, 100)
        assert Counter(first) == {"c": 50, "t": 50}
        # Within every block of two, one of each.
        assert all(sorted(first[i : i + 2]) == ["c", "t"] for i in range(0, 100, 2))
        # Continuing later gives the same sequence as one run.
        assert services.arms_for(exp, 0, 37) + services.arms_for(exp, 37, 63) == first
        other = Experiment(code="x", seed=12, arms=exp.arms)
        assert services.arms_for(other, 0, 100) != first

    def test_weights(self) -> None:
        exp = Experiment(
            code="w", seed=3, arms=[{"code": "c", "weight": 1}, {"code": "t", "weight": 2}]
        )
        assert Counter(services.arms_for(exp, 0, 99)) == {"c": 33, "t": 66}

    def test_patients_are_assigned_once_and_evenly(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.WORDING, {"wording": WORDING})
        patients = [lab.patient() for _ in range(8)]
        services.apply(lab.org.pk, now=BEFORE)
        assigned = dict(Assignment.objects.filter(experiment=exp).values_list("patient_id", "arm"))
        assert set(assigned) == {p.pk for p in patients}
        assert Counter(assigned.values()) == {"control": 4, "b": 4}
        # The same block order as the pure function (patients in id order).
        ordered = [assigned[p.pk] for p in sorted(patients, key=lambda p: p.pk)]
        assert ordered == services.arms_for(exp, 0, 8)
        services.apply(lab.org.pk, now=utc(2026, 3, 2, 20, 0))
        assert Assignment.objects.filter(experiment=exp).count() == 8

    def test_population_of_one_department(self, lab: Lab, make_patient: Any) -> None:
        world = lab.clinic.world
        exp = lab.experiment(
            Factor.WORDING,
            {"wording": WORDING},
            population=Population.DEPARTMENT,
            department=world.endo,
        )
        lab.patient()  # cardiology
        services.apply(lab.org.pk, now=BEFORE)
        assert not Assignment.objects.filter(experiment=exp).exists()

    def test_no_assignment_past_the_maximum(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.WORDING, {"wording": WORDING}, min_per_arm=1, max_per_arm=1)
        for _ in range(4):
            lab.patient()
        services.apply(lab.org.pk, now=BEFORE)
        assert Counter(Assignment.objects.filter(experiment=exp).values_list("arm", flat=True)) == {
            "control": 1,
            "b": 1,
        }


class TestFactors:
    def test_wording_is_sent_through_the_dispatcher(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.WORDING, {"wording": WORDING})
        control, treated = pair(lab, exp, channels=("outbox",))
        for occ in lab.window(treated):
            assert occ.payload["experiment"] == {
                "id": exp.pk,
                "code": exp.code,
                "arm": "b",
                "factor": "wording",
            }
            assert occ.payload["wording"] == WORDING
        for occ in lab.window(control):
            assert occ.payload["experiment"]["arm"] == "control"
            assert "wording" not in occ.payload
        lab.clinic.run(utc(2026, 3, 2, 0, 0))
        treated_occ = lab.occurrences(treated, local_due="2026-03-02T08:00")[0]
        body = OutboxMessage.objects.get(occurrence=treated_occ).body
        assert body.startswith(f"{treated.name}，今天的血压记录了吗？点此：")
        assert links.token_for(treated_occ.source_key) in body
        control_body = OutboxMessage.objects.get(patient=control).body
        assert "今天的血压记录了吗" not in control_body

    def test_channel_arm_is_tried_first(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.CHANNEL, {"channel": "voice"})
        control, treated = pair(lab, exp, channels=("sms", "voice"))
        occ = lab.window(treated)[0]
        assert occ.payload["route"] == {"by": "experiment", "arm": "b", "channel": "voice"}
        assert lab.window(control)[0].payload["route"] == {"by": "experiment", "arm": "control"}
        lab.clinic.run(utc(2026, 3, 2, 0, 0))
        first = lab.occurrences(treated, local_due="2026-03-02T08:00")[0]
        assert list(first.attempts.values_list("channel", flat=True)) == ["voice"]
        other = lab.occurrences(control, local_due="2026-03-02T08:00")[0]
        assert list(other.attempts.values_list("channel", flat=True)) == ["sms"]

    def test_time_arm_moves_to_the_local_hour(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.TIME, {"hour": 19, "minute": 30})
        a, b = lab.patient(), lab.patient()
        keys = dict(rm.Occurrence.objects.values_list("pk", "source_key"))
        services.apply(lab.org.pk, now=BEFORE)
        control, treated = (a, b) if arm_of(exp, a) == "control" else (b, a)
        moved = lab.occurrences(treated, local_due="2026-03-02T19:30")
        assert len(moved) == 1
        occ = moved[0]
        assert occ.due_at == utc(2026, 3, 2, 11, 30) and occ.wake_at == occ.due_at
        assert occ.payload["experiment"]["original_due"] == utc(2026, 3, 2, 0, 0).isoformat()
        assert occ.payload["route"] == {"by": "experiment", "arm": "b", "hour": 19}
        kept = lab.occurrences(control, local_due="2026-03-02T08:00")[0]
        assert (
            kept.due_at == utc(2026, 3, 2, 0, 0) and kept.payload["experiment"]["arm"] == "control"
        )
        assert dict(rm.Occurrence.objects.values_list("pk", "source_key")) == keys

    def test_time_arm_respects_the_patients_quiet_hours(self, lab: Lab) -> None:
        from datetime import time

        exp = lab.experiment(Factor.TIME, {"hour": 19, "minute": 0})
        a, b = lab.patient(), lab.patient()
        for p in (a, b):
            type(p).objects.filter(pk=p.pk).update(
                quiet_hours_start=time(18, 0), quiet_hours_end=time(8, 0)
            )
        services.apply(lab.org.pk, now=BEFORE)
        treated = a if arm_of(exp, a) == "b" else b
        for occ in lab.window(treated):
            assert occ.payload["experiment"]["kept"] == "quiet_hours"
            assert occ.local_due.endswith("T08:00")

    def test_time_control_undoes_a_send_time_move(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.TIME, {"hour": 19})
        a, b = lab.patient(), lab.patient()
        for p in (a, b):  # send-time learning moved both to 10:00 before the experiment looked
            occ = lab.occurrences(p, local_due="2026-03-02T08:00")[0]
            rm.Occurrence.objects.filter(pk=occ.pk).update(
                due_at=utc(2026, 3, 2, 2, 0),
                wake_at=utc(2026, 3, 2, 2, 0),
                local_due="2026-03-02T10:00",
                payload={**occ.payload, "route": {"by": "sendtime", "arm": "learn", "hour": 10,
                                                  "original_due": occ.due_at.isoformat()}},
            )  # fmt: skip
        services.apply(lab.org.pk, now=BEFORE)
        control = a if arm_of(exp, a) == "control" else b
        treated = b if control is a else a
        back = lab.occurrences(control, due_at=utc(2026, 3, 2, 0, 0))[0]
        assert back.local_due == "2026-03-02T08:00"
        assert back.payload["route"] == {"by": "experiment", "arm": "control"}
        assert lab.occurrences(treated, local_due="2026-03-02T19:00")

    def test_cadence_keeps_every_nth(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.CADENCE, {"every": 2})
        control, treated = pair(lab, exp)
        first, second = lab.window(treated)
        assert (first.status, first.payload["experiment"]["seq"]) == (rm.Status.SCHEDULED, 0)
        assert (second.status, second.reason) == (rm.Status.SKIPPED, "experiment_cadence")
        assert second.wake_at is None
        assert [o.status for o in lab.window(control)] == [rm.Status.SCHEDULED] * 2
        # The next day's run continues the count: the third is kept.
        services.apply(lab.org.pk, now=utc(2026, 3, 2, 20, 0))
        third = lab.occurrences(treated, local_due="2026-03-04T08:00")[0]
        assert third.status == rm.Status.SCHEDULED and third.payload["experiment"]["seq"] == 2

    def test_a_claimed_or_tried_row_is_never_touched(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.TIME, {"hour": 19})
        a, b = lab.patient(), lab.patient()
        claimed = {}
        for p in (a, b):
            occ = lab.occurrences(p, local_due="2026-03-02T08:00")[0]
            rm.Occurrence.objects.filter(pk=occ.pk).update(claimed_by="worker-1")
            claimed[p.pk] = occ
        services.apply(lab.org.pk, now=BEFORE)
        for p in (a, b):
            occ = claimed[p.pk]
            again = rm.Occurrence.objects.get(pk=occ.pk)
            assert again.due_at == occ.due_at and "experiment" not in again.payload
        assert Assignment.objects.filter(experiment=exp).count() == 2

    def test_marking_is_done_once(self, lab: Lab) -> None:
        lab.experiment(Factor.WORDING, {"wording": WORDING})
        lab.patient(), lab.patient()
        assert services.apply(lab.org.pk, now=BEFORE) == 4
        assert services.apply(lab.org.pk, now=BEFORE) == 0


class TestExclusion:
    def test_one_running_experiment_per_kind(self, lab: Lab) -> None:
        first = lab.experiment(Factor.WORDING, {"wording": WORDING})
        second = lab.experiment(Factor.CHANNEL, {"channel": "voice"})
        p = lab.patient()
        services.apply(lab.org.pk, now=BEFORE)
        assert (
            Assignment.objects.filter(patient=p).values_list("experiment_id", flat=True).get()
            == first.pk
        )
        assert {o.payload["experiment"]["id"] for o in lab.window(p)} == {first.pk}
        assert not Assignment.objects.filter(experiment=second).exists()

    def test_other_kinds_may_run_side_by_side(self, lab: Lab) -> None:
        lab.experiment(Factor.WORDING, {"wording": WORDING})
        other = lab.experiment(Factor.CHANNEL, {"channel": "voice"}, kinds=["medication"])
        p = lab.patient()
        services.apply(lab.org.pk, now=BEFORE)
        assert Assignment.objects.filter(patient=p).count() == 1
        q = lab.patient(kind="medication", channels=("sms", "voice"))
        services.apply(lab.org.pk, now=BEFORE)
        assert Assignment.objects.filter(patient=q, experiment=other).exists()

    def test_drafts_and_stopped_experiments_do_nothing(self, lab: Lab) -> None:
        lab.experiment(Factor.WORDING, {"wording": WORDING}, status=Status.DRAFT)
        lab.experiment(Factor.WORDING, {"wording": WORDING}, status=Status.STOPPED)
        p = lab.patient()
        assert services.apply(lab.org.pk, now=BEFORE) == 0
        assert not Assignment.objects.filter(patient=p).exists()


class TestRelease:
    def test_stopping_gives_future_reminders_back(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.TIME, {"hour": 19})
        control, treated = pair(lab, exp)
        services.stop(lab.clinic.world.actor("admin"), exp.pk, "enough", now=BEFORE)
        exp.refresh_from_db()
        assert (exp.status, exp.stop_reason, exp.stop_note) == (Status.STOPPED, "manual", "enough")
        for p in (control, treated):
            for occ in lab.window(p):
                assert occ.local_due.endswith("T08:00")
                assert "experiment" not in occ.payload and "route" not in occ.payload

    def test_cadence_skips_are_undone(self, lab: Lab) -> None:
        exp = lab.experiment(Factor.CADENCE, {"every": 2})
        _control, treated = pair(lab, exp)
        services.finish(exp, Status.COMPLETED, "max_per_arm", now=BEFORE)
        assert [o.status for o in lab.window(treated)] == [rm.Status.SCHEDULED] * 2
        assert all(o.wake_at == o.due_at for o in lab.window(treated))
