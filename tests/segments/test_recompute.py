"""Facts from the database, the daily recomputation, strategies applied and undone, history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from careloop.alerts import models as am
from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.channels.models import OutboxMessage
from careloop.engagement import models as em
from careloop.kit.clock import utc_now
from careloop.reminders import models as rm
from careloop.segments import facts as segment_facts
from careloop.segments import models as sm
from careloop.segments import selectors, services
from tests.segments.conftest import Builder

pytestmark = pytest.mark.django_db


def members(build: Builder, code: str) -> set[int]:
    return set(
        sm.Membership.objects.filter(
            organisation_id=build.org_id, segment__code=code, left_at__isnull=True
        ).values_list("patient_id", flat=True)
    )


class TestFacts:
    def test_each_fact_from_the_database(self, build: Builder) -> None:
        p = build.patient()
        build.condition(p, "I10")
        build.condition(p, "E11.9")
        build.bp(p, 162, 98)
        build.pdc(p, 59)
        build.missed(p, 3)
        build.surgical_discharge(p, 20)
        other = build.patient()
        f = segment_facts.facts_for(build.org_id)
        assert f[p.pk]["pdc"] == 0.59
        assert f[p.pk]["last_sbp"] == 162 and f[p.pk]["last_dbp"] == 98
        assert f[p.pk]["missed_doses_7d"] == 3
        assert f[p.pk]["conditions"] == ["E11", "I10"]
        assert f[p.pk]["has_hypertension"] and f[p.pk]["has_diabetes"]
        assert f[p.pk]["days_since_surgical_discharge"] == 20
        assert f[p.pk]["readings_30d"] == 1
        assert f[p.pk]["reminders_sent_30d"] == 3 and f[p.pk]["ack_rate_30d"] == 0.0
        assert f[other.pk]["pdc"] is None and f[other.pk]["last_sbp"] is None
        assert set(segment_facts.facts_for(build.org_id, patient_ids=[other.pk])) == {other.pk}

    def test_pdc_boundary_through_the_database(self, build: Builder) -> None:
        low, high = build.patient(), build.patient()
        build.pdc(low, 59)
        build.pdc(high, 60)
        services.recompute(build.org_id)
        inside = members(build, "high_risk_non_adherent")
        assert low.pk in inside and high.pk not in inside

    def test_a_patient_of_another_organisation_is_not_counted(self, build: Builder) -> None:
        stranger = build.patient("nurse.other")
        assert stranger.pk not in segment_facts.facts_for(build.org_id)


class TestHighRiskStrategy:
    def test_preference_flipped_task_opened_once_and_restored_on_exit(self, build: Builder) -> None:
        p = build.patient()
        build.bp(p, 165, 95, hours_ago=40)
        run = services.recompute(build.org_id)
        assert run.counts["high_risk_non_adherent"] == 1
        assert cm.ReminderPreference.objects.get(patient=p).high_risk is True
        tasks = am.Task.objects.filter(patient=p, kind="call_patient")
        assert tasks.count() == 1
        membership = sm.Membership.objects.get(patient=p, segment__code="high_risk_non_adherent")
        assert membership.applied["previous_high_risk"] is False
        assert membership.applied["task"] == tasks.get().pk
        assert membership.facts["last_sbp"] == 165
        # Recomputed again (forced, same day): still one membership and one task.
        services.recompute(build.org_id, force=True)
        assert tasks.count() == 1
        assert sm.Membership.objects.filter(patient=p).count() == 1
        # A controlled reading: the patient leaves and the preference goes back.
        build.bp(p, 128, 80, hours_ago=2)
        run = services.recompute(build.org_id, force=True)
        membership.refresh_from_db()
        assert membership.left_at is not None
        assert membership.undone["restored"] is False
        assert cm.ReminderPreference.objects.get(patient=p).high_risk is False
        assert run.left == 1
        actions = set(
            AuditEvent.objects.filter(patient_id=p.pk, action__startswith="segment.").values_list(
                "action", flat=True
            )
        )
        assert actions >= {
            "segment.enter",
            "segment.strategy_apply",
            "segment.strategy_undo",
            "segment.leave",
        }

    def test_a_preference_already_high_risk_is_left_high_risk(self, build: Builder) -> None:
        p = build.patient()
        cm.ReminderPreference.objects.create(patient=p, high_risk=True)
        build.bp(p, 170, 100)
        services.recompute(build.org_id)
        build.bp(p, 120, 70, hours_ago=1)
        services.recompute(build.org_id, force=True)
        assert cm.ReminderPreference.objects.get(patient=p).high_risk is True

    def test_entry_by_risk_score_is_recorded(self, build: Builder, monkeypatch: Any) -> None:
        p = build.patient()
        monkeypatch.setattr(segment_facts, "risk_scores", lambda org: {p.pk: 0.81})
        recorded: list[dict[str, Any]] = []

        def record_action(patient_id: int, **kw: Any) -> None:
            recorded.append({"patient_id": patient_id, **kw})

        from careloop.risk import services as risk_services

        monkeypatch.setattr(risk_services, "record_action", record_action, raising=False)
        services.recompute(build.org_id)
        membership = sm.Membership.objects.get(patient=p, segment__code="high_risk_non_adherent")
        assert membership.facts["entered_by_risk_score"] is True
        assert recorded and recorded[0]["patient_id"] == p.pk
        assert recorded[0]["kind"] == "segment_entry"


class TestAddOnPlans:
    def test_chronic_stable_enrols_in_the_review_plan_and_leaving_ends_it(
        self, build: Builder
    ) -> None:
        p = build.patient()
        build.condition(p, "I10")
        build.bp(p, 128, 78)
        build.pdc(p, 95)
        services.recompute(build.org_id)
        assert p.pk in members(build, "chronic_stable")
        enrolment = cm.Enrolment.objects.get(patient=p, template__code="segment-chronic-review")
        assert enrolment.status == "active"
        codes = set(
            rm.Occurrence.objects.filter(enrolment=enrolment).values_list(
                "activity_code", flat=True
            )
        )
        assert codes == {"symptom-questionnaire", "symptom-diary"}
        membership = sm.Membership.objects.get(patient=p, segment__code="chronic_stable")
        assert membership.applied["enrolment"] == enrolment.pk
        assert membership.applied["created"] is True
        # Uncontrolled: leaves chronic_stable (and enters high risk); the add-on plan ends.
        build.bp(p, 168, 96, hours_ago=1)
        services.recompute(build.org_id, force=True)
        enrolment.refresh_from_db()
        assert enrolment.status == "ended"
        assert not rm.Occurrence.objects.filter(enrolment=enrolment, status="scheduled").exists()
        assert p.pk in members(build, "high_risk_non_adherent")

    def test_post_operative_add_on_has_the_education_activities(self, build: Builder) -> None:
        p = build.patient()
        build.surgical_discharge(p, 10)
        services.recompute(build.org_id)
        enrolment = cm.Enrolment.objects.get(patient=p, template__code="segment-post-operative")
        kinds = set(
            cm.PlanActivity.objects.filter(template=enrolment.template).values_list(
                "kind", flat=True
            )
        )
        assert kinds == {"education"}
        assert rm.Occurrence.objects.filter(enrolment=enrolment, kind="education").exists()


class TestEngagement:
    def test_points_once_per_entry_and_an_invitation_to_the_next_session(
        self, build: Builder
    ) -> None:
        expert = build.world.staff["doctor.cardiology"]
        community = em.Community.objects.create(organisation=build.world.org, name="高血压之家")
        session = em.ExpertSession.objects.create(
            organisation=build.world.org,
            community=community,
            expert=expert,
            topic="高血压用药",
            starts_at=utc_now() + timedelta(days=3),
            ends_at=utc_now() + timedelta(days=3, hours=1),
        )
        p = build.patient()
        build.acknowledged(p, 10, of=10)
        from careloop.questionnaires import models as qm

        questionnaire = qm.Questionnaire.objects.filter(status="active").first()
        assert questionnaire is not None
        qm.Response.objects.create(
            organisation_id=build.org_id,
            patient=p,
            questionnaire=questionnaire,
            status="completed",
            completed_at=utc_now() - timedelta(days=1),
        )
        services.recompute(build.org_id)
        assert p.pk in members(build, "highly_engaged")
        entries = em.PointEntry.objects.filter(patient=p, kind="segment_bonus")
        assert list(entries.values_list("points", flat=True)) == [50]
        invitation = OutboxMessage.objects.get(patient=p)
        assert "高血压用药" in invitation.body
        membership = sm.Membership.objects.get(patient=p, segment__code="highly_engaged")
        assert membership.applied["invitation"]["session"] == session.pk
        services.recompute(build.org_id, force=True)
        assert entries.count() == 1 and OutboxMessage.objects.filter(patient=p).count() == 1


class TestRuns:
    def test_once_per_day_unless_forced(self, build: Builder) -> None:
        p = build.patient()
        build.bp(p, 170, 90)
        first = services.recompute(build.org_id)
        assert first.entered == 1 and first.finished_at is not None
        second = services.recompute(build.org_id)
        assert second.pk == first.pk and second.entered == 1
        assert sm.Run.objects.filter(organisation_id=build.org_id).count() == 1
        services.run_due()  # today is done for the organisation: left as it was
        again = sm.Run.objects.get(organisation_id=build.org_id)
        assert again.started_at == first.started_at and again.entered == 1
        assert services.run_due() == 0  # and now for every organisation

    def test_the_periodic_job_runs_organisations_whose_day_has_no_run(self, build: Builder) -> None:
        p = build.patient()
        build.bp(p, 170, 90)
        assert services.run_due() >= 1
        assert p.pk in members(build, "high_risk_non_adherent")

    def test_history_is_kept_across_stays(self, build: Builder) -> None:
        p = build.patient()
        build.bp(p, 170, 90, hours_ago=50)
        services.recompute(build.org_id)
        build.bp(p, 120, 80, hours_ago=40)
        services.recompute(build.org_id, force=True)
        build.bp(p, 175, 95, hours_ago=30)
        services.recompute(build.org_id, force=True)
        history = selectors.history_for(p)
        assert [h["code"] for h in history] == ["high_risk_non_adherent"] * 2
        assert history[0]["left_at"] is None and history[1]["left_at"] is not None
        now = selectors.for_patient(p)
        assert [s["code"] for s in now] == ["high_risk_non_adherent"]
        assert now[0]["since"] == history[0]["entered_at"]
        assert now[0]["strategy"]
        assert selectors.history_for(p, limit=1)[0] == history[0]

    def test_a_deactivated_segment_lets_its_members_go(self, build: Builder) -> None:
        p = build.patient()
        build.bp(p, 170, 90)
        services.recompute(build.org_id)
        segment = sm.Segment.objects.get(organisation__isnull=True, code="high_risk_non_adherent")
        copy = services.deactivate(build.world.actor("admin"), segment.pk)
        assert copy.organisation_id == build.org_id and not copy.active
        assert p.pk not in members(build, "high_risk_non_adherent")
        assert cm.ReminderPreference.objects.get(patient=p).high_risk is False
        services.recompute(build.org_id, force=True)
        assert p.pk not in members(build, "high_risk_non_adherent")
        # Another organisation still uses the shared default.
        other = services.segments_for(build.world.other_org.pk)
        assert other.filter(code="high_risk_non_adherent", organisation__isnull=True).exists()


class TestAnalyticsFilter:
    def test_the_analytics_segment_filter_counts_current_members(self, build: Builder) -> None:
        from careloop.analytics import registry

        inside, outside = build.patient(), build.patient()
        build.bp(inside, 170, 90)
        services.recompute(build.org_id)
        assert "default" in registry.SEGMENT_FILTERS
        cohort = registry.Cohort(organisation_id=build.org_id, segment="high_risk_non_adherent")
        assert set(cohort.patients().values_list("pk", flat=True)) == {inside.pk}
        assert outside.pk not in set(cohort.patients().values_list("pk", flat=True))
        assert not registry.Cohort(
            organisation_id=build.org_id, segment="chronic_stable"
        ).patients()
