"""Screenshots of every staff page at 1280×800 and 360×740; no page may be wider than the screen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import screenshots
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE, login

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("size_name", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshots_and_no_sideways_scrolling(
    new_page: Any, rich_patient: Any, size_name: str, viewport: dict[str, int]
) -> None:
    shots = screenshots.capture(
        lambda: new_page(viewport=viewport),
        login,
        rich_patient.pk,
        size_name,
        ARTIFACTS / "screenshots",
    )
    assert len(shots) == 19
    for shot in shots:
        assert shot.path.stat().st_size > 5_000, f"{shot.name} looks blank"
    too_wide = {s.name: s.overflow_px for s in shots if s.overflow_px}
    assert not too_wide, f"pages wider than {viewport['width']} px: {too_wide}"
