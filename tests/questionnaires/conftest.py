"""Fixtures of the questionnaire tests: the shipped library, a patient, assignments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from careloop.kit.clock import utc_now
from careloop.questionnaires import models as qm
from careloop.questionnaires import services

SHIPPED = "https://careloop.dev/fhir/Questionnaire/"


def shipped(name: str) -> qm.Questionnaire:
    return qm.Questionnaire.objects.get(organisation__isnull=True, url=SHIPPED + name)


@pytest.fixture
def library(db: Any) -> dict[str, qm.Questionnaire]:
    services.load_shipped()
    return {
        name: shipped(name)
        for name in ("phq-9", "gad-7", "postop-symptoms", "previsit", "satisfaction")
    }


@pytest.fixture
def patient(make_patient: Any) -> Any:
    return make_patient()


@pytest.fixture
def send(world: Any, library: Any, patient: Any) -> Any:
    """send("phq-9") → an open assignment of the patient, sent by the cardiology nurse."""

    def make(name: str, who: Any = None, **kw: Any) -> qm.Assignment:
        return services.assign(
            world.actor("nurse.cardiology"),
            patient_id=(who or patient).pk,
            questionnaire_id=library[name].pk,
            due_at=kw.pop("due_at", utc_now() + timedelta(days=2)),
            **kw,
        )

    return make
