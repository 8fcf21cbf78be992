"""The risk pages: model card, worklist (scope, filters, export, call task), drift."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from careloop.accounts.models import Staff
from careloop.alerts.models import Task
from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.risk import models as rm
from careloop.risk import services
from tests.risk import generator
from tests.risk.scene import model_for


def client(username: str) -> Client:
    c = Client(HTTP_ACCEPT_LANGUAGE="en")
    c.force_login(Staff.objects.get(username=username))
    return c


@pytest.fixture
def scored(world: Any) -> dict[str, Any]:
    """An active model; two cardiology patients (high, low) and one endocrinology (high)."""
    model = model_for(world.org)
    model.card = {
        **model.card,
        "data": {"test_as_of": "2026-10-01", "examples": {"train": 400, "test": 80}},
        "metrics": {
            "auroc": {
                "model": 0.81,
                "model_ci": [0.74, 0.88],
                "baseline": 0.7,
                "difference": 0.11,
                "difference_ci": [0.04, 0.18],
            },
            "brier": {"model": 0.12, "baseline": 0.2},
        },
        "calibration": [
            {
                "bin": b,
                "low": b / 10,
                "high": (b + 1) / 10,
                "n": 8,
                "predicted": b / 10 + 0.05,
                "observed": b / 10,
            }
            for b in range(10)
        ],
        "subgroups": {
            "age": [{"group": "65–74", "n": 30, "positives": 9, "auroc": 0.8}],
            "sex": [{"group": "female", "n": 40, "positives": 10, "auroc": 0.79}],
        },
        "features": [{"name": "ack_rate_30d", "coef": -2.0, "mean": 0.7, "scale": 0.2}],
    }
    model.save()
    day = services.local_day(world.org, utc_now())
    out: dict[str, Any] = {"model": model}
    for key, dept, value in (
        ("high", world.cardio, 0.91),
        ("low", world.cardio, 0.05),
        ("endo", world.endo, 0.88),
    ):
        p = generator.patient(world.org, dept)
        out[key] = p
        out[f"{key}_score"] = rm.Score.objects.create(
            organisation=world.org,
            patient=p,
            model=model,
            day=day,
            score=value,
            band=services.band_of(value, model.thresholds),
            factors=[{"feature": "ack_rate_30d", "value": 0.1, "weight": 1.8}]
            if value > 0.5
            else [],
        )
    return out


class TestCard:
    def test_shows_the_card_and_versions(self, scored: Any) -> None:
        response = client("nurse.cardiology").get(reverse("risk:card"))
        assert response.status_code == 200
        body = response.content.decode()
        assert 'data-testid="auroc-model">0.81<' in body
        assert "confidence interval: 0.74 to 0.88" in body
        difference = body[body.index('data-testid="auroc-difference"') :].split("</article>")[0]
        assert "+0.1100" in difference and "+0.0400 to +0.1800" in difference
        assert "ranks patients better than the baseline" in difference
        assert "data-risk-chart" in body and "calibration-table" in body
        assert "Acknowledgement" in body or "acknowledged" in body
        assert AuditEvent.objects.filter(action="risk.card", actor="nurse.cardiology").exists()

    def test_version_parameter(self, scored: Any) -> None:
        c = client("head.cardiology")
        assert c.get(reverse("risk:card") + "?version=1").status_code == 200
        bad = c.get(reverse("risk:card") + "?version=one")
        assert bad.status_code == 400
        assert b"whole number" in bad.content
        assert c.get(reverse("risk:card") + "?version=9").status_code == 404

    def test_empty_state_and_roles(self, world: Any) -> None:
        response = client("nurse.cardiology").get(reverse("risk:card"))
        assert b'data-testid="no-model"' in response.content
        assert client("auditor").get(reverse("risk:card")).status_code == 403


class TestWorklist:
    def test_scope_band_and_reasons(self, scored: Any) -> None:
        body = client("nurse.cardiology").get(reverse("risk:worklist")).content.decode()
        assert f'data-patient="{scored["high"].pk}"' in body
        assert f'data-patient="{scored["low"].pk}"' not in body  # low band: not by default
        assert f'data-patient="{scored["endo"].pk}"' not in body  # another department
        assert "acknowledged, last 30 days: 10%" in body
        everyone = client("nurse.cardiology").get(reverse("risk:worklist") + "?band=")
        assert f'data-patient="{scored["low"].pk}"'.encode() in everyone.content
        event = AuditEvent.objects.filter(action="risk.worklist").latest("seq")
        assert scored["high"].pk in event.detail["patients"]
        admin = client("admin").get(reverse("risk:worklist")).content.decode()
        assert f'data-patient="{scored["endo"].pk}"' in admin

    def test_department_filter(self, scored: Any, world: Any) -> None:
        c = client("admin")
        url = reverse("risk:worklist")
        body = c.get(f"{url}?department={world.endo.pk}").content.decode()
        assert f'data-patient="{scored["endo"].pk}"' in body
        assert f'data-patient="{scored["high"].pk}"' not in body
        assert (
            client("nurse.cardiology").get(f"{url}?department={world.endo.pk}").status_code == 400
        )

    def test_bad_band_is_a_clear_400(self, scored: Any) -> None:
        response = client("nurse.cardiology").get(reverse("risk:worklist") + "?band=huge")
        assert response.status_code == 400
        assert b"Choose a band" in response.content

    def test_csv_export(self, scored: Any) -> None:
        response = client("nurse.cardiology").get(reverse("risk:worklist_export") + "?band=high")
        assert response.status_code == 200
        text = response.content.decode("utf-8-sig")
        assert scored["high"].name in text and scored["endo"].name not in text
        assert "0.910" in text
        assert AuditEvent.objects.filter(action="risk.export").exists()


class TestCallTask:
    def test_opens_one_task_and_records_the_action(self, scored: Any) -> None:
        p = scored["high"]
        url = reverse("risk:call_task", args=[p.pk])
        c = client("nurse.cardiology")
        response = c.post(url, {"next": reverse("risk:worklist")})
        assert response.status_code == 302
        task = Task.objects.get(patient=p)
        assert task.kind == Task.Kind.CALL_PATIENT and task.status == Task.Status.OPEN
        action = rm.Action.objects.get(patient=p)
        assert action.kind == "call_task" and action.score == scored["high_score"]
        assert action.detail["task"] == task.pk
        assert AuditEvent.objects.filter(action="risk.action", patient_id=p.pk).count() == 1
        c.post(url)
        assert Task.objects.filter(patient=p).count() == 1
        assert rm.Action.objects.filter(patient=p).count() == 1

    def test_other_department_is_404(self, scored: Any) -> None:
        url = reverse("risk:call_task", args=[scored["endo"].pk])
        assert client("nurse.cardiology").post(url).status_code == 404
        assert not Task.objects.filter(patient=scored["endo"]).exists()

    def test_unscored_patient_is_400(self, scored: Any, world: Any) -> None:
        p = generator.patient(world.org, world.cardio)
        response = client("nurse.cardiology").post(reverse("risk:call_task", args=[p.pk]))
        assert response.status_code == 400
        assert b"no risk score" in response.content

    def test_get_is_not_allowed_and_outside_redirects_are_ignored(self, scored: Any) -> None:
        url = reverse("risk:call_task", args=[scored["high"].pk])
        c = client("nurse.cardiology")
        assert c.get(url).status_code == 405
        response = c.post(url, {"next": "https://evil.example/"})
        assert response["Location"] == reverse("risk:worklist")


class TestDrift:
    def test_history_chart_and_warning(self, scored: Any, world: Any) -> None:
        check = services.drift(world.org.pk)
        body = client("doctor.cardiology").get(reverse("risk:drift")).content.decode()
        assert 'data-risk-chart="drift"' in body
        assert f"{check.psi:.3f}" in body
        assert check.warn == (check.psi >= 0.2)

    def test_empty(self, world: Any) -> None:
        body = client("doctor.cardiology").get(reverse("risk:drift")).content
        assert b'data-testid="drift-empty"' in body
