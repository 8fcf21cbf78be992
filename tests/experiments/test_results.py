"""results() on known counts, and the stop rules of evaluate()."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from careloop.appointments import models as am
from careloop.experiments import analysis, stats
from careloop.experiments.models import Assignment, Experiment, Factor, Look, Status
from careloop.patients import models as pm
from tests.reminders.factories import attempt, occurrence
from tests.support.clinic import utc

pytestmark = pytest.mark.django_db

START = utc(2026, 1, 1, 0, 0)  # 08:00 on 1 January in Shanghai
NOW = utc(2026, 3, 1, 12, 0)  # 20:00 on 1 March


def experiment(world: Any, **fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "organisation": world.org,
        "code": "ack",
        "name": "Ack",
        "factor": Factor.WORDING,
        "kinds": ["measurement"],
        "arms": [
            {"code": "control", "name": "C", "weight": 1, "control": True, "params": {}},
            {
                "code": "b",
                "name": "B",
                "weight": 1,
                "control": False,
                "params": {"wording": {"zh-hans": "{link}"}},
            },
        ],  # fmt: skip
        "min_per_arm": 5,
        "max_per_arm": 20,
        "looks": 4,
        "status": Status.RUNNING,
        "started_at": START,
        "seed": 1,
    }
    values.update(fields)
    return Experiment.objects.create(**values)


def enrolled(exp: Experiment, make_patient: Any, arm: str, count: int) -> list[Any]:
    patients = [make_patient() for _ in range(count)]
    for p in patients:
        Assignment.objects.create(experiment=exp, patient=p, arm=arm, assigned_at=START)
    return patients


def reminder(exp: Experiment, patient: Any, arm: str, sent: bool, ack_after: float | None) -> Any:
    due = START + timedelta(days=1)
    occ = occurrence(
        patient,
        due,
        status="sent",
        payload={"experiment": {"id": exp.pk, "code": exp.code, "arm": arm, "factor": exp.factor}},
    )
    if sent:
        attempt(occ, "sms", "accepted", due + timedelta(minutes=1))
    if ack_after is not None:
        type(occ).objects.filter(pk=occ.pk).update(
            acknowledged_at=due + timedelta(minutes=1, hours=ack_after), status="acknowledged"
        )
    return occ


def answers(exp: Experiment, patients: list[Any], arm: str, acked: int, total: int) -> None:
    """`total` reminders sent to the arm's patients (round robin), the first `acked` answered
    within the hour."""
    for i in range(total):
        reminder(exp, patients[i % len(patients)], arm, True, 0.5 if i < acked else None)


class TestAckRate:
    def test_counts_and_comparison(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world)
        control = enrolled(exp, make_patient, "control", 2)
        treated = enrolled(exp, make_patient, "b", 2)
        # Control: 4 acknowledged within 12 h, 1 after 13 h (a failure), 5 never; 2 not sent.
        for i in range(10):
            reminder(exp, control[i % 2], "control", True, 2 if i < 4 else (13 if i == 4 else None))
        reminder(exp, control[0], "control", False, None)
        reminder(exp, control[1], "control", False, 1)  # acknowledged without a send: not counted
        # Arm b: 6 of 8.
        for i in range(8):
            reminder(exp, treated[i % 2], "b", True, 11.9 if i < 6 else None)
        # A reminder of a patient of another experiment is not counted.
        other = experiment(world, code="other")
        reminder(other, control[0], "control", True, 1)
        res = analysis.results(exp, NOW)
        arms = {a["code"]: a for a in res["arms"]}
        assert (arms["control"]["ack_rate"]["successes"], arms["control"]["ack_rate"]["n"]) == (
            4,
            10,
        )
        assert (arms["b"]["ack_rate"]["successes"], arms["b"]["ack_rate"]["n"]) == (6, 8)
        assert arms["b"]["ack_rate"]["rate"] == 0.75 and arms["control"]["patients"] == 2
        comp = next(c for c in res["comparisons"] if c["outcome"] == "ack_rate")
        expected = stats.newcombe(6, 8, 4, 10)
        assert comp["difference"] == pytest.approx(0.35)
        assert (comp["low"], comp["high"]) == (
            pytest.approx(expected.low),
            pytest.approx(expected.high),
        )
        # RR = 0.75 / 0.4 = 1.875; z = 0.35 / √(10/18 · 8/18 · (1/8 + 1/10)) = 1.4849.
        assert comp["relative_risk"] == pytest.approx(1.875)
        assert comp["z"] == pytest.approx(1.4849, abs=1e-3)
        assert comp["p_value"] == pytest.approx(0.1376, abs=1e-3)


def slot(world: Any, at: datetime) -> am.Slot:
    return am.Slot.objects.create(
        organisation=world.org,
        department=world.cardio,
        starts_at=at,
        ends_at=at + timedelta(minutes=30),
        local_date=(at + timedelta(hours=8)).date(),
        capacity=5,
    )


def visit(world: Any, patient: Any, at: datetime, status: str) -> am.Appointment:
    return am.Appointment.objects.create(
        organisation=world.org,
        patient=patient,
        slot=slot(world, at),
        department=world.cardio,
        starts_at=at,
        local_date=(at + timedelta(hours=8)).date(),
        status=status,
    )


class TestReturnToCare:
    def test_counts(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world, primary_outcome="return_15d")
        back_by_visit, gone, recent, back_by_encounter, never_missed = enrolled(
            exp, make_patient, "control", 5
        )
        (treated,) = enrolled(exp, make_patient, "b", 1)
        miss = START + timedelta(days=10)
        visit(world, back_by_visit, miss, "no_show")
        visit(world, back_by_visit, miss + timedelta(days=14), "completed")
        visit(world, gone, miss, "no_show")
        visit(world, gone, miss + timedelta(days=16), "completed")  # too late
        visit(world, recent, NOW - timedelta(days=5), "no_show")  # 15 days not over: left out
        visit(world, back_by_encounter, miss, "no_show")
        pm.Encounter.objects.create(
            organisation=world.org,
            patient=back_by_encounter,
            kind="outpatient",
            department=world.cardio,
            admitted_on=date(2026, 1, 13),
        )
        visit(world, never_missed, miss, "completed")
        visit(world, treated, START - timedelta(days=3), "no_show")  # before the experiment
        res = analysis.results(exp, NOW)
        arms = {a["code"]: a for a in res["arms"]}
        assert (arms["control"]["return_15d"]["successes"], arms["control"]["return_15d"]["n"]) == (
            2,
            3,
        )
        assert arms["b"]["return_15d"]["n"] == 0
        comp = next(c for c in res["comparisons"] if c["outcome"] == "return_15d")
        assert comp["difference"] is None  # no patient of arm b missed a visit


class TestPdc:
    def test_mean_per_arm_and_welch(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world, primary_outcome="pdc")
        a, b = enrolled(exp, make_patient, "control", 2)
        c, d = enrolled(exp, make_patient, "b", 2)

        def fill(p: Any, day: date, supply: int) -> None:
            pm.Dispense.objects.create(
                organisation=world.org,
                patient=p,
                name="氨氯地平",
                days_supply=supply,
                when_handed_over=day,
            )

        # The period is 1 January to 1 March: 60 days from the index date.
        fill(a, date(2026, 1, 1), 30), fill(a, date(2026, 1, 31), 30)  # 60/60
        fill(b, date(2026, 1, 1), 10), fill(b, date(2026, 1, 11), 10)  # 20/60
        fill(c, date(2026, 1, 1), 30), fill(c, date(2026, 2, 10), 30)  # 30 + 20 = 50/60
        fill(d, date(2026, 1, 1), 30), fill(d, date(2026, 1, 16), 30)  # shifted: 60/60
        res = analysis.results(exp, NOW)
        arms = {x["code"]: x for x in res["arms"]}
        assert arms["control"]["pdc"]["mean"] == pytest.approx((1 + 0.3333) / 2, abs=1e-4)
        assert arms["b"]["pdc"]["mean"] == pytest.approx((0.8333 + 1) / 2, abs=1e-4)
        comp = next(x for x in res["comparisons"] if x["outcome"] == "pdc")
        # se² = 0.2222/2 + 0.013889/2 = 0.118056; t = 0.25 / 0.343592 = 0.7276; df = 1.1245.
        assert comp["difference"] == pytest.approx(0.25, abs=1e-4)
        assert comp["z"] == pytest.approx(0.7276, abs=1e-3)
        assert comp["relative_risk"] is None


class TestStopRules:
    def test_nothing_before_the_minimum(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world)
        enrolled(exp, make_patient, "control", 4)
        enrolled(exp, make_patient, "b", 9)
        assert analysis.evaluate(exp, NOW) is None
        assert not Look.objects.exists()

    def test_early_stop_for_efficacy(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world)
        control = enrolled(exp, make_patient, "control", 10)
        treated = enrolled(exp, make_patient, "b", 10)
        answers(exp, control, "control", 10, 50)
        answers(exp, treated, "b", 45, 50)
        look = analysis.evaluate(exp, NOW)
        assert look is not None
        # Information 10/20 = 0.5, first look: c = Φ⁻¹(1 − α(0.5)/2) = 2.9626.
        assert look.information == 0.5 and look.number == 1
        assert look.boundary == pytest.approx(2.9626, abs=1e-3)
        assert look.decision == Look.Decision.EFFICACY
        assert look.counts["b"] == {"patients": 10, "successes": 45, "n": 50}
        assert look.statistics[0]["z"] > look.boundary
        exp.refresh_from_db()
        assert (exp.status, exp.stop_reason) == (Status.STOPPED, "efficacy")
        assert exp.ended_at == NOW
        assert analysis.evaluate(exp, NOW) is None  # stopped: no more looks

    def test_early_stop_for_harm(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world)
        control = enrolled(exp, make_patient, "control", 10)
        treated = enrolled(exp, make_patient, "b", 10)
        answers(exp, control, "control", 45, 50)
        answers(exp, treated, "b", 10, 50)
        look = analysis.evaluate(exp, NOW)
        assert look is not None and look.decision == Look.Decision.HARM
        exp.refresh_from_db()
        assert exp.stop_reason == "harm"

    def test_continue_then_the_next_planned_look(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world)
        control = enrolled(exp, make_patient, "control", 10)
        treated = enrolled(exp, make_patient, "b", 10)
        answers(exp, control, "control", 30, 50)
        answers(exp, treated, "b", 36, 50)  # z = 1.26: not enough this early
        first = analysis.evaluate(exp, NOW)
        assert first is not None and first.decision == Look.Decision.CONTINUE
        assert analysis.evaluate(exp, NOW) is None  # information has not moved on
        enrolled(exp, make_patient, "control", 5)
        enrolled(exp, make_patient, "b", 5)
        second = analysis.evaluate(exp, NOW)
        assert second is not None and second.number == 2 and second.information == 0.75
        assert second.boundary == pytest.approx(stats.boundaries([0.5, 0.75])[-1])
        exp.refresh_from_db()
        assert exp.status == Status.RUNNING

    def test_complete_at_the_maximum(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world, max_per_arm=6, min_per_arm=5)
        enrolled(exp, make_patient, "control", 6)
        enrolled(exp, make_patient, "b", 6)
        look = analysis.evaluate(exp, NOW)
        assert look is not None and look.decision == Look.Decision.COMPLETE
        assert look.information == 1.0
        assert look.boundary == pytest.approx(1.959964, abs=1e-4)
        exp.refresh_from_db()
        assert (exp.status, exp.stop_reason) == (Status.COMPLETED, "max_per_arm")

    def test_complete_after_the_last_day(self, world: Any, make_patient: Any) -> None:
        exp = experiment(world, end_date=date(2026, 2, 28))
        enrolled(exp, make_patient, "control", 2)
        enrolled(exp, make_patient, "b", 2)
        look = analysis.evaluate(exp, NOW)
        assert look is not None and look.decision == Look.Decision.COMPLETE
        exp.refresh_from_db()
        assert (exp.status, exp.stop_reason) == (Status.COMPLETED, "end_date")

    def test_daily_job_evaluates_once_per_local_day(self, world: Any, make_patient: Any) -> None:
        from careloop.experiments import services

        exp = experiment(world)
        enrolled(exp, make_patient, "control", 10)
        enrolled(exp, make_patient, "b", 10)
        assert services.evaluate_job(NOW) == 1
        assert services.evaluate_job(NOW + timedelta(hours=2)) == 0  # 22:00, same local day
        assert services.evaluate_job(NOW + timedelta(hours=5)) == 1  # 01:00 the next day
        assert Look.objects.filter(experiment=exp).count() == 1  # no new look was due
