"""Managing subscriptions through /fhir (who may, criteria checks, If-Match) and the admin page."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from careloop.audit.models import AuditEvent
from careloop.subscriptions import delivery, signals
from careloop.subscriptions import models as sm
from tests.subscriptions.conftest import allow, reading, subscribe, subscription_body


@pytest.mark.parametrize(
    "criteria",
    [
        "",
        "Patient",
        "Observation?unknown=1",
        "Observation?date=yesterday",
        "Observation?_sort=date",
        "Observation?code=",
        "MedicationRequest?patient=1",
        "observation",
    ],
)
def test_criteria_are_checked(world: Any, fhir: Any, receiver: Any, criteria: str) -> None:
    allow(world)
    response = fhir("admin").post("/fhir/Subscription", subscription_body(criteria, receiver.url))
    assert response.status_code in (400, 422), criteria
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Subscription.criteria"], issue


def test_only_rest_hook(world: Any, fhir: Any, receiver: Any) -> None:
    allow(world)
    body = subscription_body("Observation", receiver.url)
    body["channel"]["type"] = "websocket"
    response = fhir("admin").post("/fhir/Subscription", body)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Subscription.channel.type"]


def test_who_may_manage(world: Any, fhir: Any, receiver: Any) -> None:
    allow(world)
    assert (
        fhir("auditor")
        .post("/fhir/Subscription", subscription_body("Observation", receiver.url))
        .status_code
        == 403
    )
    mine = subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    path = f"/fhir/Subscription/{mine['id']}"
    # Another clinician does not see it; the admin of the organisation does; other orgs don't.
    assert fhir("nurse.cardiology").get(path).status_code == 404
    assert fhir("nurse.cardiology").get("/fhir/Subscription").json()["total"] == 0
    assert fhir("admin").get(path).status_code == 200
    assert fhir("admin.other").get(path).status_code == 404
    assert fhir("admin.other").delete(path).status_code == 404
    assert fhir("doctor.cardiology").get("/fhir/Subscription?status=active").json()["total"] == 1
    assert sm.Subscription.objects.get().created_by.username == "doctor.cardiology"
    assert AuditEvent.objects.filter(action="subscription.create").exists()


def test_update_with_if_match_and_delete(world: Any, fhir: Any, receiver: Any) -> None:
    allow(world)
    client = fhir("doctor.cardiology")
    created = subscribe(client, "Observation", receiver.url)
    path = f"/fhir/Subscription/{created['id']}"
    body = {k: v for k, v in created.items() if k not in ("meta", "extension")}
    body["criteria"] = "Observation?code=http://loinc.org|85354-9"
    assert client.put(path, body, HTTP_IF_MATCH='W/"1"').status_code == 200
    stale = client.put(path, body, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    read = client.get(path)
    assert read.json()["criteria"] == "Observation?code=http://loinc.org|85354-9"
    assert read["ETag"] == 'W/"2"'
    body["channel"]["endpoint"] = "http://169.254.169.254/"
    refused = client.put(path, body, HTTP_IF_MATCH='W/"2"')
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404


def test_capability_statement_lists_subscription(world: Any, client: Any) -> None:
    types = {r["type"] for r in client.get("/fhir/metadata").json()["rest"][0]["resource"]}
    assert "Subscription" in types


def test_admin_page_lists_retries_and_turns_off(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any, client: Any
) -> None:
    allow(world)
    receiver.answers = [500]
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    delivery.run_once("w1")
    sub = sm.Subscription.objects.get()
    client.force_login(world.staff["doctor.cardiology"])
    assert client.get(reverse("subscriptions:list")).status_code == 403
    client.force_login(world.staff["admin"])
    page = client.get(reverse("subscriptions:list"), HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Observation" in text and "HTTP 500" in text and receiver.url in text
    assert 'data-testid="nav-subscriptions"' in text
    # Retry now: due at once, and sent when the worker runs.
    receiver.answers = [200]
    response = client.post(reverse("subscriptions:retry", args=[sub.pk]))
    assert response.status_code == 302
    assert delivery.run_once("w1") == {"delivered": 1}
    # Turn off.
    client.post(reverse("subscriptions:off", args=[sub.pk]))
    sub.refresh_from_db()
    assert sub.status == "off"
    # Another organisation's admin cannot touch it.
    client.force_login(world.staff["admin.other"])
    assert client.post(reverse("subscriptions:retry", args=[sub.pk])).status_code == 404
    assert "Observation" not in client.get(reverse("subscriptions:list")).content.decode()


def test_admin_page_keeps_the_allow_list(world: Any, client: Any) -> None:
    client.force_login(world.staff["admin"])
    client.post(reverse("subscriptions:allow_host"), {"host": "Hooks.Internal.Example"})
    client.post(reverse("subscriptions:allow_host"), {"host": "http://x@127.0.0.1/"})
    client.post(reverse("subscriptions:allow_host"), {"host": "[fd00::5]"})
    hosts = list(sm.AllowedHost.objects.order_by("host").values_list("host", flat=True))
    assert hosts == ["fd00::5", "hooks.internal.example"]
    row = sm.AllowedHost.objects.get(host="hooks.internal.example")
    client.force_login(world.staff["admin.other"])
    assert client.post(reverse("subscriptions:remove_host", args=[row.pk])).status_code == 404
    client.force_login(world.staff["admin"])
    client.post(reverse("subscriptions:remove_host", args=[row.pk]))
    assert list(sm.AllowedHost.objects.values_list("host", flat=True)) == ["fd00::5"]


def test_a_token_subscribes_only_to_what_it_may_read(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any
) -> None:
    allow(world)
    body = subscription_body("Observation", receiver.url)
    narrow = fhir("doctor.cardiology", scopes="user/Subscription.cruds")
    refused = narrow.post("/fhir/Subscription", body)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["expression"] == ["Subscription.criteria"]
    one_patient = fhir(
        "doctor.cardiology",
        scopes="user/Subscription.cruds patient/Observation.rs",
        patient_id=cardio_patient.pk,
    )
    assert one_patient.post("/fhir/Subscription", body).status_code == 403
    assert not sm.Subscription.objects.exists()
    enough = fhir("doctor.cardiology", scopes="user/Subscription.cruds user/Observation.rs")
    assert enough.post("/fhir/Subscription", body).status_code == 201
