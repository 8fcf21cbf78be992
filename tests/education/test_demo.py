"""The demo library: bilingual, published, safe to run twice, and pushable."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.education import demo, rendering, services
from careloop.education import models as em
from tests.education import helpers as h

pytestmark = pytest.mark.django_db


def test_demo_library_is_bilingual_and_idempotent(world: Any) -> None:
    made = demo.build(world.org, seed=3)
    assert len(made) >= 12
    assert {i.language for i in made} == {"zh-hans", "en"}
    assert demo.build(world.org, seed=3) and em.ContentItem.objects.count() == len(made)
    videos = [i for i in made if i.kind == "video"]
    assert videos and all(v.video_url.startswith("https://") for v in videos)
    for i in made:
        assert i.status == "published" and rendering.render(i.body)
    assert {p for i in made for p in i.icd10_prefixes} >= {"I10", "E11", "Z48"}


def test_demo_items_reach_a_matching_patient(world: Any) -> None:
    demo.build(world.org)
    p = h.patient(world, "en")
    h.condition(world, p, "E11.9", "Type 2 diabetes")
    h.consent(world, p)
    h.enrol(world, p, days_ago=2)
    assert services.push() == 1
    assert em.Delivery.objects.get(patient=p).item.title == "Checking your blood sugar at home"
