"""`careloop rules list|check|recompute|sweep`: recompute over stored history gives exactly the
alerts streaming gave."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.alerts import models as am
from careloop.alerts import sweeps
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.observations import services as observation_services
from careloop.rules import DEFAULT_RULES
from tests.alerts.support import Clock, bp, device, glucose, in_team
from tests.test_cli import careloop

DAYS = 30


@pytest.fixture
def clock() -> Iterator[Clock]:
    c = Clock()
    yield c
    c.restore()


def rules(*args: str) -> str:
    out = io.StringIO()
    call_command("rules", *args, stdout=out)
    return out.getvalue()


def item(patient: Any, code: str, value: float, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "patient": patient.pk,
        "code": code,
        "value": value,
        "effective": at.isoformat(),
        **extra,
    }


def history(patients: dict[str, Any], start: datetime) -> list[list[dict[str, Any]]]:
    """30 days of home readings, one list per day: mostly controlled, with a hypertensive
    crisis, an uncontrolled hypertensive, three high nights of heart rate, a diabetic with lows
    and highs, a rising systolic trend, and a weight gain."""
    rnd = random.Random(4)  # noqa: S311 - test data
    days: list[list[dict[str, Any]]] = []
    for day in range(DAYS):
        morning = start + timedelta(days=day, hours=7, minutes=rnd.randint(0, 40))
        evening = morning + timedelta(hours=12)
        night = start + timedelta(days=day, hours=23, minutes=rnd.randint(0, 50))
        today: list[dict[str, Any]] = []
        for name, p in patients.items():
            sys, dia = 124 + rnd.randint(-6, 6), 78 + rnd.randint(-5, 5)
            if name == "crisis" and day in (9, 21):
                sys, dia = 188, 114
            if name == "uncontrolled" and day >= 12:
                sys, dia = 152 + rnd.randint(0, 8), 94 + rnd.randint(0, 4)
            if name == "rising":
                sys += day  # about 7 mmHg a week
            today += [bp(p, sys, dia, morning), bp(p, sys - 4, dia - 2, evening)]
            rate = 112 if name == "nights" and 14 <= day <= 16 else 64 + rnd.randint(-4, 6)
            today.append(item(p, "heart_rate", rate, night, unit="/min"))
            if name == "diabetic":
                mmol = 6.2 + rnd.random()
                if day == 5:
                    mmol = 3.2
                if day in (18, 19):
                    mmol = 17.5
                today.append(glucose(p, round(mmol, 1), morning))
            weight = 70.0 + (0.6 * max(0, day - 24) if name == "weight" else rnd.random() / 5)
            today.append(item(p, "weight", round(weight, 1), morning, unit="kg"))
        days.append(today)
    return days


@pytest.fixture
def streamed(world: Any, clinic: Any, clock: Clock, make_patient: Any) -> dict[str, Any]:
    """Six patients' 30 days, sent day by day through the ingest service (small chunks), plus
    a reading a device uploaded late, out of order."""
    names = ("crisis", "uncontrolled", "nights", "diabetic", "rising", "weight")
    patients = {name: in_team(world, make_patient(name=f"病人{name}")) for name in names}
    template = cm.PlanTemplate.objects.get(code="hypertension", organisation__isnull=True)
    start = clock.now - timedelta(days=DAYS + 1, hours=8)  # 00:00 in Shanghai
    plan_services.enrol(
        world.actor("nurse.cardiology"), patients["crisis"].pk, template.pk, now=start
    )
    for today in history(patients, start):
        observation_services.ingest(
            None, today, organisation_id=world.org.pk, source="device", chunk_size=7
        )
    late = start + timedelta(days=20, hours=13)
    device(world, bp(patients["uncontrolled"], 146, 92, late))
    return patients


class TestRecompute:
    def test_recompute_over_history_equals_streaming(self, world: Any, streamed: Any) -> None:
        raised = set(am.Alert.objects.values_list("rule", flat=True))
        # The history exercises the rule kinds, not only one.
        assert {"bp-crisis", "hr-night-high-3", "glucose-low", "glucose-very-high"} <= raised
        assert {"ph-bp-followup", "bp-trend-up"} & raised

        out = rules("recompute", "--organisation", "test")
        assert "identical true" in out
        assert "missing 0, extra 0" in out
        report = json.loads(rules("recompute", "--organisation", "test", "--json"))["test"]
        assert report["identical"] is True
        assert report["patients"] == 6
        assert report["fires"] == report["stored"] == am.AlertFire.objects.count()

    def test_a_difference_exits_non_zero_until_applied(self, world: Any, streamed: Any) -> None:
        lost = am.AlertFire.objects.order_by("id").first()
        assert lost is not None
        key = lost.key
        lost.delete()
        with pytest.raises(CommandError) as failure:
            rules("recompute", "--organisation", "test")
        assert failure.value.returncode == 1
        out = io.StringIO()
        call_command("rules", "recompute", "--apply", stdout=out)
        assert f"missing {key}  (raised now)" in out.getvalue()
        assert "identical true" in rules("recompute", "--organisation", "test")

    def test_an_unknown_organisation(self, world: Any) -> None:
        with pytest.raises(CommandError, match="no organisation"):
            rules("recompute", "--organisation", "nope")


class TestListCheckSweep:
    def test_list_shows_the_file_rules_and_an_organisations_own(self, world: Any) -> None:
        out = rules("list")
        assert "bp-crisis" in out and "glucose-absent-3d" in out
        am.RuleDefinition.objects.create(
            organisation=world.org,
            code="bp-crisis",
            enabled=False,
            definition={
                "kind": "threshold",
                "event": "bp",
                "condition": "value >= sys",
                "params": {"sys": 170},
                "severity": "critical",
                "priority": "urgent",
                "route": "doctor",
                "sla": "15m",
                "text": {"en": "BP {value}"},
            },
        )
        rows = {r["code"]: r for r in json.loads(rules("list", "--organisation", "test", "--json"))}
        assert (rows["bp-crisis"]["enabled"], rows["bp-crisis"]["source"]) == (False, "admin")
        assert rows["spo2-low"]["source"] == "file"

    def test_check_a_good_file(self, tmp_path: Path) -> None:
        assert "all valid" in rules("check", str(DEFAULT_RULES))

    def test_check_names_the_rule_and_field(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.toml"
        bad.write_text(
            DEFAULT_RULES.read_text(encoding="utf-8").replace('sla = "15m"', 'sla = "soon"', 1),
            encoding="utf-8",
        )
        with pytest.raises(CommandError, match=r"rule 'bp-crisis', field 'sla'"):
            rules("check", str(bad))

    def test_sweep(self, world: Any, clock: Clock) -> None:
        out = rules("sweep")
        assert "absence alerts raised: 0" in out and "alerts escalated: 0" in out
        assert sweeps.absence() == 0


class TestConsoleScript:
    def test_a_bad_rule_file_fails_the_command(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.toml"
        bad.write_text('[[rules]]\ncode = "x"\nkind = "threshold"\n', encoding="utf-8")
        result = careloop(tmp_path, "rules", "check", str(bad), check=False)
        assert result.returncode == 1
        assert "rule 'x'" in result.stderr
        good = careloop(tmp_path, "rules", "check", str(DEFAULT_RULES))
        assert "all valid" in good.stdout
