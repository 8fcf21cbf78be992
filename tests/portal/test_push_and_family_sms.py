"""Web push subscribed from Me and used by the dispatcher (a real send to the fake push
service), and the once-a-day missed-dose SMS to family members (at the fake SMS provider)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from careloop.alerts import sweeps
from careloop.audit.models import AuditEvent
from careloop.careplans import services as plan_services
from careloop.channels.fakes import FakePushService
from careloop.channels.models import ChannelConfig
from careloop.portal import services
from careloop.portal.models import PortalProxy, ProxyNotice, PushSubscription
from careloop.reminders import models as rm
from tests.portal.access_support import add_caregiver, codes_to
from tests.portal.client import portal_client
from tests.support.clinic import Clinic, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def push_service(world: Any) -> Iterator[FakePushService]:
    with FakePushService() as fake:
        cfg = ChannelConfig(organisation=world.org, kind="push", provider="webpush")
        cfg.config = fake.config()
        cfg.save()
        yield fake


def subscribe(client: Any, subscription: dict[str, Any]) -> Any:
    return client.post(
        "/portal/push/subscribe", json.dumps(subscription), content_type="application/json"
    )


class TestPushSubscription:
    def test_me_offers_push_with_the_vapid_key(self, make_patient: Any, push_service: Any) -> None:
        html = portal_client(make_patient()).get("/portal/me").content.decode()
        assert f'data-key="{push_service.vapid_public}"' in html

    def test_subscribe_and_unsubscribe(self, make_patient: Any, push_service: Any) -> None:
        p = make_patient()
        client = portal_client(p)
        sub = push_service.subscribe()
        answer = subscribe(client, sub)
        assert answer.status_code == 200 and answer.json() == {"subscribed": True}
        assert subscribe(client, sub).status_code == 200  # the same browser again: one row
        row = PushSubscription.objects.get(patient=p, revoked_at__isnull=True)
        assert row.endpoint == sub["endpoint"] and row.keys == sub["keys"]
        assert services.push_addresses([p.pk]) == {p.pk: row.as_address()}
        bad = subscribe(client, {"endpoint": "https://x.example/1", "keys": {"auth": "AA"}})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid"
        gone = client.post(
            "/portal/push/unsubscribe",
            json.dumps({"endpoint": sub["endpoint"]}),
            content_type="application/json",
        )
        assert gone.json() == {"subscribed": False, "ended": 1}
        assert services.push_addresses([p.pk]) == {}
        actions = set(AuditEvent.objects.filter(patient_id=p.pk).values_list("action", flat=True))
        assert {"portal.push.subscribe", "portal.push.unsubscribe"} <= actions

    def test_dispatcher_sends_to_the_portal_subscription(
        self, clinic: Clinic, push_service: FakePushService
    ) -> None:
        p = clinic.patient(consent=("push",))
        subscribe(portal_client(p), push_service.subscribe())
        spec = {
            "code": "push-check",
            "name": "push-check",
            "activities": [
                {
                    "code": "a",
                    "kind": "measurement",
                    "title": "测量血压",
                    "schedule": {"rrule": "FREQ=DAILY", "times": ["08:00"]},
                    "channels": ["push"],
                    "escalation": [],
                }
            ],
        }
        tpl, _ = plan_services.save_template(spec)
        plan_services.enrol(clinic.actor, p.pk, tpl.pk, now=utc(2026, 3, 1, 16, 0))
        clinic.run(utc(2026, 3, 2, 0, 0))
        sent = [o for o in clinic.occurrences(p) if o.status == rm.Status.SENT]
        assert len(sent) == 1
        assert len(push_service.sent) == 1
        payload = json.loads(push_service.sent[0].text)
        assert payload["url"] and payload["body"]

    def test_caregiver_sessions_cannot_subscribe(
        self, world: Any, make_patient: Any, push_service: Any
    ) -> None:
        p = make_patient()
        carer = add_caregiver(world, p, "13655554444")
        client = portal_client(p, caregiver=carer)
        assert subscribe(client, push_service.subscribe()).status_code == 403
        assert not PushSubscription.objects.exists()


class TestMissedDoseSms:
    def _setup(self, clinic: Clinic, *, notify: bool = True) -> tuple[Any, Any]:
        p = clinic.patient()
        clinic.prescribe(p, "qd")
        clinic.enrol(p, "hypertension", now=utc(2026, 3, 1, 16, 0))
        carer = add_caregiver(clinic.world, p, "13655556666")
        services.grant_proxy(
            clinic.actor, p.pk, carer.pk, source="paper", consent=True, notify=notify
        )
        return p, carer

    def test_one_sms_per_day_without_details(self, clinic: Clinic) -> None:
        p, _carer = self._setup(clinic)
        before = len(clinic.sms.sent)
        # 2 March 08:00 local is missed a day later; the sweep runs twice that day.
        assert sweeps.missed_doses(utc(2026, 3, 3, 1, 0)) >= 1
        sweeps.missed_doses(utc(2026, 3, 3, 2, 0))
        to_carer = [s for s in clinic.sms.sent[before:] if s.to.endswith("13655556666")]
        assert len(to_carer) == 1
        text = json.dumps(to_carer[0].extra.get("params", {}), ensure_ascii=False)
        assert "/portal/" in text
        for secret in ("氨氯地平", "高血压", "hypertension", p.name):
            assert secret not in text and secret not in to_carer[0].text
        body = services.notice_text("en", "https://x/portal/")
        assert "dose" in body and "not confirmed" in body
        notice = ProxyNotice.objects.get()
        assert notice.status == "sent" and notice.dedupe_key.startswith("missed:")
        assert AuditEvent.objects.filter(
            action="portal.proxy.missed_dose_notice", patient_id=p.pk, outcome="success"
        ).exists()
        # The next day's missed dose: one more.
        sweeps.missed_doses(utc(2026, 3, 4, 1, 0))
        to_carer = [s for s in clinic.sms.sent[before:] if s.to.endswith("13655556666")]
        assert len(to_carer) == 2
        assert codes_to(clinic.sms, "13655556666") == []

    def test_nothing_without_the_wish_or_after_revoke(self, clinic: Clinic) -> None:
        p, _carer = self._setup(clinic, notify=False)
        before = len(clinic.sms.sent)
        sweeps.missed_doses(utc(2026, 3, 3, 1, 0))
        proxy = PortalProxy.objects.get()
        proxy.notify_missed_doses = True
        proxy.save()
        services.revoke_proxy(clinic.actor, p.pk, proxy.pk)
        sweeps.missed_doses(utc(2026, 3, 4, 1, 0))
        assert [s for s in clinic.sms.sent[before:] if s.to.endswith("13655556666")] == []
        assert not ProxyNotice.objects.exists()

    def test_idempotent_when_called_again(self, clinic: Clinic) -> None:
        p, _carer = self._setup(clinic)
        now = utc(2026, 3, 3, 1, 0)
        before = len(clinic.sms.sent)
        for _ in range(3):
            services.notify_missed_doses(clinic.world.org.pk, [p.pk], now)
        assert len([s for s in clinic.sms.sent[before:] if s.to.endswith("13655556666")]) == 1
        assert ProxyNotice.objects.count() == 1
