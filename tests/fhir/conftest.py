"""A cardiology and an endocrinology patient, and FHIR clients for staff of each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.patients import services as patient_services
from tests.conftest import patient_data

FHIR = "application/fhir+json"


class FhirClient:
    def __init__(self, raw_token: str | None) -> None:
        self.client = Client(HTTP_ACCEPT_LANGUAGE="en")
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_token}"} if raw_token else {}

    def get(self, path: str, data: Any = None, **kw: Any) -> Any:
        return self.client.get(path, data, **self.headers, **kw)

    def post(self, path: str, body: Any, content_type: str = FHIR, **kw: Any) -> Any:
        data = json.dumps(body) if not isinstance(body, str | bytes) else body
        return self.client.post(path, data, content_type=content_type, **self.headers, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.put(path, json.dumps(body), content_type=FHIR, **self.headers, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, **self.headers, **kw)


@pytest.fixture
def fhir(world: Any):  # type: ignore[no-untyped-def]
    def make(username: str | None = "doctor.cardiology", **token_kw: Any) -> FhirClient:
        if username is None:
            return FhirClient(None)
        raw = accounts.issue_token(Staff.objects.get(username=username), **token_kw)
        return FhirClient(raw)

    return make


@pytest.fixture
def cardio_patient(world: Any) -> Any:
    return patient_services.create_patient(
        world.actor("nurse.cardiology"), patient_data(record_number="MRN-C1")
    )


@pytest.fixture
def endo_patient(world: Any) -> Any:
    return patient_services.create_patient(
        world.actor("nurse.endocrinology"), patient_data(record_number="MRN-E1")
    )
