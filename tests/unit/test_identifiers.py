"""Identifiers staff type in every day: resident ID numbers, phones, ICD-10 and SNOMED codes."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careloop.kit.identifiers import (
    icd10_category,
    normalise_phone,
    normalise_resident_id,
    phone_tail,
    resident_id_birthdate,
    resident_id_check_char,
    resident_id_problem,
    resident_id_sex,
    snomed_id_valid,
)

# The two worked examples printed in GB 11643-1999 itself.
STANDARD_EXAMPLES = ["11010519491231002X", "440524188001010014"]


def iso7064_mod11_2(body: str) -> str:
    """An independent statement of the check: sum of d_i * 2^(18-i) (mod 11), then 12 - s."""
    s = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body)) % 11
    value = (12 - s) % 11
    return "X" if value == 10 else str(value)


bodies = st.builds(
    lambda region, born, seq: f"{region:06d}{born:%Y%m%d}{seq:03d}",
    st.integers(110000, 659999),
    st.dates(date(1900, 1, 1), date(2024, 12, 31)),
    st.integers(0, 999),
)


class TestResidentId:
    @pytest.mark.parametrize("value", STANDARD_EXAMPLES)
    def test_standard_examples_are_valid(self, value):
        assert resident_id_problem(value) is None

    def test_example_ending_in_x_needs_the_x(self):
        assert resident_id_check_char("11010519491231002") == "X"
        assert resident_id_problem("110105194912310020") == "checksum"

    def test_lowercase_x_and_spaces_are_normalised(self):
        assert normalise_resident_id(" 110105 19491231 002x ") == "11010519491231002X"

    @pytest.mark.parametrize(
        "value",
        ["", "1101051949123100", "11010519491231002XX", "1101051949123100XX", "A1010519491231002X"],
    )
    def test_wrong_shape_is_a_format_problem(self, value):
        assert resident_id_problem(value) == "format"

    def test_impossible_birth_date_is_reported(self):
        body = "11010519490231002"  # 31 February
        assert resident_id_problem(body + resident_id_check_char(body)) == "birthdate"

    def test_birth_date_and_sex_come_from_the_number(self):
        assert resident_id_birthdate("11010519491231002X") == date(1949, 12, 31)
        assert resident_id_sex("11010519491231002X") == "female"  # 17th digit 2: even
        assert resident_id_birthdate("440524188001010014") == date(1880, 1, 1)
        assert resident_id_sex("440524188001010014") == "male"  # 17th digit 1: odd

    @settings(database=None, max_examples=200)
    @given(bodies)
    def test_check_char_agrees_with_the_iso_7064_definition(self, body):
        assert resident_id_check_char(body) == iso7064_mod11_2(body)
        assert resident_id_problem(body + resident_id_check_char(body)) is None

    @settings(database=None, max_examples=300)
    @given(bodies, st.integers(0, 17), st.sampled_from("0123456789X"))
    def test_every_single_character_change_is_caught(self, body, position, replacement):
        valid = body + resident_id_check_char(body)
        if position < 17 and replacement == "X":
            replacement = "0"  # X is only ever a check character
        changed = valid[:position] + replacement + valid[position + 1 :]
        if changed == valid:
            return
        assert resident_id_problem(changed) == "checksum"


class TestPhones:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("13912345678", "13912345678"),
            ("139 1234 5678", "13912345678"),
            ("139-1234-5678", "13912345678"),
            ("+86 139 1234 5678", "13912345678"),
            ("+86-13912345678", "13912345678"),
            ("008613912345678", "13912345678"),
            ("0086 139 1234 5678", "13912345678"),
            ("010-12345678", "010-12345678"),
            ("01012345678", "010-12345678"),
            ("(010) 1234 5678", "010-12345678"),
            ("020-87654321", "020-87654321"),
            ("0755-1234567", "0755-1234567"),
            ("075512345678", "0755-12345678"),
        ],
    )
    def test_accepted_forms(self, raw, expected):
        assert normalise_phone(raw) == expected

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "12345",
            "1391234567",
            "139123456789",
            "12912345678",
            "23912345678",
            "+1 415 555 0100",
            "abc13912345678",
            "010-123",
            "0755-123456789",
            "110",
        ],
    )
    def test_rejected(self, raw):
        assert normalise_phone(raw) is None

    def test_tail_is_the_last_four_digits(self):
        assert phone_tail("13912345678") == "5678"
        assert phone_tail("0755-1234567") == "4567"


class TestIcd10:
    @pytest.mark.parametrize(
        ("code", "category"),
        [
            ("I10", "I10"),
            ("E11.9", "E11"),
            ("I25.1", "I25"),
            ("Z95.5", "Z95"),
            ("I10.x00x002", "I10"),  # national clinical extension (国家临床版 2.0)
            ("E11.900x001", "E11"),
            (" I10 ", "I10"),
        ],
    )
    def test_category(self, code, category):
        assert icd10_category(code) == category

    @pytest.mark.parametrize(
        "code", ["", "I1", "110", "II10", "I10.", "I10-x", "高血压", "I10.x00x002x00x"]
    )
    def test_not_a_code(self, code):
        assert icd10_category(code) is None


class TestSnomed:
    @pytest.mark.parametrize(
        "code",
        ["38341003", "44054006", "22298006", "73211009", "195967001", "138875005", "404684003"],
    )
    def test_real_identifiers_pass(self, code):
        assert snomed_id_valid(code)

    @pytest.mark.parametrize(
        "code", ["38341004", "4405406", "0123456", "12345", "", "3834100a", "1" * 19]
    )
    def test_invalid_identifiers_fail(self, code):
        assert not snomed_id_valid(code)

    @settings(database=None, max_examples=200)
    @given(st.sampled_from(["38341003", "44054006", "195967001", "53741008"]), st.data())
    def test_single_digit_errors_and_adjacent_swaps_are_caught(self, code, data):
        i = data.draw(st.integers(0, len(code) - 1))
        digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != code[i]))
        assert not snomed_id_valid(code[:i] + digit + code[i + 1 :])
        j = data.draw(st.integers(0, len(code) - 2))
        if code[j] != code[j + 1]:
            swapped = code[:j] + code[j + 1] + code[j] + code[j + 2 :]
            assert not snomed_id_valid(swapped)
