"""Pure helpers: audit hashing, pagination bounds, spreadsheet-safe CSV cells, ages."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careloop.audit.domain import GENESIS, canonical, chain_hash, hashed_fields
from careloop.kit.clock import age_on
from careloop.kit.csvsafe import safe_cell
from careloop.kit.pagination import MAX_PAGE_SIZE, Page, paginate, to_int


def event(**overrides):
    fields = dict(
        chain="org:1",
        seq=1,
        at=datetime(2025, 3, 1, 8, 30, tzinfo=UTC),
        actor_id=7,
        actor="nurse.cardiology",
        organisation_id=1,
        action="patient.read",
        patient_id=42,
        object_type="patients.patient",
        object_id="42",
        outcome="success",
        source="10.0.0.5",
        detail={"criteria": ["phone_tail"], "results": 1},
    )
    fields.update(overrides)
    return hashed_fields(**fields)


class TestAuditHashing:
    def test_canonical_form_ignores_key_order(self):
        a = {"b": 1, "a": {"y": [1, 2], "x": "血压"}}
        b = {"a": {"x": "血压", "y": [1, 2]}, "b": 1}
        assert canonical(a) == canonical(b) == '{"a":{"x":"血压","y":[1,2]},"b":1}'

    @settings(database=None, max_examples=100)
    @given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6))
    def test_hash_is_independent_of_insertion_order(self, fields):
        reordered = dict(reversed(list(fields.items())))
        assert chain_hash(GENESIS, fields) == chain_hash(GENESIS, reordered)

    def test_hash_is_sha256_of_previous_hash_and_canonical_json(self):
        # Stated precisely so that anyone can re-verify an exported trail with other tools.
        fields = event()
        expected = hashlib.sha256((GENESIS + canonical(fields)).encode()).hexdigest()
        assert chain_hash(GENESIS, fields) == expected
        assert len(expected) == 64

    @pytest.mark.parametrize(
        "change",
        [
            {"seq": 2},
            {"actor": "nurse.endocrinology"},
            {"action": "patient.update"},
            {"patient_id": 43},
            {"outcome": "denied"},
            {"source": "10.0.0.6"},
            {"detail": {"criteria": ["phone_tail"], "results": 2}},
            {"at": datetime(2025, 3, 1, 8, 30, 0, 1, tzinfo=UTC)},
        ],
    )
    def test_any_change_to_an_event_changes_its_hash(self, change):
        assert chain_hash(GENESIS, event(**change)) != chain_hash(GENESIS, event())

    def test_hash_depends_on_the_previous_event(self):
        first = chain_hash(GENESIS, event())
        assert chain_hash(first, event(seq=2)) != chain_hash(GENESIS, event(seq=2))

    def test_time_is_recorded_with_its_offset_and_microseconds(self):
        shanghai = timezone(timedelta(hours=8))
        fields = event(at=datetime(2025, 3, 1, 16, 30, tzinfo=shanghai))
        assert fields["at"] == "2025-03-01T16:30:00.000000+08:00"


class FakeRows:
    """Just enough of a queryset for pagination: count() and slicing."""

    def __init__(self, n: int) -> None:
        self.rows = list(range(1, n + 1))

    def count(self) -> int:
        return len(self.rows)

    def __getitem__(self, item):
        return self.rows[item]


class TestPagination:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("7", 7),
            (7, 7),
            ("0", 1),
            ("-3", 1),
            ("999", 50),
            ("abc", 10),
            (None, 10),
            ("2.5", 10),
        ],
    )
    def test_to_int_is_bounded_and_forgiving(self, value, expected):
        assert to_int(value, 10, low=1, high=50) == expected

    def test_pages_of_a_list(self):
        page = paginate(FakeRows(55), page=2, size=25)
        assert (page.number, page.size, page.total, page.pages) == (2, 25, 55, 3)
        assert page.items == list(range(26, 51))
        assert page.has_next and page.has_previous

    def test_page_past_the_end_shows_the_last_page(self):
        page = paginate(FakeRows(55), page=99, size=25)
        assert page.number == 3
        assert page.items == list(range(51, 56))
        assert not page.has_next

    @pytest.mark.parametrize("page_number", [0, -1, "x", None])
    def test_nonsense_page_shows_the_first(self, page_number):
        page = paginate(FakeRows(5), page=page_number, size=2)
        assert page.number == 1 and page.items == [1, 2] and not page.has_previous

    def test_size_cannot_exceed_the_maximum_or_drop_below_one(self):
        assert paginate(FakeRows(500), size=10_000).size == MAX_PAGE_SIZE
        assert len(paginate(FakeRows(500), size=10_000).items) == MAX_PAGE_SIZE
        assert paginate(FakeRows(5), size=0).size == 1
        assert paginate(FakeRows(5), size="lots").size == 25

    def test_empty_result_is_one_empty_page(self):
        page = paginate(FakeRows(0), page=3)
        assert (page.number, page.pages, page.items) == (1, 1, [])
        assert not page.has_next and not page.has_previous

    def test_page_count(self):
        assert Page(items=[], number=1, size=10, total=30).pages == 3
        assert Page(items=[], number=1, size=10, total=31).pages == 4


class TestCsvCells:
    @pytest.mark.parametrize(
        "value", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    )
    def test_formula_triggers_are_neutralised(self, value):
        assert safe_cell(value) == "'" + value

    @pytest.mark.parametrize("value", ["张三", "patient.read", "a=b", "13912345678", ""])
    def test_ordinary_text_is_unchanged(self, value):
        assert safe_cell(value) == value

    def test_non_text_values(self):
        assert safe_cell(None) == ""
        assert safe_cell(-5) == -5
        assert safe_cell(3.5) == 3.5


class TestAge:
    @pytest.mark.parametrize(
        ("born", "today", "age"),
        [
            (date(1960, 5, 1), date(2025, 4, 30), 64),
            (date(1960, 5, 1), date(2025, 5, 1), 65),
            (date(2000, 2, 29), date(2025, 2, 28), 24),
            (date(2000, 2, 29), date(2025, 3, 1), 25),
        ],
    )
    def test_whole_years(self, born, today, age):
        assert age_on(born, today) == age
