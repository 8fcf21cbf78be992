"""careloop segments load|recompute|list."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from careloop.careplans import models as cm
from careloop.segments import models as sm
from tests.segments.conftest import Builder

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("segments", *args, stdout=out)
    return out.getvalue()


def test_load_is_idempotent_and_loads_the_add_on_plans(db: Any) -> None:
    sm.Segment.objects.all().delete()
    first = run("load")
    assert "segment chronic_stable" in first and "created" in first
    assert "plan    segment-chronic-review" in first
    assert cm.PlanTemplate.objects.filter(code="segment-post-operative").exists()
    again = run("load")
    assert "created" not in again and "updated" not in again
    assert sm.Segment.objects.filter(organisation__isnull=True).count() == 4


def test_recompute_and_list(build: Builder) -> None:
    p = build.patient()
    build.bp(p, 170, 90)
    rows = json.loads(run("recompute", "--organisation", "test", "--json"))
    assert rows[0]["entered"] == 1 and rows[0]["counts"]["high_risk_non_adherent"] == 1
    again = json.loads(run("recompute", "--organisation", "test", "--json"))
    assert again[0]["entered"] == 1  # same day: not run again
    listed = json.loads(run("list", "--organisation", "test", "--json"))
    high = next(r for r in listed if r["code"] == "high_risk_non_adherent")
    assert high["members"] == 1 and high["shared"] is True
    with pytest.raises(CommandError):
        run("recompute", "--organisation", "nowhere")
