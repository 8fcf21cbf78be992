"""careloop simulate: reproducible, kept out of the configured database, traits that show."""

from __future__ import annotations

import importlib.util
import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from careloop.accounts.models import Organisation
from careloop.reminders import models as rm
from careloop.simulator import engine, population

START = "2026-03-02"


def missing_parts() -> list[str]:
    """Learning parts whose service module is not in this checkout: the runs leave them out."""
    return [
        app
        for app in engine.OPTIONAL
        if importlib.util.find_spec(f"careloop.{app}.services") is None
    ]


def _without(*extra: str) -> list[str]:
    return sorted({*missing_parts(), *extra})


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The summary minus what measures the machine rather than the simulation."""
    skip = {"runtime_seconds", "setup_seconds", "seconds_by_step", "database"}
    return {k: v for k, v in result.items() if k not in skip}


def _patient(**traits: Any) -> population.SimPatient:
    base = population.draw(random.Random(1), 0, 90)
    for key, value in traits.items():
        setattr(base.traits, key, value)
    return base


# --- hidden traits, without a database --------------------------------------------------------


def test_a_patient_answers_best_at_their_peak_hour() -> None:
    p = _patient(peak_hour=19, width=1.5, engagement=0.9, drift_day=None)
    at_peak = p.answer_probability(19, "wechat", day=5)
    for hour in (8, 12, 15):
        assert p.answer_probability(hour, "wechat", day=5) < at_peak * 0.75
    # The simulated patient's answers follow the probability.
    rng = random.Random(3)
    answered = {h: sum(rng.random() < p.answer_probability(h, "wechat", 5) for _ in range(2000))
                for h in (8, 19)}  # fmt: skip
    assert answered[19] > answered[8] * 1.4


def test_drift_slows_and_silences_a_patient() -> None:
    p = _patient(drift_day=20, engagement=0.9, latency_minutes=20)
    rng = random.Random(5)
    assert p.decline(10) == 0 and p.decline(41) == 1
    assert p.answer_probability(10, "sms", 45) < p.answer_probability(10, "sms", 10) / 5
    before = statistics.median(p.latency(rng, 10) for _ in range(500))
    after = statistics.median(p.latency(rng, 45) for _ in range(500))
    assert after > 3 * before


def test_a_call_lifts_the_next_days() -> None:
    p = _patient(escalation_lift=0.2, drift_day=None)
    plain = p.answer_probability(9, "sms", 10)
    p.lift(10)
    assert p.answer_probability(9, "sms", 11) == pytest.approx(min(0.97, plain + 0.2))
    assert p.answer_probability(9, "sms", 13) == pytest.approx(plain)


def test_blood_pressure_responds_to_adherence() -> None:
    rng = random.Random(9)
    steady = _patient(baseline_sbp=160, drug_effect=20)
    lapsed = _patient(baseline_sbp=160, drug_effect=20)
    steady.exposure = lapsed.exposure = 0.5
    for day in range(40):
        steady.record_dose(day, True)
        lapsed.record_dose(day, False)
    sbp_steady = statistics.fmean(steady.blood_pressure(rng)[0] for _ in range(200))
    sbp_lapsed = statistics.fmean(lapsed.blood_pressure(rng)[0] for _ in range(200))
    assert sbp_lapsed - sbp_steady > 15
    clinic = statistics.fmean(steady.blood_pressure(rng, clinic=True)[0] for _ in range(200))
    assert clinic > sbp_steady + 4  # white coat


# --- whole runs ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_into_the_current_database_goes_through_the_real_services(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    call_command(
        "simulate",
        patients=30,
        days=14,
        seed=11,
        start=START,
        into_current=True,
        json_path=str(out),
        without=_without("risk"),
        quiet=True,
    )
    result = json.loads(out.read_text())
    org = Organisation.objects.get(code="sim-11")
    assert result["organisation"] == "sim-11" and result["patients"] == 30
    # Reminders went out through the simulation providers and patients answered some of them.
    sent = rm.Attempt.objects.filter(organisation=org, outcome__in=["accepted", "delivered"])
    assert sent.filter(channel="wechat").exists() and sent.filter(channel="voice").exists()
    assert result["reminders"]["reminders_sent"] >= 30 * 14
    assert 0.3 < result["reminders"]["ack_rate"] < 0.95
    assert rm.IntakeEvent.objects.filter(organisation=org, status="skipped").exists()
    assert result["visits"]["booked"] > 0
    assert result["alerts"]["total"] >= 0 and len(result["per_day"]) == 14
    # The hidden hour preference shows in what the product recorded.
    bands = result["signals"]["first_message_answered_by_hours_from_peak"]
    assert bands["0-1h"] > bands["5h+"] + 0.1
    # Once over, nothing more is sent for the simulated organisation, and the simulation
    # providers are gone.
    assert rm.ReminderSettings.objects.get(organisation=org).dispatch_paused
    from careloop.channels import registry

    with pytest.raises(Exception, match="unknown channel provider"):
        registry.get_adapter("sms", "simulation_sms", {})


@pytest.mark.django_db
def test_too_short_a_run_says_in_english_why_there_is_no_risk_model(tmp_path: Path) -> None:
    """The summary is English whatever the site language; a run too short to label any risk
    example says so rather than failing."""
    out = tmp_path / "summary.json"
    with translation.override("zh-hans"):
        call_command(
            "simulate",
            patients=8,
            days=2,
            seed=12,
            start=START,
            into_current=True,
            json_path=str(out),
            without=_without("experiments", "segments", "sendtime"),
            quiet=True,
        )
    result = json.loads(out.read_text())
    assert result["risk"]["error"].startswith("Too little data to train")


@pytest.mark.django_db
def test_the_same_organisation_twice_is_refused() -> None:
    kwargs = {"patients": 2, "days": 1, "seed": 12, "start": START, "into_current": True,
              "without": list(engine.OPTIONAL), "quiet": True}  # fmt: skip
    call_command("simulate", **kwargs)
    with pytest.raises(CommandError, match="exists already"):
        call_command("simulate", **kwargs)


@pytest.mark.django_db
def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--start"):
        call_command("simulate", start="2026-13-01", quiet=True)
    with pytest.raises(CommandError, match="at least 1"):
        call_command("simulate", patients=0, quiet=True)
    with pytest.raises(CommandError, match="sqlite3"):
        call_command("simulate", db=str(tmp_path / "x.txt"), quiet=True)


@pytest.mark.django_db
def test_default_runs_are_reproducible_and_touch_nothing_configured(tmp_path: Path) -> None:
    before = Organisation.objects.count()
    results = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        call_command(
            "simulate",
            patients=20,
            days=7,
            seed=21,
            start=START,
            db=str(tmp_path / f"{name}.sqlite3"),
            json_path=str(out),
            without=_without("risk"),
            quiet=True,
        )
        results.append(json.loads(out.read_text()))
        assert (tmp_path / f"{name}.sqlite3").exists()
    assert _comparable(results[0]) == _comparable(results[1])
    assert results[0]["reminders"]["reminders_sent"] > 0
    # Nothing reached the configured database.
    assert Organisation.objects.count() == before
    assert not Organisation.objects.filter(code="sim-21").exists()
