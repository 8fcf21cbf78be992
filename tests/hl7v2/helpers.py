"""Shared helpers for the HL7 v2 tests."""

from __future__ import annotations

from careloop.hl7v2.parser import Message, parse
from tests.corpus import CORPUS as SHARED

CORPUS = SHARED / "hl7v2-microsoft-fhir-converter"
MESSAGES = CORPUS / "messages"
EXPECTED = CORPUS / "expected-fhir-r4"
SAMPLES = sorted(p.name for p in MESSAGES.glob("*.hl7"))


def sample(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def msa(answer: str) -> tuple[str, str, str]:
    """(MSA-1 code, MSA-2 control id, MSA-3 text) of an ACK."""
    seg = parse(answer).first("MSA")
    assert seg is not None, answer
    return seg.component(1), seg.component(2), seg.component(3)


def ack_msh(answer: str) -> Message:
    return parse(answer)
