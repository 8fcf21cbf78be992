"""A patient signs in to the portal on a phone-sized Chromium with the code the fake SMS
provider received, lands on Today, switches to English and large text in Me, and reloads
Today offline from the service worker's copy.

Screenshots go to test-artifacts/screenshots/ as portal-access-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import expect

from careloop.channels.models import ChannelConfig
from tests.e2e.conftest import ARTIFACTS, PHONE

pytestmark = pytest.mark.e2e
SHOTS = ARTIFACTS / "screenshots"
NUMBER = "13877776666"


def snap(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state()
    page.screenshot(path=str(SHOTS / f"portal-access-{name}.png"), full_page=True)
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"{name} is {wider} px wider than the window"


def today_is_cached(page: Any) -> bool:
    return bool(
        page.evaluate(
            """async () => {
                const names = await caches.keys();
                for (const name of names) {
                    if (!name.endsWith('-pages')) continue;
                    const hit = await (await caches.open(name)).match('/portal/');
                    if (hit) return true;
                }
                return false;
            }"""
        )
    )


def test_sign_in_language_elder_mode_and_offline_today(
    site: str, new_page: Any, sms: Any, world: Any, make_patient: Any
) -> None:
    cfg = ChannelConfig(organisation=world.org, kind="sms", provider="aliyun_sms")
    cfg.config = sms.config()
    cfg.save()
    make_patient(name="陈美玲", sex="female", phones=[NUMBER])
    page = new_page(viewport=PHONE, locale="zh-CN")

    page.goto("/portal/sign-in?org=test")
    expect(page.locator("h1")).to_be_visible()
    snap(page, "sign-in")
    page.locator("input[name=phone]").fill(NUMBER)
    page.get_by_test_id("send-code").click()
    page.wait_for_url("**/portal/sign-in/code**")
    sent = [s for s in sms.sent if s.to.endswith(NUMBER)]
    assert len(sent) == 1
    code = str(sent[0].extra["params"]["code"])
    page.locator("input[name=code]").fill(code)
    snap(page, "code")
    page.get_by_test_id("check-code").click()
    page.wait_for_url(f"{site}/portal/")
    expect(page.get_by_test_id("tab-today")).to_have_attribute("aria-current", "page")

    page.get_by_test_id("tab-me").click()
    page.wait_for_url("**/portal/me")
    expect(page.get_by_test_id("masked-phone")).to_have_text("138****6666")
    page.get_by_test_id("lang-en").click()
    page.wait_for_url("**/portal/me")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Large text")).to_be_visible()
    page.get_by_test_id("elder-on").click()
    page.wait_for_url("**/portal/me")
    expect(page.locator("html")).to_have_class("elder")
    size = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert size >= 20
    expect(page.get_by_test_id("elder-off")).to_be_visible()
    snap(page, "me")

    # Today, once the service worker controls the page, is kept for offline reading.
    page.get_by_test_id("tab-today").click()
    page.wait_for_url(f"{site}/portal/")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.reload()
    page.wait_for_function(
        """async () => {
            for (const name of await caches.keys()) {
                if (name.endsWith('-pages')
                    && await (await caches.open(name)).match('/portal/')) return true;
            }
            return false;
        }"""
    )
    assert today_is_cached(page)
    page.context.set_offline(True)
    page.reload()
    expect(page.get_by_test_id("tab-today")).to_be_visible()
    expect(page.locator("[data-offline-note]")).to_be_visible()
    expect(page.locator("html")).to_have_class("elder")
    snap(page, "today-offline")
    page.context.set_offline(False)

    # Signing out forgets the offline copy on this phone.
    page.get_by_test_id("tab-me").click()
    page.wait_for_url("**/portal/me")
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("signed-out")).to_be_visible()
    page.wait_for_function(
        """async () => {
            for (const name of await caches.keys()) {
                if (name.endsWith('-pages')
                    && await (await caches.open(name)).match('/portal/')) return false;
            }
            return true;
        }"""
    )
    assert not today_is_cached(page)


def test_staff_invitation_link_and_qr_sign_in(
    site: str, new_page: Any, sign_in: Any, world: Any, make_patient: Any
) -> None:
    patient = make_patient(name="刘志强", phones=["13866665555"])
    desk = new_page(locale="en-GB")
    sign_in(desk, "nurse.cardiology")
    desk.goto(f"/patients/{patient.pk}/")
    desk.get_by_test_id("portal-access").click()
    desk.get_by_test_id("make-invite").click()
    expect(desk.get_by_test_id("invite-qr")).to_be_visible()
    width = desk.evaluate("document.querySelector('[data-testid=invite-qr]').naturalWidth")
    assert width > 0  # the server-made SVG QR code loads under the page's CSP
    link = desk.get_by_test_id("invite-link").input_value()
    assert link.startswith(settings.PUBLIC_URL.rstrip("/") + "/portal/invite/")
    link = link[link.index("/portal/invite/") :]  # the live server is not at PUBLIC_URL
    SHOTS.mkdir(parents=True, exist_ok=True)
    desk.screenshot(path=str(SHOTS / "portal-access-staff-panel.png"), full_page=True)

    phone = new_page(viewport=PHONE, locale="zh-CN")
    phone.goto(link)
    phone.get_by_test_id("use-invitation").click()
    phone.wait_for_url(f"{site}/portal/")
    expect(phone.get_by_test_id("tab-today")).to_have_attribute("aria-current", "page")
    # The link works once.
    again = new_page(viewport=PHONE, locale="en-GB")
    again.goto(link)
    expect(again.get_by_test_id("invitation-unusable")).to_be_visible()
    snap(again, "invitation-used")
