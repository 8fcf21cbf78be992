"""Engagement metrics (metrics.md, "Engagement") on hand-built data with hand-computed
figures: reminder engagement by channel, local hour and weekday; reading upload rate; NPS and
CSAT; education content reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.analytics.registry import METRICS, all_metrics
from careloop.careplans import models as cm
from careloop.education import models as em
from careloop.observations import models as om
from careloop.questionnaires import models as qm
from careloop.reminders import models as rm
from tests.analytics.helpers_ops import at, cohort, key, make_patients

pytestmark = pytest.mark.django_db

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)
TODAY = date(2026, 3, 15)
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _registered() -> None:
    all_metrics()


# --- reminder engagement --------------------------------------------------------------------


def reminder(
    world: Any,
    patient: Any,
    local_due: str,
    tz: str = "Asia/Shanghai",
    attempts: tuple[tuple[str, str, datetime], ...] = (),
    **fields: Any,
) -> rm.Occurrence:
    wall = datetime.fromisoformat(local_due).replace(tzinfo=ZoneInfo(tz))
    occ = rm.Occurrence.objects.create(
        organisation=world.org,
        patient=patient,
        kind="medication",
        source_key=key(),
        local_due=local_due,
        time_zone=tz,
        due_at=wall.astimezone(UTC),
        **fields,
    )
    for step, (channel, outcome, started) in enumerate(attempts):
        rm.Attempt.objects.create(
            occurrence=occ,
            organisation=world.org,
            patient=patient,
            dedupe_key=f"{occ.pk}:{step}:{channel}",
            step=step,
            channel=channel,
            outcome=outcome,
            started_at=started,
        )
    return occ


@pytest.fixture
def reminders(world: Any) -> dict[str, Any]:
    a, b = make_patients(world, 2)
    ack = {"status": rm.Status.ACKNOWLEDGED}
    return {
        "a": a,
        "b": b,
        # Tuesday 10 Feb 08:00 Shanghai: delivered by SMS, confirmed through the link.
        "r1": reminder(
            world,
            a,
            "2026-02-10T08:00",
            attempts=(("sms", "delivered", at(2026, 2, 10, 8)),),
            acknowledged_at=at(2026, 2, 10, 8, 5),
            ack_source="link",
            **ack,
        ),
        # Wednesday 08:00: delivered, never answered.
        "r2": reminder(
            world,
            a,
            "2026-02-11T08:00",
            attempts=(("sms", "delivered", at(2026, 2, 11, 8)),),
            status=rm.Status.DELIVERED,
        ),
        # Monday 9 Feb 19:00 in New York — the same instant as Tuesday 08:00 in Shanghai:
        # accepted by WeChat (no receipt), answered by an SMS reply.
        "r3": reminder(
            world,
            b,
            "2026-02-09T19:00",
            "America/New_York",
            attempts=(("wechat", "accepted", at(2026, 2, 9, 19, tz=NEW_YORK)),),
            acknowledged_at=at(2026, 2, 9, 19, 30, tz=NEW_YORK),
            ack_source="sms_reply",
            **ack,
        ),
        # Failed permanently: never delivered.
        "r4": reminder(
            world,
            b,
            "2026-02-10T08:00",
            attempts=(("sms", "permanent", at(2026, 2, 10, 8)),),
            status=rm.Status.FAILED,
        ),
        # Thursday 12:00: delivered, then confirmed by a nurse on the phone — not the patient.
        "r5": reminder(
            world,
            a,
            "2026-02-12T12:00",
            attempts=(("sms", "delivered", at(2026, 2, 12, 12)),),
            acknowledged_at=at(2026, 2, 12, 15),
            ack_source="staff_call",
            **ack,
        ),
        # Friday 19:00: SMS delivered, no answer; the voice call escalation got the answer.
        "r6": reminder(
            world,
            a,
            "2026-02-13T19:00",
            attempts=(
                ("sms", "delivered", at(2026, 2, 13, 19)),
                ("voice", "delivered", at(2026, 2, 13, 20)),
            ),
            acknowledged_at=at(2026, 2, 13, 20, 2),
            ack_source="patient",
            **ack,
        ),
        # Confirmed on the portal before any message went out: not a delivered reminder.
        "r7": reminder(
            world,
            b,
            "2026-02-14T08:00",
            acknowledged_at=at(2026, 2, 14, 7),
            ack_source="portal",
            **ack,
        ),
    }


def test_reminder_engagement_acknowledged_over_delivered(world: Any, reminders: Any) -> None:
    feb = METRICS["reminder_engagement"].compute(cohort(world, TODAY), [FEB])[FEB]
    # Delivered: r1, r2, r3, r5, r6; acknowledged by the patient: r1, r3, r6.
    assert (feb["acknowledged"].numerator, feb["acknowledged"].denominator) == (3, 5)
    assert feb["unacknowledged"].numerator == 2


def parts_by(metric_key: str, name: str, c: Any, month: date, part: str) -> dict[str, Any]:
    rows = METRICS[metric_key].breakdowns[name](c, month)
    return {k: (p[part].numerator, p[part].denominator) for k, _label, p in rows}


def test_reminder_engagement_by_channel(world: Any, reminders: Any) -> None:
    by = parts_by("reminder_engagement", "channel", cohort(world, TODAY), FEB, "acknowledged")
    # The answer to r6 followed the voice call, so voice gets the credit.
    assert by == {"sms": (1, 3), "wechat": (1, 1), "voice": (1, 1)}


def test_reminders_in_two_time_zones_land_in_their_own_local_hour_and_weekday(
    world: Any, reminders: Any
) -> None:
    c = cohort(world, TODAY)
    by_hour = parts_by("reminder_engagement", "hour", c, FEB, "acknowledged")
    assert by_hour == {"8": (1, 2), "12": (0, 1), "19": (2, 2)}
    rows = METRICS["reminder_engagement"].breakdowns["hour"](c, FEB)
    assert [label for _k, label, _p in rows] == ["08:00", "12:00", "19:00"]
    # ISO weekdays: r3 on Monday in New York, r1 Tuesday, r2 Wednesday, r5 Thursday, r6 Friday.
    by_day = parts_by("reminder_engagement", "weekday", c, FEB, "acknowledged")
    assert by_day == {"1": (1, 1), "2": (1, 1), "3": (0, 1), "4": (0, 1), "5": (1, 1)}


def test_reminder_engagement_drill_down(world: Any, reminders: Any) -> None:
    metric = METRICS["reminder_engagement"]
    assert metric.patients is not None
    c = cohort(world, TODAY)
    assert metric.patients(c, FEB, "acknowledged") == sorted([reminders["a"].pk, reminders["b"].pk])
    assert metric.patients(c, FEB, "unacknowledged") == [reminders["a"].pk]


# --- reading upload rate --------------------------------------------------------------------


def reading(world: Any, patient: Any, when: datetime, source: str = "patient") -> None:
    om.Observation.objects.create(
        organisation=world.org,
        patient=patient,
        kind="bp",
        code="85354-9",
        value=130,
        value2=80,
        unit="mm[Hg]",
        source=source,
        effective_at=when,
        time_zone="Asia/Shanghai",
        local_day=when.date().toordinal(),
        local_hour=when.hour,
    )


def test_upload_rate(world: Any) -> None:
    measure = cm.PlanTemplate.objects.create(organisation=world.org, code="t-bp", name="血压")
    cm.PlanActivity.objects.create(template=measure, code="bp", kind="measurement", title="量血压")
    calls = cm.PlanTemplate.objects.create(organisation=world.org, code="t-call", name="随访")
    cm.PlanActivity.objects.create(template=calls, code="call", kind="call", title="电话")
    p = make_patients(world, 6)
    dead = make_patients(world, 1, deceased_on=date(2026, 3, 1))[0]

    def enrol(patient: Any, template: Any, starts: date, **fields: Any) -> None:
        cm.Enrolment.objects.create(
            organisation=world.org,
            patient=patient,
            template=template,
            template_version=1,
            starts_on=starts,
            **fields,
        )

    jan1 = date(2026, 1, 1)
    enrol(p[0], measure, jan1)
    reading(world, p[0], at(2026, 2, 18))  # within the 30 days to 28 February
    enrol(p[1], measure, jan1)
    reading(world, p[1], at(2026, 1, 19))  # 40 days before 28 February; within January's
    enrol(p[2], measure, jan1)
    reading(world, p[2], at(2026, 2, 20), source="staff")  # not self-reported
    enrol(p[3], calls, jan1)  # the plan asks for no readings
    reading(world, p[3], at(2026, 2, 20))
    # Ended on 20 February: enrolled on 31 January, not on 28 February.
    enrol(p[4], measure, jan1, status="ended", ended_at=at(2026, 2, 20))
    reading(world, p[4], at(2026, 1, 25))
    enrol(p[5], measure, date(2026, 3, 1))  # starts after February
    enrol(dead, measure, jan1)
    reading(world, dead, at(2026, 2, 20))

    metric = METRICS["upload_rate"]
    result = metric.compute(cohort(world, TODAY), [JAN, FEB])
    assert (result[FEB]["uploading"].numerator, result[FEB]["uploading"].denominator) == (1, 3)
    assert (result[JAN]["uploading"].numerator, result[JAN]["uploading"].denominator) == (2, 4)
    assert metric.patients is not None
    assert metric.patients(cohort(world, TODAY), FEB, "uploading") == [p[0].pk]
    assert metric.patients(cohort(world, TODAY), FEB, "not_uploading") == [p[1].pk, p[2].pk]


# --- NPS and CSAT ---------------------------------------------------------------------------


@pytest.fixture
def survey(world: Any) -> qm.Questionnaire:
    return qm.Questionnaire.objects.create(
        url="urn:test:satisfaction",
        title="随访满意度调查",
        status="active",
        instrument="satisfaction",
    )


def respond(
    world: Any, survey: Any, patient: Any, when: datetime, nps: int | None, csat: int | None = None
) -> None:
    details: dict[str, Any] = {}
    if nps is not None:
        details["nps"] = float(nps)
    if csat is not None:
        details["csat"] = float(csat)
    qm.Response.objects.create(
        organisation=world.org,
        patient=patient,
        questionnaire=survey,
        status="completed",
        completed_at=when,
        score=None if nps is None else float(nps),
        result={"instrument": "satisfaction", "details": details},
    )


def test_nps_five_promoters_three_passives_two_detractors_is_30(world: Any, survey: Any) -> None:
    p = make_patients(world, 10)
    for patient, score in zip(p, [9, 10, 9, 10, 9, 7, 8, 7, 6, 0], strict=True):
        respond(world, survey, patient, at(2026, 2, 5), score)
    other = qm.Questionnaire.objects.create(url="urn:test:phq", title="PHQ-9", instrument="phq9")
    qm.Response.objects.create(  # another instrument's score is no NPS answer
        organisation=world.org,
        patient=p[0],
        questionnaire=other,
        status="completed",
        completed_at=at(2026, 2, 6),
        score=2.0,
    )
    dead = make_patients(world, 1, deceased_on=date(2026, 3, 1))[0]
    respond(world, survey, dead, at(2026, 2, 6), 0)

    metric = METRICS["nps"]
    feb = metric.compute(cohort(world, TODAY), [FEB])[FEB]
    assert feb["nps"].value == 30.0
    assert (feb["promoters"].numerator, feb["promoters"].denominator) == (5, 10)
    assert feb["passives"].numerator == 3
    assert feb["detractors"].numerator == 2
    assert metric.patients is not None
    assert metric.patients(cohort(world, TODAY), FEB, "detractors") == [p[8].pk, p[9].pk]


def test_nps_counts_each_patients_latest_answer_of_the_month(world: Any, survey: Any) -> None:
    a, b = make_patients(world, 2)
    respond(world, survey, a, at(2026, 2, 3), 10)
    respond(world, survey, a, at(2026, 2, 20), 0)  # the later answer counts
    respond(world, survey, b, at(2026, 1, 31, 23), 9)  # January in Shanghai
    respond(world, survey, b, at(2026, 2, 1, 9), 8)
    result = METRICS["nps"].compute(cohort(world, TODAY), [JAN, FEB])
    assert result[JAN]["nps"].value == 100.0
    # February: a detractor and a passive → (0 − 1) / 2 = −50.
    assert result[FEB]["nps"].value == -50.0
    assert result[FEB]["promoters"].denominator == 2


def test_csat_share_satisfied_and_mean(world: Any, survey: Any) -> None:
    p = make_patients(world, 5)
    for patient, answer in zip(p[:4], [5, 4, 3, 2], strict=True):
        respond(world, survey, patient, at(2026, 2, 5), 8, answer)
    respond(world, survey, p[4], at(2026, 2, 5), 9)  # no CSAT answer: not counted
    metric = METRICS["csat"]
    feb = metric.compute(cohort(world, TODAY), [FEB])[FEB]
    assert (feb["satisfied"].numerator, feb["satisfied"].denominator) == (2, 4)
    assert feb["mean_score"].value == 3.5
    assert feb["mean_score"].denominator is None
    assert metric.patients is not None
    assert metric.patients(cohort(world, TODAY), FEB, "not_satisfied") == [p[2].pk, p[3].pk]
    empty = metric.compute(cohort(world, TODAY), [JAN])[JAN]
    assert empty["satisfied"].value is None


# --- education content ----------------------------------------------------------------------


def test_content_reads_most_read_first(world: Any) -> None:
    salt = em.ContentItem.objects.create(organisation=world.org, title="少盐饮食")
    walk = em.ContentItem.objects.create(organisation=world.org, title="每天散步")
    p = make_patients(world, 4)
    endo = make_patients(world, 1, world.endo)[0]
    feb = at(2026, 2, 3)

    def deliver(patient: Any, item: Any, opened: bool, read: bool) -> None:
        em.Delivery.objects.create(
            organisation=world.org,
            patient=patient,
            item=item,
            delivered_at=feb,
            opened_at=at(2026, 2, 4) if opened else None,
            read_at=at(2026, 2, 4) if read else None,
        )

    deliver(p[0], salt, True, True)
    deliver(p[1], salt, True, False)
    deliver(p[2], salt, False, False)
    deliver(p[0], walk, True, True)
    deliver(p[3], walk, False, True)  # read through (opened implied)
    deliver(endo, walk, True, True)

    metric = METRICS["content_reads"]
    org = metric.compute(cohort(world, TODAY), [FEB])[FEB]
    assert (org["opened"].numerator, org["opened"].denominator) == (5, 6)
    assert (org["read"].numerator, org["read"].denominator) == (4, 6)
    cardio = cohort(world, TODAY, department_ids=(world.cardio.pk,))
    rows = metric.breakdowns["item"](cardio, FEB)
    assert [(label, p_["read"].numerator, p_["read"].denominator) for _k, label, p_ in rows] == [
        ("每天散步", 2, 2),
        ("少盐饮食", 1, 3),
    ]
    assert metric.patients is not None
    assert metric.patients(cardio, FEB, "read") == [p[0].pk, p[3].pk]
