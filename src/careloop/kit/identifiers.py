"""Pure validation and normalisation of Chinese identifiers and clinical codes."""

from __future__ import annotations

import re
from datetime import date

# GB 11643-1999 resident identity number: 17 digits and an ISO 7064 MOD 11-2 check character.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")


def normalise_resident_id(raw: str) -> str:
    return re.sub(r"\s+", "", raw or "").upper()


def resident_id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def resident_id_problem(value: str) -> str | None:
    """Return None when valid, else a short reason code: 'format', 'checksum' or 'birthdate'."""
    if not _ID_RE.match(value):
        return "format"
    if resident_id_check_char(value[:17]) != value[17]:
        return "checksum"
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "birthdate"
    return None


def resident_id_birthdate(value: str) -> date:
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def resident_id_sex(value: str) -> str:
    """The 17th digit is odd for men and even for women."""
    return "male" if int(value[16]) % 2 else "female"


_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE_RE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


def normalise_phone(raw: str) -> str | None:
    """Mainland mobile (11 digits) or landline with area code; None when it is neither."""
    value = re.sub(r"[\s()]+", "", raw or "")
    for prefix in ("+86", "0086"):
        if value.startswith(prefix):
            value = value[len(prefix) :].lstrip("-")
    if _MOBILE_RE.match(value.replace("-", "")):
        return value.replace("-", "")
    if _LANDLINE_RE.match(value):
        digits = value.replace("-", "")
        area = 3 if digits[1] in "12" else 4  # 010, 02x are three digits; others four
        return f"{digits[:area]}-{digits[area:]}"
    return None


def phone_tail(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-4:]


_ICD10_RE = re.compile(r"^([A-Z]\d{2})(\.[0-9A-Za-z]{1,10})?$")


def icd10_category(code: str) -> str | None:
    """The three-character category of an ICD-10 code (national extensions allowed), or None."""
    match = _ICD10_RE.match(code.strip())
    return match.group(1) if match else None


# Verhoeff tables: SNOMED CT identifiers end in a Verhoeff check digit (SNOMED CT TIG 6.1).
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def snomed_id_valid(code: str) -> bool:
    """6 to 18 digits, no leading zero, and a valid Verhoeff check digit."""
    if not re.fullmatch(r"[1-9]\d{5,17}", code or ""):
        return False
    check = 0
    for i, ch in enumerate(reversed(code)):
        check = _D[check][_P[i % 8][int(ch)]]
    return check == 0
