"""Readings normalised to canonical units, or refused with the field and reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from careloop.observations import domain

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def norm(**item: object) -> domain.Reading:
    return domain.normalise(
        item, patient_id=7, zone_name="Asia/Shanghai", source="patient", now=NOW
    )


class TestBloodPressure:
    def test_panel_code_and_components(self) -> None:
        r = norm(code="85354-9", systolic=142, diastolic=91, effective="2026-11-24T08:00:00+08:00")
        assert (r.kind, r.code, r.value, r.value2, r.unit) == ("bp", "85354-9", 142, 91, "mm[Hg]")
        assert r.effective_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
        assert r.local_hour == 8

    def test_older_panel_code_is_accepted(self) -> None:
        r = norm(code="55284-4", systolic=120, diastolic=80, effective="2026-11-24T08:00")
        assert r.kind == "bp" and r.code == "85354-9"

    def test_naive_time_is_local_to_the_patient(self) -> None:
        r = norm(code="bp", systolic=120, diastolic=80, effective="2026-11-23T23:30")
        assert r.effective_at == datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
        assert r.local_day == datetime(2026, 11, 23, tzinfo=UTC).toordinal() and r.local_hour == 23

    @pytest.mark.parametrize(
        ("systolic", "diastolic", "field"),
        [
            (400, 80, "systolic"),
            (120, 0, "diastolic"),
            (120, 130, "diastolic"),
            ("abc", 80, "systolic"),
        ],
    )
    def test_impossible_values_are_refused(
        self, systolic: object, diastolic: object, field: str
    ) -> None:
        with pytest.raises(domain.Problem) as caught:
            norm(code="bp", systolic=systolic, diastolic=diastolic, effective="2026-11-24T08:00")
        assert caught.value.field == field

    def test_extreme_but_possible_is_stored(self) -> None:
        assert (
            norm(code="bp", systolic=230, diastolic=130, effective="2026-11-24T08:00").value == 230
        )


class TestGlucose:
    def test_mg_dl_converts_exactly(self) -> None:
        r = norm(
            code="2339-0", value=126, unit="mg/dL", effective="2026-11-24T07:00", context="fasting"
        )
        assert r.value == pytest.approx(7.0, abs=1e-12) and r.unit == "mmol/L"
        assert domain.mg_dl(r.value) == 126.0
        assert r.context == "fasting" and r.original == "126 mg/dL"

    def test_fasting_code_implies_context(self) -> None:
        assert norm(code="1558-6", value=99, effective="2026-11-24T07:00").context == "fasting"

    def test_chinese_context_words(self) -> None:
        assert (
            norm(code="glucose", value=9.1, context="餐后", effective="2026-11-24T09:00").context
            == "postprandial"
        )

    def test_negative_glucose_is_refused(self) -> None:
        with pytest.raises(domain.Problem, match="not possible"):
            norm(code="glucose", value=-1, effective="2026-11-24T07:00")

    def test_wrong_unit_is_refused(self) -> None:
        with pytest.raises(domain.Problem) as caught:
            norm(code="glucose", value=7, unit="kg", effective="2026-11-24T07:00")
        assert caught.value.field == "unit"


class TestOtherKinds:
    def test_pounds_and_fahrenheit(self) -> None:
        assert norm(
            code="weight", value=150, unit="[lb_av]", effective="2026-11-24T07:00"
        ).value == pytest.approx(68.0388555)
        assert norm(
            code="8310-5", value=98.6, unit="[degF]", effective="2026-11-24T07:00"
        ).value == pytest.approx(37.0)

    def test_unknown_code(self) -> None:
        with pytest.raises(domain.Problem) as caught:
            norm(code="1234-5", value=1, effective="2026-11-24T07:00")
        assert caught.value.field == "code"

    def test_future_time_and_bad_zone(self) -> None:
        with pytest.raises(domain.Problem, match="future"):
            norm(code="heart_rate", value=70, effective="2026-11-25T12:00:00Z")
        with pytest.raises(domain.Problem) as caught:
            norm(code="heart_rate", value=70, effective="2026-11-24T07:00", time_zone="Mars/Base")
        assert caught.value.field == "time_zone"

    def test_not_a_number(self) -> None:
        with pytest.raises(domain.Problem, match="finite"):
            norm(code="heart_rate", value="nan", effective="2026-11-24T07:00")
