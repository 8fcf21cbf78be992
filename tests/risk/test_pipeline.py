"""Training, the model card, scoring with bands and reasons, drift and the daily job."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from careloop.audit.models import AuditEvent
from careloop.risk import features, learning, selectors, services
from careloop.risk import models as rm
from tests.risk import generator


@pytest.fixture
def trained(history: Any) -> rm.Model:
    return services.train(history.organisation.pk, as_of=history.end, seed=3)


class TestTraining:
    def test_same_seed_same_model_and_only_the_newest_is_active(
        self, history: Any, trained: rm.Model
    ) -> None:
        again = services.train(history.organisation.pk, as_of=history.end, seed=3)
        assert again.params["coef"] == trained.params["coef"]
        assert again.params["intercept"] == trained.params["intercept"]
        assert again.card["metrics"] == trained.card["metrics"]
        assert (trained.version, again.version) == (1, 2)
        trained.refresh_from_db()
        assert not trained.active and again.active
        assert services.active_model(history.organisation.pk) == again

    def test_the_model_beats_chance_and_the_card_is_complete(self, trained: rm.Model) -> None:
        card = trained.card
        auroc = card["metrics"]["auroc"]
        assert auroc["model"] > 0.75
        lo, hi = auroc["model_ci"]
        assert lo <= auroc["model"] <= hi
        assert auroc["baseline"] is not None and auroc["baseline_ci"] is not None
        assert auroc["difference"] == pytest.approx(auroc["model"] - auroc["baseline"], abs=2e-4)
        d_lo, d_hi = auroc["difference_ci"]
        assert d_lo <= auroc["difference"] <= d_hi
        assert 0 <= card["metrics"]["brier"]["model"] < 0.25
        data = card["data"]
        assert data["examples"]["train"] >= 300 and data["examples"]["test"] == 60
        assert data["patients"] == 60
        assert len(card["calibration"]) == 10
        assert sum(r["n"] for r in card["calibration"]) == data["examples"]["test"]
        assert sum(r["n"] for r in card["subgroups"]["age"]) == data["examples"]["test"]
        assert sum(r["n"] for r in card["subgroups"]["sex"]) == data["examples"]["test"]
        assert [f["name"] for f in card["features"]] == features.NAMES
        assert card["thresholds"]["medium"] < card["thresholds"]["high"]
        assert "observational" in card["limitations"]
        # Declining acknowledgement raises the risk.
        coef = dict(zip(trained.params["names"], trained.params["coef"], strict=True))
        assert coef["ack_rate_7d"] < 0

    def test_the_model_is_plain_json_and_scores_the_same_after_reading_back(
        self, history: Any, trained: rm.Model
    ) -> None:
        stored = rm.Model.objects.get(pk=trained.pk)
        params = json.loads(json.dumps(stored.params))
        found = features.matrix(history.organisation.pk, history.end)
        np.testing.assert_allclose(
            learning.predict(params, found.X), learning.predict(trained.params, found.X)
        )
        assert set(params) >= {"names", "means", "scales", "coef", "intercept"}

    def test_too_little_data_is_refused_clearly(self, world: Any) -> None:
        p = generator.patient(world.org, world.cardio)
        start = generator.midnight(generator.utc_now()) - timedelta(days=80)
        for k in range(80):
            generator.reminder(p, start + timedelta(days=k), ack_after_hours=1.0)
        with translation.override("en"), pytest.raises(services.RiskError, match="Too little data"):
            services.train(world.org.pk)

    def test_one_outcome_only_is_refused(self, world: Any) -> None:
        start = generator.midnight(generator.utc_now()) - timedelta(days=100)
        for _i in range(12):
            p = generator.patient(world.org, world.cardio)
            for k in range(100):
                generator.reminder(p, start + timedelta(days=k), ack_after_hours=1.0)
        with pytest.raises(services.RiskError, match="same outcome"):
            services.train(world.org.pk)


class TestDifferenceInterval:
    def test_a_better_score_is_shown_better_and_a_copy_is_no_better(self) -> None:
        rng = np.random.default_rng(1)
        y = rng.integers(0, 2, 300)
        good = y + rng.normal(0, 0.5, 300)  # ranks the outcome well
        noise = rng.normal(0, 1, 300)  # ranks it by chance
        lo, hi = learning.difference_interval(y, good, noise, seed=3)
        assert 0 < lo < hi
        assert learning.difference_interval(y, noise, good, seed=3)[1] < 0
        assert learning.difference_interval(y, good, good.copy(), seed=3) == (0.0, 0.0)

    def test_one_class_only_has_no_interval(self) -> None:
        y = np.zeros(40, dtype=int)
        assert learning.difference_interval(y, np.arange(40.0), np.ones(40)) is None


class TestScoring:
    def test_scores_bands_and_reasons(self, history: Any, trained: rm.Model) -> None:
        org = history.organisation.pk
        assert services.score(org, history.end) == 60
        scores = list(rm.Score.objects.filter(organisation_id=org))
        assert len(scores) == 60
        thresholds = trained.thresholds
        for s in scores:
            assert 0 <= s.score <= 1
            assert s.band == services.band_of(s.score, thresholds)
            assert len(s.factors) <= 3
            assert all(f["weight"] > 0 for f in s.factors)
            assert [f["weight"] for f in s.factors] == sorted(
                (f["weight"] for f in s.factors), reverse=True
            )
        # Decliners who fell silent score higher than steady patients.
        by_patient = {s.patient_id: s.score for s in scores}
        fallen = [
            by_patient[p]
            for p, kind in history.kinds.items()
            if kind == "decliner" and history.decline_day[p] < 90
        ]
        steady = [by_patient[p] for p, kind in history.kinds.items() if kind == "steady"]
        assert np.mean(fallen) > np.mean(steady) + 0.3
        assert rm.Score.objects.filter(band="high").exists()

    def test_one_row_per_patient_per_day_history_kept(
        self, history: Any, trained: rm.Model
    ) -> None:
        org = history.organisation.pk
        services.score(org, history.end)
        services.score(org, history.end + timedelta(hours=1))
        assert rm.Score.objects.count() == 60
        services.score(org, history.end + timedelta(days=1))
        assert rm.Score.objects.count() == 120
        latest = selectors.latest_scores(org)
        assert len(latest) == 60
        day = rm.Score.objects.order_by("-day").first().day  # type: ignore[union-attr]
        assert all(
            rm.Score.objects.get(patient_id=p, day=day).score == v for p, v in latest.items()
        )

    def test_no_model_no_scores(self, world: Any) -> None:
        with pytest.raises(services.RiskError):
            services.score(world.org.pk)
        assert selectors.latest_scores(world.org.pk) == {}

    def test_for_patient(self, history: Any, trained: rm.Model) -> None:
        p = history.patients[0]
        assert selectors.for_patient(p) is None
        services.score(history.organisation.pk, history.end)
        services.record_action(p.pk, kind="outreach", detail={"channel": "sms"})
        got = selectors.for_patient(p)
        assert got is not None
        assert got["model_version"] == trained.version
        assert got["band"] in ("low", "medium", "high")
        assert all({"label", "value", "weight"} <= set(f) for f in got["factors"])
        assert got["actions"][0]["kind"] == "outreach"


class TestDrift:
    def test_psi_small_on_the_same_population_large_when_it_shifts(
        self, history: Any, trained: rm.Model
    ) -> None:
        org = history.organisation.pk
        services.score(org, history.end)
        check = services.drift(org)
        assert check.scored == 60 and check.psi >= 0
        rm.Score.objects.filter(organisation_id=org).update(score=0.99)
        shifted = services.drift(org)
        assert shifted.pk == check.pk  # one check per model and day
        assert shifted.psi > services.PSI_WARN and shifted.warn
        assert learning.psi(trained.card["score_distribution"], np.array([0.99] * 10))[0] > 1

    def test_psi_of_the_training_distribution_itself_is_zero(self) -> None:
        scores = np.linspace(0.01, 0.99, 200)
        expected = learning.distribution(scores)
        assert learning.psi(expected, scores)[0] == pytest.approx(0.0, abs=1e-9)


class TestDailyJob:
    def test_scores_once_per_local_day_then_checks_drift(
        self, history: Any, trained: rm.Model
    ) -> None:
        org = history.organisation.pk
        assert services.run_daily(history.end) == [org]
        assert services.run_daily(history.end + timedelta(minutes=30)) == []
        assert rm.DriftCheck.objects.filter(organisation_id=org).count() == 1
        assert services.run_daily(history.end + timedelta(days=1)) == [org]
        assert rm.DriftCheck.objects.filter(organisation_id=org).count() == 2

    def test_the_job_is_registered(self) -> None:
        from careloop.kit import periodic

        assert "risk.daily_scores" in {job.name for job in periodic.jobs()}


class TestActions:
    def test_record_action_is_audited_with_the_latest_score(
        self, history: Any, trained: rm.Model
    ) -> None:
        services.score(history.organisation.pk, history.end)
        p = history.patients[0]
        actor = history_actor(history)
        action = services.record_action(
            p.pk, kind="segment_entry", detail={"segment": "high_risk_non_adherent"}, actor=actor
        )
        assert action.score == rm.Score.objects.get(patient=p)
        event = AuditEvent.objects.filter(action="risk.action").latest("seq")
        assert event.patient_id == p.pk
        assert event.detail["segment"] == "high_risk_non_adherent"
        assert event.actor_id == actor.user.pk
        system = services.record_action(p.pk, kind="outreach", detail="voice call placed")
        assert system.detail == {"text": "voice call placed"}
        assert AuditEvent.objects.filter(action="risk.action").count() == 2
        with pytest.raises(ValueError):
            services.record_action(p.pk, kind="Not a kind!", detail={})


def history_actor(history: Any) -> Any:
    from careloop.accounts.actor import Actor
    from careloop.accounts.models import Staff

    return Actor(user=Staff.objects.get(username="nurse.cardiology"))


class TestCommand:
    def test_train_score_card_drift(self, history: Any) -> None:
        def run(*args: str) -> dict[str, Any]:
            out = StringIO()
            call_command("risk", *args, "--organisation", "test", stdout=out)
            return json.loads(out.getvalue())  # type: ignore[no-any-return]

        trained = run("train", "--seed", "1", "--as-of", history.end.date().isoformat())
        assert trained["version"] == 1 and trained["auroc"]["model"] > 0.7
        assert run("score")["scored"] == 60
        assert run("card")["data"]["examples"] == trained["data"]["examples"]
        assert run("drift")["scored"] == 60

    def test_errors_are_plain(self, world: Any) -> None:
        with pytest.raises(CommandError, match="several organisations"):
            call_command("risk", "card")
        with pytest.raises(CommandError, match="no risk model"):
            call_command("risk", "card", "--organisation", "test")
        with pytest.raises(CommandError, match="Too little data"):
            call_command("risk", "train", "--organisation", "test")


class TestPagesOnATrainedModel:
    def test_card_and_worklist_show_the_trained_model(
        self, history: Any, trained: rm.Model
    ) -> None:
        from django.test import Client
        from django.urls import reverse

        from careloop.accounts.models import Staff

        services.score(history.organisation.pk)
        c = Client(HTTP_ACCEPT_LANGUAGE="en")
        c.force_login(Staff.objects.get(username="head.cardiology"))
        body = c.get(reverse("risk:card")).content.decode()
        assert f'data-testid="auroc-model">{trained.card["metrics"]["auroc"]["model"]}<' in body
        assert "Age 45–64" in body
        rows = c.get(reverse("risk:worklist") + "?band=high&size=200").content.decode()
        assert rows.count('data-testid="risk-row"') == rm.Score.objects.filter(band="high").count()
        assert 'data-testid="risk-reasons"' in rows
