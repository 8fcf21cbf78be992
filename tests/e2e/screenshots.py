"""Screenshots of the staff pages at desktop and phone sizes, for people to look at.

Run by tests/e2e/test_screenshots.py, which also checks that no page is wider than the screen.
PNG files go to test-artifacts/screenshots/ (git-ignored): <size>-<page>.png.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_HEIGHT = 2400  # long lists are cut here; the top of the page is what matters
TABS = ["overview", "history", "medications", "visits", "reports", "consents", "timeline"]


@dataclass
class Shot:
    name: str
    path: Path
    overflow_px: int  # how far the page is wider than the window (0 = fits)


def _overflow(page: Any) -> int:
    return int(
        page.evaluate("() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth)")
    )


def capture(
    new_context: Callable[[], Any],
    login: Callable[[Any, str], None],
    patient_id: int,
    size_name: str,
    out_dir: Path,
) -> list[Shot]:
    """Visit every page worth looking at in one browser context per role; return the shots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shots: list[Shot] = []

    def snap(page: Any, name: str) -> None:
        page.wait_for_load_state()
        path = out_dir / f"{size_name}-{name}.png"
        height = min(MAX_HEIGHT, int(page.evaluate("document.documentElement.scrollHeight")))
        width = int(page.evaluate("document.documentElement.scrollWidth"))
        page.screenshot(
            path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
        )
        shots.append(Shot(name, path, _overflow(page)))

    page = new_context()
    page.goto("/login/")
    snap(page, "login")
    page.locator("input[name=username]").fill("nurse.cardiology")
    page.locator("input[name=password]").fill("wrong password")
    page.locator("form button[type=submit]").last.click()
    snap(page, "login-error")

    login(page, "nurse.cardiology")
    page.goto("/patients/")
    snap(page, "patient-list")
    page.goto("/patients/?q=zzzz-nobody")
    snap(page, "patient-list-empty")

    for tab in TABS:
        page.goto(f"/patients/{patient_id}/?tab={tab}")
        snap(page, f"patient-360-{tab}")

    page.goto(f"/patients/{patient_id}/edit/")
    page.locator("input[name=name]").fill("")
    page.locator("input[name=phones]").fill("12345")
    page.locator("input[name=date_of_birth]").fill("2999-01-01")
    page.locator("[data-testid=save]").click()
    snap(page, "patient-edit-errors")

    page.goto(f"/patients/{patient_id}/allergies/new/")
    page.locator("[data-testid=save]").click()
    snap(page, "allergy-add-errors")

    page.goto(f"/patients/{patient_id}/?tab=overview")
    page.locator("[data-testid=remove-allergies]").first.click()
    snap(page, "allergy-remove-confirm")

    page.goto("/patients/999999/")
    snap(page, "not-found")

    # English words are longer than Chinese ones: the same pages must still fit.
    page.goto("/patients/")
    page.locator("[data-testid=switch-language]").click()
    page.wait_for_url("**/patients/")
    snap(page, "en-patient-list")
    page.goto(f"/patients/{patient_id}/")
    snap(page, "en-patient-360-overview")
    page.goto(f"/patients/{patient_id}/?tab=visits")
    snap(page, "en-patient-360-visits")
    page.context.close()

    page = new_context()
    login(page, "auditor")
    page.goto("/audit/")
    snap(page, "audit-trail")
    page.context.close()
    return shots
