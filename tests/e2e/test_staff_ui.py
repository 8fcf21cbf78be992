"""What a nurse, and an auditor, do with the staff pages, driven through a real Chromium.

Every page these tests open is also checked for console errors (CSP refusals included) by the
new_page fixture.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.kit.clock import age_on, utc_now
from careloop.patients import models as m
from tests.e2e.conftest import login

pytestmark = pytest.mark.e2e

STILL_HERE = "window.__no_reload_marker"


def mark_page(page: Any) -> None:
    """Leave a marker in the page: if it survives, the page was updated in place, not reloaded."""
    page.evaluate(f"{STILL_HERE} = true")


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate(f"{STILL_HERE} === true"))


def banner(page: Any) -> Any:
    return page.locator("[data-testid=allergy-banner]")


def allergy(patient: Any, substance: str) -> Any:
    return m.Allergy.objects.get(patient=patient, substance=substance)


class TestSecondFactor:
    def test_an_admin_sets_up_the_authenticator_then_signs_in_with_a_fresh_code(
        self, page: Any, new_page: Any, world: Any
    ) -> None:
        import time

        from careloop.accounts.models import SecondFactor
        from careloop.kit import totp

        login(page, "admin")
        expect(page).to_have_url(re.compile(r"/login/setup/$"))
        expect(page.locator("h1")).to_have_text("设置身份验证器")
        expect(page.locator("figure.qr img")).to_be_visible()
        secret = page.locator("[data-testid=second-factor-secret]").inner_text().replace(" ", "")
        page.locator("input[name=code]").fill("000000")
        page.locator("[data-testid=second-factor-form] button").click()
        expect(page.locator("[data-testid=login-error]")).to_contain_text("动态码不正确")
        page.locator("input[name=code]").fill(totp.code_at(secret, time.time()))
        page.locator("[data-testid=second-factor-form] button").click()
        expect(page).not_to_have_url(re.compile(r"/login/"))

        other = new_page()
        login(other, "admin")
        expect(other).to_have_url(re.compile(r"/login/code/$"))
        used = SecondFactor.objects.get(staff__username="admin").last_step or 0
        other.locator("input[name=code]").fill(totp.code_for_step(secret, used + 1))
        other.locator("[data-testid=second-factor-form] button").click()
        expect(other).not_to_have_url(re.compile(r"/login/"))


class TestSignIn:
    def test_wrong_password_is_refused_and_the_right_one_opens_the_worklist(
        self, page: Any, rich_patient: Any
    ) -> None:
        login(page, "nurse.cardiology", "not-the-password")
        expect(page.locator("[data-testid=login-error]")).to_have_text("用户名或密码错误。")
        expect(page).to_have_url(re.compile(r"/login/$"))
        assert page.locator("[data-testid=patient-table]").count() == 0
        # The username is kept, the password is not sent back.
        expect(page.locator("input[name=username]")).to_have_value("nurse.cardiology")
        expect(page.locator("input[name=password]")).to_have_value("")

        login(page, "nurse.cardiology")
        expect(page).to_have_url(re.compile(r"/worklist/$"))
        expect(page.locator("h1")).to_have_text("今日工作")
        page.locator("nav a[href='/patients/']").click()
        expect(page.locator("[data-testid=patient-link]")).to_have_text([rich_patient.name])


class TestSearch:
    def test_typing_the_last_four_phone_digits_narrows_the_list_in_place(
        self, page: Any, sign_in: Any, rich_patient: Any, make_patient: Any
    ) -> None:
        make_patient(name="李四海", phones=["13711112222"])
        make_patient(name="周美玲", phones=["13911113333"])
        # Same last four digits, but only endocrinology looks after her.
        make_patient("nurse.endocrinology", name="钱内分", phones=["13600005678"])
        sign_in(page, "nurse.cardiology")
        page.goto("/patients/")
        expect(page.locator("[data-testid=patient-link]")).to_have_count(3)
        mark_page(page)

        page.locator("[data-testid=patient-search]").press_sequentially("5678")

        expect(page.locator("[data-testid=patient-link]")).to_have_text(["王建国"])
        expect(page.locator("[data-testid=result-count]")).to_contain_text("1")
        expect(page).to_have_url(re.compile(r"[?&]q=5678"))
        assert not_reloaded(page)

        page.locator("[data-testid=patient-search]").fill("0000")
        expect(page.locator("[data-testid=no-results]")).to_contain_text("没有匹配的患者")
        assert not_reloaded(page)


class TestPatient360:
    def test_header_banner_care_team_and_every_tab(
        self, page: Any, sign_in: Any, rich_patient: Any
    ) -> None:
        sign_in(page, "nurse.cardiology")
        page.goto(f"/patients/{rich_patient.pk}/")
        header = page.locator("[data-testid=patient-header]")
        expect(header.locator("h1")).to_have_text("王建国")
        age = age_on(date(1956, 3, 14), utc_now().date())
        expect(page.locator("[data-testid=patient-age]")).to_have_text(f"{age} 岁")
        expect(header).to_contain_text("男")
        expect(header).to_contain_text("I10")
        expect(header).to_contain_text("E11.9")
        expect(page.locator("[data-testid=care-team]")).to_contain_text("心内科")
        expect(page.locator("[data-testid=care-team]")).to_contain_text("高血压随访组")
        expect(page.locator("[data-testid=care-team]")).to_contain_text("doctor.cardiology")
        expect(banner(page)).to_contain_text("青霉素")
        expect(banner(page)).to_contain_text("皮疹")
        expect(banner(page)).to_have_attribute("role", "alert")

        mark_page(page)
        expected = {
            "history": ("[data-testid=section-history]", "父亲"),
            "medications": ("[data-testid=section-medications]", "氨氯地平片"),
            "visits": ("[data-testid=section-visits]", "李医生"),
            "reports": ("[data-testid=section-reports]", "血脂四项"),
            "consents": ("[data-testid=section-consents]", "诊疗提醒"),
            "timeline": ("[data-testid=timeline]", "青霉素"),
            "overview": ("[data-testid=section-allergies]", "青霉素"),
        }
        for tab, (selector, text) in expected.items():
            page.locator(f"[data-tab={tab}]").click()
            expect(page.locator(f"#tab-panel {selector}")).to_contain_text(text)
            expect(page.locator(f"[data-tab={tab}]")).to_have_attribute("aria-selected", "true")
            expect(page.locator("[role=tab][aria-selected=true]")).to_have_count(1)
            expect(page).to_have_url(re.compile(rf"\?tab={tab}$"))
        expect(page.locator("#tab-panel [data-testid=section-caregivers]")).to_have_count(0)
        assert not_reloaded(page)

        # The timeline names choices the way people say them, not by stored codes.
        page.locator("[data-tab=timeline]").click()
        timeline = page.locator("#tab-panel [data-testid=timeline]")
        expect(timeline.locator("li")).to_have_count(12)  # 11 entries and 1 visit
        expect(timeline).not_to_contain_text("care_reminders")
        expect(timeline).not_to_contain_text("outpatient")

        # A tab's address opens that tab directly (a bookmark, a reload, no JavaScript).
        page.goto(f"/patients/{rich_patient.pk}/?tab=history")
        expect(page.locator("#tab-panel [data-testid=section-caregivers]")).to_contain_text("王丽")
        expect(page.locator("[data-tab=history]")).to_have_attribute("aria-selected", "true")


class TestAllergies:
    def test_a_refused_edit_saves_nothing_and_a_valid_one_shows_in_the_banner(
        self, page: Any, sign_in: Any, rich_patient: Any
    ) -> None:
        row = allergy(rich_patient, "青霉素")
        sign_in(page, "nurse.cardiology")
        page.goto(f"/patients/{rich_patient.pk}/")
        page.locator("[data-testid=section-allergies] [data-testid=edit-allergies]").click()
        expect(page.locator("input[name=substance]")).to_have_value("青霉素")

        page.locator("input[name=substance]").fill("")
        page.locator("input[name=noted_on]").fill("2999-01-01")
        page.locator("[data-testid=save]").click()
        expect(page.locator("[data-field=substance] .error")).to_contain_text("必填")
        expect(page.locator("[data-field=noted_on] .error")).to_be_visible()
        expect(page.locator("input[name=substance]")).to_be_focused()
        row.refresh_from_db()
        assert (row.substance, row.version, row.noted_on) == ("青霉素", 1, None)

        page.locator("input[name=substance]").fill("头孢菌素")
        page.locator("input[name=noted_on]").fill("2024-05-06")
        page.locator("select[name=severity]").select_option("mild")
        page.locator("[data-testid=save]").click()
        expect(page).to_have_url(re.compile(rf"/patients/{rich_patient.pk}/\?tab=overview$"))
        expect(banner(page)).to_contain_text("头孢菌素")
        expect(banner(page)).to_contain_text("轻度")
        expect(banner(page)).not_to_contain_text("青霉素")
        row.refresh_from_db()
        assert (row.substance, row.version) == ("头孢菌素", 2)

    def test_add_one_then_remove_another_after_confirming(
        self, page: Any, sign_in: Any, rich_patient: Any
    ) -> None:
        sign_in(page, "nurse.cardiology")
        page.goto(f"/patients/{rich_patient.pk}/")
        page.locator("[data-testid=add-allergies]").click()
        page.locator("input[name=substance]").fill("花生")
        page.locator("select[name=category]").select_option("food")
        page.locator("input[name=reaction]").fill("喉头水肿")
        page.locator("select[name=severity]").select_option("severe")
        page.locator("[data-testid=save]").click()
        expect(banner(page)).to_contain_text("花生 (喉头水肿)")
        expect(banner(page)).to_contain_text("青霉素")
        assert allergy(rich_patient, "花生").category == "food"

        section = page.locator("[data-testid=section-allergies]")
        section.locator("tr", has_text="青霉素").locator("[data-testid=remove-allergies]").click()
        expect(page.locator("main")).to_contain_text("青霉素")
        assert allergy(rich_patient, "青霉素").deleted_at is None  # asking is not removing
        page.locator("[data-testid=confirm-remove]").click()

        expect(page).to_have_url(re.compile(rf"/patients/{rich_patient.pk}/\?tab=overview$"))
        expect(banner(page)).not_to_contain_text("青霉素")
        expect(banner(page)).to_contain_text("花生")
        expect(section.locator("tbody tr")).to_have_count(1)
        assert allergy(rich_patient, "青霉素").deleted_at is not None  # kept, marked removed


class TestLanguage:
    def test_chinese_first_english_on_request_and_remembered_for_the_user(
        self, new_page: Any, rich_patient: Any
    ) -> None:
        page = new_page()
        page.goto("/login/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        login(page, "nurse.cardiology")
        expect(page.locator("h1")).to_have_text("今日工作")

        page.locator("[data-testid=switch-language]").click()
        expect(page).to_have_url(re.compile(r"/worklist/$"))
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("h1")).to_have_text("My work today")

        page.goto("/patients/")
        expect(page.locator("h1")).to_have_text("Patients")
        page.locator("[data-testid=patient-link]").click()
        expect(page.locator("[data-tab=timeline]")).to_have_text("Timeline")
        expect(banner(page)).to_contain_text("Allergies")
        # The portrait and questionnaire panels load after the page; signing out while one is
        # on its way ends the session under it and its answer is refused, so wait for them.
        expect(page.locator("[data-testid=insights-panel]")).to_be_visible()
        expect(page.locator("[data-testid=q-section-slot]")).to_have_count(0)

        page.locator("form[action='/logout/'] button").click()
        expect(page).to_have_url(re.compile(r"/login/"))

        # Another browser that never chose a language: the sign-in page is in Chinese,
        # and signing in brings back the user's own choice.
        other = new_page()
        other.goto("/login/")
        expect(other.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(other.locator("h1")).to_contain_text("登录")
        login(other, "nurse.cardiology")
        expect(other.locator("h1")).to_have_text("My work today")
        other.goto(f"/patients/{rich_patient.pk}/")
        expect(other.locator("[data-tab=history]")).to_have_text("History")

        # And back to Chinese.
        other.locator("[data-testid=switch-language]").click()
        expect(other.locator("[data-tab=history]")).to_have_text("病史")


class TestScope:
    def test_a_patient_outside_the_nurses_departments_is_not_found_and_not_named(
        self, page: Any, sign_in: Any, make_patient: Any
    ) -> None:
        hidden = make_patient("nurse.endocrinology", name="欧阳秘密", phones=["13655550000"])
        sign_in(page, "nurse.cardiology")
        for path in (
            f"/patients/{hidden.pk}/",
            f"/patients/{hidden.pk}/?tab=timeline",
            f"/patients/{hidden.pk}/tab/history/",
            f"/patients/{hidden.pk}/edit/",
            f"/patients/{hidden.pk}/allergies/new/",
        ):
            response = page.goto(path)
            assert response.status == 404, path
            expect(page.locator("[data-testid=error-page] h1")).to_contain_text("未找到")
            assert "欧阳" not in page.content(), path
            assert "欧阳" not in page.title()

        page.goto("/patients/?q=欧阳秘密")
        expect(page.locator("[data-testid=no-results]")).to_be_visible()
        page.goto("/patients/?q=0000")
        expect(page.locator("[data-testid=no-results]")).to_be_visible()
        assert "欧阳" not in page.content()


class TestAuditor:
    def test_the_auditor_reads_the_audit_trail_and_cannot_open_the_patient_list(
        self, page: Any, rich_patient: Any
    ) -> None:
        login(page, "auditor")
        expect(page).to_have_url(re.compile(r"/audit/$"))
        expect(page.locator("h1")).to_have_text("审计日志")
        table = page.locator("[data-testid=audit-table]")
        expect(table.locator("tr", has_text="allergies.create")).to_contain_text("nurse.cardiology")
        expect(page.locator("nav a[href='/patients/']")).to_have_count(0)

        page.locator("select[name=action]").select_option("patient.create")
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(table).to_contain_text(str(rich_patient.pk))

        response = page.goto("/patients/")
        assert response.status == 403
        assert page.locator("[data-testid=patient-table]").count() == 0
        assert "王建国" not in page.content()
        response = page.goto(f"/patients/{rich_patient.pk}/")
        assert response.status == 403
        assert "王建国" not in page.content()
