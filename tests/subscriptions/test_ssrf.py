"""Endpoints that reach inside the network are refused at create and again at every send."""

from __future__ import annotations

import time
from typing import Any

import pytest

from careloop.subscriptions import delivery, guard, signals
from careloop.subscriptions import models as sm
from tests.subscriptions.conftest import allow, reading, subscribe, subscription_body

ATTACKS = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.0.0.1/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.9/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/hook",  # CGNAT
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[fc00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254 inside IPv6
    "http://localhost/hook",  # a name resolving to loopback
    "http://user@example.com/hook",
    "http://user:pw@example.com/hook",
    "http://example.com@127.0.0.1/hook",
    "http://example.com\\@127.0.0.1/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "javascript:alert(1)",
    "//example.com/hook",
    "http:///hook",
    "http://exa mple.com/hook",
]


@pytest.mark.parametrize("endpoint", ATTACKS)
def test_internal_endpoints_are_refused(world: Any, fhir: Any, endpoint: str) -> None:
    response = fhir("admin").post("/fhir/Subscription", subscription_body("Observation", endpoint))
    assert response.status_code in (400, 422), endpoint  # 400: not even a valid uri
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    assert not sm.Subscription.objects.exists()


def test_guard_knows_internal_addresses() -> None:
    for address in ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.1.1",
                    "100.127.0.1", "::1", "fd12::1", "fe80::1", "ff02::1", "::", "0.0.0.0",  # noqa: S104
                    "::ffff:10.0.0.1", "2002:7f00:1::1"]:  # fmt: skip
        assert guard.blocked(address), address
    for address in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]:
        assert not guard.blocked(address), address


def test_a_host_resolving_to_an_internal_address_is_refused(
    world: Any, fhir: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(guard, "_resolve", lambda host, port: ["93.184.216.34", "10.0.0.8"])
    response = fhir("admin").post(
        "/fhir/Subscription", subscription_body("Observation", "https://hooks.example.com/x")
    )
    assert response.status_code == 422
    assert "10.0.0.8" in response.json()["issue"][0]["diagnostics"]


def test_the_allow_list_is_per_organisation(world: Any, fhir: Any, receiver: Any) -> None:
    sm.AllowedHost.objects.create(organisation=world.other_org, host="127.0.0.1")
    response = fhir("admin").post(
        "/fhir/Subscription", subscription_body("Observation", receiver.url)
    )
    assert response.status_code == 422
    allow(world)
    subscribe(fhir("admin"), "Observation", receiver.url)


def test_dns_rebinding_is_refused_at_send(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any, monkeypatch: Any
) -> None:
    answers = {"hooks.example.com": ["93.184.216.34"]}
    monkeypatch.setattr(guard, "_resolve", lambda host, port: answers[host])
    subscribe(
        fhir("doctor.cardiology"), "Observation", f"http://hooks.example.com:{receiver.port}/x"
    )
    answers["hooks.example.com"] = ["127.0.0.1"]  # the name now points inside
    reading(world, cardio_patient)
    signals.scan()
    assert delivery.run_once("w1") == {"retrying": 1}
    row = sm.Delivery.objects.get()
    assert "internal address" in row.last_error
    assert receiver.got == []


def test_the_checked_address_is_the_one_connected_to(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any, monkeypatch: Any
) -> None:
    """The sender connects to the address it checked, with the URL's host in Host: a second
    lookup cannot send it elsewhere."""
    allow(world, "hooks.internal.test")
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(guard, "_resolve", resolve)
    subscribe(
        fhir("doctor.cardiology"), "Observation", f"http://hooks.internal.test:{receiver.port}/in"
    )
    reading(world, cardio_patient)
    signals.scan()
    assert delivery.run_once("w1") == {"delivered": 1}
    [got] = receiver.got
    assert got.headers["Host"] == f"hooks.internal.test:{receiver.port}"
    assert calls == ["hooks.internal.test", "hooks.internal.test"]  # at create and at send


def test_an_endpoint_removed_from_the_allow_list_is_refused_at_send(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any
) -> None:
    allow(world)
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    sm.AllowedHost.objects.all().delete()
    reading(world, cardio_patient)
    signals.scan()
    assert delivery.run_once("w1") == {"retrying": 1}
    assert receiver.got == []


def test_redirects_are_not_followed(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any
) -> None:
    allow(world)
    receiver.answers = [302]
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    assert delivery.run_once("w1") == {"retrying": 1}
    assert len(receiver.got) == 1
    assert "HTTP 302" in sm.Delivery.objects.get().last_error


def test_headers_cannot_replace_the_signature_or_inject(
    world: Any, fhir: Any, receiver: Any
) -> None:
    allow(world)
    for header in ["X-CareLoop-Signature: sha256=00", "Host: evil", "X-A: b\r\nX-B: c", "nocolon"]:
        body = subscription_body("Observation", receiver.url, header=[header])
        response = fhir("admin").post("/fhir/Subscription", body)
        assert response.status_code in (400, 422), header
        assert response.json()["issue"][0]["expression"][0].startswith("Subscription.channel")


def test_a_receiver_that_stalls_is_cut_off(
    world: Any, fhir: Any, receiver: Any, cardio_patient: Any, monkeypatch: Any
) -> None:
    """A slow or malicious receiver cannot hold the worker: the whole exchange has a deadline."""
    monkeypatch.setattr(delivery, "DEADLINE", 0.5)
    allow(world)
    receiver.delay = 3.0
    subscribe(fhir("doctor.cardiology"), "Observation", receiver.url)
    reading(world, cardio_patient)
    signals.scan()
    started = time.monotonic()
    assert delivery.run_once("w1") == {"retrying": 1}
    assert time.monotonic() - started < 2.5
