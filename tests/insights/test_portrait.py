"""The portrait of a hand-built patient: every figure checked against the rows behind it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from careloop.insights import portrait as portraits
from careloop.insights import sentiment
from careloop.patients import models as pm
from tests.insights import factories as f

TODAY = date(2026, 3, 31)  # the portrait is as of the end of this day in Asia/Shanghai
AS_OF = f.local(TODAY + timedelta(days=1), 0)


def days_ago(n: int, hour: int = 9) -> Any:
    return f.local(TODAY - timedelta(days=n), hour)


@pytest.fixture
def patient(make_patient: Any) -> pm.Patient:
    p = make_patient()
    pm.Patient.objects.filter(pk=p.pk).update(registered_on=date(2024, 1, 1))
    p.refresh_from_db()
    return p


@pytest.fixture
def history(patient: pm.Patient) -> pm.Patient:
    # Visits: one day with both an appointment and an encounter counts once.
    f.appointment(patient, date(2026, 3, 10), "completed")
    f.appointment(patient, date(2025, 12, 5), "checked_in")
    f.appointment(patient, date(2026, 2, 1), "no_show")
    f.appointment(patient, date(2026, 3, 20), "cancelled")
    f.appointment(patient, date(2025, 1, 15), "completed")  # more than 12 months ago
    f.encounter(patient, date(2026, 3, 10))
    f.encounter(patient, date(2025, 8, 20))
    f.encounter(patient, date(2026, 1, 1), deleted=True)
    f.encounter(patient, date(2026, 5, 1))  # after the portrait's day
    f.condition(patient, "I10", "高血压")
    f.condition(patient, "E11", "2型糖尿病", status="resolved")

    # Reminders: answered 2 h, 4 h and 1 h after sending; one unanswered; one confirmed by a
    # nurse on the phone; one never sent; one too old; one after the portrait's day.
    f.reminder(patient, days_ago(5, 17), acked_at=days_ago(5, 19))
    f.reminder(patient, days_ago(10, 15), outcome="delivered", acked_at=days_ago(10, 19))
    f.reminder(patient, days_ago(20, 8))
    f.reminder(patient, days_ago(25, 8), acked_at=days_ago(25, 10), ack_source="staff_call")
    f.reminder(patient, days_ago(60, 7), acked_at=days_ago(60, 8))
    f.reminder(patient, days_ago(3, 8), outcome="permanent")
    f.reminder(patient, days_ago(100, 8), acked_at=days_ago(100, 9))
    f.reminder(patient, days_ago(-1, 8), acked_at=days_ago(-1, 9))

    a, b = f.content(patient, "低盐饮食"), f.content(patient, "正确测量血压")
    f.delivery(patient, a, days_ago(10))
    f.delivery(patient, b, days_ago(100))
    f.read(patient, a, days_ago(9))
    f.read(patient, a, days_ago(9, 10), event="read_through")
    f.read(patient, b, days_ago(50))

    q = f.questionnaire(patient)
    f.assignment(patient, q, days_ago(10), "completed")
    f.assignment(patient, q, days_ago(20), "open")
    f.assignment(patient, q, days_ago(30), "cancelled")
    f.assignment(patient, q, days_ago(100), "completed")

    f.reading(patient, "bp", days_ago(1))
    f.reading(patient, "bp", days_ago(2), source="device")
    f.reading(patient, "glucose", days_ago(3))
    f.reading(patient, "bp", days_ago(1, 11), source="staff")
    f.reading(patient, "bp", days_ago(40))

    t = f.thread(patient)
    f.message(t, "头晕得厉害，很难受", days_ago(9))
    f.message(t, "药太贵了，买不起，很担心", days_ago(8))
    f.message(t, "请按时服药，注意休息", days_ago(8, 10), author="staff")
    f.message(t, "我是他女儿，他今天挺好", days_ago(7), author="caregiver")
    f.message(t, "今天好多了，谢谢医生", days_ago(6))
    f.message(t, "血压稳定了，很开心，感谢护士", days_ago(5))
    f.message(t, "明天还会很好", days_ago(-2))
    return patient


class TestVisits:
    def test_visit_days_last_visit_and_missed(self, history: pm.Patient) -> None:
        v = portraits.portrait(history, today=TODAY).visits
        assert (v.count, v.appointments, v.encounters, v.no_shows) == (3, 2, 2, 1)
        assert v.per_year == 3.0 and not v.annualised
        assert v.last == date(2026, 3, 10)

    def test_visits_per_month_cover_twelve_months(self, history: pm.Patient) -> None:
        months = portraits.portrait(history, today=TODAY).visits.by_month
        assert [m for m, _n in months][0] == date(2025, 4, 1)
        assert [m for m, _n in months][-1] == date(2026, 3, 1)
        counted = {m: n for m, n in months if n}
        assert counted == {date(2025, 8, 1): 1, date(2025, 12, 1): 1, date(2026, 3, 1): 1}

    def test_a_new_patient_is_annualised_from_at_least_90_days(self, patient: pm.Patient) -> None:
        pm.Patient.objects.filter(pk=patient.pk).update(registered_on=TODAY - timedelta(days=29))
        patient.refresh_from_db()
        f.encounter(patient, TODAY - timedelta(days=3))
        v = portraits.portrait(patient, today=TODAY).visits
        assert v.annualised
        assert v.per_year == round(365 / 90, 1)

    def test_only_active_conditions(self, history: pm.Patient) -> None:
        found = portraits.portrait(history, today=TODAY).conditions
        assert found == [portraits.ConditionFact(code="I10", display="高血压")]


class TestBehaviour:
    def test_acknowledgement_rates(self, history: pm.Patient) -> None:
        b = portraits.portrait(history, today=TODAY).behaviour
        assert (b.ack_30d.done, b.ack_30d.total) == (2, 4)
        assert (b.ack_90d.done, b.ack_90d.total) == (3, 5)
        assert b.ack_90d.value == pytest.approx(0.6)

    def test_latency_and_preferred_hour(self, history: pm.Patient) -> None:
        b = portraits.portrait(history, today=TODAY).behaviour
        assert b.latency_hours == 2.0  # median of 2, 4 and 1 hours
        assert b.preferred_hour == 19  # two answers at 19:00, one at 08:00 (local)
        assert b.answers_by_hour[19] == 2 and b.answers_by_hour[8] == 1
        assert sum(b.answers_by_hour) == 3

    def test_reads_questionnaires_and_readings(self, history: pm.Patient) -> None:
        b = portraits.portrait(history, today=TODAY).behaviour
        assert (b.reads_90d, b.delivered_90d) == (2, 1)
        assert (b.questionnaires_90d.done, b.questionnaires_90d.total) == (1, 2)
        assert b.readings_30d == 3
        assert b.readings_by_kind == [("bp", 2), ("glucose", 1)]

    def test_nothing_yet(self, patient: pm.Patient) -> None:
        p = portraits.portrait(patient, today=TODAY)
        b = p.behaviour
        assert b.ack_30d.value is None and b.latency_hours is None and b.preferred_hour is None
        assert b.questionnaires_90d.value is None and b.readings_30d == 0
        assert p.visits.count == 0 and p.visits.last is None
        assert p.sentiment.messages == [] and p.sentiment.mean is None
        assert p.sentiment.label == sentiment.NEUTRAL and p.sentiment.trend == ""


class TestSentiment:
    def test_only_the_patients_own_messages_newest_first(self, history: pm.Patient) -> None:
        s = portraits.portrait(history, today=TODAY).sentiment
        assert [m.text for m in s.messages] == [
            "血压稳定了，很开心，感谢护士",
            "今天好多了，谢谢医生",
            "药太贵了，买不起，很担心",
            "头晕得厉害，很难受",
        ]
        assert [m.label for m in s.messages] == ["positive", "positive", "negative", "negative"]
        assert s.mean == pytest.approx(sum(m.score for m in s.messages) / 4, abs=1e-3)

    def test_from_complaints_to_thanks_is_improving(self, history: pm.Patient) -> None:
        assert portraits.portrait(history, today=TODAY).sentiment.trend == portraits.IMPROVING

    def test_at_most_the_last_ten(self, patient: pm.Patient) -> None:
        t = f.thread(patient)
        for i in range(12):
            f.message(t, f"第{i}条：谢谢", days_ago(20 - i))
        s = portraits.portrait(patient, today=TODAY).sentiment
        assert len(s.messages) == portraits.MESSAGES
        assert s.messages[0].text == "第11条：谢谢"

    @pytest.mark.parametrize(
        ("scores", "trend"),
        [
            ([-0.5, -0.4, 0.3, 0.5], portraits.IMPROVING),
            ([0.6, 0.5, -0.2, -0.3], portraits.WORSENING),
            ([0.1, 0.2, 0.15, 0.25], portraits.STEADY),
            ([0.9, -0.9, 0.9], ""),
        ],
    )
    def test_trend(self, scores: list[float], trend: str) -> None:
        assert portraits.trend_of(scores) == trend


class TestQueries:
    def _count(self, patient: pm.Patient) -> int:
        with CaptureQueriesContext(connection) as ctx:
            portraits.portrait(patient, today=TODAY)
        return len(ctx.captured_queries)

    def test_the_number_of_queries_does_not_grow_with_history(self, history: pm.Patient) -> None:
        before = self._count(history)
        t = f.thread(history)
        item = f.content(history, "运动指导")
        for i in range(15):
            f.reminder(history, days_ago(i + 1, 7), acked_at=days_ago(i + 1, 8))
            f.appointment(history, TODAY - timedelta(days=i + 30), "completed")
            f.encounter(history, TODAY - timedelta(days=i + 60))
            f.read(history, item, days_ago(i + 1))
            f.reading(history, "bp", days_ago(i + 1, 6))
            f.message(t, "谢谢", days_ago(i + 1, 6))
        assert self._count(history) == before
        assert before <= 12
