"""A nurse imports a clinic's patient list in a real Chromium: upload, mapping, dry run,
confirmed run taken by the background worker, and the row report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.accounts.models import Staff
from careloop.kit.identifiers import resident_id_check_char
from careloop.onboarding.models import PatientListJob
from careloop.patients import models as pm
from careloop.web.worker import make_worker

pytestmark = pytest.mark.e2e


def test_upload_map_check_and_run_a_patient_list(
    new_page: Any, sign_in: Any, world: Any, tmp_path: Path
) -> None:
    first = "11010519600305001"
    rows = [
        "姓名,性别,出生日期,身份证号,电话号码,诊断编码",
        f"王建国,男,1960/3/5,{first}{resident_id_check_char(first)},13900001111,I10",
        "李秀英,女,1955年11月20日,,13900002222,",
        "坏行,男,1960-13-01,,12345,",
    ]
    path = tmp_path / "名单.csv"
    path.write_bytes(("\n".join(rows) + "\n").encode("gb18030"))

    Staff.objects.filter(username="nurse.cardiology").update(language="en")
    page = new_page(locale="en-GB")
    sign_in(page, "nurse.cardiology")
    page.goto("/onboarding/")
    expect(page.locator("[data-testid=onboarding-empty]")).to_be_visible()
    page.locator("[data-testid=onboarding-file]").set_input_files(str(path))
    page.locator("[data-testid=onboarding-submit]").click()

    job = PatientListJob.objects.get()
    expect(page).to_have_url(f"/onboarding/{job.pk}/")
    # "电话号码" is not a known header: the nurse maps it to the phone field herself.
    expect(page.locator("[data-testid=map-0]")).to_have_value("name")
    page.locator("[data-testid=map-4]").select_option("phone")
    page.locator("[data-testid=dry-run]").click()

    results = page.locator("[data-testid=result-row]")
    expect(results).to_have_count(3)
    expect(results.nth(2)).to_contain_text("is not a date")
    expect(page.locator("[data-testid=count-refused]")).to_have_text("1")
    assert not pm.Patient.objects.exists()

    page.locator("[data-testid=confirm-run]").check()
    page.locator("[data-testid=run]").click()
    progress = page.locator("[data-testid=onboarding-progress]")
    expect(progress).to_have_attribute("data-status", "queued")
    make_worker(interval=0, batch=True).run()
    expect(progress).to_have_attribute("data-status", "done", timeout=15_000)
    expect(page.locator("[data-testid=count-created]")).to_have_text("2")
    expect(page.locator("[data-testid=report-xlsx]")).to_be_visible()
    assert pm.Patient.objects.count() == 2
