"""Fixtures of the messaging tests: a patient of cardiology with a care team, signed in."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.patients import models as pm
from tests.observations.support import care_team, join
from tests.portal.client import portal_client


@pytest.fixture
def patient(world: Any, make_patient: Any) -> pm.Patient:
    p = make_patient(name="李梅", preferred_language="en")
    team = care_team(world, world.cardio)
    join(p, team)
    return p


@pytest.fixture
def portal(patient: pm.Patient) -> Client:
    return portal_client(patient)
