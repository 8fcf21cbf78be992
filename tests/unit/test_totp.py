"""One-time passwords: the published test vectors, drift, replay and malformed codes."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from careloop.kit import totp

RFC_SEED = b"12345678901234567890"  # the ASCII seed of RFC 4226 and RFC 6238 (SHA-1)
SECRET = base64.b32encode(RFC_SEED).decode().rstrip("=")


def test_hotp_matches_rfc_4226_appendix_d() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314",
                "254676", "287922", "162583", "399871", "520489"]  # fmt: skip
    assert [totp.hotp(RFC_SEED, n) for n in range(10)] == expected


@pytest.mark.parametrize(
    ("unix", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_totp_matches_rfc_6238_appendix_b(unix: int, eight_digits: str) -> None:
    assert totp.hotp(RFC_SEED, totp.step_of(unix), digits=8) == eight_digits
    assert totp.code_at(SECRET, unix) == eight_digits[-6:]


def test_a_code_is_accepted_one_step_either_side_and_no_further() -> None:
    now = 1_700_000_015.0
    step = totp.step_of(now)
    for offset in (-1, 0, 1):
        code = totp.hotp(RFC_SEED, step + offset)
        assert totp.matching_step(SECRET, code, now) == step + offset
    for offset in (-3, -2, 2, 3):
        assert totp.matching_step(SECRET, totp.hotp(RFC_SEED, step + offset), now) is None


def test_a_code_already_used_is_refused() -> None:
    now = 1_700_000_015.0
    code = totp.code_at(SECRET, now)
    used = totp.matching_step(SECRET, code, now)
    assert used is not None
    assert totp.matching_step(SECRET, code, now, after_step=used) is None
    assert totp.matching_step(SECRET, code, now + 20, after_step=used) is None


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "１２３４５６", "12 34 5"])
def test_malformed_codes_never_match(bad: str) -> None:
    assert totp.matching_step(SECRET, bad, 1_700_000_015.0) is None


def test_spaces_inside_a_code_are_ignored() -> None:
    now = 1_700_000_015.0
    code = totp.code_at(SECRET, now)
    assert totp.matching_step(SECRET, f"{code[:3]} {code[3:]}", now) is not None


def test_new_secrets_are_160_bits_and_distinct() -> None:
    secrets = {totp.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(base64.b32decode(s + "=" * (-len(s) % 8))) == 20 for s in secrets)


def test_provisioning_uri_names_issuer_account_and_secret() -> None:
    uri = totp.provisioning_uri(SECRET, "nurse.li", "CareLoop 医院")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    query = parse_qs(parts.query)
    assert query["secret"] == [SECRET] and query["issuer"] == ["CareLoop 医院"]
    assert query["digits"] == ["6"] and query["period"] == ["30"]
