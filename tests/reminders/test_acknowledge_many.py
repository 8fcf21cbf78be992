"""A batch of patients' answers: the same rows, rule events and audit trail as one by one."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.audit import services as audit
from careloop.audit.models import AuditEvent
from careloop.kit.errors import ValidationFailed
from careloop.reminders import models as rm
from careloop.reminders import services as reminder_services
from careloop.reminders.services import Answer
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db

S = rm.Status
SENT_AT = utc(2026, 3, 2, 0, 0)  # 08:00 in Shanghai: the morning dose reminders go out


def dose(clinic: Clinic) -> Any:
    p = clinic.patient()
    clinic.prescribe(p, "qd")
    clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
    return p


def first_dose(clinic: Clinic, patient: Any) -> rm.Occurrence:
    return clinic.occurrences(patient, kind="medication")[0]


class TestAcknowledgeMany:
    def test_each_answer_is_recorded_as_if_given_alone(self, clinic: Clinic) -> None:
        patients = [dose(clinic) for _ in range(5)]
        clinic.run(SENT_AT)
        taken, skipped, late, repeat, withdrawn = (first_dose(clinic, p) for p in patients)
        reminder_services.acknowledge(repeat.pk, source="link", intake="taken", at=SENT_AT)
        rm.Occurrence.objects.filter(pk=withdrawn.pk).update(status=S.CANCELLED)
        before = AuditEvent.objects.count()

        results = reminder_services.acknowledge_many(
            [
                Answer(taken.pk, "wechat", intake="taken", at=utc(2026, 3, 2, 0, 20)),
                Answer(skipped.pk, "sms", "skipped", "side_effect", utc(2026, 3, 2, 0, 30)),
                Answer(late.pk, "voice", intake="taken", at=utc(2026, 3, 2, 3, 0)),
                Answer(repeat.pk, "sms", intake="skipped", reason="cost"),
                Answer(withdrawn.pk, "sms", intake="taken"),
                Answer(999_999_999, "sms", intake="taken"),
            ]
        )

        assert results == {
            taken.pk: "acknowledged",
            skipped.pk: "acknowledged",
            late.pk: "acknowledged",
            repeat.pk: "repeat",
            withdrawn.pk: "withdrawn",
            999_999_999: "unknown",
        }
        intake = dict(
            rm.IntakeEvent.objects.filter(
                occurrence_id__in=[taken.pk, skipped.pk, late.pk, repeat.pk]
            ).values_list("occurrence_id", "status")
        )
        # More than two hours after the dose time is late; the earlier answer to ``repeat`` stays.
        assert intake == {
            taken.pk: "taken",
            skipped.pk: "skipped",
            late.pk: "late",
            repeat.pk: "taken",
        }
        assert rm.IntakeEvent.objects.get(occurrence_id=skipped.pk).reason == "side_effect"
        for occ in (taken, skipped, late):
            occ.refresh_from_db()
            assert occ.status == S.ACKNOWLEDGED and occ.wake_at is None
        taken.refresh_from_db()
        assert taken.acknowledged_at == utc(2026, 3, 2, 0, 20) and taken.ack_source == "wechat"
        withdrawn.refresh_from_db()
        assert withdrawn.status == S.CANCELLED

        events = list(AuditEvent.objects.order_by("seq")[before:])
        assert [(e.action, e.patient_id, e.object_id) for e in events] == [
            ("reminder.acknowledge", occ.patient_id, str(occ.pk)) for occ in (taken, skipped, late)
        ]
        assert [e.actor for e in events] == ["patient:wechat", "patient:sms", "patient:voice"]
        assert audit.verify().ok  # one chain, no gaps, every hash right

    def test_an_acknowledged_reminder_is_not_escalated(self, clinic: Clinic) -> None:
        p = dose(clinic)
        clinic.run(SENT_AT)
        occ = first_dose(clinic, p)
        reminder_services.acknowledge_many([Answer(occ.pk, "sms", intake="taken")])
        clinic.run(utc(2026, 3, 2, 3, 0))  # past the two hours after which a voice call follows
        assert occ.attempts.count() == 1

    def test_one_bad_answer_refuses_the_batch_and_changes_nothing(self, clinic: Clinic) -> None:
        first, second = dose(clinic), dose(clinic)
        clinic.run(SENT_AT)
        good, bad = first_dose(clinic, first), first_dose(clinic, second)
        before = AuditEvent.objects.count()
        with pytest.raises(ValidationFailed) as refused:
            reminder_services.acknowledge_many(
                [Answer(good.pk, "sms", intake="taken"), Answer(bad.pk, "sms", intake="skipped")]
            )
        assert "reason" in refused.value.details
        with pytest.raises(ValidationFailed):
            reminder_services.acknowledge_many([Answer(good.pk, "sms", intake="maybe")])
        good.refresh_from_db()
        assert good.status == S.SENT
        assert not rm.IntakeEvent.objects.filter(occurrence_id__in=[good.pk, bad.pk]).exists()
        assert AuditEvent.objects.count() == before

    def test_skipped_doses_in_a_batch_reach_the_adherence_rules(self, clinic: Clinic) -> None:
        """Doses answered in a batch are rule events like doses answered one by one: the same
        patient state for two twins, one answering alone and one in a batch."""
        from careloop.alerts.models import RuleState

        alone, batched = dose(clinic), dose(clinic)
        clinic.run(SENT_AT)
        a, b = first_dose(clinic, alone), first_dose(clinic, batched)
        at = utc(2026, 3, 2, 0, 30)
        reminder_services.acknowledge(a.pk, source="sms", intake="skipped", reason="cost", at=at)
        reminder_services.acknowledge_many([Answer(b.pk, "sms", "skipped", "cost", at)])
        states = dict(
            RuleState.objects.filter(patient_id__in=[alone.pk, batched.pk]).values_list(
                "patient_id", "watermark"
            )
        )
        assert states[alone.pk] == states[batched.pk] != 0


class TestUpdateMany:
    """The prepared per-row UPDATE that batch writes use (kit.rows.update_many)."""

    def test_writes_each_rows_own_values_and_only_where_still_as_expected(
        self, clinic: Clinic
    ) -> None:
        from careloop.kit.rows import update_many

        patients = [dose(clinic) for _ in range(3)]
        clinic.run(SENT_AT)
        a, b, c = (first_dose(clinic, p) for p in patients)
        rm.Occurrence.objects.filter(pk=c.pk).update(status=S.ACKNOWLEDGED)
        later = utc(2026, 3, 2, 5, 0)

        written = update_many(
            rm.Occurrence,
            ("wake_at", "payload", "reason"),
            [
                (a.pk, [later, {"route": {"hour": 9}, "名": "血压"}, "quiet_hours"]),
                (b.pk, [None, {}, ""]),
                (c.pk, [later, {"x": 1}, "changed"]),  # no longer sent: left alone
            ],
            only_where={"status": S.SENT},
        )

        assert written == 2
        a.refresh_from_db()
        b.refresh_from_db()
        c.refresh_from_db()
        assert (a.wake_at, a.payload, a.reason) == (
            later,
            {"route": {"hour": 9}, "名": "血压"},
            "quiet_hours",
        )
        assert (b.wake_at, b.payload, b.reason) == (None, {}, "")
        assert c.status == S.ACKNOWLEDGED and c.reason != "changed" and "x" not in c.payload

    def test_nothing_to_write_is_no_statement(self, clinic: Clinic) -> None:
        from careloop.kit.rows import update_many

        assert update_many(rm.Occurrence, ("reason",), []) == 0
