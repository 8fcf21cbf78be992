"""Scores and published severity bands at every edge (no database)."""

from __future__ import annotations

import pytest

from careloop.questionnaires import scoring


def _phq(total: int, item9: int = 0) -> list[float | None]:
    """Nine item scores with the given total (item 9 as given)."""
    rest = total - item9
    items: list[float | None] = []
    for _ in range(8):
        take = min(3, rest)
        items.append(float(take))
        rest -= take
    assert rest == 0
    return [*items, float(item9)]


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (19, "moderately_severe"),
        (20, "severe"),
        (24, "severe"),
    ],
)
def test_phq9_bands(total: int, band: str) -> None:
    result = scoring.phq9(_phq(total))
    assert result.total == total
    assert result.band == band
    assert scoring.phq9_band(total) == band


def test_phq9_maximum_is_severe_and_item9_flagged() -> None:
    result = scoring.phq9([3.0] * 9)
    assert (result.total, result.band, result.flags) == (27, "severe", ["phq9_item9"])


@pytest.mark.parametrize(("item9", "flagged"), [(0, False), (1, True), (2, True), (3, True)])
def test_phq9_item9_flag(item9: int, flagged: bool) -> None:
    result = scoring.phq9(_phq(item9, item9=item9))
    assert ("phq9_item9" in result.flags) is flagged
    assert result.red_flag is flagged


def test_phq9_with_unanswered_items_is_incomplete() -> None:
    result = scoring.phq9([1, 1, None, 1, 1, 1, 1, 1, None])
    assert result.band == "incomplete"
    assert result.missing == [3, 9]
    assert result.total == 7


def test_phq9_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        scoring.phq9([0] * 8)
    with pytest.raises(ValueError):
        scoring.phq9([4] + [0] * 8)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_bands(total: int, band: str) -> None:
    items: list[float | None] = []
    rest = total
    for _ in range(7):
        take = min(3, rest)
        items.append(float(take))
        rest -= take
    result = scoring.gad7(items)
    assert (result.total, result.band, result.flags) == (total, band, [])


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, "detractor"),
        (6, "detractor"),
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
    ],
)
def test_nps_category(score: int, category: str) -> None:
    assert scoring.nps_category(score) == category


def test_nps_of_many_answers() -> None:
    # 3 promoters, 1 passive, 2 detractors of 6: 50% - 33.3% = 16.7
    assert scoring.nps([10, 9, 9, 7, 6, 0]) == 16.7
    assert scoring.nps([]) == 0.0
    with pytest.raises(ValueError):
        scoring.nps_category(11)


@pytest.mark.parametrize(
    ("score", "category"),
    [(1, "dissatisfied"), (2, "dissatisfied"), (3, "neutral"), (4, "satisfied"), (5, "satisfied")],
)
def test_csat_category(score: int, category: str) -> None:
    assert scoring.csat_category(score) == category


def test_csat_percent_and_range() -> None:
    assert scoring.csat_percent([5, 4, 3, 1]) == 50.0
    with pytest.raises(ValueError):
        scoring.csat_category(0)


def test_satisfaction_questionnaire_result() -> None:
    result = scoring.satisfaction({"nps": [8], "csat": ["4"]})
    assert result.band == "passive"
    assert result.details == {
        "nps": 8.0,
        "nps_category": "passive",
        "csat": 4.0,
        "csat_category": "satisfied",
    }


BASE = {
    "pain": [2],
    "fever": [False],
    "nausea": ["none"],
    "wound-redness": [False],
    "wound-discharge": ["none"],
    "breathless": [False],
    "calf-swelling": [False],
}


@pytest.mark.parametrize(
    ("change", "band", "flags"),
    [
        ({}, "as_expected", []),
        ({"pain": [4]}, "as_expected", []),
        ({"pain": [5]}, "watch", []),
        ({"pain": [7]}, "watch", []),
        ({"pain": [8]}, "red_flag", ["severe_pain"]),
        ({"fever": [True]}, "watch", []),
        ({"fever": [True], "temperature": [38.4]}, "watch", []),
        ({"fever": [True], "temperature": [38.5]}, "red_flag", ["high_fever"]),
        ({"wound-redness": [True]}, "watch", []),
        ({"wound-redness": [True], "fever": [True]}, "red_flag", ["wound_infection_signs"]),
        ({"wound-discharge": ["clear"]}, "watch", []),
        ({"wound-discharge": ["pus"]}, "red_flag", ["wound_pus"]),
        ({"nausea": ["nausea"]}, "watch", []),
        ({"nausea": ["vomiting"]}, "red_flag", ["persistent_vomiting"]),
        ({"breathless": [True]}, "red_flag", ["breathless"]),
        ({"calf-swelling": [True]}, "red_flag", ["calf_swelling"]),
    ],
)
def test_postop_red_flag_rule(change: dict, band: str, flags: list[str]) -> None:
    result = scoring.postop({**BASE, **change})
    assert result.band == band
    assert result.flags == flags
    assert result.total == len(flags)
