"""A patient on a phone (360×740) checks in, sees points and streak, redeems a reward and reads
the code; joins the hypertension community, is stopped from posting a phone number, posts, and
the moderator approves it; the leaderboard shows nicknames only.

Screenshots go to test-artifacts/screenshots/ as 360-engagement-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.accounts.models import Staff
from careloop.engagement import models as em
from careloop.engagement import services
from careloop.portal import events
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_vitals import snap
from tests.engagement.conftest import actor_of, diagnose, give_points
from tests.portal.client import portal_token

pytestmark = pytest.mark.e2e


def phone_of(new_page: Any, site: str, patient: Any, elder: bool = False) -> Any:
    phone = new_page(PHONE, locale="en-GB")
    cookies = [
        {"name": "careloop_portal", "value": portal_token(patient), "url": site},
        {"name": "django_language", "value": "en", "url": site},
    ]
    if elder:
        cookies.append({"name": "careloop_elder", "value": "1", "url": site})
    phone.context.add_cookies(cookies)
    return phone


def test_check_in_see_points_and_redeem(
    site: str, new_page: Any, sign_in: Any, world: Any, make_patient: Any
) -> None:
    patient = make_patient(name="王秀英")
    give_points(patient, 298)
    strips = em.Reward.objects.create(
        organisation=world.org, name="Glucose test strips (50)",
        description="Collect at the cardiology desk.", cost=300, stock=1,
    )  # fmt: skip
    em.Reward.objects.create(
        organisation=world.org, name="Blood pressure monitor", cost=1500, stock=4
    )
    phone = phone_of(new_page, site, patient)
    phone.goto("/portal/rewards/")
    expect(phone.get_by_test_id("balance")).to_have_text("298")
    expect(phone.get_by_test_id(f"redeem-{strips.pk}")).to_have_count(0)  # 2 points short
    snap(phone, "360-engagement-before")

    phone.get_by_test_id("check-in").click()
    expect(phone.get_by_test_id("checked-in")).to_be_visible()
    expect(phone.get_by_test_id("balance")).to_have_text("299")
    expect(phone.get_by_test_id("streak")).to_have_text("1")
    expect(phone.get_by_test_id("badge-first-check-in")).to_have_attribute("data-earned", "1")

    # One more point, from a dose confirmed elsewhere in the portal.
    services.pay(events.PatientEvent("dose_taken", patient.pk, world.org.pk, "occ:1"))
    phone.reload()
    expect(phone.get_by_test_id("balance")).to_have_text("301")
    snap(phone, "360-engagement-rewards")

    phone.get_by_test_id(f"redeem-{strips.pk}").click()
    expect(phone.get_by_test_id("balance-now")).to_have_text("301")
    snap(phone, "360-engagement-confirm")
    phone.get_by_test_id("confirm-redeem").click()
    code = em.Redemption.objects.get().code
    expect(phone.get_by_test_id("redemption-code")).to_have_text(code)
    snap(phone, "360-engagement-code")
    phone.goto("/portal/rewards/")
    expect(phone.get_by_test_id("balance")).to_have_text("1")
    expect(phone.get_by_test_id(f"reward-{strips.pk}")).to_contain_text("Out of stock")

    # The desk finds the code and hands the reward over.
    desk = new_page(DESKTOP, locale="en-GB")
    Staff.objects.filter(username="admin").update(language="en")
    sign_in(desk, "admin")
    desk.goto(f"/engagement/redemptions/?code={code}")
    redemption = em.Redemption.objects.get()
    desk.get_by_test_id(f"fulfil-{redemption.pk}").click()
    expect(desk.get_by_test_id("redemption-table")).to_contain_text("Collected")
    phone.goto(f"/portal/redemptions/{redemption.pk}/")
    expect(phone.get_by_test_id("redemption-status")).to_have_text("Collected")


def test_community_post_moderation_and_leaderboard(
    site: str, new_page: Any, sign_in: Any, world: Any, make_patient: Any
) -> None:
    patient = make_patient(name="王秀英")
    neighbour = make_patient(name="赵建国")
    diagnose(world, patient, "I10")
    community = em.Community.objects.create(
        organisation=world.org, name="Hypertension club", condition="hypertension",
        icd10_prefixes="I10", description="Share what helps you keep your blood pressure down.",
    )  # fmt: skip
    give_points(neighbour, 40)
    services.save_profile(actor_of(neighbour), {"nickname": "Old Li", "on_leaderboard": "on"})

    phone = phone_of(new_page, site, patient, elder=True)
    phone.goto("/portal/leaderboard/")
    expect(phone.get_by_test_id("board")).to_contain_text("Old Li")
    expect(phone.get_by_test_id("board")).not_to_contain_text("赵建国")
    phone.get_by_test_id("nickname").fill("Morning walker")
    phone.get_by_test_id("opt-in").check()
    phone.get_by_test_id("save-profile").click()
    expect(phone.get_by_test_id("my-rank")).to_contain_text("number 2")
    snap(phone, "360-engagement-leaderboard")

    phone.goto("/portal/community/")
    phone.get_by_test_id(f"join-{community.pk}").click()
    expect(phone.get_by_test_id("privacy-warning")).to_be_visible()
    phone.get_by_test_id("post-body").fill("Call me on 138 1234 5678 to chat about salt")
    phone.get_by_test_id("post-submit").click()
    expect(phone.get_by_test_id("post-error")).to_contain_text("remove a phone number")
    snap(phone, "360-engagement-blocked")
    phone.get_by_test_id("post-body").fill("Less salt: my blood pressure went from 150 to 135.")
    phone.get_by_test_id("post-submit").click()
    post = em.Post.objects.get()
    expect(phone.get_by_test_id(f"post-{post.pk}")).to_contain_text("Waiting for review")

    nurse = new_page(DESKTOP, locale="en-GB")
    sign_in(nurse, "nurse.cardiology")
    nurse.goto("/engagement/community/")
    expect(nurse.get_by_test_id(f"pending-{post.pk}")).to_contain_text("Morning walker")
    expect(nurse.get_by_test_id(f"pending-{post.pk}")).not_to_contain_text("王秀英")
    nurse.get_by_test_id(f"approve-{post.pk}").click()
    expect(nurse.get_by_test_id(f"published-{post.pk}")).to_be_visible()

    phone.goto(f"/portal/community/{community.pk}/")
    expect(phone.get_by_test_id(f"post-{post.pk}")).not_to_contain_text("Waiting for review")
    snap(phone, "360-engagement-community")
