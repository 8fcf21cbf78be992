"""Deliveries to a real HTTP server on loopback: signed, retried with backoff, delivered once,
re-sent once after a crash, and only within the subscriber's scope."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

from careloop.kit.clock import utc_now
from careloop.subscriptions import delivery, signals
from careloop.subscriptions import models as sm
from tests.subscriptions.conftest import BP_CODE, allow, reading, subscribe

SECRET_URL = "https://careloop.example/fhir/StructureDefinition/subscription-secret"


def verify(
    secret: str, headers: dict[str, str], body: bytes, now: int, tolerance: int = 300
) -> bool:
    """What a receiver does (the example in docs/subscriptions.md)."""
    timestamp = headers["X-CareLoop-Timestamp"]
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), headers["X-CareLoop-Signature"])


def _secret(created: dict[str, Any]) -> str:
    [ext] = [e for e in created["extension"] if e["url"] == SECRET_URL]
    return str(ext["valueString"])


def test_a_matching_reading_is_delivered_signed(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    client = fhir("doctor.cardiology")
    created = subscribe(
        client,
        f"Observation?patient={cardio_patient.pk}&code=http://loinc.org|{BP_CODE}",
        receiver.url,
        header=["Authorization: Bearer receiver-token"],
    )
    secret = _secret(created)
    assert created["status"] == "active"
    # The secret is shown once: a later read does not carry it.
    again = client.get(f"/fhir/Subscription/{created['id']}").json()
    assert "extension" not in again and secret not in json.dumps(again)

    obs = reading(world, cardio_patient)
    reading(world, cardio_patient, code="weight", value=70, unit="kg")  # other code: not sent
    signals.scan()
    outcomes = delivery.run_once("w1")
    assert outcomes == {"delivered": 1}

    [got] = receiver.got
    assert got.path == "/hook"
    assert got.headers["Content-Type"] == "application/fhir+json"
    assert got.headers["Authorization"] == "Bearer receiver-token"
    assert verify(secret, got.headers, got.body, int(utc_now().timestamp()))
    assert not verify("whsec_wrong", got.headers, got.body, int(utc_now().timestamp()))
    assert not verify(secret, got.headers, got.body + b" ", int(utc_now().timestamp()))
    resource = json.loads(got.body)
    assert resource["resourceType"] == "Observation" and resource["id"] == str(obs.pk)
    row = sm.Delivery.objects.get()
    assert row.status == "delivered" and row.attempts == 1 and row.delivered_at is not None
    # Nothing more to send; scanning again queues nothing new.
    signals.scan()
    assert delivery.run_once("w1") == {}
    assert len(receiver.got) == 1


def test_ping_payload_has_no_body(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    created = subscribe(fhir("doctor.cardiology"), "Observation", receiver.url, payload=None)
    assert "payload" not in created["channel"]
    reading(world, cardio_patient)
    signals.scan()
    assert delivery.run_once("w1") == {"delivered": 1}
    [got] = receiver.got
    assert got.body == b""
    assert verify(_secret(created), got.headers, b"", int(utc_now().timestamp()))


def test_500s_back_off_then_recover(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    receiver.answers = [500, 503, 200]
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    start = utc_now()
    assert delivery.run_once("w1") == {"retrying": 1}
    row = sm.Delivery.objects.get()
    wait = row.next_attempt_at - start
    assert row.attempts == 1 and "HTTP 500" in row.last_error
    assert timedelta(seconds=23) <= wait <= timedelta(seconds=37)  # 30 s ± 20 %
    assert sm.Subscription.objects.get().status == "active"
    # Not due yet: nothing is sent.
    assert delivery.run_once("w1") == {}
    assert delivery.run_once("w1", now=start + timedelta(seconds=40)) == {"retrying": 1}
    row.refresh_from_db()
    assert row.attempts == 2
    assert timedelta(seconds=90) <= row.next_attempt_at - start <= timedelta(seconds=150)
    assert delivery.run_once("w1", now=start + timedelta(minutes=3)) == {"delivered": 1}
    row.refresh_from_db()
    sub = sm.Subscription.objects.get()
    assert row.status == "delivered" and row.attempts == 3 and row.last_error == ""
    assert sub.status == "active" and sub.error == "" and sub.failures == 0
    assert len(receiver.got) == 3
    assert len({r.headers["X-CareLoop-Delivery"] for r in receiver.got}) == 1


def test_the_backoff_ladder_grows_to_a_day() -> None:
    waits = [delivery.backoff(n) for n in range(1, 12)]
    assert timedelta(seconds=24) <= waits[0] <= timedelta(seconds=36)
    assert all(w <= timedelta(hours=24) for w in waits)
    assert waits[-1] >= timedelta(hours=19)
    assert delivery.MAX_ATTEMPTS == 8


def test_after_the_last_attempt_the_subscription_is_in_error(
    world, fhir, receiver, cardio_patient
) -> None:
    allow(world)
    receiver.answers = [500]
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    sm.Delivery.objects.update(attempts=delivery.MAX_ATTEMPTS - 1)
    assert delivery.run_once("w1") == {"dead": 1}
    sub = sm.Subscription.objects.get()
    assert sub.status == "error" and "HTTP 500" in sub.error
    assert sm.Delivery.objects.get().status == "failed"
    # An errored subscription still collects changes but sends nothing.
    reading(world, cardio_patient, code="weight", value=71, unit="kg")
    signals.scan()
    assert sm.Delivery.objects.filter(status="pending").count() == 1
    assert delivery.run_once("w1", now=utc_now() + timedelta(days=2)) == {}


def test_one_change_is_queued_once(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    obs = reading(world, cardio_patient)
    signals.scan()
    signals.scan()
    from careloop.subscriptions import services

    type(obs).objects.get(pk=obs.pk).save()  # saved again, unchanged: no new event
    assert services.queue(type(obs), [obs.pk]) == 0
    assert sm.Delivery.objects.count() == 1
    assert delivery.run_once("w1") == {"delivered": 1}
    assert delivery.run_once("w2") == {}
    assert len(receiver.got) == 1


def test_a_crash_mid_send_redelivers_once(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    now = utc_now()
    crashed = delivery.claim_one("worker-a", now)  # claimed, then the worker died
    assert crashed is not None and crashed.status == "sending"
    # While the lease lasts no other worker takes it.
    assert delivery.claim_one("worker-b", now) is None
    assert delivery.run_once("worker-b", now=now) == {}
    later = now + delivery.LEASE + timedelta(seconds=1)
    assert delivery.run_once("worker-b", now=later) == {"delivered": 1}
    assert delivery.run_once("worker-c", now=later + delivery.LEASE * 2) == {}
    assert len(receiver.got) == 1
    # The dead worker's late finish changes nothing.
    assert not delivery._finish(crashed, "worker-a", status="pending")
    assert sm.Delivery.objects.get().status == "delivered"


def test_cardiology_subscription_never_receives_endocrinology(
    world, fhir, receiver, cardio_patient, endo_patient
) -> None:
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    subscribe(fhir("doctor.cardiology"), f"Observation?patient={endo_patient.pk}", receiver.url)
    reading(world, endo_patient, username="nurse.endocrinology")
    mine = reading(world, cardio_patient)
    signals.scan()
    assert delivery.run_once("w1") == {"delivered": 1}
    [got] = receiver.got
    assert json.loads(got.body)["id"] == str(mine.pk)
    assert not sm.Delivery.objects.filter(resource_id__in=[
        str(o.pk) for o in type(mine).objects.filter(patient=endo_patient)
    ]).exists()  # fmt: skip


def test_a_creator_who_lost_access_gets_nothing(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    assert sm.Delivery.objects.count() == 1
    doctor = world.staff["doctor.cardiology"]
    doctor.is_active = False
    doctor.save()
    assert delivery.run_once("w1") == {"cancelled": 1}
    assert receiver.got == []
    reading(world, cardio_patient, code="weight", value=70, unit="kg")
    signals.scan()
    assert sm.Delivery.objects.count() == 1


def test_turned_off_sends_nothing(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    client = fhir("doctor.cardiology")
    created = subscribe(client, "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    body = {k: v for k, v in created.items() if k not in ("meta", "extension")}
    body["status"] = "off"
    response = client.put(f"/fhir/Subscription/{created['id']}", body, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200 and response.json()["status"] == "off"
    assert delivery.run_once("w1") == {}
    assert sm.Delivery.objects.get().status == "cancelled"
    reading(world, cardio_patient, code="weight", value=70, unit="kg")
    signals.scan()
    assert sm.Delivery.objects.count() == 1
    assert receiver.got == []


def test_the_worker_loop_sends_deliveries(world, fhir, receiver, cardio_patient) -> None:
    from careloop.reminders.dispatcher import Dispatcher

    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    worker = Dispatcher(top_up_every=10.0**12, sweep_every=10.0**12, notify_every=10.0**12)
    worker.tick()
    assert len(receiver.got) == 1
    assert sm.Delivery.objects.get().status == "delivered"


def test_an_ended_subscription_stops(world, fhir, receiver, cardio_patient) -> None:
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    reading(world, cardio_patient, code="weight", value=70, unit="kg")
    signals.scan()
    sm.Subscription.objects.update(end=utc_now() - timedelta(seconds=1))
    assert delivery.run_once("w1") == {"cancelled": 1}
    assert sm.Subscription.objects.get().status == "off"
    assert set(sm.Delivery.objects.values_list("status", flat=True)) == {"cancelled"}
    assert receiver.got == []
