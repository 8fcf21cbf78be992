"""A nurse uploads a CSV of readings in a real Chromium, watches the progress bar fill while the
background worker reads it, and reads the line report (at 1280 and 360 px wide)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from careloop.accounts.models import Staff
from careloop.observations import models as om
from careloop.web.worker import make_worker
from tests.e2e.conftest import ARTIFACTS, PHONE
from tests.observations.support import care_team, join

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots"
HEADER = "patient,code,value,systolic,diastolic,unit,effective,time_zone,source,device,context\n"


def snap(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    # The page's own content must fit the window (the shared top bar is checked elsewhere).
    overflow = page.evaluate(
        "() => Math.max(0, document.querySelector('main').scrollWidth - window.innerWidth)"
    )
    assert overflow == 0, f"{name} is {overflow} px wider than the window"


def test_upload_a_csv_and_watch_it_finish(
    new_page: Any, sign_in: Any, world: Any, make_patient: Any, tmp_path: Path
) -> None:
    patient = make_patient(name="王建国", record_number="MRN-0042")
    join(patient, care_team(world))
    rows = [f"{patient.pk},bp,,{130 + d},85,mmHg,2026-01-{d:02d}T07:30,,device,OMRON-1,\n"
            for d in range(1, 21)]  # fmt: skip
    rows.insert(5, f"{patient.pk},bp,,400,85,mmHg,2026-01-22T07:30,,,,\n")  # line 7
    rows.insert(9, f"{patient.pk},glucose,=SUM(A1:A9),,,mmol/L,2026-01-22T07:00,,,,空腹\n")
    rows.insert(12, f"{patient.pk},glucose,5.6\n")  # too few cells
    path = tmp_path / "十一月血压.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8-sig")

    # The nurse reads English: the pages and the reasons the worker writes in her language.
    Staff.objects.filter(username="nurse.cardiology").update(language="en")
    page = new_page(locale="en-GB")
    sign_in(page, "nurse.cardiology")
    page.goto("/observations/imports/")
    expect(page.locator("h1")).to_be_visible()
    snap(page, "desktop-import-upload")
    page.locator("[data-testid=import-format]").select_option("csv")
    page.locator("[data-testid=import-file]").set_input_files(str(path))
    page.locator("[data-testid=import-submit]").click()

    job = om.ImportJob.objects.get()
    expect(page).to_have_url(f"/observations/imports/{job.pk}/")
    progress = page.locator("[data-testid=import-progress]")
    expect(progress).to_have_attribute("data-status", "queued")
    expect(page.locator("[data-testid=import-bar]")).to_have_attribute("value", "0")

    # The background worker (`careloop worker`, or the one `make run` starts) takes the job.
    make_worker(interval=0, batch=True).run()

    # The page polls and shows the finished report without a reload.
    expect(progress).to_have_attribute("data-status", "done", timeout=15_000)
    expect(page.locator("[data-testid=import-bar]")).to_have_attribute("value", "100")
    expect(page.locator("[data-testid=import-accepted] .import-figure")).to_have_text("20")
    expect(page.locator("[data-testid=import-rejected] .import-figure")).to_have_text("3")
    problems = page.locator("[data-testid=problem-row]")
    expect(problems).to_have_count(3)
    expect(problems.nth(0)).to_contain_text("7")
    expect(problems.nth(0)).to_contain_text("systolic 400 mm[Hg] is not possible")
    expect(problems.nth(1)).to_contain_text("spreadsheet formula")
    expect(page.locator("[data-testid=problems-csv]")).to_be_visible()
    assert om.Observation.objects.filter(patient=patient).count() == 20
    snap(page, "desktop-import-report")

    phone = new_page(viewport=PHONE, locale="en-GB")
    sign_in(phone, "nurse.cardiology")
    phone.goto(f"/observations/imports/{job.pk}/")
    expect(phone.locator("[data-testid=problem-row]")).to_have_count(3)
    snap(phone, "phone-import-report")
    phone.goto("/observations/imports/")
    expect(phone.locator("[data-testid=import-row]")).to_have_count(1)
    snap(phone, "phone-import-upload")
